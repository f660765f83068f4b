"""Training off the annotators' critical path (AL_TRAINING=ahead: a background trainer) and AL_RETRAIN_EVERY,
against a fake gateway. A gate holds the background training where a test needs it to be slow."""

import threading
import time

import pytest

from daemon.config import ModelKind, Settings, Training
from daemon.learner import Learner
from daemon.state import StateStore
from tests.unit.conftest import label_batch, make_daemon

SETTLE = 60.0


def all_indices(gateway) -> list[int]:
    return [r.pool_index for r in gateway.records.values()]


class Gate:
    """Patches Learner.fit: a fit on the background trainer's thread waits until the gate opens, and records which
    batch was the newest in Argilla when it began."""

    def __init__(self, monkeypatch, gateway, fail_once: bool = False) -> None:
        self.open = threading.Event()
        self.open.set()
        self.in_argilla_at_fit: list[int] = []
        self.fail_once = fail_once
        fit = Learner.fit
        gate = self

        def gated_fit(learner, *args, **kwargs):
            if threading.current_thread().name == "al-trainer":
                gate.in_argilla_at_fit.append(gateway.max_batch_id())
                assert gate.open.wait(SETTLE), "the test never opened the gate"
                if gate.fail_once:
                    gate.fail_once = False
                    raise RuntimeError("simulated training failure")
            return fit(learner, *args, **kwargs)

        monkeypatch.setattr(Learner, "fit", gated_fit)

    def reached(self, count: int) -> None:
        """Wait until ``count`` background fits have begun (the worker thread is inside the gate)."""
        deadline = time.monotonic() + SETTLE
        while len(self.in_argilla_at_fit) < count:
            assert time.monotonic() < deadline, "the background training never started"
            time.sleep(0.01)


def test_auto_is_ahead_for_the_fine_tuned_models_only():
    assert Settings(_env_file=None, model=ModelKind.transformer).ahead
    assert Settings(_env_file=None, model=ModelKind.setfit).ahead
    assert not Settings(_env_file=None, model=ModelKind.embeddings).ahead
    assert Settings(_env_file=None, model=ModelKind.tfidf, training=Training.ahead).ahead
    assert not Settings(_env_file=None, model=ModelKind.transformer, training=Training.inline).ahead


def test_the_next_batch_never_waits_for_training(world, monkeypatch):
    gateway = world["gateway"]
    gate = Gate(monkeypatch, gateway)
    daemon = make_daemon(world, stop_criteria=[], training=Training.ahead)
    daemon.start()

    # batch 0 done while no model exists: batch 1 is drawn at random at once, the first model trains behind it
    gate.open.clear()
    label_batch(world, 0)
    daemon.tick()
    assert gateway.max_batch_id() == 1 and daemon.rounds.busy
    gate.reached(1)
    assert all(r.suggestion is None for r in gateway.batch(1))
    assert daemon.status()["training"]["background"]["round"] == 0
    assert daemon.state.rounds == [] and daemon.state.prepared is None

    # annotators finish batch 1 before the first model is ready: batch 2 still appears at once
    label_batch(world, 1)
    daemon.tick()
    assert gateway.max_batch_id() == 2
    assert daemon.status()["training"]["background"]["waiting_round"] == 1

    gate.open.set()
    assert daemon.settle(SETTLE)
    # round 0 trained, then round 1 (with batch 1's labels too); its model prepared batch 3
    assert [m.round for m in daemon.state.rounds] == [0, 1] and daemon.state.rounds[-1].labels == 12
    assert {"handover", "train", "evaluate", "prepare"} <= daemon.state.rounds[-1].seconds.keys()
    prepared = daemon.state.prepared
    assert prepared.batch_id == 3 and prepared.round == 2 and len(prepared.pool_indices) == 6
    assert not set(prepared.pool_indices) & daemon.state.used_indices()
    assert StateStore(world["dir"]).load().prepared == prepared  # journaled

    label_batch(world, 2)
    daemon.tick()
    assert [r.pool_index for r in gateway.batch(3)] == prepared.pool_indices  # exactly the batch prepared
    assert all(r.agent == "tfidf-logreg:round-2" and r.suggestion for r in gateway.batch(3))
    assert daemon.settle(SETTLE)
    assert daemon.state.prepared.batch_id == 4

    # with a model in hand but none prepared (training still running), the model in hand picks the batch
    gate.open.clear()
    label_batch(world, 3)
    daemon.tick()  # logs prepared batch 4; round 3 trains (held)
    gate.reached(4)
    label_batch(world, 4)
    daemon.tick()
    assert gateway.max_batch_id() == 5 and daemon.rounds.busy
    assert all(r.agent == "tfidf-logreg:round-3" and r.suggestion for r in gateway.batch(5))  # round 2's model
    gate.open.set()
    assert daemon.settle(SETTLE)

    # every training began with the next batch already in front of annotators
    assert gate.in_argilla_at_fit == [1, 2, 3, 4, 5]
    assert [m.round for m in daemon.state.rounds] == [0, 1, 2, 3, 4]
    indices = all_indices(gateway)
    assert len(indices) == len(set(indices)) == 36
    status = daemon.status()["training"]
    assert status["mode"] == "ahead" and status["prepared"]["batch_id"] == 6 and status["background"] is None


