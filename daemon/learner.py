"""The learner core: small-text's PoolBasedActiveLearner, models, query strategies and stopping signals.

No I/O here (apart from what the caller hands in as arrays): the loop feeds labels in, gets a batch of pool
indices with scores and predictions out. Everything is a function of the data and the seed, so a restarted
daemon that replays the same labels gets the same model and the same next batch.
"""

from __future__ import annotations

import contextlib
import dataclasses
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from small_text import (
    BALD,
    BreakingTies,
    CategoryVectorInconsistencyAndRanking,
    EmbeddingKMeans,
    GreedyCoreset,
    LeastConfidence,
    PoolBasedActiveLearner,
    PredictionEntropy,
    RandomSampling,
    SklearnClassifierFactory,
    SklearnDataset,
    random_initialization,
)
from small_text.base import LABEL_IGNORED, LABEL_UNLABELED
from small_text.classifiers import Classifier
from small_text.classifiers.factories import AbstractClassifierFactory
from small_text.data.datasets import SklearnDatasetView

from daemon.answers import label_matrix
from daemon.batches import QueryResult, predicted_sets
from daemon.config import MULTI_LABEL_STRATEGIES, SINGLE_LABEL_STRATEGIES, ColdStart, QueryStrategyName
from daemon.engine import Engine, LocalEngine


class ScoredBALD(BALD):
    """small-text's BALD, keeping the pool's scores (``scores_``) like the confidence strategies do."""

    def query(self, clf, dataset, indices_unlabeled, indices_labeled, y, n=10):
        self._validate_query_input(indices_unlabeled, n)
        from small_text.query_strategies.bayesian import _bald

        self.scores_ = _bald(clf.predict_proba(dataset, dropout_sampling=self.dropout_samples))
        if len(indices_unlabeled) == n:
            return np.array(indices_unlabeled)
        order = np.argpartition(-self.scores_[indices_unlabeled], n)[:n]
        return np.array([indices_unlabeled[i] for i in order])


def _multi_label(dataset: Any) -> bool:
    return bool(getattr(dataset, "is_multi_label", False))


class VectorisedBreakingTies(BreakingTies):
    """small-text's BreakingTies, scoring the pool in one vectorised step: its ``np.apply_along_axis`` runs Python
    per row (5 s per query at 500k texts, bench/scale.py). Same margins (best minus second best), same picks.

    Multi-label: each label is a yes/no question, its margin ``|p - (1 - p)|``; a text's margin is its smallest
    (the label the model is least sure of)."""

    def get_confidence(self, clf, dataset, _indices_unlabeled, _indices_labeled, _y):
        proba = np.asarray(clf.predict_proba(dataset))
        if _multi_label(dataset):
            return np.abs(2 * proba - 1).min(axis=1)
        top_two = np.partition(proba, -2, axis=1)[:, -2:]
        return top_two[:, 1] - top_two[:, 0]


class MultiLabelLeastConfidence(LeastConfidence):
    """small-text's LeastConfidence; multi-label: a text's confidence is the mean over labels of the probability
    of the model's yes/no answer, ``max(p, 1 - p)``."""

    def get_confidence(self, clf, dataset, indices_unlabeled, indices_labeled, y):
        if not _multi_label(dataset):
            return super().get_confidence(clf, dataset, indices_unlabeled, indices_labeled, y)
        proba = np.asarray(clf.predict_proba(dataset))
        return np.maximum(proba, 1 - proba).mean(axis=1)


class VectorisedPredictionEntropy(PredictionEntropy):
    """small-text's PredictionEntropy (scipy's entropy of each row, natural log), for the whole pool at once.
    Multi-label: the sum of the labels' yes/no entropies."""

    def get_confidence(self, clf, dataset, _indices_unlabeled, _indices_labeled, _y):
        from scipy.special import entr
        from scipy.stats import entropy

        proba = np.asarray(clf.predict_proba(dataset))
        if _multi_label(dataset):
            return (entr(proba) + entr(1 - proba)).sum(axis=1)
        return entropy(proba, axis=1)


