"""The model ladder's decision (daemon/ladder.py) on real learners: a model that can learn the task against one
that cannot (logistic regression on the same all-zero vector for every text)."""

import numpy as np
import pytest
from fastapi.testclient import TestClient
from small_text import SklearnDataset

from daemon import steps
from daemon.app import Service
from daemon.batches import QueryResult
from daemon.config import ColdStart, Ladder, LadderCompare, ModelKind, QueryStrategyName, Settings, task_problem
from daemon.inputs import load_data, task_settings
from daemon.ladder import (
    CONFIDENCE,
    LadderRunner,
    compare,
    disagreements,
    draw,
    draw_probes,
    due,
    probe_lead,
    probe_verdict,
    stratified_lead,
)
from daemon.learner import Features, Learner
from daemon.loop import Daemon
from daemon.models import build_features
from daemon.pool import load_table
from daemon.rounds import AheadRounds, InlineRounds
from daemon.simulate import wait_for
from daemon.smalltext import logistic_regression_factory
from daemon.state import LadderProbes
from daemon.status import create_app
from tests.conftest import free_port, synonym_rows, tiny_rows, write_jsonl
from tests.fakes import FakeGateway
from tests.unit.test_status import Source

LABELS = ["food", "sport", "tech"]


@pytest.fixture
def learners(tmp_path):
    path = write_jsonl(tmp_path / "pool.jsonl", tiny_rows(30))
    pool = load_table(path, "text", "label", "id")
    gold = np.array([LABELS.index(label) for label in pool.gold])
    settings = Settings(_env_file=None, model=ModelKind.tfidf, state_dir=tmp_path)
    words = build_features(settings, pool, pool, gold, len(LABELS))
    nothing = np.zeros((len(pool), 4), dtype=np.float32)  # every text looks the same: it can only guess the prior
    blind = Features(
        pool=SklearnDataset(nothing, np.full(len(pool), -1), target_labels=np.arange(len(LABELS))),
        test=None,
        factory=logistic_regression_factory(len(LABELS), 0),
        name="blind",
    )

    def make(features, seed=0):
        return Learner(features, len(LABELS), QueryStrategyName.breaking_ties, seed)

    labelled = {i: int(gold[i]) for i in np.random.default_rng(1).choice(len(pool), 45, replace=False)}
    return make, words, blind, labelled


def test_a_model_that_learns_takes_over_from_one_that_cannot_and_not_the_other_way(learners):
    make, words, blind, labelled = learners
    up = compare(make(blind), make(words), labelled)
    assert up.switch and up.labels == 45 and up.folds == 3
    assert up.candidate_accuracy > 0.8 and up.current_accuracy < 0.45
    assert up.lead > max(up.margin, up.standard_error)
    assert "tfidf-logreg takes over" in up.reason and "45 labels" in up.reason
    down = compare(make(words), make(blind), labelled)
    assert not down.switch and "tfidf-logreg stays" in down.reason
    assert down.current_accuracy == up.candidate_accuracy  # the same folds either way round


def test_the_same_model_never_takes_over_from_itself(learners):
    make, words, _, labelled = learners
    verdict = compare(make(words), make(words), labelled)
    assert verdict.lead == 0 and not verdict.switch


def test_compared_learners_share_their_folds(learners):
    make, words, blind, labelled = learners
    with pytest.raises(ValueError, match="same seed"):
        compare(make(words), make(blind, seed=1), labelled)
    first, second = (
        compare(make(blind), make(words), labelled).model_copy(update={"seconds": 0, "at": ""}) for _ in range(2)
    )
    assert first == second  # seeded: the same folds, the same verdict


