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