class ScoredCVIRS(CategoryVectorInconsistencyAndRanking):
    """small-text's multi-label CVIRS (Reyes et al. 2018: how far a text's predicted label vector is from the
    labelled ones', times the rank of its label margins), scoring from the pool's cached probabilities (small-text
    predicts a fresh copy of every unlabelled row), keeping ``scores_`` for the whole pool, without a progress bar,
    its ranking vectorised (small-text loops over rows x labels in Python) and its distances computed per distinct
    label vector (12x faster at 8,000 texts; same scores to 1e-16, same picks, tested). In small-text 1.4.1 that
    distance is the Hamming distance: the entropy-based distance of the paper is computed but not used."""

    def __init__(self, prediction_threshold: float = 0.5) -> None:
        super().__init__(prediction_threshold=prediction_threshold, pbar=None)

    def query(self, clf, dataset, indices_unlabeled, _indices_labeled, y, n=10):
        self._validate_query_input(indices_unlabeled, n)
        indices_unlabeled = np.asarray(indices_unlabeled)
        scores = self._compute_scores(indices_unlabeled, y, np.asarray(clf.predict_proba(dataset))[indices_unlabeled])
        self.scores_ = np.full(len(dataset), np.nan)
        self.scores_[indices_unlabeled] = scores
        if len(indices_unlabeled) == n:
            return indices_unlabeled
        return indices_unlabeled[np.argpartition(-scores, n)[:n]]

    def _compute_vector_inconsistency(self, y, y_pred_unlabeled, num_classes):
        """small-text's: each unlabelled text's distance to every labelled text's label vector, summed, divided by
        the size of the block of rows it was computed in (small-text's normalisation, kept). Computed once per
        pair of *distinct* vectors and weighted by how often each labelled vector occurs: a pool has few distinct
        predicted vectors and the labelled texts few distinct label sets, so 38k x 1,000 pairs become ~50 x 200
        (same sums up to rounding, tested)."""
        labelled, counts = np.unique(y.toarray(), axis=0, return_counts=True)
        predicted, which = np.unique(y_pred_unlabeled, axis=0, return_inverse=True)
        a = predicted.dot(labelled.T)
        b = np.logical_not(predicted).dot(labelled.T)
        c = predicted.dot(np.logical_not(labelled).T)
        d = np.logical_not(predicted).dot(np.logical_not(labelled).T).astype(int)
        hamming = (b + c) / num_classes
        summed = self._distance(predicted, labelled, num_classes, a, b, c, d, hamming) @ counts
        rows = len(y_pred_unlabeled)
        blocks = np.array_split(np.arange(rows), int(np.ceil(rows / self.batch_size)))
        return summed[np.ravel(which)] / np.concatenate([np.full(len(block), len(block)) for block in blocks])

    def _compute_ranking(self, indices_unlabeled, proba_unlabeled):
        rows, classes = proba_unlabeled.shape
        ranks = self._rank_by_margin(proba_unlabeled)  # (classes, rows)
        return (classes * rows - ranks[:, : len(indices_unlabeled)].sum(axis=0)) / (classes * (rows - 1))


class IntegerLabelsLearner(PoolBasedActiveLearner):
    """small-text's learner, training on integer labels: ``update`` takes a float array (its ignored marker is
    -inf) and keeps it, which torch's loss refuses ("expected target dtype to be Long") on a transformer's
    second round. Multi-label targets (a sparse label matrix) are kept as they are."""

    def _retrain(self, indices_validation=None):
        from scipy import sparse

        if not sparse.issparse(self.y):
            self.y = np.asarray(self.y, dtype=np.int64)
        super()._retrain(indices_validation=indices_validation)


