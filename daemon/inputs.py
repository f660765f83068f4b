"""Everything that can be checked on this machine before anything contacts Argilla: the state and cache folders,
the pool and test files, the label set, and what the model needs from the texts. A problem is one DaemonError
(exit 2, one line), found even while Argilla is down. Light on purpose: no torch, no small-text."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from daemon.config import ModelKind, Settings
from daemon.errors import DataError
from daemon.files import check_writable
from daemon.pool import (
    TextTable,
    check_test_labels,
    default_model_path,
    drop_duplicate_texts,
    load_table,
    resolve_labels,
)


@dataclass(frozen=True)
class Data:
    pool: TextTable
    test: TextTable | None
    labels: list[str]
    y_test: np.ndarray | None


def load_data(settings: Settings) -> Data:
    """Read and validate the pool and test files and settle the label set (nothing contacts Argilla)."""
    check_writable(settings.cache_path, "the cache folder (AL_CACHE_DIR)")  # the embeddings go there
    pool = drop_duplicate_texts(
        load_table(
            settings.pool_file,
            settings.text_column,
            settings.label_column,
            settings.id_column,
            settings.max_text_chars,
        )
    )
    if len(pool) < settings.batch_size:
        raise DataError(
            f"{settings.pool_file}: the pool has {len(pool)} usable texts, fewer than one batch "
            f"(AL_BATCH_SIZE={settings.batch_size})"
        )
    test = None
    if settings.test_file is not None:
        test = load_table(
            settings.test_file,
            settings.text_column,
            settings.label_column,
            settings.id_column,
            settings.max_text_chars,
        )
    labels = resolve_labels(settings.labels, test, pool)
    y_test = None
    if test is not None:
        check_test_labels(test, labels)
        y_test = np.array([labels.index(label) for label in test.gold], dtype=np.int64)
    check_model_input(settings, pool)
    return Data(pool=pool, test=test, labels=labels, y_test=y_test)


def preflight(settings: Settings) -> Data:
    """Everything that can be checked on this machine, before anything contacts Argilla: the state dir, the
    cache, the pool and test files, the label set, the model's needs, and a state from an earlier start (readable,
    of this run). A problem is one DaemonError."""
    check_writable(settings.state_dir, "the state folder (AL_STATE_DIR)")
    data = load_data(settings)
    check_state(settings, data)
    return data


def check_state(settings: Settings, data: Data) -> None:
    """A state left by an earlier start must be readable and belong to this pool, label set and dataset (it is
    read again, under the state dir's lock, when the daemon starts)."""
    from daemon.state import StateStore, check_same_run

    store = StateStore(settings.state_dir)
    state = store.load()
    if state is not None:
        check_same_run(state, settings, data.pool.fingerprint, data.labels, store.path)


def check_model_input(settings: Settings, pool: TextTable) -> None:
    """Refuse a pool the configured model cannot learn from: the TF-IDF models (tfidf, and hybrid's n-gram half)
    need words of two or more letters or digits in some text."""
    if settings.model not in (ModelKind.tfidf, ModelKind.hybrid):
        return
    from sklearn.feature_extraction.text import TfidfVectorizer

    analyse = TfidfVectorizer().build_analyzer()
    if not any(analyse(text) for text in pool.texts):
        raise DataError(
            f"{pool.source}: no text has a word of two or more letters or digits (emoji or punctuation only?), "
            f"which the {settings.model.value} model's TF-IDF needs; use AL_MODEL=embeddings for such texts"
        )


def model_name(settings: Settings) -> str:
    """A short name for the agent of suggestions, e.g. ``embeddings-all-MiniLM-L6-v2``."""
    if settings.model is ModelKind.tfidf:
        return "tfidf-logreg"
    path = settings.model_path or default_model_path()
    base = "all-MiniLM-L6-v2" if settings.model_path is None else Path(path).name
    return f"{settings.model.value}-{base}"
