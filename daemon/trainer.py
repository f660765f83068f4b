"""Training off the poll thread (AL_TRAINING=ahead): one worker thread and at most one job waiting.

The daemon hands in a job (the labels of a round, snapshotted under its lock) and keeps polling; the worker trains
a fresh model and calls back. A job submitted while another is waiting replaces it: the newer one holds every
label of the older one, so training on both would only repeat work.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable

from daemon.answers import Encoded

log = logging.getLogger(__name__)


@dataclasses.dataclass
class Job:
    """One training round: everything it needs, copied out of the state when it was asked for."""

    round: int
    labels: dict[int, Encoded]  # pool index -> class index (multi-label: a tuple of them)
    ignored: set[int]  # pool items never to train on or query (discarded, open)
    used: set[int]  # pool items already in some batch: the batch prepared ahead skips them
    seconds: dict[str, float] = dataclasses.field(default_factory=dict)  # the poll thread's part of the round
    restore: bool = False  # rebuilding the model after a restart: the round's metrics may be journaled already


class BackgroundTrainer:
    """Runs ``work(job)`` on a worker thread, one job at a time; the newest waiting job wins."""

    def __init__(self, work: Callable[[Job], None]) -> None:
        self._work = work
        self._cv = threading.Condition()
        self._waiting: Job | None = None
        self._running: Job | None = None
        self._since: float | None = None
        self._thread: threading.Thread | None = None
        self.last_error: str | None = None
        self.replaced = 0  # jobs superseded before they started

    def submit(self, job: Job) -> None:
        with self._cv:
            if self._waiting is not None:
                self.replaced += 1
                log.info(
                    "round %d will train with round %d's labels too (one training at a time)",
                    job.round,
                    self._waiting.round,
                )
            self._waiting = job
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="al-trainer", daemon=True)
                self._thread.start()

    def drop_waiting(self) -> None:
        """Forget the job not yet started (the run is about to stop)."""
        with self._cv:
            self._waiting = None

    @property
    def busy(self) -> bool:
        with self._cv:
            return self._running is not None or self._waiting is not None

    def describe(self) -> dict | None:
        """What is training now, for /status."""
        with self._cv:
            if self._running is None and self._waiting is None:
                return None
            if self._running is None:  # submitted, the worker thread not yet at it
                return {"round": self._waiting.round, "labels": len(self._waiting.labels), "seconds": 0.0,
                        "waiting_round": None}  # fmt: skip
            return {
                "round": self._running.round,
                "labels": len(self._running.labels),
                "seconds": round(time.monotonic() - (self._since or time.monotonic()), 1),
                "waiting_round": None if self._waiting is None else self._waiting.round,
            }

    def wait(self, timeout: float | None = None) -> bool:
        """Block until no job is running or waiting; False on timeout."""
        with self._cv:
            return self._cv.wait_for(lambda: self._running is None and self._waiting is None, timeout)

    def _run(self) -> None:
        while True:
            with self._cv:
                job, self._waiting = self._waiting, None
                self._running, self._since = job, time.monotonic()
                if job is None:
                    self._thread = None
                    self._cv.notify_all()
                    return
            try:
                self._work(job)
                self.last_error = None
            except Exception as exc:  # noqa: BLE001 - the poll goes on with the model in hand; the next round retries
                log.exception("training round %d failed; the model in hand stays", job.round)
                self.last_error = f"training round {job.round} failed: {exc}"
            finally:
                with self._cv:
                    self._running = None
                    self._cv.notify_all()
