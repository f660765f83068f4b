"""`al-daemon run` with one SIGKILL injected at a chosen step of a round (the fault suite's launcher).

    AL_FAULT_POINT=<point> AL_FAULT_MARKER=<file> [AL_FAULT_ROUND=1] python tests/faults/crash_at.py

The kill happens once: the marker file remembers it, so the restarted daemon (same launcher) runs clean.
Points, in the order a round meets them:
  after_read   the batch's labels are journaled (batch closed), before training
  training     inside Learner.fit
  after_query  the next batch is queried and journaled, before it is logged
  mid_log      half of the next batch's records are in Argilla
  after_log    all of them are in Argilla, before the state says so
  state_save   in the middle of writing state.json (a partial temporary file, before the atomic rename)
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

POINT = os.environ["AL_FAULT_POINT"]
MARKER = Path(os.environ["AL_FAULT_MARKER"])
ROUND = int(os.environ.get("AL_FAULT_ROUND", "1"))
reached = {"round": False}


def armed(round_number: int) -> bool:
    return not MARKER.exists() and round_number >= ROUND


def die() -> None:
    MARKER.write_text(POINT)
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def install() -> None:
    from daemon.gateway import ArgillaGateway
    from daemon.learner import Learner
    from daemon.loop import Daemon
    from daemon.state import StateStore

    close_batch, fit, journal = Daemon._close_batch, Learner.fit, Daemon._journal_batch
    log_records, atomic_write = ArgillaGateway.log_records, StateStore._atomic_write

    def _close_batch(self, batch, progress, *early):
        close_batch(self, batch, progress, *early)
        if batch.batch_id >= ROUND:
            reached["round"] = True
        if POINT == "after_read" and armed(batch.batch_id):
            die()

    def _fit(self, labelled, ignored, round_number):
        if POINT == "training" and armed(round_number):
            die()
        return fit(self, labelled, ignored, round_number)

    def _journal(self, batch_id, round_number, result, *relabels):
        journal(self, batch_id, round_number, result, *relabels)
        if POINT == "after_query" and armed(batch_id - 1):
            die()

    def _log_records(self, records):
        hit = records and POINT in ("mid_log", "after_log") and armed(records[0].batch_id - 1)
        if hit and POINT == "mid_log":
            log_records(self, records[: len(records) // 2])
            die()
        log_records(self, records)
        if hit:
            die()

    def _atomic_write(self, target, data):
        if POINT == "state_save" and reached["round"] and armed(ROUND) and target.name == "state.json":
            import tempfile

            fd, _ = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")  # as StateStore names them
            os.write(fd, data[: len(data) // 2])  # what a crash mid-write leaves behind
            die()
        atomic_write(self, target, data)

    Daemon._close_batch, Learner.fit, Daemon._journal_batch = _close_batch, _fit, _journal
    ArgillaGateway.log_records, StateStore._atomic_write = _log_records, _atomic_write


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    install()
    from daemon.cli import main

    sys.exit(main(["run"]))
