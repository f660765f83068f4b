"""Query strategies compared: test accuracy and macro-F1 against labels, per model, on TREC-6 with oracle labels.

    .venv/bin/python bench/strategies.py                       # the full set below (2.5 h on 2 busy CPU cores)
    .venv/bin/python bench/strategies.py --models tfidf --strategies random,breaking_ties --seeds 0 --max-labels 200
    .venv/bin/python bench/strategies.py --resume              # keep the runs already in the JSON, do the rest

In-process simulation through the daemon's own classes (no Argilla): ``load_data`` reads data/trec6,
``build_features`` builds the model's datasets, ``Learner.from_settings`` runs small-text. Round 0 is
``initial_batch(20)``; every round the oracle (the pool's gold labels) answers all queried items, the learner
fits (timed), evaluates on the 500-text test set, and queries the next 20 (timed). Each (model, strategy, seed)
runs in its own subprocess (the script re-invokes itself with ``--one``), which reports its peak RSS.

Defaults: tfidf and embeddings x {breaking_ties, least_confidence, prediction_entropy, random, embedding_kmeans,
greedy_coreset} up to 500 labels; transformer (fine-tuning the bundled all-MiniLM-L6-v2, 3 epochs, 64 tokens)
x {breaking_ties, random, bald, greedy_coreset} up to 200 labels on a random 1,000-text subsample of the pool
(``np.random.default_rng(0).choice(pool, 1000, replace=False)``, sorted; the same for every strategy and seed;
the test set stays whole); seeds 0, 1, 2. BALD uses 10 Monte-Carlo dropout passes, not the issue's 20: with
20, one query over the 1,000 texts took 520 s on 2 busy cores. Transformer runs go first seed of every strategy,
then the other seeds cheapest strategy first, and are skipped once the next one would not fit in
``--transformer-minutes`` (skips are listed under ``notes``). Transformer runs use one torch thread
(``--torch-threads``): on the shared 2-core machine (load 4-6) a forward pass took 2.5x longer with two.
Std is over seeds (ddof=1). Labels to reach an accuracy: the first label count at which it is reached, per
seed; the mean only when every seed reached it (else null, with ``mean_of_reached``).
Writes bench/results/strategies.json for TREC-6, strategies-<dataset>.json for another pool (the folder's name
when the file is train.jsonl), after every run so a partial result survives, and the PNG beside it (its accuracy
axis fits the curves); caches go to tests/output/bench-strategies/, per-run logs to its logs/<dataset>/.
``--resume`` keeps the runs with the same settings and counts their process time in ``wall_seconds``, not the
time of runs it drops. bench/every_dataset.py runs the default against random on every dev set, one table.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
import traceback
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
WORK = ROOT / "tests" / "output" / "bench-strategies"
BATCH = 20
MODELS = ["tfidf", "embeddings", "hybrid", "transformer"]
STRATEGIES = {
    "tfidf": [
        "breaking_ties",
        "least_confidence",
        "prediction_entropy",
        "random",
        "embedding_kmeans",
        "greedy_coreset",
    ],
    "transformer": ["breaking_ties", "random", "bald", "greedy_coreset"],
}
STRATEGIES["embeddings"] = STRATEGIES["hybrid"] = STRATEGIES["tfidf"]
TARGETS = (0.80, 0.85, 0.90)
LEVELS = (0.70, 0.75, 0.80, 0.85, 0.90)  # accuracies at which the label saving against random is reported
DATA = {
    "pool": ROOT / "data/trec6/train.jsonl",
    "test": ROOT / "data/trec6/test.jsonl",
    "text": "text",
    "label": "label",
}
SUBSAMPLE_SEED = 0


def run_one(
    model: str,
    strategy: str,
    seed: int,
    max_labels: int,
    transformer_pool: int,
    bald_samples: int,
    torch_threads: int,
    data_files: dict | None = None,
) -> dict:
    """One active-learning run; returns its rounds (or the error and the rounds done before it)."""
    if model == "transformer" and torch_threads:
        import torch

        torch.set_num_threads(torch_threads)
    from daemon.learner import Learner
    from daemon.models import build_features

    rounds: list[dict] = []
    result: dict = {"model": model, "strategy": strategy, "seed": seed, "max_labels": max_labels, "rounds": rounds}
    started = time.perf_counter()
    try:
        settings, data, pool = load(model, strategy, seed, transformer_pool, bald_samples, data_files)
        result["pool_size"] = len(pool)
        gold = [data.labels.index(label) for label in pool.gold]
        build_start = time.perf_counter()
        features = build_features(settings, pool, data.test, data.y_test, len(data.labels))
        learner = Learner.from_settings(features, len(data.labels), settings)
        result["build_s"] = round(time.perf_counter() - build_start, 3)
        queried = learner.initial_batch(BATCH)
        labelled: dict[int, int] = {}
        round_number = 0
        while True:
            labelled.update({i: gold[i] for i in queried})
            start = time.perf_counter()
            trained = learner.fit(labelled, set(), round_number)
            train_s = time.perf_counter() - start
            start = time.perf_counter()
            evaluation = learner.evaluate(data.y_test) if trained else None
            eval_s = time.perf_counter() - start
            row = {
                "labels": len(labelled),
                "accuracy": None if evaluation is None else round(evaluation.accuracy, 4),
                "macro_f1": None if evaluation is None else round(evaluation.macro_f1, 4),
                "train_s": round(train_s, 4),
                "eval_s": round(eval_s, 4),
                "query_s": None,
            }
            rounds.append(row)
            if len(labelled) >= max_labels or len(labelled) >= len(pool):
                print(f"{model} {strategy} seed={seed} {json.dumps(row)}", file=sys.stderr, flush=True)
                break
            round_number += 1
            start = time.perf_counter()
            queried = learner.query(min(BATCH, max_labels - len(labelled)), round_number).indices
            row["query_s"] = round(time.perf_counter() - start, 4)
            print(f"{model} {strategy} seed={seed} {json.dumps(row)}", file=sys.stderr, flush=True)
            if not queried:
                break
    except Exception as exc:  # recorded, not fixed: the benchmark reports what crashes
        result["error"] = f"{type(exc).__name__}: {exc}"
        result["traceback"] = traceback.format_exc()
    result["seconds"] = round(time.perf_counter() - started, 2)
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return result


def load(
    model: str, strategy: str, seed: int, transformer_pool: int, bald_samples: int = 20, data_files: dict | None = None
):
    """The run's settings, the data as the daemon loads it (any pool format the daemon reads: JSONL, CSV, TSV,
    Parquet), and the pool it learns from."""
    files = data_files or DATA
    import logging

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    from daemon.app import load_data
    from daemon.config import Settings

    settings = Settings(
        _env_file=None,
        pool_file=files["pool"],
        test_file=files["test"],
        text_column=files["text"],
        label_column=files["label"],
        model=model,
        query_strategy=strategy,
        seed=seed,
        bald_samples=bald_samples,
        cache_dir=WORK / "cache",
    )
    data = load_data(settings)
    pool = data.pool
    if model == "transformer" and 0 < transformer_pool < len(pool):
        pool = subsample(pool, transformer_pool)
    return settings, data, pool


def warm(model: str, transformer_pool: int, data_files: dict | None = None) -> None:
    """Compute and cache the sentence embeddings a model's runs need, so no run's time or RSS includes them."""
    from daemon.models import build_features

    settings, data, pool = load(model, "random", 0, transformer_pool, data_files=data_files)
    features = build_features(settings, pool, data.test, data.y_test, len(data.labels))
    if features.vectors is not None:
        features.vectors()


def subsample(pool, size: int):
    """The transformer's pool: ``size`` texts drawn with a fixed seed, in pool order."""
    from daemon.pool import TextTable

    keep = np.sort(np.random.default_rng(SUBSAMPLE_SEED).choice(len(pool), size, replace=False))
    return TextTable(
        source=pool.source,
        texts=[pool.texts[i] for i in keep],
        ids=[pool.ids[i] for i in keep],
        gold=[pool.gold[i] for i in keep],
        rows=[pool.rows[i] for i in keep],
    )