def test_probes_are_drawn_among_the_unlabelled_texts_the_two_trained_models_disagree_on(learners):
    make, words, blind, labelled = learners
    current, candidate = make(blind), make(words)
    free = sorted(set(range(current.pool_size)) - labelled.keys())
    ignored, used = {free[0]}, {free[1], free[2]}
    kinds = (ModelKind.embeddings, ModelKind.tfidf)
    pending = draw(current, candidate, labelled, ignored, used, kinds, folds=3, size=5, seed=0, round_number=1)
    mine, theirs = current.pool_proba().argmax(axis=1), candidate.pool_proba().argmax(axis=1)  # both left trained
    unlabelled = set(free) - ignored - used
    apart = [i for i in sorted(unlabelled) if mine[i] != theirs[i]]
    assert pending.disagreements == len(apart) > 5 and pending.share == round(len(apart) / len(unlabelled), 4)
    assert len(pending.indices) == 5 and set(pending.indices) <= set(apart)
    assert pending.current_predicted == [int(mine[i]) for i in pending.indices]
    assert pending.candidate_predicted == [int(theirs[i]) for i in pending.indices]
    assert (pending.current, pending.candidate, pending.labels) == ("embeddings", "tfidf", len(labelled))
    assert pending.labelled_share == round(len(labelled) / (len(labelled) + len(unlabelled)), 4)
    by_cv = compare(make(blind), make(words), labelled, round_number=1)  # the same folds as the daemon's CV
    assert (pending.cv_current, pending.cv_candidate) == (by_cv.current_accuracy, by_cv.candidate_accuracy)
    again = draw(make(blind), make(words), labelled, ignored, used, kinds, folds=3, size=5, seed=0, round_number=1)
    assert again.indices == pending.indices  # seeded by the seed and the labels' count


def test_a_comparison_is_due_at_the_first_count_then_as_the_labels_grow():
    assert not due(199, first=200, compared_at=[])
    assert due(200, first=200, compared_at=[])
    assert not due(280, first=200, compared_at=[200])
    assert due(300, first=200, compared_at=[200])
    assert not due(440, first=200, compared_at=[200, 300])
    assert due(450, first=200, compared_at=[200, 300])


def binary_pair(rng, size=20_000):
    """Gold labels of a binary pool and two models' predictions: the current one right on ~70 % of it, the candidate
    right where it is except 5 % of those, and on half of the rest (~81.5 %; they disagree on ~18.5 %)."""
    gold = rng.integers(0, 2, size)
    right_current = rng.random(size) < 0.7
    right_candidate = np.where(right_current, rng.random(size) >= 0.05, rng.random(size) < 0.5)
    return gold, np.where(right_current, gold, 1 - gold), np.where(right_candidate, gold, 1 - gold)


def test_probes_among_disagreements_estimate_the_pool_lead_without_bias():
    rng = np.random.default_rng(0)
    gold, current, candidate = binary_pair(rng)
    labelled = rng.choice(len(gold), 1_000, replace=False)
    unlabelled = np.setdiff1d(np.arange(len(gold)), labelled)
    apart = disagreements(current, candidate, unlabelled)
    assert set(apart) == {i for i in unlabelled if current[i] != candidate[i]} and not set(apart) & set(labelled)
    share = len(apart) / len(unlabelled)
    truth = float((candidate[unlabelled] == gold[unlabelled]).mean() - (current[unlabelled] == gold[unlabelled]).mean())
    assert 0.05 < truth < 0.15 and 0.1 < share < 0.5
    estimates, switches = [], []
    for _ in range(300):
        probes = draw_probes(apart, 40, rng)
        assert len(probes) == len(set(probes)) == 40 and set(probes) <= set(apart)
        lead, error, switch = probe_lead(
            current[probes] == gold[probes], candidate[probes] == gold[probes], share, 0.01
        )
        assert error > 0
        estimates.append(lead)
        switches.append(switch)
    assert abs(np.mean(estimates) - truth) < 0.01  # unbiased: the mean of many draws is the pool's lead
    assert np.mean(switches) > 0.9  # 40 votes tell a 0.1 lead apart
    backwards = [
        probe_lead(candidate[p] == gold[p], current[p] == gold[p], share, 0.01)[2]
        for p in (draw_probes(apart, 40, rng) for _ in range(300))
    ]
    assert not any(backwards)  # the weaker model never takes over


def test_the_pool_lead_weighs_the_unlabelled_part_and_the_labels_in_hand_by_their_shares():
    # TREC-6 at 1,000 of 4,381 texts (bench/fine_tune_steps.py): level on the unlabelled rest, the transformer far
    # ahead on the labels the hybrid chose; validation has it 0.040 ahead
    lead, error, switch = stratified_lead((0.0, 0.004), (0.17, 0.02), 0.23, 0.01)
    assert lead == pytest.approx(0.23 * 0.17) and error == pytest.approx(np.hypot(0.77 * 0.004, 0.23 * 0.02))
    assert switch
    assert stratified_lead((-0.03, 0.005), (0.12, 0.02), 0.14, 0.01)[2] is False  # SUBJ: -0.009, it stays
    assert stratified_lead((0.05, 0.01), (0.0, 1.0), 0.0, 0.01) == (0.05, 0.01, True)  # nothing labelled: probes alone
    assert stratified_lead((0.02, 0.06), (0.02, 0.0), 0.5, 0.01)[2] is False  # a lead inside its error
    # over one standard error but not over 1.645 (one-sided 95 %): it stays, a switch must be worth its risk
    assert stratified_lead((0.03, 0.02), (0.0, 0.0), 0.0, 0.01)[2] is False
    assert stratified_lead((0.034, 0.02), (0.0, 0.0), 0.0, 0.01)[2] is True


