"""How long should the transformer fine-tune once labels are many? AL_TRANSFORMER_MIN_STEPS=170 was chosen at 200
and 500 random labels (bench/fine_tune_gain.py --min-steps): it gives 15 epochs at 200 labels but only the 3 of
AL_TRANSFORMER_EPOCHS from about 1,000 labels on. Here the default (hybrid + BreakingTies) picks ``--labels`` labels
on each dev set's validation split (carved from its train file; the test files are not read), and the transformer
is fine-tuned on those picks once per ``--steps`` value (AL_TRANSFORMER_MIN_STEPS; every other setting the
default), scored on the validation split beside the hybrid.

    .venv/bin/python bench/fine_tune_steps.py                       # trec6, subj, mr; seeds 0-1; 170 and 510 steps
    .venv/bin/python bench/fine_tune_steps.py --datasets cr --seeds 0 --steps 170,340,510
    .venv/bin/python bench/fine_tune_steps.py --datasets trec6,subj --seeds 0 --cv   # + 3-fold CV of both

With ``--cv`` both models are also cross-validated on the labels in hand, as the daemon's ladder does (3 folds:
3 more fine-tunes per step count); fits an earlier invocation made are kept and only cross-validated.

Each (dataset, seed) runs in its own subprocess (``--workers`` at once, one torch and one BLAS thread each) and
writes tests/output/fine-tune-steps/<dataset>-<seed>.json after every fine-tuning; the parent merges every finished
one there (earlier invocations' too) into bench/results/fine-tune-steps.json and plots its .png. The transformer's
fine-tuning seed is the run's seed, so seeds vary both the picks and the fine-tuning. ``--out NAME`` keeps a
re-measurement apart (tests/output/NAME/, bench/results/NAME.json), e.g. after a change to the fine-tuning:

    .venv/bin/python bench/fine_tune_steps.py --datasets trec6 --seeds 0 --steps 170 --out fine-tune-steps-selection
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.ladder_default import BATCH, RESULTS, default_rounds, say, single_threaded, spawn  # noqa: E402

WORK = ROOT / "tests" / "output" / "fine-tune-steps"
RESULT = RESULTS / "fine-tune-steps.json"
DATASETS = ("trec6", "subj", "mr")


def one(name: str, seed: int, labels_wanted: int, steps: list[int], cv: bool = False) -> dict:
    from bench.ladder_default import setup
    from daemon.config import ModelKind
    from daemon.learner import Learner
    from daemon.models import build_features

    settings, data, gold, learner = setup(name, seed)
    out = WORK / f"{name}-{seed}.json"
    result: dict = {"dataset": name, "seed": seed, "pool": len(data.pool), "validation": len(data.test), "fits": []}
    done = {fit["min_steps"]: fit for fit in json.loads(out.read_text())["fits"]} if out.exists() else {}

    hybrid = learner(settings.model)
    *_, (labelled, round_number) = default_rounds(hybrid, gold, labels_wanted)
    result |= {"labels": len(labelled), "hybrid": round(hybrid.evaluate(data.y_test).accuracy, 4)}
    unlabelled = np.setdiff1d(np.arange(len(gold)), np.array(sorted(labelled)))
    truth = np.array(gold)[unlabelled]
    mine = hybrid.pool_proba()[unlabelled].argmax(axis=1)
    say(f"{name} seed {seed}: hybrid {result['hybrid']} at {len(labelled)} labels")
    for min_steps in steps:
        chosen = settings.model_copy(update={"model": ModelKind.transformer, "transformer_min_steps": min_steps})
        features = build_features(chosen, data.pool, data.test, data.y_test, len(data.labels))
        candidate = Learner.from_settings(features, len(data.labels), chosen)
        if min_steps in done:  # fitted by an earlier invocation: only what it lacks (the cross-validation)
            fit = done[min_steps]
            if cv and "cv" not in fit:
                fit["cv"] = cross_validated(hybrid, candidate, labelled, round_number, name, seed, min_steps)
            result["fits"].append(fit)
            out.write_text(json.dumps(result, indent=2))
            continue
        started = time.perf_counter()
        candidate.fit(labelled, set(), round_number)
        seconds = round(time.perf_counter() - started, 1)
        fit = {
            "min_steps": min_steps,
            "epochs": candidate.classifier.num_epochs,
            "accuracy": round(candidate.evaluate(data.y_test).accuracy, 4),
            "fine_tune_s": seconds,
        }
        theirs = candidate.pool_proba()[unlabelled].argmax(axis=1)
        fit |= disagreement(mine, theirs, truth)
        np.savez_compressed(
            WORK / f"{name}-{seed}-{min_steps}.npz", unlabelled=unlabelled, gold=truth, hybrid=mine, transformer=theirs
        )
        if cv:
            fit["cv"] = cross_validated(hybrid, candidate, labelled, round_number, name, seed, min_steps)
        result["fits"].append(fit)
        say(f"{name} seed {seed}: {json.dumps(fit)}")
        out.write_text(json.dumps(result, indent=2))
    return result


def cross_validated(hybrid, candidate, labelled, round_number: int, name: str, seed: int, min_steps: int) -> dict:
    """The daemon's cross-validation of both on the labels in hand (daemon.ladder.held_out_correct, its folds):
    each model's held-out accuracy on the labels the hybrid chose, the lead and its standard error; the per-label
    correctness goes to <dataset>-<seed>-<steps>-cv.npz for bench/ladder_probes.py."""
    from daemon.ladder import held_out_correct, paired_lead

    started = time.perf_counter()
    mine = held_out_correct(hybrid.fresh(), labelled, 3, round_number)
    theirs = held_out_correct(candidate.fresh(), labelled, 3, round_number)
    np.savez_compressed(WORK / f"{name}-{seed}-{min_steps}-cv.npz", hybrid=mine, transformer=theirs)
    lead, error, _ = paired_lead(mine, theirs, 0.0)
    found = {
        "hybrid": round(float(mine.mean()), 4),
        "transformer": round(float(theirs.mean()), 4),
        "lead": round(lead, 4),
        "standard_error": round(error, 4),
        "seconds": round(time.perf_counter() - started, 1),
    }
    say(f"{name} seed {seed}, {min_steps} steps, cross-validated: {json.dumps(found)}")
    return found


def disagreement(mine, theirs, truth) -> dict:
    """Where the two models disagree on the unlabelled pool, and who is right there (the gold labels the bench has):
    the pool share of disagreements, each model's accuracy among them, and the candidate's lead on the whole
    unlabelled pool (the share times the lead among disagreements)."""
    apart = mine != theirs
    among = {
        "hybrid": float((mine[apart] == truth[apart]).mean()),
        "transformer": float((theirs[apart] == truth[apart]).mean()),
    }
    return {
        "pool_disagreement": round(float(apart.mean()), 4),
        "among_disagreements": {k: round(v, 4) for k, v in among.items()},
        "pool_lead": round(float((theirs == truth).mean() - (mine == truth).mean()), 4),
    }


def merge() -> dict:
    """Every (dataset, seed) of the work folder, with the results file's others kept, and their fits of step
    counts the work file does not have (a run still going, or one that cross-validated only some)."""
    runs = {}
    if RESULT.exists():
        runs = {(r["dataset"], r["seed"]): r for r in json.loads(RESULT.read_text())["runs"]}
    for path in sorted(WORK.glob("*.json")):
        run = json.loads(path.read_text())
        earlier = runs.get((run["dataset"], run["seed"]), {"fits": []})
        fits = {fit["min_steps"]: fit for fit in earlier["fits"]} | {fit["min_steps"]: fit for fit in run["fits"]}
        runs[(run["dataset"], run["seed"])] = run | {"fits": [fits[k] for k in sorted(fits)]}
    document = {"batch": BATCH, "strategy": "hybrid + breaking ties", "runs": [runs[k] for k in sorted(runs)]}
    RESULT.write_text(json.dumps(document, indent=2))
    plot(document, RESULT.with_suffix(".png"))
    return document


def plot(document: dict, path: Path) -> None:
    """Validation accuracy against AL_TRANSFORMER_MIN_STEPS per dataset: each seed's transformer, the hybrid dashed."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    names = sorted({run["dataset"] for run in document["runs"]})
    figure = Figure(figsize=(3.6 * len(names), 3.2), layout="constrained")
    axes = figure.subplots(1, len(names), squeeze=False)[0]
    for axis, name in zip(axes, names, strict=True):
        for run in [r for r in document["runs"] if r["dataset"] == name]:
            colour = f"C{run['seed']}"
            fits = sorted(run["fits"], key=lambda fit: fit["min_steps"])
            axis.plot([f["min_steps"] for f in fits], [f["accuracy"] for f in fits], "o-", color=colour,
                      label=f"transformer, seed {run['seed']}")  # fmt: skip
            axis.axhline(
                run["hybrid"], color=colour, linestyle="--", linewidth=0.8, label=f"hybrid, seed {run['seed']}"
            )
        axis.set_title(f"{name}, {document['runs'][0]['labels']} labels", fontsize=10)
        axis.set_xlabel("AL_TRANSFORMER_MIN_STEPS")
        axis.grid(alpha=0.3)
    axes[0].set_ylabel("validation accuracy")
    axes[0].legend(fontsize=7, loc="lower right")
    figure.savefig(path, dpi=90)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--labels", type=int, default=1000)
    parser.add_argument("--steps", default="170,510", help="AL_TRANSFORMER_MIN_STEPS values, comma-separated")
    parser.add_argument("--cv", action="store_true", help="also cross-validate both on the labels (3 folds)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--one", help="dataset:seed, run in this process (the parent's child)")
    parser.add_argument("--out", default="fine-tune-steps", help="name of the work folder and the results file")
    args = parser.parse_args()
    global WORK, RESULT
    WORK, RESULT = WORK.with_name(args.out), RESULTS / f"{args.out}.json"
    steps = [int(s) for s in args.steps.split(",")]
    if args.one:
        name, seed = args.one.split(":")
        single_threaded(lambda: one(name, int(seed), args.labels, steps, args.cv))
        return
    WORK.mkdir(parents=True, exist_ok=True)
    units = [f"{name}:{seed}" for seed in args.seeds.split(",") for name in args.datasets.split(",")]

    def command(unit: str) -> list[str]:
        return (
            [sys.executable, __file__, "--one", unit, "--labels", str(args.labels), "--steps", args.steps]
            + (["--cv"] if args.cv else [])
            + ["--out", args.out]
        )

    spawn(units, args.workers, command, lambda unit: WORK / f"{unit.replace(':', '-')}.log")
    say(json.dumps(merge()["runs"]))


if __name__ == "__main__":
    main()
