"""The model ladder's decision: should a slower model that learns the task's words (a fine-tuned transformer) take
over from the fast frozen one? Answered by cross-validation on the labels in hand, never on a test set.

bench/fine_tune_gain.py measured why this is a question of label count: on the MR and SUBJ validation splits the
fine-tuned transformer loses to the frozen hybrid at 200 labels, ties at 500 and leads by 0.014-0.027 at 1,000.
So the comparison is made when enough labels exist (:func:`due`), and a switch needs the candidate ahead by more
than the comparison's own noise (:func:`compare`): both models are scored on the same held-out labels, so the
paired differences give a standard error, and the candidate must lead by at least that and by ``margin``.

Pure: two learners over the same pool and the labels; no I/O and no threads (the daemon runs it off the poll
thread). Single-label runs only: the folds are stratified by class.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence

import numpy as np

from daemon.learner import Learner


@dataclasses.dataclass(frozen=True)
class Verdict:
    """One comparison, as journaled and shown: who was compared, on how many labels, the scores and the outcome."""

    labels: int
    current: str
    candidate: str
    folds: int
    current_accuracy: float
    candidate_accuracy: float
    standard_error: float  # of the paired difference (candidate - current) over the labels
    margin: float
    switch: bool
    seconds: float

    @property
    def lead(self) -> float:
        return self.candidate_accuracy - self.current_accuracy

    @property
    def reason(self) -> str:
        scores = (
            f"{self.candidate} {self.candidate_accuracy:.3f} vs {self.current} {self.current_accuracy:.3f} in "
            f"{self.folds}-fold cross-validation on {self.labels} labels"
        )
        if self.switch:
            return f"{scores}: {self.candidate} takes over"
        need = max(self.margin, self.standard_error)
        return f"{scores}: {self.current} stays (a switch needs a lead over {need:.3f})"


def due(labels: int, first: int, compared_at: Sequence[int], growth: float = 1.5) -> bool:
    """A comparison is due at ``first`` labels, then each time the labels in hand have grown ``growth``-fold since
    the last comparison (200, 300, 450, ... with the defaults): often while the candidate is about to overtake,
    rarely once it is far behind or ahead."""
    if labels < first:
        return False
    if not compared_at:
        return True
    return labels >= growth * max(compared_at)


def held_out_correct(learner: Learner, labelled: Mapping[int, int], folds: int, round_number: int) -> np.ndarray:
    """For every labelled pool index (ascending), whether a model that did not see it predicts its label."""
    indices = sorted(labelled)
    y = np.array([labelled[i] for i in indices], dtype=np.int64)
    proba = learner.out_of_sample_proba(labelled, folds, round_number)
    return proba.argmax(axis=1) == y


def compare(
    current: Learner,
    candidate: Learner,
    labelled: Mapping[int, int],
    *,
    folds: int = 3,
    margin: float = 0.01,
    round_number: int = 0,
) -> Verdict:
    """Cross-validate both learners on the same folds of ``labelled`` (pool index -> class index); the candidate
    takes over when its held-out accuracy leads by more than ``margin`` and by more than the standard error of the
    paired difference."""
    if current.multi_label or candidate.multi_label:
        raise ValueError("the model ladder compares single-label models only")
    if current.seed != candidate.seed:  # the folds are drawn from the seed: the same seed, the same folds
        raise ValueError("the compared learners need the same seed (their folds must be the same)")
    started = time.perf_counter()
    mine = held_out_correct(current, labelled, folds, round_number)
    theirs = held_out_correct(candidate, labelled, folds, round_number)
    difference = theirs.astype(float) - mine.astype(float)
    standard_error = float(difference.std(ddof=1) / np.sqrt(len(difference))) if len(difference) > 1 else 1.0
    lead = float(difference.mean()) if len(difference) else 0.0
    return Verdict(
        labels=len(labelled),
        current=current.name,
        candidate=candidate.name,
        folds=folds,
        current_accuracy=round(float(mine.mean()) if len(mine) else 0.0, 4),
        candidate_accuracy=round(float(theirs.mean()) if len(theirs) else 0.0, 4),
        standard_error=round(standard_error, 4),
        margin=margin,
        switch=lead > max(margin, standard_error),
        seconds=round(time.perf_counter() - started, 3),
    )
