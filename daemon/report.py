"""Views of a run for people: the ``/status`` document and the learning curve, built from the state alone.

Pure functions of the state and a few live facts, so the status endpoint, ``/metrics``, the plot, the
terminal ``al-daemon status`` and the export report all tell the same story.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from typing import TYPE_CHECKING

from daemon import __version__
from daemon.answers import shown
from daemon.config import Settings, StuckAction
from daemon.consensus import agreement
from daemon.state import JOURNALED, Batch, Change, RoundMetrics, RunState
from daemon.stopping import LABEL_BUDGET, MAX_ITERATIONS, SIGNALS

if TYPE_CHECKING:
    from daemon.batches import BatchProgress


@dataclasses.dataclass(frozen=True)
class Live:
    """What the running daemon knows beyond the state."""

    phase: str
    reason: str | None = None
    last_error: str | None = None
    progress: dict = dataclasses.field(default_factory=dict)  # the current batch's per-status counts
    model: str = ""
    pool_size: int = 0
    argilla_errors: dict = dataclasses.field(default_factory=dict)
    export: dict | None = None
    warnings: tuple[str, ...] = ()
    annotation: dict | None = None  # annotation_view(), when the caller keeps it cached (None: computed here)
    training_mode: str | None = None  # inline | ahead as running (the model ladder may have moved it to ahead)


def number(value, digits: int = 3, missing: str = "-") -> str:
    """A status number for people: floats to ``digits`` places, None as ``missing``."""
    if value is None:
        return missing
    if isinstance(value, float):
        return f"{value:.{digits}f}" if digits else str(round(value))
    return str(value)


def signal_digits(name: str) -> int:
    """Counts (rounds, labels) print as integers, the criteria's values with four places."""
    return 0 if name in (MAX_ITERATIONS, LABEL_BUDGET) else 4


def best(rounds: list[RoundMetrics], metric: str, lower: bool = False) -> dict:
    """A test score's last value and its best (highest; ``lower``: lowest) with the round and labels it came at."""
    values = [(getattr(m, metric), m.round, m.labels) for m in rounds if getattr(m, metric) is not None]
    if not values:
        return {"last": None, "best": None, "best_round": None, "best_labels": None}
    top = (min if lower else max)(values, key=lambda item: item[0])
    return {"last": values[-1][0], "best": top[0], "best_round": top[1], "best_labels": top[2]}


def signal_view(settings: Settings, rounds: list[RoundMetrics], thresholds: dict) -> dict:
    """Each criterion: its last value, threshold, whether it fired, whether it may stop us, and its history."""
    chosen = {str(c) for c in settings.stop_criteria}
    caps = {MAX_ITERATIONS: settings.max_rounds is not None, LABEL_BUDGET: settings.max_labels is not None}
    view = {}
    for name in SIGNALS:
        history = [[m.round, m.signals[name].value] for m in rounds if name in m.signals]
        last = rounds[-1].signals.get(name) if rounds else None
        view[name] = {
            "value": last.value if last else None,
            "threshold": thresholds.get(name),
            "fired": bool(last and last.fired),
            "stops": name in chosen or caps.get(name, False),
            "history": [h for h in history if h[1] is not None],
        }
    return view