def test_a_probes_verdict_follows_from_the_numbers_it_journals():
    # CR, seed 1, 500 labels (bench/ladder_default.py): the transformer right on 24 of 40 probes, the hybrid on 16,
    # the disagreements 9.95 % of the unlabelled pool, the labels in hand 20.75 % of the pool. Around its
    # cross-validation error the lead sits on the bar (+0.0224 against 1.645 x 0.0136): whoever reads the journal
    # back (bench replays, an audit) must reach the verdict the daemon reached
    pending = LadderProbes(
        round=24, labels=500, current="hybrid", candidate="transformer", current_name="hybrid",
        candidate_name="transformer", share=0.0995, disagreements=190, indices=list(range(40)),
        current_predicted=[0] * 16 + [1] * 24, candidate_predicted=[1] * 16 + [0] * 24, seconds=1.0,
        labelled_share=0.2075, folds=3, cv_current=0.588, cv_candidate=0.62,
    )  # fmt: skip
    labels = dict.fromkeys(range(40), 0)
    verdicts = [
        probe_verdict(pending.model_copy(update={"cv_error": error}), labels, 0.01)
        for error in np.linspace(0.026, 0.029, 601)
    ]
    assert {v.switch for v in verdicts} == {True, False}  # the grid crosses the bar
    for v in verdicts:
        assert v.switch == (v.estimated_lead > max(v.margin, CONFIDENCE * v.standard_error)), v.reason
        assert v.estimated_lead == round(v.estimated_lead, 4) and v.standard_error == round(v.standard_error, 4)


def test_models_that_agree_everywhere_give_no_probes_and_no_switch():
    rng = np.random.default_rng(0)
    same = rng.integers(0, 3, 100)
    apart = disagreements(same, same.copy(), np.arange(100))
    assert len(apart) == 0 and draw_probes(apart, 20, rng) == []
    lead, error, switch = probe_lead(np.array([], dtype=bool), np.array([], dtype=bool), 0.0, 0.01)
    assert lead == 0 and error == 0 and not switch


# ---- the ladder in a run (fake gateway, real learners) ------------------------------------------------------------
@pytest.fixture
def synonyms(tmp_path):
    path = write_jsonl(tmp_path / "pool.jsonl", synonym_rows())
    pool = load_table(path, "text", "label", "id")
    gold = {text: label for text, label in zip(pool.texts, pool.gold, strict=True)}
    y = np.array([LABELS.index(label) for label in pool.gold])
    return {"pool": pool, "gold": gold, "y": y, "gateway": FakeGateway(), "dir": tmp_path / "state"}


def ladder_daemon(world, **overrides) -> Daemon:
    options = {
        "model": ModelKind.tfidf,
        "ladder": ModelKind.embeddings,
        "ladder_after": 30,
        "ladder_compare": LadderCompare.cv,  # the switch's mechanics: cv decides at once (probes: see below)
        "ladder_probes": 10,
        "batch_size": 10,
        "state_dir": world["dir"],
        "dataset": "d",
        "workspace": "w",
        "max_rounds": 8,
        "stop_criteria": [],  # the runs here stop by max_rounds, not when the predictions settle
    }
    settings = Settings(_env_file=None, **(options | overrides))

    def learner(kind: ModelKind) -> Learner:
        chosen = settings.using(kind)
        features = build_features(chosen, world["pool"], world["pool"], world["y"], len(LABELS))
        return Learner.from_settings(features, len(LABELS), chosen)

    daemon = Daemon(settings, world["gateway"], learner(settings.model), world["pool"], LABELS, world["y"])
    daemon.ladder = LadderRunner(daemon, settings.ladder, learner)
    return daemon


def answer_batch(world, daemon, batch_id):
    for record in world["gateway"].batch(batch_id):
        world["gateway"].submit(record.record_id, world["gold"][record.text])
    daemon.tick()
    assert daemon.settle(120)


