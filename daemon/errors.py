"""The daemon's exceptions: one short hierarchy whose names say what went wrong."""


class DaemonError(Exception):
    """Base class: a problem the daemon explains in one clear message (no traceback shown)."""


class DataError(DaemonError):
    """The pool or test file cannot be used; the message names the file and rows."""


class SchemaError(DaemonError):
    """An existing Argilla dataset does not fit what the daemon needs."""


class ArgillaUnavailable(DaemonError):
    """Argilla could not be reached or answered with a server error (retryable)."""


class ArgillaRefused(DaemonError):
    """Argilla answered, but refused: wrong key, missing workspace, missing dataset (not retryable)."""


class StateError(DaemonError):
    """The state directory belongs to another run or cannot be read."""


class DatasetGone(ArgillaRefused):
    """The run's dataset is no longer in Argilla (deleted by a person)."""
