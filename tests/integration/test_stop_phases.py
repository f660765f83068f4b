"""A stop requested in each phase of a round, against the real Argilla: the round ends at a step boundary,
the state stays consistent with Argilla, and a restart resumes without losing or repeating anything."""

import numpy as np
import pytest

from daemon.config import ModelKind, Settings
from daemon.gateway import ArgillaGateway
from daemon.learner import Learner
from daemon.loop import Daemon
from daemon.models import build_features
from daemon.pool import load_table
from daemon.state import StateStore
from tests.conftest import tiny_rows, write_jsonl
from tests.integration.test_gateway import annotator_for

pytestmark = pytest.mark.integration

LABELS = ["food", "sport", "tech"]


def make(stack, name, pool, state_dir) -> Daemon:
    settings = Settings(
        _env_file=None,
        argilla_url=stack["url"],
        argilla_api_key=stack["owner_key"],
        dataset=name,
        model=ModelKind.tfidf,
        batch_size=6,
        state_dir=state_dir,
        stop_criteria=[],
        publish_progress=False,
    )
    y = np.array([LABELS.index(label) for label in pool.gold])
    features = build_features(settings, pool, pool, y, len(LABELS))
    learner = Learner.from_settings(features, len(LABELS), settings)
    gateway = ArgillaGateway(stack["url"], stack["owner_key"], "argilla", name)
    return Daemon(settings, gateway, learner, pool, LABELS, y)


@pytest.mark.parametrize("phase", ["waiting", "training", "querying", "logging"])
def test_stop_in_each_phase_then_resume(argilla_stack, dataset_name, tmp_path, monkeypatch, phase):
    pool = load_table(write_jsonl(tmp_path / "pool.jsonl", tiny_rows(10)), "text", "label", "id")
    daemon = make(argilla_stack, dataset_name, pool, tmp_path / "state")
    daemon.start()
    person = annotator_for(argilla_stack, dataset_name, dict(zip(pool.texts, pool.gold, strict=True)), LABELS)
    assert person.run(max_records=6).submitted == 6
    stop = daemon.shutdown_requested.set
    if phase == "waiting":
        stop()
    elif phase == "training":
        fit = daemon.learner.fit
        monkeypatch.setattr(daemon.learner, "fit", lambda *a: (stop(), fit(*a))[1])
    elif phase == "querying":
        query = daemon.learner.query
        monkeypatch.setattr(daemon.learner, "query", lambda *a, **k: (stop(), query(*a, **k))[1])
    else:
        log_records = daemon.gateway.log_records
        monkeypatch.setattr(daemon.gateway, "log_records", lambda records: (stop(), log_records(records))[1])
    daemon.tick()

    saved = StateStore(tmp_path / "state").load()
    present = daemon.gateway.max_batch_id()
    if phase in ("waiting", "training"):  # nothing of round 0 is kept but the journal of batch 0
        assert saved.current.batch_id == 0 and present == 0
    elif phase == "querying":  # batch 1 journaled before the boundary, not yet in Argilla
        assert saved.current.batch_id == 1 and not saved.current.logged and present == 0
    else:  # a log in flight completes: the step finishes rather than half-logging a batch
        assert saved.current.batch_id == 1 and saved.current.logged and present == 1
    journaled = saved.current.pool_indices

    restarted = make(argilla_stack, dataset_name, pool, tmp_path / "state")
    restarted.start()
    restarted.tick()
    assert restarted.gateway.max_batch_id() == 1 and restarted.state.rounds_trained == 1
    batch_one = sorted(v.pool_index for v in restarted.gateway.read_batch(1))
    assert len(batch_one) == 6 and not set(batch_one) & set(restarted.state.batches[0].pool_indices)
    if phase in ("querying", "logging"):
        assert batch_one == sorted(journaled)  # the journaled batch, not a fresh query
    assert len(restarted.state.training_labels()) == 6
