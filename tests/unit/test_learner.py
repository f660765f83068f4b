from pathlib import Path

import numpy as np
import pytest

from daemon.config import ModelKind, QueryStrategyName, Settings
from daemon.learner import Learner
from daemon.models import build_features
from daemon.pool import load_table
from daemon.smalltext import PooledClassifier
from tests.conftest import tiny_rows, write_jsonl

LABELS = ["food", "sport", "tech"]


@pytest.fixture
def tiny(tmp_path):
    path = write_jsonl(tmp_path / "pool.jsonl", tiny_rows(20))
    pool = load_table(path, "text", "label", "id")
    gold = np.array([LABELS.index(label) for label in pool.gold])
    settings = Settings(_env_file=None, model=ModelKind.tfidf, state_dir=tmp_path)
    features = build_features(settings, pool, pool, gold, len(LABELS))
    return features, gold


def learner(features, strategy=QueryStrategyName.breaking_ties, seed=0):
    return Learner(features, len(LABELS), strategy, seed)


def test_initial_batch_is_seeded_and_leaves_global_rng_alone(tiny):
    features, _ = tiny
    np.random.seed(123)
    before = np.random.rand()
    np.random.seed(123)
    first = learner(features).initial_batch(10)
    assert np.random.rand() == before
    assert first == learner(features).initial_batch(10)
    assert first != learner(features, seed=1).initial_batch(10)
    assert len(set(first)) == 10


def test_one_class_cannot_train_and_queries_at_random(tiny):
    features, gold = tiny
    model = learner(features)
    sport = [i for i in range(len(gold)) if gold[i] == 1][:3]
    assert model.fit({i: 1 for i in sport}, set(), 0) is False
    result = model.query(5, 0)
    assert len(result.indices) == 5 and not set(result.indices) & set(sport)
    assert result.predicted == [None] * 5


def test_round_uses_update_after_a_query_and_initialize_otherwise(tiny):
    features, gold = tiny
    model = learner(features)
    first = model.initial_batch(9)
    labels = {i: int(gold[i]) for i in first}
    assert model.fit(labels, set(), 0)
    assert model.fits == {"initialize_data": 1, "update": 0}
    batch = model.query(6, 0)
    assert not set(batch.indices) & set(first)
    discarded = batch.indices[0]
    labels.update({i: int(gold[i]) for i in batch.indices[1:]})
    assert model.fit(labels, {discarded}, 1)
    assert model.fits == {"initialize_data": 1, "update": 1}
    nxt = model.query(6, 1)
    assert discarded not in nxt.indices and not set(nxt.indices) & set(labels)
    # a fresh learner (a restart) replays everything with initialize_data and picks the same batch
    again = learner(features)
    assert again.fit(labels, {discarded}, 1)
    assert again.fits == {"initialize_data": 1, "update": 0}
    assert sorted(again.query(6, 1).indices) == sorted(nxt.indices)


def test_scores_predictions_and_evaluation(tiny):
    features, gold = tiny
    model = learner(features)
    labels = {i: int(gold[i]) for i in range(0, len(gold), 3)}
    model.fit(labels, set(), 0)
    result = model.query(5, 0)
    assert all(score is not None and 0 <= score <= 1 for score in result.scores)
    assert all(0 < c <= 1 for c in result.confidence)
    evaluation = model.evaluate(gold)
    assert evaluation.accuracy > 0.9 and evaluation.macro_f1 > 0.9


def test_probabilities_are_padded_for_classes_not_seen_yet(tiny):
    features, gold = tiny
    model = learner(features)
    two = [i for i in range(len(gold)) if gold[i] == 0][:4] + [i for i in range(len(gold)) if gold[i] == 2][:4]
    model.fit({i: int(gold[i]) for i in two}, set(), 0)
    proba = model.pool_proba()
    assert proba.shape == (len(gold), 3)
    assert np.allclose(proba[:, 1], 0)
    predicted = proba.argmax(axis=1)
    assert set(predicted) <= {0, 2}  # never the column index of a two-column proba


