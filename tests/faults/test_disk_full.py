"""The disk fills up (a file-size limit of 0 bytes, RLIMIT_FSIZE: every write to a regular file fails with EFBIG,
as on a full disk) at each step of a round that writes a file, then the space comes back: the journal on disk
stays whole, nothing is logged to Argilla that is not journaled, the daemon says `degraded` with "cannot write
..." and retries, and resumes by itself. Also the issue's reproduction (`ulimit -f 40` for the whole run) and a
SIGTERM while the disk is full (exit 75, never 0 with work unsaved)."""

from __future__ import annotations

import json
import resource
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from daemon.simulate import wait_for
from daemon.state import StateStore
from tests.conftest import ROOT, write_jsonl
from tests.e2e.conftest import get_status, simulated_annotator, wait_or_dump
from tests.faults.conftest import assert_clean, audit, cli

pytestmark = pytest.mark.faults

POINTS = [("after_read", 1), ("after_training", 2), ("after_query", 3), ("after_log", 4), ("export", 5)]
SIGTERM_AT = "after_query"  # a stop asked for while the disk is full, instead of the space coming back
WHERE = {
    "after_read": "closing a batch (its labels' journal)",
    "after_training": "writing the round's pool predictions",
    "after_query": "journaling the next batch (before it is logged)",
    "after_log": "journaling the next batch as logged",
    "export": "writing the export",
}


def run_env(trec_env: dict, **settings: str) -> dict:
    """The daemon's environment for these faults: TREC-6, batches of 10, caps only, a quick poll."""
    return trec_env["env"] | {"AL_BATCH_SIZE": "10", "AL_STOP_CRITERIA": "never", "AL_POLL_INTERVAL": "0.3"} | settings


def launch(args: list[str], env: dict, log: Path, fsize: int | None = None) -> subprocess.Popen:
    """The daemon with its output through a pipe (as `| cat > log`: the file-size limit must not hit its log)."""

    def limit() -> None:
        if fsize is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, resource.RLIM_INFINITY))

    process = subprocess.Popen(
        [sys.executable, *args], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, preexec_fn=limit
    )

    def copy() -> None:
        with open(log, "ab") as out:
            for line in process.stdout:
                out.write(line)
                out.flush()

    threading.Thread(target=copy, daemon=True).start()
    return process


def clean_up(person, *processes) -> None:
    person.stop()
    for process in processes:
        if process is not None and process.poll() is None:
            process.kill()


def space_back(process: subprocess.Popen) -> None:
    resource.prlimit(process.pid, resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))


def wait_degraded(port: int, process: subprocess.Popen, log: Path, timeout: float = 300) -> dict:
    found: dict = {}

    def degraded() -> bool:
        assert process.poll() is None, f"the daemon exited ({process.returncode}): " + log.read_text()[-3000:]
        status = get_status(port) or {}
        if status.get("state") == "degraded" and "cannot write" in (status.get("reason") or ""):
            found.update(status)
            return True
        return False

    assert wait_for(degraded, timeout, interval=0.2), log.read_text()[-3000:]
    return found


def wait_resumed(port: int, process: subprocess.Popen, timeout: float = 120) -> bool:
    """Not degraded any more (or finished)."""
    return wait_for(
        lambda: process.poll() is not None or (get_status(port) or {}).get("state") not in (None, "degraded"), timeout
    )


def leftovers(state_dir: Path) -> list[str]:
    """Temporary files or folders of interrupted writes anywhere under the state dir (the cache aside)."""
    return sorted(str(p.relative_to(state_dir)) for p in state_dir.rglob("*") if ".tmp-" in p.name or ".old-" in p.name)


def max_batch_in_argilla(stack: dict, dataset: str) -> int:
    import httpx

    http = httpx.Client(base_url=stack["url"], headers={"X-Argilla-Api-Key": stack["owner_key"]}, timeout=30)
    found = next(d for d in http.get("/api/v1/me/datasets").json()["items"] if d["name"] == dataset)
    items = http.get(f"/api/v1/datasets/{found['id']}/records", params={"limit": 1000}).json()["items"]
    return max(int(r["metadata"]["batch_id"]) for r in items)