@dataclasses.dataclass(frozen=True)
class Job:
    model: str
    strategy: str
    seed: int
    max_labels: int

    @property
    def key(self) -> tuple:
        return (self.model, self.strategy, self.seed)


def dataset_name(pool: Path) -> str:
    """What a pool file's results are called: TREC-6 for the bundled one; the folder's name for a generic file name
    (``../shared/data/mr/train.jsonl`` is ``mr``), else the file's stem."""
    pool = Path(pool)
    if pool.resolve() == DATA["pool"].resolve():
        return "TREC-6"
    return pool.parent.name if pool.stem in ("train", "pool", "data", "all") else pool.stem


def default_out(pool: Path) -> Path:
    """bench/results/strategies.json for TREC-6, strategies-<dataset>.json for any other pool."""
    name = dataset_name(pool)
    return RESULTS / ("strategies.json" if name == "TREC-6" else f"strategies-{name}.json")


def spawn(job: Job, args: argparse.Namespace) -> dict:
    """Run one job in a fresh interpreter (its own peak RSS); a crash of the process is recorded too."""
    log = WORK / "logs" / dataset_name(args.pool) / f"{job.model}-{job.strategy}-{job.seed}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, __file__, "--one", job.model, job.strategy, str(job.seed)]
    command += ["--max-labels", str(job.max_labels), "--transformer-pool", str(args.transformer_pool)]
    command += ["--bald-samples", str(args.bald_samples), "--torch-threads", str(args.torch_threads)]
    command += data_arguments(args)
    with log.open("w") as stderr:
        done = subprocess.run(command, stdout=subprocess.PIPE, stderr=stderr, text=True, cwd=ROOT, env=child_env())
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode == 0 and lines:
        return json.loads(lines[-1])
    tail = log.read_text(errors="replace").splitlines()[-20:]
    return {
        "model": job.model,
        "strategy": job.strategy,
        "seed": job.seed,
        "max_labels": job.max_labels,
        "rounds": [],
        "error": f"process exited {done.returncode}",
        "traceback": "\n".join(tail),
    }


