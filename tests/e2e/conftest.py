"""End-to-end helpers: the daemon as a subprocess, its status endpoint, and a simulated annotator."""

import os
import subprocess
import sys

import httpx
import pytest

from daemon.app import load_data
from daemon.config import Settings
from daemon.simulate import SimulatedAnnotator, SimulationConfig
from tests.conftest import OUTPUT, ROOT, TREC, free_port


def start_daemon(env: dict, log_path) -> subprocess.Popen:
    log = open(log_path, "ab")
    return subprocess.Popen(
        [sys.executable, "-m", "daemon.cli", "run"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
    )


def get_status(port: int, token: str | None = None) -> dict | None:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        return httpx.get(f"http://127.0.0.1:{port}/status", timeout=2, headers=headers).json()
    except (httpx.HTTPError, ValueError):
        return None


@pytest.fixture
def trec_env(argilla_stack, dataset_name, cache_dir, tmp_path):
    """Environment for a daemon on TREC-6 against the test stack, plus its status port and log path."""
    OUTPUT.mkdir(parents=True, exist_ok=True)
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
        "AL_POLL_INTERVAL": "0.5",
        "AL_STATUS_PORT": str(port),
    }
    return {"env": env, "port": port, "log": OUTPUT / f"{dataset_name}.log", "state_dir": tmp_path / "state"}


@pytest.fixture(scope="session")
def trec_data():
    return load_data(Settings(_env_file=None, pool_file=TREC / "train.jsonl", test_file=TREC / "test.jsonl"))


def simulated_annotator(stack: dict, dataset: str, data, **options) -> SimulatedAnnotator:
    gold = dict(zip(data.pool.texts, data.pool.gold, strict=True))
    config = SimulationConfig(
        argilla_url=stack["url"], api_key=stack["annotator_key"], dataset=dataset, **({"delay": 0.01} | options)
    )
    return SimulatedAnnotator(config, gold, data.labels)
