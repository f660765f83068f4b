"""The export: labelled set as Parquet and a datasets folder, the model, and the report; all load back."""

import json
import shutil
import stat

import datasets
import joblib
import numpy as np
import pyarrow.parquet as pq
import pytest

from daemon.app import export_now
from daemon.config import ModelKind, Settings, Training
from daemon.export import export_run, load_model
from daemon.learner import Learner
from daemon.models import build_features
from daemon.pool import load_table
from tests.conftest import free_port, tiny_rows, write_jsonl
from tests.unit.conftest import LABELS, make_daemon, run_rounds


def check_labelled(folder, state, pool):
    table = pq.read_table(folder / "labelled.parquet").to_pylist()
    trained = state.training_labels()
    assert len(table) == len(trained) and {row["pool_index"] for row in table} == set(trained)
    for row in table:
        assert row["label"] == trained[row["pool_index"]]
        assert row["text"] == pool.texts[row["pool_index"]] and row["id"] == pool.ids[row["pool_index"]]
        assert row["annotators"] == ["annotator"] and row["annotator_ids"] == ["u1"]
    batches = [row["batch_id"] for row in table]
    assert batches == sorted(batches)
    assert datasets.load_from_disk(str(folder / "labelled")).to_list() == table
    return table


def test_stop_exports_labels_model_and_report(finished_run):
    world, daemon, _ = finished_run
    folder = daemon.settings.export_path
    assert daemon.state.exported_at is not None
    table = check_labelled(folder, daemon.state, world["pool"])
    pipeline = joblib.load(folder / "model" / "model.joblib")
    labels = json.loads((folder / "model" / "labels.json").read_text())
    assert labels == LABELS
    predicted = list(pipeline.predict([row["text"] for row in table]))
    assert np.mean([p == row["label"] for p, row in zip(predicted, table, strict=True)]) > 0.8
    report = json.loads((folder / "report.json").read_text())
    assert report["stop_reason"].startswith("max_rounds") and report["rounds"] == 4
    assert report["labels"] == len(table) and sum(report["label_counts"].values()) == len(table)
    assert [row["round"] for row in report["curve"]] == [0, 1, 2, 3]
    assert report["settings"]["argilla_api_key"] == "**********"
    assert report["model"]["format"] == "joblib" and report["annotators"] == {"annotator": len(table)}
    assert (folder / "learning-curve.png").read_bytes().startswith(b"\x89PNG")
    # the README's promise: the export is the owner's only (files 0600, folders 0700)
    for path in [folder, *folder.rglob("*")]:
        assert stat.S_IMODE(path.stat().st_mode) == (0o700 if path.is_dir() else 0o600), path


def test_a_half_built_export_left_by_a_crash_is_removed_at_start(finished_run, tmp_path):
    world, daemon, _ = finished_run
    export = daemon.settings.export_path
    half = export.parent / f".{export.name}.tmp-4242"  # what a crash mid-export leaves beside the export
    half.mkdir()
    (half / "labelled.parquet").write_bytes(b"half")
    old = export.parent / f".{export.name}.old-4242"
    shutil.copytree(export, old)
    make_daemon(world, max_rounds=4).start()
    assert not half.exists() and not old.exists() and (export / "report.json").exists()


def test_restart_after_a_stop_without_export_exports(finished_run):
    world, daemon, _ = finished_run
    folder = daemon.settings.export_path
    daemon.state.exported_at = None
    daemon.store.save(daemon.state)
    (folder / "report.json").unlink()
    again = make_daemon(world, max_rounds=4)
    again.start()
    assert (folder / "report.json").exists() and again.status()["state"] == "stopped"
    assert again.learner.fits["initialize_data"] == 1  # refitted from the journal for the model file


def test_export_command_works_from_the_state_alone(finished_run, tmp_path, caplog):
    world, daemon, _ = finished_run
    settings = daemon.settings.model_copy(
        update={"argilla_url": f"http://127.0.0.1:{free_port()}", "pool_file": world["pool"].source, "test_file": None}
    )
    target = export_now(settings, tmp_path / "again", connect_timeout=0.5)
    table = pq.read_table(target / "labelled.parquet").to_pylist()
    assert len(table) == len(daemon.state.training_labels())
    assert all(row["annotators"] == ["u1"] for row in table)  # no Argilla: ids instead of names
    assert "annotator names unavailable" in caplog.text
    first = joblib.load(daemon.settings.export_path / "model" / "model.joblib")
    second = joblib.load(target / "model" / "model.joblib")
    texts = world["pool"].texts
    assert (first.predict(texts) == second.predict(texts)).all()  # same labels, same seed: same model


def test_unlabelled_run_exports_an_empty_set_without_a_model(world):
    daemon = make_daemon(world, stop_criteria=[])
    daemon.start()
    folder = export_run(
        daemon.settings, daemon.state, world["pool"], LABELS, daemon.learner, daemon.status(), target=world["dir"] / "x"
    )
    assert pq.read_table(folder / "labelled.parquet").num_rows == 0
    assert json.loads((folder / "report.json").read_text())["model"]["saved"] is False


@pytest.mark.parametrize("kind", [ModelKind.embeddings, ModelKind.hybrid, ModelKind.transformer])
def test_embedding_and_transformer_models_load_back(kind, tmp_path, cache_dir, world):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    path = write_jsonl(tmp_path / "pool.jsonl", tiny_rows(6))
    pool = load_table(path, "text", "label", "id")
    y = np.array([LABELS.index(label) for label in pool.gold])
    world.update(pool=pool, y=y, gold=dict(zip(pool.texts, pool.gold, strict=True)))
    daemon = make_daemon(
        world,
        model=kind,
        cache_dir=cache_dir,
        batch_size=9,
        max_rounds=1,
        transformer_epochs=1,
        transformer_max_length=16,
        training=Training.inline,  # stop right after the first round (ahead would wait for the batch logged first)
    )
    daemon.start()
    run_rounds(world, daemon, 1)
    folder = daemon.settings.export_path
    texts = ["the team won the final", "bake bread with basil"]
    if kind in (ModelKind.embeddings, ModelKind.hybrid):
        moved = tmp_path / "moved"
        shutil.copytree(folder, moved)
        pipeline = load_model(moved)
        assert pipeline.named_steps["features"].model_path == str(moved / "model" / "encoder")
        assert pipeline.predict_proba(texts).shape[0] == 2
        assert set(pipeline.predict(texts)) <= set(LABELS)
    else:
        model = AutoModelForSequenceClassification.from_pretrained(folder / "model")
        tokenizer = AutoTokenizer.from_pretrained(folder / "model")
        assert model.config.id2label == dict(enumerate(LABELS))
        logits = model(**tokenizer(texts, return_tensors="pt", padding=True)).logits
        assert tuple(logits.shape) == (2, 3)


def test_learner_is_unchanged_by_features_encoder(tmp_path):
    """The tf-idf encoder in the export is the vectorizer the pool was featurised with."""
    path = write_jsonl(tmp_path / "pool.jsonl", tiny_rows(5))
    pool = load_table(path, "text", "label", "id")
    y = np.array([LABELS.index(label) for label in pool.gold])
    settings = Settings(_env_file=None, model=ModelKind.tfidf, state_dir=tmp_path)
    features = build_features(settings, pool, None, None, 3)
    assert np.allclose(features.encoder.transform(pool.texts).toarray(), features.pool.x.toarray())
    assert Learner(features, 3, settings.query_strategy).pool_size == len(y)