def expected_seconds(strategy: str, durations: dict[str, list[float]]) -> float:
    known = durations.get(strategy) or [d for v in durations.values() for d in v]
    return statistics.mean(known) if known else 0.0


def next_job(pending: list[Job], first_seed: int, durations: dict[str, list[float]]) -> Job:
    """tfidf and embeddings in order; then the transformer's first seed of every strategy, then the other seeds,
    cheapest strategy first (so the budget, if it runs out, costs seeds of the expensive strategies)."""
    for job in pending:
        if job.model != "transformer" or job.seed == first_seed:
            return job
    return min(pending, key=lambda job: (job.seed, expected_seconds(job.strategy, durations)))


def child_env() -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def first_reaching(rounds: list[dict], target: float) -> int | None:
    return next((r["labels"] for r in rounds if r["accuracy"] is not None and r["accuracy"] >= target), None)


def summarise(runs: list[dict]) -> dict:
    """Mean/std curves over seeds, labels to the targets, median seconds per round, peak RSS."""
    good = [r for r in runs if "error" not in r and r["rounds"]]
    summary: dict = {"seeds": len(good), "seed_list": [r["seed"] for r in good]}
    errors = [{"seed": r["seed"], "error": r["error"], "traceback": r.get("traceback")} for r in runs if "error" in r]
    if errors:
        summary["errors"] = errors
    if not good:
        return summary
    length = min(len(r["rounds"]) for r in good)
    summary["labels"] = [row["labels"] for row in good[0]["rounds"][:length]]
    for metric in ("accuracy", "macro_f1"):
        values = np.array(
            [[row[metric] if row[metric] is not None else np.nan for row in r["rounds"][:length]] for r in good]
        )
        summary[f"{metric}_mean"] = [_num(v) for v in np.nanmean(values, axis=0)]
        summary[f"{metric}_std"] = [
            _num(v) for v in (np.nanstd(values, axis=0, ddof=1) if len(good) > 1 else 0 * values[0])
        ]
        summary[f"{metric}_per_seed"] = [[_num(v) for v in seed_values] for seed_values in values]
    for target in TARGETS:
        per_seed = [first_reaching(r["rounds"], target) for r in good]
        reached = [n for n in per_seed if n is not None]
        summary[f"labels_to_{target:.2f}"] = {
            "mean": statistics.mean(per_seed) if len(reached) == len(per_seed) else None,
            "mean_of_reached": statistics.mean(reached) if reached else None,
            "per_seed": per_seed,
        }
    for what in ("train_s", "eval_s", "query_s"):
        values = [row[what] for r in good for row in r["rounds"] if row[what] is not None]
        summary[f"{what}_median"] = round(statistics.median(values), 4) if values else None
    summary["peak_rss_mb"] = max(r["peak_rss_mb"] for r in good)
    summary["peak_rss_mb_per_seed"] = [r["peak_rss_mb"] for r in good]
    summary["run_seconds_per_seed"] = [r["seconds"] for r in good]
    summary["pool_size"] = good[0].get("pool_size")
    return summary


