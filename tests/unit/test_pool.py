import json

import pytest

from daemon.errors import DataError
from daemon.pool import check_test_labels, drop_duplicate_texts, load_table, resolve_labels
from tests.conftest import TREC, tiny_rows, write_jsonl


def load(path, label="label", ids="id"):
    return load_table(path, "text", label, ids)


def test_reads_jsonl_csv_parquet_and_saved_dataset(tmp_path):
    import datasets

    rows = tiny_rows(3)
    jsonl = write_jsonl(tmp_path / "p.jsonl", rows)
    table = datasets.Dataset.from_list(rows)
    table.to_csv(str(tmp_path / "p.csv"), index=False)
    table.to_parquet(str(tmp_path / "p.parquet"))
    table.save_to_disk(str(tmp_path / "saved"))
    loaded = [load(p) for p in (jsonl, tmp_path / "p.csv", tmp_path / "p.parquet", tmp_path / "saved")]
    for item in loaded:
        assert item.texts == [r["text"] for r in rows]
        assert item.gold == [r["label"] for r in rows]
        assert item.ids == [r["id"] for r in rows]
    assert len({item.fingerprint for item in loaded}) == 1


def test_trec_demo_pool_drops_its_duplicate_texts():
    pool = drop_duplicate_texts(load(TREC / "train.jsonl"))
    assert len(pool) == 5452 - 71
    assert len(set(pool.texts)) == len(pool)


def test_empty_text_names_the_rows(tmp_path):
    rows = tiny_rows(2)
    rows[1]["text"] = "   "
    rows[3]["text"] = ""
    path = write_jsonl(tmp_path / "p.jsonl", rows)
    with pytest.raises(DataError, match=r"p.jsonl: empty or missing text in rows 2, 4"):
        load(path)


def test_missing_text_column(tmp_path):
    path = write_jsonl(tmp_path / "p.jsonl", [{"sentence": "a"}])
    with pytest.raises(DataError, match="no text column 'text'.*sentence"):
        load(path)


def test_duplicate_ids(tmp_path):
    rows = tiny_rows(2)
    rows[2]["id"] = rows[0]["id"]
    with pytest.raises(DataError, match="duplicate id in row 3"):
        load(write_jsonl(tmp_path / "p.jsonl", rows))


def test_bad_utf8_is_a_clear_error(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_bytes(json.dumps({"text": "ok"}).encode() + b"\n" + b'{"text": "\xff\xfe bad"}\n')
    with pytest.raises(DataError, match="p.jsonl: not valid UTF-8 in row 2"):
        load(path)


def test_missing_empty_and_unsupported_files(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        load(tmp_path / "nope.jsonl")
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(DataError, match="empty"):
        load(tmp_path / "empty.jsonl")
    (tmp_path / "x.xlsx").write_text("x")
    with pytest.raises(DataError, match="unsupported file type"):
        load(tmp_path / "x.xlsx")


def test_unknown_test_labels_name_the_rows(tmp_path):
    rows = tiny_rows(2)
    rows[4]["label"] = "weather"
    test = load(write_jsonl(tmp_path / "t.jsonl", rows))
    with pytest.raises(DataError, match=r"label not in the label set .* row 5 .*weather"):
        check_test_labels(test, ["food", "sport", "tech"])


def test_label_set_is_derived_or_refused(tmp_path):
    table = load(write_jsonl(tmp_path / "p.jsonl", tiny_rows(2)))
    assert resolve_labels(None, table) == ["food", "sport", "tech"]
    assert resolve_labels(["x", "y"], table) == ["x", "y"]
    one = load(write_jsonl(tmp_path / "one.jsonl", [{"text": "a", "label": "x"}, {"text": "b", "label": "x"}]))
    with pytest.raises(DataError, match="only one label"):
        resolve_labels(None, one)
    unlabelled = load(write_jsonl(tmp_path / "u.jsonl", [{"text": "a"}]))
    with pytest.raises(DataError, match="set AL_LABELS"):
        resolve_labels(None, unlabelled)


def test_json_array_tsv_blank_lines_and_bad_rows(tmp_path):
    rows = tiny_rows(2)
    array = tmp_path / "p.json"
    array.write_text(json.dumps(rows), encoding="utf-8")
    tsv = tmp_path / "p.tsv"
    tsv.write_text("id\ttext\tlabel\n" + "".join(f"{r['id']}\t{r['text']}\t{r['label']}\n" for r in rows))
    spaced = tmp_path / "spaced.jsonl"
    spaced.write_text("\n".join(json.dumps(r) + "\n" for r in rows))  # a blank line after every row
    for path in (array, tsv, spaced):
        table = load(path)
        assert table.texts == [r["text"] for r in rows] and table.ids == [r["id"] for r in rows], path
    broken = tmp_path / "broken.jsonl"
    broken.write_text(json.dumps(rows[0]) + "\n" + '{"id": "x", "text": "cut' + "\n")
    with pytest.raises(DataError, match=r"broken.jsonl: not valid JSON in row 2 \(Unterminated string"):
        load(broken)
    listed = tmp_path / "listed.jsonl"
    listed.write_text(json.dumps(rows[0]) + "\n" + json.dumps(["a", "list"]) + "\n")
    with pytest.raises(DataError, match=r"listed.jsonl: not a JSON object in row 2"):
        load(listed)


def test_reading_writes_nothing_and_loads_no_torch(tmp_path):
    """The pool is read without `datasets` (whose Arrow cache once failed a start where the home folder was
    read-only) and without importing torch (a refused start stays quick)."""
    import subprocess
    import sys

    code = (
        "import sys; from daemon.pool import load_table; from tests.conftest import TREC; "
        "t = load_table(TREC / 'train.jsonl', 'text', 'label', 'id'); "
        "print(len(t), 'torch' in sys.modules, 'datasets' in sys.modules)"
    )
    env = {"HOME": str(tmp_path / "nowhere"), "PATH": "/usr/bin:/bin"}
    (tmp_path / "nowhere").mkdir(mode=0o500)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=TREC.parents[1])
    assert done.stdout.split() == ["5452", "False", "False"], done.stderr
    assert list((tmp_path / "nowhere").iterdir()) == []


@pytest.mark.parametrize("with_seed", [False, True])
def test_load_data_gives_the_test_sets_classes_with_or_without_a_seed_file(tmp_path, with_seed):
    from daemon.config import Settings
    from daemon.inputs import load_data

    rows = tiny_rows(10)
    pool, test = write_jsonl(tmp_path / "pool.jsonl", rows), write_jsonl(tmp_path / "test.jsonl", rows[::3])
    seed = write_jsonl(tmp_path / "seed.jsonl", rows[:4]) if with_seed else None
    data = load_data(Settings(_env_file=None, pool_file=pool, test_file=test, seed_file=seed, cache_dir=tmp_path))
    assert data.labels == ["food", "sport", "tech"] and not data.multi_label
    assert list(data.y_test) == [data.labels.index(row["label"]) for row in rows[::3]]
    assert (data.seed is not None) == with_seed
    tagged = [dict(row, label=[row["label"]]) for row in rows]
    test = write_jsonl(tmp_path / "tagged.jsonl", tagged[::3])
    data = load_data(Settings(_env_file=None, pool_file=pool, test_file=test, seed_file=seed, cache_dir=tmp_path))
    assert data.multi_label and data.y_test.shape == (len(tagged[::3]), 3) and data.y_test.sum() == len(tagged[::3])
