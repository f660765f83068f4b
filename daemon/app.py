"""Wiring: settings → data → model → gateway → daemon, with the scheduler, status endpoint and signals."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.background import BackgroundScheduler

from daemon.config import ColdStart, ModelKind, Settings
from daemon.errors import EXIT_TEMPORARY, ArgillaError, ArgillaUnavailable, DiskError, StateError
from daemon.features import FeatureBuilder, Report
from daemon.files import check_writable
from daemon.gateway import ArgillaGateway, DatasetSpec
from daemon.inputs import Data, load_data, model_name, preflight, task_settings
from daemon.notify import Notifier, watchdog_interval
from daemon.phases import Phase
from daemon.plot import render_curve
from daemon.pool import TextTable
from daemon.recover import rebuild, summary
from daemon.report import Live, status_view
from daemon.state import StateStore, acquire_lock, now
from daemon.status import StatusServer, create_app
from daemon.stopping import StoppingSignals
from daemon.webhooks import EVENTS, TooLarge, WebhookReceiver

if TYPE_CHECKING:  # the loop, the learner and the models import small-text and torch (~10 s): only when needed,
    from daemon.learner import Learner  # so that a refused start is quick
    from daemon.loop import Daemon

log = logging.getLogger(__name__)


def connect(settings: Settings, timeout: float) -> ArgillaGateway:
    """A gateway whose server answered; retries while Argilla is unreachable, up to ``timeout`` seconds."""
    gateway = ArgillaGateway(
        settings.argilla_url, settings.argilla_api_key.get_secret_value(), settings.workspace, settings.dataset
    )
    deadline = time.monotonic() + timeout
    delay = 1.0
    while True:
        try:
            gateway.ping()
            return gateway
        except ArgillaUnavailable as exc:
            if time.monotonic() + delay > deadline:
                raise ArgillaUnavailable(
                    f"cannot reach Argilla at {settings.argilla_url} after {timeout:.0f} s: {exc}"
                ) from None
            log.warning("waiting for Argilla at %s: %s", settings.argilla_url, exc)
            time.sleep(delay)
            delay = min(delay * 2, 15.0)


class Service:
    """The running process: status first, then the slow start-up, then the polling job until stopped."""

    def __init__(self, settings: Settings, connect_timeout: float | None = None, data: Data | None = None) -> None:
        self.settings = settings
        self.data = data  # already loaded and checked (the demo's simulated annotators read it first)
        self.connect_timeout = settings.connect_timeout if connect_timeout is None else connect_timeout
        self.daemon: Daemon | None = None
        self.shutdown_requested = threading.Event()
        self.status_server: StatusServer | None = None
        self.notifier = Notifier()
        self._plot_cache: tuple[tuple, bytes] | None = None
        self.webhooks: WebhookReceiver | None = None
        self._woken = threading.Event()
        self._scheduler: BackgroundScheduler | None = None
        self._timer_lock = threading.Lock()
        self._abandon_timer: threading.Timer | None = None  # a stop's deadline (AL_STOP_TIMEOUT), until shutdown ends
        self._wake_due: float | None = None  # when the pending wake-up timer fires (monotonic)

    def status(self) -> dict:
        if self.daemon is not None:
            status = self.daemon.status()
            if self.webhooks is not None:
                status["webhooks"] = {"url": self.settings.webhook_url, **self.webhooks.counts}
            return status
        live = Live(
            phase=Phase.starting.value, reason="loading data and connecting to Argilla", model=model_name(self.settings)
        )
        return status_view(self.settings, None, live, StoppingSignals(self.settings, 2).thresholds())

    def ready(self) -> tuple[bool, str]:
        if self.daemon is None:
            return False, "starting: loading data and connecting to Argilla"
        return self.daemon.ready()

    def plot(self) -> bytes:
        """The learning curve, re-rendered only when the run moved on."""
        status = self.status()
        key = (status["round"], status["state"], status["stop"]["reason"], len(status["history"]))
        if self._plot_cache is None or self._plot_cache[0] != key:
            self._plot_cache = (key, render_curve(status))
        return self._plot_cache[1]

    def webhook(self, body: bytes | TooLarge, headers: dict) -> tuple[int, dict]:
        if self.webhooks is None:
            return 404, {"detail": "webhooks are not enabled here (AL_WEBHOOK_URL)"}
        return self.webhooks.handle(body, headers)

    def _poll(self) -> None:
        """The scheduled job: a tick, again at once if a webhook arrived meanwhile."""
        while True:
            self._woken.clear()
            self.daemon.tick()
            if self.webhooks is not None:
                self.webhooks.flush_log()  # the tail of a flood of refused deliveries reaches the log
            if not self._woken.is_set() or self.shutdown_requested.is_set():
                return

    def _wake(self) -> None:
        """A webhook event: poll now (or right after the tick in progress)."""
        self._woken.set()
        scheduler = self._scheduler
        if scheduler is not None and scheduler.running and self.daemon is not None and self.daemon.idle():
            try:
                scheduler.modify_job("poll", next_run_time=_now())
            except JobLookupError:  # shutting down
                pass

    def _wake_in(self, seconds: float) -> None:
        """Poll again within ``seconds``, not only at the next scheduled poll (AL_POLL_INTERVAL may be long when
        webhooks wake the daemon): a round held for the model's features goes on as soon as they are built or the
        hold ends. One timer at a time, the earliest."""
        if seconds <= 0:
            self._wake()
            return
        due = time.monotonic() + seconds
        with self._timer_lock:
            if self._wake_due is not None and time.monotonic() < self._wake_due <= due:
                return
            self._wake_due = due
            timer = threading.Timer(seconds, self._wake)
            timer.daemon = True
            timer.start()

    def _start_webhooks(self, daemon: Daemon) -> None:
        """Register AL_WEBHOOK_URL with Argilla; without it (refused, unreachable) the daemon polls as before."""
        url = self.settings.webhook_url
        try:
            secret = daemon.gateway.register_webhook(url, EVENTS, f"al-daemon: {self.settings.dataset}")
        except ArgillaError as exc:
            log.warning("webhook not registered (%s): polling every %.1f s only", exc, self.settings.poll_interval)
            return
        self.webhooks = WebhookReceiver(secret, lambda: daemon.gateway.dataset_id, self._wake)
        log.info("webhook registered: Argilla's events to %s wake the poll", url)

    def _stop_webhooks(self) -> None:
        if self.webhooks is None or self.daemon is None:
            return
        try:
            self.daemon.gateway.remove_webhook(self.settings.webhook_url)
        except ArgillaError as exc:
            log.warning("could not remove the webhook from Argilla: %s", exc)

    def request_shutdown(self, signum: int | None = None, _frame=None) -> None:
        """First SIGTERM/SIGINT: finish or abandon the current step, within ``stop_timeout``. Second: exit now."""
        if self.shutdown_requested.is_set():
            log.warning("second signal: exiting at once")
            _flush_and_exit(128 + (signum or signal.SIGINT))
        log.info(
            "stop requested%s: finishing the current step (at most %.0f s)",
            f" (signal {signum})" if signum else "",
            self.settings.stop_timeout,
        )
        self.shutdown_requested.set()
        if self.daemon is not None:
            self.daemon.shutdown_requested.set()
        self.notifier.stopping()
        self._abandon_timer = threading.Timer(self.settings.stop_timeout, self._abandon)
        self._abandon_timer.daemon = True
        self._abandon_timer.start()

    def _abandon(self) -> None:
        log.warning(
            "the current step did not finish within %.0f s: abandoning it. Safe: every step is journaled before "
            "the next begins and state writes are atomic, so the next start resumes where this one stopped",
            self.settings.stop_timeout,
        )
        unsaved = self.daemon is not None and self.daemon.store.unsaved
        _flush_and_exit(EXIT_TEMPORARY if unsaved else 0)

    def status_line(self) -> str:
        s = self.status()
        batch = s.get("batch") or {}
        line = f"{s['state']}: round {s['round']}, {s['labels']} labels"
        if batch.get("batch_id") is not None:
            line += f", batch {batch['batch_id']} {batch.get('done', 0)}/{batch.get('total', '?')}"
        return line

    def build(self) -> Daemon:
        """The daemon, connected; its learner waits for the features (built once batch 0 is out, see
        :meth:`start_features`) unless batch 0 itself needs them (``AL_COLD_START=kmeans``: built here, first)."""
        data = self.data = self.data or preflight(self.settings)  # local problems first: no model library, no Argilla
        settings = self.settings = task_settings(self.settings, data.multi_label)
        from daemon.learner import PendingLearner
        from daemon.loop import Daemon

        log.info(
            "pool %s: %d texts; labels %s; test %s",
            settings.pool_file,
            len(data.pool),
            data.labels,
            "none" if data.test is None else f"{len(data.test)} texts",
        )
        gateway = connect(settings, self.connect_timeout)
        if settings.cold_start is ColdStart.random:
            learner = PendingLearner(len(data.pool), model_name(settings), settings.seed)
        else:
            log.info("AL_COLD_START=%s: batch 0 waits for the pool's features", settings.cold_start.value)
            learner = self.learner()
        daemon = Daemon(settings, gateway, learner, data.pool, data.labels, data.y_test, data.multi_label, data.seed)
        daemon.build_learner = lambda pool: self.learner(pool=pool)
        daemon.wake_in = self._wake_in
        if settings.ladder_model is not None:
            from daemon.ladder import LadderRunner

            log.info(
                "model ladder: %s is compared from %d labels on and may take over (AL_LADDER=off: never)",
                settings.ladder_model.value,
                settings.ladder_after,
            )
            daemon.ladder = LadderRunner(daemon, settings.ladder_model, lambda kind: self.learner(model=kind))
        return daemon

    def learner(
        self, report: Report | None = None, pool: TextTable | None = None, model: ModelKind | None = None
    ) -> Learner:
        """Build a model's features (embedding the pool: the slow part) and a learner over them. ``pool``: the
        daemon's (with a warm start's training-only rows), once it has one. ``model``: AL_MODEL's, or the one the
        model ladder put in its place (``RunState.model_in_use``), unless named."""
        from daemon.learner import Learner
        from daemon.models import build_features

        data, settings = self.data, self.settings
        if pool is None:
            pool = self.daemon.pool if self.daemon is not None else data.pool
        state = self.daemon.state if self.daemon is not None else None
        settings = settings.using(model or (state.model_in_use if state is not None else None))
        features = build_features(
            settings, pool, data.test, data.y_test, len(data.labels), report, multi_label=data.multi_label
        )
        return Learner.from_settings(features, len(data.labels), settings)

    def _replaced_on_restart(self, daemon: Daemon) -> bool:
        """A k-means first batch builds AL_MODEL's learner before the journal is read: on a restart after the
        model ladder's switch, the model in use is built in the background (AL_MODEL's serves meanwhile)."""
        taken = daemon.state.model_in_use if daemon.state is not None else None
        return daemon.learner.ready and taken not in (None, self.settings.model.value)

    def start_features(self, daemon: Daemon) -> None:
        """Build the features on a background thread; the daemon adopts the learner once they exist."""
        builder = FeatureBuilder(self.learner, daemon.adopt)
        daemon.builder = builder
        builder.start()

    def run(self, install_signals: bool = True) -> int:
        """Run until stopped by the stopping rule or a signal; the exit code. Three named phases (uvicorn's
        ``Server.serve`` habit): :meth:`startup`, :meth:`main_loop`, :meth:`shutdown`; the signal handlers this
        installs are restored on the way out."""
        with capture_signals(self.request_shutdown) if install_signals else contextlib.nullcontext():
            try:
                if not self.startup():
                    return 0
                self.main_loop()
                self._stop_scheduler()  # a running step finishes (bounded by the stop timer)
                return self._leave()
            finally:
                self.shutdown()

    def startup(self) -> bool:
        """The status server first, then the slow part: data, model, Argilla, the journal's batch logged, the
        polling job started. False when a stop was asked for meanwhile."""
        settings = self.settings
        token = settings.status_token.get_secret_value() if settings.status_token else None
        self.status_server = StatusServer(create_app(self, token), settings.status_host, settings.status_port)
        self.status_server.start()
        self.notifier.status("starting: loading data and connecting to Argilla")
        daemon = self.build()
        if self.shutdown_requested.is_set():
            return False
        self.daemon = daemon
        daemon.start()
        if self.shutdown_requested.is_set():
            return False
        if not daemon.learner.ready or self._replaced_on_restart(daemon):
            self.start_features(daemon)
        self._scheduler = BackgroundScheduler(executors={"default": ThreadPoolExecutor(1)})
        self._scheduler.add_job(
            self._poll,
            "interval",
            seconds=settings.poll_interval,
            id="poll",
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,
            next_run_time=_now(),
        )
        self._scheduler.start()
        if settings.webhook_url:
            self._start_webhooks(daemon)
        self.notifier.ready(self.status_line())
        return True

    def main_loop(self) -> None:
        """The main thread while the scheduler polls: systemd STATUS and WATCHDOG, until a stop."""
        interval = watchdog_interval()
        next_ping = 0.0
        while not self.shutdown_requested.is_set():
            if self.daemon.finished.is_set() and self.settings.exit_on_stop:
                self.notifier.stopping(self.status_line())
                return
            if interval is not None and time.monotonic() >= next_ping and self._scheduler.running:
                self.notifier.watchdog()
                next_ping = time.monotonic() + interval
            self.notifier.status(self.status_line())
            self.shutdown_requested.wait(min(0.2, interval or 0.2))

    def shutdown(self) -> None:
        """Whatever startup got to, undone: the polling job, the webhook, the status server, the state's lock."""
        self._stop_scheduler()
        self._stop_webhooks()
        if self.status_server is not None:
            self.status_server.stop()
        log.info("daemon stopped")
        if self.daemon is not None and self.daemon.rounds.busy:
            # its model would be thrown away (nothing it does is journaled), and an interpreter exit under a
            # running torch thread aborts: leave at once; the next start retrains from the journal
            log.info("a model was still training in the background: abandoned, the next start retrains it")
            _flush_and_exit(EXIT_TEMPORARY if self.daemon.store.unsaved else 0)
        builder = self.daemon.builder if self.daemon is not None else None
        if builder is not None and builder.busy:  # the same for the features: the embedding resumes at its last part
            builder.stop()
            log.info("the model's features were still being built: the next start resumes the embedding")
            _flush_and_exit(EXIT_TEMPORARY if self.daemon.store.unsaved else 0)
        if self.daemon is not None:
            self.daemon.close()
        if self._abandon_timer is not None:  # stopped in time: a service run in a longer-lived process (tests,
            self._abandon_timer.cancel()  # the demo) must not be ended by the deadline later
            self._abandon_timer = None

    def _stop_scheduler(self) -> None:
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=True)
            self._scheduler = None

    def _leave(self) -> int:
        """The exit code once the loop is over: 0, unless the journal in memory could not be written (then the
        next start resumes from the last journal written, and the exit code says something is wrong)."""
        daemon = self.daemon
        if daemon is None or not daemon.store.unsaved:
            return 0
        try:
            daemon.flush_journal()
        except DiskError as exc:
            log.error("leaving with the last step unsaved (%s): the next start resumes from the journal on disk", exc)
            return EXIT_TEMPORARY
        return 0


