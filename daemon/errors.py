"""The daemon's exceptions: one short hierarchy whose names say what went wrong."""

import errno

EXIT_TEMPORARY = 75  # EX_TEMPFAIL: a restart later may work (Argilla unreachable, a full disk); 2: a person must act


class DaemonError(Exception):
    """Base class: a problem the daemon explains in one clear message (no traceback shown)."""


class DataError(DaemonError):
    """The pool or test file cannot be used; the message names the file and rows."""


class ArgillaError(DaemonError):
    """Anything Argilla made go wrong: catch this one name where any of the four kinds below is handled alike."""


class SchemaError(ArgillaError):
    """An existing Argilla dataset does not fit what the daemon needs."""


class ArgillaUnavailable(ArgillaError):
    """Argilla could not be reached or answered with a server error (retryable)."""


class ArgillaRefused(ArgillaError):
    """Argilla answered, but refused: wrong key, missing workspace, missing dataset (not retryable)."""


class StackError(DaemonError):
    """The local Argilla stack (``al-daemon stack``) could not be installed, started or stopped."""


class SimulationError(DaemonError):
    """The simulated annotators cannot run: no recorded answers for the pool's texts, a bad option."""


class StateError(DaemonError):
    """The state directory belongs to another run or cannot be read."""


class DiskError(DaemonError):
    """A file or folder of the run could not be written. A full disk, a quota or a file-size limit may pass by
    itself (``temporary``: the daemon retries); no permission or a read-only mount needs a person."""

    TEMPORARY = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})

    def __init__(self, message: str, errno_: int | None = None) -> None:
        super().__init__(message)
        self.errno = errno_

    @property
    def temporary(self) -> bool:
        return self.errno in self.TEMPORARY


class DatasetGone(ArgillaRefused):
    """The run's dataset is no longer in Argilla (deleted by a person)."""
