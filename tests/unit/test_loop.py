"""The daemon's round logic against a fake gateway: rounds, discards, stopping, crash and resume."""

import numpy as np
import pytest

from daemon.errors import ArgillaUnavailable, StateError
from daemon.loop import Phase
from daemon.pool import load_table
from daemon.state import StateStore
from tests.conftest import tiny_rows, write_jsonl
from tests.unit.conftest import LABELS, label_batch, make_daemon


def test_rounds_log_new_batches_with_suggestions_and_never_repeat(world):
    daemon = make_daemon(world, stop_criteria=[])
    daemon.start()
    gateway = world["gateway"]
    assert len(gateway.batch(0)) == 6 and gateway.spec.labels == LABELS
    daemon.tick()
    assert daemon.status()["state"] == Phase.waiting.value and daemon.state.round == 0
    for batch_id in range(3):
        first = gateway.batch(batch_id)[0].pool_index
        label_batch(world, batch_id, discard={first})
        daemon.tick()
        assert len(gateway.batch(batch_id + 1)) == 6
    indices = [r.pool_index for r in gateway.records.values()]
    assert len(indices) == len(set(indices)) == 24
    later = gateway.batch(3)
    assert all(r.suggestion in LABELS and r.agent == "tfidf-logreg:round-3" and r.al_score is not None for r in later)
    state = daemon.state
    assert [m.round for m in state.rounds] == [0, 1, 2]
    assert all(m.accuracy is not None for m in state.rounds)
    assert state.rounds[1].kappa is not None
    # discarded items are never training labels
    assert not state.discarded() & state.training_labels().keys()
    assert len(state.training_labels()) == 3 * 5


def test_restart_resumes_at_the_same_batch(world):
    daemon = make_daemon(world, stop_criteria=[])
    daemon.start()
    label_batch(world, 0)
    daemon.tick()
    before = world["gateway"].batch(1)
    restarted = make_daemon(world, stop_criteria=[])
    restarted.start()
    assert restarted.state.current.batch_id == 1
    assert len(world["gateway"].records) == 12  # nothing logged again on restart
    label_batch(world, 1)
    restarted.tick()
    assert restarted.state.round == 2 and len(world["gateway"].batch(2)) == 6
    assert {r.pool_index for r in before} == set(restarted.state.batches[1].pool_indices)


def test_crash_while_logging_relogs_the_journaled_indices(world):
    daemon = make_daemon(world, stop_criteria=[])
    daemon.start()
    label_batch(world, 0)
    world["gateway"].fail_next_log = True
    with pytest.raises(RuntimeError):
        daemon.tick()
    journaled = StateStore(world["dir"]).load()
    assert journaled.current.batch_id == 1 and not journaled.current.logged
    restarted = make_daemon(world, stop_criteria=[])
    restarted.start()
    assert [r.pool_index for r in world["gateway"].batch(1)] == journaled.current.pool_indices
    assert restarted.state.round == 1


def test_max_rounds_stops_without_a_new_batch(world):
    daemon = make_daemon(world, max_rounds=2)
    daemon.start()
    label_batch(world, 0)
    daemon.tick()
    label_batch(world, 1)
    daemon.tick()
    assert daemon.finished.is_set()
    assert daemon.status()["state"] == "stopped" and "max_rounds" in daemon.status()["reason"]
    assert world["gateway"].max_batch_id() == 1


def test_argilla_outage_degrades_then_recovers(world, monkeypatch):
    daemon = make_daemon(world, stop_criteria=[], poll_interval=0.01)
    daemon.start()

    def down(batch_id):
        raise ArgillaUnavailable("Argilla unreachable: test")

    monkeypatch.setattr(world["gateway"], "read_batch", down)
    daemon.tick()
    assert daemon.status()["state"] == "degraded" and "unreachable" in daemon.status()["reason"]
    monkeypatch.undo()
    daemon._next_try = 0
    label_batch(world, 0)
    daemon.tick()
    assert daemon.status()["state"] == "waiting-for-annotators" and daemon.state.round == 1


def test_state_of_another_pool_is_refused(world, tmp_path):
    make_daemon(world).start()
    other = write_jsonl(tmp_path / "other.jsonl", tiny_rows(21))
    world["pool"] = load_table(other, "text", "label", "id")
    world["y"] = np.array([LABELS.index(label) for label in world["pool"].gold])
    with pytest.raises(StateError, match="belongs to another run .*pool file"):
        make_daemon(world).start()


def test_dataset_with_batches_but_no_state_is_refused(world):
    make_daemon(world).start()
    StateStore(world["dir"]).path.unlink()
    with pytest.raises(StateError, match="already holds batches"):
        make_daemon(world).start()


@pytest.mark.parametrize("where", ["training", "query", "log"])
def test_a_stop_leaves_the_round_at_a_step_boundary_and_a_restart_resumes(world, monkeypatch, where):
    daemon = make_daemon(world, stop_criteria=[])
    daemon.start()
    label_batch(world, 0)
    gateway = world["gateway"]
    if where == "training":  # the stop arrives while the model trains: the round stops before the query
        fit = daemon.learner.fit
        monkeypatch.setattr(daemon.learner, "fit", lambda *a: (daemon.stopping.set(), fit(*a))[1])
    elif where == "query":  # ... while querying: the batch is journaled, not logged
        query = daemon.learner.query
        monkeypatch.setattr(daemon.learner, "query", lambda *a: (daemon.stopping.set(), query(*a))[1])
    else:  # ... while journaling the next batch: it is journaled but not logged
        journal = daemon._journal_batch
        monkeypatch.setattr(daemon, "_journal_batch", lambda *a: (journal(*a), daemon.stopping.set())[0])
    daemon.tick()
    saved = StateStore(world["dir"]).load()
    assert saved.current.batch_id == (0 if where == "training" else 1) and gateway.max_batch_id() == 0
    assert saved.batches[0].complete and len(saved.training_labels()) == 6
    restarted = make_daemon(world, stop_criteria=[])
    restarted.start()
    restarted.tick()
    assert gateway.max_batch_id() == 1 and restarted.state.round == 1
    if where != "training":
        assert [r.pool_index for r in gateway.batch(1)] == saved.current.pool_indices  # the journaled batch
    assert len(gateway.batch(1)) == 6


def test_tick_does_nothing_once_stopping(world):
    daemon = make_daemon(world, stop_criteria=[])
    daemon.start()
    label_batch(world, 0)
    daemon.stopping.set()
    daemon.tick()
    assert daemon.state.round == 0 and world["gateway"].max_batch_id() == 0
