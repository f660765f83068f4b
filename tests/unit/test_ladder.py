"""The model ladder's decision (daemon/ladder.py) on real learners: a model that can learn the task against one
that cannot (logistic regression on the same all-zero vector for every text)."""

import dataclasses

import numpy as np
import pytest
from small_text import SklearnDataset

from daemon.config import ModelKind, QueryStrategyName, Settings
from daemon.ladder import compare, due
from daemon.learner import Features, Learner, logistic_regression_factory
from daemon.models import build_features
from daemon.pool import load_table
from tests.conftest import tiny_rows, write_jsonl

LABELS = ["food", "sport", "tech"]


@pytest.fixture
def learners(tmp_path):
    path = write_jsonl(tmp_path / "pool.jsonl", tiny_rows(30))
    pool = load_table(path, "text", "label", "id")
    gold = np.array([LABELS.index(label) for label in pool.gold])
    settings = Settings(_env_file=None, model=ModelKind.tfidf, state_dir=tmp_path)
    words = build_features(settings, pool, pool, gold, len(LABELS))
    nothing = np.zeros((len(pool), 4), dtype=np.float32)  # every text looks the same: it can only guess the prior
    blind = Features(
        pool=SklearnDataset(nothing, np.full(len(pool), -1), target_labels=np.arange(len(LABELS))),
        test=None,
        factory=logistic_regression_factory(len(LABELS), 0),
        name="blind",
    )

    def make(features, seed=0):
        return Learner(features, len(LABELS), QueryStrategyName.breaking_ties, seed)

    labelled = {i: int(gold[i]) for i in np.random.default_rng(1).choice(len(pool), 45, replace=False)}
    return make, words, blind, labelled


def test_a_model_that_learns_takes_over_from_one_that_cannot_and_not_the_other_way(learners):
    make, words, blind, labelled = learners
    up = compare(make(blind), make(words), labelled)
    assert up.switch and up.labels == 45 and up.folds == 3
    assert up.candidate_accuracy > 0.8 and up.current_accuracy < 0.45
    assert up.lead > max(up.margin, up.standard_error)
    assert "tfidf-logreg takes over" in up.reason and "45 labels" in up.reason
    down = compare(make(words), make(blind), labelled)
    assert not down.switch and "tfidf-logreg stays" in down.reason
    assert down.current_accuracy == up.candidate_accuracy  # the same folds either way round


def test_the_same_model_never_takes_over_from_itself(learners):
    make, words, _, labelled = learners
    verdict = compare(make(words), make(words), labelled)
    assert verdict.lead == 0 and not verdict.switch


def test_compared_learners_share_their_folds(learners):
    make, words, blind, labelled = learners
    with pytest.raises(ValueError, match="same seed"):
        compare(make(words), make(blind, seed=1), labelled)
    first, second = (dataclasses.replace(compare(make(blind), make(words), labelled), seconds=0) for _ in range(2))
    assert first == second  # seeded: the same folds, the same verdict


def test_a_comparison_is_due_at_the_first_count_then_as_the_labels_grow():
    assert not due(199, first=200, compared_at=[])
    assert due(200, first=200, compared_at=[])
    assert not due(280, first=200, compared_at=[200])
    assert due(300, first=200, compared_at=[200])
    assert not due(440, first=200, compared_at=[200, 300])
    assert due(450, first=200, compared_at=[200, 300])