def test_a_model_that_cross_validates_better_takes_over_the_batches_and_says_why(synonyms):
    daemon = ladder_daemon(synonyms)
    daemon.start()
    answer_batch(synonyms, daemon, 0)
    answer_batch(synonyms, daemon, 1)
    assert daemon.state.ladder == [] and daemon.status()["ladder"]["taken_over"] is False  # 20 labels: not yet
    journal = []  # what state.json holds at the ladder's named steps (the fault suite's kill points)
    for step in ("ladder-compared", "ladder-journaled"):
        steps.on_step(step, lambda verdict, step=step: journal.append((step, daemon.store.load().model_in_use)))
    try:
        answer_batch(synonyms, daemon, 2)  # 30 labels: the comparison runs off the poll thread, then the switch
    finally:
        steps.clear()
    assert journal == [("ladder-compared", None), ("ladder-journaled", "embeddings")]
    [verdict] = daemon.state.ladder
    assert verdict.labels == 30 and verdict.switch and verdict.current.startswith("tfidf")
    assert verdict.candidate_accuracy > verdict.current_accuracy + 0.2
    assert daemon.state.model_in_use == "embeddings" and daemon.learner.trained
    assert daemon.learner.name.startswith("embeddings") and daemon.status()["model"] == daemon.learner.name
    ladder = daemon.status()["ladder"]
    assert ladder["taken_over"] and ladder["model_in_use"] == "embeddings" and ladder["running"] is None
    assert "takes over" in ladder["comparisons"][0]["reason"]
    journaled = daemon.store.load()
    assert journaled.model_in_use == "embeddings" and journaled.ladder[0].switch
    client = TestClient(create_app(Source(daemon)))
    assert "embeddings chooses the batches" in client.get("/").text and "takes over" in client.get("/").text
    assert "al_ladder_taken_over 1.0" in client.get("/metrics").text
    # batch 3 was chosen by the model in hand at round 2; from round 3 on the embeddings model trains and chooses
    answer_batch(synonyms, daemon, 3)
    assert daemon.learner.name.startswith("embeddings") and daemon.learner.fits["initialize_data"] >= 1
    answer_batch(synonyms, daemon, 4)  # 50 labels: grown 1.5-fold, but the ladder has been climbed
    assert len(daemon.state.ladder) == 1
    assert daemon.state.rounds[-1].accuracy > 0.8  # the test set is the pool: the embeddings model learnt it


def test_a_model_no_better_in_cross_validation_does_not_take_over(synonyms):
    daemon = ladder_daemon(synonyms, model=ModelKind.embeddings, ladder=ModelKind.tfidf)  # the other way round
    daemon.start()
    for batch_id in range(3):
        answer_batch(synonyms, daemon, batch_id)
    [verdict] = daemon.state.ladder
    assert not verdict.switch and "embeddings-all-MiniLM-L6-v2 stays" in verdict.reason
    assert daemon.state.model_in_use is None and daemon.learner.name.startswith("embeddings")
    assert daemon.status()["ladder"]["model_in_use"] == "embeddings"
    answer_batch(synonyms, daemon, 3)  # 40 labels: not yet 1.5 x 30
    assert len(daemon.state.ladder) == 1
    answer_batch(synonyms, daemon, 4)  # 50 labels: compared again
    assert [v.labels for v in daemon.state.ladder] == [30, 50] and not daemon.state.ladder[1].switch


