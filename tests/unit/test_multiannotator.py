"""Several annotators per record, CROWDLAB consensus and ActiveLab relabel requests, through the loop with the
fake gateway (the real-Argilla run is tests/integration/test_multiannotator.py)."""

import numpy as np
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from pydantic import ValidationError

from daemon.config import Settings
from daemon.export import labelled_rows
from daemon.learner import Learner
from daemon.metrics import render_metrics
from daemon.status import create_app
from tests.unit.conftest import LABELS, make_daemon
from tests.unit.test_status import Source

TEAM = ("u1", "u2", "u3", "u4")


def answer(world, batch_id, users, wrong=()):
    """Each record of a batch answered by ``users`` (gold label; the first user gets ``wrong`` pool indices wrong).
    A relabel record goes to the first user of the team who has not labelled that text yet."""
    gateway = world["gateway"]
    for record in gateway.batch(batch_id):
        gold = world["gold"][record.text]
        if record.relabel:
            before = {
                u for r in gateway.records.values() if r.pool_index == record.pool_index for u in answers(world, r)
            }
            who = next(u for u in TEAM if u not in before)
            gateway.submit(record.record_id, gold, user=who)
            continue
        for k, user in enumerate(users):
            label = gold
            if k == 0 and record.pool_index in wrong:
                label = next(other for other in LABELS if other != gold)
            gateway.submit(record.record_id, label, user=user)


def answers(world, record):
    return world["gateway"].answers.get(record.record_id, {}).keys()


def test_activelab_asks_again_for_doubtful_labels_and_counts_every_vote(world):
    daemon = make_daemon(world, activelab=True, consensus="crowdlab", batch_size=12, max_rounds=3)
    daemon.start()
    first = [r.pool_index for r in world["gateway"].batch(0)]
    wrong = set(first[:3])  # three labels the first annotator got wrong
    answer(world, 0, ["u1"], wrong=wrong)
    daemon.tick()
    batch = daemon.state.current
    assert batch.batch_id == 1 and batch.relabels, "ActiveLab asked for no second opinion"
    assert set(batch.relabels) <= set(first)
    assert wrong & set(batch.relabels), "the wrongly labelled texts should be among the most doubtful"
    assert len(batch.pool_indices) + len(batch.relabels) == 12
    relabel_records = [r for r in world["gateway"].batch(1) if r.relabel]
    assert sorted(r.record_id for r in relabel_records) == sorted(f"pool-{i}-relabel-1" for i in batch.relabels)
    assert all(r.suggestion is None and r.relabel == 1 for r in relabel_records)

    answer(world, 1, ["u2"])
    daemon.tick()
    votes = daemon.state.votes()
    for index in batch.relabels:
        assert [who for who, _ in votes[index]] == ["u1", "u2"]
    submitted = sum(len(a) for a in world["gateway"].answers.values())
    assert sum(len(v) for v in votes.values()) == submitted  # every answer is one vote, none twice

    page = TestClient(create_app(Source(daemon))).get("/").text
    assert "agreement with the consensus" in page and "ActiveLab relabel requests" in page
    assert "<td>annotator</td>" in page  # u1's name from the gateway, refreshed after the round

    metrics = {f.name: f for f in text_string_to_metric_families(render_metrics(daemon.status()).decode())}
    assert metrics["al_relabel_requests"].samples[0].value == len(batch.relabels) + len(daemon.state.current.relabels)
    assert 0 < metrics["al_annotator_agreement_ratio"].samples[0].value <= 1

    status = daemon.status()["annotation"]
    assert status["relabel_requests"] == len(batch.relabels) + len(daemon.state.current.relabels)
    assert status["annotations"] == submitted
    assert status["texts_with_several_votes"] == len(batch.relabels)
    assert set(status["annotators"]) == {"u1", "u2"}
    assert status["annotators"]["u1"]["compared"] == len(batch.relabels)
    assert status["consensus"] == "crowdlab"

    rows = {row["pool_index"]: row for row in labelled_rows(daemon.state, world["pool"], {"u1": "amy", "u2": "bob"})}
    index = batch.relabels[0]
    assert rows[index]["annotations"] == 2 and rows[index]["votes"][0].startswith("amy=")
    assert rows[index]["label"] == daemon.state.consensus_labels()[index]
    assert len(rows) == len(daemon.state.training_labels())  # a relabel adds votes, not rows


def test_majority_over_relabel_votes_changes_the_training_label(world):
    daemon = make_daemon(world, activelab=True, batch_size=12, max_rounds=4)
    daemon.start()
    first = [r.pool_index for r in world["gateway"].batch(0)]
    answer(world, 0, ["u1"], wrong=set(first[:3]))
    daemon.tick()
    asked = [i for i in daemon.state.current.relabels if i in first[:3]]
    assert asked
    gateway = world["gateway"]
    for record in gateway.batch(1):
        gold = world["gold"][record.text]
        if record.pool_index in asked:  # one disagreeing opinion on some, two on the others
            gateway.submit(record.record_id, gold, user="u2")
            if record.pool_index != asked[0]:
                gateway.submit(record.record_id, gold, user="u3")
        else:
            gateway.submit(record.record_id, gold, user="u1")
    daemon.tick()
    labels = daemon.state.training_labels()
    gold = {i: world["gold"][world["pool"].texts[i]] for i in asked}
    assert labels[asked[0]] != gold[asked[0]], "u1 against u2: the tie goes to the first answer"
    assert all(labels[i] == gold[i] for i in asked[1:]), "two against one: the majority wins"
    assert len(daemon.state.votes()[asked[0]]) == 2


