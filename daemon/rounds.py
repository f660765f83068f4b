"""How a complete batch becomes the next one: two round strategies behind one verb, ``run_round(batch)``, chosen
once at start (rq's ``Worker`` / ``SimpleWorker`` habit) instead of a flag decided every round.

- :class:`InlineRounds` (``AL_TRAINING=inline``): train on every label, evaluate, query the next batch with the
  fresh model, journal it, log it. Annotators wait for the training.
- :class:`AheadRounds` (``AL_TRAINING=ahead``, the fine-tuned models' default): log the batch prepared while this
  one was labelled (or, when the model is still training, one queried at once with the model in hand; random
  before the first model), then hand the round's labels to the background trainer, which trains a fresh model,
  swaps it in under the daemon's lock and prepares the batch after the next.

The threaded half's invariants, stated once:

1. Nothing the background trainer does is journaled until it holds the daemon's lock; a SIGTERM or a stop
   abandons it without trace, and a restart retrains from the journal.
2. A restart rebuilds the model at once (off the poll thread) and keeps the batch it journaled as prepared.
3. A batch prepared by a model that trained while another batch was logged is queried again, so no pool item is
   ever asked twice.
4. Rounds completed while one training runs are merged into the next training (the newest job wins).
5. The last round (a criterion fired, or the pool is used up) waits for the running training and trains inline.

Both call the daemon's round steps (journal, log, evaluate, stop); the daemon keeps the order, the lock and the
journal checkpoints.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from daemon.answers import encode
from daemon.batches import QueryResult, new_batch
from daemon.consensus import Pick
from daemon.learner import Learner
from daemon.phases import Phase
from daemon.policy import HeldOut
from daemon.scoring import Scores
from daemon.state import Batch, RoundMetrics, RunState
from daemon.steps import reached
from daemon.trainer import BackgroundTrainer, Job

if TYPE_CHECKING:
    from daemon.loop import Daemon

log = logging.getLogger(__name__)

POOL_EXHAUSTED = "pool exhausted: every pool item is labelled or discarded"


class RoundStrategy:
    """One verb: :meth:`run_round`. The rest is what the daemon asks of the strategy around it."""

    mode = ""  # inline | ahead, as the status shows it
    busy = False  # a model is training off the poll thread
    last_error: str | None = None  # the last background training's failure, for the status

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon

    def run_round(self, batch: Batch) -> None:
        """Turn the complete ``batch`` (its labels journaled) into the next one, or stop the run."""
        raise NotImplementedError

    def resume(self, state: RunState) -> None:
        """Once the daemon started on a journal (a restart, or a fresh run)."""

    def holds_poll(self) -> bool:
        """True while the poll must not read Argilla (the last round waits for a running training)."""
        return False

    def describe(self) -> dict | None:
        """The training running off the poll thread, for the status (None: none)."""
        return None

    def settle(self, timeout: float | None = None) -> bool:
        """Wait until no background training runs or waits (tests, and a clean exit)."""
        return True


class InlineRounds(RoundStrategy):
    """Train, evaluate, query, journal, log: the freshest model picks every batch."""

    mode = "inline"

    def __init__(self, daemon: Daemon) -> None:
        super().__init__(daemon)
        self.held_out: HeldOut | None = None  # this round's votes and out-of-sample probabilities (ActiveLab)

    def resume(self, state: RunState) -> None:
        if state.prepared is not None:
            log.info("AL_TRAINING is inline: the batch prepared ahead is dropped (it was never logged)")
            state.prepared = None
            self.daemon.store.save(state)

    def run_round(self, batch: Batch) -> None:
        daemon, state = self.daemon, self.daemon.state
        round_number = batch.batch_id
        seconds = daemon.take_read_seconds()
        started = time.perf_counter()
        metrics = self.train_and_evaluate(round_number, seconds)
        reason = state.stop_pending or (daemon.signals.stop_reason(metrics.signals) if metrics else None)
        daemon.checkpoint(f"{round_number} after training, before the query")
        if reason is None:
            daemon.set_phase(Phase.querying)
            mark = time.perf_counter()
            room = max(0, daemon.settings.batch_size - len(batch.moved))
            relabels: list[Pick] = []
            if daemon.settings.activelab and self.held_out is not None and daemon.learner.trained:
                team = daemon.gateway.team()
                result, relabels = daemon.activelab.query(room, self.held_out, daemon.learner, state, team)
            else:
                result = daemon.learner.query(room, round_number, exclude=state.reserved_indices())
            seconds["query"] = time.perf_counter() - mark
            if not result.indices and not batch.moved and not relabels:
                reason = POOL_EXHAUSTED
        if reason is not None and not daemon.learner.ready:
            # the last model sees every label: the run stops once the features exist (the next polls come back)
            daemon.set_phase(Phase.training, reason="the last round waits for the model's features")
            return
        if reason is not None:
            daemon.stop_run(round_number, reason)
            return
        daemon.journal_batch(batch.batch_id + 1, round_number + 1, daemon.with_carried(result, batch.moved), relabels)
        daemon.checkpoint(f"{round_number} after journaling batch {batch.batch_id + 1}, before logging it")
        daemon.log_next(seconds, started)
        daemon.store.save(state)
        daemon.log_round(round_number, metrics, started)
        daemon.after_round()

    def train_and_evaluate(self, round_number: int, seconds: dict[str, float]) -> RoundMetrics | None:
        """Train on every label in hand, then the round's test scores and stopping signals (None: no training
        this round, AL_RETRAIN_EVERY)."""
        daemon, state = self.daemon, self.daemon.state
        if not daemon.trains(round_number):
            return None
        daemon.set_phase(Phase.training)
        mark = time.perf_counter()
        y, self.held_out = daemon.consensus.labels(state, daemon.learner, round_number)
        reached("training", round=round_number)
        trained = daemon.learner.fit(y, state.not_queryable(), round_number)
        reached("trained", round=round_number)
        seconds["train"] = time.perf_counter() - mark
        mark = time.perf_counter()
        metrics = daemon.scorer.evaluate(state.rounds, round_number, len(y), daemon.learner, trained)
        seconds["evaluate"] = time.perf_counter() - mark
        metrics.seconds = seconds
        state.rounds = [m for m in state.rounds if m.round != round_number] + [metrics]
        return metrics


class AheadRounds(RoundStrategy):
    """The next batch at once; the model trains on a background thread (see the invariants above)."""

    mode = "ahead"

    def __init__(self, daemon: Daemon) -> None:
        super().__init__(daemon)
        self.trainer = BackgroundTrainer(self._train_in_background)
        self.inline = InlineRounds(daemon)  # the last round trains on the poll thread
        self.model_round: int | None = None  # the round whose labels the model in hand was trained on
        self.deferred = False  # the last round waits for the background training to finish

    @property
    def busy(self) -> bool:
        return self.trainer.busy

    @property
    def last_error(self) -> str | None:
        return self.trainer.last_error

    def describe(self) -> dict | None:
        return self.trainer.describe()

    def settle(self, timeout: float | None = None) -> bool:
        return self.trainer.wait(timeout)

    def holds_poll(self) -> bool:
        return self.deferred and self.trainer.busy

    def resume(self, state: RunState) -> None:
        done = [b for b in state.batches if b.complete]
        if not self.daemon.learner.ready:
            return  # called again once the features are built (Daemon.adopt)
        if state.stop_pending is None and done and not state.current.complete:
            # rebuild the model at once, off the poll thread, so it is ready when the batch out completes
            self._submit(done[-1].batch_id, {}, restore=True)

    def run_round(self, batch: Batch) -> None:
        if self.daemon.state.stop_pending is not None:
            self._final_round(batch)
            return
        self._hand_over(batch)

    def _final_round(self, batch: Batch) -> None:
        """The last round (a criterion fired, or the pool is used up) trains on the poll thread, once the
        background training has finished: nothing is left to hand out, and one model at a time is enough."""
        if self.trainer.busy:
            self.deferred = True  # the tick skips Argilla until the worker is done, then comes back here
            self.daemon.set_phase(
                Phase.training, reason=f"batch {batch.batch_id} is complete: waiting for the training running"
            )
            return
        self.deferred = False
        self.inline.run_round(batch)

    def _hand_over(self, batch: Batch) -> None:
        """Log the batch prepared while this one was labelled or, when none is ready (the model is still training),
        one queried at once with the model in hand (random while there is none); then hand the round's labels to
        the background trainer, which swaps its model in and prepares the following batch."""
        daemon, state = self.daemon, self.daemon.state
        round_number = batch.batch_id
        seconds = daemon.take_read_seconds()
        started = time.perf_counter()
        room = max(0, daemon.settings.batch_size - len(batch.moved))
        prepared = state.prepared
        if prepared is not None:
            result = QueryResult.of_batch(prepared, daemon.labels, room)
            chosen_by = prepared.round
            state.prepared = None  # saved together with the batch it becomes
        else:
            daemon.set_phase(Phase.querying)
            mark = time.perf_counter()
            chosen_by = round_number + 1 if self.model_round is None else self.model_round + 1
            result = daemon.learner.query(room, chosen_by - 1, exclude=state.reserved_indices())
            seconds["query"] = time.perf_counter() - mark
            if not result.indices and not batch.moved:
                self._final_round(batch)  # pool exhausted: the last model trains on every label, then the run stops
                return
            log.info(
                "batch %d: nothing prepared (%s); queried with the model in hand",
                batch.batch_id + 1,
                ("no model yet" if daemon.learner.ready else "the model's features are still being built")
                if self.model_round is None
                else f"round {self.model_round}'s",
            )
        daemon.journal_batch(batch.batch_id + 1, chosen_by, daemon.with_carried(result, batch.moved))
        daemon.checkpoint(f"{round_number} after journaling batch {batch.batch_id + 1}, before logging it")
        daemon.log_next(seconds, started)
        daemon.store.save(state)
        # annotators have their next batch: training no longer keeps them waiting
        if daemon.trains(round_number):
            self._submit(round_number, seconds)
            log.info(
                "round %d: batch %d logged (%.2f s from complete to logged); the model trains in the background",
                round_number,
                batch.batch_id + 1,
                seconds["handover"],
            )
        else:
            daemon.checkpoint(f"{round_number} after logging batch {batch.batch_id + 1}, before preparing")
            self._prepare(round_number)
            daemon.log_round(round_number, None, started)
            daemon.after_round()
        daemon.set_phase(Phase.waiting)

    def _submit(self, round_number: int, seconds: dict[str, float], restore: bool = False) -> None:
        """Hand a round to the background trainer: its labels as they are journaled now."""
        daemon, state = self.daemon, self.daemon.state
        job = Job(
            round=round_number,
            labels={i: encode(label, daemon.labels) for i, label in state.training_labels().items()},
            ignored=state.not_queryable(),
            used=state.used_indices(),
            seconds=dict(seconds),
            restore=restore,
        )
        self.trainer.submit(job)
        daemon.publish()

    def _train_in_background(self, job: Job) -> None:
        """The worker: train a fresh model, score it, choose the batch after the one out; then, under the lock,
        journal the round, swap the model in and keep the chosen batch as the prepared one."""
        daemon = self.daemon
        learner = daemon.learner.fresh()
        seconds = job.seconds
        mark = time.perf_counter()
        reached("training", round=job.round)
        trained = learner.fit(job.labels, job.ignored, job.round)
        reached("trained", round=job.round)
        seconds["train"] = time.perf_counter() - mark
        mark = time.perf_counter()
        scores = daemon.scorer.scores(learner, trained)
        seconds["evaluate"] = time.perf_counter() - mark
        mark = time.perf_counter()
        ahead = learner.query(daemon.settings.batch_size, job.round + 1, exclude=job.used)
        seconds["prepare"] = time.perf_counter() - mark
        with daemon.lock:
            state = daemon.state
            if daemon.shutdown_requested.is_set() or state.stopped or state.stop_pending:
                log.info("round %d trained, not used: the run is stopping", job.round)
                return
            self._adopt(job, learner, trained, scores, ahead)

    def _adopt(self, job: Job, learner: Learner, trained: bool, scores: Scores, ahead: QueryResult) -> None:
        daemon, state = self.daemon, self.daemon.state
        if learner.features is not getattr(daemon.learner, "features", None) and daemon.learner.ready:
            # the model ladder switched models while this one trained: the next round trains the new one
            log.info(
                "round %d trained %s, which the model ladder replaced meanwhile: not used", job.round, learner.name
            )
            return
        metrics = None
        if not (job.restore and any(m.round == job.round for m in state.rounds)):
            metrics = daemon.scorer.evaluate(state.rounds, job.round, len(job.labels), learner, trained, scores)
            metrics.seconds = job.seconds
            state.rounds = [m for m in state.rounds if m.round != job.round] + [metrics]
        daemon.learner, self.model_round = learner, job.round
        reason = daemon.signals.stop_reason(metrics.signals) if metrics else None
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
                ahead = learner.query(daemon.settings.batch_size, job.round + 1, exclude=state.used_indices())
            state.prepared = self._as_prepared(ahead, job.round)
        daemon.store.save(state)
        if metrics is not None:
            daemon.log_round(job.round, metrics, None)
            daemon.after_round()
        daemon.publish()

    def _as_prepared(self, result: QueryResult, round_number: int) -> Batch | None:
        """The batch after the current one, chosen by round ``round_number``'s model (None: nothing left to ask)."""
        if not result.indices:
            return None
        return new_batch(self.daemon.state.current.batch_id + 1, round_number + 1, result, self.daemon.labels)

    def _prepare(self, round_number: int) -> None:
        """A round without training (AL_RETRAIN_EVERY): choose the batch after the current one with the model in
        hand, journaled but not logged."""
        daemon, state = self.daemon, self.daemon.state
        if not daemon.learner.ready:
            return  # nothing prepared: the next batch is drawn when this one completes, maybe by a model by then
        daemon.set_phase(Phase.querying)
        mark = time.perf_counter()
        result = daemon.learner.query(daemon.settings.batch_size, round_number + 1, exclude=state.reserved_indices())
        state.prepared = self._as_prepared(result, round_number)
        metrics = next((m for m in state.rounds if m.round == round_number), None)
        if metrics is not None:
            metrics.seconds["prepare"] = time.perf_counter() - mark
        daemon.store.save(state)
        daemon.set_phase(Phase.waiting)


def strategy_for(daemon: Daemon) -> RoundStrategy:
    """The round strategy of this run's settings (AL_TRAINING, with auto resolved)."""
    return AheadRounds(daemon) if daemon.settings.ahead else InlineRounds(daemon)
