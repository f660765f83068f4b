"""How many labels does a fair model-ladder comparison need? bench/ladder_bias.py found the daemon's comparison
(cross-validation on the frozen model's own picks) biased toward the newcomer, and a random slice of every batch too
noisy to tell the models apart. Here the labels are spent where the two models disagree: ``k`` texts drawn at
random among the unlabelled pool's disagreements (daemon.ladder.draw_probes), each model's prediction fixed before
the label is seen, and daemon.ladder.probe_lead's verdict (the lead among the probes times the disagreements' share
of the pool; a switch needs it over 0.01 and over its standard error) — the unlabelled pool's part alone, and
stratified (daemon.ladder.stratified_lead, the daemon's verdict: with the labels in hand cross-validated, each part
weighted by its share of the pool; a switch needs it over 0.01 and over 1.645 standard errors) where
bench/fine_tune_steps.py --cv saved the cross-validation.

The models are bench/fine_tune_steps.py's (run it first): the frozen hybrid after choosing its labels (1,000 by
default) on each dev set's validation split, and the transformer fine-tuned on those labels per
AL_TRANSFORMER_MIN_STEPS; their predictions on the unlabelled pool and its gold labels are in
tests/output/fine-tune-steps/<dataset>-<seed>-<steps>.npz. For each pair and each ``k``, ``--draws`` draws of the
probes give the chance of a switch and the expected accuracy a verdict forgoes, against the truth: the
candidate's lead on the validation split (the test files are not read).

    .venv/bin/python bench/ladder_probes.py             # seconds; bench/results/ladder-probes.json and .png

Expected accuracy forgone = P(switch) * max(0, -lead) + P(stay) * max(0, lead), with ``lead`` the candidate's
validation lead: 0 for a verdict that is always right; "never switch" forgoes every positive lead, "always switch"
every negative one.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.fine_tune_steps import RESULT as STEPS  # noqa: E402
from bench.fine_tune_steps import WORK as MODELS  # noqa: E402
from bench.ladder_default import RESULTS  # noqa: E402

RESULT = RESULTS / "ladder-probes.json"
SIZES = (10, 20, 40, 80)
MARGIN = 0.01


def forgone(p_switch: float, lead: float) -> float:
    return p_switch * max(0.0, -lead) + (1 - p_switch) * max(0.0, lead)


def pair(path: Path, truth: float, sizes: list[int], draws: int, seed: int) -> dict:
    from daemon.ladder import draw_probes, paired_lead, probe_lead, stratified_lead

    saved = np.load(path)
    cv_path = path.with_name(path.stem + "-cv.npz")
    labelled = None  # the labels in hand cross-validated (bench/fine_tune_steps.py --cv): the pool's other part
    if cv_path.exists():
        cv = np.load(cv_path)
        cv_lead, cv_error, _ = paired_lead(cv["hybrid"], cv["transformer"], 0.0)
        labelled = (cv_lead, cv_error, len(cv["hybrid"]) / (len(cv["hybrid"]) + len(saved["gold"])))
    gold, mine, theirs = saved["gold"], saved["hybrid"], saved["transformer"]
    positions = np.arange(len(gold))
    apart = positions[mine != theirs]
    share = len(apart) / len(gold)
    rng = np.random.default_rng(seed)
    out = {
        "pool_disagreement": round(share, 4),
        "pool_lead": round(float((theirs == gold).mean() - (mine == gold).mean()), 4),
        "validation_lead": truth,
        "never_switch_forgoes": round(forgone(0.0, truth), 4),
        "always_switch_forgoes": round(forgone(1.0, truth), 4),
        "by_probes": [],
    }
    if labelled is not None:
        out["labelled"] = {
            "share": round(labelled[2], 4),
            "cv_lead": round(labelled[0], 4),
            "cv_error": round(labelled[1], 4),
        }
        out["cv_alone_switches"] = bool(labelled[0] > max(MARGIN, labelled[1]))
    for size in sizes:
        leads, switches, whole, whole_switches = [], [], [], []
        for _ in range(draws):
            probes = draw_probes(apart, size, rng)
            lead, error, switch = probe_lead(
                mine[probes] == gold[probes], theirs[probes] == gold[probes], share, MARGIN
            )
            leads.append(lead)
            switches.append(switch)
            if labelled is not None:
                both = stratified_lead((lead, error), labelled[:2], labelled[2], MARGIN)
                whole.append(both[0])
                whole_switches.append(both[2])
        p_switch = float(np.mean(switches))
        row = {
            "probes": size,
            "p_switch": round(p_switch, 3),
            "mean_estimate": round(float(np.mean(leads)), 4),
            "spread": round(float(np.std(leads)), 4),
            "forgoes": round(forgone(p_switch, truth), 4),
        }
        if labelled is not None:
            p_whole = float(np.mean(whole_switches))
            row["stratified"] = {
                "p_switch": round(p_whole, 3),
                "mean_estimate": round(float(np.mean(whole)), 4),
                "spread": round(float(np.std(whole)), 4),
                "forgoes": round(forgone(p_whole, truth), 4),
            }
        out["by_probes"].append(row)
    return out


def plot(document: dict, path: Path) -> None:
    """Chance of a switch against the number of probes, a line per (dataset, seed, steps), its validation lead in
    the legend."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6.4, 3.8), layout="constrained")
    axis = figure.subplots()
    for i, row in enumerate(document["rows"]):
        sizes = [b["probes"] for b in row["by_probes"]]
        style = "-" if row["validation_lead"] > MARGIN else (":" if row["validation_lead"] < 0 else "--")
        axis.plot(sizes, [b["p_switch"] for b in row["by_probes"]], "o" + style, color=f"C{i % 10}",
                  label=f"{row['dataset']} s{row['seed']} {row['min_steps']} steps: lead {row['validation_lead']:+.3f}")  # fmt: skip
    axis.set_xscale("log", base=2)
    axis.set_xlabel("probes (labels among the disagreements)")
    axis.set_ylabel("P(transformer takes over)")
    axis.set_ylim(-0.03, 1.03)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=6, loc="center left", bbox_to_anchor=(1.0, 0.5))
    figure.savefig(path, dpi=90)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)))
    parser.add_argument("--draws", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    rows = []
    for run in json.loads(STEPS.read_text())["runs"]:
        for fit in run["fits"]:
            path = MODELS / f"{run['dataset']}-{run['seed']}-{fit['min_steps']}.npz"
            if not path.exists():
                print(f"skipped (no {path.name}: run bench/fine_tune_steps.py)", file=sys.stderr)
                continue
            truth = round(fit["accuracy"] - run["hybrid"], 4)
            head = {
                "dataset": run["dataset"],
                "seed": run["seed"],
                "labels": run["labels"],
                "min_steps": fit["min_steps"],
            }
            rows.append(head | pair(path, truth, sizes, args.draws, args.seed))
    document = {"margin": MARGIN, "draws": args.draws, "rows": rows}
    RESULT.write_text(json.dumps(document, indent=2))
    plot(document, RESULT.with_suffix(".png"))
    print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
