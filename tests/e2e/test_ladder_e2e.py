"""The model ladder end to end, through the command line against the real Argilla: `al-daemon run` starts with the
tfidf model on texts only a model that knows words' meanings can tell apart, `AL_LADDER=embeddings` compares the
two once 20 labels exist (10 texts on which they disagree go into a batch: AL_LADDER_COMPARE=probes), the
embeddings model, right on them, takes over, and `al-daemon simulate` answers every batch in Argilla until
max_rounds; the journal, the log, the status page and the export say so."""

import json

import pytest

from tests.conftest import ladder_env, synonym_rows, write_jsonl
from tests.e2e.conftest import run_with_simulator

pytestmark = pytest.mark.e2e


def test_a_model_right_where_the_two_disagree_takes_over_a_cli_run(argilla_stack, dataset_name, trec_env, tmp_path):
    pool = write_jsonl(tmp_path / "pool.jsonl", synonym_rows())
    env = trec_env["env"] | ladder_env(pool)
    log_path = trec_env["log"]
    counts = run_with_simulator(env, log_path, "--delay", "0.02")
    assert counts and counts[0]["errors"] == 0 and counts[0]["submitted"] >= 70  # every answer taken: HTTP 201

    log_text = log_path.read_text()
    assert "model ladder: comparing tfidf-logreg with embeddings on 2" in log_text  # 20-29 labels (discards)
    assert "embeddings-all-MiniLM-L6-v2 takes over" in log_text and "stopping after round 6: max_rounds" in log_text
    state = json.loads((trec_env["state_dir"] / "state.json").read_text())
    assert state["model_in_use"] == "embeddings"
    verdict, *later = state["ladder"]
    assert verdict["switch"] and 20 <= verdict["labels"] < 30 and verdict["method"] == "probes"
    assert verdict["candidate_accuracy"] > verdict["current_accuracy"] and verdict["probes"] >= 8  # discards: no vote
    assert all(v["current"].startswith("embeddings") and not v["switch"] for v in later)  # the way back: tfidf lost
    first = next(b for b in state["batches"] if b["probes"])  # probes a batch chosen meanwhile took are not in it
    assert first["batch_id"] in (3, 4, 5) and set(first["probes"]) <= set(first["pool_indices"])  # draw: 2-5 s
    assert all(first["suggestions"][first["pool_indices"].index(i)] is None for i in first["probes"])
    taken = next(m for m in state["rounds"] if m["round"] == 6)
    assert taken["accuracy"] > 0.8  # the last rounds trained the embeddings model: it tells the topics apart
    report = json.loads((trec_env["state_dir"] / "export" / "report.json").read_text())
    assert report["ladder"]["taken_over"] and report["ladder"]["model_in_use"] == "embeddings"
    assert report["model"]["saved"] and report["model"]["kind"] == "embeddings"  # the model in use is exported
