"""Push trigger: Argilla webhooks wake the polling job at once; polling stays the fallback.

Argilla (its worker) POSTs signed events (Standard Webhooks: ``webhook-id``, ``webhook-timestamp``,
``webhook-signature``, HMAC-SHA256 with the webhook's secret) to ``AL_WEBHOOK_URL``, which must reach this
daemon's ``/webhook`` route. A request whose signature does not verify is refused (401) and wakes nothing; an
event of another dataset is acknowledged and ignored. Events only say "look now": the daemon still reads the
batch from Argilla's database, so a forged, lost, late or repeated event can never change what is trained on.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

log = logging.getLogger(__name__)

# a submit completes a record (record.completed); a discard leaves it pending (response.created); an SDK-logged
# response fires only record.updated; an edited answer is response.updated
EVENTS = ["record.completed", "record.updated", "response.created", "response.updated"]


def event_dataset_id(event: Mapping) -> str | None:
    """The dataset an event belongs to: record events carry ``data.dataset``, response events ``data.record``."""
    data = event.get("data") or {}
    record = data.get("record") if isinstance(data.get("record"), dict) else data
    dataset = record.get("dataset") if isinstance(record, dict) else None
    value = dataset.get("id") if isinstance(dataset, dict) else None
    return None if value is None else str(value)


class WebhookReceiver:
    """Verifies an event's signature and wakes the daemon when it concerns the run's dataset."""

    def __init__(self, secret: str, dataset_id: Callable[[], str | None], wake: Callable[[], None]) -> None:
        self._verifier = Webhook(secret)
        self._dataset_id = dataset_id
        self._wake = wake
        self._lock = threading.Lock()
        self.counts = {"accepted": 0, "ignored": 0, "refused": 0}

    def handle(self, body: bytes, headers: Mapping[str, str]) -> tuple[int, dict]:
        """HTTP status and JSON answer for one delivery."""
        try:
            event = self._verifier.verify(body, dict(headers))
        except (WebhookVerificationError, ValueError, json.JSONDecodeError) as exc:
            self._count("refused")
            log.warning("webhook refused: %s", exc)
            return 401, {"detail": "signature does not verify"}
        if not isinstance(event, dict) or event_dataset_id(event) != self._dataset_id():
            self._count("ignored")
            return 200, {"woke": False}
        self._count("accepted")
        log.debug("webhook %s: waking the poll", event.get("type"))
        self._wake()
        return 202, {"woke": True}

    def _count(self, kind: str) -> None:
        with self._lock:
            self.counts[kind] += 1
