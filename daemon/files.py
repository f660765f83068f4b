"""Every file and folder the daemon writes goes through here: written whole, or not at all.

A file is written to a temporary sibling (``.<name>.tmp-<random>``), every byte checked, fsynced, given its
mode, and renamed over the target; the folder is fsynced so the rename survives a power cut. Any failure — a
full disk, a quota, a file-size limit, a read-only mount — removes the temporary file and raises
:class:`~daemon.errors.DiskError` with the OS's reason; the old file stays as it was. A folder (the export) is
built in a temporary sibling and swapped in whole the same way. Temporary names share one pattern, so what a
crash leaves behind is found and removed at the next start (:func:`remove_leftovers`).
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from daemon.errors import DiskError

FILE_MODE = 0o600
DIR_MODE = 0o700
TMP_MARK = ".tmp-"  # every temporary name is ".<target name>.tmp-<suffix>"
OLD_MARK = ".old-"  # a folder being replaced: ".<target name>.old-<pid>"


def make_private_dir(path: Path) -> None:
    """Create ``path`` (and parents) readable by its owner only (0700); an existing one is left as it is."""
    path = Path(path)
    if not path.exists():
        try:
            path.mkdir(parents=True, exist_ok=True)
            os.chmod(path, DIR_MODE)
        except OSError as exc:
            raise disk_error(f"cannot create {path}", exc) from None


def atomic_write(
    path: Path, data: bytes | Callable[[_Writer], None], mode: int = FILE_MODE, what: str | None = None
) -> Path:
    """Write ``data`` (bytes, or a function writing to a binary file) to ``path`` atomically.

    The target is replaced only once every byte is on disk; on any failure the temporary file is removed and
    DiskError raised (``cannot write <what> (<path>): <reason>``), the target untouched."""
    path = Path(path)
    label = f"cannot write {what} ({path})" if what else f"cannot write {path}"
    make_private_dir(path.parent)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}{TMP_MARK}")
    except OSError as exc:
        raise disk_error(label, exc) from None
    try:
        try:
            os.fchmod(fd, mode)
            writer = _Writer(fd)
            if callable(data):
                data(writer)
            else:
                writer.write(data)
            os.fsync(fd)
            written = os.fstat(fd).st_size
        finally:
            os.close(fd)
        if written != writer.count:  # belt and braces: a short file never replaces a good one
            raise OSError(errno.EIO, f"wrote {written} of {writer.count} bytes")
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise disk_error(label, exc) from None
        raise
    fsync_dir(path.parent)
    return path


class _Writer:
    """A binary file the writer functions (``np.save``) write to, whose ``write`` writes every byte or raises the
    OS's error: ``os.write`` may write fewer bytes than asked (a file-size limit, a signal), so it goes on until
    all are written, and the next call then fails with the reason (EFBIG, ENOSPC) instead of leaving a short
    file. (Given a real file object, numpy writes through C stdio and reports a short write without errno.)"""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.count = 0

    def write(self, data) -> int:
        view = memoryview(data).cast("B")
        size = len(view)
        while view:
            done = os.write(self.fd, view)
            if done <= 0:
                raise OSError(errno.EIO, "write returned 0 bytes")
            view = view[done:]
        self.count += size
        return size

    def flush(self) -> None:
        return None


@contextlib.contextmanager
def atomic_dir(
    target: Path, mode: int = DIR_MODE, file_mode: int = FILE_MODE, what: str | None = None
) -> Iterator[Path]:
    """Build a folder in a temporary sibling (yielded) and swap it in whole when the block ends.

    Every file in it gets ``file_mode`` and every folder ``mode``, and each file is fsynced before the swap. On
    any failure the temporary folder is removed and the old target stays; OSError becomes DiskError."""
    target = Path(target)
    label = f"cannot write {what} ({target})" if what else f"cannot write {target}"
    make_private_dir(target.parent)
    work = target.parent / f".{target.name}{TMP_MARK}{os.getpid()}"
    try:
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(mode=mode)
        os.chmod(work, mode)
        yield work
        _seal(work, mode, file_mode)
        old = target.parent / f".{target.name}{OLD_MARK}{os.getpid()}"
        if target.exists():
            os.replace(target, old)
        os.replace(work, target)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException as exc:
        shutil.rmtree(work, ignore_errors=True)
        if isinstance(exc, OSError):
            raise disk_error(label, exc) from None
        raise
    fsync_dir(target.parent)


def _seal(folder: Path, mode: int, file_mode: int) -> None:
    """Owner-only modes and every byte on disk, before the folder is swapped in."""
    for root, dirs, names in os.walk(folder):
        for name in dirs:
            os.chmod(Path(root) / name, mode)
        for name in names:
            path = Path(root) / name
            os.chmod(path, file_mode)
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


def fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (best effort: some filesystems refuse to fsync a directory)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def remove_leftovers(folder: Path, name: str | None = None) -> list[Path]:
    """Remove what interrupted writes left in ``folder`` (temporary files and half-built or half-replaced
    folders), for every target or only ``name``. Only the state dir's lock holder may call this: another
    process's write in flight looks the same."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    prefix = f".{name}" if name else "."
    for path in folder.iterdir():
        if not path.name.startswith(prefix) or (TMP_MARK not in path.name and OLD_MARK not in path.name):
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed.append(path)
    return removed


def check_writable(folder: Path, what: str) -> None:
    """Refuse a folder the daemon cannot create or write in, before anything else happens: a file in its place,
    no permission, a read-only mount (DiskError, not temporary), or a full disk (DiskError, temporary)."""
    folder = Path(folder)
    try:
        for parent in (folder, *folder.parents):
            if parent.exists():
                if not parent.is_dir():
                    raise DiskError(f"{what} {folder}: {parent} is a file, not a folder", errno.ENOTDIR)
                break
        if not folder.exists():
            folder.mkdir(parents=True)
            os.chmod(folder, DIR_MODE)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=f".probe{TMP_MARK}")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise disk_error(f"{what} {folder} is not writable", exc) from None


def disk_error(message: str, exc: OSError) -> DiskError:
    """``<message>: [Errno 28] No space left on device`` (the OS's reason without the file name said already)."""
    reason = f"[Errno {exc.errno}] {exc.strerror}" if exc.errno is not None and exc.strerror else str(exc)
    return DiskError(f"{message}: {reason}", exc.errno)