def test_pooled_classifier_computes_pool_probabilities_once():
    calls = []

    class Inner:
        model = None

        def fit(self, *_args, **_kwargs):
            return self

        def predict_proba(self, data):
            calls.append(1)
            return np.full((len(data), 2), 0.5)

    clf = PooledClassifier(Inner(), 2)
    data = [1, 2, 3]
    clf.predict_proba(data)
    clf.predict(data)
    assert len(calls) == 1
    clf.fit(data)
    clf.predict_proba(data)
    assert len(calls) == 2


def test_hybrid_model_joins_embeddings_and_ngrams_and_its_encoder_reproduces_the_pool(tmp_path, cache_dir, monkeypatch):
    """The pool keeps the embeddings once (the diversity strategies' vectors are the same array) and joins rows
    with their n-grams only when asked; scored in chunks, the pool's probabilities are those of the whole joined
    matrix."""
    import daemon.smalltext

    monkeypatch.setattr(daemon.smalltext, "SCORE_CHUNK", 7)  # 30 rows: five chunks, the last one short
    path = write_jsonl(tmp_path / "pool.jsonl", tiny_rows(10))
    pool = load_table(path, "text", "label", "id")
    gold = np.array([LABELS.index(label) for label in pool.gold])
    settings = Settings(_env_file=None, model=ModelKind.hybrid, state_dir=tmp_path, cache_dir=cache_dir)
    features = build_features(settings, pool, pool, gold, len(LABELS))
    assert features.name == "hybrid-all-MiniLM-L6-v2"
    x = features.pool.x
    embeddings = features.vectors()
    assert x.dense is embeddings  # held once
    assert x.shape == (len(pool), embeddings.shape[1] + len(features.encoder.vectorizer.vocabulary_))
    joined = x[np.arange(len(pool))]
    assert joined.shape == x.shape and x[3].shape == (1, x.shape[1]) and x[slice(2, 5)].shape == (3, x.shape[1])
    assert np.allclose(joined[:, : embeddings.shape[1]].toarray(), embeddings)  # the embeddings, then the n-grams
    assert np.allclose(features.encoder.transform(pool.texts[:5]).toarray(), joined[:5].toarray(), atol=1e-5)
    model = learner(features)
    first = [0, 1, 10, 11, 20, 21]
    assert model.fit({i: int(gold[i]) for i in first}, set(), 0)
    whole = model.classifier.model.predict_proba(joined)
    assert np.allclose(model.pool_proba(), whole)
    result = model.query(6, 0)
    assert len(set(result.indices)) == 6 and not set(result.indices) & set(first)
    assert model.evaluate(gold).accuracy > 0.8  # three separable topics


@pytest.mark.parametrize(("min_steps", "epochs"), [(0, 1), (3, 3)])
def test_transformer_model_fine_tunes_and_queries(tmp_path, caplog, min_steps, epochs):
    """The seed tutorial's model: small-text fine-tuning the bundled MiniLM directory on CPU (1 short epoch; with
    AL_TRANSFORMER_MIN_STEPS=3, three: the 8 training texts make one mini-batch of 16)."""
    path = write_jsonl(tmp_path / "pool.jsonl", tiny_rows(8))
    pool = load_table(path, "text", "label", "id")
    gold = np.array([LABELS.index(label) for label in pool.gold])
    settings = Settings(
        _env_file=None,
        model=ModelKind.transformer,
        state_dir=tmp_path,
        transformer_epochs=1,
        transformer_max_length=16,
        transformer_min_steps=min_steps,
    )
    features = build_features(settings, pool, pool, gold, len(LABELS))
    assert features.name == "transformer-all-MiniLM-L6-v2"
    model = learner(features)
    first = model.initial_batch(9)
    with caplog.at_level("INFO"):
        assert model.fit({i: int(gold[i]) for i in first}, set(), 0)
    assert f"Epoch: {epochs} " in caplog.text and f"Epoch: {epochs + 1} " not in caplog.text  # progress per epoch
    assert model.classifier.num_epochs == epochs
    kept = model.classifier.kept  # the epoch kept by held-out accuracy, and the log says which
    assert kept["epochs"] == epochs and 1 <= kept["epoch"] <= epochs
    assert f"fine-tuning kept epoch {kept['epoch']} of {epochs} " in caplog.text
    result = model.query(4, 0)
    assert len(result.indices) == 4 and not set(result.indices) & set(first)
    assert all(p in (0, 1, 2) for p in result.predicted)
    assert model.pool_proba().shape == (len(gold), 3)
    assert model.evaluate(gold).accuracy >= 0.0


