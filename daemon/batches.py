"""Batches as data: what a query chose, the batch journaled from it, the records logged for it, and the pure rules
over what Argilla reports for them.

A record is done when Argilla marks it ``completed`` (it has ``min_submitted`` submitted responses) or
someone discarded it. A discard leaves the record ``pending`` in Argilla; we count it as done for the batch
and never train on it. A record that vanished from Argilla (deleted by a person) counts as discarded.
"""

from __future__ import annotations

import dataclasses
import re
from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import numpy as np

from daemon.answers import Answer, consensus, decode, encode
from daemon.config import StuckAction
from daemon.consensus import Pick
from daemon.errors import StateError
from daemon.gateway import OutRecord, RecordView
from daemon.state import Batch, Change, now

OWN_RECORD = re.compile(r"pool-\d+(-relabel-\d+)?")  # the ids the daemon gives its records


def record_id(pool_index: int) -> str:
    """Deterministic Argilla record id of a pool item: re-logging the same item is an idempotent upsert."""
    return f"pool-{pool_index}"


def relabel_id(pool_index: int, number: int) -> str:
    """The record asking a ``number``-th time for a label of a text labelled before (ActiveLab)."""
    return f"{record_id(pool_index)}-relabel-{number}"


def predicted_sets(proba: np.ndarray, threshold: float, at_least_one: bool = True) -> np.ndarray:
    """Multi-label predictions as a 0/1 matrix: the labels above ``threshold``; with ``at_least_one`` (a text
    always has a label, as when "none of these" is not an answer) the most probable label where none is above."""
    proba = np.asarray(proba)
    chosen = (proba > threshold).astype(np.int64)
    if at_least_one and len(proba):
        empty = ~chosen.any(axis=1)
        chosen[np.flatnonzero(empty), proba[empty].argmax(axis=1)] = 1
    return chosen


@dataclasses.dataclass(frozen=True)
class QueryResult:
    """The next batch: pool indices, the strategy's score for each, and the model's suggestion."""

    indices: list[int]
    scores: list[float | None]
    predicted: list[int | tuple[int, ...] | None]  # a label index, or (multi-label) a tuple of them
    confidence: list[float | tuple[float, ...] | None]  # its probability, or each one's

    @classmethod
    def unscored(cls, indices: Sequence[int]) -> QueryResult:
        """Items chosen without a model (random, cold start): no score, no suggestion."""
        size = len(indices)
        return cls([int(i) for i in indices], [None] * size, [None] * size, [None] * size)

    @classmethod
    def guessed(cls, indices: Sequence[int], proba: np.ndarray | None, scores: Sequence | None = None) -> QueryResult:
        """Items with the model's guess (the most probable label of ``proba``'s row) and the strategy's scores."""
        indices = [int(i) for i in indices]
        return cls(
            indices=indices,
            scores=list(scores) if scores is not None else [None] * len(indices),
            predicted=[None if proba is None else int(proba[i].argmax()) for i in indices],
            confidence=[None if proba is None else float(proba[i].max()) for i in indices],
        )

    @classmethod
    def guessed_sets(
        cls,
        indices: Sequence[int],
        proba: np.ndarray,
        threshold: float,
        scores: Sequence | None = None,
        at_least_one: bool = True,
    ) -> QueryResult:
        """Multi-label: the model's guess is its label set (:func:`predicted_sets`), with each label's
        probability."""
        indices = [int(i) for i in indices]
        chosen = predicted_sets(proba[indices], threshold, at_least_one) if indices else []
        predicted = [tuple(int(c) for c in np.flatnonzero(row)) for row in chosen]
        return cls(
            indices=indices,
            scores=list(scores) if scores is not None else [None] * len(indices),
            predicted=predicted,
            confidence=[tuple(float(proba[i, c]) for c in guess) for i, guess in zip(indices, predicted, strict=True)],
        )

    @classmethod
    def of_batch(cls, batch: Batch, labels: list[str], size: int) -> QueryResult:
        """A batch journaled ahead (its first ``size`` items), as the query that chose it."""
        return cls(
            indices=batch.pool_indices[:size],
            scores=batch.scores[:size],
            predicted=[None if s is None else encode(s, labels) for s in batch.suggestions[:size]],
            confidence=batch.confidences[:size],
        )

    def take(self, positions: Sequence[int]) -> QueryResult:
        """The items at ``positions``, each with its score and suggestion."""
        return QueryResult(
            [self.indices[k] for k in positions],
            [self.scores[k] for k in positions],
            [self.predicted[k] for k in positions],
            [self.confidence[k] for k in positions],
        )

    def __add__(self, other: QueryResult) -> QueryResult:
        return QueryResult(
            self.indices + other.indices,
            self.scores + other.scores,
            self.predicted + other.predicted,
            self.confidence + other.confidence,
        )


