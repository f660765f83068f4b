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
    assert daemon.status()["state"] == Phase.waiting.value and daemon.state.rounds_trained == 0
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
    assert restarted.state.rounds_trained == 2 and len(world["gateway"].batch(2)) == 6
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
    assert restarted.state.rounds_trained == 1


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
    assert daemon.status()["state"] == "waiting-for-annotators" and daemon.state.rounds_trained == 1


def test_a_retry_stays_degraded_until_a_whole_poll_succeeds(world, monkeypatch):
    """The round's journal cannot be written (full disk) after training: each retry trains again, and the
    status says degraded all along (not training, then degraded again); once a poll succeeds it shows the phase."""
    from daemon.errors import DiskError

    daemon = make_daemon(world, stop_criteria=[], poll_interval=0.01)
    daemon.start()
    label_batch(world, 0)
    seen = []
    fit = daemon.learner.fit

    def fit_and_look(*args):
        seen.append(daemon.status()["state"])
        return fit(*args)

    def full(*args, **kwargs):
        raise DiskError("cannot write the journal (state.json): [Errno 27] File too large")

    monkeypatch.setattr(daemon.learner, "fit", fit_and_look)
    monkeypatch.setattr(daemon, "journal_batch", full)
    daemon.tick()
    assert daemon.status()["state"] == "degraded" and "cannot write" in daemon.status()["reason"]
    for _ in range(2):
        daemon._next_try = 0
        daemon.tick()
        assert daemon.status()["state"] == "degraded"
    assert seen == ["training", "degraded", "degraded"]  # the first attempt trains before anything failed
    monkeypatch.setattr(daemon, "journal_batch", type(daemon).journal_batch.__get__(daemon))
    daemon._next_try = 0
    daemon.tick()
    status = daemon.status()
    assert status["state"] == "waiting-for-annotators" and status["last_error"] is None
    assert daemon.state.rounds_trained == 1 and len(world["gateway"].batch(1)) == 6


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
        monkeypatch.setattr(daemon.learner, "fit", lambda *a: (daemon.shutdown_requested.set(), fit(*a))[1])
    elif where == "query":  # ... while querying: the batch is journaled, not logged
        query = daemon.learner.query
        monkeypatch.setattr(
            daemon.learner, "query", lambda *a, **k: (daemon.shutdown_requested.set(), query(*a, **k))[1]
        )
    else:  # ... while journaling the next batch: it is journaled but not logged
        journal = daemon.journal_batch
        monkeypatch.setattr(daemon, "journal_batch", lambda *a: (journal(*a), daemon.shutdown_requested.set())[0])
    daemon.tick()
    saved = StateStore(world["dir"]).load()
    assert saved.current.batch_id == (0 if where == "training" else 1) and gateway.max_batch_id() == 0
    assert saved.batches[0].complete and len(saved.training_labels()) == 6
    restarted = make_daemon(world, stop_criteria=[])
    restarted.start()
    restarted.tick()
    assert gateway.max_batch_id() == 1 and restarted.state.rounds_trained == 1
    if where != "training":
        assert [r.pool_index for r in gateway.batch(1)] == saved.current.pool_indices  # the journaled batch
    assert len(gateway.batch(1)) == 6


def test_tick_does_nothing_once_stopping(world):
    daemon = make_daemon(world, stop_criteria=[])
    daemon.start()
    label_batch(world, 0)
    daemon.shutdown_requested.set()
    daemon.tick()
    assert daemon.state.rounds_trained == 0 and world["gateway"].max_batch_id() == 0


# ---- people's changes in Argilla and stuck batches ---------------------------------------------------------
def _answers(world, batch_id):
    return {r.pool_index: r.record_id for r in world["gateway"].batch(batch_id)}