def status_view(settings: Settings, state: RunState | None, live: Live, thresholds: dict) -> dict:
    """The ``/status`` document."""
    rounds = sorted(state.rounds, key=lambda m: m.round) if state else []
    batch = state.current if state else None
    labels = len(state.training_labels()) if state else 0
    last = rounds[-1] if rounds else None
    projected = last.projected_stop_round if last and not (state and state.stopped) else None  # none once stopped
    progress = dict(live.progress)
    if batch is not None:
        progress.setdefault("total", len(batch.pool_indices))
        if batch.complete:  # the journal knows the final counts
            discarded = len(batch.discarded)
            progress.update(done=len(batch.pool_indices), completed=len(batch.labels), discarded=discarded, pending=0)
        progress.update(batch_id=batch.batch_id, round=batch.round, logged=batch.logged, created_at=batch.created_at)
    return {
        "version": __version__,
        "state": live.phase,
        "reason": live.reason,
        "last_error": live.last_error,
        "warnings": list(live.warnings),
        "dataset": state.dataset if state else settings.dataset,
        "workspace": settings.workspace,
        "argilla_url": settings.argilla_url,
        "model": live.model,
        "query_strategy": settings.query_strategy.value,
        "training": {
            "mode": live.training_mode or ("ahead" if settings.ahead else "inline"),
            "retrain_every": settings.retrain_every,
            "prepared": None
            if state is None or state.prepared is None
            else {"batch_id": state.prepared.batch_id, "records": len(state.prepared.pool_indices)},
            "stop_pending": state.stop_pending if state else None,
            "background": None,  # filled in live: the training running off the poll thread
        },
        "batch_size": settings.batch_size,
        "pool_size": live.pool_size,
        "unlabelled": None
        if state is None
        else live.pool_size
        - (labels - len(state.seed.extra_texts if state.seed else ()))  # training-only seed rows are not pool rows
        - len(state.not_queryable() - state.training_labels().keys()),
        "round": len(rounds),
        "labels": labels,
        "discarded": len(state.discarded()) if state else 0,
        "open": len(state.open_indices()) if state else 0,
        "changes": changes_view(state),
        "seed": seed_view(state),
        "ladder": ladder_view(settings, state),
        "annotation": live.annotation if live.annotation is not None else annotation_view(settings, state),
        "batch": progress,
        "task": "multi-label" if state is not None and state.multi_label else "single-label",
        "accuracy": best(rounds, "accuracy"),  # multi-label: subset accuracy
        "macro_f1": best(rounds, "macro_f1"),
        "micro_f1": best(rounds, "micro_f1"),  # multi-label only
        "hamming_loss": best(rounds, "hamming_loss", lower=True),  # multi-label only
        "signals": signal_view(settings, rounds, thresholds),
        "stop": {
            "criteria": [str(c) for c in settings.stop_criteria],
            "mode": settings.stop_mode.value,
            "max_rounds": settings.max_rounds,
            "max_labels": settings.max_labels,
            "projected_round": projected,
            "projected_labels": None
            if projected is None or last is None
            else last.labels + max(0, projected - last.round) * settings.batch_size,
            "reason": state.stopped if state else None,
            "stopped_at": state.stopped_at if state else None,
        },
        "last_round": None
        if last is None
        else {"round": last.round, "seconds": last.seconds, "finished_at": last.finished_at},
        "history": [m.model_dump(mode="json") for m in rounds],
        "argilla_errors": dict(live.argilla_errors),
        "started_at": state.started_at if state else None,
        "export": live.export,
    }


def annotation_view(settings: Settings, state: RunState | None, user_names: dict | None = None) -> dict:
    """Several annotators: how the training labels are reached, how much annotators agree with them (per
    annotator: labels given, share equal to the consensus where someone else labelled the text too, and
    CROWDLAB's quality estimate when it ran) and how many relabel requests ActiveLab made."""
    votes = state.votes() if state else {}
    view = agreement(votes, state.consensus_labels() if state else {})
    quality = state.consensus.get("annotator_quality", {}) if state else {}
    for who, item in view["annotators"].items():
        item["quality"] = quality.get(who)
        item["name"] = (user_names or {}).get(who)
    view["annotators"].pop(JOURNALED, None)
    return {
        "annotators_per_record": settings.annotators_per_record,
        "consensus": settings.consensus.value,
        "consensus_used": state.consensus.get("method", "majority") if state else None,
        "activelab": settings.activelab,
        "max_annotations": settings.max_annotations,
        "annotations": sum(len(v) for v in votes.values()),
        "relabel_requests": sum(len(b.relabels) for b in state.batches) if state else 0,
        **view,
    }


def ladder_view(settings: Settings, state: RunState | None) -> dict | None:
    """The model ladder (AL_LADDER): the model that may take over, whether it did, and every comparison (the
    running one is added live by the status board). None when the run has no ladder."""
    verdicts = state.ladder if state is not None else []
    if settings.ladder_model is None and not verdicts:
        return None
    return {
        "candidate": settings.ladder_model.value if settings.ladder_model is not None else None,
        "first_comparison_at": settings.ladder_after,
        "model_in_use": (state.model_in_use if state is not None else None) or settings.model.value,
        "taken_over": state is not None and state.model_in_use is not None,
        "compare": settings.ladder_compare.value,
        "comparisons": [verdict.model_dump() | {"lead": round(verdict.lead, 4)} for verdict in verdicts],
        "probing": probing_view(state),
    }


