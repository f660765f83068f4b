"""Should the model ladder be on by default? The default (hybrid + BreakingTies) runs to 1,000 labels on the binary
dev sets' validation splits, and at each of the ladder's due points (AL_LADDER_AFTER=500, then 1.5-fold: 750) the
daemon's own comparison (daemon.ladder.compare: 3-fold cross-validation on the labels in hand, same folds) of the
hybrid with the fine-tuned transformer (AL_TRANSFORMER_MIN_STEPS as configured) is made and its verdict recorded.

    .venv/bin/python bench/ladder_default.py                          # mr, subj, cr, mpqa; seed 0; 2 at a time
    .venv/bin/python bench/ladder_default.py --datasets mr --workers 1

Each verdict's labels are also used to fine-tune the transformer on all of them and score both models on the
validation split (what the switch would have served; the daemon trains the candidate on every label when it takes
over). At 1,000 labels both models are scored again on the same labels. A proxy, stated: after a switch the daemon's
batches would be the transformer's picks; here the hybrid keeps choosing (a fine-tune per round of 20 labels costs
minutes on this CPU). The test files are never read: the validation split is carved from each train file by
bench/validation_search.carve (as bench/fine_tune_gain.py does).

One subprocess per dataset (``--workers`` at once), one torch thread and one BLAS thread each; each writes
tests/output/ladder-default/<dataset>-<seed>.json as it goes; the parent merges every finished one there (earlier
invocations' too) into bench/results/ladder-default.json and plots ladder-default.png.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
WORK = ROOT / "tests" / "output" / "ladder-default"
RESULT = ROOT / "bench" / "results" / "ladder-default.json"
DATASETS = ("mr", "subj", "cr", "mpqa")
BATCH = 20
START = time.perf_counter()


def say(message: str) -> None:
    print(f"[{time.perf_counter() - START:7.1f}s] {message}", flush=True)


def one(name: str, seed: int, max_labels: int, after: int | None = None) -> dict:
    """The default to ``max_labels`` on one dev set's validation split, the ladder's verdicts on the way."""
    import numpy as np

    from bench import fine_tune_gain, validation_search
    from daemon.config import ModelKind, Settings
    from daemon.inputs import load_data
    from daemon.ladder import compare, due
    from daemon.learner import Learner
    from daemon.models import build_features

    split = fine_tune_gain.write_split(name)
    settings = Settings(
        _env_file=None,
        pool_file=split["folder"] / "pool.jsonl",
        test_file=split["folder"] / "validation.jsonl",
        cache_dir=validation_search.CACHE,
        seed=seed,
        **({"ladder_after": after} if after else {}),
    )
    data = load_data(settings)
    gold = [data.labels.index(label) for label in data.pool.gold]

    def learner(model: ModelKind) -> Learner:
        chosen = settings.using(model)
        features = build_features(chosen, data.pool, data.test, data.y_test, len(data.labels))
        return Learner.from_settings(features, len(data.labels), chosen)

    def validation_accuracy(model: Learner, labelled: dict[int, int], round_number: int) -> tuple[float, float]:
        started = time.perf_counter()
        model.fit(labelled, set(), round_number)
        return round(model.evaluate(data.y_test).accuracy, 4), round(time.perf_counter() - started, 1)

    out = WORK / f"{name}-{seed}.json"
    result: dict = {
        "dataset": name,
        "seed": seed,
        "pool": len(data.pool),
        "validation": len(data.test),
        "labels": data.labels,
        "model": settings.model.value,
        "strategy": settings.query_strategy.value,
        "candidate": "transformer",
        "ladder_after": settings.ladder_after,
        "folds": settings.ladder_folds,
        "transformer_min_steps": settings.transformer_min_steps,
        "curve": [],
        "verdicts": [],
    }

    def save() -> None:
        result["seconds"] = round(time.perf_counter() - START, 1)
        out.write_text(json.dumps(result, indent=2))

    current = learner(settings.model)
    candidate = learner(ModelKind.transformer)
    queried = current.initial_batch(BATCH)
    labelled: dict[int, int] = {}
    round_number = 0
    while True:
        labelled.update({i: gold[i] for i in queried})
        current.fit(labelled, set(), round_number)
        accuracy = round(current.evaluate(data.y_test).accuracy, 4)
        result["curve"].append({"labels": len(labelled), "accuracy": accuracy})
        taken = any(v["switch"] for v in result["verdicts"])
        if not taken and due(len(labelled), settings.ladder_after, [v["labels"] for v in result["verdicts"]]):
            say(f"{name}: comparing at {len(labelled)} labels")
            verdict = compare(
                current.fresh(), candidate.fresh(), labelled, folds=settings.ladder_folds, round_number=round_number
            ).model_dump()
            verdict["hybrid_validation"] = accuracy
            verdict["transformer_validation"], verdict["fine_tune_s"] = validation_accuracy(
                candidate.fresh(), labelled, round_number
            )
            result["verdicts"].append(verdict)
            say(f"{name}: {verdict['reason']}; validation {accuracy} vs {verdict['transformer_validation']}")
            save()
        if len(labelled) >= max_labels:
            break
        round_number += 1
        queried = current.query(min(BATCH, max_labels - len(labelled)), round_number).indices
        save()
    result["at_end"] = {"labels": len(labelled), "hybrid_validation": result["curve"][-1]["accuracy"]}
    result["at_end"]["transformer_validation"], result["at_end"]["fine_tune_s"] = validation_accuracy(
        candidate.fresh(), labelled, round_number
    )
    result["label_counts"] = np.bincount([labelled[i] for i in labelled], minlength=len(data.labels)).tolist()
    save()
    say(f"{name}: at {len(labelled)} labels {result['at_end']}")
    return result


def served(run: dict) -> dict:
    """What a daemon with the ladder on would serve at the end: the transformer once a verdict switched."""
    switched = next((v for v in run["verdicts"] if v["switch"]), None)
    end = run["at_end"]
    return {
        "switched_at": switched["labels"] if switched else None,
        "accuracy": end["transformer_validation"] if switched else end["hybrid_validation"],
        "gain": round(end["transformer_validation"] - end["hybrid_validation"], 4) if switched else 0.0,
    }


def plot(document: dict, path: Path) -> None:
    """Validation accuracy against labels per dataset: the hybrid's curve, the transformer on the same labels at
    each verdict and at the end (filled: the ladder switched there)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    runs = document["runs"]
    figure = Figure(figsize=(3.6 * len(runs), 3.2), layout="constrained")
    axes = figure.subplots(1, len(runs), squeeze=False)[0]
    for axis, run in zip(axes, runs, strict=True):
        axis.plot([p["labels"] for p in run["curve"]], [p["accuracy"] for p in run["curve"]], "-", label="hybrid")
        points = [(v["labels"], v["transformer_validation"], v["switch"]) for v in run["verdicts"]]
        points.append((run["at_end"]["labels"], run["at_end"]["transformer_validation"], None))
        for labels, accuracy, switch in points:
            axis.plot(labels, accuracy, "o", color="C3", fillstyle="full" if switch else "none")
        axis.set_title(run["dataset"], fontsize=10)
        axis.set_xlabel("labels")
        axis.grid(alpha=0.3)
    axes[0].set_ylabel("validation accuracy")
    axes[0].plot([], [], "o", color="C3", fillstyle="none", label="transformer, same labels")
    axes[0].legend(fontsize=8, loc="lower right")
    figure.savefig(path, dpi=90)


