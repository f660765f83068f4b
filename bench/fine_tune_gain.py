"""What fine-tuning is worth on binary data: the frozen hybrid model against the daemon's fine-tuned transformer
trained on the same n random labels (a model ladder's question: when does the slow model overtake the fast one?).

    .venv/bin/python bench/fine_tune_gain.py       # MR and SUBJ, seeds 0-1, n = 200/500/1000: ~35 min on one core
    .venv/bin/python bench/fine_tune_gain.py --min-steps 170 --sizes 200,500   # AL_TRANSFORMER_MIN_STEPS: ~30 min

With ``--min-steps`` the transformer runs with ``AL_TRANSFORMER_MIN_STEPS`` (more epochs while labels are few) and the
results go to bench/results/fine-tune-min-steps.json, each run beside the 3-epoch accuracy fine-tune-gain.json has for
the same dataset, seed and labels. ``--out NAME --before EARLIER`` writes bench/results/NAME.json instead, each run
beside the transformer's accuracy in EARLIER.json for the same dataset, seed and labels (what a change to the
fine-tuning did):

    .venv/bin/python bench/fine_tune_gain.py --min-steps 170 --sizes 200,500 --out fine-tune-selection \
        --before fine-tune-min-steps    # the epoch kept by held-out accuracy, not loss: ~30 min

One process, torch threads = 1, BLAS = 1 thread. The validation split is carved from each train file by
bench/validation_search.carve (test.jsonl is never read); the transformer is built as the daemon builds it
(``build_features`` + ``Learner.fit``, the configuration's defaults). Label draws are nested: the first n of a
permutation seeded by the seed, the same for both models. Writes bench/results/fine-tune-gain.json after every
run; its work files (the carved JSONL, embeddings, the per-epoch log) go to tests/output/fine-tune-gain/.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "output" / "fine-tune-gain"
RESULT = ROOT / "bench" / "results" / "fine-tune-gain.json"
sys.path.insert(0, str(ROOT))

from bench import validation_search as vs  # noqa: E402

SHARED = Path(os.environ.get("AL_BENCH_DATA", ROOT.parent / "shared" / "data"))
DATASETS = ("mr", "subj")
SEEDS = (0, 1)
SIZES = (200, 500, 1000)
BUDGET_S = 55 * 60
START = time.perf_counter()
log = logging.getLogger("fine-tune-gain")


def say(msg: str) -> None:
    print(f"[{time.perf_counter() - START:7.1f}s] {msg}", flush=True)
    log.info(msg)


def write_split(name: str) -> dict:
    """Hybrid features of the whole (de-duplicated) train file, and the carved pool / validation as JSONL."""
    x, _emb, y, validation, pool, labels = vs.features(SHARED / name)
    from daemon.config import Settings
    from daemon.inputs import load_data

    data = load_data(
        Settings(_env_file=None, pool_file=SHARED / name / "train.jsonl", test_file=None, cache_dir=vs.CACHE)
    )
    texts, ids = data.pool.texts, data.pool.ids
    assert len(texts) == len(y)
    folder = OUT / "data" / name
    folder.mkdir(parents=True, exist_ok=True)
    for fname, idx in (("pool.jsonl", pool), ("validation.jsonl", validation)):
        with open(folder / fname, "w") as fh:
            for i in idx:
                fh.write(json.dumps({"id": ids[i], "text": texts[i], "label": labels[y[i]]}) + "\n")
    return {"x": x, "y": y, "validation": validation, "pool": pool, "labels": labels, "folder": folder}


def hybrid_acc(split: dict, rows: np.ndarray, seed: int) -> float:
    x, y = split["x"], split["y"]
    fitted = vs.model(100.0, seed).fit(x[rows], y[rows])
    return float((fitted.predict(x[split["validation"]]) == y[split["validation"]]).mean())


def transformer_run(split: dict, seed: int, picked: np.ndarray, min_steps: int = 0) -> dict:
    from daemon.config import Settings
    from daemon.inputs import load_data
    from daemon.learner import Learner
    from daemon.models import build_features

    settings = Settings(
        _env_file=None,
        pool_file=split["folder"] / "pool.jsonl",
        test_file=split["folder"] / "validation.jsonl",
        model="transformer",
        cache_dir=vs.CACHE,
        seed=seed,
        transformer_min_steps=min_steps,
    )
    data = load_data(settings)
    assert len(data.pool) == len(split["pool"]) and len(data.test) == len(split["validation"])
    gold = [data.labels.index(label) for label in data.pool.gold]
    t0 = time.perf_counter()
    features = build_features(settings, data.pool, data.test, data.y_test, len(data.labels))
    learner = Learner.from_settings(features, len(data.labels), settings)
    build_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    trained = learner.fit({int(i): gold[int(i)] for i in picked}, set(), 0)
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    ev = learner.evaluate(data.y_test)
    eval_s = time.perf_counter() - t0
    pred = learner.classifier.predict(features.test)
    return {
        "trained": trained,
        "accuracy": ev.accuracy,
        "macro_f1": ev.macro_f1,
        "fine_tune_s": round(fit_s, 1),
        "predict_validation_s": round(eval_s, 1),
        "build_s": round(build_s, 1),
        "predicted_share_per_class": np.bincount(pred, minlength=len(data.labels)).tolist(),
        "labels": data.labels,
        "epochs": learner.classifier.num_epochs,
        "kept": getattr(learner.classifier, "kept", None),  # the epoch small-text's model selection kept
    }


def transformer_accuracy(document: dict, name: str, seed: int, n: int) -> float | None:
    """The transformer's accuracy in an earlier result for the same dataset, seed and label count (None: not there)."""
    same = [r for r in document["runs"] if (r["dataset"], r["seed"], r["n"]) == (name, seed, n)]
    return same[0]["transformer"].get("accuracy") if same else None


