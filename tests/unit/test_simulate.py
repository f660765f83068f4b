"""daemon.simulate: the recorded-annotations source the simulated annotators answer from."""

import json

import pytest

from daemon.errors import DataError
from daemon.simulate import AnnotationSource, load_annotations
from tests.conftest import ROOT


def test_each_request_takes_a_fresh_recorded_annotation_then_reuses_them():
    source = AnnotationSource({"t": [("a", "x"), ("b", "y"), ("c", "x")]}, seed=3)
    first = [source.take("t") for _ in range(3)]
    assert sorted(first) == [("a", "x"), ("b", "y"), ("c", "x")]
    assert source.remaining("t") == 0 and source.reused == 0
    assert source.take("t") in first and source.reused == 1
    again = AnnotationSource({"t": [("a", "x"), ("b", "y"), ("c", "x")]}, seed=3)
    assert [again.take("t") for _ in range(3)] == first  # seeded
    assert "t" in source and "other" not in source


def test_load_annotations_reads_the_politeness_layout_and_refuses_other_rows(tmp_path):
    found = load_annotations(ROOT / "data/politeness/train.jsonl")
    assert len(found) >= 2990
    some = next(iter(found.values()))
    assert len(some) >= 4 and all(label in ("polite", "impolite") for _, label in some)
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"text": "a", "annotations": [{"annotator": "x"}]}) + "\n")
    with pytest.raises(DataError, match="row 1"):
        load_annotations(bad)
    bad.write_text(json.dumps({"body": "a", "annotations": []}) + "\n")
    with pytest.raises(DataError, match="row 1 has no text in 'text'"):
        load_annotations(bad)


def test_the_cli_refuses_a_team_without_recorded_annotations_or_an_owner(tmp_path, capsys, monkeypatch):
    from daemon.cli import main

    monkeypatch.chdir(tmp_path)
    trec = ["--pool-file", str(ROOT / "data/trec6/train.jsonl"), "--test-file", ""]
    assert main(["simulate", "--annotators", "3", *trec]) == 2
    assert "need recorded annotations" in capsys.readouterr().err
    politeness = str(ROOT / "data/politeness/train.jsonl")
    unreachable = ["--argilla-url", "http://127.0.0.1:9", "--pool-file", politeness, "--test-file", ""]
    assert main(["simulate", "--annotators", "3", *unreachable]) == 2
    err = capsys.readouterr().err
    assert "could not set up the simulated users" in err and "Traceback" not in err
