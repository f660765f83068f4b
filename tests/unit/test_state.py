import os
import stat

import numpy as np
import pytest

from daemon.errors import StateError
from daemon.state import Batch, RoundMetrics, RunState, StateStore


def make_state() -> RunState:
    return RunState(dataset="d", workspace="w", pool_fingerprint="f", labels=["A", "B"], batch_size=2)


def test_round_trip_and_private_permissions(tmp_path):
    store = StateStore(tmp_path)
    state = make_state()
    state.batches.append(Batch(batch_id=0, round=0, pool_indices=[3, 4], record_ids=["pool-3", "pool-4"]))
    state.rounds.append(RoundMetrics(round=0, labels=2, accuracy=0.5, kappa=None))
    store.save(state)
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    loaded = store.load()
    assert loaded == state
    assert loaded.current.pool_indices == [3, 4]


def test_missing_state_is_none(tmp_path):
    assert StateStore(tmp_path).load() is None


def test_corrupt_state_is_a_clear_error(tmp_path):
    (tmp_path / "state.json").write_text("{not json")
    with pytest.raises(StateError, match="unreadable state"):
        StateStore(tmp_path).load()


def test_training_labels_only_from_complete_batches():
    state = make_state()
    state.batches = [
        Batch(batch_id=0, round=0, pool_indices=[1, 2], record_ids=[], complete=True, labels={1: "A"}, discarded=[2]),
        Batch(batch_id=1, round=1, pool_indices=[3], record_ids=[], labels={3: "B"}),
    ]
    assert state.training_labels() == {1: "A"}
    assert state.discarded() == {2}
    assert state.used_indices() == {1, 2, 3}


def test_predictions_keep_only_recent_rounds(tmp_path):
    store = StateStore(tmp_path)
    for round_number in range(4):
        store.save_predictions(round_number, np.array([round_number]))
    assert store.load_predictions(3)[0] == 3
    assert store.load_predictions(2)[0] == 2
    assert store.load_predictions(0) is None


def test_lock_refuses_a_second_process_and_names_the_holder(tmp_path):
    import subprocess
    import sys

    from daemon.state import acquire_lock

    handle, holder = acquire_lock(tmp_path)
    assert holder.startswith(f"pid {os.getpid()} on ")  # (reading the file here would drop a POSIX lock)
    other = subprocess.run(
        [sys.executable, "-c", f"from daemon.state import acquire_lock; acquire_lock({str(tmp_path)!r})"],
        capture_output=True,
        text=True,
    )
    assert other.returncode != 0 and "another al-daemon is already running" in other.stderr and holder in other.stderr
    handle.close()  # the holder exits: the next one gets it
    again = subprocess.run(
        [sys.executable, "-c", f"from daemon.state import acquire_lock; print(acquire_lock({str(tmp_path)!r})[1])"],
        capture_output=True,
        text=True,
    )
    assert again.returncode == 0 and again.stdout.startswith("pid ")


def test_partial_writes_are_removed_only_when_asked(tmp_path):
    store = StateStore(tmp_path)
    store.save(RunState(dataset="d", workspace="w", pool_fingerprint="f", labels=["a", "b"], batch_size=2))
    leftover = tmp_path / ".state.json.abc123"
    leftover.write_text('{"half": ')
    assert store.load().dataset == "d" and leftover.exists()  # a reader (al-daemon export) leaves it alone
    store.remove_partial_writes()  # the lock holder at start-up
    assert not leftover.exists() and store.load().dataset == "d"
