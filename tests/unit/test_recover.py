"""`al-daemon recover`'s core: the journal rebuilt from the records in Argilla equals the lost one in everything
that decides training (batches, labels, discards, votes, records left open), and a daemon resumes on it."""

import dataclasses

import pytest

from daemon.errors import StateError
from daemon.recover import rebuild, summary
from daemon.state import StateStore
from tests.unit.conftest import LABELS, label_batch, make_daemon


def essentials(state):
    return [
        (
            b.batch_id,
            b.round,
            sorted(b.pool_indices),
            b.labels,
            sorted(b.discarded),
            b.votes,
            sorted(b.open),
            b.complete,
        )
        for b in state.batches
    ]


def test_the_rebuilt_journal_equals_the_lost_one(world):
    daemon = make_daemon(world, stop_criteria=[])
    daemon.start()
    gateway = world["gateway"]
    for batch_id in range(3):
        first = gateway.batch(batch_id)[0].pool_index
        label_batch(world, batch_id, discard={first})
        daemon.tick()
    label_batch(world, 3)  # the batch out is answered, not yet seen by the daemon
    lost = daemon.state
    rebuilt = rebuild(daemon.settings, world["pool"], LABELS, gateway.read_all(), "fake-id")
    assert essentials(rebuilt)[:-1] == essentials(lost)[:-1]
    last = rebuilt.current
    assert last.batch_id == 3 and not last.complete and last.logged  # left for the daemon to close
    assert rebuilt.training_labels() == lost.training_labels() and rebuilt.discarded() == lost.discarded()
    assert rebuilt.rounds == [] and rebuilt.dataset_id == "fake-id"
    assert summary(rebuilt) == "4 batches (3 closed, batch 3 open), 15 labels, 3 discarded, 0 left open"

    StateStore(world["dir"]).save(rebuilt)  # what the command writes; then the daemon starts as usual
    again = make_daemon(world, stop_criteria=[])
    again.start()
    again.tick()
    assert again.state.batches[3].complete and len(again.state.training_labels()) == 21
    assert again.state.current.batch_id == 4 and len(gateway.batch(4)) == 6
    indices = [r.pool_index for r in gateway.records.values()]
    assert len(indices) == len(set(indices)) == 30  # nothing asked twice


def test_a_stuck_batch_closed_early_keeps_its_open_records(world):
    daemon = make_daemon(world, stop_criteria=[], stuck_after=1, stuck_action="proceed")
    daemon.start()
    gateway = world["gateway"]
    records = gateway.batch(0)
    for record in records[:4]:
        gateway.submit(record.record_id, world["gold"][record.text])
    daemon.state.current.logged_at = "2000-01-01T00:00:00+00:00"  # waited long enough to be stuck
    daemon.tick()
    assert sorted(daemon.state.batches[0].open) == sorted(r.pool_index for r in records[4:])
    rebuilt = rebuild(daemon.settings, world["pool"], LABELS, gateway.read_all(), "fake-id")
    assert essentials(rebuilt)[0] == essentials(daemon.state)[0]


def test_records_of_another_pool_are_refused(world):
    daemon = make_daemon(world, stop_criteria=[])
    daemon.start()
    views = world["gateway"].read_all()
    views[0] = dataclasses.replace(views[0], text="not the pool's text")
    with pytest.raises(StateError, match="does not match row .* recover needs the pool file"):
        rebuild(daemon.settings, world["pool"], LABELS, views, "fake-id")


def test_a_dataset_without_batches_has_nothing_to_recover(world):
    daemon = make_daemon(world)
    with pytest.raises(StateError, match="holds no batch of al-daemon"):
        rebuild(daemon.settings, world["pool"], LABELS, [], "fake-id")
