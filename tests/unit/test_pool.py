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
