"""AL_TRAINING=ahead and AL_RETRAIN_EVERY against the real Argilla: the batch prepared while annotators label is
the one that appears in Argilla when they finish; the next model trains off the poll thread."""

import threading

import pytest

from daemon.config import ModelKind, Training
from daemon.learner import Learner
from tests.integration.test_gateway import annotator_for
from tests.integration.test_models_strategies import LABELS, tiny_daemon

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("model", "retrain_every"), [(ModelKind.tfidf, 1), (ModelKind.transformer, 2)], ids=["tfidf", "transformer-every-2"]
)
def test_ahead_logs_the_prepared_batch_then_trains(
    argilla_stack, dataset_name, tmp_path, cache_dir, monkeypatch, model, retrain_every
):
    daemon = tiny_daemon(
        argilla_stack,
        dataset_name,
        tmp_path,
        cache_dir,
        model=model,
        training=Training.auto if model is ModelKind.transformer else Training.ahead,
        retrain_every=retrain_every,
        batch_size=5,
    )
    assert daemon.settings.ahead
    pool, gateway = daemon.pool, daemon.gateway
    daemon.start()

    in_argilla_at_fit = []
    fit = Learner.fit

    def recording_fit(learner, *args, **kwargs):
        in_argilla_at_fit.append((threading.current_thread().name, gateway.max_batch_id()))
        return fit(learner, *args, **kwargs)

    monkeypatch.setattr(Learner, "fit", recording_fit)
    person = annotator_for(argilla_stack, dataset_name, dict(zip(pool.texts, pool.gold, strict=True)), LABELS)
    prepared = []
    for batch_id in range(4):
        assert person.run(max_records=5 * (batch_id + 1)).submitted == 5 * (batch_id + 1)
        daemon.tick()  # hands out the next batch at once; the model trains on the background thread
        assert daemon.state.current.batch_id == batch_id + 1, daemon.status()["reason"]
        if batch_id >= 1:  # from the second round on, the batch in Argilla is the one prepared a round before
            assert daemon.state.current.pool_indices == prepared[-1]
        assert daemon.settle(600)
        prepared.append(list(daemon.state.prepared.pool_indices))

    # every model trained off the poll thread, with the next batch already in Argilla
    trained_rounds = [0] + [b for b in range(1, 4) if (b + 1) % retrain_every == 0]
    assert in_argilla_at_fit == [("al-trainer", b + 1) for b in trained_rounds]
    assert [m.round for m in daemon.state.rounds] == trained_rounds
    records = gateway.read_all()
    indices = [view.pool_index for view in records]
    assert len(indices) == len(set(indices)) == 25
    assert all(m.accuracy is not None for m in daemon.state.rounds)
