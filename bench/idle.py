"""Idle cost: the daemon's CPU and memory while it waits on annotators, against the real local Argilla.

    .venv/bin/python bench/idle.py                      # both configurations, 60 s each (about 4 min)
    .venv/bin/python bench/idle.py --seconds 20 --argilla-url http://127.0.0.1:6930

Each configuration starts ``python -m daemon.cli run`` with the default settings (the hybrid model:
embeddings + TF-IDF, logistic regression, on the bundled TREC-6 pool), waits until batch 0 is logged and the status says
``waiting-for-annotators``, then, with nobody labelling, reads the process's ``/proc/<pid>/stat`` and
``/proc/<pid>/status`` once a second for ``--seconds``: CPU% = (user + system CPU seconds) / wall seconds x 100 (of
one core), RSS mean and max, and the peak RSS of the whole run so far (``VmHWM``, which includes embedding the
pool at start-up). Configurations: ``poll-2s`` (the default ``AL_POLL_INTERVAL=2``) and ``webhook-poll-60s``
(``AL_WEBHOOK_URL`` with a 60 s poll as the fallback). Targets (issue 8): < 1 % CPU and RSS < 1.5 GB.

Without ``--argilla-url`` the script starts its own stack (as bench/wait.py does: ports 6930/9230/6409) and stops
it at the end. Writes bench/results/idle.json and idle.png.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from wait import ROOT, environment, free_port, start_stack, stop_daemon  # noqa: E402

from daemon.stack import OWNER  # noqa: E402

RESULTS = ROOT / "bench" / "results"
TREC = ROOT / "data" / "trec6"
TICKS = os.sysconf("SC_CLK_TCK")
CONFIGS = {
    "poll-2s": {"AL_POLL_INTERVAL": "2"},
    "webhook-poll-60s": {"AL_POLL_INTERVAL": "60", "AL_WEBHOOK_URL": "http://127.0.0.1:{port}/webhook"},
}


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime (fields 14 and 15 of stat)


def memory_mb(pid: int) -> dict[str, float]:
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) / 1024
    return values


def measure(name: str, url: str, seconds: float, workdir: Path) -> dict:
    port = free_port()
    extra = {k: v.format(port=port) for k, v in CONFIGS[name].items()}
    env = {
        **os.environ,
        "AL_ARGILLA_URL": url,
        "AL_ARGILLA_API_KEY": OWNER.api_key,
        "AL_DATASET": f"idle-{name}-{uuid.uuid4().hex[:6]}",
        "AL_POOL_FILE": str(TREC / "train.jsonl"),
        "AL_TEST_FILE": str(TREC / "test.jsonl"),
        "AL_STATE_DIR": str(workdir / name / "state"),
        "AL_CACHE_DIR": str(ROOT / "tests" / "output" / "cache"),
        "AL_STATUS_PORT": str(port),
        **extra,
    }
    log = open(workdir / f"{name}.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "daemon.cli", "run"], cwd=ROOT, env=env, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            try:
                status = httpx.get(f"http://127.0.0.1:{port}/status", timeout=2).json()
                if status["state"] == "waiting-for-annotators" and (status.get("batch") or {}).get("logged"):
                    break
            except (httpx.HTTPError, ValueError, KeyError):
                pass
            if proc.poll() is not None:
                raise RuntimeError(f"{name}: the daemon exited ({proc.returncode}); see {log.name}")
            time.sleep(0.5)
        time.sleep(2.0)  # let the start-up's last step settle
        samples = []
        start_cpu, start = cpu_seconds(proc.pid), time.monotonic()
        while time.monotonic() - start < seconds:
            time.sleep(1.0)
            samples.append(
                {"t": time.monotonic() - start, "cpu_s": cpu_seconds(proc.pid) - start_cpu, **memory_mb(proc.pid)}
            )
        wall = samples[-1]["t"]
        busy = samples[-1]["cpu_s"]
        rss = [s["VmRSS"] for s in samples]
        return {
            "config": name,
            "settings": extra,
            "seconds": round(wall, 1),
            "cpu_percent": round(100 * busy / wall, 3),
            "rss_mb_mean": round(sum(rss) / len(rss), 1),
            "rss_mb_max": round(max(rss), 1),
            "peak_rss_mb_whole_run": round(samples[-1]["VmHWM"], 1),
            "samples": samples,
        }
    finally:
        stop_daemon(proc)
        log.close()


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    for row in result["configs"]:
        t = [s["t"] for s in row["samples"]]
        left.plot(t, [s["cpu_s"] for s in row["samples"]], label=f"{row['config']}: {row['cpu_percent']:.2f} % CPU")
        right.plot(t, [s["VmRSS"] for s in row["samples"]], label=f"{row['config']}: {row['rss_mb_max']:.0f} MB")
    left.set(xlabel="seconds idle", ylabel="CPU seconds used", title="CPU while waiting on annotators")
    right.set(xlabel="seconds idle", ylabel="RSS (MB)", title="memory while waiting")
    right.axhline(1536, color="grey", linestyle=":", label="target 1.5 GB")
    right.set_ylim(bottom=0)
    for axis in (left, right):
        axis.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--argilla-url", default=None, help="use a running Argilla (owner key of daemon.stack)")
    args = parser.parse_args()
    stack = None
    url = args.argilla_url
    if url is None:
        stack, url = start_stack()
    try:
        with tempfile.TemporaryDirectory(prefix="bench-idle-") as tmp:
            rows = [measure(name, url, args.seconds, Path(tmp)) for name in args.configs]
    finally:
        if stack is not None:
            stack.down()
    result = {
        "what": "CPU and RSS of the daemon while it waits on annotators (nobody labelling)",
        "date": datetime.date.today().isoformat(),
        "environment": environment(),
        "targets": {"cpu_percent": 1.0, "rss_mb": 1536},
        "configs": rows,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "idle.json").write_text(json.dumps(result, indent=1) + "\n")
    plot(result, RESULTS / "idle.png")
    for row in rows:
        print(
            f"{row['config']}: {row['cpu_percent']:.2f} % CPU, RSS {row['rss_mb_mean']:.0f} MB mean, "
            f"{row['rss_mb_max']:.0f} MB max; peak of the whole run {row['peak_rss_mb_whole_run']:.0f} MB"
        )


if __name__ == "__main__":
    main()