def _coreset() -> GreedyCoreset:
    """Euclidean on L2-normalised vectors (cosine's ranking): small-text's cosine takes arccos of similarities
    that rounding pushes past 1, which gives NaN distances; its euclidean warns about a changed default."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return GreedyCoreset(distance_metric="euclidean", normalize=True)


STRATEGIES = {
    QueryStrategyName.breaking_ties: VectorisedBreakingTies,
    QueryStrategyName.least_confidence: MultiLabelLeastConfidence,
    QueryStrategyName.prediction_entropy: VectorisedPredictionEntropy,
    QueryStrategyName.random: RandomSampling,
    QueryStrategyName.embedding_kmeans: EmbeddingKMeans,
    QueryStrategyName.greedy_coreset: _coreset,
    QueryStrategyName.bald: ScoredBALD,
    QueryStrategyName.cvirs: ScoredCVIRS,
}
# Pool rows scored at a time (PooledClassifier._in_chunks): a joined hybrid chunk is ~100 MB at 32k rows
SCORE_CHUNK = 32_768

EMBEDDING_STRATEGIES = {QueryStrategyName.embedding_kmeans, QueryStrategyName.greedy_coreset}


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Seed numpy's global RNG (small-text draws from it) and torch, restoring numpy's state after."""
    saved = np.random.get_state()
    np.random.seed(seed % (2**32))
    try:
        import torch

        torch.manual_seed(seed)
    except ImportError:  # the tfidf model runs without torch
        pass
    try:
        yield
    finally:
        np.random.set_state(saved)


class PooledClassifier(Classifier):
    """Wraps a small-text classifier: probabilities always span every class, and are computed once per fit.

    small-text's SklearnClassifier returns ``predict_proba`` columns only for the classes seen in training
    (and ``predict`` returns the column index), which is wrong while a class is still unlabelled; we pad to
    all classes. Confidence strategies score the whole pool each query; the cache lets the suggestions, the
    predictions for KappaAverage and the query share that one pass.
    """

    def __init__(
        self, inner: Classifier, num_classes: int, blas_threads: int | None = None, engine: Engine | None = None
    ) -> None:
        self.inner = inner
        self.num_classes = num_classes
        self.blas_threads = blas_threads
        self.engine = engine or LocalEngine()  # where a feature-matrix pool is scored (daemon/engine.py)
        self._cache: tuple[int, int, np.ndarray] | None = None

    def _threads(self) -> contextlib.AbstractContextManager:
        if self.blas_threads is None:
            return contextlib.nullcontext()
        from threadpoolctl import threadpool_limits

        return threadpool_limits(self.blas_threads, user_api="blas")

    def fit(self, train_set: Any, *args: Any, **kwargs: Any) -> PooledClassifier:
        self._cache = None
        with self._threads(), warnings.catch_warnings():
            # multi-label: a label no labelled text has (yet) is predicted as constant; scikit-learn warns each fit
            warnings.filterwarnings(
                "ignore", message="Label .* is present in all training examples", category=UserWarning
            )
            # here, or fine-tuned on Ray and handed back (AL_RAY_FINE_TUNE)
            self.inner = self.engine.fit(self.inner, train_set, *args, **kwargs)
        return self

    def predict_proba(self, data_set: Any, dropout_sampling: int = 1) -> np.ndarray:
        if dropout_sampling > 1:  # Monte-Carlo dropout (BALD): (items, passes, classes), never cached
            return np.asarray(self.inner.predict_proba(data_set, dropout_sampling=dropout_sampling))
        key = (id(data_set), len(data_set))
        if self._cache is not None and self._cache[:2] == key:
            return self._cache[2]
        with self._threads():
            proba = self._in_chunks(data_set)
        classes = getattr(getattr(self.inner, "model", None), "classes_", None)
        if classes is not None and proba.shape[1] != self.num_classes:
            padded = np.zeros((proba.shape[0], self.num_classes))
            padded[:, np.asarray(classes, dtype=int)] = proba
            proba = padded
        self._cache = (*key, proba)
        return proba

    def _in_chunks(self, data_set: Any) -> np.ndarray:
        """The inner classifier's probabilities, SCORE_CHUNK rows at a time for a feature-matrix dataset, by the
        engine (here, or shards on Ray): a hybrid pool's rows are joined only a chunk at a time
        (:class:`daemon.models.JoinedRows`), and no intermediate the size of the whole pool is made but the
        result. Other datasets (transformers) are scored here in one call."""
        if not isinstance(data_set, SklearnDataset | SklearnDatasetView) or len(data_set) == 0:
            return np.asarray(self.inner.predict_proba(data_set), dtype=np.float64)
        return self.engine.proba(self.inner, data_set, SCORE_CHUNK)

    def predict(self, data_set: Any, return_proba: bool = False) -> Any:
        proba = self.predict_proba(data_set)
        predictions = proba.argmax(axis=1)
        return (predictions, proba) if return_proba else predictions


