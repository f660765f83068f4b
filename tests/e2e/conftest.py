"""End-to-end helpers: the daemon as a subprocess, its status endpoint, and a simulated annotator."""

import os
import subprocess
import sys
from pathlib import Path

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


CHROMIUM = Path(os.environ.get("AL_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def unavailable(reason: str):
    """Skip locally; under CI a missing browser is a failure, not a silent skip."""
    if in_ci():
        pytest.fail(f"{reason} — CI is set, so the browser tests must run (.ci/run installs Chromium)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser():
    """Debian's headless Chromium through Playwright (never ``playwright install``); skipped where it or the
    playwright package is missing, except under CI (``CI`` set), where that is a failure."""
    if not CHROMIUM.exists():
        unavailable(f"no Chromium at {CHROMIUM}: apt-get install chromium (or set AL_CHROMIUM)")
    try:
        import playwright.sync_api as playwright_api
    except ImportError as exc:
        unavailable(f"the playwright package is missing ({exc}): pip install -e '.[dev]'")
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()
