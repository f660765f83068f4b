"""A person in the real Argilla web UI (headless Chromium through Playwright): sign in as the annotator, label batch 0
by clicking a label and Submit (one record discarded), and see batch 1 arrive with the model's suggestion and the
daemon's metadata. Every submit's HTTP status is asserted, not only that the UI moved on. Screenshots of each step
go to tests/output/browser/<dataset>/.

Needs Debian's Chromium (``apt-get install chromium``; .ci/run installs it) and the ``playwright`` package (a dev
extra); never ``playwright install``. Skipped, with the reason, where either is missing — except under CI (the CI
environment variable set, as .ci/run does), where a missing one is a failure: CI must run this test.
"""

import json

import pytest

from daemon.simulate import wait_for
from daemon.state import StateStore
from tests.conftest import OUTPUT, TREC
from tests.e2e.conftest import (
    TIMEOUT_MS,
    current_text,
    get_status,
    open_annotation,
    start_daemon,
    stop_daemon,
    wait_for_next_batch,
)

pytestmark = pytest.mark.e2e
BATCH = 4


def gold_labels() -> dict[str, str]:
    rows = (json.loads(line) for line in (TREC / "train.jsonl").read_text().splitlines() if line.strip())
    return {row["text"]: row["label"] for row in rows}


def test_an_annotator_labels_batch_0_in_the_ui_and_batch_1_appears(argilla_stack, dataset_name, trec_env, browser):
    shots = OUTPUT / "browser" / dataset_name
    shots.mkdir(parents=True, exist_ok=True)
    env = trec_env["env"] | {
        "AL_BATCH_SIZE": str(BATCH),
        "AL_POLL_INTERVAL": "1",
        "AL_PUBLISH_PROGRESS": "false",
        # batch 1 must come from a model (its suggestion is checked): the complete batch 0 waits for the features
        # however long the embedding takes on a busy machine, instead of the default 30 s then a random batch
        "AL_FEATURES_WAIT": "600",
    }
    port, log = trec_env["port"], trec_env["log"]
    gold = gold_labels()
    daemon = start_daemon(env, log)
    try:
        assert wait_for(lambda: (get_status(port) or {}).get("state") == "waiting-for-annotators", 240), log.read_text()
        page = open_annotation(browser, argilla_stack, dataset_name)
        page.screenshot(path=shots / "01-batch-0.png")

        answered = []
        for n in range(BATCH):
            text = current_text(page, gold)
            if n == BATCH - 1:  # the last one: Discard (a text the annotator will not label)
                with page.expect_response(lambda r: "/responses" in r.url and r.request.method == "POST") as sent:
                    page.click("button:has-text('Discard')")
            else:
                page.get_by_text(gold[text], exact=True).first.click()
                page.wait_for_timeout(300)  # let the chip render as selected
                page.screenshot(path=shots / f"{2 + n:02d}-labelled-{n}.png")
                with page.expect_response(lambda r: "/responses" in r.url and r.request.method == "POST") as sent:
                    page.click("button:has-text('Submit')")
            response = sent.value
            assert response.status in (200, 201), f"{response.url}: HTTP {response.status} {response.text()[:300]}"
            body = response.json()
            assert body["status"] == ("discarded" if n == BATCH - 1 else "submitted"), body
            if n < BATCH - 1:  # the label clicked is the one Argilla stored
                assert [v["value"] for v in body["values"].values()] == [gold[text]], body
            answered.append(text)
            page.wait_for_function(
                "t => !document.body.innerText.includes(t)", arg=text, timeout=TIMEOUT_MS
            )  # the UI moved on to the next record
        assert len(set(answered)) == BATCH
        page.screenshot(path=shots / f"{2 + BATCH:02d}-batch-0-done.png")

        # the daemon sees the batch complete (three labels, one discard) and logs batch 1: the UI's pending queue
        # shows it after a reload, with the model's suggestion and the metadata the daemon wrote
        assert wait_for_next_batch(page, gold) not in answered
        page.get_by_text("Suggestion", exact=True).first.wait_for()
        assert ":round-1" in page.inner_text("body")  # the agent: the model of round 0, as batch 1's chooser
        page.screenshot(path=shots / f"{3 + BATCH:02d}-batch-1-suggestion.png")
        open_record_menu(page)
        page.get_by_text("View metadata").click()
        page.wait_for_timeout(600)  # the popup fades in
        info = page.locator("text=Metadata").locator("xpath=ancestor::*[contains(., 'batch_id')][1]").inner_text()
        page.screenshot(path=shots / f"{4 + BATCH:02d}-batch-1-metadata.png")
        assert "batch_id" in info and "\n1" in info.split("batch_id", 1)[1][:12], info
        assert "al_score" in info and "round" in info, info
    finally:
        stop_daemon(daemon)
    state = StateStore(trec_env["state_dir"]).load()
    batch = state.batches[0]
    assert batch.complete and len(batch.labels) == BATCH - 1 and len(batch.discarded) == 1
    assert set(batch.labels.values()) <= set(state.labels)
    assert state.batches[1].logged and state.rounds[0].labels == BATCH - 1  # the discard is never trained on


def open_record_menu(page) -> None:
    """The record card's kebab menu (its first button after the status badge)."""
    card = page.locator("text=Pending").nth(1).locator("xpath=..")
    card.locator("xpath=following-sibling::*").first.click()
