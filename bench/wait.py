"""How long an annotator waits for the next batch, end to end, against the real local Argilla.

    .venv/bin/python bench/wait.py                                    # all configurations (about 1 h on 2 cores)
    .venv/bin/python bench/wait.py --configs embeddings-inline --rounds 3 --argilla-url http://127.0.0.1:6930

Each configuration runs the daemon as a subprocess (``python -m daemon.cli run``, as the e2e tests do) on its own
dataset and state dir, poll interval ``AL_POLL_INTERVAL=2`` (the default), batch 20, ``AL_STOP_CRITERIA=none`` and
``AL_MAX_ROUNDS`` so that about ``--rounds`` next batches get logged. A simulated annotator (``SimulatedAnnotator``:
the Argilla UI's own HTTP calls with the annotator's key) labels each batch with ``--delay`` seconds per record,
like a person; it timestamps every successful response POST, and whenever its queue is empty it re-reads its
pending queue (``POST /api/v1/me/datasets/{id}/records/search``) every 0.1 s. The wait of round r is

    wait = first time a record of batch r+1 is in the annotator's pending queue - last submit of batch r.

The daemon's own per-round ``seconds`` (``AL_STATE_DIR/state.json``, ``rounds[].seconds``: read, train, evaluate,
query, log, handover, prepare) split it: ``handover`` runs from the poll that found batch r complete to batch r+1
logged; ``detect = wait - handover`` is what the daemon does not time (waiting for its next poll -- or, with
the poll thread to be free -- plus the time until the logged batch shows in the queue, ``visible``, from the
daemon's "batch n logged" log line, millisecond timestamps). ``on_path`` says whether train/evaluate/query were
inside the handover (inline) or off it (ahead: a background thread trains while the next batch is out). In ahead
mode a round whose training was merged into a later one (annotators finished several batches during one training)
has no ``rounds[].seconds``; its handover comes from the journal's ``batches[r+1].handover``.

Configurations: ``hybrid-inline`` (the default model: embeddings + TF-IDF), ``embeddings-inline``,
``transformer-inline`` (fine-tuning the bundled MiniLM every round, annotators wait for it), ``transformer-ahead``
(the batch prepared during labelling is logged at once; training runs on a background thread while people label),
and ``transformer-ahead-fast`` (the same with a near-instant annotator, ``--fast-delay``, who finishes batches
faster than the model trains: the next batch is then queried with the model in hand). With
``--transformer-pool auto`` a probe times one transformer round on the full pool first (cut once it has run 60 s);
above 60 s both transformer configurations use a seeded
random 1,000-text subsample (written to a temporary JSONL; the test set stays whole).

Without ``--argilla-url`` the script starts its own stack (ports 6930/9230/6409, folder .stack/bench, so the test
suite's 6910/9210/6389 are left alone) and stops it at the end. Daemon logs and state dirs go to /tmp/bench-wait,
the embedding cache to tests/output/bench-wait. Writes bench/results/wait.json and wait.png.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import importlib.metadata
import json
import logging
import os
import platform
import re
import signal
import socket
import subprocess
import sys
import time
import traceback
import uuid
from collections import defaultdict
from pathlib import Path

import numpy as np

from daemon.simulate import SimulatedAnnotator, SimulationConfig
from daemon.stack import ANNOTATOR, OWNER

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
WORK = Path("/tmp/bench-wait")
CACHE = ROOT / "tests" / "output" / "bench-wait" / "cache"
TREC = ROOT / "data" / "trec6"
BATCH = 20
POLL_INTERVAL = 2.0
QUEUE_POLL = 0.1
LOAD_MAX = 6.0  # colour scale of the plot's load average
PROBE_LIMIT = 60.0
SUBSAMPLE = 1000
SUBSAMPLE_SEED = 0
CONFIGS = {
    "embeddings-inline": {"model": "embeddings", "training": "inline"},
    "hybrid-inline": {"model": "hybrid", "training": "inline"},
    "transformer-inline": {"model": "transformer", "training": "inline"},
    "transformer-ahead": {"model": "transformer", "training": "ahead"},
    "transformer-ahead-fast": {"model": "transformer", "training": "ahead", "fast": True},
}
PHASES = ("read", "train", "evaluate", "query", "log", "handover", "prepare")
LOG_LINE = re.compile(
    r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) INFO daemon\.loop: batch (\d+) (complete|logged to Argilla)"
)
PROBLEM = re.compile(r"\b(WARNING|ERROR|CRITICAL)\b|Traceback")


class Collect(logging.Handler):
    """Keeps the simulated annotator's warnings (failed queue reads or submits) with their time."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[tuple[float, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append((record.created, record.getMessage().splitlines()[0][:300]))


