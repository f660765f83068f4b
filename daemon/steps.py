"""Named points of a round: a public seam for the fault suite and tests, instead of patching private methods.

The daemon calls :func:`reached` at each point below, in this order within a round; :func:`on_step` registers a
hook for one of them (``hook(**details)``). Both refuse a name that is not a step, so a refactor that renames or
drops a step breaks the fault suite loudly instead of silently moving a kill point, and a test checks that a
round reaches every step.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

STEPS = (
    "seed-journaled",  # labels: a warm start's seed labels journaled, batch 0 not chosen yet
    "closing-batch",  # batch: complete in Argilla, its labels about to be journaled
    "batch-closed",  # batch: its labels are journaled
    "training",  # round: about to fit the model (on the poll thread, or the background trainer's)
    "trained",  # round: fitted, about to be evaluated
    "journaling-batch",  # batch_id: the next batch is chosen, about to be journaled
    "batch-journaled",  # batch_id: journaled, not logged yet
    "logging",  # records, gateway: about to be sent to Argilla
    "batch-logged",  # records: in Argilla, before the journal says so
    "saving-state",  # path, data: state.json about to be written
    "exporting",  # state: the run stopped; the export is about to be written
    # the model ladder's comparison, on its own thread (AL_LADDER), between rounds:
    "ladder-probes-drawn",  # probes: AL_LADDER_COMPARE=probes drew them (both models trained), not journaled yet
    "ladder-probes-journaled",  # probes: journaled; the next batches hold them, the verdict once they are labelled
    "ladder-compared",  # verdict: decided (on a switch the candidate trained on every label), not journaled yet
    "ladder-journaled",  # verdict: journaled (on a switch with the model in use), the next batch not chosen yet
)

_hooks: dict[str, list[Callable[..., None]]] = {}
_lock = threading.Lock()


def on_step(step: str, hook: Callable[..., None]) -> None:
    """Call ``hook(**details)`` each time the daemon reaches ``step``."""
    _check(step)
    with _lock:
        _hooks.setdefault(step, []).append(hook)


def reached(step: str, **details) -> None:
    """The daemon is at ``step``: run its hooks (none outside tests and the fault launcher)."""
    _check(step)
    for hook in list(_hooks.get(step, ())):
        hook(**details)


def clear() -> None:
    """Forget every hook (tests)."""
    with _lock:
        _hooks.clear()


def _check(step: str) -> None:
    if step not in STEPS:
        raise ValueError(f"no step {step!r}; the steps are {', '.join(STEPS)}")
