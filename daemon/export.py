"""The final export: the labelled set, the model, and a report of the run.

Written into a temporary folder next to the target and swapped in at the end (:func:`daemon.files.atomic_dir`),
so a reader (or a crash) never sees half an export; files are 0600 and folders 0700. Layout::

    export/
      labelled.parquet      text, label (the consensus trained on), annotators, votes ("name=label" each),
                            annotations, batch_id, round, pool_index, id
      labelled/             the same as a `datasets` folder (datasets.load_from_disk)
      model/                model.joblib + labels.json (scikit-learn pipeline: raw text in, label out;
                            load with load_model() below) [+ encoder/, the sentence-embedding model],
                            or a Hugging Face save_pretrained folder (transformer model)
      report.json           settings (secrets masked), curve, signals, stop reason, counts
      learning-curve.png
"""

from __future__ import annotations

import copy
import json
import logging
import shutil
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np

from daemon.answers import canonical, encode, is_set, members, shown
from daemon.config import ModelKind, Settings
from daemon.errors import DiskError
from daemon.files import atomic_dir
from daemon.learner import Learner
from daemon.plot import render_curve
from daemon.pool import TextTable
from daemon.report import curve, ladder_view, seed_view
from daemon.state import JOURNALED, SEED_FILE, RunState, now

log = logging.getLogger(__name__)

ENCODER_DIR = "encoder"  # the sentence-embedding model inside model/ (embeddings model only)


def labelled_rows(state: RunState, pool: TextTable, user_names: dict[str, str]) -> list[dict]:
    """One row per text used for training: a warm start's seed labels first (``source`` ``seed-file`` or
    ``argilla``: adopted from the dataset), then in the order the batches were labelled (``batch``): its training
    label (the consensus) and every annotator's vote, relabel answers included."""
    rows = []
    consensus = state.consensus_labels()
    votes = state.votes()

    def row(index: int, source: str, batch_id: int | None, round_number: int | None, fallback: list[str]) -> dict:
        given = [(who, label) for who, label in votes.get(index, []) if who != JOURNALED]
        ids = [who for who, _ in given] or fallback
        label = consensus[index]
        return {
            "id": pool.ids[index],
            "pool_index": index,
            "text": pool.texts[index],
            "label": list(label) if is_set(label) else label,
            "source": source,
            "annotators": [user_names.get(u, u) for u in ids],
            "annotator_ids": list(ids),
            "votes": [user_names.get(who, who) + "=" + shown(label) for who, label in given],
            "annotations": len(given),
            "batch_id": batch_id,
            "round": round_number,
        }

    seed = state.seed
    for index in sorted(seed.labels if seed else ()):
        if index in consensus:
            rows.append(row(index, seed.sources.get(index, SEED_FILE), None, None, []))
    for batch in state.batches:
        if not batch.complete:
            continue
        for index in batch.pool_indices:
            if index in batch.labels and index in consensus:
                rows.append(row(index, "batch", batch.batch_id, batch.round, batch.annotators.get(index, [])))
    return rows


def fit_final(learner: Learner, state: RunState, labels: list[str]) -> bool:
    """Train the learner on every label of the run, as the last round did (same seed): True if a model exists."""
    if learner.trained:
        return True
    y = {i: encode(label, labels) for i, label in state.consensus_labels().items()}
    last_round = max((m.round for m in state.rounds), default=0)
    return learner.fit(y, state.discarded(), last_round)


def save_model(learner: Learner, settings: Settings, labels: list[str], target: Path) -> dict:
    """Write the trained model; returns what the report says about it."""
    target.mkdir(parents=True, exist_ok=True)
    classifier = learner.classifier
    if classifier is None:
        return {"saved": False, "why": "no model: fewer than two classes were labelled"}
    if settings.model is ModelKind.transformer:
        model, tokenizer = classifier.model, classifier.tokenizer
        model.config.id2label = dict(enumerate(labels))
        model.config.label2id = {label: i for i, label in enumerate(labels)}
        if learner.multi_label:  # pipelines then apply a sigmoid per label, not a softmax over them
            model.config.problem_type = "multi_label_classification"
        model.save_pretrained(target)
        tokenizer.save_pretrained(target)
        return {
            "saved": True,
            "format": "transformers",
            "path": target.name,
            "load": "AutoModelForSequenceClassification",
        }
    if settings.model is ModelKind.setfit:
        classifier.model.labels = list(labels)  # predict() answers with label names
        classifier.model.save_pretrained(str(target))
        return {"saved": True, "format": "setfit", "path": target.name, "load": "setfit.SetFitModel.from_pretrained"}
    import joblib
    from sklearn.pipeline import Pipeline

    encoder = learner.features.encoder
    if getattr(encoder, "model_path", None):  # sentence embeddings: ship the encoder, so the export stands alone
        shutil.copytree(encoder.model_path, target / ENCODER_DIR)
    estimator = copy.deepcopy(classifier.model)
    predicts = "label names"
    if learner.multi_label:  # one yes/no model per label: predict() gives a 0/1 column per label of labels.json
        predicts = (
            "a 0/1 indicator matrix, one column per label of labels.json (predict_proba: each label's probability)"
        )
    else:
        # trained on label ids: name the classes so predict() answers with labels and predict_proba's columns
        # follow estimator.classes_ (labels nobody has used yet have no column)
        estimator.classes_ = np.array([labels[int(c)] for c in estimator.classes_], dtype=object)
    pipeline = Pipeline([("features", encoder), ("classifier", estimator)])
    joblib.dump(pipeline, target / "model.joblib")
    (target / "labels.json").write_text(json.dumps(labels, indent=1))
    return {"saved": True, "format": "joblib", "path": f"{target.name}/model.joblib", "predicts": predicts}


