"""Several annotators per text: consensus labels, annotator quality and ActiveLab's relabel-or-new scores.

Pure functions over *votes*: for each pool index, the labels its annotators submitted, in the order they came
(``{pool index: [(annotator, class index), ...]}``, one vote per annotator and text). The loop journals the votes;
this module turns them into the labels the model trains on and into the numbers `/status` shows. cleanlab's
``cleanlab.multiannotator`` does CROWDLAB (consensus weighted by each annotator's estimated quality and the
model's out-of-sample predictions) and ActiveLab (Goh & Mueller 2023: one score for labelled and unlabelled
texts alike; the lowest deserve the next annotation).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import warnings
from collections import Counter
from collections.abc import Mapping, Sequence

import numpy as np

from daemon.answers import majority_of

Votes = Mapping[int, Sequence[tuple[str, int]]]


@contextlib.contextmanager
def quiet():
    """cleanlab prints (not warns) about annotators who share no text with another, expected early on."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


def majority(votes: Sequence[tuple[str, int]]) -> int:
    """The label most annotators chose (``votes``: (annotator, label) in submit order); ties as majority_of."""
    return majority_of([label for _, label in votes])


def majority_labels(votes: Votes) -> dict[int, int]:
    return {index: majority(given) for index, given in votes.items() if given}


@dataclasses.dataclass(frozen=True)
class VoteMatrix:
    """Votes as cleanlab wants them: one row per text, one column per annotator, NaN where they gave none."""

    indices: np.ndarray  # pool index of each row
    annotators: list[str]  # annotator of each column
    labels: np.ndarray  # float (rows, annotators)

    @classmethod
    def of(cls, votes: Votes) -> VoteMatrix:
        indices = np.array(sorted(i for i, given in votes.items() if given), dtype=np.int64)
        annotators = sorted({who for i in indices for who, _ in votes[int(i)]})
        column = {who: k for k, who in enumerate(annotators)}
        labels = np.full((len(indices), len(annotators)), np.nan)
        for row, index in enumerate(indices):
            for who, label in votes[int(index)]:
                labels[row, column[who]] = label
        return cls(indices, annotators, labels)

    @property
    def counts(self) -> np.ndarray:
        return np.sum(~np.isnan(self.labels), axis=1)

    def crowdlab_possible(self) -> bool:
        """cleanlab's CROWDLAB needs two annotators and at least one text with two votes."""
        return len(self.annotators) >= 2 and bool((self.counts >= 2).any())


@dataclasses.dataclass(frozen=True)
class Consensus:
    """The labels to train on, and how they were reached."""

    labels: dict[int, int]  # pool index -> consensus class
    method: str  # "majority" | "crowdlab" (CROWDLAB falls back to majority until two annotators overlap)
    quality: dict[int, float] = dataclasses.field(default_factory=dict)  # crowdlab: consensus quality per index
    annotator_quality: dict[str, float] = dataclasses.field(default_factory=dict)  # crowdlab: per annotator


def crowdlab(votes: Votes, pred_probs: np.ndarray) -> Consensus:
    """CROWDLAB consensus: ``pred_probs`` are out-of-sample class probabilities, one row per voted index in
    ascending order (as :class:`VoteMatrix` lays them out)."""
    matrix = VoteMatrix.of(votes)
    if not matrix.crowdlab_possible():
        return Consensus(majority_labels(votes), "majority")
    from cleanlab.multiannotator import get_label_quality_multiannotator

    with quiet():
        result = get_label_quality_multiannotator(
            matrix.labels, np.asarray(pred_probs), verbose=False, return_detailed_quality=False
        )
    quality = result["label_quality"]
    stats = result["annotator_stats"]
    return Consensus(
        labels={int(i): int(c) for i, c in zip(matrix.indices, quality["consensus_label"], strict=True)},
        method="crowdlab",
        quality={int(i): float(q) for i, q in zip(matrix.indices, quality["consensus_quality_score"], strict=True)},
        annotator_quality={matrix.annotators[int(k)]: float(q) for k, q in stats["annotator_quality"].items()},
    )


def activelab_scores(
    votes: Votes, pred_probs: np.ndarray, pred_probs_unlabelled: np.ndarray
) -> tuple[dict[int, float], np.ndarray]:
    """ActiveLab scores: for each voted index (``pred_probs``: out-of-sample, rows in ascending index order) and
    for each unlabelled row of ``pred_probs_unlabelled``. Lower = more worth one more label."""
    from cleanlab.multiannotator import get_active_learning_scores

    matrix = VoteMatrix.of(votes)
    with quiet():
        labelled, unlabelled = get_active_learning_scores(
            matrix.labels if len(matrix.indices) else None,
            np.asarray(pred_probs) if len(matrix.indices) else None,
            np.asarray(pred_probs_unlabelled) if len(pred_probs_unlabelled) else None,
        )
    return {int(i): float(s) for i, s in zip(matrix.indices, labelled, strict=True)}, np.asarray(unlabelled)


@dataclasses.dataclass(frozen=True)
class Pick:
    """One annotation to ask for: a new pool text (``relabel`` False) or one more label on a voted one."""

    index: int
    score: float
    relabel: bool


def lowest(
    labelled_scores: Mapping[int, float],
    unlabelled: np.ndarray,
    unlabelled_scores: np.ndarray,
    size: int,
    may_relabel: set[int],
) -> list[Pick]:
    """The ``size`` lowest ActiveLab scores among the unlabelled rows and the labelled indices in
    ``may_relabel`` (below the annotation cap, not already asked again); ties go to new texts, then index."""
    candidates = [(float(s), 0, int(i)) for i, s in zip(unlabelled, unlabelled_scores, strict=True)]
    candidates += [(score, 1, index) for index, score in labelled_scores.items() if index in may_relabel]
    candidates.sort()
    return [Pick(index, score, bool(kind)) for score, kind, index in candidates[:size]]


def agreement(votes: Votes, consensus: Mapping[int, int]) -> dict:
    """How annotators agree with the consensus: per annotator (labels given, share equal to the consensus on
    texts someone else labelled too) and overall (mean share of a text's votes equal to its consensus, over
    texts with two or more votes)."""
    given: Counter[str] = Counter()
    compared: Counter[str] = Counter()
    agreed: Counter[str] = Counter()
    shares = []
    for index, items in votes.items():
        if index not in consensus:
            continue
        for who, _ in items:
            given[who] += 1
        if len(items) < 2:
            continue
        same = [label == consensus[index] for _, label in items]
        shares.append(sum(same) / len(same))
        for (who, _), hit in zip(items, same, strict=True):
            compared[who] += 1
            agreed[who] += hit
    return {
        "texts_with_several_votes": len(shares),
        "mean_agreement": float(np.mean(shares)) if shares else None,
        "annotators": {
            who: {
                "labels": given[who],
                "compared": compared[who],
                "agreement": agreed[who] / compared[who] if compared[who] else None,
            }
            for who in sorted(given)
        },
    }
