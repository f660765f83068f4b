"""A multi-label run end to end, through the command line: `al-daemon run` on GoEmotions texts (the label column
holds lists, so AL_TASK=auto makes it multi-label) with a "none of these" option, and `al-daemon simulate`
ticking each text's gold labels in the real Argilla until the run stops; then the export."""

import json

import pandas as pd
import pytest

from tests.conftest import ROOT, write_jsonl
from tests.e2e.conftest import run_with_simulator

pytestmark = pytest.mark.e2e

GOEMOTIONS = ROOT / "data" / "goemotions"


def rows(name: str, count: int) -> list[dict]:
    lines = (GOEMOTIONS / name).read_text(encoding="utf-8").splitlines()[:count]
    return [json.loads(line) for line in lines]


def test_a_multi_label_run_through_the_cli(argilla_stack, dataset_name, trec_env, tmp_path):

    pool = rows("train.jsonl", 300)
    for row in pool[:40:8]:  # five texts whose answer is "none of these" (an empty label set)
        row["labels"] = []
    env = trec_env["env"] | {
        "AL_POOL_FILE": str(write_jsonl(tmp_path / "pool.jsonl", pool)),
        "AL_TEST_FILE": str(write_jsonl(tmp_path / "test.jsonl", rows("test.jsonl", 200))),
        "AL_LABEL_COLUMN": "labels",
        "AL_NONE_LABEL": "none of these",
        "AL_BATCH_SIZE": "10",
        "AL_MAX_ROUNDS": "4",
        "AL_STOP_CRITERIA": "never",
    }
    log_path = trec_env["log"]
    counts = run_with_simulator(env, log_path, "--delay", "0.02")
    assert counts and counts[0]["errors"] == 0 and counts[0]["submitted"] >= 40  # every answer taken: HTTP 201

    log_text = log_path.read_text()
    assert "stopping after round 3: max_rounds" in log_text and "micro-F1" in log_text
    export = trec_env["state_dir"] / "export"
    labelled = pd.read_parquet(export / "labelled.parquet")
    sets = [tuple(label) for label in labelled.label]
    assert len(sets) >= 40 and any(len(s) >= 2 for s in sets)
    gold = {row["text"].strip(): tuple(sorted(row["labels"])) for row in pool}  # texts are read stripped
    assert all(s == gold[text] for s, text in zip(sets, labelled.text, strict=True))  # one annotator: its answers
    report = json.loads((export / "report.json").read_text())
    assert report["task"] == "multi-label" and report["final"]["micro_f1"]["last"] is not None
    assert report["curve"][-1]["kappa_average"] is not None and report["curve"][-1]["hamming_loss"] is not None
    state = json.loads((trec_env["state_dir"] / "state.json").read_text())
    assert state["multi_label"] is True
    suggested = [s for batch in state["batches"][1:] for s in batch["suggestions"]]
    assert suggested and all(isinstance(s, list) for s in suggested)  # label sets, chosen by the model
