"""The model's features, built off the start-up path.

Batch 0 is random and needs no model, so the daemon logs it first and builds the features (embedding the pool,
the slow part: minutes at 100k texts on two cores) on a background thread meanwhile. Until they exist the daemon
holds a :class:`~daemon.learner.PendingLearner`: a batch completed meanwhile is followed by a random one (the
status says so) and no round trains; then the real learner is swapped in and the next round trains on every label.
The embedding is resumable (:func:`daemon.pool.embed` writes it in parts), so a restart continues where it
stopped. A failed build is retried with backoff; the reason is on the status page meanwhile.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the learner imports small-text and torch (~9 s): app.py imports this module before they load
    from daemon.learner import Learner

log = logging.getLogger(__name__)

Report = Callable[[str, int, int], None]  # (what is being embedded: "pool" or "test", texts done, texts in all)


class FeatureBuilder:
    """Runs ``build(report)`` (the features and a learner over them) on its own thread until it succeeds, then hands
    the learner to ``adopt``; :meth:`view` is the status's ``features`` section (what is embedded, how fast, how
    long is left)."""

    RETRY_AFTER = (10.0, 30.0, 60.0, 300.0)  # seconds before the next attempt after a failure

    def __init__(self, build: Callable[[Report], Learner], adopt: Callable[[Learner], Any]) -> None:
        self._build = build
        self._adopt = adopt
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._stop = threading.Event()
        self.state = "building"
        self.error: str | None = None
        self.failures = 0
        self._stage: str | None = None
        self._progress = (0, 0)  # texts done, texts in all (of the current stage)
        self._since: tuple[float, int] | None = None  # (monotonic time, texts done) when this stage started here
        self._held: dict[int, float] = {}  # complete batch id -> when its round began waiting for the features
        self._thread = threading.Thread(target=self._run, name="features", daemon=True)

    def start(self) -> None:
        self._thread.start()

    @property
    def busy(self) -> bool:
        return self._thread.is_alive() and not self._done.is_set()

    def stop(self) -> None:
        """No retry after this (the thread cannot be interrupted mid-embedding; the process exits under it)."""
        self._stop.set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._done.wait(timeout)

    def hold(self, batch_id: int, limit: float) -> str | None:
        """Whether the round of complete batch ``batch_id`` should wait for the features (the reason, for the
        status) or go on without them: it waits up to ``limit`` seconds (AL_FEATURES_WAIT) from the first time it
        asked. Loading a cache and fitting n-grams takes seconds, and a restart finds a batch complete at once; an
        embedding of a big pool takes longer, and annotators should not wait on it: then the next batch is random."""
        waited = time.monotonic() - self._held.setdefault(batch_id, time.monotonic())
        if waited >= limit or self._done.is_set():
            return None
        view = self.view()
        done = f" ({view['done']}/{view['total']} texts embedded)" if view.get("total") else ""
        return (
            f"batch {batch_id} is complete: waiting up to {limit:.0f} s for the model's features{done}, then the "
            "next batch is drawn at random"
        )

    def remaining(self, batch_id: int, limit: float) -> float:
        """Seconds until the hold of batch ``batch_id``'s round ends (see :meth:`hold`)."""
        return max(0.0, limit - (time.monotonic() - self._held.get(batch_id, time.monotonic())))

    def report(self, stage: str, done: int, total: int) -> None:
        with self._lock:
            if stage != self._stage or self._since is None or done < self._since[1]:
                self._stage, self._since = stage, (time.monotonic(), done)
            self._progress = (done, total)

    def view(self) -> dict:
        """``{"state": "building" | "ready" | "failed", "stage", "done", "total", "rate", "eta_seconds", ...}``."""
        with self._lock:
            done, total = self._progress
            rate = eta = None
            if self._since is not None and done > self._since[1]:
                rate = (done - self._since[1]) / max(time.monotonic() - self._since[0], 1e-9)
                eta = (total - done) / rate if rate > 0 else None
            return features_view(self.state, self._stage, done, total, rate, eta, self.error, self.failures)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._adopt(self._build(self.report))
            except Exception as exc:  # noqa: BLE001 - the run goes on at random; say why and try again later
                self.failures += 1
                delay = self.RETRY_AFTER[min(self.failures, len(self.RETRY_AFTER)) - 1]
                with self._lock:
                    self.state, self.error = "failed", f"{type(exc).__name__}: {exc}"
                log.error("building the model's features failed (%s); again in %.0f s", self.error, delay)
                if self._stop.wait(delay):
                    return
                with self._lock:
                    self.state = "building"
                continue
            with self._lock:
                self.state, self.error = "ready", None
            self._done.set()
            return


def features_view(
    state: str = "ready",
    stage: str | None = None,
    done: int | None = None,
    total: int | None = None,
    rate: float | None = None,
    eta: float | None = None,
    error: str | None = None,
    failures: int = 0,
) -> dict:
    """The status's ``features`` section; without arguments, features built before the run started (tests,
    ``AL_COLD_START=kmeans``)."""
    return {
        "state": state,
        "stage": stage,
        "done": done,
        "total": total,
        "rate": None if rate is None else round(rate, 1),
        "eta_seconds": None if eta is None else round(eta, 1),
        "error": error,
        "failures": failures,
    }