def probing_view(state: RunState | None) -> dict | None:
    """A comparison by probes waiting for its labels: which models, how many probes, how many still unlabelled."""
    pending = state.ladder_probes if state is not None else None
    if pending is None:
        return None
    done = state.training_labels().keys() | state.discarded() | state.open_indices()
    return {
        "current": pending.current_name,
        "candidate": pending.candidate_name,
        "labels": pending.labels,
        "probes": len(pending.indices),
        "waiting": sum(1 for i in pending.indices if i not in done),
        "share": pending.share,
    }


def seed_view(state: RunState | None) -> dict | None:
    """A warm start: how many seed labels, from where, how many only train (their texts are not in the pool)."""
    seed = state.seed if state else None
    if seed is None:
        return None
    sources = Counter(seed.sources.values())
    return {
        "labels": len(seed.labels),
        "by_source": dict(sources),
        "training_only": len(seed.extra_texts),
        "file": seed.file,
        "adopted_records": len(seed.adopted_records),
    }


def changes_view(state: RunState | None) -> dict:
    """Labels changed after their batch closed (edits, withdrawals, deletions, late answers): counts and the last few."""
    changes = state.changes if state else []
    counts: dict[str, int] = {}
    for change in changes:
        counts[change.kind] = counts.get(change.kind, 0) + 1
    return {"total": len(changes), "by_kind": counts, "last": [c.model_dump(mode="json") for c in changes[-10:]]}


def curve(rounds: list[RoundMetrics]) -> list[dict]:
    """The learning curve as rows (for the export report)."""
    return [
        {
            "round": m.round,
            "labels": m.labels,
            "accuracy": m.accuracy,
            "macro_f1": m.macro_f1,
            "micro_f1": m.micro_f1,
            "hamming_loss": m.hamming_loss,
            **{name: signal.value for name, signal in m.signals.items()},
            "projected_stop_round": m.projected_stop_round,
            "seconds": m.seconds,
        }
        for m in sorted(rounds, key=lambda m: m.round)
    ]


GUIDELINES = """# Active-learning batches

Records arrive in **batches** (metadata `batch_id`). Batch 0 is a random sample (or, when the run began from
labels you already had, chosen by a model trained on them); each later batch is chosen by a model trained on every
label submitted so far, so the texts it is least sure about come first.

- {pick} and **Submit**. The model's guess is pre-selected as a suggestion:
  check it, don't trust it.
- **Discard** a text that fits no label or cannot be read; it is never used for training.
- A record with metadata `relabel` 1, 2, ... asks for one more opinion on a text someone labelled before
  (the texts whose label is most in doubt). If you labelled that text yourself, leave it for a colleague:
  Argilla cannot hide it from you, and only your latest answer to a text counts.
- The next batch appears a few seconds after the last record of a batch is submitted or discarded.

Labels: {labels}
"""


LABELS_SHOWN_CHARS = 6_000  # Argilla refuses guidelines over 10,000 characters; the progress note needs < 1,000


def label_list(labels: list[str]) -> str:
    """The label set for the guidelines, cut short when it would make them longer than Argilla accepts."""
    text = ", ".join(labels)
    if len(text) <= LABELS_SHOWN_CHARS:
        return text
    shown = text[:LABELS_SHOWN_CHARS].rsplit(", ", 1)[0]
    return f"{shown}, ... ({len(labels)} labels in all)"


def guidelines(labels: list[str], multi_label: bool = False, none_label: str | None = None) -> str:
    """The dataset's guidelines: how the batches work, and the labels."""
    pick = "Pick the one label that fits the text"
    if multi_label:
        pick = "Tick every label that fits the text (one or more)"
        if none_label is not None:
            pick += f"; tick only **{none_label}** when none fits"
    return GUIDELINES.format(labels=label_list(labels), pick=pick)