def new_batch(
    batch_id: int,
    round_number: int,
    result: QueryResult,
    labels: list[str],
    carried: Sequence[int] = (),
    relabels: Sequence[Pick] = (),
    requested: Counter[int] | None = None,
) -> Batch:
    """The batch to journal for a query's ``result``. ``carried``: records a stuck batch moved on (they are in
    ``result`` already); ``relabels``: texts asked once more (ActiveLab), numbered after the ``requested`` before."""
    moved = set(carried)
    batch = Batch(
        batch_id=batch_id,
        round=round_number,
        pool_indices=result.indices,
        record_ids=[record_id(i) for i in result.indices],
        scores=result.scores,
        suggestions=[None if p is None else decode(p, labels) for p in result.predicted],
        confidences=result.confidence,
        carried=[i for i in result.indices if i in moved],
    )
    requested = requested or Counter()
    for pick in relabels:
        number = requested[pick.index] + 1
        batch.relabels.append(pick.index)
        batch.relabel_ids.append(relabel_id(pick.index, number))
        batch.relabel_numbers.append(number)
        batch.relabel_scores.append(pick.score)
    return batch


def records_to_log(batch: Batch, texts: Sequence[str], model: str) -> list[OutRecord]:
    """The batch's records as Argilla gets them: its own (with the model's guess as a suggestion by
    ``<model>:round-<n>``), then its relabel requests (a second opinion: no suggestion, nothing of the earlier
    answers)."""
    agent = f"{model}:round-{batch.round}"
    own = zip(batch.pool_indices, batch.record_ids, batch.scores, batch.suggestions, batch.confidences, strict=True)
    again = zip(batch.relabels, batch.relabel_ids, batch.relabel_scores, batch.relabel_numbers, strict=True)
    rows = [(*row, 0) for row in own] + [(i, rid, score, None, None, k) for i, rid, score, k in again]
    return [
        OutRecord(
            record_id=rid,
            pool_index=index,
            batch_id=batch.batch_id,
            round=batch.round,
            text=texts[index],
            al_score=score,
            suggestion=suggestion,
            suggestion_score=confidence,
            agent=None if suggestion is None else agent,
            relabel=number,
        )
        for index, rid, score, suggestion, confidence, number in rows
    ]


@dataclasses.dataclass(frozen=True)
class BatchProgress:
    """Where a batch stands, and the labels it yields once complete."""

    total: int
    completed: int
    discarded: int
    pending: int
    missing: int
    labels: dict[int, Answer]
    annotators: dict[int, list[str]]
    discarded_indices: list[int]
    pending_indices: list[int] = dataclasses.field(default_factory=list)
    votes: dict[int, list[tuple[str, str]]] = dataclasses.field(default_factory=dict)  # completed: (user, label)

    @property
    def complete(self) -> bool:
        return self.total > 0 and self.pending == 0

    @property
    def done(self) -> int:
        return self.completed + self.discarded + self.missing

    def as_dict(self) -> dict:
        return {
            "total": self.total,
            "done": self.done,
            "completed": self.completed,
            "discarded": self.discarded,
            "pending": self.pending,
            "missing": self.missing,
        }


def assess(pool_indices: Sequence[int], views: Sequence[RecordView]) -> BatchProgress:
    """Combine the batch's pool indices with Argilla's view of its records."""
    by_index = {view.pool_index: view for view in views}
    labels: dict[int, Answer] = {}
    annotators: dict[int, list[str]] = {}
    votes: dict[int, list[tuple[str, str]]] = {}
    discarded: list[int] = []
    completed = missing = 0
    pending: list[int] = []
    for index in pool_indices:
        view = by_index.get(index)
        if view is None:
            missing += 1
            discarded.append(index)
        elif view.status == "completed" and view.submitted:
            completed += 1
            labels[index] = consensus([label for _, label in view.submitted])
            annotators[index] = [user for user, _ in view.submitted]
            votes[index] = list(view.submitted)
        elif view.discarded:
            discarded.append(index)
        else:
            pending.append(index)
    return BatchProgress(
        total=len(pool_indices),
        completed=completed,
        discarded=len(discarded) - missing,
        pending=len(pending),
        missing=missing,
        labels=labels,
        annotators=annotators,
        discarded_indices=discarded,
        pending_indices=pending,
        votes=votes,
    )


