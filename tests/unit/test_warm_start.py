"""Warm starts against the fake gateway: a seed file and a dataset's own answers become the first labels, batch 0
is chosen by a model trained on them, seed texts are never logged, and the seed survives a crash and restart."""

import json

import pytest

from daemon import steps
from daemon.config import ModelKind, Settings
from daemon.errors import DataError
from daemon.inputs import check_seed, load_seed
from daemon.learner import Learner
from daemon.loop import Daemon
from daemon.models import build_features
from daemon.pool import load_table
from daemon.seeds import build_seed
from daemon.state import ADOPTED, SEED_FILE, StateStore
from tests.conftest import tiny_rows, write_jsonl
from tests.unit.conftest import LABELS, label_batch

OUTSIDE = [  # seed texts the pool lacks: training-only rows
    {"id": "x1", "text": "a bowl of ramen with extra noodles", "label": "food"},
    {"id": "x2", "text": "the goalkeeper saved a penalty kick", "label": "sport"},
]


def seed_rows(world) -> list[dict]:
    """Nine texts of the pool (three per topic) and two it lacks."""
    pool = world["pool"]
    inside = [i for topic in range(3) for i in range(topic * 20, topic * 20 + 3)]
    return [{"id": f"s{i}", "text": pool.texts[i], "label": pool.gold[i]} for i in inside] + OUTSIDE


def seeded_daemon(world, tmp_path, seed_table=None, **overrides) -> Daemon:
    options = {"model": ModelKind.tfidf, "batch_size": 6, "state_dir": world["dir"], "dataset": "d", "workspace": "w"}
    settings = Settings(_env_file=None, **(options | overrides))
    pool = world["pool"]

    def learner_over(table):
        features = build_features(settings, table, pool, world["y"], len(LABELS))
        return Learner.from_settings(features, len(LABELS), settings)

    daemon = Daemon(settings, world["gateway"], learner_over(pool), pool, LABELS, world["y"], seed_table=seed_table)
    daemon.build_learner = learner_over
    return daemon


def seed_table(world, tmp_path, rows=None):
    path = write_jsonl(tmp_path / "seed.jsonl", rows or seed_rows(world))
    return load_seed(Settings(_env_file=None, seed_file=path))


def test_a_seed_file_is_trained_on_before_batch_0_and_its_texts_are_never_logged(world, tmp_path):
    table = seed_table(world, tmp_path)
    daemon = seeded_daemon(world, tmp_path, table)
    daemon.start()
    state, gateway = daemon.state, world["gateway"]
    seed = state.seed
    assert len(seed.labels) == 11 and set(seed.sources.values()) == {SEED_FILE} and seed.file.endswith("seed.jsonl")
    pool_size = len(world["pool"])
    assert seed.extra_texts == [row["text"] for row in OUTSIDE]
    assert sorted(i for i in seed.labels if i >= pool_size) == [pool_size, pool_size + 1]
    assert len(daemon.pool) == pool_size + 2 and daemon.pool.queryable == pool_size
    first = gateway.batch(0)
    assert len(first) == 6 and not {r.pool_index for r in first} & set(seed.labels)
    assert all(r.suggestion in LABELS and r.al_score is not None for r in first)  # chosen by a model, not at random
    assert not {r.text for r in gateway.records.values()} & {row["text"] for row in seed_rows(world)}
    label_batch(world, 0)
    daemon.tick()
    assert state.rounds[0].labels == 11 + 6  # round 0 trained on the seed and batch 0
    assert gateway.batch(1) and not {r.pool_index for r in gateway.batch(1)} & set(seed.labels)
    status = daemon.status()
    assert status["seed"] == {
        "labels": 11,
        "by_source": {SEED_FILE: 11},
        "training_only": 2,
        "file": str(table.source),
        "adopted_records": 0,
    }
    assert status["pool_size"] == pool_size and status["labels"] == 17


