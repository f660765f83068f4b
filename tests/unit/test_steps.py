"""The named steps of a round (daemon/steps.py), the fault suite's seam: a run reaches each of them, in order."""

import pytest

from daemon import steps
from tests.unit.conftest import label_batch, make_daemon


@pytest.fixture
def seen():
    found: list[str] = []
    for name in steps.STEPS:
        steps.on_step(name, lambda name=name, **details: found.append(name))
    yield found
    steps.clear()


def test_a_round_and_a_stop_reach_every_step_in_order(world, seen):
    daemon = make_daemon(world, max_rounds=1)
    daemon.start()  # journals batch 0, logs it
    assert seen == ["journaling-batch", "saving-state", "batch-journaled", "logging", "batch-logged", "saving-state"]
    del seen[:]
    label_batch(world, 0)
    daemon.tick()  # closes batch 0, trains round 0, stops (max_rounds) and exports
    not_in_a_round = {"journaling-batch", "batch-journaled", "logging", "batch-logged", "seed-journaled"}
    not_in_a_round |= {"ladder-probes-drawn", "ladder-probes-journaled", "ladder-compared", "ladder-journaled"}
    # (the last four: AL_LADDER's comparison, tests/unit/test_ladder.py)
    assert set(seen) == set(steps.STEPS) - not_in_a_round
    first = {name: seen.index(name) for name in seen}
    assert first["closing-batch"] < first["batch-closed"] < first["training"] < first["trained"] < first["exporting"]


def test_a_round_that_goes_on_journals_and_logs_the_next_batch(world, seen):
    daemon = make_daemon(world, stop_criteria=[])
    daemon.start()
    del seen[:]
    label_batch(world, 0)
    daemon.tick()
    order = [name for name in seen if name != "saving-state"]
    assert order == [
        "closing-batch",
        "batch-closed",
        "training",
        "trained",
        "journaling-batch",
        "batch-journaled",
        "logging",
        "batch-logged",
    ]


def test_an_unknown_step_is_refused():
    with pytest.raises(ValueError, match="no step 'after-query'"):
        steps.on_step("after-query", lambda **_: None)
    with pytest.raises(ValueError):
        steps.reached("nowhere")