def guidelines_note(status: dict) -> str:
    """The run's progress as a guidelines section annotators see in the Argilla UI."""
    accuracy, kappa = status["accuracy"], status["signals"]["kappa_average"]
    lines = [
        "",
        "## Progress (updated by the daemon after every round)",
        "",
        f"- Round {status['round']}: {status['labels']} labels in hand, {status['discarded']} discarded.",
    ]
    if status.get("run_by"):
        lines.append(f"- Run by al-daemon, {status['run_by']}: one daemon per dataset.")
    if accuracy["last"] is not None:
        lines.append(f"- Test accuracy {accuracy['last']:.3f} (best {accuracy['best']:.3f}).")
    if kappa["value"] is not None:
        lines.append(
            f"- Agreement with the previous model (kappa) {kappa['value']:.3f}; stops at {kappa['threshold']}."
        )
    if status["stop"]["reason"]:
        lines.append(f"- **Labelling is finished**: {status['stop']['reason']}.")
    elif status["stop"]["projected_round"] is not None:
        lines.append(f"- Projected to stop around round {status['stop']['projected_round']}.")
    return "\n".join(lines) + "\n"


def round_summary(
    round_number: int,
    metrics: RoundMetrics | None,
    batch_id: int,
    settings: Settings,
    seconds: float | None,
    outcome: str,
    why: str | None = None,
) -> str:
    """The log line of a round: without training (AL_RETRAIN_EVERY, or ``why``), trained in the background after the
    next batch was logged (``seconds`` None; ``outcome`` says what comes next), or trained before batch ``batch_id``
    was logged."""
    if metrics is None:
        if why is not None:
            return f"round {round_number}: no training ({why}); batch {batch_id} chosen at random, logged"
        return (
            f"round {round_number}: no training (AL_RETRAIN_EVERY={settings.retrain_every}); batch {batch_id} chosen "
            f"by the model in hand, logged ({seconds:.2f} s)"
        )
    micro = "" if metrics.micro_f1 is None else f", micro-F1 {_fmt(metrics.micro_f1)}"
    accuracy = "accuracy" if metrics.micro_f1 is None else "subset accuracy"
    scores = (
        f"{metrics.labels} labels, {accuracy} {_fmt(metrics.accuracy)}, macro-F1 {_fmt(metrics.macro_f1)}{micro}, "
        f"kappa {_fmt(metrics.kappa)} (projected to stop at round "
        f"{metrics.projected_stop_round if metrics.projected_stop_round is not None else '-'})"
    )
    if seconds is None:
        took = metrics.seconds.get("train", 0.0) + metrics.seconds.get("evaluate", 0.0)
        return f"round {round_number} trained in the background ({took:.1f} s): {scores}; {outcome}"
    handover = metrics.seconds.get("handover", 0.0)
    return f"round {round_number}: {scores}; batch {batch_id} logged ({handover:.2f} s from complete to logged)"


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def closed_lines(batch: Batch, progress: BatchProgress, early: StuckAction | None) -> list[tuple[bool, str]]:
    """The log lines of a batch just closed, each with whether it is a warning."""
    lines = []
    if early is not None:
        rest = (
            "left open: a late label joins the next round"
            if early is StuckAction.proceed
            else "move into the next batch"
        )
        lines.append(
            (
                True,
                f"batch {batch.batch_id} closed early ({early.value}): {len(batch.labels)} labels in hand, "
                f"{progress.pending} record(s) {rest}",
            )
        )
    if progress.missing:
        lines.append(
            (True, f"batch {batch.batch_id}: {progress.missing} record(s) are gone from Argilla; treated as discarded")
        )
    answered = sum(1 for rid in batch.relabel_ids if rid in batch.votes)
    relabels = f", {answered} of {len(batch.relabels)} relabel requests answered" if batch.relabels else ""
    lines.append(
        (
            False,
            f"batch {batch.batch_id} complete: {len(batch.labels)} labelled, {len(batch.discarded)} discarded{relabels}",
        )
    )
    return lines


def change_line(change: Change, round_number: int) -> str:
    """The log line of a label people changed in Argilla after its batch closed."""

    def label(answer) -> str:
        return "(not trained on)" if answer is None else shown(answer)

    return (
        f"pool item {change.pool_index} (batch {change.batch_id}) {change.kind} in Argilla: "
        f"{label(change.old)} -> {label(change.new)}; round {round_number} trains "
        + ("on the new label" if change.new is not None else "without it")
    )
