"""A person in the real Argilla web UI on a multi-label run (headless Chromium through Playwright): tick two labels
on each record of batch 0 and Submit (each submit's HTTP status and the stored value, both labels, asserted), then
see batch 1 arrive with the model's label-set suggestions. GoEmotions texts whose labels are among six emotions, so
every option is on screen (Argilla folds long label lists). Screenshots go to tests/output/browser/<dataset>/."""

import json

import httpx
import pytest

from daemon.simulate import wait_for
from daemon.state import StateStore
from tests.conftest import OUTPUT, ROOT, write_jsonl
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
EMOTIONS = ("admiration", "amusement", "anger", "curiosity", "gratitude", "joy")


def emotion_rows(name: str, count: int) -> list[dict]:
    """The first ``count`` GoEmotions rows whose labels are all among EMOTIONS."""
    chosen = []
    for line in (ROOT / "data" / "goemotions" / name).read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        if set(row["labels"]) <= set(EMOTIONS):
            row["text"] = row["text"].strip()
            chosen.append(row)
    assert len(chosen) >= count, len(chosen)
    return chosen[:count]


def test_an_annotator_ticks_two_labels_and_batch_1_comes_with_label_set_suggestions(
    argilla_stack,
    dataset_name,
    trec_env,
    browser,
    tmp_path,
):
    shots = OUTPUT / "browser" / dataset_name
    shots.mkdir(parents=True, exist_ok=True)
    pool = emotion_rows("train.jsonl", 150)
    env = trec_env["env"] | {
        "AL_POOL_FILE": str(write_jsonl(tmp_path / "pool.jsonl", pool)),
        "AL_TEST_FILE": str(write_jsonl(tmp_path / "test.jsonl", emotion_rows("test.jsonl", 40))),
        "AL_LABEL_COLUMN": "labels",
        "AL_BATCH_SIZE": str(BATCH),
        "AL_POLL_INTERVAL": "1",
        "AL_PUBLISH_PROGRESS": "false",
        "AL_FEATURES_WAIT": "600",  # batch 1 must come from a model (see test_browser_e2e)
    }
    gold = {row["text"]: row["labels"] for row in pool}
    port, log = trec_env["port"], trec_env["log"]
    daemon = start_daemon(env, log)
    ticked: dict[str, list[str]] = {}
    try:
        assert wait_for(lambda: (get_status(port) or {}).get("state") == "waiting-for-annotators", 240), log.read_text()
        assert get_status(port)["task"] == "multi-label"
        page = open_annotation(browser, argilla_stack, dataset_name)
        for n in range(BATCH):
            text = current_text(page, gold)
            first = gold[text][0]
            second = next(e for e in EMOTIONS if e != first and (n % 2 == 0 or e not in gold[text]))
            for label in (first, second):
                page.get_by_text(label, exact=True).first.click()
                page.wait_for_timeout(200)
            page.screenshot(path=shots / f"{1 + n:02d}-ticked-{n}.png")
            with page.expect_response(lambda r: "/responses" in r.url and r.request.method == "POST") as sent:
                page.click("button:has-text('Submit')")
            response = sent.value
            assert response.status in (200, 201), f"{response.url}: HTTP {response.status} {response.text()[:300]}"
            body = response.json()
            assert body["status"] == "submitted", body
            assert sorted(body["values"]["label"]["value"]) == sorted({first, second}), body  # both labels stored
            ticked[text] = sorted({first, second})
            page.wait_for_function("t => !document.body.innerText.includes(t)", arg=text, timeout=TIMEOUT_MS)

        assert wait_for_next_batch(page, gold) not in ticked
        page.get_by_text("Suggestion", exact=True).first.wait_for()
        assert ":round-1" in page.inner_text("body")
        page.screenshot(path=shots / f"{1 + BATCH:02d}-batch-1-suggestions.png")
    finally:
        stop_daemon(daemon)
    state = StateStore(trec_env["state_dir"]).load()
    assert state.multi_label and state.batches[0].complete
    assert sorted(list(labels) for labels in state.batches[0].labels.values()) == sorted(ticked.values())
    # batch 1 went to Argilla with label-set suggestions and a score per label
    http = httpx.Client(base_url=argilla_stack["url"], headers={"X-Argilla-Api-Key": argilla_stack["owner_key"]})
    items = http.get(
        f"/api/v1/datasets/{state.dataset_id}/records", params={"include": "suggestions", "limit": 100}
    ).json()["items"]
    later = [item for item in items if item["metadata"]["batch_id"] == 1]
    assert len(later) == BATCH
    for item in later:
        (suggestion,) = item["suggestions"]
        assert isinstance(suggestion["value"], list) and set(suggestion["value"]) <= set(EMOTIONS)
        assert len(suggestion["score"]) == len(suggestion["value"])