class PooledClassifierFactory(AbstractClassifierFactory):
    def __init__(
        self,
        inner: AbstractClassifierFactory,
        num_classes: int,
        blas_threads: int | None = None,
        engine: Engine | None = None,
    ) -> None:
        self.inner = inner
        self.num_classes = num_classes
        self.blas_threads = blas_threads
        self.engine = engine

    def new(self) -> PooledClassifier:
        return PooledClassifier(self.inner.new(), self.num_classes, self.blas_threads, self.engine)


def logistic_regression_factory(
    num_classes: int,
    seed: int,
    c: float = 1.0,
    solver: str = "lbfgs",
    class_weight: str | None = None,
    engine: Engine | None = None,
    multi_label: bool = False,
) -> PooledClassifierFactory:
    """Logistic regression; BLAS is held to one thread while it trains and predicts: on a 2-core machine
    OpenBLAS's thread hand-offs dominate these small matrices (a 1,000 x 384 fit: 0.59 s -> 0.11 s). The pool is
    scored by ``engine`` (default: here). Multi-label: one yes/no regression per label (small-text wraps it in
    scikit-learn's OneVsRestClassifier)."""
    model = LogisticRegression(C=c, max_iter=1000, random_state=seed, solver=solver, class_weight=class_weight)
    inner = SklearnClassifierFactory(model, num_classes, kwargs={"multi_label": multi_label})
    return PooledClassifierFactory(inner, num_classes, 1, engine)


@dataclasses.dataclass(frozen=True)
class Features:
    """A model's view of the pool and test set: small-text datasets plus the classifier factory to train."""

    pool: Any
    test: Any | None
    factory: AbstractClassifierFactory
    name: str
    encoder: Any = None  # texts -> features (sklearn transformer) for exporting a model that takes raw text
    vectors: Callable[[], np.ndarray] | None = None  # dense pool vectors for diversity strategies and cold start


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """Test-set scores. Multi-label: ``accuracy`` is subset accuracy (every label of a text right), plus micro-F1
    and the Hamming loss (the share of text x label decisions that are wrong)."""

    accuracy: float
    macro_f1: float
    micro_f1: float | None = None
    hamming_loss: float | None = None


Labels = int | tuple[int, ...]  # a text's label (single-label) or its sorted set of labels (multi-label)


