"""One atomic write for every file the daemon writes: whole or not at all, under a real file-size limit too."""

from __future__ import annotations

import errno
import multiprocessing
import os
import resource
import stat

import numpy as np
import pytest

from daemon.errors import DiskError
from daemon.files import atomic_dir, atomic_write, check_writable, remove_leftovers
from daemon.state import RunState, StateStore


def in_child_with_file_limit(limit: int, work, *args) -> tuple[str, int | None]:
    """Run ``work(*args)`` in a forked child whose file-size limit is ``limit`` bytes (RLIMIT_FSIZE: the kernel
    refuses to grow any regular file past it, EFBIG, as a full disk refuses with ENOSPC). The child's outcome."""

    def child(queue) -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
        try:
            work(*args)
            queue.put(("ok", None))
        except DiskError as exc:
            queue.put((str(exc), exc.errno))
        except BaseException as exc:  # noqa: BLE001 - reported to the parent
            queue.put((f"unexpected {type(exc).__name__}: {exc}", None))

    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    process = context.Process(target=child, args=(queue,))
    process.start()
    process.join(60)
    return queue.get(timeout=5)


def temporaries(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".tmp-" in p.name)


def test_a_write_past_the_limit_never_replaces_the_good_file(tmp_path):
    target = tmp_path / "state.json"
    target.write_bytes(b"good journal")
    message, code = in_child_with_file_limit(4096, atomic_write, target, b"x" * 50_000, 0o600, "state")
    assert code == errno.EFBIG and message.startswith(f"cannot write state ({target}): [Errno 27]"), message
    assert target.read_bytes() == b"good journal"
    assert temporaries(tmp_path) == []  # the partial temporary file is removed


def test_a_streamed_write_past_the_limit_leaves_nothing(tmp_path):
    target = tmp_path / "predictions-3.npy"
    big = np.zeros(100_000, dtype=np.int64)
    message, code = in_child_with_file_limit(1024, atomic_write, target, lambda f: np.save(f, big))
    assert code == errno.EFBIG, message
    assert not target.exists() and temporaries(tmp_path) == []


def test_the_state_store_keeps_the_last_good_journal(tmp_path):
    store = StateStore(tmp_path)
    state = RunState(dataset="d", workspace="w", pool_fingerprint="f", labels=["a", "b"], batch_size=2)
    store.save(state)
    good = store.path.read_bytes()
    state.former_names = ["x" * 100] * 1000  # the journal grows past the limit

    def save() -> None:
        store.save(state)

    message, code = in_child_with_file_limit(len(good) + 100, save)
    assert code == errno.EFBIG and "cannot write state" in message, message
    assert store.path.read_bytes() == good and StateStore(tmp_path).load() == RunState.model_validate_json(good)


def test_unsaved_until_a_save_succeeds(tmp_path):
    store = StateStore(tmp_path / "state")
    state = RunState(dataset="d", workspace="w", pool_fingerprint="f", labels=["a", "b"], batch_size=2)
    (tmp_path / "state").write_text("a file where the folder should be")
    with pytest.raises(DiskError):
        store.save(state)
    assert store.unsaved
    (tmp_path / "state").unlink()
    store.save(state)
    assert not store.unsaved and store.load() == state


def test_files_are_private_and_whole(tmp_path):
    target = atomic_write(tmp_path / "deep" / "plot.png", b"\x89PNG...")
    assert target.read_bytes() == b"\x89PNG..."
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "deep").stat().st_mode) == 0o700


def test_a_folder_is_swapped_in_whole_with_private_modes(tmp_path):
    target = tmp_path / "export"
    with atomic_dir(target) as work:
        (work / "report.json").write_text("{}")
        (work / "model").mkdir()
        (work / "model" / "model.joblib").write_bytes(b"m")
    assert (target / "model" / "model.joblib").read_bytes() == b"m"
    assert stat.S_IMODE(target.stat().st_mode) == 0o700
    assert stat.S_IMODE((target / "model").stat().st_mode) == 0o700
    assert stat.S_IMODE((target / "report.json").stat().st_mode) == 0o600
    assert stat.S_IMODE((target / "model" / "model.joblib").stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]


def test_a_failed_folder_keeps_the_old_one_and_removes_the_half_built(tmp_path):
    target = tmp_path / "export"
    with atomic_dir(target) as work:
        (work / "report.json").write_text("old")

    def fill(work) -> None:
        (work / "labelled.parquet").write_bytes(b"y" * 10_000)

    def export() -> None:
        with atomic_dir(target, what="the export") as work:
            fill(work)

    message, code = in_child_with_file_limit(1024, export)
    assert code == errno.EFBIG and message.startswith(f"cannot write the export ({target})"), message
    assert (target / "report.json").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]


def test_leftovers_of_interrupted_writes_are_removed(tmp_path):
    (tmp_path / ".state.json.tmp-abc").write_text("half")
    (tmp_path / ".learning-curve.png.tmp-xyz").write_text("half")
    (tmp_path / ".export.tmp-1234").mkdir()
    (tmp_path / ".export.tmp-1234" / "labelled.parquet").write_text("half")
    (tmp_path / ".export.old-99").mkdir()
    (tmp_path / "state.json").write_text("{}")
    (tmp_path / ".state.json.abc123").write_text("0.1's temporary name")  # al-daemon 0.1 named them so
    (tmp_path / ".learning-curve.png.k2j3").write_text("0.1's temporary name")
    StateStore(tmp_path).remove_partial_writes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]


def test_leftovers_of_one_target_only(tmp_path):
    (tmp_path / ".export.tmp-1").mkdir()
    (tmp_path / ".other.tmp-1").write_text("someone else's")
    removed = remove_leftovers(tmp_path, "export")
    assert [p.name for p in removed] == [".export.tmp-1"]
    assert (tmp_path / ".other.tmp-1").exists()


def test_check_writable(tmp_path):
    check_writable(tmp_path / "new" / "state", "the state folder (AL_STATE_DIR)")
    assert (tmp_path / "new" / "state").is_dir()
    (tmp_path / "file").write_text("x")
    with pytest.raises(DiskError, match=r"the state folder \(AL_STATE_DIR\) .*/file/state: .*/file is a file") as found:
        check_writable(tmp_path / "file" / "state", "the state folder (AL_STATE_DIR)")
    assert not found.value.temporary


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop to another user")
def test_check_writable_as_a_user_without_permission(tmp_path):
    """A folder owned by root, mode 0755: another user may not write there (root may write anywhere)."""
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o755)
    os.chmod(tmp_path, 0o755)

    def as_nobody() -> None:
        os.setgid(65534)
        os.setuid(65534)
        check_writable(locked / "state", "the state folder (AL_STATE_DIR)")

    message, code = in_child_with_file_limit(resource.RLIM_INFINITY, as_nobody)
    assert code == errno.EACCES and "the state folder (AL_STATE_DIR)" in message and "Permission denied" in message