class TimedAnnotator(SimulatedAnnotator):
    """The simulated annotator, timestamping its submits and when each batch first shows in its pending queue."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.first_seen: dict[int, float] = {}
        self.seen_ids: dict[int, set[str]] = defaultdict(set)
        self.last_submit: dict[int, float] = {}
        self.answered: dict[int, int] = defaultdict(int)
        self.seen_before_previous_done: list[int] = []

    def pending(self) -> list[dict]:
        records = super().pending()
        seen = time.time()
        for record in records:
            batch_id = int(record["metadata"]["batch_id"])
            if batch_id not in self.first_seen:
                self.first_seen[batch_id] = seen
                if batch_id > 0 and self.answered.get(batch_id - 1, 0) < BATCH:
                    self.seen_before_previous_done.append(batch_id)
            self.seen_ids[batch_id].add(str(record.get("external_id") or record["id"]))
        return records

    def answer(self, record: dict) -> None:
        errors = self.counts.errors
        super().answer(record)
        if self.counts.errors == errors:
            batch_id = int(record["metadata"]["batch_id"])
            self.last_submit[batch_id] = time.time()
            self.answered[batch_id] += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--argilla-url", help="use this running server (owner key argilla.apikey) instead of a stack")
    parser.add_argument("--configs", default=",".join(CONFIGS), help=f"comma list of {', '.join(CONFIGS)}")
    parser.add_argument("--rounds", type=int, default=12, help="next batches to measure per configuration")
    parser.add_argument("--delay", type=float, default=1.2, help="annotator seconds per record (a person)")
    parser.add_argument("--fast-delay", type=float, default=0.05, help="per record, transformer-ahead-fast")
    parser.add_argument("--fast-rounds", type=int, default=5, help="rounds of transformer-ahead-fast")
    parser.add_argument("--transformer-pool", default="auto", help="auto | full | N rows (seeded subsample)")
    parser.add_argument("--stall", type=float, default=900.0, help="give up when no next batch after this long")
    parser.add_argument("--plot-only", action="store_true", help="redraw wait.png from bench/results/wait.json")
    parser.add_argument("--merge", action="store_true", help="keep the other configurations already in wait.json")
    parser.add_argument("--note", action="append", default=[], help="a note for the JSON (repeatable)")
    parser.add_argument(
        "--attach", metavar="KEY=PATH", help="store an earlier wait.json's configs, probe and invocations under KEY"
    )
    args = parser.parse_args()
    if args.plot_only:
        plot(json.loads((RESULTS / "wait.json").read_text()))
        return
    configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    unknown = [c for c in configs if c not in CONFIGS]
    if unknown:
        parser.error(f"unknown configuration(s) {unknown}; choose from {list(CONFIGS)}")

    WORK.mkdir(parents=True, exist_ok=True)
    CACHE.mkdir(parents=True, exist_ok=True)
    started = time.time()
    result: dict = {
        "what": "annotator's wait from the last submit of a batch to the next batch in their Argilla queue",
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "environment": environment(),
        "settings": {
            "batch_size": BATCH,
            "poll_interval": POLL_INTERVAL,
            "queue_poll": QUEUE_POLL,
            "stop_criteria": "none",
            "rounds": args.rounds,
            "delay": args.delay,
            "fast_delay": args.fast_delay,
            "fast_rounds": args.fast_rounds,
            "transformer_pool": args.transformer_pool,
            "argv": sys.argv[1:],
        },
        "definitions": {
            "round r": "the daemon's round: batch r seen complete, the model trained on batches 0..r, batch r+1 logged",
            "wait": "first time a record of batch r+1 is in the annotator's pending queue - annotator's last "
            "successful response POST of batch r (both time.time() in this process)",
            "detect": "wait - handover (what the daemon does not time: waiting for its next poll, plus 'visible')",
            "detect_log": "daemon log line 'batch r complete' - last submit (poll wait + read_batch)",
            "visible": "first seen in the queue - daemon log line 'batch r+1 logged to Argilla' (written after the "
            "state save that follows the upload, so a few tens of ms below zero happen)",
            "poll_wait": "detect - visible",
            "read/train/evaluate/query/log/handover/prepare": "the daemon's state.json rounds[r].seconds",
            "other": "handover minus the phases inside it (journaling, state writes)",
            "on_path": "train, evaluate and query happen inside the handover (inline; ahead trains off the path)",
            "subsets": "'all' = every measured round; 'rounds>=1' drops round 0 (0->1: batch 1 is random in ahead "
            "mode, no model before the first labels); 'rounds>=2' drops rounds 0 and 1",
            "p95": "numpy.percentile, linear interpolation: with ~12 rounds it lies between the two largest",
            "load1": "mean 1-min load average (sampled every 5 s) from batch r in the queue to batch r+1 in the "
            "queue: 2 means both cores busy; the machine was shared with other benchmarks and test runs",
        },
        "notes": [
            "The 2-core machine was shared with other CPU-heavy work that came and went during the runs (another "
            "helper's bench/strategies.py transformer runs, a pytest integration/e2e/faults run with its own Argilla "
            "and daemons): absolute seconds are noisy. Each configuration records its busiest processes at start and "
            "its mean load, each round its load1; compare configurations and the shape of the split.",
            "Medians of the parts need not add up to the median wait (each is a median over rounds on its own).",
        ],
        "configs": {},
    }
    result["user_notes"] = list(args.note)
    this_run = {"date": result["date"], "argv": sys.argv[1:], "configs": configs}
    if args.merge and (RESULTS / "wait.json").exists():
        prior = json.loads((RESULTS / "wait.json").read_text())
        result["configs"] = {k: v for k, v in prior["configs"].items() if k not in configs}
        earlier_notes = prior.get("user_notes", prior["notes"][2:])
        result["user_notes"] = earlier_notes + [n for n in args.note if n not in earlier_notes]
        result["invocations"] = prior.get("invocations") or [
            {
                "date": prior["date"],
                "argv": prior["settings"].get("argv"),
                "configs": list(prior["configs"]),
                "wall_seconds": prior.get("wall_seconds"),
                "error": prior.get("error"),
                "environment": prior["environment"],
            }
        ]
        if "probe" in prior:
            result["probe"] = prior["probe"]
        if "under_load" in prior:
            result["under_load"] = prior["under_load"]
    result["notes"] += result["user_notes"]
    result.setdefault("invocations", []).append(this_run)
    if args.attach:
        key, path = args.attach.split("=", 1)
        earlier = json.loads(Path(path).read_text())
        result[key] = {k: earlier.get(k) for k in ("notes", "probe", "invocations", "configs")}
    stack = None
    try:
        if args.argilla_url:
            url = args.argilla_url.rstrip("/")
            result["argilla"] = {"url": url, "stack": "external (--argilla-url)"}
        else:
            stack, url = start_stack()
            result["argilla"] = {"url": url, "stack": "own local stack: .stack/bench, ports 6930/9230/6409"}
        result["argilla"]["server_status"] = server_status(url)

        pools = {"full": TREC / "train.jsonl"}
        transformer_pool = TREC / "train.jsonl"
        if any(CONFIGS[c]["model"] == "transformer" for c in configs):
            transformer_pool, probe = choose_transformer_pool(args, url)
            if "probe" in result and args.transformer_pool != "auto":
                this_run["transformer_pool"] = probe  # the probe that decided it is the earlier one, kept
            else:
                result["probe"] = probe
            pools["transformer"] = transformer_pool
            save(result)
        for name in configs:
            spec = CONFIGS[name]
            fast = spec.get("fast", False)
            pool = transformer_pool if spec["model"] == "transformer" else pools["full"]
            print(f"== {name}", flush=True)
            outcome = run_config(
                name,
                url,
                model=spec["model"],
                training=spec["training"],
                pool_file=pool,
                delay=args.fast_delay if fast else args.delay,
                rounds=args.fast_rounds if fast else args.rounds,
                stall=args.stall,
            )
            result["configs"][name] = outcome
            summary = outcome["stats"]["all"]["wait"]
            print(f"   wait p50 {summary['p50']} p95 {summary['p95']} max {summary['max']} (n={summary['n']})")
            save(result)
    except (Exception, KeyboardInterrupt):  # noqa: BLE001 - keep what was measured, say what broke
        result["error"] = traceback.format_exc()
        print(result["error"], file=sys.stderr)
    finally:
        if stack is not None:
            stack.down()
        result["wall_seconds"] = round(time.time() - started, 1)
        this_run["wall_seconds"] = result["wall_seconds"]
        this_run["error"] = result.get("error")
        this_run["environment"] = result["environment"]
        result["environment"]["loadavg_end"] = os.getloadavg()
        save(result)
        if result["configs"]:
            plot(result)
    if "error" in result:
        sys.exit(1)


# ---- set-up ----------------------------------------------------------------------------------------------------
def start_stack():
    from daemon.stack import Stack, StackConfig

    config = StackConfig(
        run_dir=ROOT / ".stack" / "bench",
        venv_dir=ROOT / ".stack" / "venv",
        argilla_port=6930,
        search_port=9230,
        redis_port=6409,
    )
    stack = Stack(config)
    stack.reset()
    stack.up()
    return stack, config.url


def server_status(url: str) -> dict | None:
    import httpx

    try:
        return httpx.get(f"{url}/api/v1/status", headers={"X-Argilla-Api-Key": OWNER.api_key}, timeout=10).json()
    except (httpx.HTTPError, ValueError):
        return None


def environment() -> dict:
    versions = {}
    for package in ("torch", "transformers", "small-text", "scikit-learn", "numpy", "httpx", "sentence-transformers"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    stack_site = sorted((ROOT / ".stack" / "venv" / "lib").glob("python3*/site-packages/argilla_server-*.dist-info"))
    versions["argilla-server"] = stack_site[0].name.removesuffix(".dist-info").split("-")[1] if stack_site else None
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "daemon"], cwd=ROOT, capture_output=True, text=True)
    return {
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": versions,
        "git_commit": commit.stdout.strip(),
        "daemon_dir_uncommitted_changes": len(dirty.stdout.splitlines()),
        "loadavg_start": os.getloadavg(),
    }


def daemon_code_hash() -> str:
    """The daemon's code as each subprocess starts (daemon/ was being edited by someone else during the runs)."""
    digest = hashlib.sha256()
    for path in sorted((ROOT / "daemon").rglob("*.py")):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def load_pool(pool_file: Path):
    from daemon.app import load_data
    from daemon.config import Settings

    return load_data(Settings(_env_file=None, pool_file=pool_file, test_file=TREC / "test.jsonl"))


