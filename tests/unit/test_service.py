"""The service's edges: signal handlers put back on the way out, and the local stack's failures as one line."""

import os
import signal
import socket
import subprocess
import sys

import pytest

from daemon.app import Service, capture_signals
from daemon.config import ModelKind, Settings
from daemon.errors import ArgillaUnavailable, DaemonError, StackError
from daemon.models import MODELS
from daemon.stack import ARGILLA_SERVER_PINS, Stack, StackConfig
from daemon.state import acquire_lock
from tests.conftest import ROOT, free_port, tiny_rows, write_jsonl


def sentinel(*_):
    """A handler of the embedding program's (a test runner's, a notebook's)."""


def test_capture_signals_puts_the_handlers_found_back_even_after_an_error():
    before = {sig: signal.signal(sig, sentinel) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        with pytest.raises(KeyError), capture_signals(print):
            assert signal.getsignal(signal.SIGTERM) is print and signal.getsignal(signal.SIGINT) is print
            raise KeyError("boom")
        assert signal.getsignal(signal.SIGTERM) is sentinel and signal.getsignal(signal.SIGINT) is sentinel
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)


def test_a_failed_start_leaves_no_handler_no_status_server_and_no_lock(tmp_path):
    pool = write_jsonl(tmp_path / "pool.jsonl", tiny_rows(10))
    port = free_port()
    settings = Settings(
        _env_file=None,
        argilla_url=f"http://127.0.0.1:{free_port()}",  # nobody listens: the start gives up at once
        pool_file=pool,
        test_file=None,
        model=ModelKind.tfidf,
        state_dir=tmp_path / "state",
        status_port=port,
        connect_timeout=0.01,
    )
    before = {sig: signal.signal(sig, sentinel) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        service = Service(settings)
        with pytest.raises(ArgillaUnavailable, match="cannot reach Argilla"):
            service.run()
        assert signal.getsignal(signal.SIGTERM) is sentinel and signal.getsignal(signal.SIGINT) is sentinel
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)
    with socket.socket() as sock:  # the status server stopped: its port is free for the next start
        sock.bind((settings.status_host, port))
    acquire_lock(settings.state_dir)[0].close()  # and the state dir is not locked


def test_a_status_port_in_use_is_refused_in_one_line(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        settings = Settings(_env_file=None, state_dir=tmp_path / "state", status_port=port)
        with pytest.raises(DaemonError, match=f"could not bind 127.0.0.1:{port} \\(in use by another program"):
            Service(settings).run(install_signals=False)


def test_every_model_kind_has_a_builder():
    assert set(MODELS) == set(ModelKind)


def run_cli(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "daemon.cli", *args],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_stack_failures_are_one_line_and_exit_2(tmp_path):
    answer = run_cli("stack", "status", env={"AL_STACK_ARGILLA_PORT": "69oo"})
    assert answer.returncode == 2
    assert answer.stderr.strip() == "al-daemon: AL_STACK_ARGILLA_PORT='69oo' is not a TCP port (1-65535)"
    venv = tmp_path / "venv"  # marked as installed, but empty: nothing to start the server with
    venv.mkdir()
    (venv / ".al-daemon-installed").write_text(" ".join(ARGILLA_SERVER_PINS))
    answer = run_cli("stack", "up", env={"AL_STACK_DIR": str(tmp_path / "stack"), "AL_STACK_VENV": str(venv)})
    assert answer.returncode == 2
    lines = answer.stderr.strip().splitlines()
    assert lines == [f"al-daemon: no site-packages in {venv}; run `al-daemon stack install`"], lines


def test_a_failed_server_command_is_one_line_with_its_output_in_a_log(tmp_path):
    stack = Stack(StackConfig(run_dir=tmp_path))
    failed = subprocess.CompletedProcess(
        ["x"], 3, stdout="migrating\n", stderr="Traceback ...\nOperationalError: locked\n"
    )
    error = stack._failed("`argilla_server database migrate`", failed, "manage")
    assert isinstance(error, StackError) and isinstance(error, DaemonError)
    message = str(error)
    assert "\n" not in message
    assert message.startswith("`argilla_server database migrate` failed (exit 3): OperationalError: locked;")
    assert "OperationalError: locked" in (tmp_path / "logs" / "manage.log").read_text()
