"""Webhook deliveries: Standard Webhooks signatures checked, events of other datasets ignored, the route open to
Argilla without the status token but never without a valid signature; a body over the cap refused (413) without
being read past it, a signed body that does not parse refused (400), and refusals logged at most once a minute."""

import base64
import json
import logging
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi.testclient import TestClient
from standardwebhooks.webhooks import Webhook

from daemon.status import StatusServer, create_app
from daemon.webhooks import LOG_INTERVAL, MAX_WEBHOOK_BODY, TooLarge, WebhookReceiver, event_dataset_id

SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
OTHER_SECRET = "whsec_" + base64.b64encode(b"not the secret, not the secret!!").decode()
DATASET = "3f2c0d4e-0000-4000-8000-000000000001"
TOKEN = "a-status-token-of-20-chars"
CHUNK = 65_536
NO_COUNTS = {"accepted": 0, "ignored": 0, "refused": 0, "too_large": 0, "bad_body": 0}


def record_event(dataset_id: str = DATASET, kind: str = "record.completed") -> dict:
    return {"type": kind, "version": 1, "timestamp": "2026-11-30T00:00:00", "data": {"dataset": {"id": dataset_id}}}


def response_event(dataset_id: str = DATASET) -> dict:
    record = {"id": "r1", "dataset": {"id": dataset_id}}
    return {"type": "response.created", "version": 1, "data": {"status": "discarded", "record": record}}


def signed(event: dict | str, secret: str = SECRET, at: datetime | None = None) -> tuple[bytes, dict]:
    body = event if isinstance(event, str) else json.dumps(event)
    at = at or datetime.now(UTC)
    signature = Webhook(secret).sign("msg_1", at, body)
    headers = {"webhook-id": "msg_1", "webhook-timestamp": str(int(at.timestamp())), "webhook-signature": signature}
    return body.encode(), headers


