"""Warm starts: what 100 labels in hand before the run are worth, with oracle labels.

    .venv/bin/python bench/warm_start.py                          # TREC-6, MR, HWU64 x seeds 0-2
    .venv/bin/python bench/warm_start.py --datasets trec6 --seeds 0 --extra 100

In-process through the daemon's own classes (no Argilla), as bench/strategies.py: the default model (hybrid) and
query strategy (breaking_ties), batch 20. For each dataset and seed, a seed set of ``--seed-size`` (100) texts is
drawn from the pool at random (``np.random.default_rng(seed)``: what a team labelled before, with its gold labels),
then three runs add ``--extra`` (200) labels, 20 a round, scored on the test file after each round:

- ``cold``: the daemon without a warm start — the seed is not used, batch 0 is random, then breaking_ties;
- ``warm``: ``AL_SEED_FILE`` — the seed is trained on first, batch 0 and every later batch chosen by the model;
- ``seed+random``: the seed trained on, then random batches (labelling more at random).

Reported: test accuracy at +100 and +200 new labels (the annotators' work after the start), mean and standard
deviation over the seeds. Data: TREC-6 from data/trec6; MR (binary sentiment) and HWU64 (64 intents) from
``../shared/data`` or ``$AL_BENCH_DATA`` (not shipped). Nothing is tuned here, so no validation split is carved.
Writes bench/results/warm-start.json and warm-start.png.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results"
SHARED = Path(os.environ.get("AL_BENCH_DATA", ROOT.parent / "shared" / "data"))
BATCH = 20
KINDS = ("cold", "warm", "seed+random")
DATASETS = {
    "trec6": ROOT / "data" / "trec6",
    "mr": SHARED / "mr",
    "hwu64": SHARED / "hwu64",
}
CHECKPOINTS = (100, 200)


def files_of(folder: Path) -> dict:
    return {"pool": folder / "train.jsonl", "test": folder / "test.jsonl", "text": "text", "label": "label"}


def run(dataset: str, kind: str, seed: int, seed_size: int, extra: int) -> list[dict]:
    """One run: test accuracy after each round, against the labels added after the start."""
    from bench.strategies import load
    from daemon.learner import Learner
    from daemon.models import build_features

    strategy = "random" if kind == "seed+random" else "breaking_ties"
    settings, data, pool = load("hybrid", strategy, seed, 0, data_files=files_of(DATASETS[dataset]))
    gold = [data.labels.index(label) for label in pool.gold]
    features = build_features(settings, pool, data.test, data.y_test, len(data.labels))
    learner = Learner.from_settings(features, len(data.labels), settings)
    labelled: dict[int, int] = {}
    if kind == "cold":
        queried = learner.initial_batch(BATCH)
    else:
        drawn = np.random.default_rng(seed).choice(len(pool), size=seed_size, replace=False)
        labelled = {int(i): gold[int(i)] for i in drawn}
        learner.fit(labelled, set(), 0)
        queried = learner.query(BATCH, 0).indices
    added, round_number, rows = 0, 0, []
    while True:
        labelled.update({i: gold[i] for i in queried})
        added += len(queried)
        trained = learner.fit(labelled, set(), round_number)
        evaluation = learner.evaluate(data.y_test) if trained else None
        rows.append({"added": added, "labels": len(labelled), "accuracy": evaluation and round(evaluation.accuracy, 4)})
        if added >= extra:
            return rows
        round_number += 1
        queried = learner.query(min(BATCH, extra - added), round_number).indices


def summarise(runs: list[list[dict]]) -> dict:
    """Mean and standard deviation of the seeds' accuracy at each number of added labels."""
    added = [row["added"] for row in runs[0]]
    values = [[row["accuracy"] or 0.0 for row in rows] for rows in runs]
    columns = list(zip(*values, strict=True))
    return {
        "added": added,
        "accuracy_mean": [round(statistics.fmean(c), 4) for c in columns],
        "accuracy_std": [round(statistics.pstdev(c), 4) for c in columns],
        "per_seed": values,
    }


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    figure, axes = plt.subplots(1, len(names), figsize=(5 * len(names), 4), squeeze=False)
    for axis, name in zip(axes[0], names, strict=True):
        for kind, colour in zip(KINDS, ("tab:gray", "tab:blue", "tab:orange"), strict=True):
            found = results[name][kind]
            mean, std = np.array(found["accuracy_mean"]), np.array(found["accuracy_std"])
            axis.plot(found["added"], mean, marker="o", markersize=3, color=colour, label=kind)
            axis.fill_between(found["added"], mean - std, mean + std, color=colour, alpha=0.15)
        axis.set_title(name)
        axis.set_xlabel("labels added after the start")
        axis.set_ylabel("test accuracy")
        axis.grid(alpha=0.3)
        axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--seed-size", type=int, default=100)
    parser.add_argument("--extra", type=int, default=200)
    parser.add_argument("--out", type=Path, default=RESULTS / "warm-start.json")
    args = parser.parse_args()
    from bench.strategies import environment

    names = args.datasets.split(",")
    missing = [name for name in names if not (DATASETS[name] / "train.jsonl").exists()]
    if missing:
        sys.exit(f"warm_start.py: no {', '.join(missing)} under {SHARED} (set AL_BENCH_DATA to the dev sets' folder)")
    seeds = [int(s) for s in args.seeds.split(",")]
    started = time.perf_counter()
    results: dict = {}
    for name in names:
        results[name] = {}
        for kind in KINDS:
            runs = []
            for seed in seeds:
                rows = run(name, kind, seed, args.seed_size, args.extra)
                print(f"{name} {kind} seed={seed}: {rows[-1]}", file=sys.stderr, flush=True)
                runs.append(rows)
            results[name][kind] = summarise(runs)
    document = {
        "what": f"warm start: a {args.seed_size}-label seed drawn at random from the pool, then {args.extra} labels "
        f"chosen by the daemon's default (hybrid, breaking_ties), batch {BATCH}, oracle labels; cold = no seed "
        "(random batch 0), seed+random = the seed then random batches; test accuracy against the labels added",
        "settings": {"seeds": seeds, "seed_size": args.seed_size, "extra": args.extra, "batch": BATCH},
        "environment": environment(),
        "wall_seconds": round(time.perf_counter() - started, 1),
        "checkpoints": list(CHECKPOINTS),
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=1) + "\n")
    plot(results, args.out.with_suffix(".png"))
    print(f"wrote {args.out} and {args.out.with_suffix('.png')}", file=sys.stderr)


if __name__ == "__main__":
    main()
