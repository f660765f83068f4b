"""Warm starts: the labels a run begins with, from a file (``AL_SEED_FILE``) and from an existing dataset's
answers that the daemon did not ask for.

Pure functions over texts and answers; the daemon journals the :class:`~daemon.state.Seed` they build once, when
the run begins (before anything is logged), and trains on it before choosing batch 0. A seed text found in the pool
(same text, as read: stripped) keeps its pool index, so it is never logged or queried; a text the pool lacks becomes
a training-only row appended after the pool (:meth:`daemon.pool.TextTable.with_training_only`).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence

from daemon.answers import consensus, shown
from daemon.gateway import Foreign
from daemon.pool import TextTable
from daemon.state import ADOPTED, SEED_FILE, Seed

log = logging.getLogger(__name__)


def file_fingerprint(table: TextTable) -> str:
    """The seed file's texts and labels: a run refuses a seed file changed since it began."""
    digest = hashlib.sha256()
    for text, label in zip(table.texts, table.gold or [], strict=True):
        digest.update(json.dumps([text, label]).encode())
    return digest.hexdigest()


def build_seed(
    pool: TextTable, table: TextTable | None, foreign: Sequence[Foreign] = (), asked: set[int] = frozenset()
) -> Seed:
    """The warm start of a new run: every row of the seed file ``table`` (its gold labels, checked when the file
    was read) and every ``foreign`` record with submitted answers (their consensus). The first source of a text
    wins (the file, then the records in their order); ``pool`` is the pool without training-only rows. ``asked``:
    pool items the run's batches hold already (``al-daemon recover``): their labels are the batches'."""
    where = {text: index for index, text in enumerate(pool.texts[: pool.queryable])}
    seed = Seed()
    extra: dict[str, int] = {}

    def index_of(text: str) -> int:
        if text in where:
            return where[text]
        if text not in extra:
            extra[text] = pool.queryable + len(extra)
            seed.extra_texts.append(text)
        return extra[text]

    if table is not None:
        seed.file, seed.file_fingerprint = str(table.source), file_fingerprint(table)
        for text, label in zip(table.texts, table.gold or [], strict=True):
            index = index_of(text)
            if index not in seed.labels and index not in asked:
                seed.labels[index], seed.sources[index] = label, SEED_FILE
    for record in foreign:
        if not record.submitted or not record.text or not record.text.strip():
            continue
        index = index_of(record.text.strip())
        seed.adopted_records.append(record.record_id)
        if index in seed.labels or index in asked:
            continue
        seed.labels[index] = consensus([label for _, label in record.submitted])
        seed.sources[index] = ADOPTED
        seed.votes[index] = [[who, label] for who, label in record.submitted]
    return seed


def describe(seed: Seed, pool_size: int, foreign: Sequence[Foreign] = ()) -> list[str]:
    """One log line per kind of seed label (and per kind of record left alone)."""
    lines = []
    for source, what in ((SEED_FILE, f"from {seed.file}"), (ADOPTED, "adopted from the dataset's answered records")):
        chosen = [i for i, s in seed.sources.items() if s == source]
        if chosen:
            outside = sum(1 for i in chosen if i >= pool_size)
            lines.append(
                f"warm start: {len(chosen)} seed labels {what} ({len(chosen) - outside} texts of the pool, never "
                f"logged again; {outside} training-only)"
            )
    unanswered = [r for r in foreign if not r.submitted]
    if unanswered:
        lines.append(
            f"warm start: {len(unanswered)} record(s) of the dataset without submitted answers left alone (they stay "
            "in annotators' queues; answers given to them later are not used): label or delete them in Argilla"
        )
    if seed.labels:
        shown_labels = sorted({shown(label) for label in seed.labels.values()})[:10]
        lines.append(f"warm start: seed labels cover {shown_labels}")
    return lines
