"""Batch completeness: pure rules over what Argilla reports for a batch's records.

A record is done when Argilla marks it ``completed`` (it has ``min_submitted`` submitted responses) or
someone discarded it. A discard leaves the record ``pending`` in Argilla; we count it as done for the batch
and never train on it. A record that vanished from Argilla (deleted by a person) counts as discarded.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from daemon.config import StuckAction
from daemon.consensus import majority_of as consensus  # a text's label from its submitted answers
from daemon.gateway import RecordView
from daemon.state import Batch, Change, now


@dataclasses.dataclass(frozen=True)
class BatchProgress:
    """Where a batch stands, and the labels it yields once complete."""

    total: int
    completed: int
    discarded: int
    pending: int
    missing: int
    labels: dict[int, str]
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
    labels: dict[int, str] = {}
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
