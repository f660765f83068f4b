"""The Ray engine against a real local Ray cluster (``ray start --head`` in a subprocess), with the same
assertions as the local engine (the contract of daemon/engine.py): the same vectors part by part, the same
probabilities, hence the same picks for the same seed; a Ray worker killed mid-embedding is retried by Ray; a lost
cluster sends the work to this machine (nothing lost, the reason shown) until it is back."""

from __future__ import annotations

import json
import os
import signal
import time

import numpy as np
import pytest

from daemon.cluster import RayEngine
from daemon.config import EncoderName, ModelKind, Settings
from daemon.encoders import Encoder
from daemon.engine import PART, LocalEngine, engine_for
from daemon.learner import Learner
from daemon.models import build_features
from daemon.pool import default_model_path, load_table
from tests.conftest import TREC, tiny_rows, write_jsonl

pytestmark = pytest.mark.ray

LABELS = ["food", "sport", "tech"]


@pytest.fixture
def cluster(ray_cluster):
    """The session's Ray cluster, up (an earlier test may have brought it down)."""
    if ray_cluster.process is None:
        ray_cluster.up()
    return ray_cluster


@pytest.fixture(scope="module")
def texts() -> list[str]:
    """1,076 TREC-6 questions: a whole part and a short one."""
    rows = [json.loads(line) for line in (TREC / "train.jsonl").read_text().splitlines()[: PART + 52]]
    return [row["text"] for row in rows]


@pytest.fixture(scope="module")
def reference(texts) -> dict[int, np.ndarray]:
    """The local engine's parts: what every engine must hand back."""
    return dict(LocalEngine().embed(texts, Encoder(EncoderName.torch, default_model_path()), 0))


def engines(cluster) -> dict:
    return {"local": LocalEngine(), "ray": RayEngine(cluster.address, workers=2)}


@pytest.mark.parametrize("name", ["local", "ray"])
def test_each_engine_embeds_the_parts_in_order_as_the_local_engine_does(cluster, texts, reference, name):
    engine = engines(cluster)[name]
    encoder = Encoder(EncoderName.torch, default_model_path())
    parts = list(engine.embed(texts, encoder, 0))
    assert [start for start, _ in parts] == [0, PART]
    for start, vectors in parts:
        assert vectors.dtype == np.float32 and vectors.shape == (min(PART, len(texts) - start), 384)
        np.testing.assert_array_equal(vectors, reference[start])
    resumed = list(engine.embed(texts, encoder, PART))  # an interrupted embedding goes on from its last part
    assert [start for start, _ in resumed] == [PART]
    assert list(engine.embed(texts, encoder, len(texts))) == []
    if name == "ray":
        assert engine.view()["fallbacks"] == 0 and engine.error is None  # the cluster did the work


def tiny_settings(tmp_path, cache_dir, **options) -> Settings:
    pool_file = write_jsonl(tmp_path / "pool.jsonl", tiny_rows(40))  # 120 texts
    return Settings(
        _env_file=None, pool_file=pool_file, cache_dir=cache_dir, seed=3, **{"model": ModelKind.hybrid} | options
    )


def picks(settings: Settings, rounds: int = 3, size: int = 9, engine=None) -> tuple[list[list[int]], np.ndarray]:
    """The batches a seeded learner picks with oracle labels, and its last pool probabilities (``engine``: the one
    its classifiers use instead of the settings')."""
    pool = load_table(settings.pool_file, "text", "label", "id")
    gold = np.array([LABELS.index(label) for label in pool.gold])
    features = build_features(settings, pool, None, None, len(LABELS))
    if engine is not None:
        features.factory.engine = engine
    learner = Learner.from_settings(features, len(LABELS), settings)
    batches = [learner.initial_batch(size)]
    labelled: dict[int, int] = {}
    for round_number in range(rounds):
        labelled |= {i: int(gold[i]) for i in batches[-1]}
        learner.fit(labelled, set(), round_number)
        batches.append(learner.query(size, round_number).indices)
    assert learner.fits == {"initialize_data": 1, "update": rounds - 1}
    return batches, learner.pool_proba()


def test_the_same_seed_picks_the_same_batches_through_ray_as_locally(cluster, tmp_path, cache_dir):
    local_batches, local_proba = picks(tiny_settings(tmp_path, cache_dir))
    settings = tiny_settings(tmp_path, cache_dir, ray_address=cluster.address, ray_workers=2)
    ray_batches, ray_proba = picks(settings)
    assert ray_batches == local_batches
    np.testing.assert_array_equal(ray_proba, local_proba)
    engine = engine_for(settings)
    assert isinstance(engine, RayEngine) and engine.view() | {"error": None} == {
        "name": "ray",
        "address": cluster.address,
        "workers": 2,
        "fallbacks": 0,
        "error": None,
    }