@pytest.mark.parametrize("model", [ModelKind.tfidf, ModelKind.embeddings, ModelKind.hybrid])
@pytest.mark.parametrize("strategy", [QueryStrategyName.embedding_kmeans, QueryStrategyName.greedy_coreset])
def test_diversity_strategies_query_new_items_spread_over_the_pool(tmp_path, cache_dir, model, strategy):
    path = write_jsonl(tmp_path / "pool.jsonl", tiny_rows(20))
    pool = load_table(path, "text", "label", "id")
    gold = np.array([LABELS.index(label) for label in pool.gold])
    settings = Settings(_env_file=None, model=model, state_dir=tmp_path, cache_dir=cache_dir)
    features = build_features(settings, pool, pool, gold, len(LABELS))
    model_ = learner(features, strategy)
    first = [0, 1, 20, 21, 40, 41]  # two of each topic
    assert model_.fit({i: int(gold[i]) for i in first}, set(), 0)
    result = model_.query(6, 0)
    assert len(set(result.indices)) == 6 and not set(result.indices) & set(first)
    # diversity: the six picks do not all come from one topic, and a second seeded learner picks the same
    assert len({gold[i] for i in result.indices}) >= 2
    again = learner(features, strategy)
    again.fit({i: int(gold[i]) for i in first}, set(), 0)
    assert again.query(6, 0).indices == result.indices
    assert all(p in (0, 1, 2) for p in result.predicted)


def test_kmeans_cold_start_represents_the_pool_better_than_random(tmp_path, cache_dir):
    """On TREC-6's test questions: the k-means first batch represents the pool better than a random one (every
    question is closer to its nearest pick), for every seed."""
    from sklearn.metrics.pairwise import cosine_distances

    from daemon.config import ColdStart
    from tests.conftest import TREC

    pool = load_table(TREC / "test.jsonl", "text", "label", "id")
    labels = sorted(set(pool.gold))
    gold = np.array([labels.index(label) for label in pool.gold])
    settings = Settings(_env_file=None, model=ModelKind.embeddings, state_dir=tmp_path, cache_dir=cache_dir)
    features = build_features(settings, pool, None, None, len(labels))
    vectors = features.vectors()

    def coverage(picked):
        return cosine_distances(vectors, vectors[picked]).min(axis=1).mean()

    for seed in range(3):
        kmeans = Learner(features, 6, QueryStrategyName.breaking_ties, seed, cold_start=ColdStart.kmeans)
        randomly = Learner(features, 6, QueryStrategyName.breaking_ties, seed)
        picked, drawn = kmeans.initial_batch(20), randomly.initial_batch(20)
        assert len(set(picked)) == 20 and coverage(picked) < coverage(drawn)
        assert len({gold[i] for i in picked}) >= 5  # nearly every question type in the first 20


def test_bald_needs_the_transformer_model():
    with pytest.raises(ValueError, match="bald needs dropout in the model: use AL_MODEL=transformer"):
        Settings(_env_file=None, query_strategy="bald", model="tfidf")


