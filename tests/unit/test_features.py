"""Features off the start-up path: batch 0 before any model, random batches while the features are built, the
learner adopted afterwards, a resumable embedding, and the builder's progress and retries."""

import threading

import numpy as np
import pytest

from daemon import engine as engine_module
from daemon.app import Service
from daemon.config import ColdStart, ModelKind, Settings
from daemon.features import FeatureBuilder
from daemon.learner import Learner, PendingLearner
from daemon.loop import Daemon
from daemon.models import build_features
from daemon.pool import default_model_path, embed, embedding_cache
from daemon.simulate import wait_for
from tests.conftest import free_port, tiny_rows, write_jsonl
from tests.fakes import FakeGateway
from tests.unit.conftest import LABELS, label_batch, make_daemon


def real_learner(world, **overrides) -> Learner:
    options = {"model": ModelKind.tfidf, "batch_size": 6, "state_dir": world["dir"], "dataset": "d", "workspace": "w"}
    settings = Settings(_env_file=None, **(options | overrides))
    features = build_features(settings, world["pool"], world["pool"], world["y"], len(LABELS))
    return Learner.from_settings(features, len(LABELS), settings)


def pending_daemon(world, **overrides) -> Daemon:
    """A daemon as the service builds it: the learner waits for its features."""
    daemon = make_daemon(world, **overrides)
    daemon.learner = PendingLearner(len(world["pool"]), daemon.learner.name, daemon.settings.seed)
    return daemon


def test_the_pending_learner_draws_what_an_untrained_learner_draws(world):
    learner = real_learner(world, seed=7)
    pending = PendingLearner(len(world["pool"]), learner.name, seed=7)
    assert pending.initial_batch(6) == learner.initial_batch(6)
    exclude = set(learner.initial_batch(6))
    assert pending.query(6, 1, exclude).indices == learner.query(6, 1, exclude).indices
    assert pending.query(100, 2, exclude).indices == learner.query(100, 2, exclude).indices  # all that is left
    with pytest.raises(ValueError, match="needs the pool's features"):
        PendingLearner(20, "x", cold_start=ColdStart.kmeans)


def test_batches_keep_coming_at_random_until_the_features_exist_then_rounds_train(world):
    reference = make_daemon(world, stop_criteria=[], state_dir=world["dir"].parent / "reference")
    reference.gateway = type(world["gateway"])()
    reference.start()
    daemon = pending_daemon(world, stop_criteria=[])
    daemon.start()
    gateway = world["gateway"]
    assert [r.pool_index for r in gateway.batch(0)] == [r.pool_index for r in reference.gateway.batch(0)]
    label_batch(world, 0)
    daemon.tick()
    assert daemon.state.rounds_trained == 0 and daemon.state.current.batch_id == 1
    batch = gateway.batch(1)
    assert len(batch) == 6 and all(r.suggestion is None and r.al_score is None for r in batch)
    assert not {r.pool_index for r in batch} & {r.pool_index for r in gateway.batch(0)}
    daemon.adopt(real_learner(world))
    assert daemon.learner.ready and daemon.status()["model"] == "tfidf-logreg"
    label_batch(world, 1)
    daemon.tick()
    assert daemon.state.rounds_trained == 1 and [m.round for m in daemon.state.rounds] == [1]
    assert len(daemon.state.training_labels()) == 12  # the model trained on batch 0's labels too
    assert all(r.suggestion in LABELS and r.al_score is not None for r in gateway.batch(2))


def test_the_last_round_waits_for_the_features(world):
    half = len(world["pool"]) // 2  # two batches use up the pool
    daemon = pending_daemon(world, stop_criteria=[], batch_size=half)
    daemon.start()
    label_batch(world, 0)
    daemon.tick()
    label_batch(world, 1)
    daemon.tick()
    status = daemon.status()
    assert status["state"] == "training" and "waits for the model's features" in status["reason"]
    assert daemon.state.stopped is None and not daemon.finished.is_set()
    daemon.adopt(real_learner(world, batch_size=half))
    daemon.tick()
    assert daemon.state.stopped.startswith("pool exhausted") and daemon.state.rounds_trained == 1
    assert daemon.state.exported_at is not None


def test_the_builder_reports_progress_retries_a_failure_and_hands_over_the_learner(world, monkeypatch):
    monkeypatch.setattr(FeatureBuilder, "RETRY_AFTER", (0.05,))
    attempts, second, gate, adopted = [], threading.Event(), threading.Event(), []

    def build(report):
        attempts.append(1)
        report("pool", 0, 20)
        threading.Event().wait(0.01)
        report("pool", 10, 20)
        if len(attempts) == 1:
            raise OSError("cache folder gone")
        second.set()
        gate.wait(5)
        return "the learner"

    builder = FeatureBuilder(build, adopted.append)
    builder.start()
    assert second.wait(5)
    view = builder.view()
    assert view["state"] == "building" and view["failures"] == 1 and (view["done"], view["total"]) == (10, 20)
    assert view["rate"] > 0 and view["eta_seconds"] >= 0 and builder.busy
    gate.set()
    assert builder.wait(5) and adopted == ["the learner"] and builder.view()["state"] == "ready"
    assert not builder.busy