def close(batch: Batch, progress: BatchProgress, early: StuckAction | None = None) -> None:
    """Close ``batch`` with what Argilla holds (``progress``): its labels, voters, discards and votes become final
    for the batch. ``early``: a stuck batch closed before every record was answered (``proceed`` leaves the
    unanswered records open for a late label, ``requeue`` moves them into the next batch). A relabel request
    adds votes to a text labelled before: its discard or absence only means no extra vote."""
    asked_again = set(batch.relabels)
    batch.labels = {i: label for i, label in progress.labels.items() if i not in asked_again}
    batch.annotators = {i: users for i, users in progress.annotators.items() if i not in asked_again}
    batch.discarded = [i for i in progress.discarded_indices if i not in asked_again]
    by_index = {index: rid for rid, index in batch.record_index().items()}
    batch.votes = {by_index[i]: [[who, label] for who, label in given] for i, given in progress.votes.items()}
    pending = [i for i in progress.pending_indices if i not in asked_again]  # an open relabel request lapses
    if early is StuckAction.proceed:
        batch.open = pending
    elif early is StuckAction.requeue:
        batch.moved = pending
    batch.complete = True
    batch.completed_at = now()


def find_changes(batches: Sequence[Batch], views: dict[int, RecordView], round_number: int) -> list[Change]:
    """What people changed in Argilla since closed batches were journaled, and late answers to stuck ones.

    ``views`` is every record Argilla holds, by pool index (from its database, not the search index). Rules:
    a label edited after training is *relabelled*; a trained record now only discarded is *withdrawn*; a
    discarded one that is now completed is *restored*; a deleted one is *deleted* (no longer trained on); a
    record left open by a stuck batch that is now completed or discarded is a *late-label* / *late-discard*.
    A record that went back to pending (a submitted answer turned draft) keeps its label.
    """
    changes: list[Change] = []

    def change(batch: Batch, index: int, kind: str, old: str | None, new: str | None) -> None:
        changes.append(
            Change(round=round_number, batch_id=batch.batch_id, pool_index=index, kind=kind, old=old, new=new)
        )

    for batch in batches:
        if not batch.complete:
            continue
        for index, old in sorted(batch.labels.items()):
            view = views.get(index)
            if view is None:
                change(batch, index, "deleted", old, None)
            elif view.status == "completed" and view.submitted:
                new = consensus([label for _, label in view.submitted])
                if new != old:
                    change(batch, index, "relabelled", old, new)
            elif view.discarded:
                change(batch, index, "withdrawn", old, None)
        for index in sorted(batch.discarded):
            view = views.get(index)
            if view is not None and view.status == "completed" and view.submitted:
                change(batch, index, "restored", None, consensus([label for _, label in view.submitted]))
        for index in sorted(batch.open):
            view = views.get(index)
            if view is None:
                change(batch, index, "deleted", None, None)
            elif view.status == "completed" and view.submitted:
                change(batch, index, "late-label", None, consensus([label for _, label in view.submitted]))
            elif view.discarded:
                change(batch, index, "late-discard", None, None)
    return changes


def apply_changes(batches: Sequence[Batch], changes: Sequence[Change], views: dict[int, RecordView]) -> None:
    """Apply :func:`find_changes`' result to the journaled batches (the caller saves the state)."""
    by_id = {batch.batch_id: batch for batch in batches}
    for item in changes:
        batch, index = by_id[item.batch_id], item.pool_index
        if index in batch.open:
            batch.open.remove(index)
        if item.new is None:  # no longer trained on: deleted, withdrawn or discarded late
            batch.labels.pop(index, None)
            batch.annotators.pop(index, None)
            if index not in batch.discarded:
                batch.discarded.append(index)
        else:
            if index in batch.discarded:
                batch.discarded.remove(index)
            batch.labels[index] = item.new
            batch.annotators[index] = [user for user, _ in views[index].submitted]


