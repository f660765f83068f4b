"""First batch: seconds from `al-daemon run` starting to batch 0 visible in Argilla, by pool size (real local Argilla).

    .venv/bin/python bench/first_batch.py                          # the TREC-6 demo pool, 10k, 100k, 1M texts
    .venv/bin/python bench/first_batch.py --sizes 10000 --argilla-url http://127.0.0.1:6900

Each pool is written as JSONL (TREC-6 itself, or TREC-6 questions resampled and perturbed as in bench/scale.py, so
the texts are distinct), then the daemon is started as a subprocess with the default model (hybrid), an empty
embedding cache and no test set, exactly as a new user would. Measured from the process start:
- ``checked_s``: the pool read and checked: the log line naming the pool (small-text, and with it torch, is
  imported only once the features are built, after batch 0);
- ``batch0_logged_s``: the daemon's log says batch 0 is logged;
- ``batch0_visible_s``: every record of batch 0 is returned by Argilla's API (what annotators see);
- ``rss_at_batch0_mb``: the daemon's resident memory then (VmRSS), and ``peak_rss_mb`` (VmHWM) when it stopped;
- the embedding's progress from ``/status.features`` a while after batch 0 (texts/s of the background embedding).
Then SIGTERM; ``exit_s`` is how long the process took to leave with the embedding still running.
Without ``--argilla-url`` the script starts its own stack (ports 6930/9230/6409, folder .stack/bench, as
bench/wait.py). Writes bench/results/first-batch.json and .png.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from scale import synthetic_rows, trec  # noqa: E402  (bench/ siblings)
from wait import environment, free_port, start_stack  # noqa: E402

from daemon.stack import OWNER  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
TREC_POOL = ROOT / "data" / "trec6" / "train.jsonl"
BATCH = 20
DEMO = 0  # the --sizes value that means "TREC-6's own training file, as `make demo` uses it"


def write_pool(size: int, folder: Path) -> Path:
    if size == DEMO:
        return TREC_POOL
    rows, _ = synthetic_rows(trec(), size, seed=1)
    path = folder / f"pool-{size}.jsonl"
    with path.open("w", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps(row) + "\n")
    return path


def memory(pid: int) -> dict[str, float]:
    found = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                found[key] = round(int(value.split()[0]) / 1024, 1)
    except OSError:
        pass
    return found


def batch0_visible(http: httpx.Client, dataset: str) -> bool:
    try:
        found = [d for d in http.get("/api/v1/me/datasets").json()["items"] if d["name"] == dataset]
        if not found:
            return False
        scope = {"entity": "metadata", "metadata_property": "batch_id"}
        body = {"filters": {"and": [{"type": "range", "scope": scope, "ge": 0, "le": 0}]}}
        answer = http.post(f"/api/v1/datasets/{found[0]['id']}/records/search", params={"limit": 1}, json=body)
        return answer.status_code == 200 and answer.json().get("total", 0) >= BATCH
    except (httpx.HTTPError, ValueError, KeyError):
        return False


def since_start(log: str, pattern: str, started_wall: float) -> float | None:
    """Seconds from the process start to the first log line matching ``pattern`` (the log's own timestamps)."""
    for line in log.splitlines():
        if re.search(pattern, line):
            stamp = datetime.datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()
            return round(stamp - started_wall, 2)
    return None


def one(size: int, url: str, folder: Path, watch: float) -> dict:
    pool = write_pool(size, folder)
    dataset = f"first-batch-{size}-{int(time.time())}"
    port = free_port()
    env = {
        **os.environ,
        "AL_ARGILLA_URL": url,
        "AL_ARGILLA_API_KEY": OWNER.api_key,
        "AL_DATASET": dataset,
        "AL_POOL_FILE": str(pool),
        "AL_TEST_FILE": "",
        "AL_BATCH_SIZE": str(BATCH),
        "AL_STATE_DIR": str(folder / f"state-{size}"),
        "AL_CACHE_DIR": str(folder / f"cache-{size}"),  # empty: the embedding is part of what is measured
        "AL_STATUS_PORT": str(port),
        "AL_PUBLISH_PROGRESS": "false",
    }
    log_path = folder / f"daemon-{size}.log"
    http = httpx.Client(base_url=url, headers={"X-Argilla-Api-Key": OWNER.api_key}, timeout=10)
    started_wall, started = time.time(), time.monotonic()
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "daemon.cli", "run"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    row: dict = {"size": size, "pool": "TREC-6 train (the demo)" if size == DEMO else "synthetic"}
    try:
        while not batch0_visible(http, dataset):
            if proc.poll() is not None or time.monotonic() - started > 1800:
                row["error"] = f"no batch 0 (exit {proc.poll()}): {log_path.read_text()[-500:]}"
                return row
            time.sleep(0.1)
        row["batch0_visible_s"] = round(time.monotonic() - started, 2)
        row["rss_at_batch0_mb"] = memory(proc.pid).get("VmRSS")
        time.sleep(watch)  # the background embedding at work
        features = (httpx.get(f"http://127.0.0.1:{port}/status", timeout=10).json() or {}).get("features") or {}
        row["features_after_watch"] = {k: features.get(k) for k in ("state", "stage", "done", "total", "rate")}
        row["peak_rss_mb"] = memory(proc.pid).get("VmHWM")
        stop = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)
        row["exit_s"] = round(time.monotonic() - stop, 2)
        row["exit_code"] = proc.returncode
    finally:
        if proc.poll() is None:
            proc.kill()
    text = log_path.read_text(errors="replace")
    row["texts"] = int(m.group(1)) if (m := re.search(r"pool \S+: (\d+) texts", text)) else None
    row["checked_s"] = since_start(text, r"daemon\.app: pool ", started_wall)
    row["batch0_logged_s"] = since_start(text, r"batch 0 logged to Argilla", started_wall)
    row["embedding_started_s"] = since_start(text, r"embedding \d+ texts with", started_wall)
    return row


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in result["sizes"] if "error" not in r and r.get("texts")]
    fig, axis = plt.subplots(figsize=(6, 3.8))
    sizes = [r["texts"] for r in rows]
    for key, name in (
        ("checked_s", "pool checked"),
        ("batch0_visible_s", "batch 0 visible in Argilla"),
    ):
        axis.plot(sizes, [r[key] for r in rows], marker="o", label=name)
    axis.axhline(30, color="grey", linestyle=":", label="target at 1M: 30 s")
    axis.set(xscale="log", xlabel="pool texts", ylabel="seconds from start", title="time to the first batch")
    axis.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", type=int, default=[DEMO, 10_000, 100_000, 1_000_000])
    parser.add_argument("--argilla-url", help="use this running server (owner key argilla.apikey) instead of a stack")
    parser.add_argument("--watch", type=float, default=20.0, help="seconds to watch the embedding after batch 0")
    args = parser.parse_args()
    stack, url = (None, args.argilla_url) if args.argilla_url else start_stack()
    result = {
        "what": "seconds from `al-daemon run` starting to batch 0 visible in Argilla, empty embedding cache",
        "date": datetime.date.today().isoformat(),
        "environment": environment(),
        "model": "hybrid (default)",
        "batch_size": BATCH,
        "sizes": [],
        "notes": [
            "synthetic pools: TREC-6 questions resampled and perturbed (a word dropped or two swapped, plus a row "
            "number), as bench/scale.py; size 0 in --sizes is TREC-6's own training file (the demo's pool)",
            "the embedding runs in the background after batch 0; features_after_watch is /status.features "
            "--watch seconds after batch 0 became visible",
        ],
    }
    try:
        with tempfile.TemporaryDirectory(prefix="first-batch-") as tmp:
            for size in args.sizes:
                row = one(size, url, Path(tmp), args.watch)
                print(json.dumps(row), flush=True)
                result["sizes"].append(row)
    finally:
        if stack is not None:
            stack.down()
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "first-batch.json").write_text(json.dumps(result, indent=1) + "\n")
    plot(result, RESULTS / "first-batch.png")


if __name__ == "__main__":
    main()