def shown(path: Path) -> str:
    """A data file as the JSON records it: relative to the checkout when inside it."""
    path = Path(path).resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def data_arguments(args: argparse.Namespace) -> list[str]:
    return ["--pool", str(args.pool), "--test", str(args.test), "--text-column", args.text_column,
            "--label-column", args.label_column]  # fmt: skip


def data_files(args: argparse.Namespace) -> dict:
    return {"pool": args.pool, "test": args.test, "text": args.text_column, "label": args.label_column}


def labels_for(summary: dict, level: float, curve: str = "accuracy_mean") -> float | None:
    """Labels at which the mean ``curve`` first reaches ``level``, interpolated linearly between rounds."""
    x, y = summary.get("labels") or [], summary.get(curve) or []
    previous = None
    for labels, accuracy in zip(x, y, strict=True):
        if accuracy is None:
            continue
        if accuracy >= level:
            if previous is None or previous[1] >= level:
                return float(labels)
            (x0, y0), (x1, y1) = previous, (labels, accuracy)
            return round(x0 + (level - y0) * (x1 - x0) / (y1 - y0), 1)
        previous = (labels, accuracy)
    return None


def savings(by_strategy: dict) -> dict:
    """Per strategy: labels to reach each accuracy level, random sampling's labels for the same level (same model),
    and the saving 1 - strategy / random; plus the saving at the best accuracy random reached."""
    baseline = by_strategy.get("random")
    if not baseline or not baseline.get("labels"):
        return {}
    best = max(v for v in baseline["accuracy_mean"] if v is not None)
    levels = [*LEVELS, round(np.floor(best * 100) / 100, 2)]
    found = {}
    for strategy, summary in by_strategy.items():
        if strategy == "random" or not summary.get("labels"):
            continue
        rows = saving_rows(summary, baseline, levels)
        found[strategy] = {"random_best_accuracy": round(best, 4), "levels": rows}
    return found


def saving_rows(summary: dict, baseline: dict, levels: list[float], curve: str = "accuracy_mean") -> dict:
    """Per level: the labels ``summary``'s mean ``curve`` needs, random's (``baseline``), and the saving."""
    rows = {}
    for level in levels:
        mine, theirs = labels_for(summary, level, curve), labels_for(baseline, level, curve)
        rows[f"{level:.2f}"] = {
            "labels": mine,
            "random_labels": theirs,
            "saving": None if mine is None or theirs is None else round(1 - mine / theirs, 3),
        }
    return rows