def refresh_votes(batches: Sequence[Batch], views: dict[str, RecordView]) -> int:
    """Bring the journaled votes of closed batches up to what Argilla holds (``views``: every record by record
    id): an answer edited, added or withdrawn later, a relabel request answered after its batch closed. A text's
    own record keeps its votes while it is not completed (its label stays, as :func:`find_changes` rules); a
    relabel record discarded or deleted gives no vote. Returns how many records' votes changed."""
    changed = 0
    for batch in batches:
        if not batch.complete:
            continue
        own = dict(zip(batch.record_ids, batch.pool_indices, strict=True))
        for rid, index in batch.record_index().items():
            view = views.get(rid)
            if view is not None and view.status == "completed" and view.submitted:
                new = [[who, label] for who, label in view.submitted]
            elif rid in own:
                continue
            elif view is None or view.discarded:
                new = None
            else:
                continue
            if rid in own and index not in batch.labels:
                new = None  # no longer trained on (withdrawn, deleted)
            if new != batch.votes.get(rid):
                if new is None:
                    batch.votes.pop(rid, None)
                else:
                    batch.votes[rid] = new
                changed += 1
    return changed


@dataclasses.dataclass(frozen=True)
class Overdue:
    """A batch waiting longer than AL_STUCK_AFTER: close it early with ``action`` (None: keep waiting) and say
    ``message``; ``lapse``: only relabel requests were waiting, and they lapse."""

    action: StuckAction | None
    message: str
    lapse: bool = False


def overdue(batch: Batch, progress: BatchProgress, limit: float | None, action: StuckAction, at) -> Overdue | None:
    """Whether ``batch`` is stuck at time ``at``. A batch with some answers but waiting longer than ``limit`` seconds
    is, and closes early unless ``action`` is ``wait``. A batch nobody has touched is not (the annotators are away;
    a new batch from the same labels would not help). Relabel requests alone never hold a batch longer than
    ``limit``: the workspace may count members who never annotate, so they lapse whatever ``action`` says (an
    answer that comes later still joins the text's votes)."""
    waited = (at - datetime.fromisoformat(batch.logged_at or batch.created_at)).total_seconds()
    if limit is not None and waited >= limit and set(progress.pending_indices) <= set(batch.relabels):
        return Overdue(
            StuckAction.proceed,
            f"batch {batch.batch_id}: {progress.pending} relabel request(s) unanswered after {waited / 60:.0f} min "
            "lapse; the batch closes without them",
            lapse=True,
        )
    if limit is None or waited < limit or progress.done == 0:
        return None
    return Overdue(
        None if action is StuckAction.wait else action,
        f"batch {batch.batch_id} is stuck: {progress.pending} of {progress.total} records unanswered after "
        f"{waited / 60:.0f} min (AL_STUCK_ACTION={action.value})",
    )


def unknown_batches(dataset: str, present: int, last: int, ids: list[str], path: Path) -> StateError:
    """The refusal when the dataset holds batch ``present`` but the state knows batches up to ``last`` (-1: none).
    Records the daemon did not log (added by hand with a ``batch_id``; ``ids`` are batch ``present``'s) are told
    apart from an older or missing state."""
    foreign = [rid for rid in ids if not OWN_RECORD.fullmatch(rid)]
    if foreign and len(foreign) == len(ids):
        shown = ", ".join(repr(rid) for rid in foreign[:3]) + (
            f" and {len(foreign) - 3} more" if len(foreign) > 3 else ""
        )
        return StateError(
            f"dataset {dataset!r} holds {len(foreign)} record(s) with metadata batch_id={present} that al-daemon "
            f"did not log ({shown}; its records are called pool-<n>), while the run's state knows batches up to "
            f"{last}: records added by hand? Delete them or clear their batch_id metadata in Argilla (batch_id is "
            "the daemon's), then start again"
        )
    if last < 0:
        return StateError(
            f"dataset {dataset!r} already holds batches up to {present} but {path} has no state for "
            "it; point AL_STATE_DIR at that run's state, rebuild the state from Argilla with `al-daemon recover`, "
            "or use a new AL_DATASET"
        )
    return StateError(
        f"Argilla holds batch {present} but the state only knows batches up to {last}: the state is older "
        "than the dataset; restore the matching state dir, rebuild it from Argilla with `al-daemon recover`, "
        "or use a new AL_DATASET"
    )
