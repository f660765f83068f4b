"""The fault suite: kill -9 and a full disk at each step of a round, Argilla outages, bad inputs. Every fault's
outcome is audited against Argilla and collected into a table, printed and written to tests/output/RESULTS.md;
`make faults` (AL_FAULTS_RECORD=1) also records it in the tracked tests/faults/RESULTS.md, row by row, so
`make test` leaves tracked files alone."""

from __future__ import annotations

import datetime
import os
import re
from collections import Counter
from pathlib import Path

import pytest

from daemon.state import StateStore
from tests.e2e.conftest import trec_data, trec_env  # noqa: F401 - fixtures shared with the e2e tests

RESULTS: list[dict] = []
RESULTS_FILE = Path(__file__).parent / "RESULTS.md"  # tracked: written by `make faults` only
RUN_FILE = Path(__file__).parents[1] / "output" / "RESULTS.md"  # this run's table, every run
HEADER = [
    "# Fault suite results",
    "",
    "Recorded by `make faults` (rows of the faults it ran replace their earlier rows). Every run is audited against",
    "Argilla after the fault: records, duplicates, batch ids, labels lost / changed / used twice, discards trained on.",
    "",
    "| fault | outcome | records | duplicate records | batch ids contiguous | labels lost | labels used twice "
    "| trained on discards | labels trained | rounds |",
    "|---|---|---|---|---|---|---|---|---|---|",
]
COLUMNS = (
    "records",
    "duplicate_records",
    "batch_ids_contiguous",
    "labels_lost",
    "labels_used_twice",
    "trained_on_discards",
    "labels",
    "rounds",
)


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
    foreign = [r for r in records if (r.get("metadata") or {}).get("pool_index") is None]  # added by hand
    records = [r for r in records if (r.get("metadata") or {}).get("pool_index") is not None]
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
        **(seed_checks(state, records, foreign) if state.seed is not None else {}),
    }


def seed_checks(state, records: list[dict], foreign: list[dict]) -> dict:
    """A warm start: every seed label trained on (or overridden by nothing), no seed text ever logged as one of
    the daemon's records, every answered record added by hand adopted."""
    seed = state.seed
    trained = state.training_labels()
    asked = {int(r["metadata"]["pool_index"]) for r in records}
    answered = {
        str(r.get("external_id") or r["id"]) for r in foreign if any(x["status"] == "submitted" for x in r["responses"])
    }
    return {
        "seed_labels": len(seed.labels),
        "seed_lost": sum(1 for i, label in seed.labels.items() if trained.get(i) != label),
        "seed_logged": len(asked & seed.labels.keys()),
        "adopted_missing": len(answered - set(seed.adopted_records)),
    }


def record(fault: str, outcome: str, checks: dict | None = None) -> None:
    RESULTS.append({"fault": fault, "outcome": outcome, **(checks or {})})
    record.last = RESULTS[-1]  # a test may add its checks to its row after recording the outcome


def assert_clean(checks: dict) -> None:
    assert checks["duplicate_records"] == 0, checks
    assert checks["batch_ids_contiguous"], checks
    assert checks["labels_lost"] == 0 and checks["labels_changed"] == 0, checks
    assert checks["labels_used_twice"] == 0 and checks["trained_on_discards"] == 0, checks
    if "seed_labels" in checks:
        assert checks["seed_lost"] == 0 and checks["seed_logged"] == 0 and checks["adopted_missing"] == 0, checks


def stable(text: str) -> str:
    """A table cell without what differs from run to run: pids, ports, times, test dataset suffixes."""
    text = re.sub(r"pid \d+ on \S+ since [0-9T:+-]+", "pid <pid> on <host> since <time>", text)
    text = re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:<port>", text)
    return re.sub(r"(t-test_[\w-]*?)-[0-9a-f]{6}\b", r"\1-<id>", text)


def row(result: dict) -> str:
    cells = [stable(str(result["fault"])), stable(str(result["outcome"]))]
    cells += [str(result.get(key, "—")) for key in COLUMNS]
    return "| " + " | ".join(cells) + " |"


def merged(lines: list[str], new: list[str]) -> list[str]:
    """The recorded table with this run's rows replacing the rows of the same faults (new faults at the end)."""
    fault = lambda line: line.split(" | ")[0]  # noqa: E731
    fresh = {fault(line): line for line in new}
    kept = [fresh.pop(fault(line), line) for line in lines if line.startswith("| ") and not line.startswith("| fault")]
    return kept + list(fresh.values())


def pytest_sessionfinish(session, exitstatus):
    if not RESULTS:
        return
    rows = [row(result) for result in RESULTS]
    stamp = f"This run: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M UTC}."
    RUN_FILE.parent.mkdir(parents=True, exist_ok=True)
    RUN_FILE.write_text("\n".join([*HEADER[:4], stamp, *HEADER[4:], *rows]) + "\n")
    if os.environ.get("AL_FAULTS_RECORD") == "1":
        recorded = RESULTS_FILE.read_text().splitlines() if RESULTS_FILE.exists() else []
        RESULTS_FILE.write_text("\n".join([*HEADER, *merged(recorded, rows)]) + "\n")
    print("\n" + "\n".join(HEADER[-2:] + rows))


@pytest.fixture
def results():
    return record


def cli(command: str, env: dict, timeout: float = 120):
    """``al-daemon <command>`` in this checkout, its output captured."""
    import subprocess
    import sys

    from tests.conftest import ROOT

    return subprocess.run(
        [sys.executable, "-m", "daemon.cli", command],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def hand_made_dataset(
    stack: dict, name: str, labels: list[str], answered: dict[str, str], unanswered: list[str]
) -> None:
    """A dataset someone made in Argilla before the daemon (text field and label question as the daemon's, no
    metadata): records whose texts are ``answered`` (text -> label, submitted by the stack's annotator) and
    ``unanswered`` ones. What a warm start adopts."""
    import argilla as rg
    import httpx

    client = rg.Argilla(api_url=stack["url"], api_key=stack["owner_key"])
    settings = rg.Settings(
        fields=[rg.TextField("text")],
        questions=[rg.LabelQuestion("label", labels=labels)],
        distribution=rg.TaskDistribution(min_submitted=1),
    )
    dataset = rg.Dataset(name, workspace="argilla", settings=settings, client=client).create()
    texts = [*answered, *unanswered]
    dataset.records.log([rg.Record(id=f"hand-{k}", fields={"text": text}) for k, text in enumerate(texts)])
    owner = httpx.Client(base_url=stack["url"], headers={"X-Argilla-Api-Key": stack["owner_key"]}, timeout=30)
    person = httpx.Client(base_url=stack["url"], headers={"X-Argilla-Api-Key": stack["annotator_key"]}, timeout=30)
    items = owner.get(f"/api/v1/datasets/{dataset.id}/records", params={"limit": 1000}).json()["items"]
    uuid = {item["fields"]["text"]: item["id"] for item in items}
    for text, label in answered.items():
        body = {"status": "submitted", "values": {"label": {"value": label}}}
        response = person.post(f"/api/v1/records/{uuid[text]}/responses", json=body)
        assert response.status_code == 201, response.text
