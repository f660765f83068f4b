"""small-text's pieces as the daemon adapts them: query strategies that keep the pool's scores (vectorised where
small-text loops in Python), the learner that trains on integer labels, and the classifier wrapper that pads
probabilities to every class and scores the pool once per fit (here or on Ray, by the engine).

Imported only when a model is built (:mod:`daemon.learner` imports it lazily): ``import small_text`` imports
torch, transformers and SetFit (~5 s here), which batch 0 (a random draw) does not need: a daemon logs it first.
"""

from __future__ import annotations

import contextlib
import warnings
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
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
)
from small_text.classifiers import Classifier
from small_text.classifiers.factories import AbstractClassifierFactory
from small_text.data.datasets import SklearnDatasetView

from daemon.config import QueryStrategyName
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


def is_multi_label(dataset: Any) -> bool:
    return bool(getattr(dataset, "is_multi_label", False))


class VectorisedBreakingTies(BreakingTies):
    """small-text's BreakingTies, scoring the pool in one vectorised step: its ``np.apply_along_axis`` runs Python
    per row (5 s per query at 500k texts, bench/scale.py). Same margins (best minus second best), same picks.

    Multi-label: each label is a yes/no question, its margin ``|p - (1 - p)|``; a text's margin is its smallest
    (the label the model is least sure of)."""

    def get_confidence(self, clf, dataset, _indices_unlabeled, _indices_labeled, _y):
        proba = np.asarray(clf.predict_proba(dataset))
        if is_multi_label(dataset):
            return np.abs(2 * proba - 1).min(axis=1)
        top_two = np.partition(proba, -2, axis=1)[:, -2:]
        return top_two[:, 1] - top_two[:, 0]


class MultiLabelLeastConfidence(LeastConfidence):
    """small-text's LeastConfidence; multi-label: a text's confidence is the mean over labels of the probability
    of the model's yes/no answer, ``max(p, 1 - p)``."""

    def get_confidence(self, clf, dataset, indices_unlabeled, indices_labeled, y):
        if not is_multi_label(dataset):
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
        if is_multi_label(dataset):
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
