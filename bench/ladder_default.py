"""Should the model ladder be on by default? The default (hybrid + BreakingTies) runs to 1,000 labels on the dev
sets' validation splits (the binary sets and TREC-6), and at each of the ladder's due points (AL_LADDER_AFTER=500,
then 1.5-fold) the daemon's own comparison of the hybrid with the fine-tuned transformer (AL_TRANSFORMER_MIN_STEPS
as configured) is made and its verdict recorded, by either way of AL_LADDER_COMPARE:

- ``--compare probes`` (the daemon's default): daemon.ladder.draw trains both on the labels in hand and draws
  AL_LADDER_PROBES texts among their disagreements on the unlabelled pool; those lead the next batches (the
  query's picks fill the rest, as Daemon.with_probes does), and once they are labelled daemon.ladder.probe_verdict
  decides (probes for the unlabelled part, 3-fold cross-validation for the labels in hand). After a take-over the
  comparison goes on with the hybrid as the candidate (the way back). The probes count as labels, as in the
  daemon. Idealised, stated: the probes go into the very next batch (the daemon's draw takes minutes, during which
  batches go on);
- ``--compare cv``: daemon.ladder.compare, 3-fold cross-validation on the labels in hand alone (same folds); the
  verdict at once, the ladder climbed once.

    .venv/bin/python bench/ladder_default.py                    # mr, subj, cr, mpqa, trec6; seed 0; probes
    .venv/bin/python bench/ladder_default.py --datasets mr --workers 1 --compare cv
    .venv/bin/python bench/ladder_default.py --split test --datasets cr,mr   # report: train file -> test file

Each verdict's labels are also used to fine-tune the transformer on all of them and score both models on the
validation split (what the switch would have served; the daemon trains the candidate on every label when it takes
over). At 1,000 labels both models are scored again on the same labels. A proxy, stated: after a switch the daemon's
batches would be the transformer's picks; here the hybrid keeps choosing (a fine-tune per round of 20 labels costs
minutes on this CPU). With the default ``--split validation`` the test files are never read: the validation split is
carved from each train file by bench/validation_search.carve (as bench/fine_tune_gain.py does). ``--split test``
reports what the default serves with the ladder on, issue 22's way: the whole train file is the pool, the test file
is scored (nothing is chosen from it); results in ladder-default-test.json/.png.

One subprocess per dataset (``--workers`` at once), one torch thread and one BLAS thread each; each writes
tests/output/ladder-default/<dataset>-<seed>[-probes][-test].json as it goes; the parent merges every finished one
of the split and way there (earlier invocations' too) into bench/results/ladder-default[-probes][-test].json
(-seed<n> for a seed other than 0) and plots its .png; datasets already in that file and not run again are kept.
A probes merge also writes ladder-default-probes[-test]-seeds.json: every seed's runs side by side (across_seeds).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
WORK = ROOT / "tests" / "output" / "ladder-default"
RESULTS = ROOT / "bench" / "results"
SPLITS = ("validation", "test")
COMPARES = ("probes", "cv")
DATASETS = ("mr", "subj", "cr", "mpqa", "trec6")
BATCH = 20
START = time.perf_counter()


def say(message: str) -> None:
    print(f"[{time.perf_counter() - START:7.1f}s] {message}", flush=True)


def suffix(split: str, compare: str = "cv") -> str:
    return ("" if compare == "cv" else f"-{compare}") + ("" if split == "validation" else f"-{split}")


def result_file(name: str, seed: int, suffix: str = "") -> Path:
    """bench/results/<name><suffix>.json for seed 0 (the README's), <name><suffix>-seed<n>.json for another."""
    return RESULTS / f"{name}{suffix}{'' if seed == 0 else f'-seed{seed}'}.json"


def setup(name: str, seed: int, split: str = "validation", **overrides):
    """The daemon's settings and data for one dev set (its validation split carved from the train file, or the
    whole train file and the test file), the pool's gold class indices, and a learner factory by model kind."""
    from bench import fine_tune_gain, validation_search
    from daemon.config import ModelKind, Settings
    from daemon.inputs import load_data
    from daemon.learner import Learner
    from daemon.models import build_features

    if split == "validation":
        carved = fine_tune_gain.write_split(name)
        pool_file, test_file = carved["folder"] / "pool.jsonl", carved["folder"] / "validation.jsonl"
    else:
        pool_file, test_file = fine_tune_gain.SHARED / name / "train.jsonl", fine_tune_gain.SHARED / name / "test.jsonl"
    settings = Settings(
        _env_file=None,
        pool_file=pool_file,
        test_file=test_file,
        cache_dir=validation_search.CACHE,
        seed=seed,
        **overrides,
    )
    data = load_data(settings)
    gold = [data.labels.index(label) for label in data.pool.gold]

    def learner(model: ModelKind) -> Learner:
        chosen = settings.using(model)
        features = build_features(chosen, data.pool, data.test, data.y_test, len(data.labels))
        return Learner.from_settings(features, len(data.labels), chosen)

    return settings, data, gold, learner


def default_rounds(model, gold: list[int], labels_wanted: int):
    """The default's loop as the daemon runs it, the annotator's labels being the gold ones: a seeded random first
    batch of 20, then ``model``'s query, each round trained on every label in hand; yields ``(labelled,
    round_number)`` after each round's fit, the last at ``labels_wanted`` labels."""
    queried = model.initial_batch(BATCH)
    labelled: dict[int, int] = {}
    round_number = 0
    while True:
        labelled.update({i: gold[i] for i in queried})
        model.fit(labelled, set(), round_number)
        yield labelled, round_number
        if len(labelled) >= labels_wanted:
            return
        round_number += 1
        queried = [int(i) for i in model.query(min(BATCH, labels_wanted - len(labelled)), round_number).indices]


def record(out: Path, name: str, settings, data, split: str, compare: str = "cv") -> tuple[dict, Callable[[], None]]:
    """A run's result as it starts (its settings; the curve and the verdicts to come) and a function writing it to
    ``out`` with the seconds so far."""
    result: dict = {
        "dataset": name,
        "seed": settings.seed,
        "split": split,
        "compare": compare,
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
    if compare == "probes":
        result["probes"] = settings.ladder_probes

    def save() -> None:
        result["seconds"] = round(time.perf_counter() - START, 1)
        out.write_text(json.dumps(result, indent=2))

    return result, save


def fit_and_score(model, labelled: dict[int, int], round_number: int, y_test) -> tuple[float, float]:
    """``model`` trained on ``labelled``: its accuracy on the split scored, and the seconds the fit took."""
    started = time.perf_counter()
    model.fit(labelled, set(), round_number)
    return round(model.evaluate(y_test).accuracy, 4), round(time.perf_counter() - started, 1)


def one(name: str, seed: int, max_labels: int, after: int | None = None, split: str = "validation") -> dict:
    """The default to ``max_labels`` on one dev set (its validation split carved from the train file, or the whole
    train file scored on the test file), the ladder's verdicts on the way."""
    import numpy as np

    from daemon.config import ModelKind
    from daemon.ladder import compare, due

    settings, data, gold, learner = setup(name, seed, split, **({"ladder_after": after} if after else {}))
    result, save = record(WORK / f"{name}-{seed}{suffix(split)}.json", name, settings, data, split)
    current = learner(settings.model)
    candidate = learner(ModelKind.transformer)
    labelled: dict[int, int] = {}
    round_number = 0
    for labelled, round_number in default_rounds(current, gold, max_labels):
        accuracy = round(current.evaluate(data.y_test).accuracy, 4)
        result["curve"].append({"labels": len(labelled), "accuracy": accuracy})
        taken = any(v["switch"] for v in result["verdicts"])
        if not taken and due(len(labelled), settings.ladder_after, [v["labels"] for v in result["verdicts"]]):
            say(f"{name}: comparing at {len(labelled)} labels")
            verdict = compare(
                current.fresh(), candidate.fresh(), labelled, folds=settings.ladder_folds, round_number=round_number
            ).model_dump()
            verdict["hybrid_validation"] = accuracy
            verdict["transformer_validation"], verdict["fine_tune_s"] = fit_and_score(
                candidate.fresh(), labelled, round_number, data.y_test
            )
            result["verdicts"].append(verdict)
            say(f"{name}: {verdict['reason']}; validation {accuracy} vs {verdict['transformer_validation']}")
        save()
    result["at_end"] = {"labels": len(labelled), "hybrid_validation": result["curve"][-1]["accuracy"]}
    result["at_end"]["transformer_validation"], result["at_end"]["fine_tune_s"] = fit_and_score(
        candidate.fresh(), labelled, round_number, data.y_test
    )
    result["label_counts"] = np.bincount([labelled[i] for i in labelled], minlength=len(data.labels)).tolist()
    save()
    say(f"{name}: at {len(labelled)} labels {result['at_end']}")
    return result


def by_probes(name: str, seed: int, max_labels: int, after: int | None = None, split: str = "validation") -> dict:
    """The default to ``max_labels`` on one dev set with the ladder comparing by probes: the draw at each due point
    (both models trained on the labels in hand and scored on the validation split), the probes leading the next
    batches, the verdict once they are labelled (and, on a switch, the new model trained on every label and
    scored); the model in use is compared with the other one from then on."""
    import numpy as np

    from daemon.config import ModelKind
    from daemon.ladder import draw, due, probe_verdict

    settings, data, gold, learner = setup(name, seed, split, **({"ladder_after": after} if after else {}))
    result, save = record(WORK / f"{name}-{seed}{suffix(split, 'probes')}.json", name, settings, data, split, "probes")
    rungs = {settings.model: learner(settings.model), ModelKind.transformer: learner(ModelKind.transformer)}
    hybrid, in_use = rungs[settings.model], settings.model
    queried = hybrid.initial_batch(BATCH)
    labelled: dict[int, int] = {}
    round_number, waiting, pending, drawn = 0, [], None, {}
    while True:
        labelled.update({i: gold[i] for i in queried})
        hybrid.fit(labelled, set(), round_number)
        accuracy = round(hybrid.evaluate(data.y_test).accuracy, 4)
        result["curve"].append({"labels": len(labelled), "accuracy": accuracy})
        if pending is not None and set(pending.indices) <= labelled.keys():
            verdict = probe_verdict(pending, labelled).model_dump() | drawn
            verdict["labels_at_verdict"] = len(labelled)
            if verdict["switch"]:
                in_use = ModelKind(pending.candidate)
                if in_use is ModelKind.transformer:  # the daemon trains it on every label (the probes' too)
                    verdict["taking_over_validation"], verdict["fine_tune_s"] = fit_and_score(
                        rungs[in_use].fresh(), labelled, round_number, data.y_test
                    )
            result["verdicts"].append(verdict)
            pending = None
            say(f"{name}: {verdict['reason']}")
        elif pending is None and due(len(labelled), settings.ladder_after, [v["labels"] for v in result["verdicts"]]):
            say(f"{name}: drawing probes at {len(labelled)} labels ({in_use.value} in use)")
            other = ModelKind.transformer if in_use is settings.model else settings.model
            current, candidate = rungs[in_use].fresh(), rungs[other].fresh()
            pending = draw(
                current,
                candidate,
                labelled,
                set(),
                set(),
                (in_use, other),
                folds=settings.ladder_folds,
                size=settings.ladder_probes,
                seed=seed,
                round_number=round_number,
            )
            both = {in_use: current, other: candidate}  # each trained on the labels in hand by the draw
            drawn = {
                "hybrid_validation": accuracy,
                "transformer_validation": round(both[ModelKind.transformer].evaluate(data.y_test).accuracy, 4),
                "disagreements": pending.disagreements,
            }
            waiting = list(pending.indices)
            say(f"{name}: {pending.disagreements} disagreements ({pending.share:.1%}), {len(waiting)} probes drawn "
                f"in {pending.seconds:.0f} s; validation hybrid {accuracy}, transformer {drawn['transformer_validation']}")  # fmt: skip
            if not waiting:  # they agree everywhere: the labels in hand decide at once
                result["verdicts"].append(probe_verdict(pending, {}).model_dump() | drawn)
                in_use = other if result["verdicts"][-1]["switch"] else in_use
                pending = None
        save()
        if len(labelled) >= max_labels:
            break
        round_number += 1
        want = min(BATCH, max_labels - len(labelled))
        probes, waiting = waiting[:want], waiting[want:]
        picks = [int(i) for i in hybrid.query(want, round_number).indices if int(i) not in probes]
        queried = probes + picks[: want - len(probes)]
    result["at_end"] = {"labels": len(labelled), "hybrid_validation": result["curve"][-1]["accuracy"]}
    result["at_end"]["transformer_validation"], result["at_end"]["fine_tune_s"] = fit_and_score(
        rungs[ModelKind.transformer].fresh(), labelled, round_number, data.y_test
    )
    result["at_end"]["in_use"] = in_use.value
    result["label_counts"] = np.bincount([labelled[i] for i in labelled], minlength=len(data.labels)).tolist()
    save()
    say(f"{name}: at {len(labelled)} labels {result['at_end']}")
    return result


def served(run: dict, errors: float | None = None) -> dict:
    """What a daemon with the ladder on would serve at the end: the transformer once a verdict switched (with
    probes: the model in use at the end, the way back taken into account). ``errors``: replay a probes run's
    verdicts with a switch on a lead over 0.01 and over that many standard errors instead of the rule it ran with
    (exact under this bench's proxy: the hybrid chooses every batch and a draw is the same whichever model is in
    use, so the labels, the probes and the estimates do not depend on the verdicts; only the sign of the lead
    does)."""
    from daemon.ladder import takes_over

    end = run["at_end"]
    if errors is None:
        switches = [v for v in run["verdicts"] if v["switch"]]
        on = end.get("in_use", "transformer" if switches else run["model"]) == "transformer"
        switched_at = switches[-1]["labels"] if on else None
    else:
        on, switched_at = False, None
        for v in run["verdicts"]:
            toward = v["candidate"].startswith("transformer")  # the lead is the candidate's
            transformer_lead = v["estimated_lead"] if toward else -v["estimated_lead"]
            lead = -transformer_lead if on else transformer_lead  # the lead of the model not in use
            if takes_over(lead, v["standard_error"], v["margin"], errors):
                on, switched_at = not on, v["labels"] if not on else None
    return {
        "switched_at": switched_at,
        "accuracy": end["transformer_validation"] if on else end["hybrid_validation"],
        "gain": round(end["transformer_validation"] - end["hybrid_validation"], 4) if on else 0.0,
    }


def plot(document: dict, path: Path) -> None:
    """Validation accuracy against labels per dataset: the hybrid's curve, the transformer on the same labels at
    each verdict and at the end (filled: the transformer is in use after that verdict, by a switch to it or a way
    back that kept it)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    runs = document["runs"]
    figure = Figure(figsize=(3.6 * len(runs), 3.2), layout="constrained")
    axes = figure.subplots(1, len(runs), squeeze=False)[0]
    for axis, run in zip(axes, runs, strict=True):
        axis.plot([p["labels"] for p in run["curve"]], [p["accuracy"] for p in run["curve"]], "-", label="hybrid")
        points = [
            (v["labels"], v["transformer_validation"], v["switch"] == v["candidate"].startswith("transformer"))
            for v in run["verdicts"]
        ]
        end = run["at_end"]
        points.append((end["labels"], end["transformer_validation"], end.get("in_use") == "transformer"))
        for labels, accuracy, in_use in points:
            axis.plot(labels, accuracy, "o", color="C3", fillstyle="full" if in_use else "none")
        axis.set_title(run["dataset"], fontsize=10)
        axis.set_xlabel("labels")
        axis.grid(alpha=0.3)
    axes[0].set_ylabel(f"{document.get('split', 'validation')} accuracy")
    axes[0].plot([], [], "o", color="C3", fillstyle="none", label="transformer, same labels")
    axes[0].plot([], [], "o", color="C3", label="transformer, in use")
    axes[0].legend(fontsize=8, loc="lower right")
    figure.savefig(path, dpi=90)


def merge(seed: int, split: str = "validation", compare: str = "cv") -> dict:
    """Every finished run of ``seed``, ``split`` and ``compare`` in the work folder (earlier invocations' datasets
    too), into one result."""
    runs = [json.loads(path.read_text()) for path in sorted(WORK.glob(f"*-{seed}{suffix(split, compare)}.json"))]
    runs = [
        run
        for run in runs
        if "at_end" in run and run.get("split", "validation") == split and run.get("compare", "cv") == compare
    ]
    result = result_file("ladder-default", seed, suffix(split, compare))
    if result.exists():  # datasets run before (and not again here) stay: their work files may be gone
        fresh = {run["dataset"] for run in runs}
        runs += [run for run in json.loads(result.read_text())["runs"] if run["dataset"] not in fresh]
    runs.sort(key=lambda run: run["dataset"])
    document = {
        "seed": seed,
        "split": split,
        "compare": compare,
        "batch": BATCH,
        "runs": runs,
        "served": {r["dataset"]: served(r) for r in runs},
    }
    if compare == "probes":  # the verdicts replayed with a switch on one standard error (the cv way's rule)
        document["served_one_error"] = {r["dataset"]: served(r, 1.0) for r in runs}
    if split != "validation":
        document["note"] = f"the *_validation fields hold {split}-file accuracies (the names are the validation runs')"
    result.write_text(json.dumps(document, indent=2))
    plot(document, result.with_suffix(".png"))
    if compare == "probes":
        across_seeds(split, compare)
    return document


def across_seeds(split: str = "validation", compare: str = "probes") -> dict:
    """Every seed's result of ``split`` and ``compare`` in bench/results, side by side: per dataset and seed both
    models at the end on the same labels and what the ladder serves under each rule (the verdicts replayed, so a
    run made under either rule counts for both), and per rule the mean gain over the hybrid alone, the worst and the
    mean forgone against the better of the two. Written to ladder-default<suffix>-seeds.json."""
    from daemon.ladder import CONFIDENCE

    tail = suffix(split, compare)
    files = [RESULTS / f"ladder-default{tail}.json", *sorted(RESULTS.glob(f"ladder-default{tail}-seed[0-9]*.json"))]
    rules = {"confidence": CONFIDENCE, "one_error": 1.0}
    rows = []
    for path in [path for path in files if path.exists()]:
        document = json.loads(path.read_text())
        for run in document["runs"]:
            end = run["at_end"]
            row = {
                "dataset": run["dataset"],
                "seed": document["seed"],
                "labels": end["labels"],
                "hybrid": end["hybrid_validation"],
                "transformer": end["transformer_validation"],
            }
            rows.append(row | {rule: served(run, errors) for rule, errors in rules.items()})
    rows.sort(key=lambda row: (row["dataset"], row["seed"]))
    summary = {}
    for rule in rules:
        gains = [row[rule]["gain"] for row in rows]
        forgone = [max(row["hybrid"], row["transformer"]) - row[rule]["accuracy"] for row in rows]
        summary[rule] = {
            "mean_gain": round(sum(gains) / len(gains), 4) if rows else None,
            "worst_gain": min(gains, default=None),
            "mean_forgone": round(sum(forgone) / len(forgone), 4) if rows else None,
            "switches": sum(1 for row in rows if row[rule]["switched_at"]),
            "losing_switches": sum(1 for gain in gains if gain < 0),
        }
    document = {
        "split": split,
        "compare": compare,
        "confidence": CONFIDENCE,
        "seeds": sorted({row["seed"] for row in rows}),
        "rows": rows,
        "summary": summary,
    }
    (RESULTS / f"ladder-default{tail}-seeds.json").write_text(json.dumps(document, indent=2))
    return document


def single_threaded(work: Callable[[], object]) -> None:
    """A child's work on one torch thread and one BLAS thread (the parent runs ``--workers`` children at once)."""
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)
    with threadpool_limits(1):
        work()


def spawn(names: list[str], workers: int, command: Callable[[str], list[str]], log: Callable[[str], Path]) -> None:
    """One child per dataset, ``workers`` at a time, each on one thread, its output in ``log(name)``."""
    env = os.environ | {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    pending, running = list(names), []
    while pending or running:
        while pending and len(running) < workers:
            name = pending.pop(0)
            with open(log(name), "w") as out:
                running.append((name, subprocess.Popen(command(name), env=env, stdout=out, stderr=subprocess.STDOUT)))
            say(f"started {name}")
        time.sleep(5)
        for name, process in [r for r in running if r[1].poll() is not None]:
            running.remove((name, process))
            say(f"{name} exited {process.returncode}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-labels", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--after", type=int, help="AL_LADDER_AFTER instead of the default (a quick check)")
    parser.add_argument("--split", choices=SPLITS, default="validation", help="validation (choose) or test (report)")
    parser.add_argument("--compare", choices=COMPARES, default="probes", help="the ladder's way (AL_LADDER_COMPARE)")
    parser.add_argument("--one", help="run one dataset in this process (the parent's child)")
    args = parser.parse_args()
    if args.one:
        run = by_probes if args.compare == "probes" else one
        single_threaded(lambda: run(args.one, args.seed, args.max_labels, args.after, args.split))
        return
    WORK.mkdir(parents=True, exist_ok=True)

    def command(name: str) -> list[str]:
        extra = ["--after", str(args.after)] if args.after else []
        return [sys.executable, __file__, "--one", name, "--seed", str(args.seed), "--split", args.split,
                "--compare", args.compare, "--max-labels", str(args.max_labels), *extra]  # fmt: skip

    spawn(
        args.datasets.split(","),
        args.workers,
        command,
        lambda name: WORK / f"{name}-{args.seed}{suffix(args.split, args.compare)}.log",
    )
    document = merge(args.seed, args.split, args.compare)
    say(json.dumps(document["served"]))


if __name__ == "__main__":
    main()