def test_transformer_bald_queries_with_dropout_and_weight_decay_is_a_setting(tmp_path):
    path = write_jsonl(tmp_path / "pool.jsonl", tiny_rows(6))
    pool = load_table(path, "text", "label", "id")
    gold = np.array([LABELS.index(label) for label in pool.gold])
    settings = Settings(
        _env_file=None,
        model=ModelKind.transformer,
        query_strategy=QueryStrategyName.bald,
        bald_samples=3,
        state_dir=tmp_path,
        transformer_epochs=1,
        transformer_min_steps=0,
        transformer_max_length=16,
        transformer_weight_decay=0.05,
    )
    features = build_features(settings, pool, pool, gold, len(LABELS))
    model = Learner.from_settings(features, len(LABELS), settings)
    first = [0, 1, 6, 7, 12, 13]
    assert model.fit({i: int(gold[i]) for i in first}, set(), 0)
    assert model.classifier.weight_decay == 0.05
    _, optimizer = model.classifier._default_optimizer(1e-4)  # what small-text's fit builds when given none
    assert {group["weight_decay"] for group in optimizer.param_groups} == {0.05}
    result = model.query(3, 0)
    assert len(set(result.indices)) == 3 and not set(result.indices) & set(first)
    assert all(score is not None and score >= 0 for score in result.scores)  # BALD's mutual information


@pytest.mark.parametrize("strategy", [QueryStrategyName.breaking_ties, QueryStrategyName.greedy_coreset])
def test_query_skips_excluded_items_without_retraining(tiny, strategy):
    features, gold = tiny
    model = learner(features, strategy)
    first = model.initial_batch(9)
    model.fit({i: int(gold[i]) for i in first}, set(), 0)
    plain = model.query(6, 1)
    out = set(plain.indices[:3]) | {int(first[0])}  # three it would pick, and one labelled (no effect)
    skipped = model.query(6, 1, exclude=out)
    assert len(skipped.indices) == 6 and not set(skipped.indices) & (out | set(first))
    assert model.fits["initialize_data"] == 1  # no retraining
    assert len(model._active.indices_ignored) == 0  # the exclusion was for that query only
    left = sorted(set(range(len(gold))) - set(first))[:2]
    assert sorted(model.query(6, 1, exclude=set(range(len(gold))) - set(left)).indices) == left  # only two remain


