"""kill -9 at each step of a round, then restart: nothing lost, nothing twice, batch ids contiguous."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from daemon.config import Settings
from daemon.inputs import load_data
from daemon.state import StateStore
from tests.conftest import ROOT, TREC, ladder_env, synonym_rows, write_jsonl
from tests.e2e.conftest import simulated_annotator, start_daemon, wait_or_dump
from tests.faults.conftest import assert_clean, audit, cli, hand_made_dataset

pytestmark = pytest.mark.faults

POINTS = ["after_read", "training", "after_query", "mid_log", "after_log", "state_save"]


@pytest.mark.parametrize("point", POINTS)
def test_kill9_then_restart(argilla_stack, dataset_name, trec_env, trec_data, tmp_path, point, results):
    kill9_then_restart(argilla_stack, dataset_name, trec_env, trec_data, tmp_path, point, results)


def test_kill9_while_training_with_the_pool_scored_on_ray(
    ray_cluster, argilla_stack, dataset_name, trec_env, trec_data, tmp_path, results
):
    """The same audit with AL_RAY_ADDRESS set: the killed daemon and the restarted one score the pool on the
    cluster (its Ray Client connection dies with the process; the new one connects afresh)."""
    if ray_cluster.process is None:
        ray_cluster.up()
    trec_env = trec_env | {"env": trec_env["env"] | {"AL_RAY_ADDRESS": ray_cluster.address}}
    kill9_then_restart(argilla_stack, dataset_name, trec_env, trec_data, tmp_path, "training", results, " with Ray")
    # both the killed daemon and the restarted one went to the cluster; a restarted client is sometimes refused
    # once by Ray's client server ("Initialization failure from server") while the killed one's session is torn
    # down: that step is scored here and the next one connects again, which the audit above covers
    log = trec_env["log"].read_text()
    assert log.count("connecting to the Ray cluster") >= 2


WARM_POINTS = ["seed_journaled", "after_query", "mid_log"]  # the last two at batch 0, chosen by the seed's model


@pytest.mark.parametrize("point", WARM_POINTS)
def test_kill9_during_a_warm_start(argilla_stack, dataset_name, trec_env, trec_data, tmp_path, point, results):
    """A warm start from a seed file and a dataset made by hand (answered records adopted), killed while it
    begins: the restart keeps the seed it journaled, never logs a seed text, and trains on every seed label."""
    pool = trec_data.pool
    test = [json.loads(line) for line in (TREC / "test.jsonl").read_text().splitlines()[:5]]
    seed_rows = [{"id": f"s{i}", "text": pool.texts[i], "label": pool.gold[i]} for i in range(0, 400, 20)]
    seed_rows += [{"id": row["id"], "text": row["text"], "label": row["label"]} for row in test]  # training-only
    answered = {pool.texts[i]: pool.gold[i] for i in range(5, 400, 50)}
    hand_made_dataset(argilla_stack, dataset_name, trec_data.labels, answered, ["a note nobody labelled"])
    env = trec_env["env"] | {
        "AL_SEED_FILE": str(write_jsonl(tmp_path / "seed.jsonl", seed_rows)),
        "AL_BATCH_SIZE": "10",
        "AL_MAX_ROUNDS": "3",
        "AL_STOP_CRITERIA": "never",
        "AL_POLL_INTERVAL": "0.3",
        "AL_FAULT_POINT": point,
        "AL_FAULT_MARKER": str(tmp_path / "killed"),
        "AL_FAULT_ROUND": "-1",
    }
    journaled = []
    person = killed_and_restarted(
        argilla_stack,
        dataset_name,
        trec_env,
        trec_data,
        env,
        point,
        lambda: journaled.append(StateStore(trec_env["state_dir"]).load().seed),
    )
    checks = audit(argilla_stack, dataset_name, trec_env["state_dir"])
    results(f"kill -9 during a warm start: {point.replace('_', ' ')}", "killed, restarted, finished", checks)
    assert_clean(checks)
    state = StateStore(trec_env["state_dir"]).load()
    assert state.seed == journaled[0] and checks["seed_labels"] == 25 + len(answered)
    assert len(state.seed.extra_texts) == 5 and checks["rounds"] == 3 and checks["batches"] == 3
    assert state.batches[0].scores[0] is not None  # batch 0 was chosen by the seed's model
    assert person.counts.errors == 0
    if point == "seed_journaled":  # then the journal lost: recover reads the seed again, as when the run began
        (trec_env["state_dir"] / "state.json").unlink()
        recovered = cli("recover", env)
        assert recovered.returncode == 0, recovered.stdout + recovered.stderr
        rebuilt = StateStore(trec_env["state_dir"]).load()
        assert rebuilt.seed.labels == state.seed.labels and rebuilt.seed.extra_texts == state.seed.extra_texts
        last = state.batches[-1].labels  # recover leaves the last batch open for the daemon to close
        assert rebuilt.training_labels() == {i: label for i, label in state.training_labels().items() if i not in last}


LADDER_POINTS = ["ladder_probes", "ladder_compared", "ladder_journaled"]


@pytest.mark.parametrize("point", LADDER_POINTS)
def test_kill9_at_the_model_ladders_switch(argilla_stack, dataset_name, trec_env, tmp_path, point, results):
    """tfidf -> embeddings once 20 labels exist (the ladder e2e's synonym texts), killed right after the probes are
    journaled (before a batch holds them), when the verdict is made and the new model trained but not journaled, or
    right after the journal names the model in use: the restart puts the journaled probes in a batch, decides
    again, or builds the model in use without deciding; nothing lost or used twice either way."""
    pool = write_jsonl(tmp_path / "pool.jsonl", synonym_rows())
    data = load_data(Settings(_env_file=None, pool_file=pool, test_file=pool))
    env = (
        trec_env["env"]
        | ladder_env(pool)
        | {
            "AL_POLL_INTERVAL": "0.3",
            "AL_FAULT_POINT": point,
            "AL_FAULT_MARKER": str(tmp_path / "killed"),
        }
    )
    store = StateStore(trec_env["state_dir"])
    journaled = []
    person = killed_and_restarted(
        argilla_stack, dataset_name, trec_env, data, env, point, lambda: journaled.append(store.load())
    )
    checks = audit(argilla_stack, dataset_name, trec_env["state_dir"])
    results(f"kill -9 at the model ladder's switch: {point.split('_')[1]}", "killed, restarted, finished", checks)
    assert_clean(checks)
    assert checks["rounds"] == 7 and checks["batches"] == 7 and person.counts.errors == 0
    state = store.load()
    verdict, *later = state.ladder  # journaled once: by the killed daemon, or made again by the restarted one
    assert state.model_in_use == "embeddings" and verdict.switch and verdict.labels >= 20
    assert all(v.current.startswith("embeddings") and not v.switch for v in later)  # the way back: tfidf lost
    log_text = trec_env["log"].read_text()
    drawn = log_text.count("model ladder: comparing tfidf-logreg with embeddings")
    decided = log_text.count("probes of embeddings against tfidf are answered")
    assert drawn == 1 and verdict.method == "probes"  # the probes drawn once (a later draw: the way back, to tfidf)
    assert state.ladder_probes is None or state.ladder_probes.candidate == "tfidf"
    if point == "ladder_probes":  # the journal holds the probes; no batch had them yet
        assert journaled[0].ladder_probes is not None and not any(b.probes for b in journaled[0].batches)
        assert decided == 1
    elif point == "ladder_compared":
        assert journaled[0].ladder == [] and journaled[0].model_in_use is None and decided == 2
    else:
        assert journaled[0].ladder == [verdict] and journaled[0].model_in_use == "embeddings" and decided == 1
    assert state.rounds[-1].accuracy > 0.8  # the restarted daemon trained the embeddings model (tfidf: ~1/3)


def kill9_then_restart(argilla_stack, dataset_name, trec_env, trec_data, tmp_path, point, results, how=""):
    env = trec_env["env"] | {
        "AL_BATCH_SIZE": "10",
        "AL_MAX_ROUNDS": "4",
        "AL_STOP_CRITERIA": "never",
        "AL_POLL_INTERVAL": "0.3",
        "AL_FAULT_POINT": point,
        "AL_FAULT_MARKER": str(tmp_path / "killed"),
        "AL_FAULT_ROUND": "1",
    }
    person = killed_and_restarted(argilla_stack, dataset_name, trec_env, trec_data, env, point)
    checks = audit(argilla_stack, dataset_name, trec_env["state_dir"])
    results(f"kill -9 {point.replace('_', ' ')} (round 1){how}", "killed, restarted, finished", checks)
    assert_clean(checks)
    assert checks["stopped"].startswith("max_rounds") and checks["rounds"] == 4 and checks["batches"] == 4
    assert person.counts.errors == 0


def killed_and_restarted(stack, dataset, trec_env, trec_data, env, point, after_kill=lambda: None):
    """The launcher (tests/faults/crash_at.py) until it kills itself at ``point``, then the plain daemon with the
    same settings and state until it finishes, while a simulated annotator labels (returned, stopped)."""
    log = trec_env["log"]
    person = simulated_annotator(stack, dataset, trec_data, discard_rate=0.1, seed=3)
    person.start_thread()
    try:
        with open(log, "ab") as out:
            crashing = subprocess.Popen(
                [sys.executable, "tests/faults/crash_at.py"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
            )
        code = crashing.wait(timeout=300)
        assert code == -9 and Path(env["AL_FAULT_MARKER"]).read_text() == point, log.read_text()[-3000:]
        after_kill()
        restarted = start_daemon(env, log)
        assert wait_or_dump(restarted, log, 300) == 0, log.read_text()[-3000:]
    finally:
        person.stop()
    return person
