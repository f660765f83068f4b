"""Every model and query strategy runs in the daemon against the real Argilla: a short run each (two rounds on a
small three-topic pool), checking the batches, their scores and suggestions in Argilla."""

import httpx
import numpy as np
import pytest

from daemon.config import ColdStart, EncoderName, ModelKind, QueryStrategyName, Settings, Training
from daemon.encoders import int8_file, quantization_config
from daemon.gateway import ArgillaGateway
from daemon.learner import Learner
from daemon.loop import Daemon
from daemon.models import build_features
from daemon.pool import load_table
from tests.conftest import tiny_rows, write_jsonl
from tests.integration.test_gateway import annotator_for

pytestmark = pytest.mark.integration

LABELS = ["food", "sport", "tech"]
SCORED = {"breaking_ties", "least_confidence", "prediction_entropy", "bald"}
CASES = [
    (ModelKind.tfidf, QueryStrategyName.breaking_ties, ColdStart.random),
    (ModelKind.tfidf, QueryStrategyName.least_confidence, ColdStart.random),
    (ModelKind.tfidf, QueryStrategyName.prediction_entropy, ColdStart.random),
    (ModelKind.tfidf, QueryStrategyName.random, ColdStart.random),
    (ModelKind.tfidf, QueryStrategyName.embedding_kmeans, ColdStart.kmeans),
    (ModelKind.tfidf, QueryStrategyName.greedy_coreset, ColdStart.random),
    (ModelKind.embeddings, QueryStrategyName.breaking_ties, ColdStart.kmeans),
    (ModelKind.embeddings, QueryStrategyName.embedding_kmeans, ColdStart.random),
    (ModelKind.embeddings, QueryStrategyName.greedy_coreset, ColdStart.random),
    (ModelKind.hybrid, QueryStrategyName.breaking_ties, ColdStart.random),
    (ModelKind.hybrid, QueryStrategyName.greedy_coreset, ColdStart.kmeans),
    (ModelKind.transformer, QueryStrategyName.bald, ColdStart.random),
    (ModelKind.transformer, QueryStrategyName.greedy_coreset, ColdStart.kmeans),
    (ModelKind.setfit, QueryStrategyName.breaking_ties, ColdStart.random),
    (ModelKind.setfit, QueryStrategyName.bald, ColdStart.kmeans),
]


def tiny_daemon(
    argilla_stack, dataset_name, tmp_path, cache_dir, pool_file=None, test_file=None, labels=LABELS, **options
) -> Daemon:
    """A daemon against the real Argilla, with short fine-tuning: on a 30-text three-topic pool (its own test set)
    unless ``pool_file`` (and ``test_file``) say otherwise."""
    pool_file = pool_file or write_jsonl(tmp_path / "pool.jsonl", tiny_rows(10))
    pool = load_table(pool_file, "text", "label", "id")
    test = pool if test_file is None else load_table(test_file, "text", "label", "id")
    settings = Settings(
        _env_file=None,
        argilla_url=argilla_stack["url"],
        argilla_api_key=argilla_stack["owner_key"],
        dataset=dataset_name,
        state_dir=tmp_path / "state",
        cache_dir=cache_dir,
        pool_file=pool_file,
        test_file=test_file,
        stop_criteria=[],
        publish_progress=False,
        **(
            {"bald_samples": 3, "transformer_epochs": 1, "transformer_min_steps": 0, "transformer_max_length": 16}
            | options
        ),
    )
    y = np.array([labels.index(label) for label in test.gold])
    features = build_features(settings, pool, test, y, len(labels))
    learner = Learner.from_settings(features, len(labels), settings)
    gateway = ArgillaGateway(settings.argilla_url, argilla_stack["owner_key"], "argilla", dataset_name)
    return Daemon(settings, gateway, learner, pool, labels, y)


@pytest.mark.parametrize(("model", "strategy", "cold_start"), CASES, ids=lambda v: v.value)
def test_a_short_run_with_each_model_and_strategy(
    argilla_stack, dataset_name, tmp_path, cache_dir, model, strategy, cold_start
):
    short_run(argilla_stack, dataset_name, tmp_path, cache_dir, model, strategy, cold_start)


def test_a_short_run_with_the_int8_onnx_encoder(argilla_stack, dataset_name, tmp_path, cache_dir):
    daemon = short_run(
        argilla_stack,
        dataset_name,
        tmp_path,
        cache_dir,
        ModelKind.hybrid,
        QueryStrategyName.breaking_ties,
        ColdStart.random,
        encoder=EncoderName.onnx_int8,
    )
    assert daemon.learner.features.encoder.onnx_file == int8_file(quantization_config())


def short_run(argilla_stack, dataset_name, tmp_path, cache_dir, model, strategy, cold_start, **options) -> Daemon:
    """Two rounds of six labels each; checks the three batches in Argilla, their suggestions and scores."""
    daemon = tiny_daemon(
        argilla_stack,
        dataset_name,
        tmp_path,
        cache_dir,
        model=model,
        query_strategy=strategy,
        cold_start=cold_start,
        training=Training.inline,  # each batch chosen by the freshest model (ahead mode: test_training_ahead.py)
        batch_size=6,
        **options,
    )
    pool, gateway, learner = daemon.pool, daemon.gateway, daemon.learner
    daemon.start()
    for batch_id in (0, 1):
        person = annotator_for(argilla_stack, dataset_name, dict(zip(pool.texts, pool.gold, strict=True)), LABELS)
        assert person.run(max_records=6).submitted == 6
        daemon.tick()
        assert daemon.state.rounds_trained == batch_id + 1, daemon.status()["reason"]

    owner = httpx.Client(base_url=argilla_stack["url"], headers={"X-Argilla-Api-Key": argilla_stack["owner_key"]})
    records = owner.get(
        f"/api/v1/datasets/{gateway.dataset_id}/records", params={"include": "suggestions", "limit": 100}
    ).json()["items"]
    by_batch: dict[int, list[dict]] = {}
    for record in records:
        by_batch.setdefault(record["metadata"]["batch_id"], []).append(record)
    assert sorted(by_batch) == [0, 1, 2] and all(len(batch) == 6 for batch in by_batch.values())
    indices = [r["metadata"]["pool_index"] for r in records]
    assert len(indices) == len(set(indices)) == 18  # nothing asked twice
    for record in by_batch[2]:  # chosen by the round-1 model: its guess and, where the strategy has one, a score
        assert record["suggestions"][0]["value"] in LABELS and record["suggestions"][0]["agent"].endswith(":round-2")
        assert ("al_score" in record["metadata"]) == (strategy.value in SCORED)
    if cold_start is ColdStart.kmeans:
        assert sorted(daemon.state.batches[0].pool_indices) == sorted(learner.initial_batch(6))
    assert all(m.accuracy is not None for m in daemon.state.rounds)
    return daemon