def test_two_annotators_per_record_train_on_the_consensus_and_report_agreement(world):
    daemon = make_daemon(world, annotators_per_record=2, max_rounds=2)
    daemon.start()
    first = [r.pool_index for r in world["gateway"].batch(0)]
    answer(world, 0, ["u1"], wrong=set(first[:2]))
    daemon.tick()
    assert daemon.state.current.batch_id == 0, "one answer of two does not complete a record"
    answer(world, 0, ["u1", "u2"], wrong=set(first[:2]))
    daemon.tick()
    assert daemon.state.current.batch_id == 1
    view = daemon.status()["annotation"]
    assert view["texts_with_several_votes"] == 6
    # u1 was wrong twice; a tie goes to the first answer, so u2 is the one disagreeing with the consensus
    assert view["annotators"]["u1"]["agreement"] == 1.0
    assert view["annotators"]["u2"]["agreement"] == pytest.approx(4 / 6)
    assert view["mean_agreement"] == pytest.approx((4 * 1 + 2 * 0.5) / 6)
    assert view["relabel_requests"] == 0 and view["activelab"] is False


def test_out_of_sample_probabilities_never_come_from_a_model_that_saw_the_text(world):
    daemon = make_daemon(world)
    learner: Learner = daemon.learner
    y = {i: LABELS.index(label) for i, label in enumerate(world["pool"].gold)}
    flipped = 0
    y[flipped] = (y[flipped] + 1) % 3
    proba = learner.out_of_sample_proba(y, folds=5, round_number=0)
    assert proba.shape == (len(y), 3)
    assert np.allclose(proba.sum(axis=1), 1)
    assert proba[0].argmax() == world["y"][0], "held out, the flipped text is predicted as its true class"
    assert np.array_equal(proba, learner.out_of_sample_proba(y, folds=5, round_number=0))  # seeded
    assert np.allclose(learner.out_of_sample_proba({0: 0, 1: 0}, 5, 0), 1 / 3)  # one class: no model


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"activelab": True, "model": "transformer"}, "AL_TRAINING=inline"),
        ({"consensus": "crowdlab", "retrain_every": 2}, "AL_RETRAIN_EVERY=1"),
        ({"activelab": True, "annotators_per_record": 3, "max_annotations": 2}, "max_annotations"),
    ],
)
def test_settings_refuse_combinations_that_cannot_work(options, message):
    with pytest.raises(ValidationError, match=message):
        Settings(_env_file=None, **options)


def test_no_relabel_request_when_nobody_new_could_answer_it(world):
    world["gateway"].members = {"u1"}  # a team of one: the person who labelled everything
    daemon = make_daemon(world, activelab=True, batch_size=12, max_rounds=3)
    daemon.start()
    first = [r.pool_index for r in world["gateway"].batch(0)]
    answer(world, 0, ["u1"], wrong=set(first[:3]))
    daemon.tick()
    assert daemon.state.current.batch_id == 1
    assert daemon.state.current.relabels == [] and len(daemon.state.current.pool_indices) == 12


def test_relabel_requests_nobody_answers_lapse_after_stuck_after_and_late_answers_still_count(world):
    from datetime import UTC, datetime, timedelta

    daemon = make_daemon(world, activelab=True, batch_size=12, max_rounds=4, stuck_after=60, stuck_action="wait")
    daemon.start()
    first = [r.pool_index for r in world["gateway"].batch(0)]
    answer(world, 0, ["u1"], wrong=set(first[:3]))
    daemon.tick()
    batch = daemon.state.current
    assert batch.relabels
    gateway = world["gateway"]
    for record in gateway.batch(1):
        if not record.relabel:
            gateway.submit(record.record_id, world["gold"][record.text], user="u2")
    daemon.tick()
    assert daemon.state.current.batch_id == 1, "relabel requests wait, up to AL_STUCK_AFTER"
    batch.logged_at = (datetime.now(UTC) - timedelta(seconds=61)).isoformat()
    daemon.tick()
    assert daemon.state.current.batch_id == 2 and batch.complete and batch.open == []
    assert all(len(daemon.state.votes()[i]) == 1 for i in batch.relabels)
    late = next(r for r in gateway.batch(1) if r.relabel)
    gateway.submit(late.record_id, world["gold"][late.text], user="u3")
    answer(world, 2, ["u1"])
    daemon.tick()
    assert [who for who, _ in daemon.state.votes()[late.pool_index]] == ["u1", "u3"]


def test_an_answer_edited_after_its_round_updates_the_votes(world):
    daemon = make_daemon(world, annotators_per_record=2, max_rounds=3)
    daemon.start()
    answer(world, 0, ["u1", "u2"])
    daemon.tick()
    record = world["gateway"].batch(0)[0]
    gold = world["gold"][record.text]
    other = next(label for label in LABELS if label != gold)
    world["gateway"].submit(record.record_id, other, user="u2")  # u2 changes their mind in Argilla
    answer(world, 1, ["u1", "u2"])
    daemon.tick()
    assert daemon.state.votes()[record.pool_index] == [("u1", gold), ("u2", other)]
    assert daemon.state.training_labels()[record.pool_index] == gold  # a tie: the first answer
    assert daemon.status()["annotation"]["annotators"]["u2"]["agreement"] < 1.0
