"""Log lines on stdout: readable by default, one JSON object per line on request; the API key never in them."""

import json
import logging

import pytest

from daemon.config import Settings
from daemon.logs import setup_logging


@pytest.fixture(autouse=True)
def restore_logging():
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:], root.level = handlers, level


def test_json_lines(capsys):
    setup_logging("INFO", "json")
    logging.getLogger("daemon.loop").info("round %d: %d labels", 3, 60)
    logging.getLogger("daemon.loop").debug("not shown at INFO")
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert record["message"] == "round 3: 60 labels" and record["level"] == "INFO"
    assert record["logger"] == "daemon.loop" and record["time"].startswith("20")


def test_text_lines_and_settings_without_the_key(capsys, monkeypatch):
    monkeypatch.setenv("AL_ARGILLA_API_KEY", "very-secret-key")
    setup_logging("INFO", "text")
    logging.getLogger("daemon").info("settings: %s", json.dumps(Settings(_env_file=None).public()))
    out = capsys.readouterr().out
    assert " INFO daemon: settings: " in out and "very-secret-key" not in out


@pytest.fixture
def fresh_format(monkeypatch):
    import daemon.logs

    logging.captureWarnings(False)  # an earlier setup_logging in this process left it on, with pytest's hook saved
    monkeypatch.setattr(daemon.logs, "_format", None)
    monkeypatch.setattr("sys.excepthook", __import__("sys").excepthook)
    monkeypatch.setattr("threading.excepthook", __import__("threading").excepthook)
    yield
    logging.captureWarnings(False)


def test_json_mode_puts_warnings_in_json(capsys, fresh_format):
    import warnings

    setup_logging("INFO", "json")
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("a library complains", UserWarning, stacklevel=1)
    lines = capsys.readouterr().out.strip().splitlines()
    record = json.loads(lines[-1])
    assert record["logger"] == "py.warnings" and "a library complains" in record["message"]
    assert record["level"] == "WARNING"


def test_a_refused_start_ends_with_one_json_line_in_json_mode(capsys, monkeypatch, fresh_format):
    from daemon.cli import main

    monkeypatch.setenv("AL_LOG_FORMAT", "json")
    assert main(["run", "--poll-interval", "inf"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    record = json.loads(err[0])
    assert record["level"] == "CRITICAL" and record["exit_code"] == 2 and record["logger"] == "daemon"
    assert record["message"].startswith("invalid settings: poll_interval (AL_POLL_INTERVAL): Input should be a finite")


def test_a_refused_start_is_one_plain_line_by_default(capsys, fresh_format):
    from daemon.cli import main

    assert main(["run", "--poll-interval", "1e12", "--dataset", ""]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("al-daemon: invalid settings: "), err
    assert "dataset (AL_DATASET): Value error, must not be empty" in err[0]
    assert "poll_interval (AL_POLL_INTERVAL): Input should be less than or equal to 86400" in err[0]


def test_version(capsys):
    from daemon import __version__
    from daemon.cli import main

    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.strip() == f"al-daemon {__version__}"


def test_demo_reads_the_pool_once(capsys, monkeypatch, tmp_path):
    """`demo --simulate` used to load (and warn about) the pool twice: once for the simulated annotator, once for
    the daemon. The stack and the run itself are stubbed here: what is counted is the data loading."""
    import daemon.app
    import daemon.inputs
    import daemon.stack
    from daemon.cli import main
    from daemon.simulate import SimulatedAnnotator

    loads = []
    real = daemon.inputs.load_data
    monkeypatch.setattr(daemon.inputs, "load_data", lambda settings: loads.append(1) or real(settings))
    monkeypatch.setattr(daemon.stack.Stack, "up", lambda self: None)
    monkeypatch.setattr(SimulatedAnnotator, "start_thread", lambda self: None)
    monkeypatch.setattr(SimulatedAnnotator, "stop", lambda self: None)
    seen = {}
    monkeypatch.setattr(daemon.app.Service, "run", lambda self: seen.setdefault("data", self.data) and 0)
    for name in ("AL_ARGILLA_URL", "AL_ARGILLA_API_KEY", "AL_DATASET", "AL_EXIT_ON_STOP"):
        monkeypatch.delenv(name, raising=False)  # the demo sets them in os.environ: undone after the test
    monkeypatch.setenv("AL_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("AL_TEST_FILE", "")
    assert main(["demo", "--simulate"]) == 0
    out = capsys.readouterr().out
    assert len(loads) == 1 and seen["data"] is not None  # the daemon got the data the annotator was given
    assert out.count("skipping 71 duplicate text(s)") == 1, out
