"""The daemon: one round as explicit steps, driven by a polling job.

Steps of a round, each journaled in the state before the next begins:
  read labels of the complete batch → train → evaluate + stopping signals → query next batch → log it.
A restart resumes at the first step whose result is not in the state.
"""

from __future__ import annotations

import logging
import random
import re
import threading
import time
from datetime import UTC, datetime

import numpy as np

from daemon.batches import BatchProgress, apply_changes, assess, close, find_changes, refresh_votes
from daemon.config import Settings, StuckAction
from daemon.consensus import Pick, activelab_scores, crowdlab, lowest
from daemon.errors import ArgillaRefused, ArgillaUnavailable, DiskError, SchemaError, StateError
from daemon.files import remove_leftovers
from daemon.gateway import DatasetSpec, Gateway, OutRecord
from daemon.learner import Evaluation, Learner, QueryResult
from daemon.phases import Phase, Snapshot
from daemon.pool import TextTable
from daemon.report import Live, annotation_view, status_view
from daemon.state import Batch, RoundMetrics, RunState, StateStore, acquire_lock, check_same_run, now
from daemon.stopping import Inputs, StoppingSignals, project_kappa
from daemon.trainer import BackgroundTrainer, Job

log = logging.getLogger(__name__)


OWN_RECORD = re.compile(r"pool-\d+(-relabel-\d+)?")  # the ids the daemon gives its records


def record_id(pool_index: int) -> str:
    """Deterministic Argilla record id of a pool item: re-logging the same item is an idempotent upsert."""
    return f"pool-{pool_index}"


GUIDELINES = """# Active-learning batches

Records arrive in **batches** (metadata `batch_id`). Batch 0 is a random sample; each later batch is chosen by
a model trained on every label submitted so far, so the texts it is least sure about come first.

- Pick the one label that fits the text and **Submit**. The model's guess is pre-selected as a suggestion:
  check it, don't trust it.
- **Discard** a text that fits no label or cannot be read; it is never used for training.
- A record with metadata `relabel` 1, 2, ... asks for one more opinion on a text someone labelled before
  (the texts whose label is most in doubt). If you labelled that text yourself, leave it for a colleague:
  Argilla cannot hide it from you, and only your latest answer to a text counts.
- The next batch appears a few seconds after the last record of a batch is submitted or discarded.

Labels: {labels}
"""


LABELS_SHOWN_CHARS = 6_000  # Argilla refuses guidelines over 10,000 characters; the progress note needs < 1,000


def label_list(labels: list[str]) -> str:
    """The label set for the guidelines, cut short when it would make them longer than Argilla accepts."""
    text = ", ".join(labels)
    if len(text) <= LABELS_SHOWN_CHARS:
        return text
    shown = text[:LABELS_SHOWN_CHARS].rsplit(", ", 1)[0]
    return f"{shown}, ... ({len(labels)} labels in all)"


class Abandoned(Exception):
    """Raised at a step boundary when a stop was requested; the message says where."""


