"""Multi-label active learning on GoEmotions (28 emotions, a set per text): micro-F1 against labels, per model and
query strategy, with oracle label sets.

    .venv/bin/python bench/multilabel.py                      # the full set below
    .venv/bin/python bench/multilabel.py --models embeddings --strategies random,cvirs --seeds 0 --max-labels 200
    .venv/bin/python bench/multilabel.py --resume             # keep the runs already in the JSON, do the rest

In-process simulation through the daemon's own classes (no Argilla), as bench/strategies.py does for single-label
tasks: ``build_features(..., multi_label=True)`` builds the model's datasets (one yes/no logistic regression per
label), ``Learner`` runs small-text. Data: ``../shared/data/goemotions`` (or ``$AL_BENCH_DATA/goemotions``):
a validation split of 5,000 texts is carved from ``train.jsonl`` (``np.random.default_rng(0)``), the rest of it
is the pool (38,227 texts); every round the model is scored on the validation split (what the default is chosen
on) and on ``test.jsonl`` (what is reported). Round 0 is ``initial_batch(20)``; every round the oracle answers
the 20 queried texts with their label sets, the learner fits, is scored, and queries the next 20, to 1,000 labels.
A label is predicted above probability 0.5, and where none is, the most probable one (every GoEmotions text has
a label: the daemon's rule when an empty answer is not allowed).

Defaults: hybrid and embeddings x {random, breaking_ties (the smallest yes/no margin of a text's labels),
least_confidence (the mean yes/no confidence), prediction_entropy (the sum of the labels' yes/no entropies),
cvirs (small-text's CategoryVectorInconsistencyAndRanking)} x seeds 0, 1, 2. One subprocess per (model,
strategy) runs its seeds (``--jobs`` at a time), BLAS held to one thread. Labels to reach a micro-F1 level: the
mean curve's first crossing, interpolated between rounds; the saving is ``1 - strategy / random`` at the same level.
Writes bench/results/multilabel.json (after every run) and multilabel.png; caches go to
tests/output/bench-multilabel/.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results"
WORK = ROOT / "tests" / "output" / "bench-multilabel"
BATCH = 20
VALIDATION = 5000
MODELS = ["hybrid", "embeddings"]
STRATEGIES = ["random", "breaking_ties", "least_confidence", "prediction_entropy", "cvirs"]
METRICS = ("micro_f1", "macro_f1", "subset_accuracy", "hamming_loss")


def data_folder() -> Path:
    base = Path(os.environ.get("AL_BENCH_DATA") or ROOT.parent / "shared" / "data")
    folder = base / "goemotions"
    if not (folder / "train.jsonl").exists():
        raise SystemExit(f"bench/multilabel.py: no GoEmotions data at {folder} (set AL_BENCH_DATA to the data folder)")
    return folder


def read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def load(quick: bool = False) -> dict:
    """Pool, validation and test texts with their label sets (indices into the sorted label names); ``quick``: a
    smoke-test cut (the first 3,000 training texts, the first 500 test texts)."""
    folder = data_folder()
    train, test = read(folder / "train.jsonl"), read(folder / "test.jsonl")
    if quick:
        train, test = train[:3000], test[:500]
    names = sorted({label for row in train + test for label in row["labels"]})
    order = np.random.default_rng(0).permutation(len(train))
    carve = 500 if quick else VALIDATION
    validation, pool = [train[i] for i in sorted(order[:carve])], [train[i] for i in sorted(order[carve:])]

    def sets(rows: list[dict]) -> list[tuple[int, ...]]:
        return [tuple(sorted({names.index(label) for label in row["labels"]})) for row in rows]

    return {
        "folder": folder,
        "labels": names,
        "pool": pool,
        "validation": validation,
        "test": test,
        "pool_sets": sets(pool),
        "validation_sets": sets(validation),
        "test_sets": sets(test),
    }


def table(rows: list[dict], name: str):
    from daemon.pool import TextTable

    return TextTable(
        source=Path(name),
        texts=[r["text"] for r in rows],
        ids=[r["id"] for r in rows],
        gold=None,
        rows=list(range(1, len(rows) + 1)),
    )


def run_model(model: str, strategies: list[str], seeds: list[int], max_labels: int, quick: bool = False) -> list[dict]:
    """Every (strategy, seed) run of one model in this process: the features are built once."""
    from threadpoolctl import threadpool_limits

    from daemon.config import QueryStrategyName, Settings
    from daemon.learner import Learner, label_matrix, multi_label_scores
    from daemon.models import build_features

    data = load(quick)
    k = len(data["labels"])
    evaluation = data["validation"] + data["test"]
    truth = label_matrix(data["validation_sets"] + data["test_sets"], k)
    cut = len(data["validation"])
    settings = Settings(_env_file=None, model=model, cache_dir=WORK / "cache", state_dir=WORK / "state")
    started = time.perf_counter()
    features = build_features(
        settings, table(data["pool"], "pool"), table(evaluation, "evaluation"), truth, k, multi_label=True
    )
    build_seconds = time.perf_counter() - started
    runs = []
    for strategy in strategies:
        for seed in seeds:
            began = time.perf_counter()
            learner = Learner(features, k, QueryStrategyName(strategy), seed)
            batch = learner.initial_batch(BATCH)
            labelled: dict[int, tuple[int, ...]] = {}
            rounds = []
            with threadpool_limits(1, user_api="blas"):
                for round_number in range(max_labels // BATCH):
                    labelled |= {i: data["pool_sets"][i] for i in batch}
                    mark = time.perf_counter()
                    learner.fit(labelled, set(), round_number)
                    train_s = time.perf_counter() - mark
                    mark = time.perf_counter()
                    proba = learner._active.classifier.predict_proba(features.test)
                    row = {"labels": len(labelled), "train_s": round(train_s, 4)}
                    for split, rows in (("validation", slice(0, cut)), ("test", slice(cut, None))):
                        scores = multi_label_scores(truth[rows], proba[rows], learner.threshold, learner.at_least_one)
                        row[split] = {
                            "micro_f1": round(scores.micro_f1, 4),
                            "macro_f1": round(scores.macro_f1, 4),
                            "subset_accuracy": round(scores.accuracy, 4),
                            "hamming_loss": round(scores.hamming_loss, 5),
                        }
                    row["eval_s"] = round(time.perf_counter() - mark, 4)
                    if len(labelled) >= max_labels:
                        rounds.append(row | {"query_s": None})
                        break
                    mark = time.perf_counter()
                    batch = learner.query(BATCH, round_number).indices
                    row["query_s"] = round(time.perf_counter() - mark, 4)
                    rounds.append(row)
            runs.append(
                {
                    "model": model,
                    "strategy": strategy,
                    "seed": seed,
                    "rounds": rounds,
                    "seconds": round(time.perf_counter() - began, 1),
                    "features_seconds": round(build_seconds, 1),
                    "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                    "pool_size": len(data["pool"]),
                }
            )
            print(json.dumps(runs[-1]), flush=True)  # the parent collects one JSON line per run
    return runs


def ceiling(model: str, quick: bool = False) -> dict:
    """The model trained on every pool text with its label set: how far the curves could go with this model."""
    from threadpoolctl import threadpool_limits

    from daemon.config import QueryStrategyName, Settings
    from daemon.learner import Learner, label_matrix, multi_label_scores
    from daemon.models import build_features

    data = load(quick)
    k = len(data["labels"])
    truth = label_matrix(data["validation_sets"] + data["test_sets"], k)
    cut = len(data["validation"])
    settings = Settings(_env_file=None, model=model, cache_dir=WORK / "cache", state_dir=WORK / "state")
    features = build_features(
        settings, table(data["pool"], "pool"), table(data["validation"] + data["test"], "evaluation"), truth, k,
        multi_label=True,
    )  # fmt: skip
    learner = Learner(features, k, QueryStrategyName.random, 0)
    started = time.perf_counter()
    with threadpool_limits(1, user_api="blas"):
        learner.fit(dict(enumerate(data["pool_sets"])), set(), 0)
        proba = learner._active.classifier.predict_proba(features.test)
    found = {"labels": len(data["pool"]), "seconds": round(time.perf_counter() - started, 1)}
    for split, rows in (("validation", slice(0, cut)), ("test", slice(cut, None))):
        scores = multi_label_scores(truth[rows], proba[rows], learner.threshold, learner.at_least_one)
        found[split] = {"micro_f1": round(scores.micro_f1, 4), "macro_f1": round(scores.macro_f1, 4)}
    return found


# ------------------------------------------------------------------------------------------------- summary
def curve(runs: list[dict], split: str, metric: str) -> tuple[list[int], np.ndarray]:
    length = min(len(r["rounds"]) for r in runs)
    labels = [row["labels"] for row in runs[0]["rounds"][:length]]
    return labels, np.array([[row[split][metric] for row in r["rounds"][:length]] for r in runs])


def summarise(runs: list[dict]) -> dict:
    summary: dict = {"seeds": [r["seed"] for r in runs]}
    for split in ("validation", "test"):
        for metric in METRICS:
            labels, values = curve(runs, split, metric)
            summary["labels"] = labels
            summary[f"{split}_{metric}_mean"] = [round(float(v), 4) for v in values.mean(axis=0)]
            summary[f"{split}_{metric}_std"] = [
                round(float(v), 4) for v in (values.std(axis=0, ddof=1) if len(runs) > 1 else 0 * values[0])
            ]
        # the area under the micro-F1 curve per label step: one number for "better all the way"
        summary[f"{split}_micro_f1_area"] = round(float(np.mean(summary[f"{split}_micro_f1_mean"])), 4)
    for what in ("train_s", "eval_s", "query_s"):
        values = [row[what] for r in runs for row in r["rounds"] if row[what] is not None]
        summary[f"{what}_median"] = round(statistics.median(values), 4) if values else None
    summary["peak_rss_mb"] = max(r["peak_rss_mb"] for r in runs)
    summary["run_seconds"] = [r["seconds"] for r in runs]
    return summary


def savings(by_strategy: dict, split: str) -> dict:
    """Per strategy: labels to each micro-F1 level (every 0.02 above round 0's, the same for all strategies, up to
    random's best), random's labels for it, and the saving ``1 - strategy / random``."""
    from bench.strategies import saving_rows

    baseline = by_strategy.get("random")
    if not baseline:
        return {}
    curve = baseline[f"{split}_micro_f1_mean"]
    best, start = max(curve), np.ceil(max(curve[0], 0.0) * 50) / 50  # levels above where every run starts
    levels = [round(float(x), 2) for x in np.arange(start + 0.02, best + 1e-9, 0.02)]
    found = {}
    for strategy, summary in by_strategy.items():
        if strategy == "random":
            continue
        rows = saving_rows(summary, baseline, levels, f"{split}_micro_f1_mean")
        found[strategy] = {"random_best_micro_f1": round(best, 4), "levels": rows}
    return found


def write(out: Path, meta: dict, runs: list[dict], wall: float, ceilings: dict | None = None) -> None:
    from bench.strategies import environment, git

    results: dict = {
        "benchmark": "multilabel",
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "commit": git("rev-parse", "--short", "HEAD"),
        "environment": environment(),
        "setup": meta,
        "wall_seconds": round(wall, 1),
        "models": {},
    }
    for model in dict.fromkeys(r["model"] for r in runs):
        by_strategy = {}
        for strategy in dict.fromkeys(r["strategy"] for r in runs if r["model"] == model):
            mine = sorted(
                (r for r in runs if r["model"] == model and r["strategy"] == strategy), key=lambda r: r["seed"]
            )
            by_strategy[strategy] = summarise(mine)
        # what the default follows: the largest area under the validation micro-F1 curve, random included
        chosen = max(by_strategy, key=lambda s: by_strategy[s]["validation_micro_f1_area"], default=None)
        results["models"][model] = {
            "strategies": by_strategy,
            "savings_test": savings(by_strategy, "test"),
            "savings_validation": savings(by_strategy, "validation"),
            "best_on_validation": chosen,
            "ceiling": (ceilings or {}).get(model),
        }
    results["runs"] = runs
    out.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = list(results["models"])
    figure, axes = plt.subplots(1, len(models), figsize=(6.5 * len(models), 4.6), squeeze=False)
    for axis, model in zip(axes[0], models, strict=True):
        for strategy, summary in results["models"][model]["strategies"].items():
            x = np.array(summary["labels"])
            mean, std = np.array(summary["test_micro_f1_mean"]), np.array(summary["test_micro_f1_std"])
            style = {"color": "black", "linestyle": "--"} if strategy == "random" else {}
            axis.plot(x, mean, label=strategy, **style)
            axis.fill_between(
                x, mean - std, mean + std, alpha=0.12, **({"color": "black"} if strategy == "random" else {})
            )
        top = results["models"][model].get("ceiling")
        if top:
            axis.axhline(top["test"]["micro_f1"], color="grey", linestyle=":", linewidth=1,
                         label=f"every pool text ({top['labels']:,})")  # fmt: skip
        axis.set_title(f"GoEmotions (28 labels), {model}: test micro-F1")
        axis.set_xlabel("labelled texts")
        axis.set_ylabel("micro-F1")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--strategies", default=",".join(STRATEGIES))
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--max-labels", type=int, default=1000)
    parser.add_argument("--jobs", type=int, default=2, help="(model, strategy) subprocesses at a time")
    parser.add_argument("--resume", action="store_true", help="keep the runs already in the JSON")
    parser.add_argument("--out", type=Path, default=RESULTS / "multilabel.json")
    parser.add_argument("--no-ceiling", action="store_true", help="skip training each model on the whole pool")
    parser.add_argument("--ceiling-only", help=argparse.SUPPRESS)  # child: one model's ceiling as a JSON line
    parser.add_argument("--quick", action="store_true", help="a smoke test: 2,500 pool texts, 500 validation, 500 test")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # child: "model:strategy"
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    if args.ceiling_only:
        print(json.dumps({"ceiling": args.ceiling_only, **ceiling(args.ceiling_only, args.quick)}), flush=True)
        return
    if args.one:
        model, strategy = args.one.split(":")
        run_model(model, [strategy], seeds, args.max_labels, args.quick)
        return

    WORK.mkdir(parents=True, exist_ok=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    data = load(args.quick)
    meta = {
        "data": str(data["folder"]),
        "labels": data["labels"],
        "pool": len(data["pool"]),
        "validation": len(data["validation"]),
        "test": len(data["test"]),
        "batch": BATCH,
        "max_labels": args.max_labels,
        "threshold": 0.5,
        "validation_carving": f"np.random.default_rng(0).permutation(train)[:{len(data['validation'])}]",
    }
    runs: list[dict] = []
    ceilings: dict = {}
    if args.resume and args.out.exists():
        previous = json.loads(args.out.read_text())
        runs = [r for r in previous["runs"] if r["rounds"][-1]["labels"] >= args.max_labels]
        ceilings = {m: found["ceiling"] for m, found in previous["models"].items() if found.get("ceiling")}
    done = {(r["model"], r["strategy"], r["seed"]) for r in runs}
    models = args.models.split(",")
    jobs = [
        (m, s) for m in models for s in args.strategies.split(",") if any((m, s, seed) not in done for seed in seeds)
    ]
    # the embeddings are computed once, before the children share the cache
    from daemon.config import Settings
    from daemon.models import _encoder
    from daemon.pool import embed

    warm = Settings(_env_file=None, cache_dir=WORK / "cache", state_dir=WORK / "state")
    pool_table = table(data["pool"], "pool")
    model_path, encoder = _encoder(warm, pool_table)
    for rows, name in ((data["pool"], "pool"), (data["validation"] + data["test"], "evaluation")):
        texts = table(rows, name)
        embed(texts.texts, model_path, warm.cache_path, texts.fingerprint, None, encoder)
    meta["encoder"] = str(encoder.name)

    started = time.perf_counter()
    running: list[tuple[subprocess.Popen, tuple[str, str]]] = []
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "TQDM_DISABLE": "1",
    }
    while jobs or running:
        while jobs and len(running) < args.jobs:
            model, strategy = jobs.pop(0)
            command = [sys.executable, __file__, "--one", f"{model}:{strategy}", "--seeds", args.seeds,
                       "--max-labels", str(args.max_labels)] + (["--quick"] if args.quick else [])  # fmt: skip
            log = (WORK / f"{model}-{strategy}.log").open("w")
            running.append(
                (subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log, text=True, env=env), (model, strategy))
            )
        process, job = running.pop(0)
        out, _ = process.communicate()
        if process.returncode != 0:
            print(f"{job}: exit {process.returncode} (see {WORK / (job[0] + '-' + job[1] + '.log')})", file=sys.stderr)
        for line in out.splitlines():
            if line.startswith("{"):
                run = json.loads(line)
                runs = [
                    r
                    for r in runs
                    if (r["model"], r["strategy"], r["seed"]) != (run["model"], run["strategy"], run["seed"])
                ]
                runs.append(run)
        write(args.out, meta, runs, time.perf_counter() - started, ceilings)
        print(f"{job}: done ({len(runs)} runs in the JSON)", flush=True)
    for model in [] if args.no_ceiling else [m for m in models if m not in ceilings]:
        command = [sys.executable, __file__, "--ceiling-only", model] + (["--quick"] if args.quick else [])
        done_ceiling = subprocess.run(command, capture_output=True, text=True, env=env)
        found = [json.loads(line) for line in done_ceiling.stdout.splitlines() if line.startswith("{")]
        if found:
            ceilings[model] = {k: v for k, v in found[-1].items() if k != "ceiling"}
        else:
            print(f"ceiling of {model}: exit {done_ceiling.returncode}: {done_ceiling.stderr[-500:]}", file=sys.stderr)
    if runs:
        write(args.out, meta, runs, time.perf_counter() - started, ceilings)
        plot(json.loads(args.out.read_text()), args.out.with_suffix(".png"))


if __name__ == "__main__":
    main()
