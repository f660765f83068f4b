"""Argilla (and, separately, its search engine) goes away mid-run and comes back: the daemon survives,
says `degraded` with the reason, and finishes the run with nothing lost or doubled."""

import time

import pytest

from daemon.simulate import wait_for
from tests.e2e.conftest import get_status, simulated_annotator, start_daemon, wait_or_dump
from tests.faults.conftest import assert_clean, audit

pytestmark = pytest.mark.faults


@pytest.mark.parametrize("service", ["server", "osmem"])
def test_outage_mid_run(argilla_stack, dataset_name, trec_env, trec_data, service, results):
    stack = argilla_stack["stack"]
    if stack is None:
        pytest.skip("needs the suite's own stack (AL_TEST_ARGILLA_URL points elsewhere)")
    port, log = trec_env["port"], trec_env["log"]
    # every round trains (the counts below), however long a cold cache's embedding takes on a busy machine
    env = trec_env["env"] | {"AL_BATCH_SIZE": "10", "AL_MAX_ROUNDS": "5", "AL_STOP_CRITERIA": "never"}
    env |= {"AL_FEATURES_WAIT": "600"}
    person = simulated_annotator(argilla_stack, dataset_name, trec_data, discard_rate=0.1, seed=4)
    thread = person.start_thread()
    daemon = start_daemon(env, log)
    degraded = None
    try:
        assert wait_for(lambda: (get_status(port) or {}).get("round", 0) >= 1, 180), log.read_text()[-3000:]
        person.stop()  # hold the run mid-way: the daemon waits on an unfinished batch while Argilla is away
        thread.join(timeout=30)
        assert (get_status(port) or {}).get("stop", {}).get("reason") is None, "the run ended before the outage"
        stack.stop_service(service)
        if service == "server":
            stack.stop_service("worker")
        deadline = time.monotonic() + 60
        while degraded is None and time.monotonic() < deadline:
            status = get_status(port) or {}
            if status.get("state") == "degraded":
                degraded = status
            time.sleep(0.3)
        time.sleep(5)  # stay down a while: the daemon keeps retrying with backoff
        assert daemon.poll() is None, "the daemon died during the outage"
        stack.up()  # brings the missing services back (and reindexes after a search-engine restart)
        person = simulated_annotator(argilla_stack, dataset_name, trec_data, discard_rate=0.1, seed=5)
        person.start_thread()  # the annotator comes back too
        assert wait_or_dump(daemon, log, 400) == 0, log.read_text()[-3000:]
    finally:
        person.stop()
        if daemon.poll() is None:
            daemon.kill()
        stack.up()
    assert degraded is not None and degraded["reason"], "never reported degraded"
    checks = audit(argilla_stack, dataset_name, trec_env["state_dir"])
    what = "Argilla server + worker" if service == "server" else "search engine (osmem)"
    results(f"{what} down mid-run", f"degraded ({degraded['reason'][:40]}…), recovered, finished", checks)
    assert_clean(checks)
    assert checks["rounds"] == 5 and checks["batches"] == 5


def test_ray_cluster_lost_mid_run(ray_cluster, argilla_stack, dataset_name, trec_env, trec_data, results):
    """AL_RAY_ADDRESS set and the cluster killed mid-run: the daemon lives on (a Ray Client, not a driver Ray would
    end), scores the pool here meanwhile (engine fallbacks on /status), tries the cluster again each round, and
    the run finishes with nothing lost or doubled."""
    if ray_cluster.process is None:
        ray_cluster.up()
    port, log = trec_env["port"], trec_env["log"]
    env = trec_env["env"] | {
        "AL_BATCH_SIZE": "10",
        "AL_MAX_ROUNDS": "4",
        "AL_STOP_CRITERIA": "never",
        "AL_RAY_ADDRESS": ray_cluster.address,
        "RAY_CLIENT_RECONNECT_GRACE_PERIOD": "5",
    }
    person = simulated_annotator(argilla_stack, dataset_name, trec_data, discard_rate=0.1, seed=6)
    thread = person.start_thread()
    daemon = start_daemon(env, log)
    fell_back = None
    try:
        assert wait_for(lambda: (get_status(port) or {}).get("round", 0) >= 1, 180), log.read_text()[-3000:]
        person.stop()  # hold the run mid-way while the cluster goes
        thread.join(timeout=30)
        assert (get_status(port) or {}).get("engine", {}).get("fallbacks") == 0, log.read_text()[-3000:]
        ray_cluster.down()
        person = simulated_annotator(argilla_stack, dataset_name, trec_data, discard_rate=0.1, seed=7)
        thread = person.start_thread()  # the annotators go on: the next rounds score the pool without the cluster
        assert wait_for(lambda: ((get_status(port) or {}).get("engine") or {}).get("fallbacks", 0) >= 1, 180), (
            log.read_text()[-3000:]
        )
        fell_back = get_status(port)
        assert daemon.poll() is None, "the daemon died with its Ray cluster"
        ray_cluster.up()
        assert wait_or_dump(daemon, log, 400) == 0, log.read_text()[-3000:]
    finally:
        person.stop()
        if daemon.poll() is None:
            daemon.kill()
        if ray_cluster.process is None:
            ray_cluster.up()
    engine = fell_back["engine"]
    assert engine["name"] == "ray" and engine["error"].startswith("scoring: ")
    checks = audit(argilla_stack, dataset_name, trec_env["state_dir"])
    results("Ray cluster killed mid-run", f"scored here meanwhile ({engine['fallbacks']} fallback), finished", checks)
    assert_clean(checks)
    assert checks["rounds"] == 4 and checks["batches"] == 4
