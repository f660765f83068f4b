"""Issue 22's binary target: by 1,000 labels, the default within 2 points of the best full-pool ceiling among the
models on offer.

    .venv/bin/python bench/binary_ceiling.py                      # cr, mpqa, mr, subj; frozen models: ~15 min
    .venv/bin/python bench/binary_ceiling.py --transformer cr     # + the fine-tuned transformer's ceiling on CR

For each binary dev set (``../shared/data`` or ``$AL_BENCH_DATA``; test files): ``bench/strategies.py`` runs the
default (hybrid + BreakingTies) and random to 1,000 labels (seeds 0-2, batch 20; ``results/strategies-<dataset>-1000
.json``, runs already there kept), and each frozen model (tfidf, embeddings, hybrid) is trained on every label of the
train file and scored on the test file: its full-pool ceiling. ``--transformer`` adds the daemon's fine-tuned
transformer trained on a whole train file (its defaults, one CPU thread: ~10 min for CR's 3,000 texts, ~30 min for the
others), for the sets named. Writes ``results/binary-ceiling.json`` and ``.png``; README table ``binary-ceiling``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.every_dataset import SHARED, panels, save_panels  # noqa: E402

RESULTS = ROOT / "bench" / "results"
TARGET = RESULTS / "binary-ceiling.json"
BINARY = ("cr", "mpqa", "mr", "subj")
FROZEN = ("tfidf", "embeddings", "hybrid")
LABELS = 1000
TOLERANCE = 0.02  # the "within 2 points"


def ceiling(folder: Path, model: str) -> dict:
    """``model`` trained on every label of the train file (the daemon's Learner, seed 0), scored on the test file."""
    from bench.strategies import WORK
    from daemon.app import load_data
    from daemon.config import Settings
    from daemon.learner import Learner
    from daemon.models import build_features

    settings = Settings(
        _env_file=None,
        pool_file=folder / "train.jsonl",
        test_file=folder / "test.jsonl",
        model=model,
        cache_dir=WORK / "cache",
    )
    data = load_data(settings)
    gold = [data.labels.index(label) for label in data.pool.gold]
    if model == "transformer":
        import torch

        torch.set_num_threads(1)  # one core, as in bench/fine_tune_gain.py
    started = time.perf_counter()
    features = build_features(settings, data.pool, data.test, data.y_test, len(data.labels))
    learner = Learner.from_settings(features, len(data.labels), settings)
    learner.fit(dict(enumerate(gold)), set(), 0)
    evaluation = learner.evaluate(data.y_test)
    return {
        "accuracy": round(evaluation.accuracy, 4),
        "labels": len(gold),
        "seconds": round(time.perf_counter() - started),
    }


def curves(folder: Path, seeds: str) -> dict:
    """The default's and random's summaries to 1,000 labels (bench/strategies.py, resumed)."""
    out = RESULTS / f"strategies-{folder.name}-{LABELS}.json"
    command = [sys.executable, str(ROOT / "bench" / "strategies.py"), "--models", "hybrid", "--resume"]
    command += ["--strategies", "breaking_ties,random", "--seeds", seeds, "--max-labels", str(LABELS)]
    command += ["--pool", str(folder / "train.jsonl"), "--test", str(folder / "test.jsonl"), "--out", str(out)]
    subprocess.run(command, cwd=ROOT, check=True)
    return json.loads(out.read_text())["results"]["hybrid"]


def at(summary: dict, labels: int) -> tuple[float, float]:
    index = summary["labels"].index(labels)
    return summary["accuracy_mean"][index], summary["accuracy_std"][index]


def row(name: str, found: dict, ceilings: dict) -> dict:
    default, default_std = at(found["breaking_ties"], LABELS)
    random, random_std = at(found["random"], LABELS)
    best_model = max(ceilings, key=lambda m: ceilings[m]["accuracy"])
    best = ceilings[best_model]["accuracy"]
    return {
        "dataset": name,
        "default": default,
        "default_std": default_std,
        "random": random,
        "random_std": random_std,
        "ceilings": ceilings,
        "best_model": best_model,
        "best": best,
        "gap": round(best - default, 4),
        "met": best - default <= TOLERANCE,
    }


def plot(document: dict, found: dict[str, dict], path: Path) -> None:
    names = [r["dataset"] for r in document["rows"]]
    figure, axes = panels(len(names))
    for axis, entry in zip(axes, document["rows"], strict=False):
        for strategy, label, colour in (("breaking_ties", "default", "C0"), ("random", "random", "C1")):
            summary = found[entry["dataset"]][strategy]
            x, mean, std = (np.array(summary[k], dtype=float) for k in ("labels", "accuracy_mean", "accuracy_std"))
            axis.plot(x, mean, color=colour, label=label, linewidth=1.3)
            axis.fill_between(x, mean - std, mean + std, color=colour, alpha=0.15, linewidth=0)
        for model, value in entry["ceilings"].items():
            style = "-" if model == entry["best_model"] else ":"
            axis.axhline(value["accuracy"], color="grey", linestyle=style, linewidth=0.8)
            axis.annotate(model, (x[0], value["accuracy"]), fontsize=6, color="grey", va="bottom")
        axis.set_title(f"{entry['dataset']} (gap at {LABELS}: {entry['gap']:+.3f})", fontsize=10)
        axis.grid(alpha=0.3)
    title = f"default vs random to {LABELS} labels; grey: full-pool ceilings (solid: best), seeds {document['seeds']}"
    save_panels(figure, axes, len(names), "test accuracy", title, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(BINARY), help="comma list of binary dev sets")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--transformer", default="", help="comma list: also the fine-tuned transformer's ceiling")
    args = parser.parse_args()
    names = args.only.split(",")
    missing = [n for n in names if not (SHARED / n / "train.jsonl").exists()]
    if missing:
        sys.exit(f"binary_ceiling.py: no dev set {', '.join(missing)} under {SHARED} (set AL_BENCH_DATA)")
    previous = json.loads(TARGET.read_text()) if TARGET.exists() else {"rows": []}
    kept = {r["dataset"]: r["ceilings"] for r in previous["rows"]}  # a transformer ceiling costs minutes: kept
    rows, found = [], {}
    for name in names:
        folder = SHARED / name
        found[name] = curves(folder, args.seeds)
        ceilings = {m: kept[name][m] for m in kept.get(name, {}) if m not in FROZEN}
        for model in FROZEN + (("transformer",) if name in args.transformer.split(",") else ()):
            ceilings[model] = ceiling(folder, model)
            print(f"{name}: {model} on the whole pool {ceilings[model]}", flush=True)
        rows.append(row(name, found[name], ceilings))
    for kept_row in previous["rows"]:  # the sets not run this time: as recorded, curves from their files
        if kept_row["dataset"] not in names:
            rows.append(kept_row)
            out = RESULTS / f"strategies-{kept_row['dataset']}-{LABELS}.json"
            found[kept_row["dataset"]] = json.loads(out.read_text())["results"]["hybrid"]
    rows.sort(key=lambda r: r["dataset"])
    from bench.tables import binary_ceiling

    document = {"seeds": args.seeds, "labels": LABELS, "tolerance": TOLERANCE, "rows": rows}
    TARGET.write_text(json.dumps(document, indent=1) + "\n")
    plot(document, found, TARGET.with_suffix(".png"))
    print(binary_ceiling(document))
    print(f"wrote {TARGET}")


if __name__ == "__main__":
    main()
