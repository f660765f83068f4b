"""The learner core: small-text's PoolBasedActiveLearner, models, query strategies and stopping signals.

No I/O here (apart from what the caller hands in as arrays): the loop feeds labels in, gets a batch of pool
indices with scores and predictions out. Everything is a function of the data and the seed, so a restarted
daemon that replays the same labels gets the same model and the same next batch. small-text itself (and the
adapted strategies and classifier, :mod:`daemon.smalltext`) is imported only when a learner with features is made:
it imports torch, transformers and SetFit, which :class:`PendingLearner`'s random batch 0 does not need.
"""

from __future__ import annotations

import contextlib
import dataclasses
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, f1_score

from daemon.answers import label_matrix
from daemon.batches import QueryResult, predicted_sets
from daemon.config import MULTI_LABEL_STRATEGIES, SINGLE_LABEL_STRATEGIES, ColdStart, QueryStrategyName

EMBEDDING_STRATEGIES = {QueryStrategyName.embedding_kmeans, QueryStrategyName.greedy_coreset}


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Seed numpy's global RNG (small-text draws from it) and torch once imported (every torch model imports it
    before it trains), restoring numpy's state after."""
    saved = np.random.get_state()
    np.random.seed(seed % (2**32))
    torch = sys.modules.get("torch")  # a model that uses torch imported it (with small-text) before training
    if torch is not None:
        torch.manual_seed(seed)
    try:
        yield
    finally:
        np.random.set_state(saved)


@dataclasses.dataclass(frozen=True)
class Features:
    """A model's view of the pool and test set: small-text datasets plus the classifier factory to train."""

    pool: Any
    test: Any | None
    factory: Any  # small-text's AbstractClassifierFactory (daemon.smalltext.PooledClassifierFactory)
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
        from daemon.smalltext import STRATEGIES, IntegerLabelsLearner, ScoredBALD, ScoredCVIRS, is_multi_label

        self.multi_label = is_multi_label(features.pool)
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
        from small_text import EmbeddingKMeans, random_initialization

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
        from small_text.base import LABEL_IGNORED

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
    from small_text.base import LABEL_UNLABELED

    return np.full(size, LABEL_UNLABELED, dtype=np.int64)
