"""A trained model's round metrics: its test-set scores and every stopping signal (KappaAverage compares the
model's pool predictions with the previous round's, kept in the state folder across restarts).

Multi-label: the stopping signals read every (text, label) decision as one binary prediction (label in or out,
:func:`binary_decisions`): KappaAverage is Cohen's kappa over those decisions between consecutive models,
ClassificationChange the share of decisions that changed, DeltaFScore the binary F-score change, and
OverallUncertainty the mean normalised yes/no entropy over the unlabelled texts' labels."""

from __future__ import annotations

import numpy as np

from daemon.batches import predicted_sets
from daemon.config import Settings
from daemon.learner import Evaluation, Learner
from daemon.state import RoundMetrics, StateStore
from daemon.stopping import Inputs, StoppingSignals, project_kappa

Scores = tuple[Evaluation | None, np.ndarray | None]  # test-set evaluation, pool probabilities


class Scorer:
    """Scores the models of one run: :meth:`scores` is the slow part (predictions, free of state, may run off
    the daemon's thread), :meth:`evaluate` turns them into the round's :class:`RoundMetrics`."""

    def __init__(
        self, settings: Settings, signals: StoppingSignals, store: StateStore, y_test: np.ndarray | None
    ) -> None:
        self.settings = settings
        self.signals = signals
        self.store = store
        self.y_test = y_test

    def scores(self, learner: Learner, trained: bool) -> Scores:
        """The model's predictions for the test set (scored) and the pool (None when it did not train)."""
        evaluation = learner.evaluate(self.y_test) if self.y_test is not None else None
        return evaluation, learner.pool_proba() if trained else None

    def evaluate(
        self,
        rounds: list[RoundMetrics],
        round_number: int,
        labels: int,
        learner: Learner,
        trained: bool,
        scores: Scores | None = None,
    ) -> RoundMetrics:
        """The metrics of round ``round_number``, whose model trained on ``labels`` labels, given the journal's
        earlier ``rounds``; saves the pool predictions the next round's KappaAverage compares with."""
        evaluation, proba = scores if scores is not None else self.scores(learner, trained)
        metrics = RoundMetrics(round=round_number, labels=labels)
        if evaluation is not None:
            metrics.accuracy, metrics.macro_f1 = evaluation.accuracy, evaluation.macro_f1
            metrics.micro_f1, metrics.hamming_loss = evaluation.micro_f1, evaluation.hamming_loss
        earlier = [m for m in sorted(rounds, key=lambda m: m.round) if m.round < round_number]
        predictions = previous = None
        unlabelled = learner.unlabelled_indices()
        if proba is not None and getattr(learner, "multi_label", False):
            proba, predictions, unlabelled = binary_decisions(
                proba, unlabelled, learner.threshold, learner.at_least_one
            )
        elif proba is not None:
            predictions = proba.argmax(axis=1)
        if proba is not None:
            previous = self.store.previous_predictions(rounds, round_number)
            self.store.save_predictions(round_number, predictions)
        inputs = Inputs(
            round=round_number,
            rounds_trained=len(earlier) + 1,
            labels=labels,
            predictions=predictions,
            previous=previous,
            proba=proba,
            unlabelled=unlabelled,
        )
        metrics.signals = self.signals.compute(inputs, [m.signals for m in earlier])
        kappas = [(m.round, m.kappa) for m in earlier] + [(round_number, metrics.kappa)]
        metrics.projected_stop_round = project_kappa(kappas, self.settings.kappa_window, self.settings.kappa_threshold)
        return metrics


def binary_decisions(
    proba: np.ndarray, unlabelled: np.ndarray, threshold: float, at_least_one: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A multi-label model's pool output as binary predictions, one per (text, label), row-major: yes/no
    probabilities (rows ``[1 - p, p]``), the 0/1 decisions (the labels it would suggest), and the decisions of
    the ``unlabelled`` texts' labels."""
    proba = np.asarray(proba, dtype=np.float64)
    k = proba.shape[1]
    flat = proba.reshape(-1)
    decisions = predicted_sets(proba, threshold, at_least_one).reshape(-1)
    rows = (np.asarray(unlabelled, dtype=np.int64)[:, None] * k + np.arange(k)).reshape(-1)
    return np.stack([1.0 - flat, flat], axis=1), decisions, rows