def test_setfit_fine_tunes_the_encoder_queries_with_bald_and_exports(tmp_path, cache_dir):
    """SetFit through small-text's integration (with the daemon's numpy-2 fixes), one short contrastive epoch."""
    path = write_jsonl(tmp_path / "pool.jsonl", tiny_rows(6))
    pool = load_table(path, "text", "label", "id")
    gold = np.array([LABELS.index(label) for label in pool.gold])
    settings = Settings(
        _env_file=None,
        model=ModelKind.setfit,
        query_strategy=QueryStrategyName.bald,
        bald_samples=3,
        state_dir=tmp_path,
        cache_dir=cache_dir,
        setfit_iterations=4,  # 32 pairs = 2 steps (the first of them warms up at learning rate 0)
        transformer_max_length=16,
    )
    assert settings.ahead  # auto: a fine-tuned model trains off the annotators' path
    features = build_features(settings, pool, pool, gold, len(LABELS))
    assert features.name == "setfit-all-MiniLM-L6-v2"
    model = Learner.from_settings(features, len(LABELS), settings)
    first = [0, 1, 6, 7]  # two classes of three: probabilities still span all three
    before = {k: v.clone() for k, v in features.factory.new().inner.model.model_body.state_dict().items()}
    assert model.fit({i: int(gold[i]) for i in first}, set(), 0)
    after = model.classifier.model.model_body.state_dict()
    changed = [k for k, v in after.items() if v.dtype.is_floating_point and not (v == before[k]).all()]
    assert len(changed) > 10  # the encoder itself was fine-tuned, not only a head on frozen embeddings
    assert not [p for p in Path("checkpoints").rglob("*") if p.is_file()]  # no trainer checkpoints left behind
    assert model.pool_proba().shape == (len(gold), 3)
    result = model.query(4, 0)
    assert len(set(result.indices)) == 4 and not set(result.indices) & set(first)
    assert all(s is not None for s in result.scores)  # BALD scores from Monte-Carlo dropout
    assert model.evaluate(gold).accuracy > 0.0

    from setfit import SetFitModel

    from daemon.export import save_model

    about = save_model(model, settings, LABELS, tmp_path / "model")
    assert about["format"] == "setfit"
    loaded = SetFitModel.from_pretrained(str(tmp_path / "model"))
    assert set(loaded.predict([pool.texts[0], pool.texts[6]])) <= set(LABELS)


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [("VectorisedBreakingTies", "BreakingTies"), ("VectorisedPredictionEntropy", "PredictionEntropy")],
)
def test_vectorised_strategies_score_and_pick_like_small_text(ours, theirs):
    import small_text

    import daemon.smalltext

    rng = np.random.default_rng(0)
    proba = rng.dirichlet(np.ones(6) * 0.3, size=2000)
    proba[:50] = proba[0]  # exact ties between rows
    proba[60, :] = [0.4, 0.4, 0.1, 0.1, 0.0, 0.0]  # a tie inside a row

    class Fixed:
        def predict_proba(self, _dataset):
            return proba

    unlabelled = np.arange(0, 2000, 3)
    mine, reference = getattr(daemon.smalltext, ours)(), getattr(small_text, theirs)()
    picked = mine.query(Fixed(), None, unlabelled, np.array([1]), np.array([0]), n=25)
    expected = reference.query(Fixed(), None, unlabelled, np.array([1]), np.array([0]), n=25)
    np.testing.assert_allclose(mine.scores_, reference.scores_, atol=1e-12)
    assert sorted(picked) == sorted(expected)