def write_subsample(size: int) -> Path:
    """A seeded random subsample of the deduplicated pool, as bench/strategies.py draws it."""
    data = load_pool(TREC / "train.jsonl")
    pool = data.pool
    picked = sorted(np.random.default_rng(SUBSAMPLE_SEED).choice(len(pool), size, replace=False).tolist())
    path = WORK / f"trec6-train-{size}-seed{SUBSAMPLE_SEED}.jsonl"
    rows = [{"id": pool.ids[i], "text": pool.texts[i], "label": pool.gold[i]} for i in picked]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def choose_transformer_pool(args, url: str) -> tuple[Path, dict]:
    """Full pool, a fixed subsample, or (auto) a probe: one transformer round on the full pool, subsample if > 60 s."""
    choice = args.transformer_pool
    if choice == "full":
        return TREC / "train.jsonl", {"decision": "full pool (--transformer-pool full)"}
    if choice != "auto":
        return write_subsample(int(choice)), {"decision": f"subsample of {int(choice)} (--transformer-pool)"}
    print("== probe: one transformer round on the full pool", flush=True)
    outcome = run_config(
        "probe-transformer-full",
        url,
        model="transformer",
        training="inline",
        pool_file=TREC / "train.jsonl",
        delay=args.fast_delay,
        rounds=1,
        stall=args.stall,
        probe=True,
    )
    seconds = outcome["rounds"][0]["seconds"] if outcome["rounds"] else {}
    round_seconds = seconds.get("handover")
    probe = {
        "what": "round 0 (20 labels) of transformer-inline on the full pool, seconds from batch complete to logged; "
        f"cut (daemon SIGTERMed) once it ran {PROBE_LIMIT:g} s without finishing",
        "pool_size": outcome["pool_size"],
        "verdict": outcome.get("probe"),
        "round_seconds": round_seconds,
        "seconds": seconds,
        "limit": PROBE_LIMIT,
        "wall_seconds": outcome["wall_seconds"],
        "daemon_log": outcome["daemon_log"],
    }
    if round_seconds is None or round_seconds > PROBE_LIMIT:
        probe["decision"] = (
            f"subsample: {SUBSAMPLE} texts drawn with numpy default_rng({SUBSAMPLE_SEED}) from the deduplicated "
            "pool, for both transformer configurations (test set whole)"
        )
        path = write_subsample(SUBSAMPLE)
    else:
        probe["decision"] = "full pool"
        path = TREC / "train.jsonl"
    print(f"   probe {probe['verdict']} -> {probe['decision']}", flush=True)
    return path, probe