def merge(seed: int) -> dict:
    """Every finished run of ``seed`` in the work folder (earlier invocations' datasets too), into one result."""
    runs = [json.loads(path.read_text()) for path in sorted(WORK.glob(f"*-{seed}.json"))]
    runs = [run for run in runs if "at_end" in run]
    document = {"seed": seed, "batch": BATCH, "runs": runs, "served": {r["dataset"]: served(r) for r in runs}}
    RESULT.write_text(json.dumps(document, indent=2))
    plot(document, RESULT.with_suffix(".png"))
    return document


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-labels", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--after", type=int, help="AL_LADDER_AFTER instead of the default (a quick check)")
    parser.add_argument("--one", help="run one dataset in this process (the parent's child)")
    args = parser.parse_args()
    if args.one:
        import torch
        from threadpoolctl import threadpool_limits

        torch.set_num_threads(1)
        with threadpool_limits(1):
            one(args.one, args.seed, args.max_labels, args.after)
        return
    WORK.mkdir(parents=True, exist_ok=True)
    names = args.datasets.split(",")
    env = os.environ | {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    pending, running = list(names), []
    while pending or running:
        while pending and len(running) < args.workers:
            name = pending.pop(0)
            command = [sys.executable, __file__, "--one", name, "--seed", str(args.seed)]
            command += ["--max-labels", str(args.max_labels)] + (["--after", str(args.after)] if args.after else [])
            with open(WORK / f"{name}-{args.seed}.log", "w") as log:
                running.append((name, subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)))
            say(f"started {name}")
        time.sleep(5)
        for name, process in [r for r in running if r[1].poll() is not None]:
            running.remove((name, process))
            say(f"{name} exited {process.returncode}")
    document = merge(args.seed)
    say(json.dumps(document["served"]))


if __name__ == "__main__":
    main()
