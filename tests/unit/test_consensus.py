"""daemon.consensus: majority vote, CROWDLAB, ActiveLab scores and picks, agreement."""

import numpy as np
import pytest

from daemon.consensus import VoteMatrix, activelab_scores, agreement, crowdlab, lowest, majority, majority_labels


def test_majority_ties_go_to_the_first_submitted():
    assert majority([("a", 1), ("b", 0), ("c", 0)]) == 0
    assert majority([("a", 1), ("b", 0)]) == 1
    assert majority([("b", 0), ("a", 1)]) == 0
    assert majority_labels({3: [("a", 2)], 5: []}) == {3: 2}


def test_vote_matrix_lays_rows_by_index_and_columns_by_annotator():
    matrix = VoteMatrix.of({7: [("bob", 1)], 2: [("amy", 0), ("bob", 0)]})
    assert matrix.indices.tolist() == [2, 7]
    assert matrix.annotators == ["amy", "bob"]
    assert np.array_equal(np.nan_to_num(matrix.labels, nan=-1), [[0, 0], [-1, 1]])
    assert matrix.counts.tolist() == [2, 1]
    assert matrix.crowdlab_possible()
    assert not VoteMatrix.of({1: [("amy", 0)], 2: [("bob", 1)]}).crowdlab_possible()


def noisy_team(rng, texts=120, classes=2):
    """Three good annotators and one who answers at random; the model's probabilities lean to the truth."""
    truth = rng.integers(0, classes, texts)
    votes = {}
    for i in range(texts):
        given = [(who, int(truth[i])) for who in ("good1", "good2") if rng.random() < 0.9]
        given = [(who, label if rng.random() < 0.9 else 1 - label) for who, label in given]
        given.append(("random", int(rng.integers(0, classes))))
        votes[i] = given
    proba = np.full((texts, classes), 0.3)
    proba[np.arange(texts), truth] = 0.7
    return truth, votes, proba


def test_crowdlab_ranks_the_random_annotator_last_and_recovers_the_truth():
    truth, votes, proba = noisy_team(np.random.default_rng(0))
    found = crowdlab(votes, proba)
    assert found.method == "crowdlab"
    quality = found.annotator_quality
    assert quality["random"] < min(quality["good1"], quality["good2"])
    accuracy = np.mean([found.labels[i] == truth[i] for i in votes])
    majority_accuracy = np.mean([label == truth[i] for i, label in majority_labels(votes).items()])
    assert accuracy >= majority_accuracy and accuracy > 0.9
    assert set(found.quality) == set(votes)


def test_crowdlab_falls_back_to_majority_while_no_two_annotators_overlap():
    votes = {0: [("a", 1)], 1: [("b", 0)]}
    found = crowdlab(votes, np.array([[0.5, 0.5], [0.5, 0.5]]))
    assert found.method == "majority" and found.labels == {0: 1, 1: 0}


def test_activelab_scores_doubtful_labels_below_confident_ones_and_the_pool():
    votes = {0: [("a", 0), ("b", 0)], 1: [("a", 1)], 2: [("a", 0), ("b", 1)]}
    held_out = np.array([[0.95, 0.05], [0.1, 0.9], [0.5, 0.5]])
    pool = np.array([[0.99, 0.01], [0.55, 0.45]])
    labelled, unlabelled = activelab_scores(votes, held_out, pool)
    assert set(labelled) == {0, 1, 2}
    assert labelled[2] < labelled[0]  # the annotators disagree and the model is unsure
    assert unlabelled[1] < unlabelled[0]  # the model is unsure of the second pool text
    assert all(0 <= s <= 1 for s in [*labelled.values(), *unlabelled])


def test_activelab_scores_with_nothing_labelled_score_the_pool_only():
    labelled, unlabelled = activelab_scores({}, np.zeros((0, 2)), np.array([[0.9, 0.1], [0.6, 0.4]]))
    assert labelled == {} and unlabelled[1] < unlabelled[0]


def test_lowest_mixes_new_texts_and_relabels_but_only_allowed_relabels():
    picks = lowest({4: 0.1, 5: 0.2, 6: 0.05}, np.array([10, 11, 12]), np.array([0.15, 0.9, 0.3]), 3, may_relabel={4, 5})
    assert [(p.index, p.relabel) for p in picks] == [(4, True), (10, False), (5, True)]
    assert lowest({}, np.array([1, 2]), np.array([0.5, 0.5]), 5, set())[0].index == 1  # ties: lower index first


def test_agreement_per_annotator_and_overall():
    votes = {0: [("a", "x"), ("b", "x"), ("c", "y")], 1: [("a", "y"), ("b", "y")], 2: [("c", "x")]}
    view = agreement(votes, {0: "x", 1: "y", 2: "x"})
    assert view["texts_with_several_votes"] == 2
    assert view["mean_agreement"] == pytest.approx((2 / 3 + 1) / 2)
    assert view["annotators"]["a"] == {"labels": 2, "compared": 2, "agreement": 1.0}
    assert view["annotators"]["c"] == {"labels": 2, "compared": 1, "agreement": 0.0}
    assert agreement({0: [("a", "x")]}, {0: "x"})["mean_agreement"] is None