def test_an_interrupted_embedding_resumes_at_its_last_part(tmp_path, monkeypatch):
    monkeypatch.setattr(engine_module, "CHUNK", 4)
    monkeypatch.setattr(engine_module, "PART", 8)
    texts = [f"sentence number {i} about {'food sport tech'.split()[i % 3]}" for i in range(30)]
    model = default_model_path()
    whole = embed(texts, model, tmp_path / "one-go", "fp-whole")

    seen = []

    def stop_after_two_parts(done, total):
        seen.append(done)
        if done >= 16:
            raise KeyboardInterrupt  # a stop once parts 0..7 and 8..15 are written

    with pytest.raises(KeyboardInterrupt):
        embed(texts, model, tmp_path / "cache", "fp", stop_after_two_parts)
    assert seen == [0, 8, 16]
    parts = embedding_cache(model, tmp_path / "cache", "fp").with_suffix(".parts")
    assert sorted(p.name for p in parts.iterdir()) == ["000000000000.npy", "000000000008.npy"]
    (parts / ".000000000016.npy.tmp-cut").write_bytes(b"half a part")  # what a kill mid-write leaves
    resumed = []
    vectors = embed(texts, model, tmp_path / "cache", "fp", lambda done, total: resumed.append(done))
    assert resumed == [16, 24, 30]  # the two parts written were not embedded again
    np.testing.assert_array_equal(vectors, whole)
    assert not parts.exists() and embedding_cache(model, tmp_path / "cache", "fp").exists()


def test_a_complete_batch_waits_a_while_for_the_features_then_goes_on_at_random(world):
    daemon = pending_daemon(world, stop_criteria=[], features_wait=0.5)
    daemon.builder = FeatureBuilder(lambda report: None, lambda learner: None)  # not started: still building
    daemon.builder.report("pool", 40, 60)
    daemon.start()
    label_batch(world, 0)
    daemon.tick()
    status = daemon.status()
    assert status["state"] == "training" and daemon.state.current.batch_id == 0
    assert "waiting up to 0 s for the model's features (40/60 texts embedded)" in status["reason"]
    assert status["features"]["state"] == "building" and status["features"]["done"] == 40
    threading.Event().wait(0.6)
    daemon.tick()
    assert daemon.state.current.batch_id == 1 and daemon.state.rounds_trained == 0  # drawn at random
    label_batch(world, 1)
    daemon.adopt(real_learner(world))  # ready in time: the round waits for nothing and trains
    daemon.tick()
    assert daemon.state.rounds_trained == 1 and daemon.state.current.batch_id == 2


@pytest.fixture
def held(tmp_path, monkeypatch):
    """A service polling every 10 minutes (webhooks would wake it) on the fake gateway, whose features are built
    only once ``gate`` is set; batch 0 is answered and a webhook's wake-up finds it complete."""
    rows = tiny_rows(10)
    gateway, gate, services = FakeGateway(), threading.Event(), []
    monkeypatch.setattr("daemon.app.connect", lambda *_: gateway)

    def start(features_wait: float):
        settings = Settings(
            _env_file=None,
            pool_file=write_jsonl(tmp_path / "pool.jsonl", rows),
            test_file=None,
            model=ModelKind.tfidf,
            batch_size=6,
            poll_interval=600,
            features_wait=features_wait,
            stop_criteria=[],
            state_dir=tmp_path / "state",
            dataset="d",
            workspace="w",
            status_port=free_port(),
        )
        service = Service(settings)
        build = service.learner
        service.learner = lambda *args, **kwargs: gate.wait(60) and build(*args, **kwargs)
        services.append(service)
        assert service.startup() and wait_for(lambda: len(gateway.batch(0)) == 6, timeout=10)
        gold = {row["text"]: row["label"] for row in rows}
        for record in gateway.batch(0):
            gateway.submit(record.record_id, gold[record.text])
        service._wake()  # a webhook's event
        assert wait_for(lambda: "waiting up to" in (service.daemon.status()["reason"] or ""), timeout=10)
        return service

    yield {"start": start, "gateway": gateway, "gate": gate}
    gate.set()
    for service in services:
        assert service.daemon.builder.wait(60)  # a shutdown while the features are built leaves the process
        service.request_shutdown()
        service.shutdown()


def test_a_round_held_for_the_features_goes_on_once_they_are_built_not_at_the_next_poll(held):
    service = held["start"](features_wait=600)
    assert held["gateway"].batch(1) == []  # held: the features are still being built
    held["gate"].set()
    assert wait_for(lambda: len(held["gateway"].batch(1)) == 6, timeout=30)  # the next poll is 10 minutes away
    assert service.daemon.state.rounds_trained == 1 and service.daemon.state.batches[1].scores[0] is not None


def test_a_hold_that_runs_out_goes_on_at_once_with_a_random_batch(held):
    service = held["start"](features_wait=1.0)
    assert wait_for(lambda: len(held["gateway"].batch(1)) == 6, timeout=15)  # not 10 minutes later
    assert not service.daemon.learner.ready and service.daemon.state.rounds_trained == 0  # drawn at random