def test_probes_go_into_the_next_batch_and_the_verdict_waits_for_their_labels(synonyms):
    """AL_LADDER_COMPARE=probes: at 30 labels both models are trained and 10 texts on which they disagree are
    drawn and journaled; batch 3 was chosen before, so they lead batch 4 (no suggestion on them); once batch 4 is
    answered the verdict is theirs, and the embeddings model, right on them, takes over."""
    daemon = ladder_daemon(synonyms, ladder_compare=LadderCompare.probes)
    daemon.start()
    answer_batch(synonyms, daemon, 0)
    answer_batch(synonyms, daemon, 1)
    journal = []
    steps.on_step("ladder-probes-journaled", lambda probes: journal.append(daemon.store.load().ladder_probes))
    try:
        answer_batch(synonyms, daemon, 2)
    finally:
        steps.clear()
    pending = daemon.state.ladder_probes
    assert journal == [pending] and daemon.state.ladder == [] and daemon.state.model_in_use is None
    assert pending.labels == 30 and len(pending.indices) == 10 and pending.current == "tfidf"
    assert all(a != b for a, b in zip(pending.current_predicted, pending.candidate_predicted, strict=True))
    assert not set(pending.indices) & daemon.state.used_indices() and 0.1 < pending.share <= 1
    assert pending.disagreements == round(pending.share * 50)  # 90 texts, 40 in batches 0-3
    assert daemon.status()["ladder"]["probing"]["waiting"] == 10
    client = TestClient(create_app(Source(daemon)))
    assert (
        "10 still to label" in client.get("/").text and "al_ladder_probes_waiting 10.0" in client.get("/metrics").text
    )
    answer_batch(synonyms, daemon, 3)
    fourth = daemon.state.batches[4]
    assert fourth.probes == pending.indices == fourth.pool_indices and fourth.suggestions == [None] * 10
    assert len(set(fourth.pool_indices)) == 10  # probes the query picked too are asked once, as probes
    assert daemon.state.ladder == [] and daemon.status()["ladder"]["probing"]["waiting"] == 10
    answer_batch(synonyms, daemon, 4)
    [verdict] = daemon.state.ladder
    assert verdict.method == "probes" and verdict.probes == 10 and verdict.labels == 30 and verdict.switch
    assert verdict.candidate_accuracy >= 0.8 and verdict.lead > max(verdict.margin, verdict.standard_error)
    assert "takes over" in verdict.reason and "disagreed" in verdict.reason
    assert daemon.state.ladder_probes is None and daemon.state.model_in_use == "embeddings"
    assert daemon.learner.name.startswith("embeddings") and daemon.store.load().model_in_use == "embeddings"
    assert (
        "al_ladder_lead" in client.get("/metrics").text
        and "al_ladder_probes_waiting 0.0" in client.get("/metrics").text
    )


def test_probes_join_a_batch_after_the_records_carried_over_and_the_query_makes_room(synonyms):
    daemon = ladder_daemon(synonyms, ladder_compare=LadderCompare.probes)
    daemon.start()
    used = daemon.state.used_indices()
    free = [i for i in range(90) if i not in used]
    carried, picks, probes = [used.pop()], free[:9], [free[5], free[20], free[30]]  # free[5]: the query's pick too
    daemon.state.ladder_probes = LadderProbes(
        round=1, labels=10, current="tfidf", candidate="embeddings", current_name="tfidf-logreg",
        candidate_name="embeddings", share=0.5, disagreements=40, indices=probes,
        current_predicted=[0, 0, 0], candidate_predicted=[1, 1, 1], seconds=0.1,
    )  # fmt: skip
    result = QueryResult.guessed(carried + picks, np.full((90, 3), 1 / 3), scores=[None] + [0.5] * 9)
    batch, chosen = daemon.with_probes(result, carried)
    assert chosen == probes and len(batch.indices) == 10 == len(set(batch.indices))
    assert batch.indices == carried + probes + [i for i in picks if i != free[5]][:6]  # the query's tail made room
    assert batch.predicted[1:4] == [None] * 3 and batch.predicted[4:] == [0] * 6  # no suggestion on a probe
    daemon.state.ladder_probes = None
    assert daemon.with_probes(result, carried) == (result, [])


def test_a_model_that_took_over_gives_way_back_when_the_probes_say_so(synonyms):
    """After a take-over the comparison goes on with AL_MODEL's model as the candidate: here tfidf chooses the
    batches (as a journal naming it would have it), the probes favour AL_MODEL's embeddings, which comes back."""
    daemon = ladder_daemon(
        synonyms, model=ModelKind.embeddings, ladder=ModelKind.tfidf, ladder_compare=LadderCompare.probes
    )
    daemon.start()
    daemon.state.model_in_use = "tfidf"
    daemon.use_model(daemon.ladder.build(ModelKind.tfidf))
    for batch_id in range(5):
        answer_batch(synonyms, daemon, batch_id)
    [verdict] = daemon.state.ladder
    assert verdict.current.startswith("tfidf") and verdict.candidate.startswith("embeddings") and verdict.switch
    assert daemon.state.model_in_use is None and daemon.learner.name.startswith("embeddings")
    assert daemon.status()["ladder"]["taken_over"] is False


