"""What the daemon is doing now (a leaf module: the loop sets it, the status document and /metrics read it)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class Phase(enum.StrEnum):
    starting = "starting"
    waiting = "waiting-for-annotators"
    training = "training"
    querying = "querying"
    logging = "logging"
    stopped = "stopped"
    degraded = "degraded"


@dataclass
class Snapshot:
    """What the status endpoint shows; replaced whole under a lock."""

    phase: Phase = Phase.starting
    reason: str | None = None
    progress: dict = field(default_factory=dict)
    last_error: str | None = None
    warning: str | None = None  # e.g. a stuck batch
    # what a retry after a failure is doing (phase, reason), shown once a whole poll succeeds again
    held: tuple[Phase, str | None] | None = None