def test_disk_full_at_each_step_then_space_back(argilla_stack, dataset_name, trec_env, trec_data, tmp_path, results):
    """One run, the disk full once at each step that writes (a later round each time), the space back after each.
    At one of them a SIGTERM comes instead of the space: exit 75 (never 0 with the last step unsaved), and the
    restarted daemon resumes from the journal on disk."""
    env = run_env(
        trec_env,
        AL_MAX_ROUNDS="6",
        AL_FAULT_POINT=",".join(f"disk_{point}@{round_number}" for point, round_number in POINTS),
        AL_FAULT_MARKER=str(tmp_path / "filled"),
    )
    state_dir, log, port = trec_env["state_dir"], trec_env["log"], trec_env["port"]
    person = simulated_annotator(argilla_stack, dataset_name, trec_data, discard_rate=0.1, seed=6)
    person.start_thread()
    daemon = launch(["tests/faults/crash_at.py"], env, log)
    seen = {}
    try:
        for point, _ in POINTS:
            degraded = wait_degraded(port, daemon, log)
            assert (tmp_path / "filled").read_text().split()[-1] == f"disk_{point}"
            journal = StateStore(state_dir).load()  # whole and readable while the disk is full
            logged = max_batch_in_argilla(argilla_stack, dataset_name)
            # nothing in Argilla the journal does not know: a batch is logged only once it is journaled
            assert logged <= journal.current.batch_id, (point, logged, journal.current.batch_id)
            time.sleep(2)  # the daemon keeps retrying with backoff while the disk stays full
            assert daemon.poll() is None and (get_status(port) or {}).get("state") == "degraded"
            assert leftovers(state_dir) == [], point  # every failed write removed its temporary file
            seen[point] = degraded["reason"].replace(str(state_dir), "<state>")
            if point == SIGTERM_AT:
                daemon.send_signal(signal.SIGTERM)
                assert daemon.wait(timeout=120) == 75, log.read_text()[-3000:]
                daemon = launch(["tests/faults/crash_at.py"], env, log)  # space back, as after a restart
            else:
                space_back(daemon)
            assert wait_resumed(port, daemon) and daemon.poll() in (None, 0), log.read_text()[-3000:]
        assert wait_or_dump(daemon, log, 300) == 0, log.read_text()[-3000:]
    finally:
        clean_up(person, daemon)
    checks = audit(argilla_stack, dataset_name, state_dir)
    for point, round_number in POINTS:
        then = "SIGTERM: exit 75, restarted" if point == SIGTERM_AT else "space back"
        results(
            f"disk full when {WHERE[point]}, round {round_number}; then {then}",
            f"degraded (`{seen[point][:80]}`), resumed",
            checks,
        )
    assert_clean(checks)
    assert checks["stopped"].startswith("max_rounds") and checks["rounds"] == 6 and checks["batches"] == 6
    assert leftovers(state_dir) == []
    report = json.loads((state_dir / "export" / "report.json").read_text())
    assert report["rounds"] == 6
    assert person.counts.errors == 0


def small_trec(tmp_path: Path, trec_data, texts: int) -> tuple[Path, Path]:
    pool = [
        {"id": f"p{i}", "text": text, "label": label}
        for i, (text, label) in enumerate(zip(trec_data.pool.texts[:texts], trec_data.pool.gold[:texts], strict=True))
    ]
    test = [
        {"id": f"t{i}", "text": text, "label": label}
        for i, (text, label) in enumerate(zip(trec_data.test.texts[:100], trec_data.test.gold[:100], strict=True))
    ]
    return write_jsonl(tmp_path / "pool.jsonl", pool), write_jsonl(tmp_path / "test.jsonl", test)


LIMIT = 20 * 1024


