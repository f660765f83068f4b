"""The status board: what the daemon is doing now, published as one finished document (``/status``, the status
page, ``/metrics`` and the systemd STATUS line read it; the document's shape is :mod:`daemon.report`'s).

The daemon's thread writes (:meth:`StatusBoard.set_phase`, :meth:`StatusBoard.publish`); the status server's
threads only ever read the last document published, so they never see one half-built.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from daemon.engine import engine_for
from daemon.errors import ArgillaError
from daemon.features import features_view
from daemon.phases import Phase, Snapshot
from daemon.report import Live, annotation_view, status_view

if TYPE_CHECKING:
    from daemon.loop import Daemon


class StatusBoard:
    """The phase, its reason, the batch's answer counts and warnings of one daemon, and the document built from
    them and the journal."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.snapshot = Snapshot()
        self.user_names: dict[str, str] = {}  # Argilla user id -> username, refreshed after each round
        self._annotation: tuple | None = None  # (journal revision, the status's annotation section)
        self._published: dict | None = None
        self._saves_at_failure = 0  # the journal's save count when the last failure was shown

    def set_phase(self, phase: Phase, reason: str | None = None, progress: dict | None = None) -> None:
        """The daemon's phase. After a failure (:meth:`failed`) the status stays ``degraded`` through the retries,
        so it does not flicker between degraded and training while the disk stays full or Argilla stays down: what
        a retry is doing is held back until the retry gets somewhere, i.e. the journal is written again or a whole
        poll succeeds (:meth:`recovered`)."""
        snapshot = self.snapshot
        if progress is not None:
            snapshot.progress = progress
        if snapshot.last_error is not None and self.daemon.store.saves > self._saves_at_failure:
            self._clear()  # the journal moved on since the failure: the retry got past it
        if snapshot.last_error is not None and phase is not Phase.degraded:
            snapshot.held = (phase, reason)
        else:
            snapshot.phase, snapshot.reason = phase, reason
        self.publish()

    def failed(self, reason: str) -> None:
        """A poll failed (Argilla, the disk): degraded with the reason until a retry gets past it."""
        snapshot = self.snapshot
        if snapshot.last_error is None:
            snapshot.held = (snapshot.phase, snapshot.reason)
        snapshot.last_error = reason
        self._saves_at_failure = self.daemon.store.saves
        self.set_phase(Phase.degraded, reason=reason)

    def recovered(self) -> None:
        """A whole poll succeeded: show what the daemon is doing again (if a failure was being shown)."""
        if self.snapshot.last_error is not None:
            phase, reason = self._clear()
            self.set_phase(phase, reason)

    def _clear(self) -> tuple[Phase, str | None]:
        snapshot = self.snapshot
        held = snapshot.held or (Phase.waiting, None)
        snapshot.last_error, snapshot.held = None, None
        return held

    def set_user_names(self, names: dict[str, str]) -> None:
        self.user_names = names
        self._annotation = None  # shown by name from now on

    def publish(self) -> dict:
        """Rebuild the status document on the daemon's thread; readers only ever see a finished one."""
        daemon, snapshot = self.daemon, self.snapshot
        live = Live(
            phase=snapshot.phase.value,
            reason=snapshot.reason,
            last_error=snapshot.last_error,
            progress=snapshot.progress,
            model=daemon.learner.name,
            pool_size=daemon.pool.queryable,  # the pool's own texts (a warm start's training-only rows aside)
            export=daemon.export,
            warnings=tuple(w for w in (snapshot.warning,) if w),
            annotation=self._annotation_view(),
            training_mode=daemon.rounds.mode,
        )
        self._published = status_view(daemon.settings, daemon.state, live, daemon.signals.thresholds())
        return self._published

    def _annotation_view(self) -> dict:
        """The status's annotation section, recomputed only when the journal is saved or the user names are
        refreshed: it walks every vote (~40 ms at 10,000 labelled texts), too much for every poll."""
        daemon = self.daemon
        key = (daemon.store.saves, daemon.state is None)
        if self._annotation is None or self._annotation[0] != key:
            self._annotation = (key, annotation_view(daemon.settings, daemon.state, self.user_names))
        return self._annotation[1]

    def status(self) -> dict:
        """The latest status document (JSON-safe); the Argilla error counts and the training are read live."""
        daemon = self.daemon
        published = self._published or self.publish()
        return published | {
            "training": published["training"] | {"background": daemon.rounds.describe()},
            "features": daemon.builder.view()
            if daemon.builder is not None
            else features_view("ready" if daemon.learner.ready else "building"),  # not started yet: building
            "engine": engine_for(daemon.settings).view(),  # local, or the Ray cluster and its fallbacks
            "warnings": published["warnings"]
            + [w for w in (daemon.rounds.last_error, daemon.ladder and daemon.ladder.trainer.last_error) if w],
            "argilla_errors": dict(daemon.gateway.errors),
            # unix time of the last successful exchange with Argilla (monotonic inside, wall clock here)
            "argilla_last_contact": None
            if daemon.last_contact is None
            else round(time.time() - (time.monotonic() - daemon.last_contact), 3),
            "run_by": daemon.run_by,
            "ladder": None
            if published["ladder"] is None
            else published["ladder"] | {"running": daemon.ladder.trainer.describe() if daemon.ladder else None},
        }

    def ready(self) -> tuple[bool, str]:
        """Ready = state loaded, not degraded, and Argilla answered recently (pinged when it has been a while)."""
        daemon = self.daemon
        if daemon.state is None:
            return False, "state not loaded yet"
        snapshot = self.snapshot
        if snapshot.phase is Phase.degraded:
            return False, f"degraded: {snapshot.reason}"
        horizon = max(30.0, 3 * daemon.settings.poll_interval)
        if daemon.last_contact is None or time.monotonic() - daemon.last_contact > horizon:
            try:
                daemon.gateway.ping()
            except ArgillaError as exc:
                return False, f"Argilla not answering: {exc}"
            daemon.last_contact = time.monotonic()
        return True, snapshot.phase.value
