"""Push trigger: Argilla webhooks wake the polling job at once; polling stays the fallback.

Argilla (its worker) POSTs signed events (Standard Webhooks: ``webhook-id``, ``webhook-timestamp``,
``webhook-signature``, HMAC-SHA256 with the webhook's secret) to ``AL_WEBHOOK_URL``, which must reach this
daemon's ``/webhook`` route. A request whose signature does not verify is refused (401) and wakes nothing; an
event of another dataset is acknowledged and ignored. Events only say "look now": the daemon still reads the
batch from Argilla's database, so a forged, lost, late or repeated event can never change what is trained on.

The route needs no status token, so anyone who reaches it can POST to it: a body over :data:`MAX_WEBHOOK_BODY`
is refused (413) without being read past the cap (Argilla's events are a few kB), a signed body that does not
parse as JSON (e.g. nested too deeply) gets 400, and refusals are logged in full once, then at most once a
:data:`LOG_INTERVAL` as a one-line summary, so a flood of forged requests cannot fill the log. ``counts`` stay exact.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

log = logging.getLogger(__name__)

# a submit completes a record (record.completed); a discard leaves it pending (response.created); an SDK-logged
# response fires only record.updated; an edited answer is response.updated
EVENTS = ["record.completed", "record.updated", "response.created", "response.updated"]

MAX_WEBHOOK_BODY = 1_048_576  # bytes; Argilla's events are a few kB
LOG_INTERVAL = 60.0  # seconds between two log lines about refused requests (the first is logged at once)


@dataclass(frozen=True)
class TooLarge:
    """Passed to :meth:`WebhookReceiver.handle` instead of a body that exceeded the cap (and was not read past it):
    ``declared`` is the Content-Length that announced it, ``read`` the bytes seen when reading stopped."""

    declared: int | None = None
    read: int | None = None

    def __str__(self) -> str:
        how = f"Content-Length {self.declared:,}" if self.declared is not None else f"stopped reading at {self.read:,}"
        return f"body over {MAX_WEBHOOK_BODY:,} bytes ({how})"


def event_dataset_id(event: Mapping) -> str | None:
    """The dataset an event belongs to: record events carry ``data.dataset``, response events ``data.record``."""
    data = event.get("data") or {}
    record = data.get("record") if isinstance(data.get("record"), dict) else data
    dataset = record.get("dataset") if isinstance(record, dict) else None
    value = dataset.get("id") if isinstance(dataset, dict) else None
    return None if value is None else str(value)


class WebhookReceiver:
    """Verifies an event's signature and wakes the daemon when it concerns the run's dataset.

    ``counts``: ``accepted`` (woke the poll), ``ignored`` (another dataset's event), ``refused`` (signature does
    not verify, 401), ``too_large`` (413), ``bad_body`` (signed but not JSON, 400). ``clock`` (monotonic seconds)
    paces the log lines about refusals.
    """

    def __init__(
        self,
        secret: str,
        dataset_id: Callable[[], str | None],
        wake: Callable[[], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._verifier = Webhook(secret)
        self._dataset_id = dataset_id
        self._wake = wake
        self._clock = clock
        self._lock = threading.Lock()
        self.counts = {"accepted": 0, "ignored": 0, "refused": 0, "too_large": 0, "bad_body": 0}
        self._logged_at: float | None = None  # when the last line about refusals was logged
        self._unlogged = 0  # refusals since then, not logged yet
        self._last_reason = ""

    def handle(self, body: bytes | TooLarge, headers: Mapping[str, str]) -> tuple[int, dict]:
        """HTTP status and JSON answer for one delivery (``body`` is :class:`TooLarge` when the route gave up)."""
        if isinstance(body, TooLarge):
            return self._refuse("too_large", str(body), 413, f"body over {MAX_WEBHOOK_BODY} bytes")
        try:
            # the library would json.loads the body itself, letting RecursionError through: parse it below
            self._verifier.verify(body, dict(headers), json_parse=False)
        except (WebhookVerificationError, ValueError) as exc:  # ValueError: non-UTF-8 body, malformed signature
            return self._refuse("refused", f"{type(exc).__name__}: {exc}", 401, "signature does not verify")
        try:
            event = json.loads(body)
        except (ValueError, RecursionError) as exc:  # signed, but not JSON (or nested too deeply to parse)
            return self._refuse("bad_body", f"signed body is not JSON: {type(exc).__name__}", 400, "body is not JSON")
        if not isinstance(event, dict) or event_dataset_id(event) != self._dataset_id():
            self._count("ignored")
            return 200, {"woke": False}
        self._count("accepted")
        log.debug("webhook %s: waking the poll", event.get("type"))
        self._wake()
        return 202, {"woke": True}

    def flush_log(self) -> None:
        """Log the summary of refusals not logged yet, if the last line is at least ``LOG_INTERVAL`` old (each
        delivery does this; a caller may too, e.g. on a timer, so a flood's tail is not left out of the log)."""
        with self._lock:
            now = self._clock()
            if self._unlogged and now - self._logged_at >= LOG_INTERVAL:
                self._summary(now)

    def _refuse(self, kind: str, reason: str, status: int, detail: str) -> tuple[int, dict]:
        reason = reason[:300]
        with self._lock:
            self.counts[kind] += 1
            now = self._clock()
            if self._logged_at is not None and now - self._logged_at < LOG_INTERVAL:
                self._unlogged += 1  # logged later in a summary line
                self._last_reason = reason
            elif self._unlogged:  # a flood goes on: one line for all since the last one, this one included
                self._unlogged += 1
                self._last_reason = reason
                self._summary(now)
            else:
                log.warning("webhook refused (%d): %s", status, reason)
                self._logged_at = now
        return status, {"detail": detail}

    def _count(self, kind: str) -> None:
        self.flush_log()
        with self._lock:
            self.counts[kind] += 1

    def _summary(self, now: float) -> None:
        """One line for the refusals not logged yet (call with the lock held)."""
        log.warning(
            "webhook: %s more requests refused in the last %.0f s (last: %s)",
            f"{self._unlogged:,}",
            now - self._logged_at,
            self._last_reason,
        )
        self._logged_at = now
        self._unlogged = 0
