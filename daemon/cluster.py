"""Ray as the engine past one machine (``AL_RAY_ADDRESS``): the pool's embedding and scoring on a Ray cluster.

The daemon stays the control plane: it journals, talks to Argilla, holds the round lock, and writes the embedding
cache; Ray does the work that grows with the pool (the :class:`daemon.engine.Engine` verbs):

- **embedding**: the pool's parts (``PART`` texts each, from where an interrupted embedding stopped) over an actor
  pool of ``AL_RAY_WORKERS`` encoders (``ray.util.ActorPool``; each actor loads the model once and asks for
  ``AL_RAY_GPUS_PER_WORKER`` GPUs where the cluster has them), results in order, each part handed back to
  :func:`daemon.pool.embed`, which writes it as it does its own;
- **scoring**: the pool's rows are put in the object store once, in shards of the local engine's chunk; each
  round the fitted classifier is put once and one Ray task per shard returns its probabilities;
- **fine-tuning** (``AL_RAY_FINE_TUNE``, the transformer and setfit models): each fit is one Ray task asking for
  ``AL_RAY_FINE_TUNE_CPUS`` CPUs and ``AL_RAY_FINE_TUNE_GPUS`` GPUs. It gets the untrained classifier, the labelled
  texts and the daemon's random state at that point (numpy's and torch's), trains on the worker's GPU if it was
  given one, and sends the fitted classifier back on the CPU; the daemon scores the pool with it here. A cluster
  without the resources asked for (counted before the task is sent: Ray would otherwise wait for them forever)
  fine-tunes here instead, with the reason in ``/status``.

The daemon connects as a **Ray Client** (``ray://head:10001``), never as a direct driver: a direct driver's process
is ended by Ray itself when the cluster's GCS is gone for 60 s (measured: the daemon would die with its cluster),
while a client gets a ``ConnectionError`` it can recover from. That is also why the embedding uses an actor pool and
not Ray Data: Ray Data does not run from a Ray Client driver (``'Worker' object has no attribute 'core_worker'``).

A part is encoded exactly as :class:`daemon.engine.LocalEngine` encodes it (:func:`daemon.engine.encode_part`), and a
shard is the local engine's chunk, so the vectors, the probabilities and the picks are the same through Ray as
locally. A worker killed mid-job is retried by Ray (actors restart, tasks retry). When the cluster cannot be
reached, or a job fails past Ray's retries, the step runs locally instead, with a warning and the reason in
``/status`` (``engine``): labelling never waits on the cluster. The model folder must be readable at the same
path on the workers (a shared volume, or the same image: the bundled model is inside the package).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from daemon.encoders import Encoder
from daemon.engine import PART, LocalEngine, encode_part, score_chunk

log = logging.getLogger(__name__)

CONNECT_RETRIES = (1.0, 2.0, 4.0)  # seconds between attempts when Ray Client's server refuses a new client
SHARDS_KEPT = 4  # datasets whose shards stay in the object store (the pool, the test set, and a spare or two)


class Unschedulable(RuntimeError):
    """The cluster lacks the resources a task asks for (Ray would queue it until they appear)."""


@dataclasses.dataclass(frozen=True)
class FineTune:
    """What a fine-tuning task asks Ray for (``AL_RAY_FINE_TUNE_CPUS``, ``AL_RAY_FINE_TUNE_GPUS``)."""

    cpus: float = 1.0
    gpus: float = 0.0


class RayEngine:
    """:class:`daemon.engine.Engine` on a Ray cluster, falling back to :class:`LocalEngine` when Ray fails."""

    name = "ray"

    def __init__(
        self, address: str, workers: int = 2, gpus_per_worker: float = 0.0, fine_tune: FineTune | None = None
    ) -> None:
        self.address = address
        self.workers = workers
        self.gpus_per_worker = gpus_per_worker
        self.fine_tune = fine_tune  # None: models train here (the pool is still embedded and scored on Ray)
        self.fine_tuned = 0  # fits that ran on the cluster
        self.local = LocalEngine()
        self.error: str | None = None  # the last failure that sent work to the local engine
        self.fallbacks = 0
        self._lock = threading.Lock()
        # (id of a dataset, chunk) -> its rows' shards in the object store: the pool and the test set, kept while
        # the connection lasts (the most recent SHARDS_KEPT datasets)
        self._shards: dict[tuple[int, int], tuple[Any, list[Any]]] = {}

    # ------------------------------------------------------------------------------------------- connection
    def connect(self) -> Any:
        """The ``ray`` module, connected to the cluster (once; again after the cluster was lost)."""
        import ray

        with self._lock:
            if not ray.is_initialized():
                log.info("connecting to the Ray cluster at %s", self.address)
                for wait in (*CONNECT_RETRIES, None):
                    try:
                        ray.init(
                            address=self.address,
                            namespace="al-daemon",
                            log_to_driver=False,
                            logging_level=logging.WARNING,
                        )
                        break
                    except ConnectionAbortedError as exc:
                        # Ray Client's server refuses a new client ("Initialization failure from server") while the
                        # session of one it lost (a killed daemon, a restarted cluster) is torn down: seconds
                        if wait is None:
                            raise
                        log.info("Ray Client refused the connection (%s); trying again in %.0f s", exc, wait)
                        with contextlib.suppress(Exception):
                            ray.shutdown()
                        time.sleep(wait)
                self._shards.clear()  # object refs do not outlive a connection
        return ray

    def _failed(self, what: str, exc: BaseException) -> None:
        self.fallbacks += 1
        self.error = f"{what}: {type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
        log.warning("Ray %s failed (%s); running it on this machine instead", what, self.error)
        if isinstance(exc, Unschedulable):
            return  # the connection is fine (and shared by every engine of this process)
        self._shards.clear()
        try:
            import ray

            if ray.is_initialized():
                ray.shutdown()  # reconnect on the next job
        except Exception:  # noqa: BLE001 - a broken connection may fail to close; the next init starts afresh
            pass

    def view(self) -> dict:
        view = {
            "name": self.name,
            "address": self.address,
            "workers": self.workers,
            "fallbacks": self.fallbacks,
            "error": self.error,
        }
        if self.fine_tune is not None:
            view["fine_tune"] = {**dataclasses.asdict(self.fine_tune), "fits": self.fine_tuned}
        return view

    # -------------------------------------------------------------------------------------------- embedding
    def embed(self, texts: list[str], encoder: Encoder, done: int) -> Iterator[tuple[int, np.ndarray]]:
        """Parts from ``done`` on, in order, from the actor pool; the rest locally if the cluster fails."""
        position = done
        try:
            for start, vectors in self._embed_on_ray(texts, encoder, done):
                yield start, vectors
                position = start + len(vectors)
        except Exception as exc:  # noqa: BLE001 - any Ray failure: go on here, from the last part handed over
            self._failed("embedding", exc)
            yield from self.local.embed(texts, encoder, position)

    def _embed_on_ray(self, texts: list[str], encoder: Encoder, done: int) -> Iterator[tuple[int, np.ndarray]]:
        ray = self.connect()
        from ray.util import ActorPool

        starts = list(range(done, len(texts), PART))
        if not starts:
            return
        actor = ray.remote(
            num_cpus=1,
            num_gpus=self.gpus_per_worker,
            max_restarts=-1,  # an actor whose process died is restarted...
            max_task_retries=-1,  # ...and the part it was encoding sent again
        )(_PartEncoder)
        actors = [actor.remote(encoder, self.gpus_per_worker > 0) for _ in range(min(self.workers, len(starts)))]
        try:
            pool = ActorPool(actors)  # each actor takes the next part as it finishes one; results come in order
            encoded = pool.map(lambda worker, start: worker.encode.remote(texts[start : start + PART]), starts)
            yield from zip(starts, encoded, strict=True)
        finally:
            for worker in actors:
                ray.kill(worker)

    # ---------------------------------------------------------------------------------------------- scoring
    def proba(self, classifier: Any, data_set: Any, chunk: int) -> np.ndarray:
        try:
            return self._proba_on_ray(classifier, data_set, chunk)
        except Exception as exc:  # noqa: BLE001 - any Ray failure: score here this time, try Ray next round
            self._failed("scoring", exc)
            return self.local.proba(classifier, data_set, chunk)

    def _proba_on_ray(self, classifier: Any, data_set: Any, chunk: int) -> np.ndarray:
        ray = self.connect()
        shards = self._pool_shards(ray, data_set, chunk)
        model = ray.put(classifier)
        remote = ray.remote(max_retries=3)(score_chunk)
        return np.concatenate(ray.get([remote.remote(model, shard) for shard in shards]))

    def _pool_shards(self, ray: Any, data_set: Any, chunk: int) -> list[Any]:
        """A dataset's rows in the object store, in shards of ``chunk`` rows. A whole dataset (the pool, the test
        set: built once per run, scored every round) is put once and kept with its shards, which also keeps its
        ``id`` from being reused; a view of some rows is put afresh each time."""
        from small_text import SklearnDataset

        key = (id(data_set), chunk)
        if key in self._shards:
            return self._shards[key][1]
        shards = [ray.put(_materialise(data_set[start : start + chunk])) for start in range(0, len(data_set), chunk)]
        if isinstance(data_set, SklearnDataset):
            while len(self._shards) >= SHARDS_KEPT:
                self._shards.pop(next(iter(self._shards)))  # the oldest goes
            self._shards[key] = (data_set, shards)
        return shards

    # ------------------------------------------------------------------------------------------ fine-tuning
    def fit(self, classifier: Any, train_set: Any, *args: Any, **kwargs: Any) -> Any:
        """A transformer or setfit classifier fitted by a Ray task (``AL_RAY_FINE_TUNE``); anything else, or any
        Ray failure, fits here. The fit is the same either way: the task starts from this process's random state."""
        if self.fine_tune is None or _feature_matrix(train_set):
            return self.local.fit(classifier, train_set, *args, **kwargs)
        try:
            fitted = self._fit_on_ray(classifier, train_set, args, kwargs)
        except Exception as exc:  # noqa: BLE001 - any Ray failure: fine-tune here this round, try Ray next round
            self._failed("fine-tuning", exc)
            return self.local.fit(classifier, train_set, *args, **kwargs)
        self.fine_tuned += 1
        return fitted

    def _fit_on_ray(self, classifier: Any, train_set: Any, args: tuple, kwargs: dict) -> Any:
        import torch

        ray = self.connect()
        wanted = self.fine_tune
        have = ray.cluster_resources()
        for resource, amount in (("CPU", wanted.cpus), ("GPU", wanted.gpus)):
            if amount > have.get(resource, 0.0):
                raise Unschedulable(
                    f"the cluster has {have.get(resource, 0.0):g} {resource}s and the fine-tuning asks for "
                    f"{amount:g} (AL_RAY_FINE_TUNE_{resource}S)"
                )
        task = ray.remote(num_cpus=wanted.cpus, num_gpus=wanted.gpus, max_retries=3)(_fine_tune)
        random_state = (np.random.get_state(), torch.get_rng_state())
        fitted = ray.get(task.remote(classifier, train_set, args, kwargs, random_state, wanted))
        fitted.model.to(fitted.device)  # back on the CPU it was sent as, on this machine's device
        return fitted