def test_a_datasets_own_answers_are_adopted_once_as_seed_labels(world, tmp_path, caplog):
    gateway = world["gateway"]
    pool = world["pool"]
    gateway.add_foreign("hand-1", pool.texts[0])  # in the pool: two people answered
    gateway.add_foreign("hand-2", pool.texts[25])
    gateway.add_foreign("hand-3", "a striker scored twice in the final")  # not in the pool: training-only
    gateway.add_foreign("hand-4", pool.texts[45])  # nobody answered: left alone
    for record_id, label, user in [
        ("hand-1", pool.gold[0], "u1"),
        ("hand-1", pool.gold[0], "u2"),
        ("hand-2", pool.gold[25], "u1"),
        ("hand-3", "sport", "u2"),
    ]:
        gateway.answer_foreign(record_id, label, user)
    daemon = seeded_daemon(world, tmp_path)
    with caplog.at_level("INFO"):
        daemon.start()
    seed = daemon.state.seed
    assert seed.labels == {0: pool.gold[0], 25: pool.gold[25], len(pool): "sport"}
    assert set(seed.sources.values()) == {ADOPTED} and seed.adopted_records == ["hand-1", "hand-2", "hand-3"]
    assert seed.votes[0] == [["u1", pool.gold[0]], ["u2", pool.gold[0]]]
    assert "3 seed labels adopted from the dataset's answered records (2 texts of the pool" in caplog.text
    assert "1 record(s) of the dataset without submitted answers left alone" in caplog.text
    assert not {r.pool_index for r in gateway.batch(0)} & {0, 25}
    assert all(r.suggestion is not None for r in gateway.batch(0))
    # adopted once: answers given later to those records are not read again
    gateway.answer_foreign("hand-4", "tech")
    restarted = seeded_daemon(world, tmp_path)
    restarted.start()
    assert restarted.state.seed.labels == seed.labels


def test_a_crash_after_the_seed_is_journaled_resumes_with_the_same_seed(world, tmp_path):
    table = seed_table(world, tmp_path)

    def crash(**_):
        raise RuntimeError("killed after the seed was journaled")

    steps.on_step("seed-journaled", crash)
    try:
        with pytest.raises(RuntimeError):
            seeded_daemon(world, tmp_path, table).start()
    finally:
        steps.clear()
    journaled = StateStore(world["dir"]).load()
    assert journaled.seed is not None and not journaled.batches and not world["gateway"].records
    restarted = seeded_daemon(world, tmp_path, table)
    restarted.start()
    assert restarted.state.seed == journaled.seed
    assert len(world["gateway"].batch(0)) == 6 and len(world["gateway"].records) == 6


def test_a_seed_file_is_checked_like_the_pool_and_read_only_when_a_run_begins(world, tmp_path):
    unlabelled = [{"id": "a", "text": "pasta with tomato sauce", "label": None}]
    with pytest.raises(DataError, match="no label in row 1"):
        seed_table(world, tmp_path, unlabelled)
    table = seed_table(world, tmp_path)
    daemon = seeded_daemon(world, tmp_path, table)
    daemon.start()
    check_seed(daemon.state, table, daemon.store.path)  # the same file: accepted
    changed = seed_rows(world)
    changed[0]["label"] = "tech" if changed[0]["label"] != "tech" else "food"
    with pytest.raises(DataError, match="changed since the run began"):
        check_seed(daemon.state, seed_table(world, tmp_path, changed), daemon.store.path)
    daemon.state.seed = None
    with pytest.raises(DataError, match="began without a seed file"):
        check_seed(daemon.state, table, daemon.store.path)


def test_build_seed_prefers_the_file_and_merges_repeated_texts(tmp_path):
    pool = load_table(write_jsonl(tmp_path / "pool.jsonl", tiny_rows(4)), "text", "label", "id")
    rows = [{"id": "a", "text": pool.texts[1], "label": "sport"}, {"id": "b", "text": "new text", "label": "tech"}]
    table = load_table(write_jsonl(tmp_path / "seed.jsonl", rows), "text", "label", "id")
    from daemon.gateway import Foreign

    foreign = [Foreign("r1", pool.texts[1], (("u1", "food"),)), Foreign("r2", " new text ", (("u1", "food"),))]
    seed = build_seed(pool, table, foreign)
    assert seed.labels == {1: "sport", len(pool): "tech"}  # the file's label wins over the adopted answers
    assert seed.extra_texts == ["new text"] and seed.adopted_records == ["r1", "r2"]
    assert json.loads(seed.model_dump_json())["labels"] == {"1": "sport", str(len(pool)): "tech"}


def test_the_export_names_each_labels_source(world, tmp_path):
    import pyarrow.parquet as pq

    daemon = seeded_daemon(world, tmp_path, seed_table(world, tmp_path), max_rounds=1)
    daemon.start()
    label_batch(world, 0)
    daemon.tick()
    assert daemon.finished.is_set()
    rows = pq.read_table(daemon.settings.export_path / "labelled.parquet").to_pylist()
    seeds = [row for row in rows if row["source"] == SEED_FILE]
    assert len(seeds) == 11 and all(row["batch_id"] is None for row in seeds)
    assert {row["id"] for row in seeds if row["pool_index"] >= len(world["pool"])} == {"seed-0", "seed-1"}
    assert [row["source"] for row in rows].count("batch") == 6
    report = json.loads((daemon.settings.export_path / "report.json").read_text())
    assert report["seed"]["labels"] == 11 and report["labels"] == 17
