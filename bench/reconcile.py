"""What the per-round reconciliation with Argilla costs as a dataset grows, against the poll of one batch.

    .venv/bin/python bench/reconcile.py [--url http://127.0.0.1:6910] [--key argilla.apikey]

Needs a running Argilla (`al-daemon stack up`, or the test stack). Logs 20-record batches into a fresh dataset
until it holds 200, 1,000 and 5,000 records (every other record answered, so responses come back too), and at
each size times, in the same process and alternating, median of 5: reading the current batch through the search
index (`read_batch`, the poll), reading every record from the database (`read_all`) and re-checking the
dataset's settings (`check_dataset`) — the last two are the reconciliation each round adds.
Writes bench/results/reconcile.json and .png.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import uuid
from pathlib import Path

import httpx

from daemon.gateway import ArgillaGateway, DatasetSpec, OutRecord
from daemon.stack import ANNOTATOR, OWNER

RESULTS = Path(__file__).parent / "results"
LABELS = ["a", "b", "c"]
BATCH = 20


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", default="http://127.0.0.1:6910")
    parser.add_argument("--key", default=OWNER.api_key)
    parser.add_argument("--annotator-key", default=ANNOTATOR.api_key)
    args = parser.parse_args()
    name = f"bench-reconcile-{uuid.uuid4().hex[:6]}"
    gateway = ArgillaGateway(args.url, args.key, "argilla", name)
    spec = DatasetSpec(name, "argilla", LABELS)
    gateway.ensure_dataset(spec)
    annotator = httpx.Client(base_url=args.url, headers={"X-Argilla-Api-Key": args.annotator_key}, timeout=60)
    owner = httpx.Client(base_url=args.url, headers={"X-Argilla-Api-Key": args.key}, timeout=60)
    rows, logged = [], 0
    for size in (200, 1000, 5000):
        while logged < size:
            batch_id = logged // BATCH
            gateway.log_records(
                [
                    OutRecord(f"pool-{i}", i, batch_id, batch_id, f"text number {i}")
                    for i in range(logged, logged + BATCH)
                ]
            )
            logged += BATCH
        answer_half(owner, annotator, gateway.dataset_id)
        last = logged // BATCH - 1
        timings: dict[str, list[float]] = {"read_batch": [], "read_all": [], "check_dataset": []}
        for _ in range(5):
            for what, call in (
                ("read_batch", lambda last=last: gateway.read_batch(last)),
                ("read_all", gateway.read_all),
                ("check_dataset", lambda: gateway.check_dataset(spec)),
            ):
                start = time.perf_counter()
                call()
                timings[what].append(time.perf_counter() - start)
        row = {"records": size, **{k: statistics.median(v) for k, v in timings.items()}}
        row["reconcile_over_poll"] = (row["read_all"] + row["check_dataset"]) / row["read_batch"]
        rows.append(row)
        print(json.dumps(row))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "reconcile.json").write_text(json.dumps({"batch_size": BATCH, "rows": rows}, indent=1) + "\n")
    plot(rows)


def answer_half(owner: httpx.Client, http: httpx.Client, dataset_id: str) -> None:
    """The annotator answers every even pool index not answered yet: three in four submitted, one discarded."""
    offset = 0
    while True:
        page = owner.get(f"/api/v1/datasets/{dataset_id}/records", params={"offset": offset, "limit": 1000})
        items = page.json()["items"]
        for record in items:
            index = record["metadata"]["pool_index"]
            if index % 2 or record["status"] == "completed" or index in ANSWERED:
                continue
            status = "discarded" if index % 8 == 0 else "submitted"
            values = {"label": {"value": LABELS[index % 3]}} if status == "submitted" else {}
            http.post(f"/api/v1/records/{record['id']}/responses", json={"status": status, "values": values})
            ANSWERED.add(index)
        if len(items) < 1000:
            return
        offset += len(items)


ANSWERED: set[int] = set()


def plot(rows: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    sizes = [r["records"] for r in rows]
    for what in ("read_batch", "read_all", "check_dataset"):
        ax.plot(sizes, [r[what] for r in rows], marker="o", label=what)
    ax.set_xscale("log")
    ax.set_xlabel("records in the dataset")
    ax.set_ylabel("seconds (median of 5)")
    ax.set_title("Reconciliation per round vs the poll of one batch")
    ax.legend()
    fig.tight_layout()
    fig.savefig(RESULTS / "reconcile.png", dpi=110)


if __name__ == "__main__":
    main()
