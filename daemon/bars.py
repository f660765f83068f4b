"""Bars for long local work (embedding the pool, fine-tuning): a tqdm bar on a terminal, log lines otherwise.
(Not the batch's answer counts: those are :class:`daemon.batches.BatchProgress`.)"""

from __future__ import annotations

import logging
import sys

from tqdm.auto import tqdm

log = logging.getLogger("daemon.bars")


class _LogStream:
    """A file-like target for tqdm that turns each refresh into one log line (journald, docker logs)."""

    def write(self, text: str) -> None:
        text = text.strip("\r\n ")
        if text:
            log.info("%s", text)

    def flush(self) -> None:
        return None


def bar(total: int, desc: str, unit: str = "text") -> tqdm:
    """A progress bar for ``total`` items; without a terminal it logs at most every 10 s."""
    if sys.stderr.isatty():
        return tqdm(total=total, desc=desc, unit=unit, leave=False)
    return tqdm(
        total=total,
        desc=desc,
        unit=unit,
        file=_LogStream(),
        mininterval=10.0,
        ascii=True,
        bar_format="{desc}: {n_fmt}/{total_fmt} ({percentage:.0f}%), {rate_fmt}, {remaining} left",
    )
