"""A trained model's round metrics: its test-set scores and every stopping signal (KappaAverage compares the
model's pool predictions with the previous round's, kept in the state folder across restarts)."""

from __future__ import annotations

import numpy as np

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
        earlier = [m for m in sorted(rounds, key=lambda m: m.round) if m.round < round_number]
        predictions = previous = None
        if proba is not None:
            predictions = proba.argmax(axis=1)
            previous = self.store.previous_predictions(rounds, round_number)
            self.store.save_predictions(round_number, predictions)
        inputs = Inputs(
            round=round_number,
            rounds_trained=len(earlier) + 1,
            labels=labels,
            predictions=predictions,
            previous=previous,
            proba=proba,
            unlabelled=learner.unlabelled_indices(),
        )
        metrics.signals = self.signals.compute(inputs, [m.signals for m in earlier])
        kappas = [(m.round, m.kappa) for m in earlier] + [(round_number, metrics.kappa)]
        metrics.projected_stop_round = project_kappa(kappas, self.settings.kappa_window, self.settings.kappa_threshold)
        return metrics
