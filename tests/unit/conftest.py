"""Unit-test fixtures: a tiny three-topic pool, a fake gateway, and a daemon wired to both."""

import numpy as np
import pytest

from daemon.config import ModelKind, Settings
from daemon.learner import Learner
from daemon.loop import Daemon
from daemon.models import build_features
from daemon.pool import load_table
from tests.conftest import tiny_rows, write_jsonl
from tests.fakes import FakeGateway

LABELS = ["food", "sport", "tech"]


@pytest.fixture
def world(tmp_path):
    path = write_jsonl(tmp_path / "pool.jsonl", tiny_rows(20))
    pool = load_table(path, "text", "label", "id")
    gold = {text: label for text, label in zip(pool.texts, pool.gold, strict=True)}
    y = np.array([LABELS.index(label) for label in pool.gold])
    return {"pool": pool, "gold": gold, "y": y, "gateway": FakeGateway(), "dir": tmp_path / "state"}


def make_daemon(world, **overrides) -> Daemon:
    options = {"model": ModelKind.tfidf, "batch_size": 6, "state_dir": world["dir"], "dataset": "d", "workspace": "w"}
    options.update(overrides)
    settings = Settings(_env_file=None, **options)
    features = build_features(settings, world["pool"], world["pool"], world["y"], len(LABELS))
    learner = Learner.from_settings(features, len(LABELS), settings)
    return Daemon(settings, world["gateway"], learner, world["pool"], LABELS, world["y"])


def label_batch(world, batch_id, discard=()):
    for record in world["gateway"].batch(batch_id):
        if record.pool_index in discard:
            world["gateway"].discard(record.record_id)
        else:
            world["gateway"].submit(record.record_id, world["gold"][record.text])


def run_rounds(world, daemon: Daemon, rounds: int) -> list[dict]:
    """Label ``rounds`` batches (no discards) and return the status document after each round."""
    seen = []
    for batch_id in range(rounds):
        label_batch(world, batch_id)
        daemon.tick()
        seen.append(daemon.status())
    return seen


@pytest.fixture
def finished_run(world):
    """A short run stopped by max_rounds: (world, daemon, statuses)."""
    daemon = make_daemon(world, max_rounds=4)
    daemon.start()
    statuses = run_rounds(world, daemon, 4)
    return world, daemon, statuses
