"""The model ladder end to end, through the command line against the real Argilla: `al-daemon run` starts with the
tfidf model on texts only a model that knows words' meanings can tell apart, `AL_LADDER=embeddings` compares the
two by cross-validation once 30 labels exist, the embeddings model takes over, and `al-daemon simulate` answers
every batch in Argilla until max_rounds; the journal, the log, the status page and the export say so."""

import json

import pytest

from tests.conftest import ladder_env, synonym_rows, write_jsonl
from tests.e2e.conftest import run_with_simulator

pytestmark = pytest.mark.e2e


def test_a_model_that_cross_validates_better_takes_over_a_cli_run(argilla_stack, dataset_name, trec_env, tmp_path):
    pool = write_jsonl(tmp_path / "pool.jsonl", synonym_rows())
    env = trec_env["env"] | ladder_env(pool)
    log_path = trec_env["log"]
    counts = run_with_simulator(env, log_path, "--delay", "0.02")
    assert counts and counts[0]["errors"] == 0 and counts[0]["submitted"] >= 60  # every answer taken: HTTP 201

    log_text = log_path.read_text()
    assert "model ladder: comparing tfidf-logreg with embeddings on 30 labels" in log_text
    assert "embeddings-all-MiniLM-L6-v2 takes over" in log_text and "stopping after round 5: max_rounds" in log_text
    state = json.loads((trec_env["state_dir"] / "state.json").read_text())
    assert state["model_in_use"] == "embeddings"
    [verdict] = state["ladder"]
    assert verdict["switch"] and verdict["labels"] == 30 and verdict["folds"] == 3
    assert verdict["candidate_accuracy"] > verdict["current_accuracy"]
    taken = next(m for m in state["rounds"] if m["round"] == 5)
    assert taken["accuracy"] > 0.8  # the last rounds trained the embeddings model: it tells the topics apart
    report = json.loads((trec_env["state_dir"] / "export" / "report.json").read_text())
    assert report["ladder"]["taken_over"] and report["ladder"]["model_in_use"] == "embeddings"
    assert report["model"]["saved"] and report["model"]["kind"] == "embeddings"  # the model in use is exported