@contextlib.contextmanager
def capture_signals(handler) -> Iterator[None]:
    """SIGTERM and SIGINT go to ``handler`` while inside; the handlers found are put back on the way out (uvicorn's
    ``Server.capture_signals``), so an embedding program or a test runner keeps its own."""
    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def export_now(settings: Settings, target: Path | None = None, connect_timeout: float = 10.0) -> Path:
    """``al-daemon export``: retrain from the journal and write the export, without a running daemon."""
    from daemon.export import export_run
    from daemon.learner import Learner
    from daemon.models import build_features

    state = StateStore(settings.state_dir).load()
    if state is None:
        raise StateError(f"no state in {settings.state_dir}: nothing to export (point AL_STATE_DIR at the run)")
    data = load_data(settings)
    settings = task_settings(settings, data.multi_label)
    if (state.pool_fingerprint, state.labels, state.multi_label) != (
        data.pool.fingerprint,
        data.labels,
        data.multi_label,
    ):
        raise StateError(
            f"{settings.state_dir} belongs to another pool file, label set or task than {settings.pool_file}"
        )
    pool = data.pool.with_training_only(state.seed.extra_texts if state.seed else [])
    features = build_features(settings, pool, data.test, data.y_test, len(data.labels), multi_label=data.multi_label)
    learner = Learner.from_settings(features, len(data.labels), settings)
    user_names: dict[str, str] = {}
    try:
        user_names = connect(settings, connect_timeout).user_names()
    except ArgillaError as exc:
        log.warning("annotator names unavailable (%s): the export lists user ids", exc)
    live = Live(
        phase=Phase.stopped.value if state.stopped else "exported", model=features.name, pool_size=len(data.pool)
    )
    status = status_view(settings, state, live, StoppingSignals(settings, len(data.labels)).thresholds())
    return export_run(settings, state, pool, data.labels, learner, status, user_names, target)


