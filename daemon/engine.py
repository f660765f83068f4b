"""Where the data-heavy work runs: on this machine, or on a Ray cluster (``AL_RAY_ADDRESS``).

The daemon stays the one control plane (journal, Argilla I/O, the round lock); what grows with the pool goes
through an engine, two verbs:

- :meth:`Engine.embed` turns the pool's texts into sentence vectors, one *part* (``PART`` texts) at a time, in
  order, from where an earlier, interrupted embedding stopped (the caller writes each part to disk as it comes:
  :func:`daemon.pool.embed`);
- :meth:`Engine.proba` scores a feature-matrix pool with a fitted classifier, ``chunk`` rows at a time;
- :meth:`Engine.fit` trains a classifier and hands back the fitted one (on Ray: the transformer and setfit models'
  fine-tuning as a task with its own CPUs and GPUs, ``AL_RAY_FINE_TUNE``; everything else trains here).

:class:`LocalEngine` does all three in this process (every version before Ray). ``daemon.cluster.RayEngine`` does
them on Ray (embedding: an actor pool, ``ray.util.ActorPool`` — Ray Data does not run from a Ray Client driver;
scoring: Ray tasks over pool shards put in the object store once; fine-tuning: one task per fit). Both cut the work
the same way (parts of ``PART`` texts encoded in chunks of ``CHUNK``, batches of ``BATCH``; score shards of
``chunk`` rows; a fit from the same random state), so the vectors, the probabilities and the models, hence the
picks, are the same on either: tests/integration/test_ray_engine.py runs one set of assertions against both.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    from daemon.config import Settings
    from daemon.encoders import Encoder

PART = 1024  # texts per part: what a restart resumes from
CHUNK = 512  # texts per encode call (PART is a multiple of it: a part is cut into whole chunks)
BATCH = 64  # the encoder's batch size


class Engine(Protocol):
    name: str

    def embed(self, texts: list[str], encoder: Encoder, done: int) -> Iterator[tuple[int, np.ndarray]]:
        """``(start, vectors)`` for each part of ``texts`` from text ``done`` on, in order."""
        ...

    def proba(self, classifier: Any, data_set: Any, chunk: int) -> np.ndarray:
        """``classifier.predict_proba`` over a small-text feature-matrix dataset, ``chunk`` rows at a time."""
        ...

    def fit(self, classifier: Any, train_set: Any, *args: Any, **kwargs: Any) -> Any:
        """``classifier.fit(train_set, ...)``; returns the fitted classifier (this one, or a copy fitted elsewhere)."""
        ...

    def view(self) -> dict:
        """The status's ``engine`` section."""
        ...


def encode_part(model: Any, texts: list[str]) -> np.ndarray:
    """One part's vectors (L2-normalised float32), encoded ``CHUNK`` texts at a time: the same cut wherever it runs
    (an int8 ONNX vector moves a little with its batch-mates, so the batches must not)."""
    return np.concatenate(
        [
            model.encode(
                texts[start : start + CHUNK],
                batch_size=BATCH,
                show_progress_bar=False,
                normalize_embeddings=True,
                convert_to_numpy=True,
            ).astype(np.float32, copy=False)
            for start in range(0, len(texts), CHUNK)
        ]
    )


def score_chunk(classifier: Any, data_set: Any) -> np.ndarray:
    """A small-text classifier's probabilities for a slice of the pool. Rows kept in blocks (the hybrid model's
    :class:`daemon.models.JoinedRows`) are scored from the fitted estimator without joining them (joining a 32k-row
    chunk costs 5x its scoring)."""
    rows = data_set.x
    if hasattr(rows, "linear_proba") and getattr(classifier, "model", None) is not None:
        return rows.linear_proba(classifier.model)
    return np.asarray(classifier.predict_proba(data_set), dtype=np.float64)


class LocalEngine:
    """Everything in this process."""

    name = "local"

    def embed(self, texts: list[str], encoder: Encoder, done: int) -> Iterator[tuple[int, np.ndarray]]:
        if done >= len(texts):
            return
        model = encoder.load()
        for start in range(done, len(texts), PART):
            yield start, encode_part(model, texts[start : start + PART])

    def proba(self, classifier: Any, data_set: Any, chunk: int) -> np.ndarray:
        return np.concatenate(
            [score_chunk(classifier, data_set[start : start + chunk]) for start in range(0, len(data_set), chunk)]
        )

    def fit(self, classifier: Any, train_set: Any, *args: Any, **kwargs: Any) -> Any:
        classifier.fit(train_set, *args, **kwargs)
        return classifier

    def view(self) -> dict:
        return {"name": self.name}


_engines: dict[tuple, Engine] = {}


def engine_for(settings: Settings) -> Engine:
    """The engine ``AL_RAY_ADDRESS`` asks for (one per address and settings, per process; Ray is imported only
    for Ray)."""
    if settings.ray_address is None:
        return _engines.setdefault((None,), LocalEngine())
    key = (
        settings.ray_address,
        settings.ray_workers,
        settings.ray_gpus_per_worker,
        settings.ray_fine_tune,
        settings.ray_fine_tune_cpus,
        settings.ray_fine_tune_gpus,
    )
    if key not in _engines:
        from daemon.cluster import FineTune, RayEngine

        fine_tune = (
            FineTune(settings.ray_fine_tune_cpus, settings.ray_fine_tune_gpus) if settings.ray_fine_tune else None
        )
        _engines[key] = RayEngine(settings.ray_address, settings.ray_workers, settings.ray_gpus_per_worker, fine_tune)
    return _engines[key]