# ---- one configuration ----------------------------------------------------------------------------------------
def run_config(
    name: str,
    url: str,
    *,
    model: str,
    training: str,
    pool_file: Path,
    delay: float,
    rounds: int,
    stall: float,
    probe: bool = False,
) -> dict:
    """Run the daemon with a timed annotator until it stops by itself (AL_MAX_ROUNDS); collect every round."""
    run_id = uuid.uuid4().hex[:6]
    dataset = f"bench-wait-{name}-{run_id}"
    state_dir = WORK / f"{name}-{run_id}" / "state"
    log_path = WORK / f"{name}-{run_id}.log"
    # a label budget of (rounds + 1) batches: inline, round `rounds` reaches it and stops without a next batch ->
    # `rounds` next batches; ahead hands out batches while models train, so a few more (a fast annotator labels
    # the pool up before the first model is ready: the run then ends when the pool is used up)
    cap = {"AL_MAX_ROUNDS": "2"} if probe else {"AL_MAX_LABELS": str(BATCH * (rounds + 1))}
    data = load_pool(pool_file)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AL_")},
        "AL_ARGILLA_URL": url,
        "AL_ARGILLA_API_KEY": OWNER.api_key,
        "AL_DATASET": dataset,
        "AL_POOL_FILE": str(pool_file),
        "AL_TEST_FILE": str(TREC / "test.jsonl"),
        "AL_STATE_DIR": str(state_dir),
        "AL_CACHE_DIR": str(CACHE),
        "AL_POLL_INTERVAL": str(POLL_INTERVAL),
        "AL_STATUS_PORT": str(free_port()),
        "AL_MODEL": model,
        "AL_TRAINING": training,
        "AL_BATCH_SIZE": str(BATCH),
        "AL_STOP_CRITERIA": "none",
        **cap,
        "AL_SEED": "0",
        "AL_LOG_LEVEL": "INFO",
        "AL_LOG_FORMAT": "text",
    }
    gold = dict(zip(data.pool.texts, data.pool.gold, strict=True))
    annotator = TimedAnnotator(
        SimulationConfig(
            argilla_url=url,
            api_key=ANNOTATOR.api_key,
            dataset=dataset,
            delay=delay,
            poll_interval=QUEUE_POLL,
        ),
        gold,
        data.labels,
    )
    outcome: dict = {
        "model": model,
        "training": training,
        "dataset": dataset,
        "pool_file": str(pool_file.relative_to(ROOT) if pool_file.is_relative_to(ROOT) else pool_file),
        "pool_size": len(data.pool),
        "test_size": len(data.y_test) if data.y_test is not None else None,
        "annotator_delay": delay,
        "cap": cap,
        "daemon_log": str(log_path),
        "state_dir": str(state_dir),
        "daemon_code": daemon_code_hash(),
    }
    started = time.time()
    log_file = open(log_path, "ab")  # noqa: SIM115 - held open for the subprocess's lifetime
    proc = subprocess.Popen(
        [sys.executable, "-m", "daemon.cli", "run"],
        cwd=ROOT,
        env=env,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    warnings = Collect()
    logging.getLogger("daemon.simulate").addHandler(warnings)
    thread = annotator.start_thread()
    problem = None
    load: list[tuple[float, float]] = []  # (time, 1-min load average), every 5 s
    outcome["busiest_processes_at_start"] = busiest()
    try:
        while proc.poll() is None:
            time.sleep(0.5)
            if len(load) < (time.time() - started) / 5:
                load.append((time.time(), os.getloadavg()[0]))
            if probe:
                outcome["probe"] = probe_verdict(state_dir, log_path, env["AL_STATUS_PORT"])
                if outcome["probe"]:
                    break
            problem = stalled(annotator, stall)
            if problem:
                break
    finally:
        if proc.poll() is None:
            stop_daemon(proc)
        annotator.stop()
        thread.join(timeout=30)
        log_file.close()
        logging.getLogger("daemon.simulate").removeHandler(warnings)
    outcome["exit_code"] = proc.returncode
    outcome["wall_seconds"] = round(time.time() - started, 1)
    values = [v for _, v in load]
    outcome["loadavg_1min"] = {"mean": round(float(np.mean(values)), 2), "max": max(values)} if load else None
    outcome["annotator"] = {
        "submitted": annotator.counts.submitted,
        "errors": annotator.counts.errors,
        "batches_seen_before_previous_done": annotator.seen_before_previous_done,
        "warnings": len(warnings.records),
        "warnings_after_batch_0_seen": sum(t > annotator.first_seen.get(0, float("inf")) for t, _ in warnings.records),
        "first_warnings": [message for _, message in warnings.records[:5]],
    }
    if problem:
        outcome["problem"] = problem
    state = json.loads((state_dir / "state.json").read_text()) if (state_dir / "state.json").exists() else {}
    log_times, problems = parse_log(log_path)
    outcome["daemon_log_problems"] = problems
    outcome["stop_reason"] = state.get("stopped")
    outcome["rounds"] = collect_rounds(annotator, state, log_times, training, load)
    outcome["checks"] = check_batches(annotator, state)
    outcome["stats"] = summarise(outcome["rounds"])
    return outcome


def probe_verdict(state_dir: Path, log_path: Path, status_port: str) -> str | None:
    """None while the probe round runs; 'finished' once round 0 is journaled, 'exceeded ...' past the limit."""
    try:
        state = json.loads((state_dir / "state.json").read_text())
    except (OSError, ValueError):
        state = {}
    if any(r["round"] == 0 and "handover" in r.get("seconds", {}) for r in state.get("rounds", [])):
        return "finished"
    complete = parse_log(log_path)[0]["complete"].get(0)
    if complete is None or time.time() - complete < PROBE_LIMIT:
        return None
    import httpx

    try:
        phase = httpx.get(f"http://127.0.0.1:{status_port}/status", timeout=5).json().get("state")
    except (httpx.HTTPError, ValueError):
        phase = None
    return f"exceeded: round 0 still running {time.time() - complete:.0f} s after batch 0 was complete (phase {phase})"


def busiest() -> list[str]:
    """The machine's busiest processes (the box was shared): %CPU and the command, cut short."""
    proc = subprocess.run(["ps", "-eo", "pcpu,args", "--sort=-pcpu"], capture_output=True, text=True)
    return [" ".join(line.split())[:140] for line in proc.stdout.splitlines()[1:6]]


def stalled(annotator: TimedAnnotator, stall: float) -> str | None:
    """A batch answered in full whose successor has not shown up within ``stall`` seconds."""
    done = [b for b, n in annotator.answered.items() if n >= BATCH]
    if not done:
        return None
    last = max(done)
    if last + 1 in annotator.first_seen:
        return None
    waited = time.time() - annotator.last_submit[last]
    if waited > stall:
        return f"batch {last + 1} did not appear within {stall:.0f} s of the last submit of batch {last}"
    return None


def stop_daemon(proc: subprocess.Popen) -> None:
    """SIGTERM the daemon (it leaves the round at the next step boundary), SIGKILL it after 60 s."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=30)


def parse_log(path: Path) -> tuple[dict, list[str]]:
    """Millisecond timestamps of 'batch n complete' / 'batch n logged to Argilla', and every warning or error."""
    times: dict = {"complete": {}, "logged": {}}
    problems: list[str] = []
    for line in path.read_text(errors="replace").splitlines():
        match = LOG_LINE.match(line)
        if match:
            stamp = datetime.datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
            kind = "complete" if match.group(3) == "complete" else "logged"
            times[kind].setdefault(int(match.group(2)), stamp)
        elif PROBLEM.search(line) and "duplicate text" not in line:
            problems.append(line[:400])
    return times, problems[:40]


def collect_rounds(
    annotator: TimedAnnotator, state: dict, log_times: dict, training: str, load: list[tuple[float, float]]
) -> list[dict]:
    seconds_by_round = {m["round"]: m for m in state.get("rounds", [])}
    rows = []
    for r in sorted(annotator.last_submit):
        if annotator.answered[r] < BATCH or r + 1 not in annotator.first_seen:
            continue
        wait = annotator.first_seen[r + 1] - annotator.last_submit[r]
        metrics = seconds_by_round.get(r, {})
        seconds = {k: round(v, 4) for k, v in metrics.get("seconds", {}).items()}
        on_path = training == "inline"
        batches = state.get("batches", [])
        if len(batches) > r + 1 and batches[r + 1].get("handover") is not None:
            seconds.setdefault("handover", batches[r + 1]["handover"])
        row = {
            "round": r,
            "labels": metrics.get("labels"),
            "accuracy": metrics.get("accuracy"),
            "wait": round(wait, 3),
            "seconds": seconds,
            "on_path": on_path,
        }
        # the machine was shared: mean 1-min load average from batch r in the queue to batch r+1 in the queue
        window = [v for t, v in load if annotator.first_seen.get(r, 0.0) <= t <= annotator.first_seen[r + 1]]
        row["load1"] = round(float(np.mean(window)), 2) if window else None
        if "handover" in seconds:
            row["detect"] = round(wait - seconds["handover"], 3)
            inside = ["read", "log"] + (["train", "evaluate", "query"] if on_path else [])
            row["other"] = round(seconds["handover"] - sum(seconds.get(k, 0.0) for k in inside), 4)
        if r in log_times["complete"]:
            row["detect_log"] = round(log_times["complete"][r] - annotator.last_submit[r], 3)
        if r + 1 in log_times["logged"]:
            row["visible"] = round(annotator.first_seen[r + 1] - log_times["logged"][r + 1], 3)
            if "detect" in row:
                row["poll_wait"] = round(row["detect"] - row["visible"], 3)
        rows.append(row)
    return rows


def check_batches(annotator: TimedAnnotator, state: dict) -> dict:
    """What the annotator saw against the daemon's journal: right records per batch, one batch at a time."""
    journal = {b["batch_id"]: set(b["record_ids"]) for b in state.get("batches", [])}
    mismatched = [b for b, ids in annotator.seen_ids.items() if journal.get(b) != ids]
    sizes = sorted({len(ids) for ids in annotator.seen_ids.values()})
    return {
        "batches_seen": sorted(annotator.seen_ids),
        "batch_sizes_seen": sizes,
        "batches_not_matching_journal": mismatched,
        "early_batches": annotator.seen_before_previous_done,
        "ok": not mismatched and sizes == [BATCH] and not annotator.seen_before_previous_done,
    }


def stats(values: list[float]) -> dict:
    if not values:
        return {"n": 0}
    array = np.asarray(values, dtype=float)
    return {
        "n": len(values),
        "p50": round(float(np.percentile(array, 50)), 3),
        "p95": round(float(np.percentile(array, 95)), 3),
        "max": round(float(array.max()), 3),
        "mean": round(float(array.mean()), 3),
        "min": round(float(array.min()), 3),
    }


def summarise(rows: list[dict]) -> dict:
    out = {}
    for subset, first in (("all", 0), ("rounds>=1", 1), ("rounds>=2", 2)):
        chosen = [r for r in rows if r["round"] >= first]
        medians = {}
        for key in ("detect", "detect_log", "visible", "poll_wait", "other"):
            values = [r[key] for r in chosen if key in r]
            medians[key] = round(float(np.median(values)), 3) if values else None
        for phase in PHASES:
            values = [r["seconds"][phase] for r in chosen if phase in r["seconds"]]
            medians[phase] = round(float(np.median(values)), 3) if values else None
        out[subset] = {"rounds": [r["round"] for r in chosen], "wait": stats([r["wait"] for r in chosen])}
        out[subset]["median"] = medians
    return out


def save(result: dict) -> None:
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "wait.json").write_text(json.dumps(result, indent=1) + "\n")


