"""Why uncertainty sampling does not help on some data, and what does: measured on validation splits only.

    .venv/bin/python bench/validation_search.py                    # every single-label dev set, 3 seeds (~30 min)
    .venv/bin/python bench/validation_search.py --only mr --seeds 0 --candidates bt,random

For every single-label folder of ``../shared/data`` (or ``$AL_BENCH_DATA``), a validation split is carved from
``train.jsonl`` (seeded: 1,000 texts, or a fifth of a smaller file); the rest is the pool. ``test.jsonl`` is never
read. Features are the hybrid model's, built with the daemon's own functions (``daemon.pool.embed``,
``daemon.models.fit_ngrams``, ``join_features``); the loop is a plain scikit-learn one (as in bench/defaults.py)
so that the regularisation and the query rule can vary: a random first batch of 20, then batches of 20 picked by a
candidate, to 500 labels, validation accuracy after every batch.

Candidates (model: the hybrid's logistic regression with balanced class weights):
- ``random``, ``bt``: random sampling and BreakingTies (smallest margin between the two most probable classes),
  C = 100 (today's default);
- ``random_cv``, ``bt_cv``: C chosen each round by stratified cross-validation on the labels in hand (log loss);
- ``cluster_bt``: the 10 x batch smallest margins, clustered by k-means on the sentence embeddings into one
  cluster per batch slot, the smallest margin of each cluster (uncertainty + diversity, C = 100);
- ``cluster_bt_cv``: the same with C by cross-validation;
- ``committee_bt``: BreakingTies on the mean probabilities of the model and four trained on bootstrap resamples of
  the labels in hand (a committee);
- ``hedge_bt``: 15 of a batch by BreakingTies, 5 at random (a hedge against the first rounds' sampling bias);
- ``density_bt``: information density, (1 - margin) x the text's cosine similarity to the pool's mean embedding
  (against outliers).

Diagnostics (``bt`` and ``random``): per batch, the mean pairwise cosine similarity of the picked texts'
embeddings (redundancy), the share a cross-validated full-pool model gets wrong (ambiguous or mislabelled
texts), the largest class's share (balance); at 100/200/500 labels the expected calibration error on the
validation texts. Per dataset: the full-pool model's validation accuracy (the frozen features' ceiling).

Writes bench/results/validation-search.json and .png (a panel per dataset) and prints a table per dataset.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results"
CACHE = ROOT / "tests" / "output" / "cache"
WORK = ROOT / "tests" / "output" / "validation-search"
SHARED = Path(os.environ.get("AL_BENCH_DATA", ROOT.parent / "shared" / "data"))
BATCH = 20
CANDIDATES = (
    "random",
    "bt",
    "random_cv",
    "bt_cv",
    "cluster_bt",
    "cluster_bt_cv",
    "committee_bt",
    "hedge_bt",
    "density_bt",
)
C_GRID = (1.0, 10.0, 100.0)
CHECKPOINTS = (40, 100, 200, 500)


def carve(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Validation and pool indices of a train file of ``size`` rows (seeded; the same for every candidate)."""
    order = np.random.default_rng(123).permutation(size)
    held = min(1000, size // 5)
    return np.sort(order[:held]), np.sort(order[held:])


def features(folder: Path):
    from daemon.config import Settings
    from daemon.inputs import load_data
    from daemon.models import fit_ngrams, join_features
    from daemon.pool import default_model_path, embed

    settings = Settings(_env_file=None, pool_file=folder / "train.jsonl", test_file=None, cache_dir=CACHE)
    data = load_data(settings)
    texts = data.pool.texts
    y = np.array([data.labels.index(label) for label in data.pool.gold])
    validation, pool = carve(len(texts))
    emb = embed(texts, Path(default_model_path()), settings.cache_path, data.pool.fingerprint)
    vectorizer, _ = fit_ngrams([texts[i] for i in pool])
    x = join_features(emb, vectorizer.transform(texts))
    return x, emb, y, validation, pool, data.labels


def model(c: float, seed: int):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=c, max_iter=1000, solver="newton-cg", class_weight="balanced", random_state=seed)


