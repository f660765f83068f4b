"""Logging to stdout (journald and `docker logs` collect it): readable lines by default, JSON lines on request."""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
import warnings

NOISY = ("httpx", "httpcore", "sentence_transformers", "urllib3", "apscheduler")


_format: str | None = None  # the format set up last (None: not yet)


def setup_logging(level: str = "INFO", fmt: str = "text") -> None:
    """Log lines to stdout; with ``fmt="json"`` also Python warnings and uncaught exceptions as JSON lines."""
    global _format
    _format = str(fmt)
    handler = logging.StreamHandler(sys.stdout)
    if fmt == "json":
        from pythonjsonlogger.json import JsonFormatter

        handler.setFormatter(
            JsonFormatter(
                "%(asctime)s %(levelname)s %(name)s %(message)s",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
                datefmt="%Y-%m-%dT%H:%M:%S%z",
            )
        )
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO), handlers=[handler], force=True)
    for noisy in NOISY:
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # a poll skipped because the previous one (a training round) is still running is the design, not news
    logging.getLogger("apscheduler.scheduler").setLevel(logging.ERROR)
    logging.captureWarnings(True)  # a library's warnings.warn(...) becomes a log line (JSON in JSON mode)
    # deprecations inside the libraries the daemon drives are theirs to fix, and small-text's repeat every round
    warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"(small_text|argilla|sklearn)(\..*)?$")
    if _format == "json":
        sys.excepthook = _log_uncaught
        threading.excepthook = lambda args: _log_uncaught(args.exc_type, args.exc_value, args.exc_traceback)


def _log_uncaught(kind, value, traceback) -> None:
    logging.getLogger("daemon").critical("uncaught %s: %s", kind.__name__, value, exc_info=(kind, value, traceback))


def json_mode() -> bool:
    """JSON logging was asked for (by the settings, or by AL_LOG_FORMAT when the settings themselves failed)."""
    if _format is not None:
        return _format == "json"
    return os.environ.get("AL_LOG_FORMAT", "").strip().lower() == "json"


def fatal(message: str, code: int) -> None:
    """The one line a refused start or a fatal error ends with, on stderr: ``al-daemon: <message>``, or a JSON
    object with the log lines' fields (and ``exit_code``) in JSON mode."""
    if json_mode():
        line = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "level": "CRITICAL",
            "logger": "daemon",
            "message": message,
            "exit_code": code,
        }
        print(json.dumps(line), file=sys.stderr, flush=True)
    else:
        print(f"al-daemon: {message}", file=sys.stderr, flush=True)
