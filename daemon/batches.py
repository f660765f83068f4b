"""Batch completeness: pure rules over what Argilla reports for a batch's records.

A record is done when Argilla marks it ``completed`` (it has ``min_submitted`` submitted responses) or
someone discarded it. A discard leaves the record ``pending`` in Argilla; we count it as done for the batch
and never train on it. A record that vanished from Argilla (deleted by a person) counts as discarded.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Sequence

from daemon.gateway import RecordView


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


def consensus(labels: Sequence[str]) -> str:
    """Majority label; ties go to the label submitted first."""
    counts = Counter(labels)
    best = max(counts.values())
    return next(label for label in labels if counts[label] == best)


def assess(pool_indices: Sequence[int], views: Sequence[RecordView]) -> BatchProgress:
    """Combine the batch's pool indices with Argilla's view of its records."""
    by_index = {view.pool_index: view for view in views}
    labels: dict[int, str] = {}
    annotators: dict[int, list[str]] = {}
    discarded: list[int] = []
    completed = pending = missing = 0
    for index in pool_indices:
        view = by_index.get(index)
        if view is None:
            missing += 1
            discarded.append(index)
        elif view.status == "completed" and view.submitted:
            completed += 1
            labels[index] = consensus([label for _, label in view.submitted])
            annotators[index] = [user for user, _ in view.submitted]
        elif view.discarded:
            discarded.append(index)
        else:
            pending += 1
    return BatchProgress(
        total=len(pool_indices),
        completed=completed,
        discarded=len(discarded) - missing,
        pending=pending,
        missing=missing,
        labels=labels,
        annotators=annotators,
        discarded_indices=discarded,
    )