class Learner:
    """One active-learning run over a fixed pool. Feed it labels with :meth:`fit`, then :meth:`query`."""

    ready = True  # its features exist (see PendingLearner)

    def __init__(
        self,
        features: Features,
        num_classes: int,
        strategy: QueryStrategyName,
        seed: int = 0,
        bald_samples: int = 20,
        cold_start: ColdStart = ColdStart.random,
        threshold: float = 0.5,
        at_least_one: bool = True,
    ) -> None:
        self.features = features
        self.num_classes = num_classes
        self.seed = seed
        self.strategy_name = strategy
        self.cold_start = cold_start
        self.bald_samples = bald_samples
        self.threshold = threshold  # multi-label: a label is predicted above this probability...
        self.at_least_one = at_least_one  # ...or, with none above, the most probable one (no empty answers)
        self.multi_label = _multi_label(features.pool)
        if strategy in EMBEDDING_STRATEGIES and features.vectors is None:
            raise ValueError(f"{strategy.value} needs dense pool vectors, which model {features.name} lacks")
        if strategy in (SINGLE_LABEL_STRATEGIES if self.multi_label else MULTI_LABEL_STRATEGIES):
            task = "multi-label" if self.multi_label else "single-label"
            raise ValueError(f"query strategy {strategy.value} does not apply to {task} tasks")
        if strategy is QueryStrategyName.bald:
            chosen = ScoredBALD(dropout_samples=bald_samples)
        elif strategy is QueryStrategyName.cvirs:
            chosen = ScoredCVIRS(prediction_threshold=threshold)
        else:
            chosen = STRATEGIES[strategy]()
        self._active = IntegerLabelsLearner(features.factory, chosen, features.pool)
        self._labelled: dict[int, int] = {}
        self._ignored: set[int] = set()
        self.trained = False
        self.fits = {"initialize_data": 0, "update": 0}

    @classmethod
    def from_settings(cls, features: Features, num_classes: int, settings: Any) -> Learner:
        return cls(
            features,
            num_classes,
            settings.query_strategy,
            settings.seed,
            bald_samples=settings.bald_samples,
            cold_start=settings.cold_start,
            threshold=settings.threshold,
            at_least_one=settings.none_label is None,
        )

    def fresh(self) -> Learner:
        """An untrained learner over the same features and settings (trained off the poll thread, then swapped
        in): the features, the pool's datasets and cached embeddings, are shared, not copied."""
        return Learner(
            self.features,
            self.num_classes,
            self.strategy_name,
            self.seed,
            bald_samples=self.bald_samples,
            cold_start=self.cold_start,
            threshold=self.threshold,
            at_least_one=self.at_least_one,
        )

    @property
    def pool_size(self) -> int:
        return len(self.features.pool)

    @property
    def name(self) -> str:
        return self.features.name

    def initial_batch(self, size: int) -> list[int]:
        """Round 0: a seeded random draw (small-text's random_initialization), or with ``cold_start=kmeans`` the
        pool item nearest each centre of k-means over the pool vectors (a diverse first batch)."""
        size = min(size, self.pool_size)
        with seeded(self.seed), np.errstate(invalid="ignore"):
            if self.cold_start is ColdStart.kmeans and self.features.vectors is not None:
                everything = np.arange(self.pool_size)
                none = np.array([], dtype=int)
                drawn = EmbeddingKMeans().sample(None, None, everything, none, none, size, self.features.vectors())
            else:
                drawn = random_initialization(self.features.pool, n_samples=size)
        return [int(i) for i in drawn]

    def fit(self, labelled: Mapping[int, Labels], ignored: set[int], round_number: int) -> bool:
        """Train on every label in hand; False (and no model) while fewer than two classes (multi-label: two
        different label sets) are labelled.

        Uses ``update`` when the new labels answer exactly the last query (the normal round), and
        ``initialize_data`` otherwise (first round, restart, or labels changed since the last fit; always for
        multi-label, where small-text's ``update`` has no marker for an ignored row: both retrain from scratch).
        """
        labelled = {int(k): self._labels(v) for k, v in labelled.items()}
        ignored = {int(i) for i in ignored} - labelled.keys()
        if len(set(labelled.values())) < 2:
            self._labelled, self._ignored, self.trained = dict(labelled), set(ignored), False
            return False
        queried = self._active.indices_queried
        new = labelled.keys() - self._labelled.keys()
        new_ignored = ignored - self._ignored
        unchanged = all(labelled.get(i) == label for i, label in self._labelled.items())
        follows_query = queried is not None and set(map(int, queried)) == new | new_ignored
        with seeded(self.seed + 1000 * round_number):
            if self.trained and unchanged and follows_query and not self.multi_label:
                y = np.array([labelled.get(int(i), LABEL_IGNORED) for i in queried], dtype=np.float64)
                self._active.update(y)
                self.fits["update"] += 1
            else:
                indices = np.array(sorted(labelled), dtype=np.int64)
                y = self._targets([labelled[i] for i in indices])
                self._active.initialize_data(indices, y, indices_ignored=np.array(sorted(ignored), dtype=np.int64))
                self.fits["initialize_data"] += 1
        self._labelled, self._ignored, self.trained = dict(labelled), set(ignored), True
        return True

    def _labels(self, value: Any) -> Labels:
        if self.multi_label:
            return tuple(sorted({int(c) for c in ([value] if isinstance(value, int | np.integer) else value)}))
        return int(value)

    def _targets(self, values: list[Labels]) -> Any:
        if self.multi_label:
            return label_matrix(values, self.num_classes)
        return np.array(values, dtype=np.int64)

    def unlabelled_count(self) -> int:
        return self.pool_size - len(self._labelled) - len(self._ignored)

    def taken_indices(self) -> np.ndarray:
        """Pool items the model knows about: labelled or ignored."""
        return np.array(sorted(self._labelled.keys() | self._ignored), dtype=np.int64)

    def unlabelled_indices(self) -> np.ndarray:
        return np.setdiff1d(np.arange(self.pool_size), self.taken_indices())

    @property
    def classifier(self) -> Any:
        """The trained small-text classifier (inside our probability-padding wrapper), or None."""
        return self._active.classifier.inner if self.trained else None

    def pool_proba(self) -> np.ndarray:
        """Class probabilities for the whole pool (shared with the query through the classifier's cache)."""
        return self._active.classifier.predict_proba(self.features.pool)

    def query(self, size: int, round_number: int, exclude: Iterable[int] = ()) -> QueryResult:
        """Pick the next batch among the unlabelled, not-ignored pool items, skipping ``exclude`` too (items
        already in front of annotators or labelled since the model was trained)."""
        extra = np.setdiff1d(np.fromiter(set(exclude), dtype=np.int64), self.taken_indices())
        size = min(size, self.unlabelled_count() - len(extra))
        if size <= 0:
            return QueryResult.unscored([])
        if not self.trained:
            # no model yet (one class so far): keep exploring at random, without suggestions
            candidates = np.setdiff1d(self.unlabelled_indices(), extra)
            with seeded(self.seed + 1000 * round_number + 1):
                picked = np.random.choice(candidates, size=size, replace=False)
            return QueryResult.unscored(picked)
        ignored = self._active.indices_ignored
        self._active.indices_ignored = np.concatenate([np.asarray(ignored, dtype=np.int64), extra])
        try:
            picked = self._query(size, round_number)
        finally:
            self._active.indices_ignored = ignored
        raw_scores = getattr(self._active.query_strategy, "scores_", None)
        scores = [float(raw_scores[i]) if raw_scores is not None else None for i in picked]
        if self.multi_label:
            return QueryResult.guessed_sets(picked, self.pool_proba(), self.threshold, scores, self.at_least_one)
        return QueryResult.guessed(picked, self.pool_proba(), scores)

    def _query(self, size: int, round_number: int) -> np.ndarray:
        kwargs = {}
        if self.strategy_name in EMBEDDING_STRATEGIES:
            # the rows small-text's embedding strategies expect: unlabelled (in pool order), then labelled
            labelled = np.asarray(self._active.indices_labeled, dtype=np.int64)
            mask = np.ones(self.pool_size, dtype=bool)
            mask[np.concatenate([labelled, np.asarray(self._active.indices_ignored, dtype=np.int64)])] = False
            order = np.concatenate([np.arange(self.pool_size)[mask], labelled])
            kwargs = {"embeddings": self.features.vectors()[order]}
        # np.errstate: small-text's k-means takes arccos of cosine similarities a rounding error puts past 1
        with seeded(self.seed + 1000 * round_number + 1), np.errstate(invalid="ignore"):
            return self._active.query(num_samples=size, query_strategy_kwargs=kwargs)

    def out_of_sample_proba(self, labelled: Mapping[int, int], folds: int, round_number: int) -> np.ndarray:
        """Class probabilities for every labelled index (rows in ascending index order), each from a model that
        did not see it: stratified K-fold over the labels in hand, a fresh classifier per fold (what CROWDLAB and
        ActiveLab need). With fewer labels of a class than folds, the folds shrink; one class only: uniform."""
        from sklearn.model_selection import StratifiedKFold

        indices = np.array(sorted(labelled), dtype=np.int64)
        y = np.array([labelled[int(i)] for i in indices], dtype=np.int64)
        proba = np.full((len(indices), self.num_classes), 1.0 / self.num_classes)
        smallest = min(np.bincount(y)[np.unique(y)]) if len(y) else 0
        k = min(folds, smallest)
        if len(np.unique(y)) < 2 or k < 2:
            return proba
        splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=(self.seed + 1000 * round_number) % 2**32)
        with seeded(self.seed + 1000 * round_number + 2):
            for train, held_out in splitter.split(indices, y):
                if len(np.unique(y[train])) < 2:
                    continue
                subset = self.features.pool[indices[train]].clone()
                subset.y = y[train]
                classifier = self.features.factory.new()
                classifier.fit(subset)
                proba[held_out] = classifier.predict_proba(self.features.pool[indices[held_out]])
        return proba

    def evaluate(self, y_test: Any) -> Evaluation | None:
        """Accuracy and macro-F1 on the test set (None without a test set or a model); multi-label (``y_test`` a
        0/1 matrix): subset accuracy, macro- and micro-F1 and the Hamming loss, a label predicted above the
        threshold."""
        if self.features.test is None or not self.trained:
            return None
        if self.multi_label:
            proba = self._active.classifier.predict_proba(self.features.test)
            return multi_label_scores(y_test, proba, self.threshold, self.at_least_one)
        predicted = self._active.classifier.predict(self.features.test)
        return Evaluation(
            accuracy=float(accuracy_score(y_test, predicted)),
            macro_f1=float(
                f1_score(y_test, predicted, average="macro", labels=np.arange(self.num_classes), zero_division=0)
            ),
        )