def test_ngrams_in_chunks_are_scikit_learns_min_df_2_tfidf(monkeypatch):
    """fit_ngrams' two passes give scikit-learn's TfidfVectorizer(min_df=2) exactly: vocabulary, idf, rows (built
    over several chunks) and the transform of new texts; a pool with no n-gram in two texts keeps them all."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    import daemon.models
    from tests.conftest import TREC

    monkeypatch.setattr(daemon.models, "_NGRAM_CHUNK", 700)
    texts = load_table(TREC / "test.jsonl", "text", "label", "id").texts
    vectorizer, rows = daemon.models.fit_ngrams(texts)
    reference = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2, dtype=np.float32)
    expected = reference.fit_transform(texts)
    assert vectorizer.vocabulary_ == reference.vocabulary_ and np.array_equal(vectorizer.idf_, reference.idf_)
    assert rows.shape == expected.shape and (rows != expected).nnz == 0 and rows.dtype == np.float32
    new = ["what is the capital of france ?", "who wrote the novel ?"]
    assert (vectorizer.transform(new) != reference.transform(new)).nnz == 0
    vectorizer, rows = daemon.models.fit_ngrams(["alpha beta", "gamma delta"])
    assert rows.shape == (2, 6)  # no n-gram in two texts: all of them kept
    with pytest.raises(ValueError, match="no words"):
        daemon.models.fit_ngrams(["!", "?"])


@pytest.mark.parametrize("classes", [2, 5])
def test_blocked_rows_are_scored_as_scikit_learn_scores_them_joined(classes):
    """JoinedRows.linear_proba (the pool's scoring without joining) against LogisticRegression.predict_proba on the
    joined rows, for two classes (expit) and more (softmax); another estimator gets the joined rows."""
    from scipy import sparse
    from sklearn.linear_model import LogisticRegression
    from sklearn.naive_bayes import MultinomialNB

    from daemon.models import JoinedRows

    rng = np.random.default_rng(0)
    dense = rng.normal(size=(300, 16)).astype(np.float32)
    words = sparse.random(300, 50, density=0.1, format="csr", random_state=1, dtype=np.float32)
    rows = JoinedRows(dense, words)
    y = rng.integers(0, classes, 300)
    model = LogisticRegression(C=100, max_iter=500).fit(rows.joined(), y)
    for part in (rows, rows[0:7], rows[290:300]):
        expected = model.predict_proba(part.joined())
        assert np.allclose(part.linear_proba(model), expected, rtol=0, atol=1e-6)
    bayes = MultinomialNB().fit(abs(rows.joined()), y)
    positive = JoinedRows(abs(dense), words)
    assert np.array_equal(positive.linear_proba(bayes), bayes.predict_proba(positive.joined()))


def test_fine_tuning_epochs_grow_while_the_labels_are_few():
    from daemon.config import MAX_EPOCHS
    from daemon.models import epochs_for

    assert epochs_for(900, 16, 3, 0) == 3  # off: AL_TRANSFORMER_EPOCHS
    assert epochs_for(900, 16, 3, 170) == 3  # 57 steps an epoch: three are enough
    assert epochs_for(180, 16, 3, 170) == 15  # 12 steps an epoch
    assert epochs_for(450, 16, 3, 170) == 6
    assert epochs_for(9, 16, 3, 170) == MAX_EPOCHS  # never more than the cap


# CR's 500 labels, seed 2: held-out accuracy and loss after each of the six epochs of the fine-tuning that scored
# 0.52 on validation (bench/ladder_default.py; the loss lowest after the first epoch, the accuracy climbing after)
CR_EPOCHS = [(0.48, 0.0567), (0.60, 0.0571), (0.74, 0.0583), (0.78, 0.0629), (0.78, 0.0707), (0.78, 0.0739)]


def test_the_fine_tuning_keeps_its_most_accurate_epoch_where_small_texts_default_kept_the_first():
    from small_text.integrations.transformers.classifiers.classification import TransformerBasedClassification

    from daemon.models import _tuned_classes

    tuned = _tuned_classes()[0]
    ours, small_texts = tuned._get_default_model_selection(None), TransformerBasedClassification._get_default_model_selection(None)  # fmt: skip
    for selection in (ours, small_texts):
        for epoch, (accuracy, loss) in enumerate(CR_EPOCHS):
            values = {"val_acc": accuracy, "val_loss": loss, "train_acc": None, "train_loss": None}
            selection.add_model(f"{epoch}-b0", Path(f"model_{epoch}.pt"), values, fields={"early_stop": False})
    assert small_texts.select().model_id == "0-b0"  # what the daemon kept before: the first epoch
    assert ours.select().model_id == "3-b0"  # the best accuracy, the tie with epochs 5 and 6 to the lower loss


def test_the_fine_tuning_stops_early_on_accuracy_not_on_loss():
    """A held-out loss that rises from the first epoch on no longer ends the epochs AL_TRANSFORMER_MIN_STEPS asked
    for: small-text's default would have stopped CR's after the seventh; more than five epochs without a better
    accuracy do."""
    from small_text.integrations.transformers.classifiers.classification import (
        TransformerBasedClassification,
        TransformerModelArguments,
    )

    from daemon.models import _tuned_classes

    def stops(classifier) -> list[int]:
        handler = classifier._get_default_early_stopping(None, 5, -1, 1)
        rises = [*CR_EPOCHS, (0.76, 0.080), (0.78, 0.082), (0.74, 0.085), (0.76, 0.090)]
        return [
            epoch
            for epoch, (accuracy, loss) in enumerate(rises, start=1)
            if handler.check_early_stop(epoch, {"val_acc": accuracy, "val_loss": loss})
        ]

    arguments = TransformerModelArguments("unused")  # nothing is loaded before fit
    assert stops(TransformerBasedClassification(arguments, 2))[0] == 7  # the lowest loss after the first epoch
    assert stops(_tuned_classes()[0](arguments, 2)) == [10]  # the best accuracy, 0.78, after the fourth