def _feature_matrix(data_set: Any) -> bool:
    from small_text import SklearnDataset
    from small_text.data.datasets import SklearnDatasetView

    return isinstance(data_set, SklearnDataset | SklearnDatasetView)


def _fine_tune(classifier: Any, train_set: Any, args: tuple, kwargs: dict, random_state: tuple, wanted: FineTune):
    """The Ray task: fit ``classifier`` on this worker (its GPU when Ray gave one) from the daemon's random state,
    with as many compute threads as CPUs asked for; hand it back on the CPU, set for the daemon's device."""
    import torch

    np.random.set_state(random_state[0])
    torch.set_rng_state(random_state[1])
    torch.set_num_threads(max(1, int(wanted.cpus)))
    home = classifier.device
    classifier.device = "cuda" if wanted.gpus > 0 and torch.cuda.is_available() else "cpu"
    try:
        classifier.fit(train_set, *args, **kwargs)
    finally:
        classifier.device = home
    classifier.model.to("cpu")
    return classifier


def _materialise(view: Any) -> Any:
    """A small-text dataset view as a dataset of its own rows (what a Ray task receives: the rows, not the pool)."""
    from small_text import SklearnDataset

    return SklearnDataset(view.x, view.y, target_labels=view.target_labels)


class _PartEncoder:
    """A Ray actor with one CPU (and GPUs if asked): loads the encoder once, with one compute thread (ONNX Runtime
    and PyTorch would each start a thread per core of the node, and the node's other actors would wait), on the
    GPU Ray gave it if any, then encodes one part per call."""

    def __init__(self, encoder: Encoder, gpu: bool = False) -> None:
        device = "cpu"
        if gpu:
            import torch

            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.model = encoder.load(threads=1, device=device)

    def encode(self, texts: list[str]) -> np.ndarray:
        return encode_part(self.model, texts)
