"""Webhook deliveries: Standard Webhooks signatures checked, events of other datasets ignored, the route open to
Argilla without the status token but never without a valid signature."""

import base64
import json
import time
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from standardwebhooks.webhooks import Webhook

from daemon.status import create_app
from daemon.webhooks import WebhookReceiver, event_dataset_id

SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
DATASET = "3f2c0d4e-0000-4000-8000-000000000001"
TOKEN = "a-status-token-of-20-chars"


def record_event(dataset_id: str = DATASET, kind: str = "record.completed") -> dict:
    return {"type": kind, "version": 1, "timestamp": "2026-11-30T00:00:00", "data": {"dataset": {"id": dataset_id}}}


def response_event(dataset_id: str = DATASET) -> dict:
    record = {"id": "r1", "dataset": {"id": dataset_id}}
    return {"type": "response.created", "version": 1, "data": {"status": "discarded", "record": record}}


def signed(event: dict, secret: str = SECRET, at: datetime | None = None) -> tuple[bytes, dict]:
    body = json.dumps(event)
    at = at or datetime.now(UTC)
    signature = Webhook(secret).sign("msg_1", at, body)
    headers = {"webhook-id": "msg_1", "webhook-timestamp": str(int(at.timestamp())), "webhook-signature": signature}
    return body.encode(), headers


@pytest.fixture
def receiver():
    woken = []
    return WebhookReceiver(SECRET, lambda: DATASET, lambda: woken.append(time.monotonic())), woken


def test_event_dataset_id_of_record_and_response_events():
    assert event_dataset_id(record_event()) == DATASET
    assert event_dataset_id(response_event()) == DATASET
    assert event_dataset_id({"type": "x", "data": {}}) is None


@pytest.mark.parametrize("event", [record_event(), record_event(kind="record.updated"), response_event()])
def test_a_signed_event_of_the_run_wakes_the_poll(receiver, event):
    hook, woken = receiver
    assert hook.handle(*signed(event)) == (202, {"woke": True})
    assert len(woken) == 1 and hook.counts == {"accepted": 1, "ignored": 0, "refused": 0}


def test_another_datasets_event_is_acknowledged_and_ignored(receiver):
    hook, woken = receiver
    assert hook.handle(*signed(record_event("another-dataset"))) == (200, {"woke": False})
    assert woken == [] and hook.counts["ignored"] == 1


def test_bad_signatures_are_refused_and_wake_nothing(receiver):
    hook, woken = receiver
    other_secret = "whsec_" + base64.b64encode(b"not the secret, not the secret!!").decode()
    body, headers = signed(record_event())
    tampered = body.replace(DATASET.encode(), b"another-dataset-id-of-the-same-len--")
    cases = [
        signed(record_event(), secret=other_secret),  # signed with another secret
        (tampered, headers),  # body changed after signing
        (body, {k: v for k, v in headers.items() if k != "webhook-signature"}),  # unsigned
        (body, headers | {"webhook-signature": "v1,not-base64!"}),  # garbage
        signed(record_event(), at=datetime.now(UTC) - timedelta(minutes=10)),  # replayed later
    ]
    for body_, headers_ in cases:
        assert hook.handle(body_, headers_)[0] == 401
    assert woken == [] and hook.counts["refused"] == len(cases)


class Source:
    def __init__(self, receiver):
        self.receiver = receiver

    def status(self) -> dict:
        return {}

    def ready(self):
        return True, "ok"

    def plot(self) -> bytes:
        return b""

    def webhook(self, body: bytes, headers: dict):
        return self.receiver.handle(body, headers)


def test_the_route_needs_no_status_token_but_a_signature(receiver):
    hook, woken = receiver
    client = TestClient(create_app(Source(hook), token=TOKEN))
    body, headers = signed(record_event())
    assert client.post("/webhook", content=body, headers=headers).status_code == 202
    assert client.post("/webhook", content=body, headers={"webhook-id": "x"}).status_code == 401
    assert client.get("/status").status_code == 401  # the other routes still need the token
    assert len(woken) == 1
