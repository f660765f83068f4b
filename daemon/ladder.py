"""The model ladder's decision: should a slower model that learns the task's words (a fine-tuned transformer) take
over from the fast frozen one (and, once it did, give way back)? Answered on labels, never on a test set.

bench/fine_tune_gain.py measured why this is a question of label count: on the MR and SUBJ validation splits the
fine-tuned transformer loses to the frozen hybrid at 200 labels, ties at 500 and leads by 0.014-0.027 at 1,000.
So the comparison is made when enough labels exist (:func:`due`), and a switch needs the candidate ahead by more
than the comparison's own noise: both models are scored on the same items, so the paired differences give a
standard error, and the candidate must lead by at least that and by ``margin``. Two ways (AL_LADDER_COMPARE):

- probes (:func:`disagreements`, :func:`draw_probes`, :func:`probe_verdict`): both trained on the labels in hand,
  texts on which they disagree drawn at random among the unlabelled pool's and labelled by the annotators; the
  lead among them times the disagreements' share estimates the lead on the unlabelled pool, cross-validation the
  lead on the labels in hand, and :func:`stratified_lead` weighs the two by their shares of the pool (each alone
  is biased: bench/ladder_bias.py, bench/ladder_probes.py);
- cv (:func:`compare`): cross-validation on the labels in hand; no label spent, but those were chosen where the
  model choosing the batches was least sure, which understates it.

The functions are pure: learners, predictions and labels in, no I/O. The :class:`LadderRunner` runs them for the
daemon (``AL_LADDER``) on a thread of its own, off the poll thread, and journals under the daemon's lock: the
probes (``RunState.ladder_probes``; the daemon puts them in its next batches), every verdict (``RunState.ladder``)
and on a switch the model in use (``RunState.model_in_use``). Single-label runs only.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from daemon.answers import encode
from daemon.config import LadderCompare, ModelKind
from daemon.learner import Learner
from daemon.state import LadderProbes, LadderVerdict, RunState
from daemon.steps import reached
from daemon.trainer import BackgroundTrainer, Job

if TYPE_CHECKING:
    from daemon.loop import Daemon

log = logging.getLogger(__name__)
GROWTH = 1.5  # a comparison each time the labels in hand grew this much since the last
# by probes, a switch needs the estimated lead over this many standard errors (one-sided 95 %). Run end to end on
# one seed (bench/ladder_default.py), one error let SUBJ's transformer in where validation had the two level (it
# served 0.001 less) and would have let MR's in where it led by 0.030 (0.021 more): more seeds decide (README)
CONFIDENCE = 1.645


def reason(verdict: LadderVerdict) -> str:
    """The verdict in one line, for the journal, the log and the status page."""
    if verdict.method == LadderCompare.probes.value:
        scores = (
            f"{verdict.candidate} right on {verdict.candidate_accuracy:.0%} of {verdict.probes} labelled texts where "
            f"the two trained on {verdict.labels} labels disagreed ({verdict.share:.1%} of the unlabelled pool), "
            f"{verdict.current} on {verdict.current_accuracy:.0%}; on the labels in hand "
            f"({verdict.labelled_share:.1%} of the pool) {verdict.cv_candidate or 0:.3f} vs {verdict.cv_current or 0:.3f} "
            f"in cross-validation: estimated lead on the pool {verdict.lead:+.4f} ± {verdict.standard_error:.4f}"
        )
    else:
        scores = (
            f"{verdict.candidate} {verdict.candidate_accuracy:.3f} vs {verdict.current} "
            f"{verdict.current_accuracy:.3f} in {verdict.folds}-fold cross-validation on {verdict.labels} labels"
        )
    if verdict.switch:
        return f"{scores}: {verdict.candidate} takes over"
    errors = CONFIDENCE if verdict.method == LadderCompare.probes.value else 1.0
    need = bar(verdict.standard_error, verdict.margin, errors)
    return f"{scores}: {verdict.current} stays (a switch needs a lead over {need:.4f})"


def bar(standard_error: float, margin: float, errors: float = 1.0) -> float:
    """The lead a switch must exceed: ``margin``, and ``errors`` standard errors as journaled (4 digits)."""
    return max(margin, errors * round(standard_error, 4))


def takes_over(lead: float, standard_error: float, margin: float, errors: float = 1.0) -> bool:
    """Whether a candidate leading by ``lead`` takes over, decided on the numbers a verdict journals (4 digits), so
    the verdict follows from the journal alone: at the bar's edge the unrounded ones could decide otherwise (CR,
    seed 1: +0.0224 against 1.645 x 0.0136 = 0.0224)."""
    return round(lead, 4) > bar(standard_error, margin, errors)


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
    return lead, standard_error, takes_over(lead, standard_error, margin)


def disagreements(current: np.ndarray, candidate: np.ndarray, unlabelled: np.ndarray) -> np.ndarray:
    """The unlabelled pool indices on which the two models' predicted classes differ (``current`` and ``candidate``:
    a predicted class per pool item)."""
    return unlabelled[current[unlabelled] != candidate[unlabelled]]


def draw_probes(apart: np.ndarray, size: int, rng: np.random.Generator) -> list[int]:
    """``size`` of the disagreements, drawn uniformly at random (fewer when there are fewer): the labels on which
    the comparison is made. Uniform among the disagreements, so their mean difference, times the disagreements'
    share of the pool, estimates the candidate's lead on the whole unlabelled pool without bias (where the two
    agree, they are both right or both wrong: no difference)."""
    chosen = rng.choice(apart, size=min(size, len(apart)), replace=False)
    return sorted(int(i) for i in chosen)


def probe_lead(
    current_right: np.ndarray, candidate_right: np.ndarray, share: float, margin: float
) -> tuple[float, float, bool]:
    """:func:`paired_lead` on the probes (each a bool: that model predicted the label given), scaled to the whole
    unlabelled pool by ``share``, the disagreements' share of it: the candidate's estimated lead in pool accuracy,
    its standard error, and whether the candidate takes over (a lead over ``margin`` and over the standard
    error). On a binary task every probe is a full vote: exactly one of the two is right."""
    lead, standard_error, _ = paired_lead(current_right, candidate_right, 0.0)
    lead, standard_error = share * lead, share * standard_error
    return lead, standard_error, takes_over(lead, standard_error, margin)


def stratified_lead(
    unlabelled: tuple[float, float], labelled: tuple[float, float], labelled_share: float, margin: float
) -> tuple[float, float, bool]:
    """The candidate's lead on the whole pool from its two parts, each ``(lead, standard error)``: the unlabelled
    texts (the probes' estimate, :func:`probe_lead`) weighted by ``1 - labelled_share`` and the labels in hand
    (cross-validation's) weighted by ``labelled_share``; the errors combined as independent. The probes alone
    would favour the model that chose the labels (what is left unlabelled is where it was surest; on TREC-6 the
    transformer led by 0.040 on validation and by 0.000 on the unlabelled pool), cross-validation alone the other
    one (bench/ladder_probes.py). The candidate takes over on a lead over ``margin`` and over :data:`CONFIDENCE`
    times the error: a switch must be worth its risk."""
    rest = 1.0 - labelled_share
    lead = rest * unlabelled[0] + labelled_share * labelled[0]
    error = float(np.hypot(rest * unlabelled[1], labelled_share * labelled[1]))
    return lead, error, takes_over(lead, error, margin, CONFIDENCE)


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
    standard_error = round(paired_lead(mine, theirs, margin)[1], 4)
    current_accuracy = round(float(mine.mean()) if len(mine) else 0.0, 4)
    candidate_accuracy = round(float(theirs.mean()) if len(theirs) else 0.0, 4)
    verdict = LadderVerdict(
        round=round_number,
        labels=len(labelled),
        current=current.name,
        candidate=candidate.name,
        folds=folds,
        current_accuracy=current_accuracy,
        candidate_accuracy=candidate_accuracy,
        standard_error=standard_error,
        margin=margin,
        switch=takes_over(candidate_accuracy - current_accuracy, standard_error, margin),
        seconds=round(time.perf_counter() - started, 3),
    )
    return verdict.model_copy(update={"reason": reason(verdict)})


def draw(
    current: Learner,
    candidate: Learner,
    labelled: Mapping[int, int],
    ignored: set[int],
    used: set[int],
    kinds: tuple[ModelKind, ModelKind],
    *,
    folds: int,
    size: int,
    seed: int,
    round_number: int,
) -> LadderProbes:
    """A comparison by probes up to its labels: both learners (fresh, of the ``kinds`` choosing the batches and
    compared with it) trained on ``labelled`` (``ignored``: texts a model must not be trained on nor query, as
    :meth:`Learner.fit`), their predicted classes on the unlabelled pool (not labelled, ignored nor ``used``: in
    other batches), ``size`` of the texts on which they disagree drawn at random (:func:`draw_probes`, seeded by
    ``seed`` and the labels' count) and both cross-validated on the labels in hand. ``candidate`` is left trained
    on ``labelled``."""
    started = time.perf_counter()
    for model in (current, candidate):
        model.fit(labelled, ignored, round_number)
    unlabelled = np.setdiff1d(
        np.arange(current.pool_size), np.fromiter(labelled.keys() | ignored | used, dtype=np.int64, count=-1)
    )
    mine, theirs = current.pool_proba().argmax(axis=1), candidate.pool_proba().argmax(axis=1)
    apart = disagreements(mine, theirs, unlabelled)
    mine_held_out = held_out_correct(current.fresh(), labelled, folds, round_number)
    theirs_held_out = held_out_correct(candidate.fresh(), labelled, folds, round_number)
    _, cv_error, _ = paired_lead(mine_held_out, theirs_held_out, 0.0)
    chosen = draw_probes(apart, size, np.random.default_rng([seed, len(labelled)]))
    return LadderProbes(
        round=round_number,
        labels=len(labelled),
        current=kinds[0].value,
        candidate=kinds[1].value,
        current_name=current.name,
        candidate_name=candidate.name,
        share=round(len(apart) / max(1, len(unlabelled)), 4),
        disagreements=len(apart),
        indices=chosen,
        current_predicted=[int(mine[i]) for i in chosen],
        candidate_predicted=[int(theirs[i]) for i in chosen],
        seconds=round(time.perf_counter() - started, 3),
        labelled_share=round(len(labelled) / max(1, len(labelled) + len(unlabelled)), 4),
        folds=folds,
        cv_current=round(float(mine_held_out.mean()), 4),
        cv_candidate=round(float(theirs_held_out.mean()), 4),
        cv_error=round(cv_error, 4),
    )


def probe_verdict(pending: LadderProbes, labels: Mapping[int, int], margin: float = 0.01) -> LadderVerdict:
    """The verdict of a comparison by probes once they are labelled (``labels``: pool index -> class index; a
    probe without a label, discarded or left open, does not vote): each model's accuracy on the probes, the
    candidate's lead on the whole pool (:func:`stratified_lead`: the probes for the unlabelled part, the
    cross-validation journaled with them for the labels in hand) and whether it takes over."""
    voted = [k for k, index in enumerate(pending.indices) if index in labels]
    gold = np.array([labels[pending.indices[k]] for k in voted], dtype=np.int64)
    mine = np.array(pending.current_predicted, dtype=np.int64)[voted] == gold
    theirs = np.array(pending.candidate_predicted, dtype=np.int64)[voted] == gold
    unlabelled = probe_lead(mine, theirs, pending.share, margin)[:2]
    lead, standard_error, switch = stratified_lead(
        unlabelled, (pending.cv_candidate - pending.cv_current, pending.cv_error), pending.labelled_share, margin
    )
    verdict = LadderVerdict(
        round=pending.round,
        labels=pending.labels,
        current=pending.current_name,
        candidate=pending.candidate_name,
        folds=0,
        current_accuracy=round(float(mine.mean()) if len(mine) else 0.0, 4),
        candidate_accuracy=round(float(theirs.mean()) if len(theirs) else 0.0, 4),
        standard_error=round(standard_error, 4),
        margin=margin,
        switch=switch,
        seconds=pending.seconds,
        method=LadderCompare.probes.value,
        probes=len(voted),
        share=pending.share,
        labelled_share=pending.labelled_share,
        cv_current=pending.cv_current,
        cv_candidate=pending.cv_candidate,
        estimated_lead=round(lead, 4),
    )
    return verdict.model_copy(update={"reason": reason(verdict)})


class LadderRunner:
    """The daemon's model ladder: after each round it asks whether a comparison is due or its probes are labelled
    (:meth:`consider`, under the daemon's lock) and runs the slow part on its own background thread, one at a
    time. AL_LADDER_COMPARE=cv: both models cross-validated on the labels in hand, the verdict at once, once a
    candidate took over the ladder is climbed. probes: both trained on the labels in hand, the probes drawn among
    their disagreements and journaled (``RunState.ladder_probes``; the daemon puts them in the next batches), the
    verdict once they are labelled; after a take-over the comparison goes on with AL_MODEL's model as the
    candidate (the way back)."""

    def __init__(self, daemon: Daemon, kind: ModelKind, build: Callable[[ModelKind], Learner]) -> None:
        self.daemon = daemon
        self.kind = kind  # the model that may take over
        self.build = build  # a learner of a model kind over the daemon's pool (its features built: slow)
        self.trainer = BackgroundTrainer(self._work)
        self._built: dict[ModelKind, Learner] = {}  # built once per kind; fresh copies share its features

    @property
    def by_probes(self) -> bool:
        return self.daemon.settings.ladder_compare is LadderCompare.probes

    def rungs(self, state: RunState) -> tuple[ModelKind, ModelKind]:
        """The model choosing the batches and the one compared with it."""
        base = self.daemon.settings.model
        return (base, self.kind) if state.model_in_use is None else (ModelKind(state.model_in_use), base)

    def consider(self, state: RunState) -> bool:
        """Submit a comparison, or its verdict, when one is due: the run goes on, the model in hand has its features
        and nothing of the ladder's is running; True when something was submitted."""
        daemon = self.daemon
        if state.stopped or state.stop_pending or self.trainer.busy or not daemon.learner.ready:
            return False
        labels = state.training_labels()
        pending = state.ladder_probes
        if pending is not None:
            if not set(pending.indices) <= labels.keys() | state.discarded() | state.open_indices():
                return False  # probes still with the annotators
            log.info(
                "model ladder: the %d probes of %s against %s are answered; deciding",
                len(pending.indices),
                pending.candidate,
                pending.current,
            )
        elif state.model_in_use is not None and not self.by_probes:
            return False  # cv: the ladder is climbed
        elif not due(len(labels), daemon.settings.ladder_after, [v.labels for v in state.ladder]):
            return False
        else:
            candidate = self.rungs(state)[1]
            log.info(
                "model ladder: comparing %s with %s on %d labels", daemon.learner.name, candidate.value, len(labels)
            )
        rounds = [m.round for m in state.rounds]
        self.trainer.submit(
            Job(
                round=max(rounds) if rounds else 0,
                labels={i: encode(label, daemon.labels) for i, label in labels.items()},
                ignored=state.not_queryable(),
                used=state.reserved_indices(),
            )
        )
        return True

    def learner(self, kind: ModelKind) -> Learner:
        """A fresh learner of ``kind`` (the model compared with the one in hand), its features built once."""
        if kind not in self._built:
            self._built[kind] = self.build(kind)
        return self._built[kind].fresh()

    def _work(self, job: Job) -> None:
        with self.daemon.lock:
            state = self.daemon.state
            pending = state.ladder_probes if state is not None else None
        if pending is not None:
            self._decide(job, pending)
        elif self.by_probes:
            self._draw(job)
        else:
            self._compare(job)

    def _compare(self, job: Job) -> None:
        daemon = self.daemon
        candidate = self.learner(self.kind)
        verdict = compare(
            daemon.learner.fresh(), candidate, job.labels, folds=daemon.settings.ladder_folds, round_number=job.round
        )
        if verdict.switch:  # trained on every label before it takes over: the next batch is its choice
            candidate.fit(job.labels, job.ignored, job.round)
        self._journal(verdict, self.kind, candidate if verdict.switch else None)

    def _draw(self, job: Job) -> None:
        """Draw the probes (:func:`draw`) and journal them; with no disagreement at all, the verdict at once (the
        current model stays)."""
        daemon = self.daemon
        with daemon.lock:
            current_kind, candidate_kind = self.rungs(daemon.state)
            current = daemon.learner.fresh()
        candidate = self.learner(candidate_kind)
        pending = draw(
            current,
            candidate,
            job.labels,
            job.ignored,
            job.used,
            (current_kind, candidate_kind),
            folds=daemon.settings.ladder_folds,
            size=daemon.settings.ladder_probes,
            seed=daemon.settings.seed,
            round_number=job.round,
        )
        chosen, apart = pending.indices, pending.disagreements
        if not chosen:  # they agree on every unlabelled text: the labels in hand alone decide
            verdict = probe_verdict(pending, {})
            self._journal(verdict, candidate_kind, candidate if verdict.switch else None)
            return
        reached("ladder-probes-drawn", probes=pending)
        with daemon.lock:
            state = daemon.state
            if self._stopping(state):
                return
            state.ladder_probes = pending
            daemon.store.save(state)
            reached("ladder-probes-journaled", probes=pending)
            log.info(
                "model ladder: %s and %s disagree on %d unlabelled texts (%.1f %%): %d of them, drawn at random, go "
                "into the next batches",
                current.name,
                candidate.name,
                apart,
                100 * pending.share,
                len(chosen),
            )
            daemon.publish()

    def _decide(self, job: Job, pending: LadderProbes) -> None:
        verdict = probe_verdict(pending, job.labels)
        kind = ModelKind(pending.candidate)
        candidate = None
        if verdict.switch:  # trained on every label (the probes' too) before it takes over
            candidate = self.learner(kind)
            candidate.fit(job.labels, job.ignored, job.round)
        self._journal(verdict, kind, candidate)

    def _stopping(self, state: RunState | None) -> bool:
        if self.daemon.shutdown_requested.is_set() or state is None or state.stopped or state.stop_pending:
            log.info("model ladder: comparison done, not used (the run is stopping)")
            return True
        return False

    def _journal(self, verdict: LadderVerdict, kind: ModelKind, candidate: Learner | None) -> None:
        """Journal the verdict (and the probes it used are done); on a switch ``candidate``, trained on every label,
        chooses the batches from now on (AL_MODEL's again: the way back)."""
        daemon = self.daemon
        reached("ladder-compared", verdict=verdict)  # a crash from here to the journal: the restart decides again
        with daemon.lock:
            state = daemon.state
            if self._stopping(state):
                return
            state.ladder.append(verdict)
            state.ladder_probes = None
            if candidate is not None:
                state.model_in_use = None if kind is daemon.settings.model else kind.value
                daemon.use_model(candidate)
            daemon.store.save(state)
            reached("ladder-journaled", verdict=verdict)  # a crash from here on: the restart builds the model in use
            log.info("model ladder: %s", verdict.reason)
            daemon.publish()
