"""Can the model ladder's comparison be made fair to the model that chose the labels? bench/ladder_default.py found
that cross-validation on the daemon's own picks understates the frozen model that picked them (its CV accuracy on
binary sets and TREC-6 is 0.57-0.65 where its validation accuracy is 0.72-0.92), so the comparison leans toward the newcomer:
on SUBJ the transformer took over at 500 labels and was behind the hybrid at 1,000.

The fix tried here: a random slice of every batch (``--random`` of the 20 picks drawn at random from the pool, the
rest by the default's BreakingTies; the first batch is a random draw anyway) and the comparison scored on the
slice's labels only, while both models still train on every label in their folds. On each dataset's validation
split (carved from its train file; the test files are not read), seed 0, to ``--labels`` labels:

- the hybrid's validation accuracy with and without the slice (what the slice costs in picks),
- at the end, the daemon's 3-fold comparison (daemon.ladder: same folds for both) scored on every label (today's
  rule) and on the slice's labels only (the fix), each with its verdict (lead > max(0.01, standard error)),
- the truth: both models trained on every label, scored on the validation split.

    .venv/bin/python bench/ladder_bias.py --datasets subj,mr --workers 2

One subprocess per dataset, one torch and one BLAS thread each; tests/output/ladder-bias/<dataset>-<seed>.json as
they finish; bench/results/ladder-bias.json (-seed<n> for a seed other than 0) merges them (datasets of earlier
invocations kept).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.ladder_default import result_file, say, single_threaded, spawn  # noqa: E402

WORK = ROOT / "tests" / "output" / "ladder-bias"
DATASETS = ("subj", "mr", "cr", "mpqa", "trec6")
BATCH = 20


def rule(correct_current, correct_candidate, margin: float = 0.01) -> dict:
    """daemon.ladder.compare's verdict on paired held-out correctness."""
    from daemon.ladder import paired_lead

    lead, error, switch = paired_lead(correct_current, correct_candidate, margin)
    return {
        "items": int(len(correct_current)),
        "current": round(float(correct_current.mean()), 4),
        "candidate": round(float(correct_candidate.mean()), 4),
        "lead": round(lead, 4),
        "standard_error": round(error, 4),
        "switch": switch,
    }


def one(name: str, seed: int, labels_wanted: int, random_per_batch: int) -> dict:
    import numpy as np

    from bench.ladder_default import setup
    from daemon.config import ModelKind
    from daemon.ladder import held_out_correct
    from daemon.learner import Learner

    settings, data, gold, learner = setup(name, seed)

    def run(current: Learner, slice_size: int) -> tuple[dict[int, int], set[int], int, float]:
        """The default's loop to ``labels_wanted`` with ``slice_size`` of each batch at random."""
        rng = np.random.default_rng(seed)
        queried = current.initial_batch(BATCH)
        labelled: dict[int, int] = {}
        sliced = set(queried)  # round 0 is a seeded random draw
        round_number = 0
        while True:
            labelled.update({i: gold[i] for i in queried})
            current.fit(labelled, set(), round_number)
            if len(labelled) >= labels_wanted:
                return labelled, sliced, round_number, round(current.evaluate(data.y_test).accuracy, 4)
            round_number += 1
            size = min(BATCH, labels_wanted - len(labelled))
            picked = [int(i) for i in current.query(size - slice_size, round_number).indices]
            free = np.setdiff1d(np.arange(len(gold)), np.array(list(labelled) + picked))
            drawn = [int(i) for i in rng.choice(free, size=min(slice_size, size), replace=False)]
            sliced.update(drawn)
            queried = picked + drawn

    hybrid = learner(settings.model)
    *_, without = run(hybrid.fresh(), 0)
    say(f"{name}: hybrid without a slice {without}")
    current = hybrid.fresh()
    labelled, sliced, rounds, with_slice = run(current, random_per_batch)
    say(f"{name}: hybrid with {random_per_batch} of {BATCH} at random {with_slice}")
    candidate = learner(ModelKind.transformer)
    started = time.perf_counter()
    mine = held_out_correct(current.fresh(), labelled, settings.ladder_folds, rounds)
    theirs = held_out_correct(candidate.fresh(), labelled, settings.ladder_folds, rounds)
    cv_s = round(time.perf_counter() - started, 1)
    on_slice = np.array([i in sliced for i in sorted(labelled)])
    trained = candidate.fresh()
    trained.fit(labelled, set(), rounds)
    truth = {"current": with_slice, "candidate": round(trained.evaluate(data.y_test).accuracy, 4)}
    truth["lead"] = round(truth["candidate"] - truth["current"], 4)
    result = {
        "dataset": name,
        "seed": seed,
        "labels": len(labelled),
        "random_per_batch": random_per_batch,
        "slice_labels": int(on_slice.sum()),
        "hybrid_validation_without_slice": without,
        "hybrid_validation_with_slice": with_slice,
        "every_label": rule(mine, theirs),
        "slice_only": rule(mine[on_slice], theirs[on_slice]),
        "picked_only": rule(mine[~on_slice], theirs[~on_slice]),
        "validation": truth,
        "cv_seconds": cv_s,
    }
    WORK.mkdir(parents=True, exist_ok=True)
    (WORK / f"{name}-{seed}.json").write_text(json.dumps(result, indent=2))
    say(f"{name}: {json.dumps(result)}")
    return result


def merge(seed: int) -> dict:
    """Every finished run of ``seed`` in the work folder, with the datasets of the results file not run again."""
    runs = {}
    for path in sorted(WORK.glob(f"*-{seed}.json")):
        run = json.loads(path.read_text())
        runs[run["dataset"]] = run
    result = result_file("ladder-bias", seed)
    if result.exists():
        for run in json.loads(result.read_text())["runs"]:
            runs.setdefault(run["dataset"], run)
    document = {"seed": seed, "batch": BATCH, "runs": [runs[name] for name in sorted(runs)]}
    result.write_text(json.dumps(document, indent=2))
    return document


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--labels", type=int, default=500)
    parser.add_argument("--random", type=int, default=2, help="picks of each batch of 20 drawn at random")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--one", help="run one dataset in this process (the parent's child)")
    args = parser.parse_args()
    if args.one:
        single_threaded(lambda: one(args.one, args.seed, args.labels, args.random))
        return
    WORK.mkdir(parents=True, exist_ok=True)

    def command(name: str) -> list[str]:
        return [sys.executable, __file__, "--one", name, "--seed", str(args.seed), "--labels", str(args.labels),
                "--random", str(args.random)]  # fmt: skip

    spawn(args.datasets.split(","), args.workers, command, lambda name: WORK / f"{name}-{args.seed}.log")
    say(json.dumps(merge(args.seed)["runs"]))


if __name__ == "__main__":
    main()
