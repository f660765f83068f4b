"""End-to-end helpers: the daemon as a subprocess, its status endpoint, and a simulated annotator."""

import os
import signal
import subprocess
import sys
import time
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


def run_with_simulator(env: dict, log_path, *simulate: str, timeout: float = 400) -> list[dict]:
    """``al-daemon run`` until it exits (asserted 0), with ``al-daemon simulate <simulate...>`` answering meanwhile
    (SIGTERM once the daemon is done); the counts each simulated annotator printed."""
    import json

    daemon = start_daemon(env, log_path)
    with open(log_path, "ab") as log:
        annotators = subprocess.Popen(
            [sys.executable, "-m", "daemon.cli", "simulate", *simulate],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=log,
        )
    try:
        assert wait_or_dump(daemon, log_path, timeout) == 0, log_path.read_text()[-3000:]
    finally:
        annotators.send_signal(signal.SIGTERM)
        out, _ = annotators.communicate(timeout=60)
        if daemon.poll() is None:
            daemon.kill()
    return [json.loads(line) for line in out.decode().splitlines() if line.startswith("{")]


def wait_or_dump(daemon: subprocess.Popen, log_path, timeout: float) -> int:
    """The daemon's exit code; if it has not exited within ``timeout``, every thread's stack goes into its log
    (SIGUSR1) and the test fails with them: where it hangs, not only that it did."""
    try:
        return daemon.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        daemon.send_signal(signal.SIGUSR1)
        time.sleep(2)
        raise AssertionError(
            f"the daemon did not exit within {timeout:.0f} s; its threads:\n{log_path.read_text()[-8000:]}"
        ) from None


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


TIMEOUT_MS = 30_000  # a UI step


def stop_daemon(daemon: subprocess.Popen) -> None:
    """SIGTERM, as systemd sends it; killed if it has not left within 40 s."""
    daemon.send_signal(signal.SIGTERM)
    try:
        daemon.wait(timeout=40)
    finally:
        if daemon.poll() is None:
            daemon.kill()


def open_annotation(browser, stack: dict, dataset: str):
    """A page signed in as the stack's annotator, on the dataset's annotation view."""
    from daemon.stack import ANNOTATOR

    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(f"{stack['url']}/sign-in", wait_until="networkidle")
    page.fill("input[name=Username]", ANNOTATOR.username)
    page.fill("input[name=Password]", ANNOTATOR.password)
    page.click("button:has-text('Sign in')")
    page.get_by_text(dataset, exact=True).click()
    page.wait_for_url("**/annotation-mode**")
    return page


def current_text(page, gold: dict, strict: bool = True) -> str | None:
    """The record on screen, found among the pool's texts (strict: waiting for it to render)."""
    deadline = time.monotonic() + (TIMEOUT_MS / 1000 if strict else 0)
    while True:
        body = page.inner_text("body")
        found = [text for text in gold if text in body]
        if len(found) == 1 or time.monotonic() >= deadline:
            break
        time.sleep(0.2)
    if strict:
        assert len(found) == 1, f"expected one pool text on the page, found {len(found)}"
    return found[0] if len(found) == 1 else None


def wait_for_next_batch(page, gold: dict, seconds: float = 300) -> str:
    """Reload until a pool text is on screen again (the daemon logged the next batch); its text. The pool's
    embedding may take a minute or two on a busy machine before the model chooses it."""
    deadline = time.monotonic() + seconds
    while True:
        page.reload(wait_until="networkidle")
        if page.get_by_text("Text", exact=True).count() and current_text(page, gold, strict=False):
            return current_text(page, gold)
        assert time.monotonic() < deadline, "the next batch never appeared in the UI"
        time.sleep(1)