def test_a_restart_rebuilds_the_model_and_logs_the_journaled_batch(world):
    daemon = make_daemon(world, stop_criteria=[], training=Training.ahead)
    daemon.start()
    label_batch(world, 0)
    daemon.tick()
    assert daemon.settle(SETTLE)
    prepared = list(daemon.state.prepared.pool_indices)
    rounds = [m.model_dump() for m in daemon.state.rounds]

    restarted = make_daemon(world, stop_criteria=[], training=Training.ahead)
    restarted.start()
    assert len(world["gateway"].records) == 12  # the prepared batch is not logged by a restart
    assert restarted.settle(SETTLE)
    assert restarted.learner.trained  # rebuilt from the journal at start, off the poll thread
    assert restarted.state.prepared.pool_indices == prepared  # kept: a restart logs what it journaled
    assert [m.model_dump() for m in restarted.state.rounds] == rounds  # the round is not journaled twice
    label_batch(world, 1)
    restarted.tick()
    assert [r.pool_index for r in world["gateway"].batch(2)] == prepared


def test_a_stop_waits_for_the_batch_already_out_and_trains_on_it(world):
    daemon = make_daemon(world, max_rounds=2, training=Training.ahead)
    daemon.start()
    for batch_id in (0, 1):
        label_batch(world, batch_id)
        daemon.tick()
        assert daemon.settle(SETTLE)
    # the criterion fired with batch 2 already out: nothing more is prepared, and the run waits for batch 2
    assert daemon.state.stop_pending and "max_rounds" in daemon.state.stop_pending
    assert daemon.state.prepared is None and not daemon.finished.is_set()
    assert daemon.status()["training"]["stop_pending"] == daemon.state.stop_pending
    label_batch(world, 2)
    daemon.tick()
    assert daemon.finished.is_set() and "max_rounds" in daemon.state.stopped
    assert world["gateway"].max_batch_id() == 2  # no batch after the stop
    assert len(daemon.state.training_labels()) == 18  # the last batch's labels are in the final model
    assert daemon.state.rounds[-1].round == 2 and daemon.state.rounds[-1].labels == 18


def test_the_last_round_waits_for_the_training_running_then_uses_every_label(world, monkeypatch):
    gate = Gate(monkeypatch, world["gateway"])
    daemon = make_daemon(world, stop_criteria=[], training=Training.ahead)
    daemon.start()
    pool_size = len(world["pool"])
    gate.open.clear()  # the first model never finishes while annotators label the whole pool
    batch_id = 0
    while True:
        label_batch(world, batch_id)
        daemon.tick()
        if daemon.state.current.batch_id == batch_id:  # nothing left to hand out
            break
        batch_id += 1
    assert batch_id == pool_size // 6 - 1 and daemon.rounds.busy
    # the pool is used up while a model trains: the final round waits for it instead of training two at once
    assert not daemon.finished.is_set() and daemon.status()["state"] == "training"
    daemon.tick()  # skipped: the worker is still busy
    assert not daemon.finished.is_set()
    gate.open.set()
    assert daemon.settle(SETTLE)
    daemon.tick()
    assert daemon.finished.is_set() and "pool exhausted" in daemon.state.stopped
    assert daemon.state.rounds[-1].labels == pool_size == len(set(all_indices(world["gateway"])))


def test_a_failed_training_keeps_the_model_in_hand_and_the_next_round_retries(world, monkeypatch):
    gate = Gate(monkeypatch, world["gateway"], fail_once=True)
    daemon = make_daemon(world, stop_criteria=[], training=Training.ahead)
    daemon.start()
    label_batch(world, 0)
    daemon.tick()
    assert daemon.settle(SETTLE)
    assert daemon.state.rounds == [] and not daemon.learner.trained
    assert any("training round 0 failed" in w for w in daemon.status()["warnings"])
    label_batch(world, 1)
    daemon.tick()
    assert daemon.settle(SETTLE) and gate.fail_once is False
    assert [m.round for m in daemon.state.rounds] == [1] and daemon.state.rounds[0].labels == 12
    assert daemon.status()["warnings"] == []


def test_switching_to_inline_drops_the_prepared_batch(world):
    daemon = make_daemon(world, stop_criteria=[], training=Training.ahead)
    daemon.start()
    label_batch(world, 0)
    daemon.tick()
    assert daemon.settle(SETTLE) and daemon.state.prepared is not None
    inline = make_daemon(world, stop_criteria=[], training=Training.inline)
    inline.start()
    assert inline.state.prepared is None and StateStore(world["dir"]).load().prepared is None
    assert not inline.rounds.busy  # inline never trains in the background
    label_batch(world, 1)
    inline.tick()
    assert inline.state.rounds_trained == 2 and len(world["gateway"].batch(2)) == 6


@pytest.mark.parametrize("training", [Training.inline, Training.ahead])
def test_retrain_every_two_batches_queries_with_the_model_in_hand(world, training):
    daemon = make_daemon(world, stop_criteria=[], retrain_every=2, training=training)
    daemon.start()
    for batch_id in range(4):
        label_batch(world, batch_id)
        daemon.tick()
        assert daemon.settle(SETTLE)
        assert len(world["gateway"].batch(batch_id + 1)) == 6
    # round 0 trains (no model yet), then every second batch: rounds 1 and 3
    assert [m.round for m in daemon.state.rounds] == [0, 1, 3]
    assert daemon.state.rounds[-1].labels == 24
    indices = all_indices(world["gateway"])
    assert len(indices) == len(set(indices)) == 30  # batch 3, queried without retraining, skips batch 2's items
