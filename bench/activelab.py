"""ActiveLab against random selection with several noisy annotators per text (politeness data).

    .venv/bin/python bench/activelab.py                  # politeness: 25 rounds x 25 annotations, seeds 0-4 (~5 min)
    .venv/bin/python bench/activelab.py --seeds 0 --rounds 5
    .venv/bin/python bench/activelab.py --pool data/trec6/train.jsonl --test data/trec6/test.jsonl --synthetic 20 \
        --out bench/results/activelab-trec6-noisy.json      # one gold label per text: 20 synthetic noisy annotators

In-process simulation through the daemon's own code (no Argilla): ``load_data`` + ``build_features`` (the hybrid
default model) over data/politeness, the daemon's ``Learner`` (its K-fold ``out_of_sample_proba``) and
``daemon.consensus`` (majority vote, CROWDLAB, ActiveLab scores, the lowest-score pick). Each text's recorded
Mechanical Turk labels are handed out one per request in a seeded random order (``AnnotationSource``: a fresh
annotator per request, as cleanlab's ActiveLab example simulates); a text is never asked for more than
``--max-annotations`` labels (the daemon's AL_MAX_ANNOTATIONS) nor more than it has recorded.

Start: ``--initial`` random pool texts with one label each (the same draw for every arm of a seed). Then
``--rounds`` rounds; each asks for ``--batch`` annotations, trains a model on the consensus of every label in hand
and measures its error on the test set, whose labels are the majority of all of a test text's recorded annotators.

Arms (all train on the consensus of the labels in hand):
- ``random``: each annotation goes to a uniformly random candidate, new text or one more label on a labelled one
  (the issue's baseline: random selection with majority vote);
- ``activelab``: ActiveLab scores (5-fold out-of-sample probabilities for labelled texts, the model's for the
  pool), the lowest ``--batch`` get one more label each; majority vote;
- ``activelab_crowdlab``: the same, training on CROWDLAB's consensus (the daemon's AL_CONSENSUS=crowdlab);
- ``uncertainty``: new texts only, breaking ties (the daemon's single-annotator default), majority vote.
With ``--synthetic N`` (a pool with one gold label per text, e.g. TREC-6) the answers come from N synthetic
annotators instead (``NoisyTeam``: error rates spread from ``--noise-low`` to ``--noise-high``) and the test labels
are the gold ones. Writes bench/results/activelab.json (or ``--out``) and the plot beside it.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results"
WORK = ROOT / "tests" / "output" / "bench-activelab"
ARMS = ("random", "activelab", "activelab_crowdlab", "uncertainty")


class NoisyTeam:
    """Synthetic annotators for a pool with one gold label per text (``--synthetic N``): annotator k is wrong with
    probability evenly spaced from ``low`` to ``high``; each request goes to a random annotator who has not
    labelled that text yet, who answers the gold label or, when wrong, another label at random."""

    def __init__(self, gold: dict[str, str], labels: list[str], size: int, low: float, high: float, seed: int):
        self.gold, self.labels = gold, labels
        self.noise = np.linspace(low, high, size)
        self.rng = np.random.default_rng(seed)
        self.asked: dict[str, set[int]] = {}

    def remaining(self, text: str) -> int:
        return len(self.noise) - len(self.asked.get(text, ()))

    def take(self, text: str) -> tuple[str, str]:
        done = self.asked.setdefault(text, set())
        who = int(self.rng.choice([k for k in range(len(self.noise)) if k not in done]))
        done.add(who)
        label = self.gold[text]
        if self.rng.random() < self.noise[who]:
            label = str(self.rng.choice([other for other in self.labels if other != label]))
        return f"synthetic-{who}", label


def load(pool_file: Path, test_file: Path, synthetic: int = 0):
    import logging

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    from daemon.app import load_data
    from daemon.config import Settings
    from daemon.models import build_features
    from daemon.simulate import load_annotations

    settings = Settings(_env_file=None, pool_file=pool_file, test_file=test_file, model="hybrid", cache_dir=WORK)
    data = load_data(settings)
    features = build_features(settings, data.pool, data.test, data.y_test, len(data.labels))
    annotations = None if synthetic else load_annotations(pool_file)
    return settings, data, features, annotations


def run(arm: str, seed: int, args, settings, data, features, annotations) -> dict:
    from daemon.config import QueryStrategyName
    from daemon.consensus import activelab_scores, crowdlab, lowest, majority_labels
    from daemon.learner import Learner
    from daemon.simulate import AnnotationSource

    labels = data.labels
    texts = data.pool.texts
    if annotations is None:
        gold = dict(zip(texts, data.pool.gold, strict=True))
        source = NoisyTeam(gold, labels, args.synthetic, args.noise_low, args.noise_high, seed)
    else:
        source = AnnotationSource({t: annotations[t] for t in texts}, seed=seed)
    strategy = QueryStrategyName.breaking_ties if arm == "uncertainty" else QueryStrategyName.random
    learner = Learner(features, len(labels), strategy, seed=seed)
    rng = np.random.default_rng(seed)
    votes: dict[int, list[tuple[str, int]]] = {}
    asked = 0

    def annotate(index: int) -> None:
        nonlocal asked
        given = votes.get(index, [])
        annotator, label = source.take(texts[index])
        given = [vote for vote in given if vote[0] != annotator]  # one vote per annotator and text
        votes[index] = [*given, (annotator, labels.index(label))]
        asked += 1

    for index in np.random.default_rng(10_000 + seed).choice(len(texts), args.initial, replace=False):
        annotate(int(index))
    rounds = []
    for round_number in range(args.rounds + 1):
        mark = time.perf_counter()
        consensus = majority_labels(votes)
        oos = None
        if arm.startswith("activelab"):
            oos = learner.out_of_sample_proba(consensus, args.folds, round_number)
            if arm == "activelab_crowdlab":
                consensus = crowdlab(votes, oos).labels
        learner.fit(consensus, set(), round_number)
        evaluation = learner.evaluate(data.y_test)
        gold = sum(consensus[i] == labels.index(data.pool.gold[i]) for i in consensus) / len(consensus)
        rounds.append(
            {
                "annotations": asked,
                "texts": len(votes),
                "relabelled": sum(len(v) > 1 for v in votes.values()),
                "error": 1 - evaluation.accuracy,
                "train_label_accuracy": gold,
                "seconds": 0.0,
            }
        )
        if round_number == args.rounds:
            break
        may_relabel = {i for i, v in votes.items() if len(v) < args.max_annotations and source.remaining(texts[i]) > 0}
        unlabelled = np.setdiff1d(np.arange(len(texts)), np.fromiter(votes, dtype=np.int64))
        if arm == "random":
            candidates = np.concatenate([unlabelled, np.array(sorted(may_relabel), dtype=np.int64)])
            picks = [int(i) for i in rng.choice(candidates, args.batch, replace=False)]
        elif arm == "uncertainty":
            picks = learner.query(args.batch, round_number).indices
        else:
            proba = learner.pool_proba()[unlabelled]
            labelled_scores, pool_scores = activelab_scores({i: votes[i] for i in sorted(votes)}, oos, proba)
            picks = [p.index for p in lowest(labelled_scores, unlabelled, pool_scores, args.batch, may_relabel)]
        for index in picks:
            annotate(index)
        rounds[-1]["seconds"] = round(time.perf_counter() - mark, 3)
    return {"arm": arm, "seed": seed, "rounds": rounds}


def summarise(runs: list[dict]) -> dict:
    by_arm: dict[str, list[dict]] = {}
    for item in runs:
        by_arm.setdefault(item["arm"], []).append(item)
    summary = {}
    for arm, group in by_arm.items():
        errors = np.array([[r["error"] for r in item["rounds"]] for item in group])
        quality = np.array([[r["train_label_accuracy"] for r in item["rounds"]] for item in group])
        summary[arm] = {
            "seeds": len(group),
            "annotations": [r["annotations"] for r in group[0]["rounds"]],
            "error_mean": errors.mean(axis=0).round(4).tolist(),
            "error_std": (errors.std(axis=0, ddof=1) if len(group) > 1 else 0 * errors[0]).round(4).tolist(),
            "train_label_accuracy_mean": quality.mean(axis=0).round(4).tolist(),
            "relabelled_final_mean": float(np.mean([item["rounds"][-1]["relabelled"] for item in group])),
            "texts_final_mean": float(np.mean([item["rounds"][-1]["texts"] for item in group])),
        }
    return summary


def reductions(summary: dict, baseline: str = "random") -> dict:
    """Per arm: error reduction against the baseline at equal annotations, at the last round and averaged over
    rounds 1..N (round 0 is the shared start)."""
    base = np.array(summary[baseline]["error_mean"])
    found = {}
    for arm, item in summary.items():
        if arm == baseline:
            continue
        errors = np.array(item["error_mean"])
        relative = (base - errors) / base
        found[arm] = {
            "final": round(float(relative[-1]), 4),
            "mean_over_rounds": round(float(relative[1:].mean()), 4),
            "final_error": round(float(errors[-1]), 4),
            "random_final_error": round(float(base[-1]), 4),
        }
    return found


def ceiling_error(data, features) -> float:
    """Test error of the same model trained on every pool text with its reference label (the all-annotator
    majority, or the gold label with synthetic annotators): what this model reaches with the best labels there are."""
    from daemon.config import QueryStrategyName
    from daemon.learner import Learner

    learner = Learner(features, len(data.labels), QueryStrategyName.random)
    learner.fit({i: data.labels.index(g) for i, g in enumerate(data.pool.gold)}, set(), 0)
    return 1 - learner.evaluate(data.y_test).accuracy


def plot(summary: dict, path: Path, meta: dict, ceiling: float | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figure = Figure(figsize=(10, 4.2), layout="constrained")
    left, right = figure.subplots(1, 2)
    for k, (arm, item) in enumerate(summary.items()):
        x = np.array(item["annotations"])
        mean, std = np.array(item["error_mean"]), np.array(item["error_std"])
        left.plot(x, mean, color=f"C{k}", label=f"{arm} (n={item['seeds']})")
        left.fill_between(x, mean - std, mean + std, color=f"C{k}", alpha=0.15, linewidth=0)
        right.plot(x, item["train_label_accuracy_mean"], color=f"C{k}", label=arm)
    synthetic = meta.get("annotators", "recorded ratings") != "recorded ratings"
    reference = "gold label" if synthetic else "all-annotator majority"
    if ceiling is not None:
        left.axhline(ceiling, color="grey", linestyle="--", linewidth=1, label=f"every pool text, its {reference}")
    left.set_xlabel("annotations collected")
    left.set_ylabel("test error")
    left.set_title("test error (mean ± std over seeds)")
    right.set_xlabel("annotations collected")
    right.set_ylabel(f"training labels equal to the {reference}")
    right.set_title("quality of the labels trained on")
    for axis in (left, right):
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    figure.suptitle(
        f"{meta.get('dataset', 'politeness')} ({meta['pool_size']:,} pool / {meta['test_size']:,} test; "
        f"{meta.get('annotators', 'recorded ratings')})\n{meta['rounds']} rounds x {meta['batch']} annotations after "
        f"{meta['initial']} single-labelled texts",
        fontsize=10,
    )
    figure.savefig(path, dpi=90)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pool", type=Path, default=ROOT / "data/politeness/train.jsonl")
    parser.add_argument("--test", type=Path, default=ROOT / "data/politeness/test.jsonl")
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--arms", default=",".join(ARMS))
    parser.add_argument("--rounds", type=int, default=25)
    parser.add_argument("--batch", type=int, default=25)
    parser.add_argument("--initial", type=int, default=500)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--max-annotations", type=int, default=5)
    parser.add_argument("--out", type=Path, default=RESULTS / "activelab.json")
    parser.add_argument(
        "--synthetic", type=int, default=0, help="N synthetic annotators of graded noise instead of recorded ratings"
    )
    parser.add_argument("--noise-low", type=float, default=0.1, help="error rate of the best synthetic annotator")
    parser.add_argument("--noise-high", type=float, default=0.5, help="error rate of the worst synthetic annotator")
    args = parser.parse_args()
    started = time.perf_counter()
    settings, data, features, annotations = load(args.pool, args.test, args.synthetic)
    runs = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        for arm in args.arms.split(","):
            mark = time.perf_counter()
            runs.append(run(arm, seed, args, settings, data, features, annotations))
            last = runs[-1]["rounds"][-1]
            print(
                f"{arm:20s} seed {seed}: error {runs[-1]['rounds'][0]['error']:.3f} -> {last['error']:.3f}, "
                f"{last['texts']} texts, {last['relabelled']} relabelled ({time.perf_counter() - mark:.0f} s)",
                flush=True,
            )
    summary = summarise(runs)
    ceiling = ceiling_error(data, features)
    meta = {
        "pool_size": len(data.pool),
        "test_size": len(data.test),
        "rounds": args.rounds,
        "batch": args.batch,
        "initial": args.initial,
        "folds": args.folds,
        "max_annotations": args.max_annotations,
        "dataset": args.pool.resolve().parent.name,
        "annotators": "recorded ratings"
        if not args.synthetic
        else f"{args.synthetic} synthetic, error rate {args.noise_low}-{args.noise_high}",
        "model": features.name,
    }
    document = {
        "benchmark": "activelab",
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "pool": str(args.pool.resolve().relative_to(ROOT))
        if args.pool.resolve().is_relative_to(ROOT)
        else str(args.pool),
        **meta,
        "wall_seconds": round(time.perf_counter() - started, 1),
        "ceiling_error": round(ceiling, 4),
        "error_reduction_vs_random": reductions(summary) if "random" in summary else {},
        "results": summary,
        "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=1))
    plot(summary, args.out.with_suffix(".png"), meta, ceiling)
    print(json.dumps(document["error_reduction_vs_random"], indent=1))


if __name__ == "__main__":
    main()