def load_model(folder: Path):
    """Load an exported scikit-learn model, pointing its sentence encoder at the copy in the export."""
    import joblib

    model_dir = Path(folder) / "model" if (Path(folder) / "model").is_dir() else Path(folder)
    pipeline = joblib.load(model_dir / "model.joblib")
    if (model_dir / ENCODER_DIR).is_dir():
        pipeline.set_params(features__model_path=str(model_dir / ENCODER_DIR))
    return pipeline


def export_or_explain(write: Callable[[], Path]) -> dict:
    """The export of a stopped run for the status, written by ``write`` (an :func:`export_run` call):
    ``{"path": ...}`` when written, ``{"path": None, "error": ...}`` when it cannot be (logged; ``al-daemon export``
    retries). A temporary DiskError (space may come back) is raised for the caller to retry."""
    try:
        path = write()
    except Exception as exc:  # noqa: BLE001 - the run is over either way; say why the export failed
        if isinstance(exc, DiskError) and exc.temporary:
            raise
        log.error("export failed: %s (retry with `al-daemon export`)", exc)
        return {"path": None, "error": str(exc)}
    return {"path": str(path)}


def export_run(
    settings: Settings,
    state: RunState,
    pool: TextTable,
    labels: list[str],
    learner: Learner,
    status: dict,
    user_names: dict[str, str] | None = None,
    target: Path | None = None,
) -> Path:
    """Write the whole export (built aside and swapped in whole; files 0600, folders 0700); returns its folder."""
    target = Path(target or settings.export_path)
    with atomic_dir(target, what="the export") as work:
        rows = _write_export(work, settings, state, pool, labels, learner, status, user_names or {})
    log.info("exported %d labels, the model and the report to %s", len(rows), target)
    return target


def _write_export(
    work: Path,
    settings: Settings,
    state: RunState,
    pool: TextTable,
    labels: list[str],
    learner: Learner,
    status: dict,
    user_names: dict[str, str],
) -> list[dict]:
    """The export's files, into the folder being built; the labelled rows."""
    import datasets

    rows = labelled_rows(state, pool, user_names)
    features = datasets.Features(
        {
            "id": datasets.Value("string"),
            "pool_index": datasets.Value("int64"),
            "text": datasets.Value("string"),
            "source": datasets.Value("string"),
            "label": datasets.Sequence(datasets.Value("string")) if state.multi_label else datasets.Value("string"),
            "annotators": datasets.Sequence(datasets.Value("string")),
            "annotator_ids": datasets.Sequence(datasets.Value("string")),
            "votes": datasets.Sequence(datasets.Value("string")),
            "annotations": datasets.Value("int64"),
            "batch_id": datasets.Value("int64"),
            "round": datasets.Value("int64"),
        }
    )
    table = datasets.Dataset.from_dict({name: [row[name] for row in rows] for name in features}, features=features)
    table.to_parquet(work / "labelled.parquet")
    table.save_to_disk(work / "labelled")

    fit_final(learner, state, labels)
    model = save_model(learner, settings, labels, work / "model")
    (work / "learning-curve.png").write_bytes(render_curve(status))

    annotators = Counter(name for row in rows for name in row["annotators"])
    report = {
        "dataset": state.dataset,
        "dataset_id": state.dataset_id,
        "workspace": settings.workspace,
        "argilla_url": settings.argilla_url,
        "version": status.get("version"),
        "started_at": state.started_at,
        "stopped_at": state.stopped_at,
        "stop_reason": state.stopped,
        "exported_at": now(),
        "rounds": len(state.rounds),
        "labels": len(rows),
        "discarded": len(state.discarded()),
        "discarded_ids": [pool.ids[i] for i in sorted(state.discarded())],
        "task": "multi-label" if state.multi_label else "single-label",
        "seed": seed_view(state),
        "ladder": ladder_view(settings, state),
        "label_counts": dict(Counter(label for row in rows for label in members(canonical(row["label"])))),
        "open_ids": [pool.ids[i] for i in sorted(state.open_indices())],  # a stuck batch's unanswered records
        "changes": [change.model_dump(mode="json") for change in state.changes],  # made by people after training
        "annotators": dict(annotators),
        "annotation": status.get("annotation", {}),  # consensus, agreement, quality
        "final": {key: status.get(key) for key in ("accuracy", "macro_f1", "micro_f1", "hamming_loss")},
        "signals": {
            name: {k: v for k, v in view.items() if k != "history"} for name, view in status["signals"].items()
        },
        "projected_stop_round": status["stop"].get("projected_round"),
        "model": {"kind": settings.model.value, "name": learner.features.name, **model},
        "labels_set": labels,
        "curve": curve(state.rounds),
        "settings": settings.public(),
        "files": ["labelled.parquet", "labelled/", "model/", "report.json", "learning-curve.png"],
    }
    (work / "report.json").write_text(json.dumps(report, indent=1, default=str))
    return rows
