"""The fault suite: kill -9 at each step of a round, Argilla outages, bad inputs. Every fault's outcome is
audited against Argilla and collected into a table, printed and written to tests/faults/RESULTS.md."""

from __future__ import annotations

import datetime
from collections import Counter
from pathlib import Path

import pytest

from daemon.state import StateStore
from tests.e2e.conftest import trec_data, trec_env  # noqa: F401 - fixtures shared with the e2e tests

RESULTS: list[dict] = []
RESULTS_FILE = Path(__file__).parent / "RESULTS.md"


def audit(stack: dict, dataset: str, state_dir: Path) -> dict:
    """What Argilla and the journal say after a run: anything lost, doubled, skipped? Reads Argilla's database
    through its REST API directly (not through the daemon's gateway, and not the SDK, which fails on a discard
    sent without values)."""
    import httpx

    http = httpx.Client(base_url=stack["url"], headers={"X-Argilla-Api-Key": stack["owner_key"]}, timeout=30)
    found = [d for d in http.get("/api/v1/me/datasets").json()["items"] if d["name"] == dataset]
    assert len(found) == 1, f"dataset {dataset!r} not found once in Argilla"
    records = http.get(
        f"/api/v1/datasets/{found[0]['id']}/records", params={"include": "responses", "limit": 1000}
    ).json()["items"]
    state = StateStore(state_dir).load()
    per_index = Counter(int(r["metadata"]["pool_index"]) for r in records)
    batch_ids = sorted({int(r["metadata"]["batch_id"]) for r in records})
    complete = {b.batch_id for b in state.batches if b.complete}
    submitted = {}
    for record in records:
        if int(record["metadata"]["batch_id"]) not in complete or record["status"] != "completed":
            continue
        answers = [r["values"]["label"]["value"] for r in record["responses"] if r["status"] == "submitted"]
        if answers:
            submitted[int(record["metadata"]["pool_index"])] = Counter(answers).most_common(1)[0][0]
    trained = state.training_labels()
    in_batches = Counter(i for b in state.batches for i in b.fresh_indices())  # carried records count once
    return {
        "records": len(records),
        "duplicate_records": sum(n - 1 for n in per_index.values() if n > 1),
        "batch_ids_contiguous": batch_ids == list(range(len(batch_ids))),
        "batches": len(batch_ids),
        "labels_lost": len(submitted.keys() - trained.keys()),
        "labels_changed": sum(1 for i, label in submitted.items() if i in trained and trained[i] != label),
        "labels_used_twice": sum(n - 1 for n in in_batches.values() if n > 1),
        "trained_on_discards": len(trained.keys() & state.discarded()),
        "labels": len(trained),
        "rounds": len(state.rounds),
        "stopped": state.stopped,
    }


def record(fault: str, outcome: str, checks: dict | None = None) -> None:
    RESULTS.append({"fault": fault, "outcome": outcome, **(checks or {})})
    record.last = RESULTS[-1]  # a test may add its checks to its row after recording the outcome


def assert_clean(checks: dict) -> None:
    assert checks["duplicate_records"] == 0, checks
    assert checks["batch_ids_contiguous"], checks
    assert checks["labels_lost"] == 0 and checks["labels_changed"] == 0, checks
    assert checks["labels_used_twice"] == 0 and checks["trained_on_discards"] == 0, checks


def pytest_sessionfinish(session, exitstatus):
    if not RESULTS:
        return
    lines = [
        "# Fault suite results",
        "",
        f"Written by `pytest tests/faults` on {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M UTC}.",
        "Every run is audited against Argilla after the fault: records, duplicates, batch ids, labels lost /",
        "changed / used twice, discards trained on.",
        "",
        "| fault | outcome | records | duplicate records | batch ids contiguous | labels lost | labels used twice "
        "| trained on discards | labels trained | rounds |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in RESULTS:
        cells = [
            r.get(k, "—")
            for k in (
                "records",
                "duplicate_records",
                "batch_ids_contiguous",
                "labels_lost",
                "labels_used_twice",
                "trained_on_discards",
                "labels",
                "rounds",
            )
        ]
        lines.append(f"| {r['fault']} | {r['outcome']} | " + " | ".join(str(c) for c in cells) + " |")
    RESULTS_FILE.write_text("\n".join(lines) + "\n")
    print("\n" + "\n".join(lines[6:]))


@pytest.fixture
def results():
    return record