class Daemon:
    """One active-learning run against one Argilla dataset."""

    def __init__(
        self,
        settings: Settings,
        gateway: Gateway,
        learner: Learner,
        pool: TextTable,
        labels: list[str],
        y_test: np.ndarray | None = None,
    ) -> None:
        self.settings = settings
        self.gateway = gateway
        self.learner = learner
        self.pool = pool
        self.labels = labels
        self.y_test = y_test
        self.store = StateStore(settings.state_dir)
        self.signals = StoppingSignals(settings, len(labels))
        self.state: RunState | None = None
        self._lock = threading.RLock()
        self._snapshot = Snapshot()
        self._failures = 0
        self._next_try = 0.0
        self._read_seconds: float | None = None
        self._stuck_logged: int | None = None  # the stuck batch already warned about in the log
        self.last_contact: float | None = None  # monotonic time of the last successful Argilla exchange
        self.export: dict | None = None
        self.run_by: str | None = None  # who holds the state dir's lock (this process, once started)
        self._lock_file = None
        self.finished = threading.Event()
        self.stopping = threading.Event()  # a SIGTERM: leave the round at the next step boundary
        self.trainer = BackgroundTrainer(self._train_in_background)  # AL_TRAINING=ahead
        self._model_round: int | None = None  # the round whose labels the model in hand was trained on
        self._deferred = False  # the last round waits for the background training to finish
        self._held_out: tuple | None = None  # this round's votes and out-of-sample probabilities (ActiveLab)
        self._user_names: dict[str, str] = {}  # Argilla user id -> username, refreshed after each round
        self._annotation: tuple | None = None  # (journal revision, the status's annotation section)

    # ---- start-up ------------------------------------------------------------------------------------
    def spec(self) -> DatasetSpec:
        return DatasetSpec(
            name=self.settings.dataset,
            workspace=self.settings.workspace,
            labels=self.labels,
            min_submitted=self.settings.annotators_per_record,
            guidelines=GUIDELINES.format(labels=label_list(self.labels)),
        )

    def start(self) -> None:
        """Create or check the dataset, load or create the state, and make sure the current batch is logged."""
        self._lock_file, self.run_by = acquire_lock(self.settings.state_dir)
        self.store.remove_partial_writes()
        export = self.settings.export_path
        remove_leftovers(export.parent, export.name)  # a half-built export a crash left beside the target
        state = self.store.load()
        if state is not None:
            check_same_run(state, self.settings, self.pool.fingerprint, self.labels, self.store.path)
            self.gateway.dataset_id = state.dataset_id  # found by id: a rename in Argilla is followed
        self.gateway.ensure_dataset(self.spec())
        if state is None:
            present = self.gateway.max_batch_id()
            if present is not None:
                self._refuse_unknown_batches(present, -1)
            state = RunState(
                dataset=self.settings.dataset,
                workspace=self.settings.workspace,
                pool_fingerprint=self.pool.fingerprint,
                labels=self.labels,
                batch_size=self.settings.batch_size,
            )
        else:
            self._check_dataset_name(state)
            self._check_against_argilla(state)
        state.dataset_id = self.gateway.dataset_id
        if state.prepared is not None and not self.settings.ahead:
            log.info("AL_TRAINING is inline: the batch prepared ahead is dropped (it was never logged)")
            state.prepared = None
            self.store.save(state)
        self.state = state
        if not state.batches:
            indices = self.learner.initial_batch(self.settings.batch_size)
            self._journal_batch(
                0, 0, QueryResult(indices, [None] * len(indices), [None] * len(indices), [None] * len(indices))
            )
        if state.stopped:
            if state.exported_at is None:
                self._export()  # the last run stopped but did not get to export
            else:
                self.export = {"path": str(self.settings.export_path), "exported_at": state.exported_at}
            self._set(Phase.stopped, reason=state.stopped)
            return
        self._ensure_logged()
        self.last_contact = time.monotonic()
        self._set(Phase.waiting)
        done = [b for b in state.batches if b.complete]
        if self.settings.ahead and state.stop_pending is None and done and not state.current.complete:
            # rebuild the model at once, off the poll thread, so it is ready when the batch out completes
            self._submit_training(done[-1].batch_id, {}, restore=True)

    def _check_dataset_name(self, state: RunState) -> None:
        """AL_DATASET may name the run's dataset as it is called in Argilla now or as it was called before."""
        current = self.gateway.dataset_name
        if self.settings.dataset not in (state.dataset, current, *state.former_names):
            raise StateError(
                f"{self.store.path} belongs to another run (different dataset: state has dataset {state.dataset!r}, "
                f"called {current!r} in Argilla now; AL_DATASET is {self.settings.dataset!r}); use another "
                "AL_STATE_DIR or restore the original settings"
            )
        if state.renamed(current):
            log.warning(
                "the run's dataset %r is now called %r in Argilla; the state follows", state.former_names[-1], current
            )

    def _check_against_argilla(self, state: RunState) -> None:
        present = self.gateway.max_batch_id()
        last = state.current.batch_id if state.current else -1
        if present is not None and present > last:
            self._refuse_unknown_batches(present, last)

    def _refuse_unknown_batches(self, present: int, last: int) -> None:
        """The dataset holds a batch id the state does not know: say what was found and what to do. Records the
        daemon did not log (added by hand with a ``batch_id``) are told apart from an older or missing state."""
        ids = self.gateway.batch_record_ids(present)
        foreign = [rid for rid in ids if not OWN_RECORD.fullmatch(rid)]
        dataset = self.settings.dataset
        if foreign and len(foreign) == len(ids):
            shown = ", ".join(repr(rid) for rid in foreign[:3]) + (
                f" and {len(foreign) - 3} more" if len(foreign) > 3 else ""
            )
            raise StateError(
                f"dataset {dataset!r} holds {len(foreign)} record(s) with metadata batch_id={present} that al-daemon "
                f"did not log ({shown}; its records are called pool-<n>), while the run's state knows batches up to "
                f"{last}: records added by hand? Delete them or clear their batch_id metadata in Argilla (batch_id is "
                "the daemon's), then start again"
            )
        if last < 0:
            raise StateError(
                f"dataset {dataset!r} already holds batches up to {present} but {self.store.path} has no state for "
                "it; point AL_STATE_DIR at that run's state, rebuild the state from Argilla with `al-daemon recover`, "
                "or use a new AL_DATASET"
            )
        raise StateError(
            f"Argilla holds batch {present} but the state only knows batches up to {last}: the state is older "
            "than the dataset; restore the matching state dir, rebuild it from Argilla with `al-daemon recover`, "
            "or use a new AL_DATASET"
        )

    # ---- one poll ------------------------------------------------------------------------------------
    def tick(self) -> None:
        """The scheduler job: check the current batch and run a round when it is complete."""
        if self.finished.is_set() or self.stopping.is_set() or time.monotonic() < self._next_try:
            return
        if self._deferred and self.trainer.busy:
            return
        try:
            with self._lock:
                if self.store.unsaved:  # a save failed: nothing goes to Argilla until the journal is on disk
                    self.store.save(self.state)
                    log.info("state written again: the run resumes")
                self._tick()
        except Abandoned as exc:
            log.info("stop requested: left the round %s; the next start resumes from the journal", exc)
        except (ArgillaUnavailable, ArgillaRefused, SchemaError, DiskError) as exc:
            self._failures += 1
            delay = min(60.0, self.settings.poll_interval * 2 ** min(self._failures, 6)) * random.uniform(0.5, 1.0)
            self._next_try = time.monotonic() + delay
            reason = str(exc) if isinstance(exc, ArgillaUnavailable | DiskError) else self._diagnose(exc)
            kind = "disk" if isinstance(exc, DiskError) else "argilla"
            log.warning("%s problem (attempt %d, retry in %.1f s): %s", kind, self._failures, delay, reason)
            self._snapshot.last_error = reason
            self._set(Phase.degraded, reason=reason)
        else:
            self._failures = 0
            self.last_contact = time.monotonic()
            if self._snapshot.last_error is not None:
                self._snapshot.last_error = None
                self._publish()

    def flush_journal(self) -> None:
        """Write the journal if the state in memory is ahead of it (a save failed); DiskError if it still fails."""
        with self._lock:
            if self.store.unsaved and self.state is not None:
                self.store.save(self.state)

    def idle(self) -> bool:
        """True when no tick is running (a webhook may then start one at once)."""
        if self._lock.acquire(blocking=False):
            self._lock.release()
            return True
        return False

    def _diagnose(self, exc: Exception) -> str:
        """A refusal may mean people changed the dataset (deleted, renamed, its settings edited): look it up afresh
        and say what is wrong with it, rather than quoting the failed request."""
        self.gateway.forget_dataset()
        try:
            self.gateway.check_dataset(self.spec())
        except (ArgillaUnavailable, ArgillaRefused, SchemaError) as found:
            return str(found)
        return str(exc)

    def _checkpoint(self, where: str) -> None:
        """A step boundary: with a stop requested, leave here (everything before is journaled)."""
        if self.stopping.is_set():
            raise Abandoned(where)

    def _tick(self) -> None:
        state = self.state
        assert state is not None
        if state.stopped:
            if state.exported_at is None and self.export is None:  # the export failed for want of space: again
                self._export()
            self._set(Phase.stopped, reason=state.stopped)
            self.finished.set()
            return
        batch = state.current
        if not batch.logged:
            self._ensure_logged()
        mark = time.perf_counter()
        if not batch.complete:
            progress = assess(batch.pool_indices + batch.relabels, self.gateway.read_batch(batch.batch_id))
            self._set(Phase.waiting, progress=progress.as_dict())
            early = None if progress.complete else self._stuck(batch, progress)
            if not progress.complete and early is None:
                return
            self._close_batch(batch, progress, early)
        self._reconcile(batch.batch_id)
        self._read_seconds = time.perf_counter() - mark
        self._checkpoint(f"{batch.batch_id} before training (its labels are journaled)")
        self._round(batch)

    def _stuck(self, batch: Batch, progress: BatchProgress) -> StuckAction | None:
        """A batch with some answers but waiting longer than AL_STUCK_AFTER: warn, and close it early unless the
        action is ``wait``. A batch nobody has touched is not stuck (the annotators are away; a new batch from
        the same labels would not help). Relabel requests alone never hold a batch longer than AL_STUCK_AFTER."""
        since = batch.logged_at or batch.created_at
        waited = (datetime.now(UTC) - datetime.fromisoformat(since)).total_seconds()
        limit = self.settings.stuck_after
        if limit is not None and waited >= limit and set(progress.pending_indices) <= set(batch.relabels):
            # only relabel requests wait (the workspace may count members who never annotate): they lapse, whatever
            # AL_STUCK_ACTION says; an answer that comes later still joins the text's votes
            log.warning(
                "batch %d: %d relabel request(s) unanswered after %.0f min lapse; the batch closes without them",
                batch.batch_id,
                progress.pending,
                waited / 60,
            )
            return StuckAction.proceed
        if limit is None or waited < limit or progress.done == 0:
            return None
        action = self.settings.stuck_action
        warning = (
            f"batch {batch.batch_id} is stuck: {progress.pending} of {progress.total} records unanswered after "
            f"{waited / 60:.0f} min (AL_STUCK_ACTION={action.value})"
        )
        if self._stuck_logged != batch.batch_id:
            log.warning("%s", warning)
            self._stuck_logged = batch.batch_id
        self._snapshot.warning = warning
        self._publish()
        return None if action is StuckAction.wait else action

    def _close_batch(self, batch: Batch, progress: BatchProgress, early: StuckAction | None = None) -> None:
        close(batch, progress, early)
        self.store.save(self.state)
        self._snapshot.warning = None
        if early is not None:
            log.warning(
                "batch %d closed early (%s): %d labels in hand, %d record(s) %s",
                batch.batch_id,
                early.value,
                len(batch.labels),
                progress.pending,
                "left open: a late label joins the next round"
                if early is StuckAction.proceed
                else "move into the next batch",
            )
        if progress.missing:
            log.warning(
                "batch %d: %d record(s) are gone from Argilla; treated as discarded", batch.batch_id, progress.missing
            )
        answered = sum(1 for rid in batch.relabel_ids if rid in batch.votes)
        log.info(
            "batch %d complete: %d labelled, %d discarded%s",
            batch.batch_id,
            len(batch.labels),
            len(batch.discarded),
            f", {answered} of {len(batch.relabels)} relabel requests answered" if batch.relabels else "",
        )

    def _reconcile(self, round_number: int) -> None:
        """Before training: compare the journal with Argilla's database and take in what people changed since
        (edited, withdrawn, restored or deleted labels, late answers to stuck batches). One read per round."""
        self.gateway.check_dataset(self.spec())
        if self.state.renamed(self.gateway.dataset_name):  # renamed in Argilla: followed by id
            self.store.save(self.state)
        everything = self.gateway.read_all()
        views = {view.pool_index: view for view in everything if not view.relabel}
        changes = find_changes(self.state.batches, views, round_number)
        if changes:
            apply_changes(self.state.batches, changes, views)
            self.state.changes.extend(changes)
        revised = refresh_votes(self.state.batches, {view.record_id: view for view in everything})
        if not changes and not revised:
            return
        self.store.save(self.state)
        if revised:
            log.info("%d record(s) have other answers in Argilla than journaled: their votes are updated", revised)
        for change in changes:
            log.warning(
                "pool item %d (batch %d) %s in Argilla: %s -> %s; round %d trains %s",
                change.pool_index,
                change.batch_id,
                change.kind,
                change.old or "(not trained on)",
                change.new or "(not trained on)",
                round_number,
                "on the new label" if change.new else "without it",
            )

    # ---- a round -------------------------------------------------------------------------------------
    def _round(self, batch: Batch) -> None:
        """Inline: train, query, log. Ahead: log the next batch at once, then train in the background."""
        if not self.settings.ahead:
            self._round_inline(batch)
            return
        if self.state.stop_pending is not None:
            self._final_round(batch)
            return
        self._round_ahead(batch)

    def _final_round(self, batch: Batch) -> None:
        """The last round (a criterion fired, or the pool is used up) trains on the poll thread, once the
        background training has finished: nothing is left to hand out, and one model at a time is enough."""
        if self.trainer.busy:
            self._deferred = True  # the tick skips Argilla until the worker is done, then comes back here
            self._set(Phase.training, reason=f"batch {batch.batch_id} is complete: waiting for the training running")
            return
        self._deferred = False
        self._round_inline(batch)

    def _round_inline(self, batch: Batch) -> None:
        state = self.state
        round_number = batch.batch_id
        seconds = self._take_read_seconds()
        started = time.perf_counter()
        metrics = self._train_and_evaluate(round_number, seconds)
        reason = state.stop_pending or (self.signals.stop_reason(metrics.signals) if metrics else None)
        self._checkpoint(f"{round_number} after training, before the query")
        if reason is None:
            self._set(Phase.querying)
            mark = time.perf_counter()
            room = max(0, self.settings.batch_size - len(batch.moved))
            relabels: list[Pick] = []
            if self.settings.activelab and self._held_out is not None and self.learner.trained:
                result, relabels = self._activelab_query(room, round_number)
            else:
                result = self.learner.query(room, round_number, exclude=state.reserved_indices())
            seconds["query"] = time.perf_counter() - mark
            if not result.indices and not batch.moved and not relabels:
                reason = "pool exhausted: every pool item is labelled or discarded"
        if reason is not None:
            self._stop(round_number, reason)
            return

        self._journal_batch(batch.batch_id + 1, round_number + 1, self._with_carried(result, batch.moved), relabels)
        self._checkpoint(f"{round_number} after journaling batch {batch.batch_id + 1}, before logging it")
        self._log_next(seconds, started)
        self.store.save(state)
        self._log_round(round_number, metrics, started)
        self._after_round()

    def _round_ahead(self, batch: Batch) -> None:
        """Log the batch prepared while this one was labelled or, when none is ready (the model is still training),
        one queried at once with the model in hand (random while there is none); then hand the round's labels to
        the background trainer, which swaps its model in and prepares the following batch."""
        state = self.state
        round_number = batch.batch_id
        seconds = self._take_read_seconds()
        started = time.perf_counter()
        room = max(0, self.settings.batch_size - len(batch.moved))
        prepared = state.prepared
        if prepared is not None:
            result = QueryResult(
                indices=prepared.pool_indices[:room],
                scores=prepared.scores[:room],
                predicted=[None if s is None else self.labels.index(s) for s in prepared.suggestions[:room]],
                confidence=prepared.confidences[:room],
            )
            chosen_by = prepared.round
            state.prepared = None  # saved together with the batch it becomes
        else:
            self._set(Phase.querying)
            mark = time.perf_counter()
            chosen_by = round_number + 1 if self._model_round is None else self._model_round + 1
            result = self.learner.query(room, chosen_by - 1, exclude=state.reserved_indices())
            seconds["query"] = time.perf_counter() - mark
            if not result.indices and not batch.moved:
                self._final_round(batch)  # pool exhausted: the last model trains on every label, then the run stops
                return
            log.info(
                "batch %d: nothing prepared (%s); queried with the model in hand",
                batch.batch_id + 1,
                "no model yet" if self._model_round is None else f"round {self._model_round}'s",
            )
        self._journal_batch(batch.batch_id + 1, chosen_by, self._with_carried(result, batch.moved))
        self._checkpoint(f"{round_number} after journaling batch {batch.batch_id + 1}, before logging it")
        self._log_next(seconds, started)
        self.store.save(state)
        # annotators have their next batch: training no longer keeps them waiting
        if self._trains(round_number):
            self._submit_training(round_number, seconds)
            log.info(
                "round %d: batch %d logged (%.2f s from complete to logged); the model trains in the background",
                round_number,
                batch.batch_id + 1,
                seconds["handover"],
            )
        else:
            self._checkpoint(f"{round_number} after logging batch {batch.batch_id + 1}, before preparing")
            self._prepare(round_number)
            self._log_round(round_number, None, started)
            self._after_round()
        self._set(Phase.waiting)

    def _submit_training(self, round_number: int, seconds: dict[str, float], restore: bool = False) -> None:
        """Hand a round to the background trainer: its labels as they are journaled now."""
        state = self.state
        job = Job(
            round=round_number,
            labels={i: self.labels.index(label) for i, label in state.training_labels().items()},
            ignored=state.not_queryable(),
            used=state.used_indices(),
            seconds=dict(seconds),
            restore=restore,
        )
        self.trainer.submit(job)
        self._publish()

    def _train_in_background(self, job: Job) -> None:
        """The worker: train a fresh model, score it, choose the batch after the one out; then, under the lock,
        journal the round, swap the model in and keep the chosen batch as the prepared one."""
        learner = self.learner.fresh()
        seconds = job.seconds
        mark = time.perf_counter()
        trained = learner.fit(job.labels, job.ignored, job.round)
        seconds["train"] = time.perf_counter() - mark
        mark = time.perf_counter()
        scores = self._model_scores(learner, trained)
        seconds["evaluate"] = time.perf_counter() - mark
        mark = time.perf_counter()
        ahead = learner.query(self.settings.batch_size, job.round + 1, exclude=job.used)
        seconds["prepare"] = time.perf_counter() - mark
        with self._lock:
            state = self.state
            if self.stopping.is_set() or state.stopped or state.stop_pending:
                log.info("round %d trained, not used: the run is stopping", job.round)
                return
            self._adopt(job, learner, trained, scores, ahead)

    def _adopt(self, job: Job, learner: Learner, trained: bool, scores: tuple, ahead: QueryResult) -> None:
        state = self.state
        metrics = None
        if not (job.restore and any(m.round == job.round for m in state.rounds)):
            metrics = self._evaluate(job.round, len(job.labels), trained, learner, scores)
            metrics.seconds = job.seconds
            state.rounds = [m for m in state.rounds if m.round != job.round] + [metrics]
        self.learner, self._model_round = learner, job.round
        reason = self.signals.stop_reason(metrics.signals) if metrics else None
        if reason is not None:
            state.stop_pending = reason
            state.prepared = None
            self.trainer.drop_waiting()
            log.info(
                "round %d: %s; batch %d is in front of annotators: the run stops once it is answered",
                job.round,
                reason,
                state.current.batch_id,
            )
        elif not (job.restore and state.prepared is not None):  # a restart keeps the batch it journaled
            if set(ahead.indices) & state.used_indices():  # a batch was logged while this model trained
                ahead = learner.query(self.settings.batch_size, job.round + 1, exclude=state.used_indices())
            state.prepared = self._as_prepared(ahead, job.round)
        self.store.save(state)
        if metrics is not None:
            self._log_round(job.round, metrics, None)
            self._after_round()
        self._publish()

    def _as_prepared(self, result: QueryResult, round_number: int) -> Batch | None:
        """The batch after the current one, chosen by round ``round_number``'s model (None: nothing left to ask)."""
        return self._batch(self.state.current.batch_id + 1, round_number + 1, result) if result.indices else None

    def settle(self, timeout: float | None = None) -> bool:
        """Wait until no background training is running or waiting (tests, and a clean exit)."""
        return self.trainer.wait(timeout)

    def _prepare(self, round_number: int) -> None:
        """AL_TRAINING=ahead, a round without training (AL_RETRAIN_EVERY): choose the batch after the current one
        with the model in hand, journaled but not logged."""
        state = self.state
        self._set(Phase.querying)
        mark = time.perf_counter()
        result = self.learner.query(self.settings.batch_size, round_number + 1, exclude=state.reserved_indices())
        state.prepared = self._as_prepared(result, round_number)
        metrics = next((m for m in state.rounds if m.round == round_number), None)
        if metrics is not None:
            metrics.seconds["prepare"] = time.perf_counter() - mark
        self.store.save(state)
        self._set(Phase.waiting)

    def _trains(self, round_number: int) -> bool:
        """Whether this round trains a new model: every AL_RETRAIN_EVERY-th batch, and whenever there is no
        model yet or the run is about to stop (the final model sees every label)."""
        every = self.settings.retrain_every
        return not self.learner.trained or self.state.stop_pending is not None or (round_number + 1) % every == 0

    def _train_and_evaluate(self, round_number: int, seconds: dict[str, float]) -> RoundMetrics | None:
        """Train on every label in hand, then the round's test scores and stopping signals (None: no training
        this round, AL_RETRAIN_EVERY)."""
        if not self._trains(round_number):
            return None
        state = self.state
        self._set(Phase.training)
        mark = time.perf_counter()
        y = self._consensus(round_number)
        trained = self.learner.fit(y, state.not_queryable(), round_number)
        seconds["train"] = time.perf_counter() - mark
        mark = time.perf_counter()
        metrics = self._evaluate(round_number, len(y), trained)
        seconds["evaluate"] = time.perf_counter() - mark
        metrics.seconds = seconds
        state.rounds = [m for m in state.rounds if m.round != round_number] + [metrics]
        return metrics

    def _votes(self) -> dict[int, list[tuple[str, int]]]:
        """Every labelled text's votes as class indices (see RunState.votes)."""
        return {i: [(who, self.labels.index(label)) for who, label in given] for i, given in self.state.votes().items()}

    def _consensus(self, round_number: int) -> dict[int, int]:
        """The labels to train on. Majority vote; with crowdlab or ActiveLab also K-fold out-of-sample
        probabilities for every labelled text (kept for the query), and with crowdlab CROWDLAB's consensus."""
        state, settings = self.state, self.settings
        y = {i: self.labels.index(label) for i, label in state.training_labels().items()}
        self._held_out = None
        state.consensus = {"method": "majority", "round": round_number}
        if not (settings.activelab or settings.crowdlab) or len(set(y.values())) < 2:
            return y
        votes = self._votes()
        held_out = self.learner.out_of_sample_proba(y, settings.consensus_folds, round_number)
        self._held_out = (votes, held_out)
        if settings.crowdlab:
            found = crowdlab(votes, held_out)
            y = found.labels
            state.consensus = {
                "method": found.method,
                "round": round_number,
                "labels": {str(i): self.labels[c] for i, c in y.items()} if found.method == "crowdlab" else {},
                "annotator_quality": found.annotator_quality,
            }
        return y

    def _activelab_query(self, size: int, round_number: int) -> tuple[QueryResult, list[Pick]]:
        """ActiveLab: score the labelled texts (out-of-sample) and the unlabelled pool together; the ``size``
        lowest become the batch: new texts, or relabel requests for labelled ones while the labels asked for the
        text stay within AL_MAX_ANNOTATIONS."""
        state, settings = self.state, self.settings
        votes, held_out = self._held_out
        unlabelled = np.setdiff1d(self.learner.unlabelled_indices(), np.fromiter(state.reserved_indices(), np.int64))
        proba = self.learner.pool_proba()
        labelled_scores, pool_scores = activelab_scores(votes, held_out, proba[unlabelled])
        need = settings.annotators_per_record
        team = self.gateway.team()
        requested = state.relabel_requests()

        def may_ask_again(index: int, given: list) -> bool:
            # the cap counts the votes and the labels asked for (first record and relabel requests): a request
            # answered by someone who had labelled the text already only replaces their vote; and enough members
            # of the workspace must not have labelled the text yet, or the relabel record would wait forever
            asked = need * (2 + requested[index])
            fresh = team - {who for who, _ in given}
            return max(asked, len(given) + need) <= settings.max_annotations and len(fresh) >= need

        may = {i for i, given in votes.items() if may_ask_again(i, given)}
        picks = lowest(labelled_scores, unlabelled, pool_scores, size, may)
        new = [p for p in picks if not p.relabel]
        result = QueryResult(
            indices=[p.index for p in new],
            scores=[p.score for p in new],
            predicted=[int(proba[p.index].argmax()) for p in new],
            confidence=[float(proba[p.index].max()) for p in new],
        )
        return result, [p for p in picks if p.relabel]

    def _take_read_seconds(self) -> dict[str, float]:
        seconds: dict[str, float] = {}
        if self._read_seconds is not None:
            seconds["read"] = self._read_seconds
            self._read_seconds = None
        return seconds

    def _log_next(self, seconds: dict[str, float], started: float) -> None:
        """Log the journaled next batch; ``handover`` is the time from the batch seen complete to this point."""
        mark = time.perf_counter()
        self._ensure_logged()
        seconds["log"] = time.perf_counter() - mark
        seconds["handover"] = seconds.get("read", 0.0) + time.perf_counter() - started
        self.state.current.handover = round(seconds["handover"], 4)
        total = len(self.state.current.pool_indices)
        self._set(Phase.waiting, progress={"total": total, "done": 0, "pending": total})

    def _log_round(self, round_number: int, metrics: RoundMetrics | None, started: float | None) -> None:
        batch_id = self.state.current.batch_id
        if metrics is None:
            log.info(
                "round %d: no training (AL_RETRAIN_EVERY=%d); batch %d chosen by the model in hand, logged (%.2f s)",
                round_number,
                self.settings.retrain_every,
                batch_id,
                time.perf_counter() - started,
            )
            return
        if started is None:  # trained in the background, after the next batch was logged
            log.info(
                "round %d trained in the background (%.1f s): %d labels, accuracy %s, macro-F1 %s, kappa %s "
                "(projected to stop at round %s); %s",
                round_number,
                metrics.seconds.get("train", 0.0) + metrics.seconds.get("evaluate", 0.0),
                metrics.labels,
                _fmt(metrics.accuracy),
                _fmt(metrics.macro_f1),
                _fmt(metrics.kappa),
                metrics.projected_stop_round if metrics.projected_stop_round is not None else "-",
                f"the run stops once batch {batch_id} is answered"
                if self.state.stop_pending
                else f"the batch after {batch_id} is prepared"
                if self.state.prepared
                else "nothing left to prepare",
            )
            return
        log.info(
            "round %d: %d labels, accuracy %s, macro-F1 %s, kappa %s (projected to stop at round %s); "
            "batch %d logged (%.2f s from complete to logged)",
            round_number,
            metrics.labels,
            _fmt(metrics.accuracy),
            _fmt(metrics.macro_f1),
            _fmt(metrics.kappa),
            metrics.projected_stop_round if metrics.projected_stop_round is not None else "-",
            batch_id,
            metrics.seconds.get("handover", 0.0),
        )

    def _model_scores(self, learner: Learner, trained: bool) -> tuple[Evaluation | None, np.ndarray | None]:
        """The slow part of evaluating a model (its predictions for the test set and the pool), free of state."""
        evaluation = learner.evaluate(self.y_test) if self.y_test is not None else None
        return evaluation, learner.pool_proba() if trained else None

    def _evaluate(
        self,
        round_number: int,
        labels: int,
        trained: bool,
        learner: Learner | None = None,
        scores: tuple[Evaluation | None, np.ndarray | None] | None = None,
    ) -> RoundMetrics:
        """Test-set scores and every stopping signal of the model just trained (``learner``, the one in hand by
        default; ``scores`` from :meth:`_model_scores` when already computed)."""
        state = self.state
        learner = learner or self.learner
        evaluation, proba = scores if scores is not None else self._model_scores(learner, trained)
        metrics = RoundMetrics(round=round_number, labels=labels)
        if evaluation is not None:
            metrics.accuracy, metrics.macro_f1 = evaluation.accuracy, evaluation.macro_f1
        earlier = [m for m in sorted(state.rounds, key=lambda m: m.round) if m.round < round_number]
        predictions = previous = None
        if proba is not None:
            predictions = proba.argmax(axis=1)
            previous = self._previous_predictions(round_number)
            self.store.save_predictions(round_number, predictions)
        inputs = Inputs(
            round=round_number,
            rounds_trained=len(earlier) + 1,
            labels=labels,
            predictions=predictions,
            previous=previous,
            proba=proba,
            unlabelled=learner.unlabelled_indices(),
        )
        metrics.signals = self.signals.compute(inputs, [m.signals for m in earlier])
        kappas = [(m.round, m.kappa) for m in earlier] + [(round_number, metrics.kappa)]
        metrics.projected_stop_round = project_kappa(kappas, self.settings.kappa_window, self.settings.kappa_threshold)
        return metrics

    def _stop(self, round_number: int, reason: str) -> None:
        state = self.state
        state.stopped, state.stopped_at = reason, now()
        self.store.save(state)
        log.info("stopping after round %d: %s", round_number, reason)
        self._set(Phase.stopped, reason=reason)
        self._after_round()
        self._export()  # DiskError: the tick retries it (the stop itself is journaled)
        self._set(Phase.stopped, reason=reason)
        self.finished.set()

    def _after_round(self) -> None:
        """Cosmetic follow-ups that must never fail a round: annotator names, the plot file and the progress note
        in Argilla."""
        try:
            self._user_names = self.gateway.user_names()
            self._annotation = None  # shown by name from now on
        except (ArgillaUnavailable, ArgillaRefused) as exc:
            log.warning("annotator names unavailable (%s): status shows user ids", exc)
        self._publish()
        status = self.status()
        try:
            from daemon.plot import write_curve

            write_curve(status, self.store.dir / "learning-curve.png")
        except Exception as exc:  # noqa: BLE001 - a plot must not stop the daemon
            log.warning("could not write the learning-curve plot: %s", exc)
        if self.settings.publish_progress:
            try:
                self.gateway.set_guidelines(self.spec().guidelines + progress_note(status))
            except (ArgillaUnavailable, ArgillaRefused) as exc:
                log.warning("could not publish progress to the dataset's guidelines: %s", exc)

    def _export(self) -> None:
        from daemon.export import export_run

        try:
            user_names = self.gateway.user_names()
        except (ArgillaUnavailable, ArgillaRefused) as exc:
            log.warning("annotator names unavailable (%s): the export lists user ids", exc)
            user_names = {}
        try:
            path = export_run(
                self.settings, self.state, self.pool, self.labels, self.learner, self.status(), user_names
            )
        except DiskError as exc:
            if not exc.temporary:
                log.error("export failed: %s (retry with `al-daemon export`)", exc)
                self.export = {"path": None, "error": str(exc)}
                return
            raise  # space may come back: the tick retries with backoff
        except Exception as exc:  # noqa: BLE001 - the run is over either way; say why the export failed
            log.error("export failed: %s (retry with `al-daemon export`)", exc)
            self.export = {"path": None, "error": str(exc)}
            return
        self.state.exported_at = now()
        self.store.save(self.state)
        self.export = {"path": str(path), "exported_at": self.state.exported_at}

    def _previous_predictions(self, round_number: int) -> np.ndarray | None:
        for metrics in reversed(self.state.rounds):
            if metrics.round < round_number:
                found = self.store.load_predictions(metrics.round)
                if found is not None:
                    return found
        return None

    # ---- batches -------------------------------------------------------------------------------------
    def _with_carried(self, result: QueryResult, carried: list[int]) -> QueryResult:
        """The next batch: the records a stuck batch moved on (first, with the model's guess), then the query's."""
        if not carried:
            return result
        proba = self.learner.pool_proba() if self.learner.trained else None
        return QueryResult(
            indices=list(carried) + result.indices,
            scores=[None] * len(carried) + result.scores,
            predicted=[None if proba is None else int(proba[i].argmax()) for i in carried] + result.predicted,
            confidence=[None if proba is None else float(proba[i].max()) for i in carried] + result.confidence,
        )

    def _journal_batch(
        self, batch_id: int, round_number: int, result: QueryResult, relabels: list[Pick] | None = None
    ) -> None:
        """Write the chosen batch to the state before anything is sent to Argilla."""
        previous = self.state.current
        batch = self._batch(batch_id, round_number, result, carried=previous.moved if previous is not None else ())
        requested = self.state.relabel_requests()
        for pick in relabels or ():
            number = requested[pick.index] + 1
            batch.relabels.append(pick.index)
            batch.relabel_ids.append(f"{record_id(pick.index)}-relabel-{number}")
            batch.relabel_numbers.append(number)
            batch.relabel_scores.append(pick.score)
        if self.state.used_indices() & set(batch.fresh_indices()):
            raise StateError(f"batch {batch_id} would repeat pool items already asked for; refusing to log it")
        self.state.batches.append(batch)
        self.store.save(self.state)

    def _batch(self, batch_id: int, round_number: int, result: QueryResult, carried=()) -> Batch:
        """A query's result as a batch of records (``carried``: the ones a stuck batch moved on)."""
        moved = set(carried)
        return Batch(
            batch_id=batch_id,
            round=round_number,
            pool_indices=result.indices,
            record_ids=[record_id(i) for i in result.indices],
            scores=result.scores,
            suggestions=[None if p is None else self.labels[p] for p in result.predicted],
            confidences=result.confidence,
            carried=[i for i in result.indices if i in moved],
        )

    def _ensure_logged(self) -> None:
        batch = self.state.current
        if batch is None or batch.logged:
            return
        self._set(Phase.logging)
        agent = f"{self.learner.features.name}:round-{batch.round}"
        own = zip(batch.pool_indices, batch.record_ids, batch.scores, batch.suggestions, batch.confidences, strict=True)
        # relabel requests: a second opinion, so no suggestion, and nothing shows the earlier answers
        again = zip(batch.relabels, batch.relabel_ids, batch.relabel_scores, batch.relabel_numbers, strict=True)
        rows = [(*row, 0) for row in own] + [(i, rid, score, None, None, k) for i, rid, score, k in again]
        records = [
            OutRecord(
                record_id=rid,
                pool_index=index,
                batch_id=batch.batch_id,
                round=batch.round,
                text=self.pool.texts[index],
                al_score=score,
                suggestion=suggestion,
                suggestion_score=confidence,
                agent=None if suggestion is None else agent,
                relabel=number,
            )
            for index, rid, score, suggestion, confidence, number in rows
        ]
        self.gateway.log_records(records)
        batch.logged = True
        batch.logged_at = now()
        self.store.save(self.state)
        log.info("batch %d logged to Argilla: %d records", batch.batch_id, len(records))

    # ---- status --------------------------------------------------------------------------------------
    def _set(self, phase: Phase, reason: str | None = None, progress: dict | None = None) -> None:
        snapshot = self._snapshot
        snapshot.phase = phase
        snapshot.reason = reason
        if progress is not None:
            snapshot.progress = progress
        self._publish()

    def _publish(self) -> dict:
        """Rebuild the status document on the daemon's thread; readers only ever see a finished one."""
        snapshot = self._snapshot
        live = Live(
            phase=snapshot.phase.value,
            reason=snapshot.reason,
            last_error=snapshot.last_error,
            progress=snapshot.progress,
            model=self.learner.features.name,
            pool_size=len(self.pool),
            export=self.export,
            warnings=tuple(w for w in (snapshot.warning,) if w),
            annotation=self._annotation_view(),
        )
        self._published = status_view(self.settings, self.state, live, self.signals.thresholds())
        return self._published

    def _annotation_view(self) -> dict:
        """The status's annotation section, recomputed only when the journal is saved or the user names are
        refreshed: it walks every vote (~40 ms at 10,000 labelled texts), too much for every poll."""
        key = (self.store.saves, self.state is None)
        if self._annotation is None or self._annotation[0] != key:
            self._annotation = (key, annotation_view(self.settings, self.state, self._user_names))
        return self._annotation[1]

    def status(self) -> dict:
        """The latest status document (JSON-safe); the Argilla error counts are read live."""
        published = getattr(self, "_published", None) or self._publish()
        return published | {
            "training": published["training"] | {"background": self.trainer.describe()},
            "warnings": published["warnings"] + [w for w in (self.trainer.last_error,) if w],
            "argilla_errors": dict(getattr(self.gateway, "errors", {}) or {}),
            # unix time of the last successful exchange with Argilla (monotonic inside, wall clock here)
            "argilla_last_contact": None
            if self.last_contact is None
            else round(time.time() - (time.monotonic() - self.last_contact), 3),
            "run_by": self.run_by,
        }

    def ready(self) -> tuple[bool, str]:
        """Ready = state loaded, not degraded, and Argilla answered recently (pinged when it has been a while)."""
        if self.state is None:
            return False, "state not loaded yet"
        snapshot = self._snapshot
        if snapshot.phase is Phase.degraded:
            return False, f"degraded: {snapshot.reason}"
        horizon = max(30.0, 3 * self.settings.poll_interval)
        if self.last_contact is None or time.monotonic() - self.last_contact > horizon:
            try:
                self.gateway.ping()
            except (ArgillaUnavailable, ArgillaRefused) as exc:
                return False, f"Argilla not answering: {exc}"
            self.last_contact = time.monotonic()
        return True, snapshot.phase.value


def progress_note(status: dict) -> str:
    """The run's progress as a guidelines section annotators see in the Argilla UI."""
    accuracy, kappa = status["accuracy"], status["signals"]["kappa_average"]
    lines = [
        "",
        "## Progress (updated by the daemon after every round)",
        "",
        f"- Round {status['round']}: {status['labels']} labels in hand, {status['discarded']} discarded.",
    ]
    if status.get("run_by"):
        lines.append(f"- Run by al-daemon, {status['run_by']}: one daemon per dataset.")
    if accuracy["last"] is not None:
        lines.append(f"- Test accuracy {accuracy['last']:.3f} (best {accuracy['best']:.3f}).")
    if kappa["value"] is not None:
        lines.append(
            f"- Agreement with the previous model (kappa) {kappa['value']:.3f}; stops at {kappa['threshold']}."
        )
    if status["stop"]["reason"]:
        lines.append(f"- **Labelling is finished**: {status['stop']['reason']}.")
    elif status["stop"]["projected_round"] is not None:
        lines.append(f"- Projected to stop around round {status['stop']['projected_round']}.")
    return "\n".join(lines) + "\n"


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"
