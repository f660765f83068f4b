"""Multi-label in the learner core (no Argilla): label sets in, small-text's multi-label classifiers (one yes/no
logistic regression per label), the query strategies that apply, suggestions as label sets, multi-label scores."""

import itertools
import json

import numpy as np
import pytest

from daemon.config import ModelKind, QueryStrategyName, Settings
from daemon.learner import Learner, label_matrix, multi_label_scores
from daemon.models import build_features
from daemon.pool import load_table
from daemon.smalltext import ScoredCVIRS
from tests.conftest import TOPICS, write_jsonl

LABELS = list(TOPICS)  # food, sport, tech


def tagged_rows(per_set: int = 8) -> list[dict]:
    """Texts about one or two of the three topics, tagged with each topic they mention (made up here)."""
    rows = []
    sets = [(t,) for t in LABELS] + list(itertools.combinations(LABELS, 2))
    for tags in sets:
        for i in range(per_set):
            text = " and ".join(TOPICS[t][(i + k) % len(TOPICS[t])] for k, t in enumerate(tags))
            rows.append({"id": f"{'+'.join(tags)}-{i}", "text": f"{text} number {i}", "labels": list(tags)})
    return rows


@pytest.fixture(scope="module")
def tagged(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tagged")
    rows = tagged_rows()
    pool = load_table(write_jsonl(folder / "pool.jsonl", rows), "text", None, "id")
    sets = [tuple(sorted(LABELS.index(t) for t in row["labels"])) for row in rows]
    return folder, pool, sets


def features_for(model: ModelKind, tagged, cache_dir):
    folder, pool, sets = tagged
    settings = Settings(_env_file=None, model=model, state_dir=folder, cache_dir=cache_dir)
    return build_features(settings, pool, pool, label_matrix(sets, len(LABELS)), len(LABELS), multi_label=True)


@pytest.mark.parametrize("model", [ModelKind.tfidf, ModelKind.hybrid])
@pytest.mark.parametrize(
    "strategy",
    [
        QueryStrategyName.breaking_ties,
        QueryStrategyName.least_confidence,
        QueryStrategyName.prediction_entropy,
        QueryStrategyName.cvirs,
        QueryStrategyName.random,
        QueryStrategyName.embedding_kmeans,
    ],
)
def test_a_multi_label_learner_trains_on_label_sets_and_suggests_label_sets(tagged, cache_dir, model, strategy):
    _, pool, sets = tagged
    features = features_for(model, tagged, cache_dir)
    learner = Learner(features, len(LABELS), strategy, seed=1)
    assert learner.multi_label
    first = [i for i in range(len(pool)) if i % 8 < 4]  # 24 texts: four of each label set, every sentence
    assert learner.fit({i: sets[i] for i in first}, set(), 0)
    result = learner.query(6, 0)
    assert len(set(result.indices)) == 6 and not set(result.indices) & set(first)
    for guess, probabilities in zip(result.predicted, result.confidence, strict=True):
        assert isinstance(guess, tuple) and set(guess) <= {0, 1, 2} and len(probabilities) == len(guess)
        assert len(guess) >= 1  # no empty suggestion unless an empty answer is allowed
    scored = strategy not in (QueryStrategyName.random, QueryStrategyName.embedding_kmeans)  # diversity: no score
    assert all((score is not None) == scored for score in result.scores)
    proba = learner.pool_proba()
    assert proba.shape == (len(pool), 3) and not np.allclose(proba.sum(axis=1), 1.0)  # independent yes/no per label

    # a second round on the answers (small-text's update has no ignored marker for label sets: initialize_data)
    labelled = {i: sets[i] for i in first} | {i: sets[i] for i in result.indices}
    assert learner.fit(labelled, set(), 1) and learner.fits == {"initialize_data": 2, "update": 0}
    scores = learner.evaluate(label_matrix(sets, len(LABELS)))
    assert scores.micro_f1 > 0.8 and scores.macro_f1 > 0.8 and scores.accuracy > 0.6 and scores.hamming_loss < 0.15


def test_a_multi_label_learner_needs_two_different_label_sets_and_takes_a_lone_label(tagged, cache_dir):
    features = features_for(ModelKind.tfidf, tagged, cache_dir)
    learner = Learner(features, len(LABELS), QueryStrategyName.breaking_ties)
    assert not learner.fit({0: (0,), 1: [0]}, set(), 0)
    assert learner.fit({0: 0, 30: (1, 2), 40: [2, 1]}, {5}, 0)  # a single index is a set of one
    assert learner._labelled == {0: (0,), 30: (1, 2), 40: (1, 2)}
    assert 5 not in learner.unlabelled_indices()


def test_strategies_that_do_not_apply_to_the_task_are_refused(tagged, cache_dir, tmp_path):
    features = features_for(ModelKind.tfidf, tagged, cache_dir)
    with pytest.raises(ValueError, match="bald does not apply to multi-label tasks"):
        Learner(features, len(LABELS), QueryStrategyName.bald)
    single = Settings(_env_file=None, model=ModelKind.tfidf, state_dir=tmp_path)
    _, pool, _ = tagged
    single_features = build_features(single, pool, None, None, len(LABELS))
    with pytest.raises(ValueError, match="cvirs does not apply to single-label tasks"):
        Learner(single_features, len(LABELS), QueryStrategyName.cvirs)


def test_cvirs_scores_and_picks_as_small_text_does():
    """ScoredCVIRS (pool probabilities cached, ranking vectorised) against small-text's own CVIRS."""
    from small_text import CategoryVectorInconsistencyAndRanking

    rng = np.random.default_rng(0)
    proba = rng.random((200, 6))

    class Fixed:
        def predict_proba(self, data_set):
            return proba[np.asarray(data_set)]

    everything = np.arange(200)
    unlabelled = np.setdiff1d(everything, np.arange(0, 200, 5))
    y = label_matrix([rng.choice(6, size=rng.integers(1, 3), replace=False) for _ in range(40)], 6)
    ours, theirs = ScoredCVIRS(0.5), CategoryVectorInconsistencyAndRanking(prediction_threshold=0.5, pbar=None)
    ours.batch_size = theirs.batch_size = 64  # several blocks of rows (small-text divides by the block's size)
    assert np.array_equal(
        ours._compute_ranking(unlabelled, proba[unlabelled]), theirs._compute_ranking(unlabelled, proba[unlabelled])
    )
    scores = ours._compute_scores(unlabelled, y, proba[unlabelled])
    assert np.allclose(scores, theirs._compute_scores(unlabelled, y, proba[unlabelled]), rtol=1e-12, atol=0)
    picked = ours.query(Fixed(), everything, unlabelled, None, y, n=10)
    assert sorted(picked) == sorted(theirs.query(Fixed(), everything, unlabelled, None, y, n=10))
    assert np.isnan(ours.scores_[0]) and np.all(np.isfinite(ours.scores_[unlabelled]))


def test_one_vs_rest_blocked_rows_are_scored_as_scikit_learn_scores_them_joined():
    """JoinedRows.linear_proba for a multi-label model (one regression per label, a label never seen: constant)."""
    from scipy import sparse
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier

    from daemon.models import JoinedRows

    rng = np.random.default_rng(0)
    rows = JoinedRows(
        rng.normal(size=(300, 16)).astype(np.float32),
        sparse.random(300, 50, density=0.1, format="csr", random_state=1, dtype=np.float32),
    )
    y = (rng.random((300, 4)) < 0.3).astype(int)
    y[:, 2] = 0  # nobody chose label 2 yet
    with pytest.warns(UserWarning, match="Label not 2 is present in all training examples"):
        model = OneVsRestClassifier(LogisticRegression(C=100, max_iter=500)).fit(rows.joined(), y)
    for part in (rows, rows[0:7], rows[290:300]):
        assert np.allclose(part.linear_proba(model), model.predict_proba(part.joined()), rtol=0, atol=1e-6)
    assert np.all(rows.linear_proba(model)[:, 2] == 0.0)


def test_multi_label_scores():
    truth = label_matrix([(0,), (0, 1), (2,), ()], 3)
    proba = np.array([[0.9, 0.2, 0.1], [0.8, 0.3, 0.1], [0.1, 0.1, 0.7], [0.6, 0.1, 0.1]])
    scores = multi_label_scores(truth, proba, 0.5, at_least_one=False)
    # predicted: {0}, {0}, {2}, {0}: two texts exactly right; wrong decisions: text 2's label 1, text 4's label 0
    assert scores.accuracy == 0.5 and scores.hamming_loss == pytest.approx(2 / 12)
    assert scores.micro_f1 == pytest.approx(2 * 3 / (2 * 3 + 1 + 1))  # tp 3, fp 1, fn 1
    assert scores.macro_f1 == pytest.approx((0.8 + 0.0 + 1.0) / 3)
    assert multi_label_scores(truth, proba, 0.25, at_least_one=False).hamming_loss == pytest.approx(1 / 12)
    assert multi_label_scores(truth, proba, 0.5).accuracy == 0.5  # the empty text gets its likeliest label: wrong


def test_at_least_one_label_is_predicted_unless_an_empty_answer_is_allowed():
    from daemon.batches import QueryResult, predicted_sets

    proba = np.array([[0.2, 0.4, 0.1], [0.7, 0.6, 0.1], [0.1, 0.1, 0.1]])
    assert predicted_sets(proba, 0.5).tolist() == [[0, 1, 0], [1, 1, 0], [1, 0, 0]]  # ties: the first label
    assert predicted_sets(proba, 0.5, at_least_one=False).tolist() == [[0, 0, 0], [1, 1, 0], [0, 0, 0]]
    result = QueryResult.guessed_sets([1, 0], proba, 0.5, [0.3, 0.1])
    assert result.predicted == [(0, 1), (1,)] and result.confidence == [(0.7, 0.6), (0.4,)]
    assert QueryResult.guessed_sets([0], proba, 0.5, at_least_one=False).predicted == [()]


def test_the_transformer_fine_tunes_one_sigmoid_per_label_and_setfit_is_refused(tagged, tmp_path):
    """small-text's transformer classifier with multi_label=True (binary cross-entropy per label) on CPU, short:
    label sets in, label sets suggested, a probability per label; exported for pipelines as multi-label."""
    _, pool, sets = tagged
    settings = Settings(
        _env_file=None,
        model=ModelKind.transformer,
        state_dir=tmp_path,
        transformer_epochs=1,
        transformer_min_steps=0,
        transformer_max_length=16,
    )
    features = build_features(settings, pool, pool, label_matrix(sets, len(LABELS)), len(LABELS), multi_label=True)
    learner = Learner.from_settings(features, len(LABELS), settings.model_copy(update={"query_strategy": "random"}))
    first = [i for i in range(len(pool)) if i % 8 < 2]
    assert learner.multi_label and learner.fit({i: sets[i] for i in first}, set(), 0)
    result = learner.query(4, 0)
    assert all(isinstance(guess, tuple) and len(guess) >= 1 for guess in result.predicted)
    proba = learner.pool_proba()
    assert proba.shape == (len(pool), 3) and ((proba >= 0) & (proba <= 1)).all()
    assert learner.evaluate(label_matrix(sets, len(LABELS))).hamming_loss is not None
    from daemon.export import save_model

    saved = save_model(learner, settings, LABELS, tmp_path / "model")
    config = json.loads((tmp_path / "model" / "config.json").read_text())
    assert saved["saved"] and config["problem_type"] == "multi_label_classification"
    setfit = Settings(_env_file=None, model=ModelKind.setfit, state_dir=tmp_path)
    with pytest.raises(ValueError, match="model setfit is single-label only"):
        build_features(setfit, pool, None, None, len(LABELS), multi_label=True)


# ---- the daemon on a multi-label task (fake gateway; tests/integration/test_multilabel_run.py: real Argilla) ----
def multi_label_daemon(tagged, cache_dir, state_dir, gateway, **overrides):
    from daemon.loop import Daemon

    _, pool, sets = tagged
    options = {
        "model": ModelKind.tfidf,
        "batch_size": 6,
        "state_dir": state_dir,
        "cache_dir": cache_dir,
        "dataset": "tags",
        "workspace": "w",
        "task": "multi",
        "stop_criteria": [],
    }
    settings = Settings(_env_file=None, **(options | overrides))
    y_test = label_matrix(sets, len(LABELS))
    features = build_features(settings, pool, pool, y_test, len(LABELS), multi_label=True)
    learner = Learner.from_settings(features, len(LABELS), settings)
    return Daemon(settings, gateway, learner, pool, LABELS, y_test, multi_label=True)


def answer_batch(gateway, sets, batch_id, answers=None):
    """Tick the gold label set of every record of the batch (``answers``: record id -> list to send instead)."""
    for record in gateway.batch(batch_id):
        default = [LABELS[c] for c in sets[record.pool_index]]
        gateway.submit(record.record_id, (answers or {}).get(record.record_id, default))


def test_a_multi_label_run_journals_label_sets_suggests_them_and_scores_per_label(tagged, cache_dir, tmp_path):
    from tests.fakes import FakeGateway

    _, pool, sets = tagged
    gateway = FakeGateway()
    daemon = multi_label_daemon(tagged, cache_dir, tmp_path / "state", gateway, none_label="none of these")
    daemon.start()
    assert gateway.spec.multi_label and gateway.spec.options == [*LABELS, "none of these"]
    assert "Tick every label that fits" in gateway.spec.guidelines and "**none of these**" in gateway.spec.guidelines
    first = gateway.batch(0)
    answer_batch(gateway, sets, 0, {first[0].record_id: ["none of these"]})  # an empty set, where allowed
    daemon.tick()
    batch0 = daemon.state.batches[0]
    assert batch0.labels[first[0].pool_index] == ()
    assert all(isinstance(label, tuple) for label in batch0.labels.values())
    for batch_id in range(1, 4):
        later = gateway.batch(batch_id)
        assert later and all(isinstance(r.suggestion, tuple) for r in later)
        assert all(len(r.suggestion_score) == len(r.suggestion) for r in later)
        answer_batch(gateway, sets, batch_id)
        daemon.tick()
    metrics = daemon.state.rounds[-1]
    assert metrics.micro_f1 is not None and metrics.hamming_loss is not None and metrics.macro_f1 is not None
    assert metrics.kappa is not None  # over the (text, label) decisions of consecutive models
    assert daemon.store.load_predictions(metrics.round).shape == (len(pool) * len(LABELS),)
    status = daemon.status()
    assert status["task"] == "multi-label" and status["micro_f1"]["last"] == metrics.micro_f1

    # the journal keeps label sets across a restart, and a restart as a single-label run is refused
    restarted = multi_label_daemon(tagged, cache_dir, tmp_path / "state", gateway, none_label="none of these")
    restarted.start()
    assert restarted.state.batches[0].labels == batch0.labels
    from daemon.errors import StateError
    from daemon.state import check_same_run

    with pytest.raises(StateError, match="task"):
        check_same_run(restarted.state, restarted.settings, pool.fingerprint, LABELS, tmp_path / "s.json", False)


def test_several_annotators_agree_label_by_label():
    from daemon.answers import consensus

    assert consensus([("a", "b"), ("a",), ("a", "c")]) == ("a",)  # a: 3 of 3; b, c: 1 of 3
    assert consensus([("a", "b"), ("b", "c")]) == ("a", "b")  # at exactly half the first vote decides
    assert consensus([("a",), ("b",), ("c",)]) == ("a",)  # nothing has a majority: the first vote's best label
    assert consensus([(), ("b",), ()]) == ()  # "none of these" by most
    assert consensus(["x", "y", "y"]) == "y" and consensus(["x", "y"]) == "x"  # single-label as before


def test_three_annotators_label_sets_become_the_per_label_majority(tagged, cache_dir, tmp_path):
    from tests.fakes import FakeGateway

    gateway = FakeGateway()
    daemon = multi_label_daemon(tagged, cache_dir, tmp_path / "state", gateway, annotators_per_record=3)
    daemon.start()
    records = gateway.batch(0)
    votes = [["food", "sport"], ["food"], ["food", "tech"]]
    for record in records:
        for user, labels in zip(("u1", "u2", "u3"), votes, strict=True):
            gateway.submit(record.record_id, labels, user)
    daemon.tick()
    batch = daemon.state.batches[0]
    assert batch.complete and set(batch.labels.values()) == {("food",)}
    assert batch.votes[records[0].record_id] == [["u1", ("food", "sport")], ["u2", ("food",)], ["u3", ("food", "tech")]]


def test_a_changed_label_set_reads_as_labels_in_the_log():
    from daemon.report import change_line
    from daemon.state import Change

    line = change_line(Change(round=3, batch_id=1, pool_index=7, kind="relabelled", old=("a", "b"), new=()), 3)
    assert "relabelled in Argilla: a+b -> (none); round 3 trains on the new label" in line
    gone = change_line(Change(round=3, batch_id=1, pool_index=7, kind="withdrawn", old="x", new=None), 3)
    assert "x -> (not trained on); round 3 trains without it" in gone