def test_the_scoring_shards_go_to_the_cluster_and_a_lost_cluster_falls_back_to_this_machine(
    cluster, tmp_path, cache_dir
):
    import ray

    settings = tiny_settings(tmp_path, cache_dir)
    pool = load_table(settings.pool_file, "text", "label", "id")
    gold = np.array([LABELS.index(label) for label in pool.gold])
    features = build_features(settings, pool, None, None, len(LABELS))
    learner = Learner.from_settings(features, len(LABELS), settings)
    learner.fit({i: int(gold[i]) for i in range(0, 120, 7)}, set(), 0)
    classifier = learner.classifier
    expected = LocalEngine().proba(classifier, features.pool, 25)

    engine = RayEngine(cluster.address)
    np.testing.assert_array_equal(engine.proba(classifier, features.pool, 25), expected)
    assert ray.is_initialized() and engine.fallbacks == 0
    assert [len(shards) for _, shards in engine._shards.values()] == [5]  # 120 rows, 25 a shard, put once
    engine.proba(classifier, features.pool, 25)
    assert len(engine._shards) == 1  # the next round scores the same shards

    cluster.down()  # the cluster is lost between two rounds
    np.testing.assert_array_equal(engine.proba(classifier, features.pool, 25), expected)  # scored here instead
    assert engine.fallbacks == 1 and engine.error.startswith("scoring: ")
    cluster.up()  # back, on the same address: the next round reconnects
    np.testing.assert_array_equal(engine.proba(classifier, features.pool, 25), expected)
    assert engine.fallbacks == 1 and ray.is_initialized()


def test_a_ray_worker_killed_mid_embedding_is_retried_by_ray(cluster, texts, reference):
    import psutil

    engine = RayEngine(cluster.address, workers=1)  # one actor: once part 0 is back it is encoding part 1
    encoder = Encoder(EncoderName.torch, default_model_path())
    parts = engine.embed(texts, encoder, 0)
    first = next(parts)
    killed = []
    for process in psutil.process_iter(["pid", "cmdline"]):
        if any("_PartEncoder" in part for part in process.info["cmdline"] or []):
            os.kill(process.info["pid"], signal.SIGKILL)
            killed.append(process.info["pid"])
            break
    assert killed, "no Ray encoder actor process found"
    started = time.monotonic()
    rest = list(parts)
    assert time.monotonic() - started < 300
    got = dict([first, *rest])
    assert sorted(got) == [0, PART]
    for start, vectors in got.items():
        np.testing.assert_array_equal(vectors, reference[start])
    assert engine.fallbacks == 0, engine.error  # Ray's retries, not the local fallback


def test_fine_tuning_as_a_ray_task_gives_the_model_trained_here(cluster, tmp_path, cache_dir):
    """AL_RAY_FINE_TUNE: each round's fit is a Ray task (as many threads as this process uses, so the arithmetic
    is the same), started from this process's random state: the same model, hence the same picks, as fitted here."""
    import torch

    from daemon.cluster import FineTune

    options = {
        "transformer_epochs": 1,
        "transformer_min_steps": 0,
        "transformer_max_length": 16,
        "model": ModelKind.transformer,
    }
    local = picks(tiny_settings(tmp_path, cache_dir, **options), 2, 6, LocalEngine())
    settings = tiny_settings(tmp_path, cache_dir, ray_address=cluster.address, ray_fine_tune=True, **options)
    threads = torch.get_num_threads()
    engine = RayEngine(cluster.address, fine_tune=FineTune(cpus=threads))
    assert engine_for(settings).view()["fine_tune"] == {"cpus": 1.0, "gpus": 0.0, "fits": 0}  # the settings' engine
    on_ray = picks(settings, 2, 6, engine)
    assert engine.view()["fine_tune"] == {"cpus": float(threads), "gpus": 0.0, "fits": 2} and engine.fallbacks == 0
    assert on_ray[0] == local[0]
    np.testing.assert_array_equal(on_ray[1], local[1])

    # a cluster without the GPUs asked for: Ray would wait for them forever, so the round fine-tunes here
    wants_a_gpu = RayEngine(cluster.address, fine_tune=FineTune(cpus=1, gpus=1))
    assert picks(settings, 1, 6, wants_a_gpu)[0] == local[0][:2]
    assert wants_a_gpu.fallbacks == 1 and wants_a_gpu.view()["fine_tune"]["fits"] == 0
    assert wants_a_gpu.error == (
        "fine-tuning: Unschedulable: the cluster has 0 GPUs and the fine-tuning asks for 1 (AL_RAY_FINE_TUNE_GPUS)"
    )