def test_labels_edited_withdrawn_or_deleted_after_training_change_the_next_round(world, caplog):
    gateway = world["gateway"]
    daemon = make_daemon(world, stop_criteria=[])
    daemon.start()
    label_batch(world, 0)
    daemon.tick()
    first = dict(daemon.state.batches[0].labels)
    (a, b, c, d), ids = sorted(first)[:4], _answers(world, 0)
    wrong = next(label for label in LABELS if label != first[a])
    gateway.submit(ids[a], wrong)  # edited after round 0 trained on it
    gateway.discard(ids[b])  # withdrawn
    gateway.delete(ids[c])  # deleted
    label_batch(world, 1)
    gateway.discard(ids[b])  # (label_batch only touches batch 1)
    daemon.tick()
    state = daemon.state
    labels = state.training_labels()
    assert labels[a] == wrong and b not in labels and c not in labels and labels[d] == first[d]
    assert {b, c} <= state.discarded()
    assert [(ch.pool_index, ch.kind, ch.round) for ch in state.changes] == [
        (a, "relabelled", 1),
        (b, "withdrawn", 1),
        (c, "deleted", 1),
    ]
    assert state.rounds[-1].labels == len(labels) == 12 - 2
    assert "relabelled in Argilla" in caplog.text and daemon.status()["changes"]["by_kind"]["deleted"] == 1
    # a withdrawn label submitted again is restored; the journal survives a restart
    gateway.submit(ids[b], first[b])
    label_batch(world, 2)
    daemon.tick()
    assert daemon.state.training_labels()[b] == first[b] and daemon.state.changes[-1].kind == "restored"
    assert StateStore(world["dir"]).load().changes == daemon.state.changes


def _stuck_daemon(world, action):
    daemon = make_daemon(world, stop_criteria=[], stuck_after=60, stuck_action=action)
    daemon.start()
    label_batch(world, 0)
    daemon.tick()
    batch = daemon.state.current
    pending = sorted(batch.pool_indices)[:2]
    for record in world["gateway"].batch(1):
        if record.pool_index not in pending:
            world["gateway"].submit(record.record_id, world["gold"][record.text])
    return daemon, batch, pending


def _age(daemon, batch, seconds):
    from datetime import UTC, datetime, timedelta

    batch.logged_at = (datetime.now(UTC) - timedelta(seconds=seconds)).isoformat()


@pytest.mark.parametrize("action", ["wait", "proceed", "requeue"])
def test_a_stuck_batch_warns_then_waits_proceeds_or_requeues(world, caplog, action):
    daemon, batch, pending = _stuck_daemon(world, action)
    daemon.tick()  # not stuck yet
    assert daemon.state.rounds_trained == 1 and not daemon.status()["warnings"]
    _age(daemon, batch, 61)
    daemon.tick()
    assert "batch 1 is stuck: 2 of 6 records unanswered after 1 min" in caplog.text
    gateway = world["gateway"]
    if action == "wait":
        warnings = daemon.status()["warnings"]
        assert warnings and "batch 1 is stuck: 2 of 6 records unanswered" in warnings[0], warnings
        daemon.tick()
        assert daemon.state.rounds_trained == 1 and 2 not in {r.batch_id for r in gateway.records.values()}
        assert caplog.text.count("is stuck") == 1  # logged once, shown on status all along
        return
    assert daemon.state.rounds_trained == 2 and not daemon.status()["warnings"]  # closed early: the warning is done
    assert f"batch 1 closed early ({action}): 4 labels in hand, 2 record(s)" in caplog.text
    assert len(daemon.state.training_labels()) == 6 + 4
    nxt = daemon.state.current
    if action == "proceed":
        assert batch.open == pending and daemon.status()["open"] == 2
        assert len(nxt.pool_indices) == 6 and not set(pending) & set(nxt.pool_indices)
        # a late answer joins the next round: one label, one discard
        late = _answers(world, 1)
        gateway.submit(late[pending[0]], "tech")
        gateway.discard(late[pending[1]])
        label_batch(world, 2)
        daemon.tick()
        assert daemon.state.training_labels()[pending[0]] == "tech" and pending[1] in daemon.state.discarded()
        assert [c.kind for c in daemon.state.changes] == ["late-label", "late-discard"] and not batch.open
    else:
        assert batch.moved == pending and nxt.carried == pending
        assert nxt.pool_indices[:2] == pending and len(nxt.pool_indices) == 6
        moved = [gateway.records[f"pool-{i}"] for i in pending]
        assert all(r.batch_id == 2 and r.suggestion in LABELS for r in moved)  # re-logged into batch 2
        label_batch(world, 2)
        daemon.tick()
        labels = daemon.state.training_labels()
        assert set(pending) <= labels.keys() and len(labels) == 6 + 4 + 6
    indices = [r.pool_index for r in gateway.records.values()]
    assert len(indices) == len(set(indices))  # nothing asked twice


def test_an_untouched_batch_is_never_stuck(world):
    daemon = make_daemon(world, stop_criteria=[], stuck_after=60, stuck_action="proceed")
    daemon.start()
    _age(daemon, daemon.state.current, 3600)
    daemon.tick()
    assert daemon.state.rounds_trained == 0 and not daemon.status()["warnings"]
