"""The daemon as a service: sd_notify on a real datagram socket, and bounded, graceful SIGTERM."""

import json
import re
import signal
import socket
import time

import pytest

from daemon.state import StateStore
from tests.conftest import tiny_rows, write_jsonl
from tests.e2e.conftest import start_daemon

pytestmark = pytest.mark.e2e


def messages(sock: socket.socket, seconds: float) -> list[dict[str, str]]:
    found, deadline = [], time.monotonic() + seconds
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            data = sock.recv(4096).decode()
        except TimeoutError:
            break
        found.append(dict(line.split("=", 1) for line in data.splitlines()))
    return found


def wait_message(sock: socket.socket, key: str, seconds: float) -> list[dict[str, str]]:
    seen, deadline = [], time.monotonic() + seconds
    while time.monotonic() < deadline:
        seen += messages(sock, 0.5)
        if any(key in m for m in seen):
            return seen
    raise AssertionError(f"no {key} within {seconds} s; got {seen}")


def test_sd_notify_ready_watchdog_and_stopping(trec_env, tmp_path):
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    pool = write_jsonl(tmp_path / "pool.jsonl", tiny_rows(20))
    env = trec_env["env"] | {
        "AL_POOL_FILE": str(pool),
        "AL_TEST_FILE": "",
        "AL_MODEL": "tfidf",
        "NOTIFY_SOCKET": str(path),
        "WATCHDOG_USEC": "1000000",  # WatchdogSec=1: a ping every 0.5 s
    }
    daemon = start_daemon(env, trec_env["log"])
    try:
        seen = wait_message(sock, "READY", 120)
        ready = next(m for m in seen if "READY" in m)
        assert ready["MAINPID"] == str(daemon.pid) and ready["STATUS"].startswith("waiting-for-annotators")
        assert any(m.get("STATUS", "").startswith("starting") for m in seen[: seen.index(ready)])
        pings = [m for m in messages(sock, 3.0) if "WATCHDOG" in m]
        assert 4 <= len(pings) <= 8, pings  # every 0.5 s over 3 s
        daemon.send_signal(signal.SIGTERM)
        stopping = wait_message(sock, "STOPPING", 10)
        assert any(m.get("STOPPING") == "1" for m in stopping)
        assert daemon.wait(timeout=20) == 0
    finally:
        sock.close()
        if daemon.poll() is None:
            daemon.kill()
    state = StateStore(trec_env["state_dir"]).load()
    assert state.current.batch_id == 0 and state.current.logged


def test_sigterm_during_a_long_step_is_bounded_and_a_second_signal_is_immediate(trec_env, tmp_path):
    # embedding the 5.4k TREC pool without a cache takes well over 10 s on 2 cores: a long step to interrupt (with a
    # k-means batch 0 the start waits for it; otherwise it runs in the background, see the next test)
    env = trec_env["env"] | {
        "AL_CACHE_DIR": str(tmp_path / "empty-cache"),
        "AL_STOP_TIMEOUT": "2",
        "AL_COLD_START": "kmeans",
    }
    log = trec_env["log"]

    def interrupt(signals: int) -> tuple[int, float]:
        daemon = start_daemon(env, log)
        try:
            deadline = time.monotonic() + 120
            while "embedding 5381 texts" not in log.read_text(errors="replace"):
                assert daemon.poll() is None and time.monotonic() < deadline, log.read_text()[-2000:]
                time.sleep(0.2)
            log.write_text("")  # the next run waits for its own line
            start = time.monotonic()
            for _ in range(signals):
                daemon.send_signal(signal.SIGTERM)
                time.sleep(0.2)
            code = daemon.wait(timeout=30)
            return code, time.monotonic() - start
        finally:
            if daemon.poll() is None:
                daemon.kill()

    code, took = interrupt(1)
    assert code == 0 and 1.5 <= took < 8, (code, took)
    code, took = interrupt(2)
    assert code == 128 + signal.SIGTERM and took < 2, (code, took)


