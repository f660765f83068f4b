"""Shared fixtures: the real local Argilla stack (session-wide), a fake gateway, small data files."""

from __future__ import annotations

import json
import os
import socket
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "tests" / "output"
TREC = ROOT / "data" / "trec6"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(autouse=True)
def no_exit_from_the_test_process(monkeypatch):
    """A service run inside the test process that would leave it (``daemon.app._flush_and_exit``: ``os._exit``, out
    of pytest's reach, from any thread) fails the test instead: left alone, the whole run would end there with exit
    code 0 and look green."""
    calls: list[int] = []

    def refuse(code: int) -> None:
        calls.append(code)
        raise SystemExit(code)  # ends the calling thread (a timer's, the trainer's) or the test's own call

    monkeypatch.setattr("daemon.app._flush_and_exit", refuse)
    yield
    assert not calls, f"a service in this test process tried to leave it: os._exit({calls[0]})"


@pytest.fixture(scope="session")
def argilla_stack():
    """A real Argilla 2.8 server (osmem + Redis + server + worker) on test ports, started once per session.

    Set AL_TEST_ARGILLA_URL to use an already running server instead (owner key AL_TEST_ARGILLA_KEY).
    """
    from daemon.stack import ANNOTATOR, OWNER, Stack, StackConfig

    if os.environ.get("AL_TEST_ARGILLA_URL"):
        yield {
            "url": os.environ["AL_TEST_ARGILLA_URL"],
            "owner_key": os.environ.get("AL_TEST_ARGILLA_KEY", OWNER.api_key),
            "annotator_key": os.environ.get("AL_TEST_ANNOTATOR_KEY", ANNOTATOR.api_key),
            "stack": None,
        }
        return
    config = StackConfig(
        run_dir=ROOT / ".stack" / "test",
        venv_dir=Path(os.environ.get("AL_STACK_VENV", ROOT / ".stack" / "venv")),
        argilla_port=int(os.environ.get("AL_TEST_ARGILLA_PORT", 6910)),
        search_port=int(os.environ.get("AL_TEST_SEARCH_PORT", 9210)),
        redis_port=int(os.environ.get("AL_TEST_REDIS_PORT", 6389)),
    )
    stack = Stack(config)
    started_here = not stack.healthy()
    if started_here:
        stack.reset()  # a fresh home: osmem is in memory, and tests want a clean server
        stack.up()
    # a healthy server this checkout did not start (another clone's stack on the same ports) cannot be stopped
    # and restarted from here: tests that need to (the outage faults) get no Stack and skip
    ours = started_here or stack.running().get("server", False)
    yield {
        "url": config.url,
        "owner_key": OWNER.api_key,
        "annotator_key": ANNOTATOR.api_key,
        "stack": stack if ours else None,
    }
    if started_here and not os.environ.get("AL_TEST_KEEP_STACK"):
        stack.down()


@pytest.fixture(scope="session")
def ray_cluster():
    """A real local Ray cluster (``ray start --head`` in a subprocess, 2 CPUs), started once per session when a
    test asks for it. The Ray Client's reconnection grace is cut from 30 s to 5 s for the outage tests (an
    environment variable of Ray's, inherited by the daemons the tests start)."""
    from tests.ray_cluster import RayCluster

    os.environ["RAY_CLIENT_RECONNECT_GRACE_PERIOD"] = "5"
    cluster = RayCluster(cpus=2)
    cluster.up()
    yield cluster
    try:
        import ray

        ray.shutdown()
    finally:
        cluster.down()


@pytest.fixture
def dataset_name(request) -> str:
    """A unique Argilla dataset name per test."""
    return f"t-{request.node.name[:30].replace('[', '-').replace(']', '')}-{uuid.uuid4().hex[:6]}"


@pytest.fixture(scope="session")
def cache_dir() -> Path:
    """Embedding cache shared by the whole session (embedding TREC-6 once takes ~20 s on 2 cores)."""
    path = OUTPUT / "cache"
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


TOPICS = {
    "sport": ["the team won the match", "a late goal in the final", "the striker scored twice", "tennis open final"],
    "food": ["a recipe for tomato soup", "bake the bread for an hour", "fresh pasta with basil", "grilled fish dinner"],
    "tech": ["the new phone has a fast chip", "update the laptop software", "a bug in the compiler", "cloud servers"],
}


# One word per text that no other text has, in the same sentence: n-grams learnt from the other texts say nothing
# about it, while sentence embeddings know bread from golf from routers.
SYNONYMS = {
    "food": "apple banana bread butter cheese pasta rice soup salad pizza burger noodles yogurt cereal pancake "
    "omelette sandwich sushi tomato potato carrot onion garlic mushroom strawberry chocolate cookie muffin bagel "
    "steak".split(),
    "sport": "football tennis golf basketball baseball hockey cricket rugby volleyball badminton swimming cycling "
    "marathon boxing wrestling karate judo fencing rowing sailing surfing skiing snowboarding skating archery "
    "bowling climbing gymnastics triathlon handball".split(),
    "tech": "laptop router smartphone keyboard monitor processor software database compiler server firmware modem "
    "tablet printer scanner motherboard headphones webcam smartwatch microchip algorithm browser spreadsheet "
    "bluetooth ethernet transistor semiconductor touchscreen microphone encryption".split(),
}


def synonym_rows() -> list[dict]:
    """The three topics in one sentence with one unseen word each (90 rows, shuffled: a model whose margins all tie
    picks in pool order): only a model that knows words' meanings can tell them apart (the model ladder's tests)."""
    import random

    rows = [
        {"id": f"{label}-{i}", "text": f"I keep thinking about {word}", "label": label}
        for label, words in SYNONYMS.items()
        for i, word in enumerate(words)
    ]
    random.Random(0).shuffle(rows)
    return rows


def ladder_env(pool: Path) -> dict:
    """Settings of a command-line run on :func:`synonym_rows` in which the model ladder climbs: tfidf first, the
    embeddings model compared once 20 labels exist (AL_LADDER_COMPARE=probes: 10 texts where the two disagree go
    into the next batch not yet chosen when they are drawn; the embeddings model wins on them), then again from 30
    labels on with tfidf as the candidate (the way back; it loses), seven rounds of ten, so the last ones train the
    model that took over; the pool is the test set too, so a round's accuracy shows which model trained."""
    return {
        "AL_POOL_FILE": str(pool),
        "AL_TEST_FILE": str(pool),
        "AL_MODEL": "tfidf",
        "AL_LADDER": "embeddings",
        "AL_LADDER_AFTER": "20",
        "AL_LADDER_PROBES": "10",
        "AL_BATCH_SIZE": "10",
        "AL_MAX_ROUNDS": "7",
        "AL_STOP_CRITERIA": "never",
    }


def tiny_rows(per_topic: int = 30) -> list[dict]:
    """A small separable three-class text set (made up here, no download)."""
    rows = []
    for label, seeds in TOPICS.items():
        for i in range(per_topic):
            rows.append({"id": f"{label}-{i}", "text": f"{seeds[i % len(seeds)]} number {i}", "label": label})
    return rows
