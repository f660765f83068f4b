"""`al-daemon run` with one fault injected at a chosen step of a round (the fault suite's launcher).

    AL_FAULT_POINT=<point> AL_FAULT_MARKER=<file> [AL_FAULT_ROUND=1] python tests/faults/crash_at.py

The fault happens once: the marker file remembers it, so a restarted daemon (same launcher) runs clean.
SIGKILL points, in the order a round meets them:
  after_read   the batch's labels are journaled (batch closed), before training
  training     inside Learner.fit
  after_query  the next batch is queried and journaled, before it is logged
  mid_log      half of the next batch's records are in Argilla
  after_log    all of them are in Argilla, before the state says so
  state_save   in the middle of writing state.json (a partial temporary file, before the atomic rename)

Disk-full points (``disk_<point>@<round>``, several separated by commas, each once): the process's file-size limit
drops to 0 bytes (RLIMIT_FSIZE, so every write to a regular file fails with EFBIG, as on a full disk) just before
the step's first write in that round, and stays there until the test raises it from outside (``prlimit``: the
space comes back):
  disk_after_read      closing the complete batch (its labels' journal)
  disk_after_training  the round's pool predictions, after training
  disk_after_query     the journal of the next batch, before it may be logged
  disk_after_log       the journal saying the next batch is in Argilla
  disk_export          the export, after the stop is journaled
"""

from __future__ import annotations

import os
import resource
import signal
import sys
from pathlib import Path

POINT = os.environ["AL_FAULT_POINT"]
MARKER = Path(os.environ["AL_FAULT_MARKER"])
ROUND = int(os.environ.get("AL_FAULT_ROUND", "1"))
DISK = dict(p.split("@") for p in POINT.split(",") if p.startswith("disk_"))  # disk point -> its round
reached = {"round": False}


def armed(round_number: int) -> bool:
    return not MARKER.exists() and round_number >= ROUND


def die() -> None:
    MARKER.write_text(POINT)
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def fill_disk(point: str, round_number: int) -> None:
    """From here on no regular file of this process can grow (until the test raises the limit again)."""
    name = f"disk_{point}"
    fired = MARKER.read_text().split() if MARKER.exists() else []
    if name in DISK and round_number >= int(DISK[name]) and name not in fired:
        MARKER.write_text("\n".join([*fired, name]))
        print(f"fault: file-size limit 0 at {point} (round {round_number})", flush=True)
        resource.setrlimit(resource.RLIMIT_FSIZE, (0, resource.RLIM_INFINITY))


def install() -> None:
    from daemon.gateway import ArgillaGateway
    from daemon.learner import Learner
    from daemon.loop import Daemon
    from daemon.state import StateStore

    close_batch, fit, journal = Daemon._close_batch, Learner.fit, Daemon._journal_batch
    log_records, atomic_write, export = ArgillaGateway.log_records, StateStore._atomic_write, Daemon._export

    def _close_batch(self, batch, progress, *early):
        fill_disk("after_read", batch.batch_id)
        close_batch(self, batch, progress, *early)
        if batch.batch_id >= ROUND:
            reached["round"] = True
        if POINT == "after_read" and armed(batch.batch_id):
            die()

    def _fit(self, labelled, ignored, round_number):
        if POINT == "training" and armed(round_number):
            die()
        trained = fit(self, labelled, ignored, round_number)
        fill_disk("after_training", round_number)
        return trained

    def _journal(self, batch_id, round_number, result, *relabels):
        fill_disk("after_query", batch_id - 1)
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
        if records:
            fill_disk("after_log", records[0].batch_id - 1)

    def _atomic_write(self, target, data):
        if POINT == "state_save" and reached["round"] and armed(ROUND) and target.name == "state.json":
            import tempfile

            fd, _ = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.tmp-")  # as daemon.files names them
            os.write(fd, data[: len(data) // 2])  # what a crash mid-write leaves behind
            die()
        atomic_write(self, target, data)

    def _export(self):
        fill_disk("export", self.state.round)
        export(self)

    Daemon._close_batch, Learner.fit, Daemon._journal_batch = _close_batch, _fit, _journal
    ArgillaGateway.log_records, StateStore._atomic_write, Daemon._export = _log_records, _atomic_write, _export


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    install()
    from daemon.cli import main

    sys.exit(main(["run"]))
