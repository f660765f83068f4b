"""The learning-curve plot: accuracy and macro-F1 against labels, stopping signals on a second axis."""

from __future__ import annotations

import io
from pathlib import Path

from daemon.files import atomic_write

STYLE = {  # criterion -> (label, colour)
    "kappa_average": ("KappaAverage", "tab:purple"),
    "classification_change": ("ClassificationChange", "tab:orange"),
    "overall_uncertainty": ("OverallUncertainty", "tab:brown"),
    "delta_f_score": ("DeltaFScore", "tab:gray"),
}


def render_curve(status: dict) -> bytes:
    """A PNG of the run in ``status`` (the ``/status`` document)."""
    from matplotlib.figure import Figure  # the object API: no pyplot global state, safe off the main thread

    history = status.get("history") or []
    labels_at = {row["round"]: row["labels"] for row in history}
    figure = Figure(figsize=(8, 4.5), dpi=100, layout="constrained")
    axis = figure.add_subplot()
    xs = [row["labels"] for row in history]
    multi = status.get("task") == "multi-label"
    for key, name, colour in (
        ("accuracy", "subset accuracy" if multi else "accuracy", "tab:blue"),
        ("macro_f1", "macro-F1", "tab:green"),
        ("micro_f1", "micro-F1", "tab:olive"),
    ):
        points = [(x, row[key]) for x, row in zip(xs, history, strict=True) if row.get(key) is not None]
        if points:
            axis.plot(*zip(*points, strict=True), marker="o", markersize=3, color=colour, label=name)
    axis.set_xlabel("labels")
    axis.set_ylabel("test score")
    axis.set_ylim(0, 1)
    axis.grid(alpha=0.3)

    signals_axis = axis.twinx()
    signals = status.get("signals") or {}
    for name, (title, colour) in STYLE.items():
        signal = signals.get(name) or {}
        points = [(labels_at[r], v) for r, v in signal.get("history", []) if r in labels_at and v is not None]
        if not points:
            continue
        style = "-" if signal.get("stops") else ":"  # solid: may stop the run
        signals_axis.plot(*zip(*points, strict=True), style, color=colour, linewidth=1.2, label=title)
        if signal.get("stops") and signal.get("threshold") is not None:
            signals_axis.axhline(signal["threshold"], color=colour, linestyle="--", linewidth=0.8, alpha=0.7)
    signals_axis.set_ylabel("stopping signals (dashed: threshold)")
    low = min([0.0] + [v for s in signals.values() if s for _, v in s.get("history", []) if v is not None])
    signals_axis.set_ylim(max(low, -1.0) - 0.02, 1.02)

    stop = status.get("stop") or {}
    if stop.get("reason") and xs:
        axis.axvline(xs[-1], color="black", linewidth=1)
        axis.annotate("stopped", (xs[-1], 0.02), rotation=90, ha="right", va="bottom", fontsize=8)
    title = f"{status.get('dataset', '')}: {status.get('model', '')}, {status.get('query_strategy', '')}"
    if stop.get("projected_round") is not None and not stop.get("reason"):
        title += f" — KappaAverage projected to fire at round {stop['projected_round']}"
    axis.set_title(title, fontsize=10)
    handles = axis.get_legend_handles_labels()
    more = signals_axis.get_legend_handles_labels()
    if handles[0] or more[0]:
        figure.legend(handles[0] + more[0], handles[1] + more[1], loc="outside lower center", ncol=6, fontsize=8)
    if not history:
        axis.text(0.5, 0.5, "no round trained yet", ha="center", va="center", transform=axis.transAxes)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def write_curve(status: dict, path: Path) -> Path:
    """Render and write atomically (readers never see half a PNG; a failed write leaves no temporary file)."""
    return atomic_write(path, render_curve(status))
