"""Stopping signals: every small-text stopping criterion, computed each round and restorable from the state.

small-text's criteria are stateful objects fed once per round. The daemon restarts, so each round we build
a fresh criterion, restore its memory (previous predictions, the window's history) from what the state
recorded, and call its ``stop()``. The value each criterion looks at is recorded too, so the status page
can plot it and the next round can restore it.

- KappaAverage: Cohen's kappa between consecutive rounds' pool predictions, window mean ≥ threshold.
- DeltaFScore: predicted F-score change between rounds, every value in the window < threshold. small-text
  implements it for binary tasks; with more classes we run it one-vs-rest per class and record the largest
  change, which fires exactly when every class's criterion fires.
- ClassificationChange: share of pool predictions that changed since the last round ≤ threshold.
- OverallUncertainty: mean normalised prediction entropy over the unlabelled pool < threshold (small-text's
  formula, vectorised).
- MaxIterations (``max_rounds``) and the label budget (``max_labels``) are caps: they always stop.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from pydantic import BaseModel
from scipy.stats import entropy

from daemon.config import Criterion, Settings, StopMode

MAX_ITERATIONS = "max_iterations"
LABEL_BUDGET = "label_budget"
SIGNALS = [*(c.value for c in Criterion), MAX_ITERATIONS, LABEL_BUDGET]


class Signal(BaseModel):
    """One criterion's reading in one round."""

    value: float | None = None  # what the criterion compares with its threshold (None: not computable yet)
    fired: bool = False


@dataclasses.dataclass(frozen=True)
class Inputs:
    """What a round hands the criteria: pool predictions now and before, probabilities, the unlabelled set."""

    round: int  # the round being evaluated
    rounds_trained: int  # including this one
    labels: int
    predictions: np.ndarray | None  # pool predictions of this round's model (None: no model yet)
    previous: np.ndarray | None  # the last model's pool predictions
    proba: np.ndarray | None
    unlabelled: np.ndarray  # pool indices not labelled or discarded


