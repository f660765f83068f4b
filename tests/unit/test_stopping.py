"""Stopping signals: restored round by round, they must agree with small-text's criteria fed in one go."""

import numpy as np
import pytest
from small_text import DeltaFScore, KappaAverage, OverallUncertainty

from daemon.config import Settings
from daemon.stopping import LABEL_BUDGET, MAX_ITERATIONS, Inputs, Signal, StoppingSignals, project_kappa


def inputs(round_number, predictions, previous, proba=None, labels=10, unlabelled=None):
    n = len(predictions) if predictions is not None else 4
    return Inputs(
        round=round_number,
        rounds_trained=round_number + 1,
        labels=labels,
        predictions=predictions,
        previous=previous,
        proba=proba,
        unlabelled=np.arange(n) if unlabelled is None else unlabelled,
    )


def run(signals: StoppingSignals, sequence, proba=None):
    """Feed a sequence of prediction arrays as rounds, restoring from the recorded history each time."""
    history: list[dict[str, Signal]] = []
    previous = None
    for r, predictions in enumerate(sequence):
        history.append(signals.compute(inputs(r, predictions, previous, proba), history))
        previous = predictions
    return history


def test_kappa_matches_small_text_fed_sequentially():
    rng = np.random.default_rng(0)
    sequence = [rng.integers(0, 3, 200) for _ in range(3)]
    for _ in range(6):  # predictions converge: fewer and fewer flips
        last = sequence[-1].copy()
        flip = rng.random(200) < 0.01
        last[flip] = (last[flip] + 1) % 3
        sequence.append(last)
    settings = Settings(_env_file=None, kappa_threshold=0.95, kappa_window=3)
    history = run(StoppingSignals(settings, 3), sequence)
    reference = KappaAverage(3, window_size=3, kappa=0.95)
    expected_fired = [bool(reference.stop(predictions=p)) for p in sequence]
    assert [h["kappa_average"].fired for h in history] == expected_fired
    assert any(expected_fired) and not all(expected_fired)
    assert history[0]["kappa_average"].value is None
    assert all(h["kappa_average"].value is not None for h in history[1:])


def test_delta_f_binary_matches_small_text():
    rng = np.random.default_rng(1)
    base = rng.integers(0, 2, 300)
    sequence = [rng.integers(0, 2, 300), rng.integers(0, 2, 300)] + [base] * 4
    settings = Settings(_env_file=None, delta_f_threshold=0.05, delta_f_window=3)
    history = run(StoppingSignals(settings, 2), sequence)
    reference = DeltaFScore(2, window_size=3, threshold=0.05)
    assert [h["delta_f_score"].fired for h in history] == [bool(reference.stop(predictions=p)) for p in sequence]
    assert history[-1]["delta_f_score"].fired and history[-1]["delta_f_score"].value == 0.0


def test_delta_f_one_vs_rest_ignores_a_class_nobody_predicts():
    stable = np.array([0, 1, 0, 1, 0, 1])  # class 2 is never predicted: its F-score change is 0/0
    history = run(StoppingSignals(Settings(_env_file=None, delta_f_window=2), 3), [stable] * 3)
    assert [h["delta_f_score"].fired for h in history] == [False, False, True]
    changed = run(StoppingSignals(Settings(_env_file=None, delta_f_window=2), 3), [stable, stable, 1 - stable])
    assert changed[-1]["delta_f_score"].value == pytest.approx(1.0) and not changed[-1]["delta_f_score"].fired


def test_classification_change_is_the_share_of_changed_predictions():
    a = np.zeros(100, dtype=int)
    b = a.copy()
    b[:2] = 1
    history = run(StoppingSignals(Settings(_env_file=None, classification_change_threshold=0.01), 2), [a, b, b])
    assert history[1]["classification_change"].value == pytest.approx(0.02)
    assert not history[1]["classification_change"].fired
    assert history[2]["classification_change"].fired and history[2]["classification_change"].value == 0.0


