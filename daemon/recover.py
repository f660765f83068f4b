"""`al-daemon recover`: rebuild a run's journal from its dataset in Argilla, when ``state.json`` is lost or cut short.

Everything annotators did is in Argilla: every record the daemon logged carries its ``batch_id``, ``pool_index``,
``round`` (and ``relabel``) metadata, and every answer is a response. So the batches, their labels, discards and
votes can be rebuilt exactly; the last batch is left open, and the daemon closes it as usual once it is complete.
What only the journal held is lost: the metrics of past rounds (curve, stopping-signal history), the label
changes made in Argilla after training (their result is kept: the labels are read as they are now), and which
records of a stuck batch were moved on. The next round retrains on every label, as after any restart.

The rebuilding is a function of the records and the pool (:func:`rebuild`); the command around it keeps the old
file beside the new one and refuses a readable state unless told to replace it.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence

from daemon.batches import assess, close
from daemon.config import Settings, StuckAction
from daemon.errors import StateError
from daemon.gateway import RecordView
from daemon.pool import TextTable
from daemon.state import Batch, RunState, now

log = logging.getLogger(__name__)


def rebuild(
    settings: Settings, pool: TextTable, labels: list[str], views: Sequence[RecordView], dataset_id: str
) -> RunState:
    """The journal of the run whose dataset holds ``views`` (every record, with responses): its batches, labels,
    discards and votes; no round metrics. Refuses records that do not belong to this pool."""
    own = [view for view in views if view.batch_id is not None]
    if not own:
        raise StateError(f"dataset {settings.dataset!r} holds no batch of al-daemon: nothing to recover")
    for view in own:
        if not 0 <= view.pool_index < len(pool) or (view.text is not None and view.text != pool.texts[view.pool_index]):
            raise StateError(
                f"record {view.record_id} of dataset {settings.dataset!r} does not match row {view.pool_index} of "
                f"{settings.pool_file}: recover needs the pool file (and AL_TEXT_COLUMN, AL_ID_COLUMN) of the run"
            )
    by_batch: dict[int, list[RecordView]] = defaultdict(list)
    for view in own:
        by_batch[view.batch_id].append(view)
    ids = sorted(by_batch)
    if ids != list(range(len(ids))):
        missing = sorted(set(range(ids[-1] + 1)) - set(ids))
        raise StateError(
            f"dataset {settings.dataset!r} has no record of batch(es) {missing[:10]}: its batches are not the "
            "daemon's (batch ids run 0, 1, 2, ...) or were deleted; recover cannot rebuild the run"
        )
    state = RunState(
        dataset=settings.dataset,
        workspace=settings.workspace,
        pool_fingerprint=pool.fingerprint,
        labels=labels,
        batch_size=settings.batch_size,
        dataset_id=dataset_id,
    )
    seen: set[int] = set()
    for batch_id in ids:
        records = sorted(by_batch[batch_id], key=lambda v: (v.relabel, v.pool_index))
        first = [v for v in records if not v.relabel]
        again = [v for v in records if v.relabel]
        repeated = seen & {v.pool_index for v in first}
        if repeated:
            raise StateError(f"pool items {sorted(repeated)[:5]} have records in two batches: not a run of al-daemon")
        seen |= {v.pool_index for v in first}
        size = len(first)
        batch = Batch(
            batch_id=batch_id,
            round=next((v.round for v in records if v.round is not None), batch_id),
            pool_indices=[v.pool_index for v in first],
            record_ids=[v.record_id for v in first],
            scores=[None] * size,
            suggestions=[None] * size,
            confidences=[None] * size,
            relabels=[v.pool_index for v in again],
            relabel_ids=[v.record_id for v in again],
            relabel_numbers=[v.relabel for v in again],
            relabel_scores=[None] * len(again),
            logged=True,
            logged_at=now(),
        )
        if batch_id != ids[-1]:  # the daemon went past it, so it was closed (early, if records are still pending)
            progress = assess(batch.pool_indices + batch.relabels, records)
            close(batch, progress, None if progress.complete else StuckAction.proceed)
        state.batches.append(batch)
    return state


def summary(state: RunState) -> str:
    closed = [b for b in state.batches if b.complete]
    return (
        f"{len(state.batches)} batches ({len(closed)} closed, batch {state.current.batch_id} open), "
        f"{len(state.training_labels())} labels, {len(state.discarded())} discarded, "
        f"{sum(len(b.open) for b in closed)} left open"
    )