# ---- plot -----------------------------------------------------------------------------------------------------
SPLIT = [
    ("poll_wait", "until the daemon polls", "#bbbbbb"),
    ("read", "read + reconcile", "#8da0cb"),
    ("train", "train + evaluate (on path)", "#e78ac3"),
    ("query", "query (on path)", "#a6d854"),
    ("log", "log batch", "#ffd92f"),
    ("other", "other handover", "#e5c494"),
    ("visible", "logged -> in queue", "#66c2a5"),
]


def plot(result: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.cm
    import matplotlib.colors
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    names = list(result["configs"])
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 5.6), gridspec_kw={"width_ratios": [1, 1.15]})
    data = [[r["wait"] for r in result["configs"][n]["rounds"]] for n in names]
    left.boxplot(data, showfliers=False, widths=0.5)
    rng = np.random.default_rng(0)
    cmap = matplotlib.colormaps["viridis"]
    loaded = (result.get("under_load") or {}).get("configs") or {}
    for i, name in enumerate(names, start=1):
        if name in loaded:
            waits = [r["wait"] for r in loaded[name]["rounds"]]
            left.scatter([i + 0.33] * len(waits), waits, s=14, marker="x", color="0.55", zorder=2)
        rows = result["configs"][name]["rounds"]
        for r in rows:
            early = r["round"] < 2
            colour = cmap(min(1.0, (r.get("load1") or 0.0) / LOAD_MAX)) if r.get("load1") is not None else "C0"
            left.scatter(
                i + rng.uniform(-0.12, 0.12),
                r["wait"],
                s=20,
                facecolors="none" if early else colour,
                edgecolors="C3" if early else colour,
                zorder=3,
            )
    if any(r.get("load1") is not None for n in names for r in result["configs"][n]["rounds"]):
        scale = matplotlib.cm.ScalarMappable(matplotlib.colors.Normalize(0, LOAD_MAX), cmap)
        fig.colorbar(scale, ax=left, pad=0.01, fraction=0.04).set_label("1-min load average (2 cores)", fontsize=8)
    left.set_xticks(range(1, len(names) + 1), [label(result, n) for n in names], fontsize=7.5)
    left.set_yscale("log")
    left.yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    left.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    left.set_ylabel("wait: last submit -> next batch in queue (s)")
    title = "Annotator's wait per round (hollow red: rounds 0-1"
    left.set_title(title + (";\ngrey x: the same under heavy CPU load)" if loaded else ")"), fontsize=10)
    left.grid(axis="y", alpha=0.3)

    for i, name in enumerate(names):
        medians = result["configs"][name]["stats"]["rounds>=2"]["median"]
        on_path = result["configs"][name]["training"] == "inline"
        parts = []
        for key, _, _ in SPLIT:
            value = max(0.0, medians.get(key) or 0.0)
            if key == "train":
                value = ((medians.get("train") or 0.0) + (medians.get("evaluate") or 0.0)) if on_path else 0.0
            if key == "query" and not on_path:
                value = 0.0
            parts.append(value)
        total = sum(parts) or 1.0
        base = 0.0
        for value, (_, legend, colour) in zip(parts, SPLIT, strict=True):
            share = 100 * value / total
            right.barh(i, share, left=base, height=0.5, color=colour, label=legend if i == 0 else None)
            if share >= 8:
                right.text(base + share / 2, i, f"{value:.3g} s", ha="center", va="center", fontsize=7)
            base += share
        wait = result["configs"][name]["stats"]["rounds>=2"]["wait"].get("p50")
        note = f"median wait {wait:.3g} s" if wait is not None else "no rounds >= 2"
        if not on_path and medians.get("train") is not None:
            off = (medians.get("train") or 0.0) + (medians.get("evaluate") or 0.0)
            note += f"; off the path: train + evaluate {off:.3g} s, prepare {medians.get('prepare') or 0:.2g} s"
        right.text(0, i - 0.33, note, va="bottom", fontsize=7.5)
    right.set_yticks(range(len(names)), [label(result, n) for n in names], fontsize=7.5)
    right.set_ylim(len(names) - 0.5, -0.8)
    right.set_xlim(0, 100)
    right.set_xlabel("share of the summed medians (%), rounds >= 2")
    right.set_title("Where the wait goes (median per part, rounds >= 2)", fontsize=10)
    right.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=3, frameon=False)
    fig.suptitle(
        f"TREC-6, batch {BATCH}, poll {POLL_INTERVAL:g} s, real local Argilla 2.8, 2 shared CPU cores", fontsize=10
    )
    fig.tight_layout()
    fig.savefig(RESULTS / "wait.png", dpi=90)


def label(result: dict, name: str) -> str:
    config = result["configs"][name]
    model, mode = name.split("-", 1)
    return f"{model}\n{mode}\npool {config['pool_size']}, {config['annotator_delay']:g} s/rec"


if __name__ == "__main__":
    main()