def test_overall_uncertainty_on_the_unlabelled_pool():
    signals = StoppingSignals(Settings(_env_file=None, overall_uncertainty_threshold=0.05), 2)
    unsure = np.full((4, 2), 0.5)
    sure = np.array([[0.999, 0.001]] * 4)
    predictions = np.zeros(4, dtype=int)
    high = signals.compute(inputs(0, predictions, None, proba=unsure), [])["overall_uncertainty"]
    low = signals.compute(inputs(0, predictions, None, proba=sure), [])["overall_uncertainty"]
    assert high.value == pytest.approx(1.0) and not high.fired
    assert low.value < 0.05 and low.fired
    mixed = np.vstack([sure[:2], unsure[:2]])  # only the unlabelled rows 0 and 1 count
    only_sure = signals.compute(inputs(0, predictions, None, proba=mixed, unlabelled=np.array([0, 1])), [])
    assert only_sure["overall_uncertainty"].fired


def test_overall_uncertainty_matches_small_text():
    rng = np.random.default_rng(3)
    proba = rng.dirichlet([0.3] * 4, size=500)
    unlabelled = np.sort(rng.choice(500, 300, replace=False))
    outcomes = set()
    for threshold in (0.2, 0.4, 0.6, 0.8):
        reading = StoppingSignals(Settings(_env_file=None, overall_uncertainty_threshold=threshold), 4).compute(
            inputs(0, proba.argmax(1), None, proba=proba, unlabelled=unlabelled), []
        )["overall_uncertainty"]
        reference = OverallUncertainty(4, threshold=threshold).stop(proba=proba, indices_stopping=unlabelled)
        assert reading.fired is bool(reference)
        outcomes.add(reading.fired)
    assert outcomes == {True, False}


def test_caps_stop_whatever_the_criteria_say():
    settings = Settings(_env_file=None, stop_criteria=[], max_rounds=3, max_labels=50)
    signals = StoppingSignals(settings, 2)
    p = np.zeros(4, dtype=int)
    assert signals.stop_reason(signals.compute(inputs(1, p, p, labels=40), [])) is None
    third = signals.compute(inputs(2, p, p, labels=40), [])
    assert third[MAX_ITERATIONS].fired and "max_rounds: 3" in signals.stop_reason(third)
    budget = signals.compute(inputs(0, p, None, labels=50), [])
    assert budget[LABEL_BUDGET].fired and "max_labels" in signals.stop_reason(budget)


def test_no_model_means_no_signals_but_caps_still_count():
    signals = StoppingSignals(Settings(_env_file=None, max_labels=5), 2)
    reading = signals.compute(inputs(0, None, None, labels=6), [])
    assert reading["kappa_average"].value is None and reading["overall_uncertainty"].value is None
    assert reading[LABEL_BUDGET].fired


@pytest.mark.parametrize("mode, stops", [("any", True), ("all", False)])
def test_stop_mode_any_or_all(mode, stops):
    settings = Settings(_env_file=None, stop_criteria=["kappa_average", "overall_uncertainty"], stop_mode=mode)
    signals = StoppingSignals(settings, 2)
    reading = {name: Signal(value=0.5) for name in signals.thresholds()}
    reading["kappa_average"] = Signal(value=0.995, fired=True)
    reason = signals.stop_reason(reading)
    assert (reason is not None) is stops
    if stops:
        assert reason.startswith("kappa_average fired") and "0.995" in reason
    reading["overall_uncertainty"] = Signal(value=0.01, fired=True)
    assert "kappa_average+overall_uncertainty" in signals.stop_reason(reading)


def test_projection_of_a_saturating_kappa():
    truth = [(r, 1 - 0.5 * np.exp(-0.15 * r)) for r in range(1, 40)]
    window, threshold = 3, 0.99
    actual = next(
        r for i, (r, _) in enumerate(truth) if i >= 2 and np.mean([k for _, k in truth[i - 2 : i + 1]]) >= 0.99
    )
    projected = project_kappa(truth[:12], window, threshold)
    assert projected is not None and abs(projected - actual) <= 2
    assert project_kappa(truth, window, threshold) == actual  # already fired: the round it fired


def test_projection_refuses_without_a_trend():
    assert project_kappa([(1, 0.5), (2, 0.5), (3, 0.45)], 3, 0.99) is None
    assert project_kappa([(1, 0.5), (2, 0.6)], 3, 0.99) is None  # too few points
    assert project_kappa([], 3, 0.99) is None
    assert project_kappa([(1, None), (2, 0.6)], 3, 0.99) is None
