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
  seed_journaled  a warm start's seed labels are journaled, before batch 0 is chosen (any AL_FAULT_ROUND)
  ladder_probes     the model ladder's probes are journaled (AL_LADDER_COMPARE=probes), before a batch holds them
  ladder_compared   the model ladder's verdict is made (a switch: the new model trained), before the journal
  ladder_journaled  the verdict (and the model in use) is journaled, before the next batch is chosen
With AL_FAULT_ROUND=-1 the points after_query and mid_log meet batch 0 (a warm start chooses it with a model).

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
    """Hooks on the daemon's named steps (daemon/steps.py): a step that is renamed or dropped fails here at once."""
    from daemon.steps import on_step

    def closing_batch(batch) -> None:
        fill_disk("after_read", batch.batch_id)

    def batch_closed(batch) -> None:
        if batch.batch_id >= ROUND:
            reached["round"] = True
        if POINT == "after_read" and armed(batch.batch_id):
            die()

    def training(round) -> None:  # noqa: A002 - the step's detail is called round
        if POINT == "training" and armed(round):
            die()

    def trained(round) -> None:  # noqa: A002
        fill_disk("after_training", round)

    def journaling(batch_id) -> None:
        fill_disk("after_query", batch_id - 1)

    def journaled(batch_id) -> None:
        if POINT == "after_query" and armed(batch_id - 1):
            die()

    def logging(records, gateway) -> None:
        if records and POINT == "mid_log" and armed(records[0].batch_id - 1):
            gateway.log_records(records[: len(records) // 2])
            die()

    def logged(records) -> None:
        if records and POINT == "after_log" and armed(records[0].batch_id - 1):
            die()
        if records:
            fill_disk("after_log", records[0].batch_id - 1)

    def saving(path, data) -> None:
        if POINT == "state_save" and reached["round"] and armed(ROUND):
            import tempfile

            fd, _ = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.tmp-")  # as daemon.files names them
            os.write(fd, data[: len(data) // 2])  # what a crash mid-write leaves behind
            die()

    def exporting(state) -> None:
        fill_disk("export", state.rounds_trained)

    def seed_journaled(labels) -> None:
        if POINT == "seed_journaled" and not MARKER.exists():
            die()

    def ladder_probes(probes) -> None:
        if POINT == "ladder_probes" and not MARKER.exists():
            die()

    def ladder_compared(verdict) -> None:
        if POINT == "ladder_compared" and not MARKER.exists():
            die()

    def ladder_journaled(verdict) -> None:
        if POINT == "ladder_journaled" and not MARKER.exists():
            die()

    for step, hook in (
        ("closing-batch", closing_batch),
        ("batch-closed", batch_closed),
        ("training", training),
        ("trained", trained),
        ("journaling-batch", journaling),
        ("batch-journaled", journaled),
        ("logging", logging),
        ("batch-logged", logged),
        ("saving-state", saving),
        ("exporting", exporting),
        ("seed-journaled", seed_journaled),
        ("ladder-probes-journaled", ladder_probes),
        ("ladder-compared", ladder_compared),
        ("ladder-journaled", ladder_journaled),
    ):
        on_step(step, hook)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    install()
    from daemon.cli import main

    sys.exit(main(["run"]))
