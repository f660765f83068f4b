"""README's benchmark tables, generated from bench/results/*.json (so the README says what the results say).

    .venv/bin/python bench/tables.py            # print the tables
    .venv/bin/python bench/tables.py --write    # replace them in README.md between their <!-- bench:NAME --> marks

tests/unit/test_bench_tables.py fails when README.md and the JSON disagree.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results"
README = ROOT / "README.md"
CHECKPOINTS = (100, 200, 300, 400, 500)
TARGETS = ("0.80", "0.85", "0.90")


def _load(name: str) -> dict | None:
    path = RESULTS / name
    return json.loads(path.read_text()) if path.exists() else None


def _acc(summary: dict, labels: int) -> str:
    if labels not in summary.get("labels", []):
        return "—"
    i = summary["labels"].index(labels)
    mean, std = summary["accuracy_mean"][i], summary["accuracy_std"][i]
    return "—" if mean is None else f"{mean:.3f} ± {std or 0:.3f}"


def _to(summary: dict, target: str) -> str:
    found = summary.get(f"labels_to_{target}") or {}
    per_seed = found.get("per_seed") or []
    reached = [n for n in per_seed if n is not None]
    if not per_seed or not reached:
        return "not reached"
    if len(reached) == len(per_seed):
        return f"{found['mean']:.0f}"
    return f"{len(reached)} of {len(per_seed)} seeds"


def efficiency(document: dict) -> str:
    lines = [
        "| model | strategy | " + " | ".join(f"{n} labels" for n in CHECKPOINTS) + " | labels to "
        + " / ".join(TARGETS) + " | saving vs random at 0.80 / 0.85 |",
        "|---|---|" + "---|" * len(CHECKPOINTS) + "---|---|",
    ]  # fmt: skip
    saving = document.get("saving_vs_random", {})
    for model, by_strategy in document["results"].items():
        for strategy, summary in by_strategy.items():
            levels = (saving.get(model, {}).get(strategy) or {}).get("levels", {})
            cells = []
            for level in ("0.80", "0.85"):
                value = (levels.get(level) or {}).get("saving")
                cells.append("—" if value is None else f"{100 * value:.0f} %")
            lines.append(
                f"| {model} | {strategy} | "
                + " | ".join(_acc(summary, n) for n in CHECKPOINTS)
                + " | "
                + " / ".join(_to(summary, t) for t in TARGETS)
                + " | "
                + (" / ".join(cells) if strategy != "random" else "(baseline)")
                + " |"
            )
    return "\n".join(lines)


def wait(document: dict) -> str:
    lines = [
        "| configuration | rounds | wait p50 | p95 | max | median: detect | handover | train + evaluate (when) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, config in document["configs"].items():
        stats = config["stats"]["all"]["wait"]
        median = config["stats"]["all"]["median"]
        training = (median.get("train") or 0.0) + (median.get("evaluate") or 0.0)
        when = "on the path" if config["training"] == "inline" else "in the background"
        pool = config.get("pool_size")
        lines.append(
            f"| {name} (pool {pool:,}) | {stats['n']} | {stats['p50']:.2f} s | {stats['p95']:.2f} s | "
            f"{stats['max']:.2f} s | {_s(median.get('detect'))} | {_s(median.get('handover'))} | "
            f"{training:.2f} s ({when}) |"
        )
    return "\n".join(lines)


def idle(document: dict) -> str:
    lines = ["| configuration | CPU (% of one core) | RSS mean | RSS peak |", "|---|---|---|---|"]
    for config in document["configs"]:
        lines.append(
            f"| {config['config']} | {config['cpu_percent']:.2f} % | {config['rss_mb_mean']:.0f} MB | "
            f"{config['peak_rss_mb_whole_run']:.0f} MB |"
        )
    return "\n".join(lines)


def scale(document: dict) -> str:
    lines = [
        "| pool (hybrid) | batch 0 visible | features ready | train | score pool + query | round | log | peak RSS "
        "| embedding at the measured rate (encoder) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in document["sizes"]:
        if "error" in row:
            lines.append(f"| {row['size']:,} | error: {row['error'][:80]} |||||||| ")
            continue
        lines.append(
            f"| {row['size']:,} | {_s(row.get('batch0_visible_s'), 1)} | {_s(row.get('features_ready_s'), 1)} | "
            f"{_s(row.get('train_s'))} | {_s(row.get('query_s'))} | {_s(row.get('round_s'))} | "
            f"{_s(row.get('log_s'))} | {row['peak_rss_mb'] / 1024:.1f} GB | {_minutes(row.get('embed_s'))} "
            f"({row.get('encoder', 'torch')}) |"
        )
    for size, found in (document.get("plan") or {}).get("sizes", {}).items():
        hours = found.get("embedding_hours") or {}
        lines.append(
            f"| {int(size):,} (extrapolated) | | | {_s(found.get('train_s'))} | {_s(found.get('query_s'))} | "
            f"{_s(found.get('round_s'))} | | {found['peak_rss_mb'] / 1024:.1f} GB | "
            + "; ".join(f"{value} h on {name}" for name, value in hours.items())
            + " |"
        )
    return "\n".join(lines)


def first_batch(document: dict) -> str:
    lines = [
        "| pool | texts | pool checked | batch 0 logged | batch 0 visible in Argilla | RSS then | "
        "embedding in the background, 20 s later | exit on SIGTERM |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in document["sizes"]:
        name = "TREC-6 (the demo)" if row["size"] == 0 else f"synthetic {row['size']:,}"
        if "error" in row:
            lines.append(f"| {name} | error: {row['error'][:80]} |||||||")
            continue
        seen = row.get("features_after_watch") or {}
        embedded = (
            f"{seen['done']:,}/{seen['total']:,} ({seen['stage']}), {seen['rate']:.0f} texts/s"
            if seen.get("total") and seen.get("rate")
            else seen.get("state") or "—"
        )
        lines.append(
            f"| {name} | {row['texts']:,} | {_s(row.get('checked_s'), 1)} | {_s(row.get('batch0_logged_s'), 1)} | "
            f"**{_s(row.get('batch0_visible_s'), 1)}** | {row['rss_at_batch0_mb'] / 1024:.1f} GB | {embedded} | "
            f"{_s(row.get('exit_s'), 1)} |"
        )
    return "\n".join(lines)


def activelab(document: dict) -> str:
    rounds = document["rounds"]
    shown = sorted({0, rounds // 5, 2 * rounds // 5, 3 * rounds // 5, 4 * rounds // 5, rounds})
    results = document["results"]
    first = next(iter(results.values()))
    reduction = document.get("error_reduction_vs_random", {})
    lines = [
        "| arm | "
        + " | ".join(f"{first['annotations'][r]:,} annotations" for r in shown)
        + " | error vs random: last round / mean of rounds | texts / relabelled (last) |",
        "|---|" + "---|" * len(shown) + "---|---|",
    ]
    for arm, summary in results.items():
        cells = [f"{summary['error_mean'][r]:.3f} ± {summary['error_std'][r]:.3f}" for r in shown]
        found = reduction.get(arm)
        versus = "(baseline)" if found is None else (
            f"{-100 * found['final']:+.1f} % / {-100 * found['mean_over_rounds']:+.1f} %"
        )  # fmt: skip
        lines.append(
            f"| {arm} (n={summary['seeds']}) | "
            + " | ".join(cells)
            + f" | {versus} | {summary['texts_final_mean']:.0f} / {summary['relabelled_final_mean']:.0f} |"
        )
    lines.append(
        f"| model trained on every pool text with its {ceiling_labels(document)} | {document['ceiling_error']:.3f} |"
        + " |" * (len(shown) - 1)
        + " | |"
    )
    return "\n".join(lines)


def ceiling_labels(document: dict) -> str:
    return (
        "gold label"
        if document.get("annotators", "recorded ratings") != "recorded ratings"
        else "all-annotator consensus"
    )


def _s(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f} s"


def _minutes(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds / 60:.0f} min"


def encoders(document: dict) -> str:
    sets = ", ".join(document["datasets"])
    lines = [
        "| encoder | texts/s (vs torch) | cosine to torch's vectors (mean / min) | hybrid accuracy at 100 / 200 / 500 "
        f"labels (mean of {sets}) | points vs torch at 500 |",
        "|---|---|---|---|---|",
    ]
    for name, row in document["encoders"].items():
        mean = row["hybrid"]["mean"]
        cosine = "—" if row.get("cosine_mean") is None else f"{row['cosine_mean']:.3f} / {row['cosine_min']:.3f}"
        lines.append(
            f"| {name} | {row['throughput_texts_per_s']:.0f} ({row['throughput_ratio']:.2f}x) | {cosine} | "
            f"{mean['100']:.3f} / {mean['200']:.3f} / {mean['500']:.3f} | "
            f"{row['hybrid']['points_vs_baseline']['500']:+.2f} |"
        )
    return "\n".join(lines)


def ray_throughput(document: dict) -> str:
    local = document["texts_per_s"]["local"]
    lines = ["| engine | texts/s | vs local |", "|---|---|---|"]
    for name, rate in document["texts_per_s"].items():
        lines.append(f"| {name} | {rate:.0f} | {rate / local:.2f}x |")
    lines.append(
        f"| **2 workers vs 1** | | **{document['two_workers_vs_one']:.2f}x** (vectors equal to local: "
        f"{'yes' if document['vectors_equal_to_local'] else 'NO'}) |"
    )
    return "\n".join(lines)


def multilabel(document: dict) -> str:
    """GoEmotions: test micro-F1 at three label counts, and labels to (and the saving against random at) the two
    highest micro-F1 levels random reaches, per model (validation's pick in bold)."""
    checkpoints = (200, 500, 1000)
    lines = [
        "| model | strategy | test micro-F1 at " + " / ".join(f"{n:,}" for n in checkpoints)
        + " labels | macro-F1 at 1,000 | labels to micro-F1 (level: labels) | saving vs random |",
        "|---|---|---|---|---|---|",
    ]  # fmt: skip
    for model, found in document["models"].items():
        savings = found["savings_test"]
        levels = list(next(iter(savings.values()))["levels"])[-2:] if savings else []
        for strategy, summary in found["strategies"].items():
            at = dict(zip(summary["labels"], summary["test_micro_f1_mean"], strict=True))
            macro = dict(zip(summary["labels"], summary["test_macro_f1_mean"], strict=True))
            if strategy == "random":
                rows = {lv: {"labels": next(iter(savings.values()))["levels"][lv]["random_labels"]} for lv in levels}
            else:
                rows = savings.get(strategy, {}).get("levels", {})
            reached = " · ".join(f"{lv}: " + _count((rows.get(lv) or {}).get("labels")) for lv in levels)
            saving = " / ".join(_percent((rows.get(lv) or {}).get("saving")) for lv in levels)
            name = f"**{strategy}**" if strategy == found.get("best_on_validation") else strategy
            lines.append(
                f"| {model} | {name} | " + " / ".join(_f(at.get(n)) for n in checkpoints)
                + f" | {_f(macro.get(1000))} | {reached} | {'—' if strategy == 'random' else saving} |"
            )  # fmt: skip
    return "\n".join(lines)


def warm_start(document: dict) -> str:
    """Test accuracy (mean ± std over the seeds) at +100 and +200 labels after the start, per way of starting."""
    seed_size = document["settings"]["seed_size"]
    names = {
        "cold": "no seed (random batch 0)",
        "warm": f"{seed_size}-label seed, then the default",
        "seed+random": f"{seed_size}-label seed, then random",
    }
    checkpoints = document["checkpoints"]
    lines = [
        "| dataset | start | " + " | ".join(f"test accuracy at +{n}" for n in checkpoints) + " |",
        "|---|---|" + "---|" * len(checkpoints),
    ]
    for dataset, found in document["results"].items():
        for kind, summary in found.items():
            at = {n: k for k, n in enumerate(summary["added"])}
            cells = [
                f"{summary['accuracy_mean'][at[n]]:.3f} ± {summary['accuracy_std'][at[n]]:.3f}" for n in checkpoints
            ]
            lines.append(f"| {dataset} | {names[kind]} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def every_dataset(document: dict) -> str:
    """Default against random on every dev set: accuracy at the checkpoints, shortfalls, the saving."""
    checkpoints = document["checkpoints"]
    head = " | ".join(f"{n} labels: default / random" for n in checkpoints)
    lines = [f"| dataset | {head} | below random by > 1 std at | saving at 95 % of random@{checkpoints[-1]} |"]
    lines.append("|---|" + "---|" * (len(checkpoints) + 2))
    for found in document["rows"]:
        cells = []
        for n in checkpoints:
            c = found["at"][str(n)] if str(n) in found["at"] else found["at"][n]
            spread = max(c["default_std"], c["random_std"])
            cells.append("—" if c["default"] is None else f"{c['default']:.3f} / {c['random']:.3f} (±{spread:.3f})")
        behind = ", ".join(map(str, found["behind_random_at"])) or "never"
        lines.append(
            f"| {found['dataset']} | " + " | ".join(cells) + f" | {behind} | {_percent(found['saving'])} "
            f"(at {found['level']:.3f}) |"
        )
    savings = [found["saving"] for found in document["rows"] if found["saving"] is not None]
    if savings:
        mean = sum(savings) / len(savings)
        lines.append("| mean | " + " | ".join("" for _ in checkpoints) + f" | | {_percent(mean)} |")
    return "\n".join(lines)


def validation_search(document: dict) -> str:
    """Per candidate (rows) and dev set (columns, validation split): the label saving against random at 95 % of
    random's accuracy at the last count, and the accuracy there; where the candidate is below random by more than
    one seed std (40/100/200/500 labels)."""
    from bench.strategies import labels_for

    names = list(document["summary"])
    head = " | ".join(f"{name} (ceiling {max(document['ceilings'][name].values()):.3f})" for name in names)
    lines = [f"| candidate | {head} | mean saving | below random by > 1 std at |", "|---|" + "---|" * (len(names) + 2)]
    for candidate in document["candidates"]:
        cells, savings, behind = [], [], []
        for name in names:
            mine, random = document["summary"][name][candidate], document["summary"][name]["random"]
            last = random["labels"][-1]
            accuracy = mine["accuracy_mean"][mine["labels"].index(last)]
            if candidate == "random":
                cells.append(f"— ({accuracy:.3f})")
                continue
            level = 0.95 * random["accuracy_mean"][-1]
            need, baseline = labels_for(mine, level), labels_for(random, level)
            saving = None if not (need and baseline) else 1 - need / baseline
            savings += [] if saving is None else [saving]
            cells.append(f"{_percent(saving)} ({accuracy:.3f})")
            for n in (40, 100, 200, 500):
                if n in mine["labels"] and n in random["labels"]:
                    i, j = mine["labels"].index(n), random["labels"].index(n)
                    spread = max(mine["accuracy_std"][i], random["accuracy_std"][j])
                    if random["accuracy_mean"][j] - mine["accuracy_mean"][i] > spread:
                        behind.append(f"{name} {n}")
        mean = _percent(sum(savings) / len(savings)) if savings else "—"
        lines.append(f"| {candidate} | " + " | ".join(cells) + f" | {mean} | {', '.join(behind) or 'never'} |")
    return "\n".join(lines)


def fine_tune_gain(document: dict) -> str:
    """Validation accuracy of the frozen hybrid and the fine-tuned transformer on the same random labels."""
    lines = [
        "| dataset | labels | hybrid (frozen) | transformer (fine-tuned) | fine-tune seconds |",
        "|---|---|---|---|---|",
    ]
    for name, found in document["datasets"].items():
        runs = [r for r in document["runs"] if r["dataset"] == name and "accuracy" in r["transformer"]]
        for n in sorted({r["n"] for r in runs}):
            at = [r for r in runs if r["n"] == n]
            hybrid = sum(r["hybrid_acc"] for r in at) / len(at)
            tuned = sum(r["transformer"]["accuracy"] for r in at) / len(at)
            seconds = sum(r["transformer"]["fine_tune_s"] for r in at) / len(at)
            lines.append(f"| {name} | {n} | {hybrid:.3f} | {tuned:.3f} | {seconds:.0f} |")
        lines.append(f"| {name} | whole pool ({found['pool']:,}) | {found['hybrid_full_pool_acc']:.3f} | | |")
    return "\n".join(lines)


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def _beside(document: dict, baseline: str, header: str, detail) -> str:
    """Rows per dataset and label count (means over the seeds): the hybrid, the same labels' transformer from the
    run's ``baseline`` key, this run's transformer with ``detail(run)`` per seed in brackets, the fine-tune seconds."""
    lines = [f"| dataset | labels | hybrid (frozen) | {header} | fine-tune seconds |", "|---|---|---|---|---|---|"]
    for name in document["datasets"]:
        runs = [r for r in document["runs"] if r["dataset"] == name and "accuracy" in r["transformer"]]
        for n in sorted({r["n"] for r in runs}):
            at = [r for r in runs if r["n"] == n]
            before = [r[baseline] for r in at if r.get(baseline) is not None]
            cells = [
                f"{_mean([r['hybrid_acc'] for r in at]):.3f}",
                f"{_mean(before):.3f}" if len(before) == len(at) else "—",
                f"{_mean([r['transformer']['accuracy'] for r in at]):.3f} ({', '.join(map(detail, at))})",
                f"{_mean([r['transformer']['fine_tune_s'] for r in at]):.0f}",
            ]
            lines.append(f"| {name} | {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def fine_tune_min_steps(document: dict) -> str:
    """The transformer with AL_TRANSFORMER_MIN_STEPS against its 3-epoch self and the frozen hybrid, same labels."""
    header = f"transformer, 3 epochs | transformer, min {document['min_steps']} steps (epochs)"
    return _beside(document, "three_epochs_acc", header, lambda run: str(run["transformer"]["epochs"]))


def fine_tune_selection(document: dict) -> str:
    """The transformer keeping its epoch of best held-out accuracy against the same fine-tuning as it ran before
    (``--before``: the epoch of lowest held-out loss kept), same labels, beside the frozen hybrid."""

    def kept(run: dict) -> str:
        found = run["transformer"].get("kept")
        return f"{found['epoch']} / {found['epochs']}" if found else "?"

    header = (
        f"transformer as in {document['before']} | transformer, the most accurate epoch kept (epoch kept / epochs, "
        "per seed)"
    )
    return _beside(document, "before_acc", header, kept)


def fine_tune_steps(document: dict) -> str:
    """The transformer fine-tuned on the default's picks per AL_TRANSFORMER_MIN_STEPS, against the hybrid that picked
    them: a row per dataset and seed, a column per step count (validation accuracy, epochs, fine-tune seconds)."""
    steps = sorted({fit["min_steps"] for run in document["runs"] for fit in run["fits"]})
    lines = [
        "| dataset | seed | labels | hybrid (frozen, picked them) | "
        + " | ".join(f"transformer, min {s} steps (epochs, seconds)" for s in steps)
        + " |",
        "|---|---|---|---|" + "---|" * len(steps),
    ]
    for run in document["runs"]:
        fits = {fit["min_steps"]: fit for fit in run["fits"]}
        cells = [
            f"{fits[s]['accuracy']:.3f} ({fits[s]['epochs']}, {fits[s]['fine_tune_s']:.0f})" if s in fits else "—"
            for s in steps
        ]
        lines.append(
            f"| {run['dataset']} | {run['seed']} | {run['labels']:,} | {run['hybrid']:.3f} | "
            + " | ".join(cells)
            + " |"
        )
    return "\n".join(lines)


def ladder_probes(document: dict) -> str:
    """The model ladder's verdict by probes at each probe count: the chance of a switch from the unlabelled pool's
    probes alone and stratified (with the labels in hand cross-validated), against the validation lead."""
    rows = document["rows"]
    sizes = [b["probes"] for b in rows[0]["by_probes"]] if rows else []
    counts = " / ".join(str(n) for n in sizes)
    lines = [
        "| dataset | seed | min steps | lead on validation | lead on the unlabelled pool (disagreeing) | "
        f"P(switch), probes alone: {counts} | CV lead on the labels in hand (their share) | "
        f"P(switch), stratified: {counts} | accuracy forgone at {sizes[-2] if len(sizes) > 1 else '-'}: "
        "probes alone / stratified |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        alone = " / ".join(f"{b['p_switch']:.2f}" for b in r["by_probes"])
        labelled = r.get("labelled")
        strat = " / ".join(f"{b['stratified']['p_switch']:.2f}" for b in r["by_probes"]) if labelled else "—"
        cv = f"{labelled['cv_lead']:+.3f} ± {labelled['cv_error']:.3f} ({labelled['share']:.0%})" if labelled else "—"
        at = r["by_probes"][-2] if len(r["by_probes"]) > 1 else r["by_probes"][-1]
        forgone = f"{at['forgoes']:.3f} / " + (f"{at['stratified']['forgoes']:.3f}" if labelled else "—")
        lines.append(
            f"| {r['dataset']} | {r['seed']} | {r['min_steps']} | {r['validation_lead']:+.3f} | "
            f"{r['pool_lead']:+.3f} ({r['pool_disagreement']:.1%}) | {alone} | {cv} | {strat} | {forgone} |"
        )
    return "\n".join(lines)


def binary_ceiling(document: dict) -> str:
    """The default at 1,000 labels against the best full-pool ceiling of the models measured."""
    models = list(dict.fromkeys(m for r in document["rows"] for m in r["ceilings"]))
    n, tolerance = document["labels"], document["tolerance"]
    lines = [
        f"| dataset | default at {n:,} | random at {n:,} | "
        + " | ".join(f"{m} on the whole pool" for m in models)
        + f" | gap to the best measured | within {tolerance * 100:.0f} points of it |",
        "|---|---|---|" + "---|" * len(models) + "---|---|",
    ]
    for r in document["rows"]:
        ceilings = [f"{r['ceilings'][m]['accuracy']:.3f}" if m in r["ceilings"] else "not measured" for m in models]
        lines.append(
            f"| {r['dataset']} | {r['default']:.3f} ± {r['default_std']:.3f} | {r['random']:.3f} ± {r['random_std']:.3f}"
            f" | " + " | ".join(ceilings) + f" | {r['gap']:+.3f} ({r['best_model']}) | {'yes' if r['met'] else 'no'} |"
        )
    return "\n".join(lines)


def ladder_default(document: dict) -> str:
    """The ladder's verdicts on the default's way to 1,000 labels, and what it would serve there (on the validation
    split, or on the test file: then beside the best full-pool ceiling of binary-ceiling.json where measured)."""
    split = document.get("split", "validation")
    points = sorted({v["labels"] for r in document["runs"] for v in r["verdicts"]})
    ceilings = {}
    if split == "test":
        ceilings = {r["dataset"]: r for r in (_load("binary-ceiling.json") or {"rows": []})["rows"]}
    lines = [
        "| dataset | "
        + " | ".join(f"at {n:,}: CV hybrid / transformer, {split} hybrid / transformer" for n in points)
        + " | at the end: hybrid / transformer, same labels | the ladder serves |"
        + (" best whole-pool ceiling: gap |" if ceilings else ""),
        "|---|" + "---|" * len(points) + "---|---|" + ("---|" if ceilings else ""),
    ]
    for run in document["runs"]:
        cells = []
        for n in points:
            v = next((v for v in run["verdicts"] if v["labels"] == n), None)
            cells.append(
                "—"
                if v is None
                else f"{v['current_accuracy']:.3f} / {v['candidate_accuracy']:.3f}"
                f" ({'switch' if v['switch'] else 'stays'}), {v['hybrid_validation']:.3f} / {v['transformer_validation']:.3f}"
            )
        end, served = run["at_end"], document["served"][run["dataset"]]
        model = f"transformer (from {served['switched_at']:,})" if served["switched_at"] else "hybrid"
        line = (
            f"| {run['dataset']} | "
            + " | ".join(cells)
            + f" | {end['hybrid_validation']:.3f} / {end['transformer_validation']:.3f} ({end['labels']:,})"
            f" | {served['accuracy']:.3f}, {model} |"
        )
        if ceilings:
            best = ceilings.get(run["dataset"])
            line += (
                f" {best['best']:.3f} ({best['best_model']}): {best['best'] - served['accuracy']:+.3f} |"
                if best
                else " — |"
            )
        lines.append(line)
    return "\n".join(lines)


def ladder_bias(document: dict) -> str:
    """The ladder's comparison scored on every label, on a random slice of each batch only, and on the picks only,
    against the truth on the validation split."""

    def verdict(v: dict) -> str:
        return (
            f"{v['current']:.3f} / {v['candidate']:.3f}, lead {v['lead']:+.3f} ± {v['standard_error']:.3f} "
            f"({'switch' if v['switch'] else 'stays'})"
        )

    lines = [
        "| dataset | labels (random slice) | hybrid on validation: without / with the slice | CV on every label "
        "| CV on the slice only | CV on the picks only | validation: hybrid / transformer, lead |",
        "|---|---|---|---|---|---|---|",
    ]
    for run in document["runs"]:
        truth = run["validation"]
        lines.append(
            f"| {run['dataset']} | {run['labels']:,} ({run['slice_labels']}) "
            f"| {run['hybrid_validation_without_slice']:.3f} / {run['hybrid_validation_with_slice']:.3f} "
            f"| {verdict(run['every_label'])} | {verdict(run['slice_only'])} | {verdict(run['picked_only'])} "
            f"| {truth['current']:.3f} / {truth['candidate']:.3f}, {truth['lead']:+.3f} |"
        )
    return "\n".join(lines)


def why(document: dict) -> str:
    """The diagnostics of BreakingTies' picks against random's (validation splits)."""
    lines = [
        "| dataset | picks a full-pool model gets wrong: bt / random | mean cosine within a batch: bt / random "
        "| largest class in a batch: bt / random | calibration error at 500 labels: C = 100 / C by CV (mean C) |",
        "|---|---|---|---|---|",
    ]
    for name, by in document["summary"].items():
        bt, random = by["bt"]["diagnostics"], by["random"]["diagnostics"]
        cv = by.get("bt_cv")
        calibration = f"{by['bt']['ece']['500']:.3f}" + (
            f" / {cv['ece']['500']:.3f} ({cv['mean_c']:.0f})" if cv else ""
        )
        lines.append(
            f"| {name} | {bt['mistaken_by_ceiling']:.2f} / {random['mistaken_by_ceiling']:.2f} "
            f"| {bt['redundancy']:.2f} / {random['redundancy']:.2f} "
            f"| {bt['largest_class_share']:.2f} / {random['largest_class_share']:.2f} | {calibration} |"
        )
    return "\n".join(lines)


def _f(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def _count(value: float | None) -> str:
    return "not reached" if value is None else f"{value:.0f}"


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.0f} %"


def ladder_default_probes(document: dict) -> str:
    """The ladder comparing by probes on the default's way to 1,000 labels: each comparison (the probes' accuracy
    for each model, cross-validation on the labels in hand, the estimated lead on the pool and the verdict, beside
    both models trained on the same labels scored on the split), and what it serves at the end."""
    split = document.get("split", "validation")
    lines = [
        "| dataset | comparisons: labels (disagreements), probes right hybrid / transformer, CV hybrid / transformer, "
        f"estimated lead of the candidate: verdict; {split} hybrid / transformer | at the end: hybrid / transformer, "
        "same labels | the ladder serves | with a switch on one standard error |",
        "|---|---|---|---|---|",
    ]
    for run in document["runs"]:
        cells = []
        for v in run["verdicts"]:
            # after a take-over the transformer is the current model (the way back)
            hybrid_first = not v["current"].startswith("transformer")
            probes = (v["current_accuracy"], v["candidate_accuracy"])[:: 1 if hybrid_first else -1]
            cv = (v["cv_current"], v["cv_candidate"])[:: 1 if hybrid_first else -1]
            cells.append(
                f"{v['labels']:,} ({v['share']:.0%}): {probes[0]:.0%} / {probes[1]:.0%} of {v['probes']}, "
                f"{cv[0]:.3f} / {cv[1]:.3f}, {v['candidate'].split('-')[0]} {v['estimated_lead']:+.3f} ± {v['standard_error']:.3f}: "
                f"{'switch' if v['switch'] else 'stays'}; {v['hybrid_validation']:.3f} / {v['transformer_validation']:.3f}"
            )
        end = run["at_end"]
        serves = []
        for served in (document["served"][run["dataset"]], document["served_one_error"][run["dataset"]]):
            model = f"transformer (from {served['switched_at']:,})" if served["switched_at"] else "hybrid"
            serves.append(f"{served['accuracy']:.3f}, {model}")
        lines.append(
            f"| {run['dataset']} | {'<br>'.join(cells) or '—'} | {end['hybrid_validation']:.3f} / "
            f"{end['transformer_validation']:.3f} ({end['labels']:,}) | {serves[0]} | {serves[1]} |"
        )
    return "\n".join(lines)


def ladder_default_probes_seeds(document: dict) -> str:
    """The probes ladder's end-to-end runs of every seed: what it serves at 1,000 labels under 1.645 standard
    errors (the daemon's rule) and under one, beside both models on the same labels, and per rule the mean gain
    over the hybrid alone, the worst, the mean forgone against the better of the two and the switches."""

    def serves(served: dict) -> str:
        model = f"transformer (from {served['switched_at']:,})" if served["switched_at"] else "hybrid"
        return f"{served['accuracy']:.3f}, {model}, {served['gain']:+.3f}"

    lines = [
        f"| dataset | seed | at the end: hybrid / transformer, same labels | {document['confidence']} standard errors "
        "serve, gain | one standard error serves, gain |",
        "|---|---|---|---|---|",
    ]
    for row in document["rows"]:
        lines.append(
            f"| {row['dataset']} | {row['seed']} | {row['hybrid']:.3f} / {row['transformer']:.3f} ({row['labels']:,}) "
            f"| {serves(row['confidence'])} | {serves(row['one_error'])} |"
        )
    cells = []
    for rule in ("confidence", "one_error"):
        s = document["summary"][rule]
        cells.append(
            f"mean gain {s['mean_gain']:+.4f}, worst {s['worst_gain']:+.3f}, forgone {s['mean_forgone']:.4f}; "
            f"{s['switches']} switches, {s['losing_switches']} losing"
        )
    lines.append(f"| all | {', '.join(map(str, document['seeds']))} | | {cells[0]} | {cells[1]} |")
    return "\n".join(lines)


TABLES = {
    "efficiency": ("label-efficiency.json", efficiency),
    "wait": ("wait.json", wait),
    "idle": ("idle.json", idle),
    "scale": ("scale.json", scale),
    "first-batch": ("first-batch.json", first_batch),
    "activelab": ("activelab.json", activelab),
    "activelab-noisy": ("activelab-trec6-noisy.json", activelab),
    "encoders": ("encoders.json", encoders),
    "ray": ("ray-throughput.json", ray_throughput),
    "multilabel": ("multilabel.json", multilabel),
    "warm-start": ("warm-start.json", warm_start),
    "every-dataset": ("every-dataset.json", every_dataset),
    "validation-search": ("validation-search.json", validation_search),
    "why": ("validation-search.json", why),
    "fine-tune-gain": ("fine-tune-gain.json", fine_tune_gain),
    "fine-tune-min-steps": ("fine-tune-min-steps.json", fine_tune_min_steps),
    "fine-tune-steps": ("fine-tune-steps.json", fine_tune_steps),
    "fine-tune-selection": ("fine-tune-selection.json", fine_tune_selection),
    "ladder-probes": ("ladder-probes.json", ladder_probes),
    "binary-ceiling": ("binary-ceiling.json", binary_ceiling),
    "ladder-default": ("ladder-default.json", ladder_default),
    "ladder-default-test": ("ladder-default-test.json", ladder_default),
    "ladder-default-probes": ("ladder-default-probes.json", ladder_default_probes),
    "ladder-default-probes-seeds": ("ladder-default-probes-seeds.json", ladder_default_probes_seeds),
    "ladder-bias": ("ladder-bias.json", ladder_bias),
}


def tables() -> dict[str, str]:
    found = {}
    for name, (file, render) in TABLES.items():
        document = _load(file)
        if document is not None:
            found[name] = render(document)
    return found


def mark(name: str) -> re.Pattern:
    return re.compile(rf"(<!-- bench:{name} -->\n)(.*?)\n?(<!-- /bench:{name} -->)", re.S)


def write(text: str) -> str:
    for name, table in tables().items():
        text = mark(name).sub(lambda m, table=table: m.group(1) + table + "\n" + m.group(3), text)
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    if args.write:
        README.write_text(write(README.read_text()))
        return
    for name, table in tables().items():
        print(f"<!-- bench:{name} -->\n{table}\n<!-- /bench:{name} -->\n")


if __name__ == "__main__":
    main()