class Clock:
    """Monotonic seconds that move only when a test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def receiver(clock):
    woken = []
    return WebhookReceiver(SECRET, lambda: DATASET, lambda: woken.append(time.monotonic()), clock=clock), woken


def test_event_dataset_id_of_record_and_response_events():
    assert event_dataset_id(record_event()) == DATASET
    assert event_dataset_id(response_event()) == DATASET
    assert event_dataset_id({"type": "x", "data": {}}) is None


@pytest.mark.parametrize("event", [record_event(), record_event(kind="record.updated"), response_event()])
def test_a_signed_event_of_the_run_wakes_the_poll(receiver, event):
    hook, woken = receiver
    assert hook.handle(*signed(event)) == (202, {"woke": True})
    assert len(woken) == 1 and hook.counts == NO_COUNTS | {"accepted": 1}


def test_another_datasets_event_is_acknowledged_and_ignored(receiver):
    hook, woken = receiver
    assert hook.handle(*signed(record_event("another-dataset"))) == (200, {"woke": False})
    assert woken == [] and hook.counts == NO_COUNTS | {"ignored": 1}


def test_bad_signatures_are_refused_and_wake_nothing(receiver):
    hook, woken = receiver
    body, headers = signed(record_event())
    tampered = body.replace(DATASET.encode(), b"another-dataset-id-of-the-same-len--")
    cases = [
        signed(record_event(), secret=OTHER_SECRET),  # signed with another secret
        (tampered, headers),  # body changed after signing
        (body, {k: v for k, v in headers.items() if k != "webhook-signature"}),  # unsigned
        (body, headers | {"webhook-signature": "v1,not-base64!"}),  # garbage
        (body, headers | {"webhook-signature": "v1"}),  # no comma
        (b"\xff\xfe not UTF-8", headers),
        signed(record_event(), at=datetime.now(UTC) - timedelta(minutes=10)),  # replayed later
    ]
    for body_, headers_ in cases:
        assert hook.handle(body_, headers_)[0] == 401
    assert woken == [] and hook.counts == NO_COUNTS | {"refused": len(cases)}


@pytest.mark.parametrize(
    "body",
    [
        "[" * 100_000 + "]" * 100_000,  # json.loads: RecursionError
        '{"data": ' * 50_000 + "1" + "}" * 50_000,
        "not JSON at all",
        '{"type": "record.completed"',
    ],
    ids=["nested-list", "nested-object", "text", "truncated"],
)
def test_a_signed_body_that_does_not_parse_gets_400(receiver, body):
    hook, woken = receiver
    assert hook.handle(*signed(body)) == (400, {"detail": "body is not JSON"})
    assert woken == [] and hook.counts == NO_COUNTS | {"bad_body": 1}


def test_too_large_is_counted_and_refused(receiver):
    hook, woken = receiver
    assert hook.handle(TooLarge(declared=5 * MAX_WEBHOOK_BODY), {})[0] == 413
    assert hook.handle(TooLarge(read=MAX_WEBHOOK_BODY + CHUNK), {})[0] == 413
    assert woken == [] and hook.counts == NO_COUNTS | {"too_large": 2}


class Source:
    def __init__(self, receiver):
        self.receiver = receiver

    def status(self) -> dict:
        return {}

    def ready(self):
        return True, "ok"

    def plot(self) -> bytes:
        return b""

    def webhook(self, body, headers: dict):
        return self.receiver.handle(body, headers)


def test_the_route_needs_no_status_token_but_a_signature(receiver):
    hook, woken = receiver
    client = TestClient(create_app(Source(hook), token=TOKEN))
    body, headers = signed(record_event())
    assert client.post("/webhook", content=body, headers=headers).status_code == 202
    assert client.post("/webhook", content=body, headers={"webhook-id": "x"}).status_code == 401
    assert client.get("/status").status_code == 401  # the other routes still need the token
    assert len(woken) == 1


class Served:
    """The status app on a real uvicorn server (port 0), with a count of the body bytes the app read."""

    def __init__(self, hook: WebhookReceiver) -> None:
        self.app = create_app(Source(hook), token=TOKEN)
        self.body_read = 0
        self.server = StatusServer(self, "127.0.0.1", 0)

    async def __call__(self, scope, receive, send):  # the ASGI app the server runs
        async def counted():
            message = await receive()
            if message["type"] == "http.request":
                self.body_read += len(message.get("body", b""))
            return message

        await self.app(scope, counted, send)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}/webhook"


@pytest.fixture
def served(receiver):
    hook, woken = receiver
    served = Served(hook)
    served.server.start()
    yield served, hook, woken
    served.server.stop()


class Offered:
    """A request body handed to the client chunk by chunk, counting what the client took."""

    def __init__(self, total: int, fill: bytes = b"[") -> None:
        self.total, self.fill, self.taken = total, fill, 0

    def __iter__(self):
        while self.taken < self.total:
            self.taken += CHUNK
            yield self.fill * CHUNK


def test_real_server_answers_202_200_401_and_400(served):
    served, hook, woken = served
    nested = "[" * 100_000 + "]" * 100_000  # 200 kB, signed with the secret: json.loads raised RecursionError (500)
    cases = [
        (signed(record_event()), 202, {"woke": True}),
        (signed(response_event()), 202, {"woke": True}),
        (signed(record_event("another-dataset")), 200, {"woke": False}),
        (signed(record_event(), secret=OTHER_SECRET), 401, {"detail": "signature does not verify"}),
        (signed(nested), 400, {"detail": "body is not JSON"}),
    ]
    with httpx.Client(timeout=30) as client:
        for (body, headers), status, answer in cases:
            got = client.post(served.url, content=body, headers=headers)
            assert (got.status_code, got.json()) == (status, answer)
    assert len(woken) == 2
    assert hook.counts == NO_COUNTS | {"accepted": 2, "ignored": 1, "refused": 1, "bad_body": 1}


def test_a_body_at_the_cap_is_read_and_verified(served):
    served, hook, _ = served
    event = record_event() | {"padding": ""}
    event["padding"] = "x" * (MAX_WEBHOOK_BODY - len(json.dumps(event)))
    body, headers = signed(event)
    assert len(body) == MAX_WEBHOOK_BODY
    assert httpx.post(served.url, content=body, headers=headers, timeout=30).status_code == 202
    assert served.body_read == MAX_WEBHOOK_BODY and hook.counts["accepted"] == 1


def test_content_length_over_the_cap_gets_413_before_reading_anything(served):
    served, hook, woken = served
    declared = 500 * 1024 * 1024  # the 500 MB POST of issue 18
    offered = Offered(declared)
    headers = {"Content-Length": str(declared)} | signed(record_event())[1]
    answer = httpx.post(served.url, content=offered, headers=headers, timeout=30)
    assert answer.status_code == 413 and answer.headers["connection"] == "close"
    assert served.body_read == 0  # refused from the header alone
    assert offered.taken < declared  # the server closed the connection instead of draining the body
    assert woken == [] and hook.counts == NO_COUNTS | {"too_large": 1}


def test_a_chunked_body_over_the_cap_gets_413_and_is_not_read_past_it(served):
    served, hook, woken = served
    offered = Offered(64 * 1024 * 1024)  # no Content-Length: Transfer-Encoding chunked
    answer = httpx.post(served.url, content=offered, headers=signed(record_event())[1], timeout=30)
    assert answer.status_code == 413 and answer.headers["connection"] == "close"
    # the app stopped at the first piece that passed the cap: at most the cap plus one piece uvicorn handed over
    # (a few client chunks at most: it stops reading its socket beyond 64 kB buffered)
    assert MAX_WEBHOOK_BODY < served.body_read <= MAX_WEBHOOK_BODY + 8 * CHUNK, served.body_read
    assert offered.taken < offered.total  # and the client could not send it all: the connection was closed
    assert woken == [] and hook.counts == NO_COUNTS | {"too_large": 1}


def webhook_records(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "daemon.webhooks"]


def test_a_flood_of_refused_requests_logs_one_line_then_one_summary_a_minute(served, clock, caplog):
    served, hook, woken = served
    caplog.set_level(logging.WARNING)  # every logger (httpx's INFO line per request is the client's, not ours)
    caplog.set_level(logging.DEBUG, logger="daemon.webhooks")
    forged = signed(record_event(), secret=OTHER_SECRET)
    nested = signed("[" * 10_000 + "]" * 10_000)
    with httpx.Client(timeout=30) as client:
        for n in range(2_000):
            if n % 100 == 1:  # 20 signed bodies that do not parse
                assert client.post(served.url, content=nested[0], headers=nested[1]).status_code == 400
            elif n % 100 == 2:  # 20 too large
                headers = forged[1] | {"Content-Length": str(2 * MAX_WEBHOOK_BODY)}
                assert (
                    client.post(served.url, content=Offered(2 * MAX_WEBHOOK_BODY), headers=headers).status_code == 413
                )
            else:
                assert client.post(served.url, content=forged[0], headers=forged[1]).status_code == 401
        assert hook.counts == NO_COUNTS | {"refused": 1_960, "too_large": 20, "bad_body": 20}
        assert len(caplog.records) <= 3  # was 2,000 warnings (188 kB of log)
        first = webhook_records(caplog)
        assert len(first) == 1 and first[0].levelno == logging.WARNING
        assert first[0].getMessage() == "webhook refused (401): WebhookVerificationError: No matching signature found"

        clock.now += LOG_INTERVAL - 1  # within the minute: still nothing more
        assert client.post(served.url, content=forged[0], headers=forged[1]).status_code == 401
        assert len(webhook_records(caplog)) == 1

        clock.now += 2  # the minute has passed: the next delivery (a good one) brings the summary line
        good = signed(record_event())
        assert client.post(served.url, content=good[0], headers=good[1]).status_code == 202
    summary = [r.getMessage() for r in webhook_records(caplog) if r.levelno == logging.WARNING][1:]
    assert summary == [
        "webhook: 2,000 more requests refused in the last 61 s "
        "(last: WebhookVerificationError: No matching signature found)"
    ]
    assert hook.counts == NO_COUNTS | {"accepted": 1, "refused": 1_961, "too_large": 20, "bad_body": 20}
    assert len(woken) == 1


def test_refusals_log_in_full_again_after_a_quiet_minute_and_a_flood_summarises_each_minute(receiver, clock, caplog):
    hook, _ = receiver
    caplog.set_level(logging.INFO)
    forged = signed(record_event(), secret=OTHER_SECRET)
    messages = lambda: [r.getMessage() for r in webhook_records(caplog)]  # noqa: E731

    hook.handle(*forged)
    clock.now += LOG_INTERVAL  # a quiet minute: the next refusal is a first one again, logged in full
    hook.handle(TooLarge(declared=3 * MAX_WEBHOOK_BODY), {})
    assert messages() == [
        "webhook refused (401): WebhookVerificationError: No matching signature found",
        "webhook refused (413): body over 1,048,576 bytes (Content-Length 3,145,728)",
    ]
    for _minute in range(3):  # a flood lasting three minutes: one summary line a minute, the last refusal in it
        for _ in range(480):
            clock.now += 0.125
            hook.handle(*forged)
    assert (
        messages()[2:]
        == [
            "webhook: 480 more requests refused in the last 60 s (last: WebhookVerificationError: "
            "No matching signature found)"
        ]
        * 3
    )
    hook.flush_log()  # nothing left unlogged: no line
    clock.now += 10
    hook.handle(*signed("[" * 5_000 + "]" * 5_000))
    hook.flush_log()  # within the minute: no line yet
    assert len(messages()) == 5
    clock.now += LOG_INTERVAL
    hook.flush_log()
    assert messages()[5:] == [
        "webhook: 1 more requests refused in the last 70 s (last: signed body is not JSON: RecursionError)"
    ]
    assert hook.counts == NO_COUNTS | {"refused": 1_441, "too_large": 1, "bad_body": 1}
