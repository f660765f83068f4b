"""The model ladder's decision: should a slower model that learns the task's words (a fine-tuned transformer) take
over from the fast frozen one? Answered by cross-validation on the labels in hand, never on a test set.

bench/fine_tune_gain.py measured why this is a question of label count: on the MR and SUBJ validation splits the
fine-tuned transformer loses to the frozen hybrid at 200 labels, ties at 500 and leads by 0.014-0.027 at 1,000.
So the comparison is made when enough labels exist (:func:`due`), and a switch needs the candidate ahead by more
than the comparison's own noise (:func:`compare`): both models are scored on the same held-out labels, so the
paired differences give a standard error, and the candidate must lead by at least that and by ``margin``.

:func:`due` and :func:`compare` are pure: two learners over the same pool and the labels, no I/O. The
:class:`LadderRunner` runs them for the daemon (``AL_LADDER``) on a thread of its own, off the poll thread: the
candidate's features are built once, both models cross-validated, and on a switch the candidate trained on every
label in hand; then, under the daemon's lock, the verdict is journaled (``RunState.ladder``) and on a switch the
candidate chooses the batches from then on (``RunState.model_in_use``). Single-label runs only: the folds are
stratified by class.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from daemon.answers import encode
from daemon.config import ModelKind
from daemon.learner import Learner
from daemon.state import LadderVerdict, RunState
from daemon.steps import reached
from daemon.trainer import BackgroundTrainer, Job

if TYPE_CHECKING:
    from daemon.loop import Daemon

log = logging.getLogger(__name__)
GROWTH = 1.5  # a comparison each time the labels in hand grew this much since the last


def reason(verdict: LadderVerdict) -> str:
    """The verdict in one line, for the journal, the log and the status page."""
    scores = (
        f"{verdict.candidate} {verdict.candidate_accuracy:.3f} vs {verdict.current} {verdict.current_accuracy:.3f} "
        f"in {verdict.folds}-fold cross-validation on {verdict.labels} labels"
    )
    if verdict.switch:
        return f"{scores}: {verdict.candidate} takes over"
    need = max(verdict.margin, verdict.standard_error)
    return f"{scores}: {verdict.current} stays (a switch needs a lead over {need:.3f})"


def due(labels: int, first: int, compared_at: Sequence[int], growth: float = GROWTH) -> bool:
    """A comparison is due at ``first`` labels, then each time the labels in hand have grown ``growth``-fold since
    the last comparison (500, 750, 1,125, ... labels with the defaults): often while the candidate is about to
    overtake, rarely once it is far behind or ahead."""
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


def paired_lead(mine: np.ndarray, theirs: np.ndarray, margin: float) -> tuple[float, float, bool]:
    """The candidate's lead in held-out accuracy over the current model on the same items (each a bool: predicted
    right), the standard error of that paired difference (1.0 with fewer than two items: no evidence), and whether
    the candidate takes over: a lead over ``margin`` and over the standard error."""
    difference = theirs.astype(float) - mine.astype(float)
    standard_error = float(difference.std(ddof=1) / np.sqrt(len(difference))) if len(difference) > 1 else 1.0
    lead = float(difference.mean()) if len(difference) else 0.0
    return lead, standard_error, lead > max(margin, standard_error)


def compare(
    current: Learner,
    candidate: Learner,
    labelled: Mapping[int, int],
    *,
    folds: int = 3,
    margin: float = 0.01,
    round_number: int = 0,
) -> LadderVerdict:
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
    _lead, standard_error, switch = paired_lead(mine, theirs, margin)
    verdict = LadderVerdict(
        round=round_number,
        labels=len(labelled),
        current=current.name,
        candidate=candidate.name,
        folds=folds,
        current_accuracy=round(float(mine.mean()) if len(mine) else 0.0, 4),
        candidate_accuracy=round(float(theirs.mean()) if len(theirs) else 0.0, 4),
        standard_error=round(standard_error, 4),
        margin=margin,
        switch=switch,
        seconds=round(time.perf_counter() - started, 3),
    )
    return verdict.model_copy(update={"reason": reason(verdict)})


class LadderRunner:
    """The daemon's model ladder: after each round it asks whether a comparison is due (:meth:`consider`, under the
    daemon's lock) and runs it on its own background thread, one at a time."""

    def __init__(self, daemon: Daemon, kind: ModelKind, build: Callable[[ModelKind], Learner]) -> None:
        self.daemon = daemon
        self.kind = kind  # the model that may take over
        self.build = build  # a learner of a model kind over the daemon's pool (its features built: slow)
        self.trainer = BackgroundTrainer(self._compare)
        self._candidate: Learner | None = None  # built once; fresh copies share its features

    def consider(self, state: RunState) -> bool:
        """Submit a comparison when one is due: the candidate has not taken over, the run goes on, the model in
        hand is trained and none is running; True when one was submitted."""
        daemon = self.daemon
        if state.model_in_use is not None or state.stopped or state.stop_pending or self.trainer.busy:
            return False
        if not (daemon.learner.ready and daemon.learner.trained):
            return False
        labels = state.training_labels()
        if not due(len(labels), daemon.settings.ladder_after, [v.labels for v in state.ladder]):
            return False
        rounds = [m.round for m in state.rounds]
        self.trainer.submit(
            Job(
                round=max(rounds) if rounds else 0,
                labels={i: encode(label, daemon.labels) for i, label in labels.items()},
                ignored=state.not_queryable(),
                used=set(),
            )
        )
        log.info("model ladder: comparing %s with %s on %d labels", daemon.learner.name, self.kind.value, len(labels))
        return True

    def _compare(self, job: Job) -> None:
        daemon = self.daemon
        if self._candidate is None:
            self._candidate = self.build(self.kind)
        candidate = self._candidate.fresh()
        verdict = compare(
            daemon.learner.fresh(), candidate, job.labels, folds=daemon.settings.ladder_folds, round_number=job.round
        )
        if verdict.switch:  # trained on every label before it takes over: the next batch is its choice
            candidate.fit(job.labels, job.ignored, job.round)
        reached("ladder-compared", verdict=verdict)  # a crash from here to the journal: the restart compares again
        with daemon.lock:
            state = daemon.state
            if daemon.shutdown_requested.is_set() or state is None or state.stopped or state.stop_pending:
                log.info("model ladder: comparison done, not used (the run is stopping)")
                return
            state.ladder.append(verdict)
            if verdict.switch:
                state.model_in_use = self.kind.value
                daemon.use_model(candidate)
            daemon.store.save(state)
            reached("ladder-journaled", verdict=verdict)  # a crash from here on: the restart builds the model in use
            log.info("model ladder: %s", verdict.reason)
            daemon.publish()
