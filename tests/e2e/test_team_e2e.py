"""A team end to end, through the command line: `al-daemon run` with ActiveLab and CROWDLAB on politeness texts, and
`al-daemon simulate --annotators 3` creating three annotator users who answer from the recorded ratings."""

import json

import pandas as pd
import pytest

from tests.e2e.conftest import run_with_simulator
from tests.integration.test_multiannotator import subset

pytestmark = pytest.mark.e2e


def test_a_simulated_team_through_the_cli(argilla_stack, dataset_name, trec_env, tmp_path):
    env = trec_env["env"] | {
        "AL_POOL_FILE": str(subset("train.jsonl", 120, tmp_path)),
        "AL_TEST_FILE": str(subset("test.jsonl", 60, tmp_path)),
        "AL_MODEL": "tfidf",
        "AL_BATCH_SIZE": "10",
        "AL_ACTIVELAB": "true",
        "AL_CONSENSUS": "crowdlab",
        "AL_MAX_ANNOTATIONS": "3",  # the three simulated people: a fourth request could never be answered
        "AL_CONSENSUS_FOLDS": "3",
        "AL_MAX_ROUNDS": "4",
        "AL_STOP_CRITERIA": "never",
    }
    log_path = trec_env["log"]
    counts = run_with_simulator(env, log_path, "--annotators", "3", "--delay", "0.02")
    assert len(counts) == 3 and all(c["errors"] == 0 for c in counts)
    assert sum(c["submitted"] for c in counts) >= 40

    export = trec_env["state_dir"] / "export"
    rows = pd.read_parquet(export / "labelled.parquet")
    names = {v.split("=")[0] for votes in rows.votes for v in votes}
    assert names <= {"sim-annotator-1", "sim-annotator-2", "sim-annotator-3"} and len(names) >= 2
    report = json.loads((export / "report.json").read_text())
    assert report["annotation"]["consensus_used"] == "crowdlab"
    assert report["annotation"]["relabel_requests"] >= 1, "ActiveLab asked for no extra label in four rounds"
    assert report["annotation"]["texts_with_several_votes"] >= 1
    assert "stopping after round 3: max_rounds" in log_path.read_text()