def _num(value: float) -> float | None:
    return None if np.isnan(value) else round(float(value), 4)


def environment() -> dict:
    import importlib.metadata as meta

    versions = {}
    for package in ("torch", "small-text", "scikit-learn", "transformers", "sentence-transformers", "numpy"):
        try:
            versions[package] = meta.version(package)
        except meta.PackageNotFoundError:
            versions[package] = None
    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "git_head": git("rev-parse", "--short", "HEAD"),
        "daemon_uncommitted_changes": bool(git("status", "--porcelain", "--", "daemon")),
        **versions,
    }


def git(*args: str) -> str | None:
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def write(out: Path, meta: dict, runs: dict[tuple, dict], notes: list[str], wall: float) -> None:
    grouped: dict[str, dict[str, list[dict]]] = {}
    for (model, strategy, _seed), run in runs.items():
        grouped.setdefault(model, {}).setdefault(strategy, []).append(run)
    for by_strategy in grouped.values():
        for group in by_strategy.values():
            group.sort(key=lambda run: run["seed"])
    results = {
        model: {strategy: summarise(group) for strategy, group in by_strategy.items()}
        for model, by_strategy in grouped.items()
    }
    saving = {model: savings(by_strategy) for model, by_strategy in results.items()}
    raw = [
        {**{k: v for k, v in run.items() if k != "rounds"}, "rounds": [list(row.values()) for row in run["rounds"]]}
        for run in runs.values()
    ]
    document = {
        **meta,
        "notes": notes,
        "wall_seconds": round(wall, 1),
        "results": results,
        "saving_vs_random": saving,
        "runs_columns": ["labels", "accuracy", "macro_f1", "train_s", "eval_s", "query_s"],
        "runs": raw,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(document, indent=1))
    os.replace(tmp, out)
    plot(results, out.with_suffix(".png"), meta["dataset"]["name"])


def plot(results: dict, path: Path, dataset: str = "TREC-6") -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    models = [m for m in MODELS if m in results] + [m for m in results if m not in MODELS]
    if not models:
        return
    all_strategies = list(dict.fromkeys(s for m in models for s in results[m]))
    colours = {s: f"C{i}" for i, s in enumerate(all_strategies)}
    figure = Figure(figsize=(5 * len(models), 4.2), layout="constrained")
    axes = figure.subplots(1, len(models), squeeze=False, sharey=True)[0]
    for axis, model in zip(axes, models, strict=True):
        for strategy, summary in results[model].items():
            if not summary.get("labels"):
                continue
            x = np.array(summary["labels"])
            mean = np.array([np.nan if v is None else v for v in summary["accuracy_mean"]], dtype=float)
            std = np.array([0.0 if v is None else v for v in summary["accuracy_std"]], dtype=float)
            label = f"{strategy} (n={summary['seeds']})"
            axis.plot(x, mean, color=colours[strategy], label=label, linewidth=1.4)
            axis.fill_between(x, mean - std, mean + std, color=colours[strategy], alpha=0.15, linewidth=0)
        pool = next((s.get("pool_size") for s in results[model].values() if s.get("pool_size")), None)
        axis.set_title(f"{model} (pool {pool:,})" if pool else model)
        axis.set_xlabel("labels")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8, loc="lower right")
    axes[0].set_ylabel("test accuracy")
    axes[0].set_ylim(*y_range(results))
    figure.suptitle(f"{dataset}, batch 20, oracle labels: mean ± std over seeds")
    figure.savefig(path, dpi=90)


