"""Push trigger end to end: with a poll interval of ten minutes (one poll at start-up, the next long after this run
ends), only Argilla's signed webhooks (sent by its worker) can bring each next batch; a forged event is refused;
the webhook is removed when the daemon stops."""

import time

import httpx
import pytest

from daemon.simulate import wait_for
from tests.e2e.conftest import get_status, simulated_annotator, start_daemon, wait_or_dump

pytestmark = pytest.mark.e2e

POLL = 600.0
HANDOVER = 120.0  # Argilla's worker forks a process per delivery: slow on a loaded machine, ~2 s on a quiet one


def batch_ids(person) -> set[int]:
    return {int(r["metadata"]["batch_id"]) for r in person.pending()}


def test_webhooks_wake_the_daemon_long_before_its_poll(argilla_stack, dataset_name, trec_env, trec_data):
    port, log_path = trec_env["port"], trec_env["log"]
    url = f"http://127.0.0.1:{port}/webhook"
    env = trec_env["env"] | {
        "AL_POLL_INTERVAL": str(POLL),
        "AL_WEBHOOK_URL": url,
        "AL_MAX_ROUNDS": "3",
        "AL_STOP_CRITERIA": "never",
    }
    owner = httpx.Client(base_url=argilla_stack["url"], headers={"X-Argilla-Api-Key": argilla_stack["owner_key"]})

    def hooks() -> list[dict]:
        return [h for h in owner.get("/api/v1/webhooks").json()["items"] if h["url"] == url]

    started = time.monotonic()
    daemon = start_daemon(env, log_path)
    person = simulated_annotator(argilla_stack, dataset_name, trec_data, seed=3)
    waits = []
    try:
        assert wait_for(lambda: (get_status(port) or {}).get("webhooks") is not None, timeout=180), (
            log_path.read_text()[-3000:]
        )
        assert len(hooks()) == 1 and hooks()[0]["enabled"]
        # a forged delivery (no valid signature) is refused and changes nothing
        forged = httpx.post(url, json={"type": "record.completed", "data": {}}, headers={"webhook-id": "x"})
        assert forged.status_code == 401
        for batch_id in (0, 1):
            assert wait_for(lambda b=batch_id: b in batch_ids(person), timeout=60)
            assert person.run(max_records=20 * (batch_id + 1)).submitted == 20 * (batch_id + 1)
            finished = time.monotonic()
            assert wait_for(lambda b=batch_id: b + 1 in batch_ids(person), timeout=HANDOVER), log_path.read_text()[
                -3000:
            ]
            waits.append(time.monotonic() - finished)
        status = get_status(port)
        assert status["webhooks"]["accepted"] >= 2 and status["webhooks"]["refused"] == 1
        person.run(max_records=60)
        assert wait_or_dump(daemon, log_path, HANDOVER) == 0, log_path.read_text()[-3000:]
        ran = time.monotonic() - started
    finally:
        person.stop()
        if daemon.poll() is None:
            daemon.kill()
    # the whole run ended before the daemon's second poll: every handover was woken by a webhook
    assert ran < POLL, ran
    print(f"webhook handovers: {[round(w, 1) for w in waits]} s after the last submit")
    assert hooks() == []  # removed on exit
    assert "webhook registered" in log_path.read_text()