def recover_now(settings: Settings, replace: bool = False, connect_timeout: float = 30.0) -> str:
    """``al-daemon recover``: rebuild ``state.json`` from the run's dataset in Argilla (see :mod:`daemon.recover`).
    A readable state is kept unless ``replace``; the file replaced is kept beside it. Returns what was done."""
    check_writable(settings.state_dir, "the state folder (AL_STATE_DIR)")
    data = load_data(settings)  # not preflight: the state is expected to be unreadable
    handle, _ = acquire_lock(settings.state_dir)  # never under a running daemon
    try:
        store = StateStore(settings.state_dir)
        try:
            readable = store.load() is not None
        except StateError:
            readable = False
        if readable and not replace:
            raise StateError(
                f"{store.path} is readable: nothing to recover (pass --replace to rebuild it from Argilla anyway)"
            )
        gateway = connect(settings, connect_timeout)
        gateway.check_dataset(DatasetSpec.of_run(settings, data.labels, data.multi_label))
        state = rebuild(settings, data.pool, data.labels, gateway.read_all(), gateway.dataset_id)
        state.multi_label = data.multi_label
        foreign = gateway.read_foreign()
        if data.seed is not None or any(record.submitted for record in foreign):
            from daemon.seeds import build_seed

            # a warm start's seed, read again as when the run began: AL_SEED_FILE and the answers of the records
            # the daemon did not log (the batches never held a seed text, so none is counted twice)
            state.seed = build_seed(data.pool, data.seed, foreign, asked=state.used_indices())  # the batches' own
        kept = ""
        if store.path.exists():
            old = store.path.with_name(f"{store.path.name}.{'replaced' if readable else 'broken'}-{now()}")
            os.replace(store.path, old)
            kept = f"; the old file is kept as {old}"
        store.save(state)
        return (
            f"rebuilt {store.path} from dataset {settings.dataset!r}: {summary(state)}{kept}. Start the daemon as "
            "before: it retrains on every label (the metrics of past rounds are not recovered)"
        )
    finally:
        handle.close()


def _flush_and_exit(code: int) -> None:
    """Leave now, from any thread, without waiting for the scheduler's worker."""
    for handler in logging.getLogger().handlers:
        handler.flush()
    os._exit(code)


def _now() -> datetime:
    return datetime.now()