def y_range(results: dict) -> tuple[float, float]:
    """The accuracy axis: the curves' lowest and highest (± std) with a margin, within 0-1."""
    low, high = [], []
    for by_strategy in results.values():
        for summary in by_strategy.values():
            pairs = zip(summary.get("accuracy_mean") or [], summary.get("accuracy_std") or [], strict=True)
            for mean, std in pairs:
                if mean is not None:
                    low.append(mean - (std or 0.0))
                    high.append(mean + (std or 0.0))
    if not low:
        return 0.0, 1.0
    margin = 0.03 * max(0.1, max(high) - min(low))
    return max(0.0, min(low) - margin), min(1.0, max(high) + margin)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--strategies", default=None, help="comma list for every model; default: per model")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--max-labels", type=int, default=500, help="labels per run (tfidf, embeddings)")
    parser.add_argument("--transformer-max-labels", type=int, default=200)
    parser.add_argument("--transformer-pool", type=int, default=1000, help="subsample size; 0 = the whole pool")
    parser.add_argument("--transformer-minutes", type=float, default=45.0, help="wall-time budget of transformer runs")
    parser.add_argument("--bald-samples", type=int, default=10, help="Monte-Carlo dropout passes (issue: 20)")
    parser.add_argument(
        "--torch-threads", type=int, default=1, help="torch threads of transformer runs (0 = torch's default)"
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="default: results/strategies.json (TREC-6), strategies-<dataset>.json"
    )
    parser.add_argument("--resume", action="store_true", help="keep runs already in --out with the same settings")
    parser.add_argument("--replot", action="store_true", help="only redraw the PNG from --out")
    parser.add_argument("--note", action="append", default=[], help="a note to add to the JSON")
    parser.add_argument("--pool", type=Path, default=DATA["pool"], help="labelled pool: JSONL, CSV, TSV or Parquet")
    parser.add_argument("--test", type=Path, default=DATA["test"], help="labelled test file, same format")
    parser.add_argument("--text-column", default=DATA["text"])
    parser.add_argument("--label-column", default=DATA["label"])
    parser.add_argument("--warm", metavar="MODEL", help=argparse.SUPPRESS)
    parser.add_argument("--one", nargs=3, metavar=("MODEL", "STRATEGY", "SEED"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.out = args.out or default_out(args.pool)
    if args.replot:
        document = json.loads(args.out.read_text())
        name = (document.get("dataset") or {}).get("name", "TREC-6")
        plot(document["results"], args.out.with_suffix(".png"), name)
        return
    if args.warm:
        warm(args.warm, args.transformer_pool, data_files(args))
        return
    if args.one:
        model, strategy, seed = args.one
        print(
            json.dumps(
                run_one(
                    model,
                    strategy,
                    int(seed),
                    args.max_labels,
                    args.transformer_pool,
                    args.bald_samples,
                    args.torch_threads,
                    data_files(args),
                )
            )
        )
        return

    started = time.perf_counter()
    seeds = [int(s) for s in args.seeds.split(",")]
    jobs: list[Job] = []
    notes: list[str] = list(args.note)
    for model in args.models.split(","):
        strategies = args.strategies.split(",") if args.strategies else STRATEGIES[model]
        if model != "transformer" and "bald" in strategies:
            strategies = [s for s in strategies if s != "bald"]
            notes.append(f"bald skipped for {model}: it needs a model with dropout (transformer)")
        max_labels = args.transformer_max_labels if model == "transformer" else args.max_labels
        jobs += [Job(model, strategy, seed, max_labels) for seed in seeds for strategy in strategies]
    name = dataset_name(args.pool)
    meta = {
        "what": f"{name} active learning with oracle labels, daemon's Learner, batch 20; accuracy/macro-F1 on test",
        "dataset": {"name": name, "pool": shown(args.pool), "test": shown(args.test)},
        "settings": {
            "batch_size": BATCH,
            "seeds": seeds,
            "max_labels": args.max_labels,
            "transformer_max_labels": args.transformer_max_labels,
            "transformer_pool": args.transformer_pool,
            "transformer_pool_sampling": f"np.random.default_rng({SUBSAMPLE_SEED}).choice(pool, size, replace=False)"
            ", sorted; the same for every strategy and seed; test set whole",
            "transformer": "bundled all-MiniLM-L6-v2 fine-tuned, daemon defaults: 3 epochs, max_length 64, lr 5e-5",
            "bald_samples": args.bald_samples,
            "transformer_torch_threads": args.torch_threads or "torch default",
            "std": "over seeds, ddof=1",
            "timing": "train_s = Learner.fit, eval_s = Learner.evaluate, query_s = Learner.query (incl. the pool"
            " probabilities for suggestions); embeddings computed and cached before the runs (not in times or RSS)",
            "labels_to_target": "first label count reaching the accuracy, per seed; mean only if every seed did",
        },
        "environment": environment(),
    }
    runs: dict[tuple, dict] = {}
    if args.resume and args.out.exists():
        previous = json.loads(args.out.read_text())
        if (previous.get("dataset") or {}).get("pool", shown(DATA["pool"])) != shown(args.pool):
            raise SystemExit(f"--resume: {args.out} holds runs on another pool file; use another --out")
        columns = previous["runs_columns"]
        wanted = {job.key: job for job in jobs}
        for run in previous["runs"]:
            key = (run["model"], run["strategy"], run["seed"])
            if key in wanted and "error" not in run and run["max_labels"] == wanted[key].max_labels:
                runs[key] = {**run, "rounds": [dict(zip(columns, row, strict=True)) for row in run["rounds"]]}
        notes.extend(n for n in previous.get("notes", []) if n not in notes)
        # wall_seconds: this invocation and the processes of the runs kept (runs go one at a time); the time of
        # runs dropped (other settings, errors) is not carried over
        started -= sum(run.get("process_s") or run.get("seconds") or 0.0 for run in runs.values())
        print(f"resuming: {len(runs)} runs kept from {args.out}", flush=True)
    for model in dict.fromkeys(job.model for job in jobs if job.key not in runs):
        if model != "tfidf":  # embeddings (pool, test; the transformer's pool for diversity strategies) cached once
            subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--warm",
                    model,
                    "--transformer-pool",
                    str(args.transformer_pool),
                    *data_arguments(args),
                ],
                cwd=ROOT,
                env=child_env(),
                check=True,
            )
    transformer_start = None
    durations: dict[str, list[float]] = {}  # wall seconds of each finished transformer run, by strategy
    pending = [job for job in jobs if job.key not in runs]
    while pending:
        job = next_job(pending, seeds[0], durations)
        pending.remove(job)
        if job.model == "transformer":
            transformer_start = transformer_start or time.perf_counter()
            spent = time.perf_counter() - transformer_start
            expected = expected_seconds(job.strategy, durations)
            if spent + expected > args.transformer_minutes * 60:
                notes.append(
                    f"transformer {job.strategy} seed {job.seed} skipped: {spent / 60:.0f} min spent, "
                    f"~{expected / 60:.0f} min more would pass the {args.transformer_minutes:.0f}-min budget"
                )
                print(notes[-1], flush=True)
                continue
        print(f"{job.model} {job.strategy} seed={job.seed} ...", flush=True)
        spawned = time.perf_counter()
        run = spawn(job, args)
        run["process_s"] = round(time.perf_counter() - spawned, 1)
        run["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
        runs[job.key] = run
        if job.model == "transformer":
            durations.setdefault(job.strategy, []).append(run["process_s"])
        last = run["rounds"][-1] if run["rounds"] else {}
        print(
            f"  {run['process_s']} s, {run.get('peak_rss_mb')} MB, {last.get('labels')} labels, "
            f"accuracy {last.get('accuracy')}, load {run['load_average_after']}"
            + (f", ERROR {run['error']}" if "error" in run else ""),
            flush=True,
        )
        write(args.out, meta, runs, notes, time.perf_counter() - started)
    write(args.out, meta, runs, notes, time.perf_counter() - started)
    print(f"wrote {args.out} and {args.out.with_suffix('.png')} in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
