"""The daemon: one round as explicit steps, driven by a polling job.

Steps of a round, each journaled in the state before the next begins:
  read labels of the complete batch → train → evaluate + stopping signals → query next batch → log it.
A restart resumes at the first step whose result is not in the state.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import numpy as np

from daemon.answers import encode
from daemon.batches import (
    BatchProgress,
    QueryResult,
    apply_changes,
    assess,
    close,
    find_changes,
    new_batch,
    overdue,
    records_to_log,
    refresh_votes,
    unknown_batches,
)
from daemon.board import StatusBoard
from daemon.config import FINE_TUNED, ModelKind, Settings, StuckAction, Training
from daemon.consensus import Pick
from daemon.errors import ArgillaError, ArgillaUnavailable, DiskError, StateError
from daemon.export import export_or_explain, export_run
from daemon.features import FeatureBuilder
from daemon.files import remove_leftovers
from daemon.gateway import DatasetSpec, Gateway
from daemon.ladder import LadderRunner
from daemon.learner import Learner, PendingLearner
from daemon.phases import Phase
from daemon.plot import write_curve
from daemon.policy import ActiveLabPolicy, ConsensusPolicy
from daemon.pool import TextTable
from daemon.report import change_line, closed_lines, guidelines, guidelines_note, round_summary
from daemon.rounds import AheadRounds, strategy_for
from daemon.scoring import Scorer
from daemon.seeds import build_seed, describe
from daemon.state import Batch, RoundMetrics, RunState, Seed, StateStore, acquire_lock, check_same_run, now
from daemon.steps import reached
from daemon.stopping import StoppingSignals

log = logging.getLogger(__name__)


class Abandoned(Exception):
    """Raised at a step boundary when a stop was requested; the message says where."""


class Daemon:
    """One active-learning run against one Argilla dataset."""

    def __init__(
        self,
        settings: Settings,
        gateway: Gateway,
        learner: Learner | PendingLearner,
        pool: TextTable,
        labels: list[str],
        y_test: np.ndarray | None = None,
        multi_label: bool = False,
        seed_table: TextTable | None = None,
    ) -> None:
        self.settings = settings
        self.multi_label = multi_label  # answers are label sets (daemon.answers)
        self.seed_table = seed_table  # AL_SEED_FILE, read when a run begins (a warm start)
        # builds a learner over a pool (the Service's features): a warm start needs a model before batch 0
        self.build_learner: Callable[[TextTable], Learner] | None = None
        self.gateway = gateway
        self.learner = learner
        self.pool = pool
        self.labels = labels
        self.y_test = y_test
        self.store = StateStore(settings.state_dir)
        self.signals = StoppingSignals(settings, 2 if multi_label else len(labels))  # multi: yes/no per label
        self.scorer = Scorer(settings, self.signals, self.store, y_test)
        self.state: RunState | None = None
        self.lock = threading.RLock()  # one step at a time: the poll's and the background trainer's
        self.board = StatusBoard(self)  # the status document, rebuilt on this thread
        self._failures = 0
        self._next_try = 0.0
        self._read_seconds: float | None = None
        self._stuck_logged: int | None = None  # the stuck batch already warned about in the log
        self.last_contact: float | None = None  # monotonic time of the last successful Argilla exchange
        self.export: dict | None = None
        self.run_by: str | None = None  # who holds the state dir's lock (this process, once started)
        self._lock_file = None
        self.finished = threading.Event()
        self.shutdown_requested = threading.Event()  # SIGTERM: leave the round at the next step boundary
        self.consensus = ConsensusPolicy(settings, labels)
        self.activelab = ActiveLabPolicy(settings)
        self.rounds = strategy_for(self)  # inline or ahead, chosen once (AL_TRAINING)
        self.builder: FeatureBuilder | None = None  # builds the features off the start-up path (daemon/features.py)
        self.ladder: LadderRunner | None = None  # AL_LADDER: the model that may take over (set up by the service)
        self.wake_in: Callable[[float], None] = lambda seconds: None  # poll again within seconds (the service's)

    # ---- start-up ------------------------------------------------------------------------------------
    def spec(self) -> DatasetSpec:
        text = guidelines(self.labels, self.multi_label, self.settings.none_label)
        return DatasetSpec.of_run(self.settings, self.labels, self.multi_label, guidelines=text)

    def start(self) -> None:
        """Create or check the dataset, load or create the state, and make sure the current batch is logged."""
        self._lock_file, self.run_by = acquire_lock(self.settings.state_dir)
        self.store.remove_partial_writes()
        export = self.settings.export_path
        remove_leftovers(export.parent, export.name)  # a half-built export a crash left beside the target
        state = self.store.load()
        if state is not None:
            check_same_run(state, self.settings, self.pool.fingerprint, self.labels, self.store.path, self.multi_label)
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
                multi_label=self.multi_label,
                batch_size=self.settings.batch_size,
                seed=self._warm_start(),
            )
            if state.seed is not None:  # journaled before anything is trained or logged
                state.dataset_id = self.gateway.dataset_id
                self.store.save(state)
                reached("seed-journaled", labels=len(state.seed.labels))
        else:
            self._check_dataset_name(state)
            self._check_against_argilla(state)
        state.dataset_id = self.gateway.dataset_id
        self.state = state
        if state.seed is not None:
            self.pool = self.pool.with_training_only(state.seed.extra_texts)
        if not state.batches:
            self.journal_batch(0, 0, self._first_batch(state))
        if state.stopped:
            if state.exported_at is None:
                self._export()  # the last run stopped but did not get to export
            else:
                self.export = {"path": str(self.settings.export_path), "exported_at": state.exported_at}
            self.set_phase(Phase.stopped, reason=state.stopped)
            return
        self._ensure_logged()
        self.last_contact = time.monotonic()
        self.set_phase(Phase.waiting)
        self._trains_ahead_if_fine_tuned()
        self.rounds.resume(state)
        self.consider_ladder()  # a restart: a comparison due, or probes answered before the crash, go on now

    def _warm_start(self) -> Seed | None:
        """A new run's seed labels: AL_SEED_FILE's, and the answers of records in the dataset that the daemon did
        not log (adopted once, now); None when there are none."""
        foreign = self.gateway.read_foreign()
        if self.seed_table is None and not any(record.submitted for record in foreign):
            if foreign:
                log.warning("\n".join(describe(Seed(), self.pool.queryable, foreign)))
            return None
        seed = build_seed(self.pool, self.seed_table, foreign)
        for line in describe(seed, self.pool.queryable, foreign):
            log.info("%s", line)
        return seed

    def _first_batch(self, state: RunState) -> QueryResult:
        """Batch 0: chosen by a model trained on the seed labels (a warm start), else drawn at random."""
        size = self.settings.batch_size
        if state.seed is None or not state.seed.labels:
            return QueryResult.unscored(self.learner.initial_batch(size))
        if not self.learner.ready or self.learner.pool_size != len(self.pool):
            if self.build_learner is None:
                raise StateError("a warm start needs the model's features before batch 0, and none can be built here")
            self.set_phase(Phase.training, reason="warm start: building the model's features to choose batch 0")
            self.learner = self.build_learner(self.pool)
        self.set_phase(Phase.training, reason=f"warm start: training on {len(state.seed.labels)} seed labels")
        labels = {i: encode(label, self.labels) for i, label in state.training_labels().items()}
        trained = self.learner.fit(labels, set(), 0)
        result = self.learner.query(size, 0, exclude=state.used_indices())
        if trained:
            log.info("warm start: batch 0 chosen by a model trained on %d seed labels", len(labels))
        else:
            log.warning("warm start: the seed labels name fewer than two classes; batch 0 drawn at random")
        return result

    def _check_dataset_name(self, state: RunState) -> None:
        """AL_DATASET may name the run's dataset as it is called in Argilla now or as it was called before."""
        current = self.gateway.dataset_name
        state.check_dataset_name(self.settings.dataset, current, self.store.path)
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
        """The dataset holds a batch id the state does not know: say what was found and what to do."""
        ids = self.gateway.batch_record_ids(present)
        raise unknown_batches(self.settings.dataset, present, last, ids, self.store.path)

    # ---- one poll ------------------------------------------------------------------------------------
    def tick(self) -> None:
        """The scheduler job: check the current batch and run a round when it is complete."""
        if self.finished.is_set() or self.shutdown_requested.is_set() or time.monotonic() < self._next_try:
            return
        if self.rounds.holds_poll():
            return
        try:
            with self.lock:
                if self.store.unsaved:  # a save failed: nothing goes to Argilla until the journal is on disk
                    self.store.save(self.state)
                    log.info("state written again: the run resumes")
                self._tick()
        except Abandoned as exc:
            log.info("stop requested: left the round %s; the next start resumes from the journal", exc)
        except (ArgillaError, DiskError) as exc:
            self._failures += 1
            delay = min(60.0, self.settings.poll_interval * 2 ** min(self._failures, 6)) * random.uniform(0.5, 1.0)
            self._next_try = time.monotonic() + delay
            reason = str(exc) if isinstance(exc, ArgillaUnavailable | DiskError) else self._diagnose(exc)
            kind = "disk" if isinstance(exc, DiskError) else "argilla"
            log.warning("%s problem (attempt %d, retry in %.1f s): %s", kind, self._failures, delay, reason)
            self.board.failed(reason)
        else:
            self._failures = 0
            self.last_contact = time.monotonic()
            self.board.recovered()

    def close(self) -> None:
        """Release the state dir's lock (the process may go on, e.g. in tests; a new daemon may then start)."""
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    def flush_journal(self) -> None:
        """Write the journal if the state in memory is ahead of it (a save failed); DiskError if it still fails."""
        with self.lock:
            if self.store.unsaved and self.state is not None:
                self.store.save(self.state)

    def idle(self) -> bool:
        """True when no tick is running (a webhook may then start one at once)."""
        if self.lock.acquire(blocking=False):
            self.lock.release()
            return True
        return False

    def _diagnose(self, exc: Exception) -> str:
        """A refusal may mean people changed the dataset (deleted, renamed, its settings edited): look it up afresh
        and say what is wrong with it, rather than quoting the failed request."""
        self.gateway.forget_dataset()
        try:
            self.gateway.check_dataset(self.spec())
        except ArgillaError as found:
            return str(found)
        return str(exc)

    def checkpoint(self, where: str) -> None:
        """A step boundary: with a stop requested, leave here (everything before is journaled)."""
        if self.shutdown_requested.is_set():
            raise Abandoned(where)

    def _tick(self) -> None:
        state = self.state
        assert state is not None
        if state.stopped:
            if state.exported_at is None and self.export is None:  # the export failed for want of space: again
                if not self.learner.ready:  # a restart after the stop: the export needs the model's features
                    self.set_phase(Phase.stopped, reason=f"{state.stopped}; the export waits for the features")
                    return
                self._export()
            self.set_phase(Phase.stopped, reason=state.stopped)
            self.finished.set()
            return
        batch = state.current
        if not batch.logged:
            self._ensure_logged()
        mark = time.perf_counter()
        if not batch.complete:
            progress = assess(batch.pool_indices + batch.relabels, self.gateway.read_batch(batch.batch_id))
            self.set_phase(Phase.waiting, progress=progress.as_dict())
            early = None if progress.complete else self._stuck(batch, progress)
            if not progress.complete and early is None:
                return
            self._close_batch(batch, progress, early)
        if not self.learner.ready and self.builder is not None:  # hold the round a while for the features
            held = self.builder.hold(batch.batch_id, self.settings.features_wait)
            if held is not None:
                self.set_phase(Phase.training, reason=held)
                # the hold ends then (or sooner: adopt), not at the next poll, which may be minutes away
                self.wake_in(self.builder.remaining(batch.batch_id, self.settings.features_wait))
                return
        self._reconcile(batch.batch_id)
        self._read_seconds = time.perf_counter() - mark
        self.checkpoint(f"{batch.batch_id} before training (its labels are journaled)")
        self.rounds.run_round(batch)

    def _stuck(self, batch: Batch, progress: BatchProgress) -> StuckAction | None:
        """A batch waiting longer than AL_STUCK_AFTER (see :func:`daemon.batches.overdue`): warn, in the log once
        and on the status while it lasts; the action it is closed early with, if any."""
        settings = self.settings
        found = overdue(batch, progress, settings.stuck_after, settings.stuck_action, datetime.now(UTC))
        if found is None:
            return None
        if found.lapse or self._stuck_logged != batch.batch_id:
            log.warning("%s", found.message)
        if not found.lapse:
            self._stuck_logged = batch.batch_id
            self.board.snapshot.warning = found.message
            self.publish()
        return found.action

    def _close_batch(self, batch: Batch, progress: BatchProgress, early: StuckAction | None = None) -> None:
        reached("closing-batch", batch=batch)
        close(batch, progress, early)
        self.store.save(self.state)
        reached("batch-closed", batch=batch)
        self.board.snapshot.warning = None
        for warning, line in closed_lines(batch, progress, early):
            log.log(logging.WARNING if warning else logging.INFO, "%s", line)

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
            log.warning("%s", change_line(change, round_number))

    # ---- the steps a round strategy calls (daemon/rounds.py) ------------------------------------------
    def settle(self, timeout: float | None = None) -> bool:
        """Wait until no background training (nor the model ladder's comparison) is running or waiting (tests,
        and a clean exit)."""
        settled = self.rounds.settle(timeout)
        return (self.ladder.trainer.wait(timeout) if self.ladder is not None else True) and settled

    def use_model(self, learner: Learner) -> None:
        """The model ladder's switch, under the lock: ``learner`` (trained on the labels in hand) chooses the
        batches from now on, the journal names its model (``RunState.model_in_use``)."""
        self.learner = learner
        self._trains_ahead_if_fine_tuned()
        log.info("model ladder: %s chooses the batches from now on", learner.name)

    def _trains_ahead_if_fine_tuned(self) -> None:
        """Once the ladder's fine-tuned model took over, it trains in the background (AL_TRAINING=auto): a
        fine-tuning on the annotators' path would keep them waiting for minutes."""
        taken = self.state.model_in_use if self.state is not None else None
        if taken is None or isinstance(self.rounds, AheadRounds):
            return
        if ModelKind(taken) in FINE_TUNED and self.settings.training is Training.auto:
            self.rounds = AheadRounds(self)

    def trains(self, round_number: int) -> bool:
        """Whether this round trains a new model: never before the features exist, then every AL_RETRAIN_EVERY-th
        batch, and whenever there is no model yet or the run is about to stop (the final model sees every label)."""
        if not self.learner.ready:  # the features are still being built (daemon/features.py): nothing to train
            return False
        every = self.settings.retrain_every
        return not self.learner.trained or self.state.stop_pending is not None or (round_number + 1) % every == 0

    def adopt(self, learner: Learner) -> None:
        """The learner whose features were built in the background replaces the pending one: from the next round
        on, the daemon trains (on every label in hand)."""
        with self.lock:
            self.learner = learner
            if self.state is not None and not self.state.stopped:
                self.rounds.resume(self.state)
                self.consider_ladder()
            self.publish()
        log.info("the model's features are ready: the next complete batch trains %s", learner.name)
        self.wake_in(0.0)  # a round held for them goes on now

    def take_read_seconds(self) -> dict[str, float]:
        seconds: dict[str, float] = {}
        if self._read_seconds is not None:
            seconds["read"] = self._read_seconds
            self._read_seconds = None
        return seconds

    def log_next(self, seconds: dict[str, float], started: float) -> None:
        """Log the journaled next batch; ``handover`` is the time from the batch seen complete to this point."""
        mark = time.perf_counter()
        self._ensure_logged()
        seconds["log"] = time.perf_counter() - mark
        seconds["handover"] = seconds.get("read", 0.0) + time.perf_counter() - started
        self.state.current.handover = round(seconds["handover"], 4)
        total = len(self.state.current.pool_indices)
        self.set_phase(Phase.waiting, progress={"total": total, "done": 0, "pending": total})

    def log_round(self, round_number: int, metrics: RoundMetrics | None, started: float | None) -> None:
        state = self.state
        outcome = (
            f"the run stops once batch {state.current.batch_id} is answered"
            if state.stop_pending
            else f"the batch after {state.current.batch_id} is prepared"
            if state.prepared
            else "nothing left to prepare"
        )
        since = None if started is None else time.perf_counter() - started
        why = None if self.learner.ready else "the model's features are still being built"
        log.info("%s", round_summary(round_number, metrics, state.current.batch_id, self.settings, since, outcome, why))

    def stop_run(self, round_number: int, reason: str) -> None:
        state = self.state
        state.stopped, state.stopped_at = reason, now()
        self.store.save(state)
        log.info("stopping after round %d: %s", round_number, reason)
        self.set_phase(Phase.stopped, reason=reason)
        self.after_round()
        self._export()  # DiskError: the tick retries it (the stop itself is journaled)
        self.set_phase(Phase.stopped, reason=reason)
        self.finished.set()

    def consider_ladder(self) -> None:
        """The model ladder's comparison, or its verdict, when one is due (it runs off this thread)."""
        if self.ladder is not None and self.state is not None:
            self.ladder.consider(self.state)

    def after_round(self) -> None:
        """Follow-ups that must never fail a round: the model ladder's comparison when one is due (off this
        thread), annotator names, the plot file and the progress note in Argilla."""
        self.consider_ladder()
        try:
            self.board.set_user_names(self.gateway.user_names())
        except ArgillaError as exc:
            log.warning("annotator names unavailable (%s): status shows user ids", exc)
        self.publish()
        status = self.status()
        try:
            write_curve(status, self.store.dir / "learning-curve.png")
        except Exception as exc:  # noqa: BLE001 - a plot must not stop the daemon
            log.warning("could not write the learning-curve plot: %s", exc)
        if self.settings.publish_progress:
            try:
                self.gateway.set_guidelines(self.spec().guidelines + guidelines_note(status))
            except ArgillaError as exc:
                log.warning("could not publish progress to the dataset's guidelines: %s", exc)

    def _export(self) -> None:
        if not self.learner.ready:
            return  # the tick exports once the features exist
        reached("exporting", state=self.state)
        try:
            user_names = self.gateway.user_names()
        except ArgillaError as exc:
            log.warning("annotator names unavailable (%s): the export lists user ids", exc)
            user_names = {}
        status = self.status()
        settings = self.settings.using(self.state.model_in_use)  # the model ladder may have replaced AL_MODEL's
        export = export_or_explain(
            lambda: export_run(settings, self.state, self.pool, self.labels, self.learner, status, user_names)
        )
        if export["path"] is not None:
            self.state.exported_at = now()
            self.store.save(self.state)
            export["exported_at"] = self.state.exported_at
        self.export = export

    # ---- batches -------------------------------------------------------------------------------------
    def with_carried(self, result: QueryResult, carried: list[int]) -> QueryResult:
        """The next batch: the records a stuck batch moved on (first, with the model's guess), then the query's."""
        if not carried:
            return result
        return QueryResult.guessed(carried, self.learner.pool_proba() if self.learner.trained else None) + result

    def with_probes(self, result: QueryResult, carried: Sequence[int]) -> tuple[QueryResult, list[int]]:
        """The model ladder's probes not yet asked for (AL_LADDER_COMPARE=probes) go into the batch after the
        records a stuck batch moved on and before the query's picks, whose tail makes room (those stay in the
        pool); no suggestion on a probe: it would lean the annotator toward one of the two models compared."""
        pending = self.state.ladder_probes
        if pending is None:
            return result, []
        moved = set(carried)
        head = sum(1 for i in result.indices if i in moved)  # the carried records lead the result
        asked = self.state.used_indices() | moved
        probes = [i for i in pending.indices if i not in asked][: len(result.indices) - head]
        if not probes:
            return result, []
        chosen = set(probes)
        picks = [k for k in range(head, len(result.indices)) if result.indices[k] not in chosen]
        kept = picks[: len(result.indices) - head - len(probes)]  # the query's tail makes room
        return result.take(range(head)) + QueryResult.unscored(probes) + result.take(kept), probes

    def journal_batch(
        self, batch_id: int, round_number: int, result: QueryResult, relabels: list[Pick] | None = None
    ) -> None:
        """Write the chosen batch to the state before anything is sent to Argilla."""
        previous = self.state.current
        carried = previous.moved if previous is not None else ()
        result, probes = self.with_probes(result, carried)
        requested = self.state.relabel_requests()
        batch = new_batch(batch_id, round_number, result, self.labels, carried, relabels or (), requested)
        batch.probes = probes
        if self.state.used_indices() & set(batch.fresh_indices()):
            raise StateError(f"batch {batch_id} would repeat pool items already asked for; refusing to log it")
        reached("journaling-batch", batch_id=batch_id)
        self.state.batches.append(batch)
        self.store.save(self.state)
        reached("batch-journaled", batch_id=batch_id)

    def _ensure_logged(self) -> None:
        batch = self.state.current
        if batch is None or batch.logged:
            return
        self.set_phase(Phase.logging)
        records = records_to_log(batch, self.pool.texts, self.learner.name)
        reached("logging", records=records, gateway=self.gateway)
        self.gateway.log_records(records)
        reached("batch-logged", records=records)
        batch.logged = True
        batch.logged_at = now()
        self.store.save(self.state)
        log.info("batch %d logged to Argilla: %d records", batch.batch_id, len(records))

    # ---- status (daemon/board.py) ----------------------------------------------------------------------
    def set_phase(self, phase: Phase, reason: str | None = None, progress: dict | None = None) -> None:
        self.board.set_phase(phase, reason, progress)

    def publish(self) -> dict:
        return self.board.publish()

    def status(self) -> dict:
        """The latest status document (JSON-safe)."""
        return self.board.status()

    def ready(self) -> tuple[bool, str]:
        """Ready = state loaded, not degraded, Argilla answering (see StatusBoard.ready)."""
        return self.board.ready()