def test_batch_0_comes_before_the_embedding_which_a_restart_resumes(trec_env, tmp_path):
    """The pool is embedded after batch 0 is in Argilla, on a background thread with its progress on /status;
    SIGTERM leaves at once, and the next start resumes the embedding at the last part written."""
    from daemon.pool import default_model_path, embedding_cache
    from daemon.simulate import wait_for
    from tests.conftest import TREC
    from tests.e2e.conftest import get_status

    rows = [json.loads(line) for line in (TREC / "train.jsonl").read_text().splitlines()[:3500]]
    pool = write_jsonl(tmp_path / "pool.jsonl", rows)
    cache = tmp_path / "empty-cache"
    env = trec_env["env"] | {"AL_POOL_FILE": str(pool), "AL_CACHE_DIR": str(cache), "AL_BATCH_SIZE": "5"}
    log, port = trec_env["log"], trec_env["port"]
    started_embedding = re.compile(r"embedding (\d+) texts with")
    daemon = start_daemon(env, log)
    try:
        assert wait_for(lambda: started_embedding.search(log.read_text(errors="replace")), 120), log.read_text()
        text = log.read_text(errors="replace")
        size = int(started_embedding.search(text).group(1))  # the pool without its duplicate texts
        assert 3400 < size <= 3500
        assert text.index("batch 0 logged to Argilla: 5 records") < started_embedding.search(text).start()
        status = get_status(port)
        assert status["state"] == "waiting-for-annotators" and status["batch"]["batch_id"] == 0
        assert status["features"]["state"] == "building" and status["features"]["total"] in (size, 500)
        fingerprint = StateStore(trec_env["state_dir"]).load().pool_fingerprint
        cached = embedding_cache(default_model_path(), cache, fingerprint)
        parts = cached.with_suffix(".parts")
        assert wait_for(lambda: any(parts.glob("*.npy")), 120), log.read_text()[-2000:]
        features = get_status(port)["features"]
        assert features["rate"] > 0 and (features["stage"] == "test" or features["done"] >= 1024), features
        started = time.monotonic()
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=30) == 0 and time.monotonic() - started < 10
    finally:
        if daemon.poll() is None:
            daemon.kill()
    written = sorted(p.name for p in parts.glob("*.npy"))
    assert written and written[0] == "000000000000.npy", written
    log.write_text("")
    daemon = start_daemon(env, log)
    try:
        assert wait_for(lambda: "resuming at" in log.read_text(errors="replace"), 120), log.read_text()
        assert int(log.read_text().split("resuming at ")[1].split(" ")[0]) == 1024 * len(written)
        assert "batch 0 logged" not in log.read_text()  # the journal's batch 0 was already in Argilla
        assert wait_for(lambda: (get_status(port) or {}).get("features", {}).get("state") == "ready", 300)
        assert cached.exists() and not parts.exists()  # the parts became the one cache file
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=30) == 0
    finally:
        if daemon.poll() is None:
            daemon.kill()


@pytest.mark.parametrize("training", ["inline", "ahead"])
def test_sigterm_while_training_exits_0_and_a_restart_resumes(
    argilla_stack, dataset_name, trec_env, tmp_path, training
):
    """Inline: the stop leaves the round at the step boundary after training. Ahead: the next batch is already
    out when the model trains in the background; the stop abandons that training and a restart rebuilds it."""
    from daemon.simulate import SimulatedAnnotator, SimulationConfig, wait_for
    from tests.e2e.conftest import get_status

    rows = tiny_rows(10)
    pool = write_jsonl(tmp_path / "pool.jsonl", rows)
    env = trec_env["env"] | {
        "AL_POOL_FILE": str(pool),
        "AL_TEST_FILE": "",
        "AL_MODEL": "transformer",  # fine-tuning: a training step long enough to interrupt
        "AL_TRAINING": training,
        "AL_TRANSFORMER_EPOCHS": "3",
        "AL_TRANSFORMER_MAX_LENGTH": "16",
        "AL_BATCH_SIZE": "6",
        "AL_STOP_CRITERIA": "never",
        "AL_PUBLISH_PROGRESS": "false",
    }
    port, log = trec_env["port"], trec_env["log"]
    config = SimulationConfig(
        argilla_url=argilla_stack["url"], api_key=argilla_stack["annotator_key"], dataset=dataset_name
    )
    person = SimulatedAnnotator(config, {row["text"]: row["label"] for row in rows}, ["food", "sport", "tech"])

    def training_now(status: dict) -> bool:
        if training == "inline":
            return status.get("state") == "training"
        return (status.get("training") or {}).get("background") is not None

    daemon = start_daemon(env, log)
    try:
        assert wait_for(lambda: (get_status(port) or {}).get("state") == "waiting-for-annotators", 180), log.read_text()
        assert person.run(max_records=6).submitted == 6
        assert wait_for(lambda: training_now(get_status(port) or {}), 60, interval=0.05)
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=40) == 0
    finally:
        if daemon.poll() is None:
            daemon.kill()
    assert "stop requested" in log.read_text()
    state = StateStore(trec_env["state_dir"]).load()
    assert state.batches[0].complete and len(state.training_labels()) == 6  # the labels were journaled first
    assert state.rounds == []  # no model was finished
    if training == "inline":
        assert state.current.batch_id == 0  # left at the boundary after training, before the query
    else:
        assert state.current.batch_id == 1 and state.current.logged  # handed out before the training began
        assert "abandoned, the next start retrains it" in log.read_text()

    daemon = start_daemon(env, log)
    try:
        assert wait_for(lambda: (get_status(port) or {}).get("round") == 1, 180), log.read_text()[-2000:]
        status = get_status(port)
        assert status["batch"]["batch_id"] == 1 and status["labels"] == 6
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=40) == 0
    finally:
        if daemon.poll() is None:
            daemon.kill()
