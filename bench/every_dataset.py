"""The default (hybrid + breaking_ties) against random sampling on every shared dataset, in one table.

    .venv/bin/python bench/every_dataset.py                        # every single-label folder of the dev sets
    .venv/bin/python bench/every_dataset.py --only mr,subj --seeds 0 --max-labels 200

The dev sets are the folders of ``../shared/data`` (or ``$AL_BENCH_DATA``) that hold ``train.jsonl`` and
``test.jsonl`` with one ``label`` per row (multi-label folders, whose labels are lists, are skipped). For each,
``bench/strategies.py --models hybrid --strategies breaking_ties,random --resume`` writes
``results/strategies-<dataset>.json`` (runs already there with the same settings are kept), then one table is
printed and written to ``results/every-dataset.json`` (a panel per dataset in ``every-dataset.png``): test accuracy of the default and of random at 40, 100, 200 and 500
labels (mean ± std over the seeds), whether the default is ever below random by more than one seed standard
deviation there, and the label saving at 95 % of random's accuracy at the last count (labels each mean curve needs,
interpolated between rounds; ``1 - default / random``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results"
SHARED = Path(os.environ.get("AL_BENCH_DATA", ROOT.parent / "shared" / "data"))
CHECKPOINTS = (40, 100, 200, 500)


def single_label_sets(root: Path) -> list[Path]:
    """The dev-set folders with a train and a test file whose first row has one label (a string)."""
    found = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        train, test = folder / "train.jsonl", folder / "test.jsonl"
        if not (train.exists() and test.exists()):
            continue
        with train.open(encoding="utf-8") as handle:
            first = json.loads(handle.readline())
        if isinstance(first.get("label"), str):
            found.append(folder)
    return found


def row(name: str, document: dict, checkpoints: tuple[int, ...]) -> dict:
    """One dataset's line: accuracies at the checkpoints, the worst shortfall against random, the saving."""
    from bench.strategies import labels_for

    found = document["results"]["hybrid"]
    default, random = found["breaking_ties"], found["random"]

    def at(summary: dict, labels: int, key: str) -> float | None:
        table = dict(zip(summary["labels"], summary[key], strict=True))
        return table.get(labels)

    cells, behind = {}, []
    for n in checkpoints:
        d, r = at(default, n, "accuracy_mean"), at(random, n, "accuracy_mean")
        d_std, r_std = at(default, n, "accuracy_std") or 0.0, at(random, n, "accuracy_std") or 0.0
        cells[n] = {"default": d, "default_std": d_std, "random": r, "random_std": r_std}
        if d is not None and r is not None and r - d > max(d_std, r_std):
            behind.append(n)
    last = max(n for n in checkpoints if cells[n]["random"] is not None)
    level = 0.95 * cells[last]["random"]
    need_default, need_random = labels_for(default, level), labels_for(random, level)
    saving = None if not (need_default and need_random) else 1 - need_default / need_random
    return {"dataset": name, "at": cells, "behind_random_at": behind, "level": level, "saving": saving}


def panels(count: int):
    """A figure with ``count`` small panels, four to a row: (figure, axes)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    columns = min(4, count)
    rows = -(-count // columns)
    figure = Figure(figsize=(3.6 * columns, 3.0 * rows), layout="constrained")
    return figure, figure.subplots(rows, columns, squeeze=False).ravel()


def save_panels(figure, axes, used: int, ylabel: str, title: str, path: Path) -> None:
    """Hide the panels left over, label the axes once, write the PNG."""
    for axis in axes[used:]:
        axis.set_visible(False)
    axes[0].legend(fontsize=7, loc="lower right")
    figure.supxlabel("labels")
    figure.supylabel(ylabel)
    figure.suptitle(title)
    figure.savefig(path, dpi=90)


def plot(document: dict, folders: list[Path], path: Path) -> None:
    """One panel per dataset: the default's and random's mean test accuracy (± std) against labels."""
    from bench.strategies import default_out

    figure, axes = panels(len(folders))
    for axis, folder in zip(axes, folders, strict=False):
        found = json.loads(default_out(folder / "train.jsonl").read_text())["results"]["hybrid"]
        for strategy, name, colour in (("breaking_ties", "default", "C0"), ("random", "random", "C1")):
            summary = found[strategy]
            x, mean, std = (np.array(summary[k], dtype=float) for k in ("labels", "accuracy_mean", "accuracy_std"))
            axis.plot(x, mean, color=colour, label=name, linewidth=1.3)
            axis.fill_between(x, mean - std, mean + std, color=colour, alpha=0.15, linewidth=0)
        axis.set_title(folder.name, fontsize=10)
        axis.grid(alpha=0.3)
    title = f"hybrid + breaking_ties (default) vs random, batch 20, seeds {document['seeds']}"
    save_panels(figure, axes, len(folders), "test accuracy", title, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="comma list of dataset folders (default: every one)")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--max-labels", type=int, default=CHECKPOINTS[-1])
    args = parser.parse_args()
    folders = single_label_sets(SHARED)
    if args.only:
        wanted = args.only.split(",")
        folders = [f for f in folders if f.name in wanted]
        missing = set(wanted) - {f.name for f in folders}
        if missing:
            sys.exit(f"every_dataset.py: no single-label dev set {', '.join(sorted(missing))} under {SHARED}")
    if not folders:
        sys.exit(f"every_dataset.py: no dev sets under {SHARED} (set AL_BENCH_DATA to their folder)")
    from bench.strategies import dataset_name, default_out

    checkpoints = tuple(n for n in CHECKPOINTS if n <= args.max_labels)
    rows = []
    for folder in folders:
        pool = folder / "train.jsonl"
        out = default_out(pool)
        command = [sys.executable, str(ROOT / "bench" / "strategies.py"), "--models", "hybrid", "--resume"]
        command += ["--strategies", "breaking_ties,random", "--seeds", args.seeds, "--max-labels", str(args.max_labels)]
        command += ["--pool", str(pool), "--test", str(folder / "test.jsonl"), "--out", str(out)]
        print(f"{dataset_name(pool)}: {' '.join(command[1:])}", flush=True)
        subprocess.run(command, cwd=ROOT, check=True)
        rows.append(row(dataset_name(pool), json.loads(out.read_text()), checkpoints))
    from bench.tables import every_dataset

    document = {"seeds": args.seeds, "checkpoints": list(checkpoints), "rows": rows}
    target = RESULTS / "every-dataset.json"
    target.write_text(json.dumps(document, indent=1) + "\n")
    plot(document, folders, RESULTS / "every-dataset.png")
    print(every_dataset(json.loads(target.read_text())))
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
