"""The daemon end to end on TREC-6: real Argilla, the simulated annotator, a kill -9 between rounds."""

import signal
import time
from collections import Counter

import pytest

from daemon.simulate import wait_for
from tests.e2e.conftest import get_status, simulated_annotator, start_daemon, wait_or_dump

pytestmark = pytest.mark.e2e


def test_rounds_kill_restart_and_continue(argilla_stack, dataset_name, trec_env, trec_data):
    import argilla as rg

    port, log_path = trec_env["port"], trec_env["log"]
    # every round trains ("stopping after round 4" below), however long a cold cache's embedding takes
    env = trec_env["env"] | {"AL_MAX_ROUNDS": "5", "AL_STOP_CRITERIA": "never", "AL_FEATURES_WAIT": "600"}
    person = simulated_annotator(argilla_stack, dataset_name, trec_data, discard_rate=0.1, seed=1)
    person.start_thread()
    daemon = start_daemon(env, log_path)
    try:
        assert wait_for(lambda: (get_status(port) or {}).get("round", 0) >= 2, timeout=300), log_path.read_text()[
            -3000:
        ]
        mid = get_status(port)
        assert mid["state"] in ("waiting-for-annotators", "training", "querying", "logging")
        assert len(mid["history"]) >= 2 and all(row["accuracy"] > 0.2 for row in mid["history"])
        # a hung daemon's diagnosis: SIGUSR1 writes every thread's stack to stderr, and the run goes on
        daemon.send_signal(signal.SIGUSR1)
        assert wait_for(lambda: "(most recent call first)" in log_path.read_text(), timeout=10)
        assert daemon.poll() is None and get_status(port) is not None
        daemon.send_signal(signal.SIGKILL)
        daemon.wait(timeout=30)
        killed_at = mid["round"]
        time.sleep(1.0)  # the annotator keeps working while the daemon is down
        daemon = start_daemon(env, log_path)
        assert wait_or_dump(daemon, log_path, 400) == 0, log_path.read_text()[-3000:]
    finally:
        person.stop()
        if daemon.poll() is None:
            daemon.kill()

    text = log_path.read_text()
    assert "stopping after round 4: max_rounds" in text
    assert person.counts.errors == 0
    client = rg.Argilla(api_url=argilla_stack["url"], api_key=argilla_stack["owner_key"])
    dataset = client.datasets(dataset_name, workspace="argilla")
    logged = list(dataset.records)
    per_batch = Counter(int(r.metadata["batch_id"]) for r in logged)
    assert sorted(per_batch) == [0, 1, 2, 3, 4]  # contiguous; no batch after the stop
    assert set(per_batch.values()) == {20}
    indices = [int(r.metadata["pool_index"]) for r in logged]
    assert len(indices) == len(set(indices)) == 100
    assert all(r.id == f"pool-{r.metadata['pool_index']}" for r in logged)

    from daemon.state import StateStore

    state = StateStore(trec_env["state_dir"]).load()
    assert [m.round for m in state.rounds] == [0, 1, 2, 3, 4]
    assert all(m.accuracy is not None for m in state.rounds)
    assert all(m.kappa is not None for m in state.rounds[1:])
    trained = state.training_labels()
    assert not trained.keys() & state.discarded()
    assert len(trained) + len(state.discarded()) == 100
    assert state.rounds[-1].labels == len(trained)
    assert killed_at >= 2