def plot(results: dict, path: Path) -> None:
    """Validation accuracy against labels, per dataset: hybrid and transformer (mean over the seeds)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    names = list(results["datasets"])
    figure = Figure(figsize=(4.2 * len(names), 3.4), layout="constrained")
    axes = figure.subplots(1, len(names), squeeze=False)[0]
    for axis, name in zip(axes, names, strict=True):
        runs = [r for r in results["runs"] if r["dataset"] == name and "accuracy" in r["transformer"]]
        sizes = sorted({r["n"] for r in runs})
        series = [("hybrid", "hybrid (frozen)", "C0"), ("transformer", "transformer (fine-tuned)", "C3")]
        if results.get("min_steps"):
            series[1] = ("transformer", f"transformer, min {results['min_steps']} steps", "C3")
            series.append(("three_epochs_acc", "transformer, 3 epochs", "C1"))
        if results.get("before"):
            series[-1] = ("before_acc", f"transformer as in {results['before']}", "C1")
        for key, label, colour in series:
            at = {n: [run for run in runs if run["n"] == n and run.get(key, True) is not None] for n in sizes}
            value = {
                "hybrid": lambda r: r["hybrid_acc"],
                "transformer": lambda r: r["transformer"]["accuracy"],
                "three_epochs_acc": lambda r: r["three_epochs_acc"],
                "before_acc": lambda r: r["before_acc"],
            }[key]
            shown = [n for n in sizes if at[n]]
            axis.plot(shown, [np.mean([value(r) for r in at[n]]) for n in shown], "o-", color=colour, label=label)
        axis.axhline(results["datasets"][name]["hybrid_full_pool_acc"], color="grey", linestyle=":", linewidth=0.8)
        axis.set_title(f"{name} (dotted: hybrid on the full pool)", fontsize=10)
        axis.set_xlabel("random labels")
        axis.grid(alpha=0.3)
    axes[0].set_ylabel("validation accuracy")
    axes[0].legend(fontsize=8, loc="lower right")
    figure.savefig(path, dpi=90)


def main(args: argparse.Namespace) -> None:
    import torch

    from daemon.config import Settings

    d = Settings(_env_file=None)
    result_path = RESULT if not args.min_steps else RESULT.with_name("fine-tune-min-steps.json")
    baseline = json.loads(RESULT.read_text()) if args.min_steps else None
    before = json.loads(RESULT.with_name(f"{args.before}.json").read_text()) if args.before else None
    if args.out:
        result_path = RESULT.with_name(f"{args.out}.json")
    results: dict = {
        "transformer_defaults": {
            "epochs": d.transformer_epochs,
            "lr": d.transformer_lr,
            "weight_decay": d.transformer_weight_decay,
            "batch_size": d.transformer_batch_size,
            "max_length": d.transformer_max_length,
            "class_weight": "balanced",
            "small_text": "validation_set_size 0.1 of the labels, model selection on",
        },
        "torch_threads": torch.get_num_threads(),
        "min_steps": args.min_steps,
        "before": args.before,
        "datasets": {},
        "runs": [],
        "skipped": [],
    }

    def save() -> None:
        results["elapsed_s"] = round(time.perf_counter() - START, 1)
        result_path.write_text(json.dumps(results, indent=2))

    splits = {}
    datasets, seeds, sizes = args.datasets.split(","), [int(s) for s in args.seeds.split(",")], args.sizes
    for name in datasets:
        split = write_split(name)
        splits[name] = split
        t0 = time.perf_counter()
        full = hybrid_acc(split, split["pool"], 0)
        results["datasets"][name] = {
            "pool": len(split["pool"]),
            "validation": len(split["validation"]),
            "labels": split["labels"],
            "hybrid_full_pool_acc": full,
            "hybrid_full_pool_fit_s": round(time.perf_counter() - t0, 1),
        }
        say(f"{name}: pool {len(split['pool'])}, validation {len(split['validation'])}, hybrid full pool {full:.4f}")
        save()

    # nested random draws: the first n of a seeded permutation of pool positions
    orders = {
        (name, seed): np.random.default_rng(seed).permutation(len(splits[name]["pool"]))
        for name in datasets
        for seed in seeds
    }
    plan = [(name, seed, n) for n in sizes for seed in seeds for name in datasets]
    for name, seed, n in plan:
        split = splits[name]
        if n >= 1000:
            prev = [r for r in results["runs"] if r["dataset"] == name and r["n"] == 500]
            estimate = (
                2.2 * max(r["transformer"]["fine_tune_s"] + r["transformer"]["predict_validation_s"] for r in prev) + 30
            )
            if time.perf_counter() - START + estimate > BUDGET_S:
                results["skipped"].append({"dataset": name, "seed": seed, "n": n, "estimate_s": round(estimate)})
                say(f"skip {name} seed {seed} n {n}: estimate {estimate:.0f}s over budget")
                save()
                continue
        picked = orders[(name, seed)][:n]
        rows = split["pool"][picked]
        run = {
            "dataset": name,
            "seed": seed,
            "n": n,
            "label_counts": np.bincount(split["y"][rows], minlength=len(split["labels"])).tolist(),
        }
        t0 = time.perf_counter()
        run["hybrid_acc"] = hybrid_acc(split, rows, seed)
        run["hybrid_fit_s"] = round(time.perf_counter() - t0, 2)
        try:
            run["transformer"] = transformer_run(split, seed, picked, args.min_steps)
        except Exception as exc:  # noqa: BLE001
            log.exception("transformer failed")
            run["transformer"] = {"error": repr(exc)}
        # the same labels fine-tuned for 3 epochs (--min-steps), and as the earlier result --before was
        for key, earlier in (("three_epochs_acc", baseline), ("before_acc", before)):
            if earlier is not None:
                run[key] = transformer_accuracy(earlier, name, seed, n)
        results["runs"].append(run)
        t = run["transformer"]
        say(
            f"{name} seed {seed} n {n}: hybrid {run['hybrid_acc']:.4f}  transformer "
            f"{t.get('accuracy', float('nan')):.4f}  fine-tune {t.get('fine_tune_s')}s  pred {t.get('predicted_share_per_class')}"
        )
        save()
    plot(results, result_path.with_suffix(".png"))
    say("done")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--seeds", default=",".join(map(str, SEEDS)))
    parser.add_argument("--sizes", type=lambda v: [int(n) for n in v.split(",")], default=list(SIZES))
    parser.add_argument("--min-steps", type=int, default=0, help="AL_TRANSFORMER_MIN_STEPS for the transformer")
    parser.add_argument("--out", help="write bench/results/OUT.json (and .png) instead")
    parser.add_argument("--before", help="an earlier result's name: its transformer accuracy beside each run")
    arguments = parser.parse_args()
    if arguments.before and not RESULT.with_name(f"{arguments.before}.json").exists():
        parser.error(f"--before {arguments.before}: no {RESULT.with_name(f'{arguments.before}.json')}")
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = "1"
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)
    OUT.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(
        level=logging.INFO, filename=OUT / "probe.log", format="%(asctime)s %(name)s %(levelname)s %(message)s"
    )
    with threadpool_limits(limits=1):
        main(arguments)