def test_file_size_limit_for_the_whole_run(argilla_stack, dataset_name, trec_env, trec_data, tmp_path, results):
    """The issue's reproduction at half the size: `ulimit -f 20` (20 KiB) for the whole run, 100 TREC texts, tfidf,
    batches of 10, the simulated annotator (0.1 cut state.json at the limit and exited 0, unresumable)."""
    pool, test = small_trec(tmp_path, trec_data, 100)
    env = run_env(trec_env) | {
        "AL_POOL_FILE": str(pool),
        "AL_TEST_FILE": str(test),
        "AL_MODEL": "tfidf",
        "AL_CACHE_DIR": str(tmp_path / "cache"),
    }
    state_dir, log, port = trec_env["state_dir"], trec_env["log"], trec_env["port"]
    person = simulated_annotator(argilla_stack, dataset_name, trec_data, seed=7)
    person.start_thread()
    daemon = launch(["-m", "daemon.cli", "run"], env, log, fsize=LIMIT)
    try:
        degraded = wait_degraded(port, daemon, log, timeout=600)
        journal_size = (state_dir / "state.json").stat().st_size
        assert journal_size <= LIMIT and StateStore(state_dir).load() is not None
        assert leftovers(state_dir) == []
        space_back(daemon)
        assert wait_or_dump(daemon, log, 600) == 0, log.read_text()[-3000:]
    finally:
        clean_up(person, daemon)
    checks = audit(argilla_stack, dataset_name, state_dir)
    results(
        "file-size limit 20 KiB for the whole run (`ulimit -f 20`), then lifted",
        f"degraded at {journal_size:,} bytes of journal (`{degraded['reason'].split(': ', 1)[-1][:40]}`), resumed",
        checks,
    )
    assert_clean(checks)
    assert checks["stopped"].startswith("pool exhausted") and checks["labels"] == 100
    assert leftovers(state_dir) == []


def test_a_journal_cut_short_by_an_older_version_is_recovered(
    argilla_stack, dataset_name, trec_env, trec_data, tmp_path, results
):
    """al-daemon 0.1 on a full disk renamed a short state.json over the good one: the start refuses and says
    how to recover; `al-daemon recover` rebuilds the journal from Argilla and the run goes on, nothing lost."""
    env = run_env(trec_env, AL_MAX_LABELS="40")  # a cap the rebuilt journal counts too (rounds start again)
    state_dir, log, port = trec_env["state_dir"], trec_env["log"], trec_env["port"]
    person = simulated_annotator(argilla_stack, dataset_name, trec_data, discard_rate=0.1, seed=9)
    thread = person.start_thread()
    daemon = launch(["-m", "daemon.cli", "run"], env, log)
    try:
        assert wait_for(lambda: (get_status(port) or {}).get("round", 0) >= 2, 300), log.read_text()[-3000:]
        person.stop()
        thread.join(timeout=30)
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=120) == 0
        journal = state_dir / "state.json"
        whole = journal.read_bytes()
        journal.write_bytes(whole[: len(whole) // 2])  # what 0.1 left: the first half, renamed over the journal
        refused = cli("run", env)
        assert refused.returncode == 2 and "the journal is cut short" in refused.stderr, refused.stderr
        assert "al-daemon recover" in refused.stderr
        recovered = cli("recover", env)
        assert recovered.returncode == 0, recovered.stdout + recovered.stderr
        assert "rebuilt" in recovered.stdout and len(list(state_dir.glob("state.json.broken-*"))) == 1
        person = simulated_annotator(argilla_stack, dataset_name, trec_data, discard_rate=0.1, seed=10)
        person.start_thread()
        daemon = launch(["-m", "daemon.cli", "run"], env, log)
        assert wait_or_dump(daemon, log, 300) == 0, log.read_text()[-3000:]
    finally:
        clean_up(person, daemon)
    checks = audit(argilla_stack, dataset_name, state_dir)
    results(
        "state cut short by al-daemon 0.1 (full disk)", "start refused (exit 2, says how); `recover`; finished", checks
    )
    assert_clean(checks)
    assert checks["stopped"].startswith("max_labels") and checks["labels"] >= 40