def multi_label_scores(y_true: Any, proba: np.ndarray, threshold: float, at_least_one: bool = True) -> Evaluation:
    """Multi-label test scores of probabilities ``proba`` against the 0/1 matrix ``y_true``, the predictions
    those of :func:`daemon.batches.predicted_sets`."""
    from scipy import sparse
    from sklearn.metrics import hamming_loss

    truth = y_true.toarray() if sparse.issparse(y_true) else np.asarray(y_true)
    predicted = predicted_sets(proba, threshold, at_least_one)
    labels = np.arange(truth.shape[1])
    return Evaluation(
        accuracy=float(accuracy_score(truth, predicted)),
        macro_f1=float(f1_score(truth, predicted, average="macro", labels=labels, zero_division=0)),
        micro_f1=float(f1_score(truth, predicted, average="micro", labels=labels, zero_division=0)),
        hamming_loss=float(hamming_loss(truth, predicted)),
    )


class PendingLearner:
    """The learner while its features are still being built (the pool embedded in the background): it draws the
    same random batch 0 as :class:`Learner` and, like an untrained one, picks later batches at random; it never
    trains. The daemon swaps in the real learner once the features exist."""

    ready = False
    trained = False

    def __init__(self, pool_size: int, name: str, seed: int = 0, cold_start: ColdStart = ColdStart.random) -> None:
        if cold_start is not ColdStart.random:
            raise ValueError(f"cold start {cold_start.value} needs the pool's features first")
        self.pool_size = pool_size
        self.name = name
        self.seed = seed

    def initial_batch(self, size: int) -> list[int]:
        """Learner.initial_batch's seeded random draw (small-text's random_initialization), without features."""
        with seeded(self.seed):
            drawn = np.random.choice(self.pool_size, size=min(size, self.pool_size), replace=False)
        return [int(i) for i in drawn]

    def query(self, size: int, round_number: int, exclude: Iterable[int] = ()) -> QueryResult:
        """An untrained Learner's query: a seeded random draw among the pool items not in ``exclude``."""
        candidates = np.setdiff1d(np.arange(self.pool_size), np.fromiter(set(exclude), dtype=np.int64))
        size = min(size, len(candidates))
        if size <= 0:
            return QueryResult.unscored([])
        with seeded(self.seed + 1000 * round_number + 1):
            picked = np.random.choice(candidates, size=size, replace=False)
        return QueryResult.unscored(picked)


def unlabelled_targets(size: int, num_classes: int | None = None) -> Any:
    """Placeholder targets for the pool (small-text datasets need a y); with ``num_classes``, multi-label ones (an
    empty label matrix, which also makes the dataset a multi-label one)."""
    if num_classes is not None:
        from scipy import sparse

        return sparse.csr_matrix((size, num_classes), dtype=np.int64)
    return np.full(size, LABEL_UNLABELED, dtype=np.int64)