def test_ladder_settings_that_cannot_work_are_refused():
    with pytest.raises(ValueError, match="AL_MODEL already"):
        Settings(_env_file=None, model=ModelKind.hybrid, ladder=ModelKind.hybrid)
    with pytest.raises(ValueError, match="annotators would wait"):
        Settings(_env_file=None, ladder=ModelKind.transformer, training="inline")
    assert task_problem(Settings(_env_file=None, ladder=ModelKind.transformer), multi_label=True)
    assert task_problem(Settings(_env_file=None, ladder=ModelKind.transformer), multi_label=False) is None


def test_the_ladder_is_off_by_default_and_auto_is_the_transformer_where_a_ladder_can_run(monkeypatch):
    monkeypatch.delenv("AL_LADDER", raising=False)
    assert Settings(_env_file=None).ladder is Ladder.off  # its comparison favours the newcomer (README)
    assert task_settings(Settings(_env_file=None), multi_label=False).ladder_model is None
    default = Settings(_env_file=None, ladder="auto")
    assert default.ladder is Ladder.auto and default.ladder_model is None  # settled once the task is known
    assert task_settings(default, multi_label=False).ladder_model is ModelKind.transformer
    assert task_problem(default, multi_label=True) is None  # auto never refuses a task: it stays off there
    for settings, multi_label in (
        (default, True),  # multi-label: the folds are stratified by class
        (Settings(_env_file=None, ladder="auto", model=ModelKind.transformer), False),  # fine-tuned already
        (Settings(_env_file=None, ladder="auto", model=ModelKind.setfit), False),
        (Settings(_env_file=None, ladder="auto", training="inline"), False),  # annotators would wait for it
        (Settings(_env_file=None, ladder="auto", activelab=True), False),
        (Settings(_env_file=None, ladder="auto", consensus="crowdlab"), False),
        (Settings(_env_file=None, ladder="off"), False),
    ):
        resolved = task_settings(settings, multi_label)
        assert resolved.ladder is Ladder.off and resolved.ladder_model is None, settings
    monkeypatch.setenv("AL_LADDER", "setfit")  # a model named in the environment is used as named
    assert task_settings(Settings(_env_file=None), multi_label=False).ladder_model is ModelKind.setfit
    monkeypatch.setenv("AL_LADDER", "off")
    assert Settings(_env_file=None).ladder is Ladder.off


def test_after_a_restart_the_model_that_took_over_is_built_and_a_fine_tuned_one_trains_ahead(synonyms):
    daemon = ladder_daemon(synonyms)
    daemon.start()
    for batch_id in range(3):
        answer_batch(synonyms, daemon, batch_id)
    assert daemon.state.model_in_use == "embeddings"
    # the service builds the learner of the model in use (its features), not AL_MODEL's
    settings = daemon.settings.model_copy(update={"pool_file": synonyms["pool"].source, "test_file": None})
    service = Service(settings, data=load_data(settings))
    service.daemon = daemon
    assert service.learner().name.startswith("embeddings")
    assert service.learner(model=ModelKind.tfidf).name.startswith("tfidf")
    daemon.close()
    # a fine-tuned model that took over trains in the background (AL_TRAINING=auto), on this start and the next
    assert isinstance(daemon.rounds, InlineRounds)
    state = daemon.store.load()
    state.model_in_use = "transformer"
    daemon.store.save(state)
    again = ladder_daemon(synonyms, ladder=ModelKind.transformer)
    again.start()
    assert isinstance(again.rounds, AheadRounds) and again.status()["training"]["mode"] == "ahead"
    assert again.settle(60)  # it rebuilds its model in the background at once: no thread left to the next test
    again.close()


def test_a_restart_with_a_k_means_first_batch_builds_the_model_that_took_over(synonyms, monkeypatch):
    """AL_COLD_START=kmeans builds AL_MODEL's learner before the journal is read: after the switch, a restart
    builds the model in use in the background and adopts it."""
    daemon = ladder_daemon(synonyms)
    daemon.start()
    for batch_id in range(3):
        answer_batch(synonyms, daemon, batch_id)
    assert daemon.state.model_in_use == "embeddings"
    daemon.close()
    settings = daemon.settings.model_copy(
        update={
            "pool_file": synonyms["pool"].source,
            "test_file": None,
            "cold_start": ColdStart.kmeans,
            "status_port": free_port(),
        }
    )
    monkeypatch.setattr("daemon.app.connect", lambda *_: synonyms["gateway"])  # the fake, behind the Gateway API
    service = Service(settings)
    try:
        assert service.startup()
        assert wait_for(lambda: service.daemon.learner.name.startswith("embeddings"), timeout=60)
    finally:
        service.request_shutdown()
        service.shutdown()
