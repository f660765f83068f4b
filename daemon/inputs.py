"""Everything that can be checked on this machine before anything contacts Argilla: the state and cache folders,
the pool and test files, the label set, and what the model needs from the texts. A problem is one DaemonError
(exit 2, one line), found even while Argilla is down. Light on purpose: no torch, no small-text."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from daemon.answers import label_matrix
from daemon.config import Ladder, ModelKind, QueryStrategyName, Settings, Task, auto_ladder, task_problem
from daemon.errors import DataError
from daemon.files import check_writable
from daemon.pool import (
    TextTable,
    check_test_labels,
    default_model_path,
    drop_duplicate_texts,
    load_table,
    resolve_labels,
    rows_named,
)


@dataclass(frozen=True)
class Data:
    pool: TextTable
    test: TextTable | None
    labels: list[str]
    y_test: np.ndarray | None  # class indices; multi-label: a sparse 0/1 matrix (daemon.answers.label_matrix)
    multi_label: bool = False
    seed: TextTable | None = None  # AL_SEED_FILE: every row labelled from the label set


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
    seed = load_seed(settings)
    multi_label = settle_task(settings, pool, test, seed)
    if multi_label:
        pool, test = pool.as_label_sets(), test.as_label_sets() if test is not None else None
        seed = seed.as_label_sets() if seed is not None else None
    labels = resolve_labels(settings.labels, test, pool, seed)
    if settings.none_label is not None and settings.none_label in labels:
        raise DataError(f"AL_NONE_LABEL {settings.none_label!r} is one of the labels {labels}: choose another name")
    if seed is not None:
        check_test_labels(seed, labels, none_allowed=settings.none_label is not None, what="seed file")
    y_test = None
    if test is not None:
        check_test_labels(test, labels, none_allowed=settings.none_label is not None)
        if multi_label:
            y_test = label_matrix([[labels.index(label) for label in gold] for gold in test.gold], len(labels))
        else:
            y_test = np.array([labels.index(label) for label in test.gold], dtype=np.int64)
    check_model_input(settings, pool)
    return Data(pool=pool, test=test, labels=labels, y_test=y_test, multi_label=multi_label, seed=seed)


def load_seed(settings: Settings) -> TextTable | None:
    """AL_SEED_FILE, read and checked like the pool (a text seen twice: the first row's label), every row labelled."""
    if settings.seed_file is None:
        return None
    seed = drop_duplicate_texts(
        load_table(
            settings.seed_file,
            settings.text_column,
            settings.label_column,
            settings.id_column,
            settings.max_text_chars,
        )
    )
    if seed.gold is None:
        raise DataError(
            f"{seed.source}: the seed file needs a label column {settings.label_column!r} (AL_LABEL_COLUMN)"
        )
    missing = [row for row, label in zip(seed.rows, seed.gold, strict=True) if label is None]
    if missing:
        raise DataError(
            f"{seed.source}: no label in {rows_named(missing)} (column {settings.label_column!r}): a seed text needs one"
        )
    return seed


MULTI_LABEL_DEFAULT_STRATEGY = QueryStrategyName.random  # bench/multilabel.py: best on validation micro-F1


def task_settings(settings: Settings, multi_label: bool) -> Settings:
    """The settings of the task: with AL_QUERY_STRATEGY unset, a multi-label run queries at random (on GoEmotions
    no uncertainty strategy beat random sampling on micro-F1; README, "Multi-label tasks"); AL_LADDER=auto becomes
    the model it stands for here, or off (:func:`daemon.config.auto_ladder`)."""
    if multi_label and "query_strategy" not in settings.model_fields_set:
        settings = settings.model_copy(update={"query_strategy": MULTI_LABEL_DEFAULT_STRATEGY})
    if settings.ladder is Ladder.auto:
        settings = settings.model_copy(update={"ladder": auto_ladder(settings, multi_label)})
    return settings


def settle_task(settings: Settings, pool: TextTable, test: TextTable | None, seed: TextTable | None = None) -> bool:
    """True for a multi-label task: AL_TASK=multi, or AL_TASK=auto and a label column holding lists. AL_TASK=single
    with lists in the files is refused (a list cannot be one label); the settings that do not fit the task too."""
    with_sets = [t for t in (pool, test, seed) if t is not None and t.holds_label_sets]
    if settings.task is Task.single and with_sets:
        raise DataError(
            f"{with_sets[0].source}: the label column {settings.label_column!r} holds lists of labels (a multi-label "
            "task) but AL_TASK=single; set AL_TASK=multi (or auto)"
        )
    multi_label = settings.task is Task.multi or (settings.task is Task.auto and bool(with_sets))
    if settings.task is Task.auto and (problem := task_problem(settings, multi_label)):
        source = (
            f"{with_sets[0].source} holds label lists, so the task is multi-label"
            if with_sets
            else ("the task is single-label (no label lists in the data)")
        )
        raise DataError(f"{source}: {problem}")
    return multi_label


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
        check_same_run(state, settings, data.pool.fingerprint, data.labels, store.path, data.multi_label)
        check_seed(state, data.seed, store.path)


def check_seed(state, seed: TextTable | None, path: Path) -> None:
    """AL_SEED_FILE is read when a run begins: on a later start it must be the same file content (or unset: the
    journal holds its labels); a seed file given to a run that began without one is refused."""
    if seed is None:
        return
    from daemon.seeds import file_fingerprint

    if state.seed is None or state.seed.file_fingerprint is None:
        raise DataError(
            f"AL_SEED_FILE={seed.source}: the run in {path.parent} began without a seed file, and seed labels are "
            "read only when a run begins; unset AL_SEED_FILE, or start a new run (another AL_STATE_DIR and AL_DATASET)"
        )
    if file_fingerprint(seed) != state.seed.file_fingerprint:
        raise DataError(
            f"AL_SEED_FILE={seed.source} changed since the run began (its texts or labels differ from the "
            f"{state.seed.file} the journal holds); restore it, or unset AL_SEED_FILE: the run keeps the labels it "
            "began with"
        )


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