class StoppingSignals:
    """Computes every signal each round and decides whether the configured rule says stop."""

    def __init__(self, settings: Settings, num_classes: int) -> None:
        self.settings = settings
        self.num_classes = num_classes

    def thresholds(self) -> dict[str, float | None]:
        s = self.settings
        return {
            Criterion.kappa_average: s.kappa_threshold,
            Criterion.delta_f_score: s.delta_f_threshold,
            Criterion.classification_change: s.classification_change_threshold,
            Criterion.overall_uncertainty: s.overall_uncertainty_threshold,
            MAX_ITERATIONS: s.max_rounds,
            LABEL_BUDGET: s.max_labels,
        }

    def compute(self, inputs: Inputs, history: list[dict[str, Signal]]) -> dict[str, Signal]:
        """This round's reading of every criterion; ``history`` holds the earlier rounds' readings, oldest first."""
        signals = {name: Signal() for name in SIGNALS}
        s = self.settings
        if inputs.predictions is not None:
            past = {
                name: [h[name].value for h in history if name in h and h[name].value is not None] for name in SIGNALS
            }
            if inputs.previous is not None:
                signals[Criterion.kappa_average] = self._kappa(inputs, past[Criterion.kappa_average])
                signals[Criterion.delta_f_score] = self._delta_f(inputs, past[Criterion.delta_f_score])
                signals[Criterion.classification_change] = self._change(inputs)
            signals[Criterion.overall_uncertainty] = self._uncertainty(inputs)
        if s.max_rounds is not None:
            from small_text import MaxIterations  # here, not at the top: small-text imports torch (~8 s)

            criterion = MaxIterations(s.max_rounds)
            criterion.current_iteration = inputs.rounds_trained - 1
            signals[MAX_ITERATIONS] = Signal(value=inputs.rounds_trained, fired=bool(criterion.stop()))
        else:
            signals[MAX_ITERATIONS] = Signal(value=inputs.rounds_trained)
        signals[LABEL_BUDGET] = Signal(
            value=inputs.labels, fired=s.max_labels is not None and inputs.labels >= s.max_labels
        )
        return {str(name): signal for name, signal in signals.items()}

    def _kappa(self, inputs: Inputs, past: list[float]) -> Signal:
        from small_text import KappaAverage

        criterion = KappaAverage(
            self.num_classes, window_size=self.settings.kappa_window, kappa=self.settings.kappa_threshold
        )
        criterion.last_predictions = inputs.previous
        criterion.kappa_history = past[-self.settings.kappa_window :]
        fired = bool(criterion.stop(predictions=inputs.predictions))
        return Signal(value=float(criterion.kappa_history[-1]), fired=fired)

    def _delta_f(self, inputs: Inputs, past: list[float]) -> Signal:
        from small_text import DeltaFScore

        window, threshold = self.settings.delta_f_window, self.settings.delta_f_threshold
        if self.num_classes == 2:
            views = [(inputs.previous, inputs.predictions)]
        else:  # one-vs-rest: class c is "positive"
            views = [
                ((inputs.previous == c).astype(int), (inputs.predictions == c).astype(int))
                for c in range(self.num_classes)
            ]
        earlier = past[-(window - 1) :] if window > 1 else []
        window_holds = len(past) + 1 >= window and all(v < threshold for v in earlier)
        deltas, fired = [], []
        for previous, current in views:
            criterion = DeltaFScore(2, window_size=window, threshold=threshold)
            criterion.last_predictions = previous
            criterion.delta_history = list(earlier)
            with np.errstate(invalid="ignore", divide="ignore"):
                stop = bool(criterion.stop(predictions=current))
            delta = float(criterion.delta_history[-1])
            if math.isnan(delta):  # a class predicted for no item, before or after: its F-score did not change
                deltas.append(0.0)
                fired.append(window_holds)
            else:
                deltas.append(delta)
                fired.append(stop)
        return Signal(value=max(deltas), fired=all(fired))

    def _change(self, inputs: Inputs) -> Signal:
        from small_text import ClassificationChange

        criterion = ClassificationChange(self.num_classes, threshold=self.settings.classification_change_threshold)
        criterion.last_predictions = inputs.previous
        fired = bool(criterion.stop(predictions=inputs.predictions))
        return Signal(value=float(np.mean(inputs.previous != inputs.predictions)), fired=fired)

    def _uncertainty(self, inputs: Inputs) -> Signal:
        if inputs.proba is None or len(inputs.unlabelled) == 0:
            return Signal()
        # small-text's OverallUncertainty applies scipy's entropy row by row (1.3 s on a 5k pool); this is
        # the same mean normalised entropy and the same rule, vectorised (a unit test holds them equal)
        value = float(np.mean(entropy(inputs.proba[inputs.unlabelled], axis=1) / np.log(self.num_classes)))
        return Signal(value=value, fired=value < self.settings.overall_uncertainty_threshold)

    def describe(self, name: str, signal: Signal) -> str:
        """A criterion's reading in words, for the stop reason."""
        s, v = self.settings, signal.value
        if name == Criterion.kappa_average:
            return (
                f"kappa_average: mean kappa of the last {s.kappa_window} rounds >= {s.kappa_threshold} (last {v:.4f})"
            )
        if name == Criterion.delta_f_score:
            return f"delta_f_score: F-score changes of the last {s.delta_f_window} rounds < {s.delta_f_threshold} (last {v:.4f})"
        if name == Criterion.classification_change:
            return f"classification_change: {v:.2%} of pool predictions changed (<= {s.classification_change_threshold:.2%})"
        return f"overall_uncertainty: mean normalised entropy {v:.4f} < {s.overall_uncertainty_threshold}"

    def stop_reason(self, signals: dict[str, Signal]) -> str | None:
        """Why the daemon stops after this round, or None to go on."""
        s = self.settings
        if signals[MAX_ITERATIONS].fired:
            return f"max_rounds: {s.max_rounds} rounds trained (MaxIterations)"
        if signals[LABEL_BUDGET].fired:
            return f"max_labels: {int(signals[LABEL_BUDGET].value)} labels reached the budget of {s.max_labels}"
        chosen = [str(c) for c in s.stop_criteria]
        if not chosen:
            return None
        fired = [name for name in chosen if signals[name].fired]
        if (s.stop_mode is StopMode.any and fired) or (s.stop_mode is StopMode.all and len(fired) == len(chosen)):
            return f"{'+'.join(fired)} fired: " + "; ".join(self.describe(name, signals[name]) for name in fired)
        return None


def project_kappa(
    kappas: list[tuple[int, float]], window: int, threshold: float, horizon: int = 500, fit_last: int = 12
) -> int | None:
    """The round at which KappaAverage is projected to fire, from the rounds' kappa values so far.

    Agreement between consecutive models saturates towards 1, so we fit a straight line to log(1 - kappa)
    over the last ``fit_last`` rounds, extend it, and replay KappaAverage's window mean over the observed
    and projected values. None when there are fewer than three values or the trend is not improving.
    """
    points = [(r, k) for r, k in kappas if k is not None]
    if not points:
        return None
    observed = [k for _, k in points]
    last_round = points[-1][0]
    for i in range(window - 1, len(observed)):
        if np.mean(observed[i - window + 1 : i + 1]) >= threshold:
            return points[i][0]  # already fired
    if len(points) < 3:
        return None
    recent = points[-fit_last:]
    x = np.array([r for r, _ in recent], dtype=float)
    y = np.log(np.clip(1.0 - np.array([k for _, k in recent]), 1e-6, None))
    slope, intercept = np.polyfit(x, y, 1)
    if not slope < 0:
        return None
    values = list(observed)
    for step in range(1, horizon + 1):
        r = last_round + step
        values.append(1.0 - math.exp(intercept + slope * r))
        if len(values) >= window and np.mean(values[-window:]) >= threshold:
            return r
    return None