def choose_c(x, y, seed: int) -> float:
    """The C of the grid with the best cross-validated log loss on the labels in hand (stratified, up to 5 folds)."""
    from sklearn.metrics import log_loss
    from sklearn.model_selection import StratifiedKFold

    counts = np.bincount(y)
    folds = int(min(5, counts[counts > 0].min()))
    if folds < 2:
        return 100.0
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    classes = np.unique(y)
    losses = []
    for c in C_GRID:
        loss = 0.0
        for train, held in splitter.split(np.zeros(len(y)), y):
            fitted = model(c, seed).fit(x[train], y[train])
            proba = np.zeros((len(held), len(classes)))
            proba[:, np.searchsorted(classes, fitted.classes_)] = fitted.predict_proba(x[held])
            loss += log_loss(y[held], proba, labels=classes) * len(held)
        losses.append(loss)
    return C_GRID[int(np.argmin(losses))]


def margins(proba: np.ndarray) -> np.ndarray:
    top = np.partition(proba, -2, axis=1)[:, -2:]
    return np.abs(top[:, 1] - top[:, 0])


def ece(proba: np.ndarray, y: np.ndarray, bins: int = 10) -> float:
    confidence, predicted = proba.max(axis=1), proba.argmax(axis=1)
    edges = np.linspace(0, 1, bins + 1)
    total = 0.0
    for low, high in zip(edges[:-1], edges[1:], strict=True):
        inside = (confidence > low) & (confidence <= high)
        if inside.any():
            total += inside.sum() * abs((predicted[inside] == y[inside]).mean() - confidence[inside].mean())
    return float(total / len(y))


def redundancy(emb: np.ndarray, picked: np.ndarray) -> float:
    rows = emb[picked]
    sims = rows @ rows.T
    n = len(picked)
    return float((sims.sum() - np.trace(sims)) / (n * (n - 1)))


