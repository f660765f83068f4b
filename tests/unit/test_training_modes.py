"""Training off the annotators' critical path (AL_TRAINING=ahead) and AL_RETRAIN_EVERY, against a fake gateway."""

from daemon.config import ModelKind, Settings, Training
from daemon.state import StateStore
from tests.unit.conftest import label_batch, make_daemon


def all_indices(gateway) -> list[int]:
    return [r.pool_index for r in gateway.records.values()]


def test_auto_is_ahead_for_the_transformer_only():
    assert Settings(_env_file=None, model=ModelKind.transformer).ahead
    assert not Settings(_env_file=None, model=ModelKind.embeddings).ahead
    assert Settings(_env_file=None, model=ModelKind.tfidf, training=Training.ahead).ahead
    assert not Settings(_env_file=None, model=ModelKind.transformer, training=Training.inline).ahead


def test_ahead_logs_the_prepared_batch_before_training(world, monkeypatch):
    daemon = make_daemon(world, stop_criteria=[], training=Training.ahead)
    daemon.start()
    gateway = world["gateway"]
    label_batch(world, 0)
    daemon.tick()  # no model yet: the first round trains inline, then prepares batch 2
    assert gateway.max_batch_id() == 1 and daemon.state.round == 1
    prepared = daemon.state.prepared
    assert prepared is not None and prepared.batch_id == 2 and len(prepared.pool_indices) == 6
    assert not set(prepared.pool_indices) & daemon.state.used_indices()

    logged_when_training = []
    fit = daemon.learner.fit
    monkeypatch.setattr(
        daemon.learner, "fit", lambda *a, **k: (logged_when_training.append(gateway.max_batch_id()), fit(*a, **k))[1]
    )
    for batch_id in (1, 2):
        expected = daemon.state.prepared.pool_indices
        label_batch(world, batch_id)
        daemon.tick()
        batch = daemon.state.batches[batch_id + 1]
        assert batch.pool_indices == expected and batch.logged  # exactly the batch prepared ahead
        assert [r.pool_index for r in gateway.batch(batch_id + 1)] == expected
        assert batch.round == batch_id  # chosen by the model of the round before: one batch behind
        assert all(r.agent == f"tfidf-logreg:round-{batch_id}" for r in gateway.batch(batch_id + 1))
        assert daemon.state.prepared.batch_id == batch_id + 2
        seconds = daemon.state.rounds[-1].seconds
        assert {"handover", "train", "prepare"} <= seconds.keys()
    # annotators already had the next batch whenever the model trained
    assert logged_when_training == [2, 3]
    assert [m.round for m in daemon.state.rounds] == [0, 1, 2]
    indices = all_indices(gateway)
    assert len(indices) == len(set(indices)) == 24
    assert daemon.status()["training"]["mode"] == "ahead" and daemon.status()["training"]["prepared"]["batch_id"] == 4


def test_ahead_survives_a_restart_with_the_prepared_batch_journaled(world):
    daemon = make_daemon(world, stop_criteria=[], training=Training.ahead)
    daemon.start()
    label_batch(world, 0)
    daemon.tick()
    prepared = list(daemon.state.prepared.pool_indices)
    assert StateStore(world["dir"]).load().prepared.pool_indices == prepared
    restarted = make_daemon(world, stop_criteria=[], training=Training.ahead)
    restarted.start()
    assert len(world["gateway"].records) == 12  # the prepared batch is not logged by a restart
    label_batch(world, 1)
    restarted.tick()
    assert [r.pool_index for r in world["gateway"].batch(2)] == prepared


def test_ahead_stop_waits_for_the_batch_already_out_and_trains_on_it(world):
    daemon = make_daemon(world, max_rounds=2, training=Training.ahead)
    daemon.start()
    for batch_id in (0, 1):
        label_batch(world, batch_id)
        daemon.tick()
    # the criterion fired after batch 2 was logged: nothing more is prepared, and the run waits for batch 2
    assert daemon.state.stop_pending and "max_rounds" in daemon.state.stop_pending
    assert daemon.state.prepared is None and not daemon.finished.is_set()
    assert daemon.status()["training"]["stop_pending"] == daemon.state.stop_pending
    label_batch(world, 2)
    daemon.tick()
    assert daemon.finished.is_set() and "max_rounds" in daemon.state.stopped
    assert world["gateway"].max_batch_id() == 2  # no batch after the stop
    assert len(daemon.state.training_labels()) == 18  # the last batch's labels are in the final model
    assert daemon.state.rounds[-1].round == 2 and daemon.state.rounds[-1].labels == 18


def test_switching_to_inline_drops_the_prepared_batch(world):
    daemon = make_daemon(world, stop_criteria=[], training=Training.ahead)
    daemon.start()
    label_batch(world, 0)
    daemon.tick()
    assert daemon.state.prepared is not None
    inline = make_daemon(world, stop_criteria=[], training=Training.inline)
    inline.start()
    assert inline.state.prepared is None and StateStore(world["dir"]).load().prepared is None
    label_batch(world, 1)
    inline.tick()
    assert inline.state.round == 2 and len(world["gateway"].batch(2)) == 6


def test_retrain_every_two_batches_queries_with_the_model_in_hand(world):
    daemon = make_daemon(world, stop_criteria=[], retrain_every=2)
    daemon.start()
    for batch_id in range(4):
        label_batch(world, batch_id)
        daemon.tick()
        assert len(world["gateway"].batch(batch_id + 1)) == 6
    # round 0 trains (no model yet), then every second batch: rounds 1 and 3
    assert [m.round for m in daemon.state.rounds] == [0, 1, 3]
    assert daemon.state.rounds[-1].labels == 24
    indices = all_indices(world["gateway"])
    assert len(indices) == len(set(indices)) == 30  # batch 3, queried without retraining, skips batch 2's items
