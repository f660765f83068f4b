"""Logging to stdout (journald and `docker logs` collect it): readable lines by default, JSON lines on request."""

from __future__ import annotations

import logging
import sys

NOISY = ("httpx", "httpcore", "sentence_transformers", "urllib3", "apscheduler")


def setup_logging(level: str = "INFO", fmt: str = "text") -> None:
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
