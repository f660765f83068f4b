"""The daemon end to end on TREC-6: real Argilla, the simulated annotator, a kill -9 between rounds."""

import os
import signal
import subprocess
import sys
import time
from collections import Counter

import httpx
import pytest

from daemon.app import load_data
from daemon.config import Settings
from daemon.simulate import SimulatedAnnotator, SimulationConfig, wait_for
from tests.conftest import OUTPUT, ROOT, TREC, free_port

pytestmark = pytest.mark.e2e


def start_daemon(env: dict, log_path) -> subprocess.Popen:
    log = open(log_path, "ab")
    return subprocess.Popen(
        [sys.executable, "-m", "daemon.cli", "run"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
    )


def status(port: int) -> dict | None:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/status", timeout=2).json()
    except httpx.HTTPError:
        return None


def test_rounds_kill_restart_and_continue(argilla_stack, dataset_name, cache_dir, tmp_path):
    import argilla as rg

    port = free_port()
    env = {
        **os.environ,
        "AL_ARGILLA_URL": argilla_stack["url"],
        "AL_ARGILLA_API_KEY": argilla_stack["owner_key"],
        "AL_DATASET": dataset_name,
        "AL_POOL_FILE": str(TREC / "train.jsonl"),
        "AL_TEST_FILE": str(TREC / "test.jsonl"),
        "AL_STATE_DIR": str(tmp_path / "state"),
        "AL_CACHE_DIR": str(cache_dir),
        "AL_STOPPING_RULE": "max_rounds",
        "AL_MAX_ROUNDS": "5",
        "AL_POLL_INTERVAL": "0.5",
        "AL_STATUS_PORT": str(port),
    }
    settings = Settings(_env_file=None, pool_file=TREC / "train.jsonl", test_file=TREC / "test.jsonl")
    data = load_data(settings)
    gold = dict(zip(data.pool.texts, data.pool.gold, strict=True))
    config = SimulationConfig(
        argilla_url=argilla_stack["url"],
        api_key=argilla_stack["annotator_key"],
        dataset=dataset_name,
        delay=0.01,
        discard_rate=0.1,
        seed=1,
    )
    person = SimulatedAnnotator(config, gold, data.labels)
    person.start_thread()
    log_path = OUTPUT / f"{dataset_name}.log"
    OUTPUT.mkdir(parents=True, exist_ok=True)
    daemon = start_daemon(env, log_path)
    try:
        assert wait_for(lambda: (status(port) or {}).get("round", 0) >= 2, timeout=300), log_path.read_text()[-3000:]
        mid = status(port)
        assert mid["state"] in ("waiting-for-annotators", "training", "querying", "logging")
        assert len(mid["accuracy"]) >= 2 and all(a is not None and a > 0.2 for a in mid["accuracy"])
        daemon.send_signal(signal.SIGKILL)
        daemon.wait(timeout=30)
        killed_at = mid["round"]
        time.sleep(1.0)  # the annotator keeps working while the daemon is down
        daemon = start_daemon(env, log_path)
        assert daemon.wait(timeout=400) == 0, log_path.read_text()[-3000:]
    finally:
        person.stop()
        if daemon.poll() is None:
            daemon.kill()

    text = log_path.read_text()
    assert "stopping after round 4: max_rounds" in text
    assert person.counts.errors == 0
    client = rg.Argilla(api_url=argilla_stack["url"], api_key=argilla_stack["owner_key"])
    dataset = client.datasets(dataset_name, workspace="argilla")
    logged = list(dataset.records)
    per_batch = Counter(int(r.metadata["batch_id"]) for r in logged)
    assert sorted(per_batch) == [0, 1, 2, 3, 4]  # contiguous; no batch after the stop
    assert set(per_batch.values()) == {20}
    indices = [int(r.metadata["pool_index"]) for r in logged]
    assert len(indices) == len(set(indices)) == 100
    assert all(r.id == f"pool-{r.metadata['pool_index']}" for r in logged)

    from daemon.state import StateStore

    state = StateStore(tmp_path / "state").load()
    assert [m.round for m in state.rounds] == [0, 1, 2, 3, 4]
    assert all(m.accuracy is not None for m in state.rounds)
    assert all(m.kappa is not None for m in state.rounds[1:])
    trained = state.training_labels()
    assert not trained.keys() & state.discarded()
    assert len(trained) + len(state.discarded()) == 100
    assert state.rounds[-1].labels == len(trained)
    assert killed_at >= 2
