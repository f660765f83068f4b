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
    """What Argilla and the journal say after a run: anything lost, doubled, skipped?"""
    import argilla as rg

    client = rg.Argilla(api_url=stack["url"], api_key=stack["owner_key"])
    records = list(client.datasets(dataset, workspace="argilla").records(with_responses=True))
    state = StateStore(state_dir).load()
    per_index = Counter(int(r.metadata["pool_index"]) for r in records)
    batch_ids = sorted({int(r.metadata["batch_id"]) for r in records})
    complete = {b.batch_id for b in state.batches if b.complete}
    submitted = {}
    for record in records:
        if int(record.metadata["batch_id"]) not in complete or str(record.status) != "completed":
            continue
        try:
            answers = [r for r in record.responses["label"] if str(r.status) == "submitted"]
        except (KeyError, IndexError):
            answers = []
        if answers:
            submitted[int(record.metadata["pool_index"])] = str(answers[0].value)
    trained = state.training_labels()
    in_batches = Counter(i for b in state.batches for i in b.pool_indices)
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