def pick(candidate: str, proba, pool_free: np.ndarray, emb: np.ndarray, rng, seed: int) -> np.ndarray:
    if candidate.startswith("random"):
        return rng.choice(pool_free, BATCH, replace=False)
    m = margins(proba)
    if candidate.startswith(("bt", "committee")):
        return pool_free[np.argsort(m, kind="stable")[:BATCH]]
    if candidate == "hedge_bt":  # three quarters by margin, a quarter at random (against sampling bias)
        by_margin = np.argsort(m, kind="stable")[: BATCH - BATCH // 4]
        rest = np.setdiff1d(np.arange(len(pool_free)), by_margin)
        return pool_free[np.concatenate([by_margin, rng.choice(rest, BATCH // 4, replace=False)])]
    if candidate == "density_bt":  # information density (Settles & Craven 2008): (1 - margin) x similarity to the pool
        density = np.clip(emb[pool_free] @ emb[pool_free].mean(axis=0), 0, None)
        return pool_free[np.argsort(-(1 - m) * density, kind="stable")[:BATCH]]
    from sklearn.cluster import KMeans

    top = np.argsort(m, kind="stable")[: 10 * BATCH]
    clusters = KMeans(n_clusters=BATCH, n_init=1, random_state=seed).fit_predict(emb[pool_free[top]])
    chosen = []
    for k in range(BATCH):
        members = top[clusters == k]
        if len(members):
            chosen.append(members[np.argmin(m[members])])
    return pool_free[np.array(chosen)]


def run(job: tuple) -> dict:
    from threadpoolctl import threadpool_limits

    name, candidate, seed, max_labels, mistaken_by_ceiling, cold_start = job
    x, emb, y, validation, pool, labels = FEATURES[name]
    rng = np.random.default_rng(seed)
    labelled = rng.choice(pool, BATCH, replace=False)
    if cold_start == "kmeans":  # the daemon's AL_COLD_START=kmeans: the pool text nearest each k-means centre
        from small_text.query_strategies import EmbeddingKMeans

        np.random.seed(seed)
        none = np.array([], dtype=int)
        with np.errstate(invalid="ignore"):
            drawn = EmbeddingKMeans().sample(None, None, np.arange(len(pool)), none, none, BATCH, emb[pool])
        labelled = pool[np.asarray(drawn)]
    rounds = []
    started = time.process_time()
    with threadpool_limits(1):
        while len(np.unique(y[labelled])) < 2:  # one class only: no model yet, another random batch
            labelled = np.concatenate([labelled, rng.choice(np.setdiff1d(pool, labelled), BATCH, replace=False)])
        while True:
            c = choose_c(x[labelled], y[labelled], seed) if candidate.endswith("_cv") else 100.0
            fitted = model(c, seed).fit(x[labelled], y[labelled])
            proba_val = np.zeros((len(validation), len(labels)))
            proba_val[:, fitted.classes_] = fitted.predict_proba(x[validation])
            row = {
                "labels": int(len(labelled)),
                "accuracy": round(float((proba_val.argmax(1) == y[validation]).mean()), 4),
            }
            row["c"] = c
            if len(labelled) in (100, 200, 500):
                row["ece"] = round(ece(proba_val, y[validation]), 4)
            rounds.append(row)
            if len(labelled) >= max_labels:
                break
            free = np.setdiff1d(pool, labelled)
            proba = np.zeros((len(free), len(labels)))
            proba[:, fitted.classes_] = fitted.predict_proba(x[free])
            if candidate == "committee_bt":  # the mean of the model and four trained on bootstrap resamples
                members = 1
                for _ in range(4):
                    sample = rng.choice(labelled, len(labelled), replace=True)
                    if len(np.unique(y[sample])) < 2:
                        continue
                    member = model(c, seed).fit(x[sample], y[sample])
                    proba[:, member.classes_] += member.predict_proba(x[free])
                    members += 1
                proba /= members
            picked = pick(candidate, proba, free, emb, rng, seed)
            row["redundancy"] = round(redundancy(emb, picked), 4)
            row["mistaken_by_ceiling"] = round(float(mistaken_by_ceiling[picked].mean()), 4)
            row["largest_class_share"] = round(float(np.bincount(y[picked]).max() / len(picked)), 4)
            row["picked_margin"] = round(float(margins(proba[np.searchsorted(free, picked)]).mean()), 4)
            labelled = np.concatenate([labelled, picked])
    return {
        "dataset": name,
        "candidate": candidate,
        "seed": seed,
        "rounds": rounds,
        "cpu_s": time.process_time() - started,
    }


FEATURES: dict = {}


def ceiling(name: str, seed: int = 0) -> tuple[dict, np.ndarray]:
    """The full-pool model's validation accuracy per C, and which pool texts a 5-fold full-pool model gets wrong."""
    from sklearn.model_selection import cross_val_predict
    from threadpoolctl import threadpool_limits

    x, emb, y, validation, pool, labels = FEATURES[name]
    saved = WORK / f"ceiling-{name}-{seed}.npz"  # the same features and folds each time: computed once
    if saved.exists():
        kept = np.load(saved)
        return json.loads(str(kept["found"])), kept["mistaken"]
    found = {}
    with threadpool_limits(2):
        for c in C_GRID:
            fitted = model(c, seed).fit(x[pool], y[pool])
            found[str(c)] = round(float((fitted.predict(x[validation]) == y[validation]).mean()), 4)
        predicted = cross_val_predict(model(100.0, seed), x[pool], y[pool], cv=5)
    mistaken = np.zeros(len(y), dtype=bool)
    mistaken[pool] = predicted != y[pool]
    WORK.mkdir(parents=True, exist_ok=True)
    np.savez(saved, found=json.dumps(found), mistaken=mistaken)
    return found, mistaken


def slim(found: dict) -> dict:
    """A run as kept in the JSON: its accuracy and C per round (the diagnostics are in the summary)."""
    rounds = found["rounds"]
    return {
        "dataset": found["dataset"],
        "candidate": found["candidate"],
        "seed": found["seed"],
        "cpu_s": round(found["cpu_s"], 1),
        "labels": [r["labels"] for r in rounds],
        "accuracy": [r["accuracy"] for r in rounds],
        "c": [r["c"] for r in rounds],
    }


def summary(runs: list[dict]) -> dict:
    by = {}
    for found in runs:
        by.setdefault((found["dataset"], found["candidate"]), []).append(found)
    out = {}
    for (name, candidate), group in sorted(by.items()):
        curves = np.array([[r["accuracy"] for r in run["rounds"]] for run in group])
        labels = [r["labels"] for r in group[0]["rounds"]]
        keys = ("redundancy", "mistaken_by_ceiling", "largest_class_share", "picked_margin")
        diag = {k: round(float(np.mean([r[k] for run in group for r in run["rounds"][:-1]])), 4) for k in keys}
        eces = {
            n: round(float(np.mean([r["ece"] for run in group for r in run["rounds"] if r["labels"] == n])), 4)
            for n in (100, 200, 500)
        }
        out.setdefault(name, {})[candidate] = {
            "labels": labels,
            "accuracy_mean": [round(v, 4) for v in curves.mean(0)],
            "accuracy_std": [round(v, 4) for v in curves.std(0)],
            "diagnostics": diag,
            "ece": eces,
            "mean_c": round(float(np.mean([r["c"] for run in group for r in run["rounds"]])), 2),
        }
    return out


def plot(result: dict, path: Path) -> None:
    """One panel per dataset: each candidate's mean validation accuracy against labels."""
    from bench.every_dataset import panels, save_panels

    names = list(result["summary"])
    figure, axes = panels(len(names))
    for axis, name in zip(axes, names, strict=False):
        for k, (candidate, summary) in enumerate(result["summary"][name].items()):
            style = "--" if candidate.startswith("random") else "-"
            axis.plot(summary["labels"], summary["accuracy_mean"], style, color=f"C{k}", label=candidate, linewidth=1.2)
        axis.axhline(max(result["ceilings"][name].values()), color="grey", linewidth=0.8, linestyle=":")
        axis.set_title(f"{name} (dotted: full pool)", fontsize=10)
        axis.grid(alpha=0.3)
    title = f"validation splits of the train files, batch {BATCH}, seeds {result['seeds']}"
    save_panels(figure, axes, len(names), "validation accuracy", title, path)


def main() -> None:
    warnings.filterwarnings("ignore", message="The y_prob values do not sum to one")  # float32 probabilities
    from bench.every_dataset import single_label_sets

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--candidates", default=",".join(CANDIDATES))
    parser.add_argument("--max-labels", type=int, default=500)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--cold-start", choices=("random", "kmeans"), default="random", help="the first batch")
    parser.add_argument("--out", type=Path, default=RESULTS / "validation-search.json")
    args = parser.parse_args()
    folders = single_label_sets(SHARED)
    if args.only:
        folders = [f for f in folders if f.name in args.only.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    candidates = args.candidates.split(",")
    ceilings, jobs = {}, []
    for folder in folders:
        FEATURES[folder.name] = features(folder)
        found, mistaken = ceiling(folder.name)
        ceilings[folder.name] = found
        print(f"{folder.name}: pool {len(FEATURES[folder.name][4])}, full-pool validation accuracy {found}", flush=True)
        jobs += [(folder.name, c, s, args.max_labels, mistaken, args.cold_start) for c in candidates for s in seeds]
    started = time.time()
    with multiprocessing.get_context("fork").Pool(args.processes) as workers:
        runs = []
        for found in workers.imap_unordered(run, jobs):
            runs.append(found)
            last = found["rounds"][-1]
            print(
                f"{found['dataset']} {found['candidate']} seed={found['seed']}: {last['accuracy']} at {last['labels']} ({found['cpu_s']:.0f} s)",
                flush=True,
            )
    result = {
        "cold_start": args.cold_start,
        "candidates": candidates,
        "seeds": seeds,
        "batch": BATCH,
        "c_grid": C_GRID,
        "ceilings": ceilings,
        "summary": summary(runs),
        "runs": [slim(found) for found in runs],
        "wall_s": round(time.time() - started),
    }
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    plot(result, args.out.with_suffix(".png"))
    for name, by in result["summary"].items():
        print(f"\n## {name} (ceiling {ceilings[name]})")
        for candidate, s in by.items():
            cells = [f"{s['accuracy_mean'][s['labels'].index(n)]:.3f}" for n in CHECKPOINTS if n in s["labels"]]
            print(f"{candidate:>14}: {' '.join(cells)}  diag {s['diagnostics']} ece {s['ece']} C {s['mean_c']}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
