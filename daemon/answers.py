"""What one answer is, in the daemon's words: a label (single-label tasks) or a set of labels (multi-label tasks).

An :data:`Answer` is a label name (``str``) or a tuple of label names, sorted and without repeats (the empty tuple:
"none of these", where the settings allow it, see ``AL_NONE_LABEL``). Everything that journals, votes on, trains on
or exports answers goes through this module, so the two kinds of task share one code path:

- :func:`canonical` turns what Argilla or a file holds into an Answer;
- :func:`consensus` is the label several annotators agree on: the majority label (ties: the one submitted first),
  or for label sets a **per-label majority** (a label is in when more than half of the votes have it; at exactly
  half, when the first vote has it), never empty unless an annotator answered "none of these";
- :func:`encode` / :func:`decode` map answers to the learner's class indices and back.

A leaf module: nothing of the daemon is imported here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

Answer = str | tuple[str, ...]  # a label, or a sorted set of labels
Encoded = int | tuple[int, ...]  # the same as class indices (sorted)


def canonical(value: str | Iterable[str]) -> Answer:
    """A label as it is, a collection of labels as a sorted tuple without repeats."""
    if isinstance(value, str):
        return value
    return tuple(sorted({str(label) for label in value}))


def is_set(answer: Answer) -> bool:
    return isinstance(answer, tuple)


def members(answer: Answer) -> tuple[str, ...]:
    """The labels of an answer: the one label, or the set's."""
    return (answer,) if isinstance(answer, str) else answer


def majority_of(labels: Sequence):
    """The most frequent value; a tie goes to the value submitted first."""
    counts = Counter(labels)
    best = max(counts.values())
    return next(label for label in labels if counts[label] == best)


def consensus(answers: Sequence[Answer]) -> Answer:
    """The answer of several annotators (``answers`` in submit order): the majority label, or for label sets
    the per-label majority (more than half of the votes; exactly half: the first vote decides). When that leaves
    no label although every annotator gave one, the first vote's labels that most annotators chose."""
    if not answers:
        raise ValueError("no answer to agree on")
    if not is_set(answers[0]):
        return majority_of(list(answers))
    counts = Counter(label for answer in answers for label in answer)
    first = set(answers[0])
    half = len(answers) / 2
    agreed = tuple(sorted(label for label, n in counts.items() if n > half or (n == half and label in first)))
    if agreed or any(len(answer) == 0 for answer in answers):
        return agreed
    best = max(counts[label] for label in first)
    return tuple(sorted(label for label in first if counts[label] == best))


def encode(answer: Answer, labels: Sequence[str]) -> Encoded:
    """An answer as class indices into ``labels`` (the run's label set)."""
    if isinstance(answer, str):
        return labels.index(answer)
    return tuple(sorted(labels.index(label) for label in answer))


def decode(value: Encoded, labels: Sequence[str]) -> Answer:
    """Class indices back to an answer."""
    if isinstance(value, tuple):
        return tuple(sorted(labels[int(i)] for i in value))
    return labels[int(value)]


def label_matrix(label_sets: Iterable[Iterable[int]], num_classes: int):
    """Sets of class indices as small-text's multi-label targets: a sparse 0/1 matrix (CSR), a row per text."""
    import numpy as np
    from scipy.sparse import csr_matrix

    rows = [sorted({int(c) for c in labels}) for labels in label_sets]
    indptr = np.cumsum([0] + [len(row) for row in rows])
    indices = np.array([c for row in rows for c in row], dtype=np.int64)
    return csr_matrix((np.ones(len(indices), dtype=np.int64), indices, indptr), shape=(len(rows), num_classes))


def shown(answer: Answer | None) -> str:
    """An answer for log lines and tables: the label, or the labels joined by ``+`` (``(none)`` for an empty set)."""
    if answer is None:
        return "-"
    if isinstance(answer, str):
        return answer
    return "+".join(answer) if answer else "(none)"
