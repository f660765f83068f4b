"""Scale: the default model (hybrid; ``--model embeddings`` for the embeddings alone) on pools of 5k, 50k, 500k.

    .venv/bin/python bench/scale.py                       # 5k, 50k, 500k (about 2-10 min on 2 cores)
    .venv/bin/python bench/scale.py --sizes 5000 50000 --labels 400

What is measured, each size in a fresh subprocess (peak RSS = its ``ru_maxrss``):
- loading: a synthetic pool of that size written as JSONL, read and checked by the daemon's ``load_table`` and
  ``drop_duplicate_texts`` (texts: TREC-6 questions resampled and perturbed -- a word dropped or two swapped,
  plus a row number -- so they are distinct);
- one round of the daemon's own learner (``daemon.learner.Learner``, the classes the service uses): ``fit`` on
  ``--labels`` oracle labels, the pool's probabilities (shared by the query, the suggestions and the stopping
  signals), and the BreakingTies query of a batch of 20; and the peak RSS of the whole process. As a baseline in
  the same process, small-text's own BreakingTies scores the same probabilities (row by row; the daemon's is
  vectorised).
- embedding throughput (texts/s) of the bundled MiniLM on 2,000 perturbed texts, once; the time to embed each
  pool is extrapolated from it. The pool vectors of each size are TREC-6's real embeddings resampled with small
  Gaussian noise and re-normalised: embedding 500k texts here would take about half an hour, and the learner's
  cost depends on the matrix's shape, not on what the vectors say. The hybrid model's TF-IDF 1-2-grams are fitted
  on the synthetic texts themselves (timed as ``ngram_features_s``; each row's number adds a rare token, dropped
  by min_df=2 like any n-gram seen once).
A line through the three sizes (time and RSS against pool size) is extrapolated to 1M. Writes
bench/results/scale.json and scale.png.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
TREC = ROOT / "data" / "trec6"
CACHE = ROOT / "tests" / "output" / "cache"


def trec():
    from daemon.app import load_data
    from daemon.config import Settings

    return load_data(Settings(_env_file=None, pool_file=TREC / "train.jsonl", test_file=TREC / "test.jsonl"))


def perturb(text: str, rng: random.Random, number: int) -> str:
    words = text.split()
    if len(words) > 3 and rng.random() < 0.5:
        del words[rng.randrange(len(words))]
    elif len(words) > 2:
        i = rng.randrange(len(words) - 1)
        words[i], words[i + 1] = words[i + 1], words[i]
    return " ".join(words) + f" #{number}"


def synthetic_rows(data, size: int, seed: int = 0) -> tuple[list[dict], np.ndarray]:
    """``size`` perturbed TREC-6 rows and, for each, the index of the TREC row it came from."""
    rng = random.Random(seed)
    sources = np.random.default_rng(seed).integers(0, len(data.pool), size)
    rows = [
        {"id": f"s{n}", "text": perturb(data.pool.texts[i], rng, n), "label": data.pool.gold[i]}
        for n, i in enumerate(sources)
    ]
    return rows, sources


def one(size: int, labels: int, model: str = "embeddings") -> dict:
    """One pool size, in its own process. ``hybrid``: the embeddings joined with TF-IDF 1-2-grams of the
    synthetic texts, as the daemon's hybrid model builds them."""
    from small_text import SklearnDataset

    from daemon.config import QueryStrategyName
    from daemon.learner import Features, Learner, logistic_regression_factory, unlabelled_targets
    from daemon.models import HYBRID_C, HYBRID_CLASS_WEIGHT
    from daemon.pool import default_model_path, drop_duplicate_texts, embed, load_table

    data = trec()
    base = embed(data.pool.texts, default_model_path(), CACHE, data.pool.fingerprint)
    rows, sources = synthetic_rows(data, size)
    out: dict = {"size": size}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "pool.jsonl"
        with path.open("w", encoding="utf-8") as handle:
            for row in rows:
                handle.write(json.dumps(row) + "\n")
        out["file_mb"] = round(path.stat().st_size / 2**20, 1)
        start = time.perf_counter()
        table = drop_duplicate_texts(load_table(path, "text", "label", "id"))
        out["load_s"] = round(time.perf_counter() - start, 2)
        out["rows_loaded"] = len(table)
    texts = [row["text"] for row in rows]
    del rows
    noise = np.random.default_rng(1).normal(0, 0.02, (size, base.shape[1])).astype(np.float32)
    vectors = base[sources] + noise
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    del noise
    x = vectors
    if model == "hybrid":
        from daemon.models import fit_ngrams, join_features

        start = time.perf_counter()
        x = join_features(vectors, fit_ngrams(texts)[1])
        out["ngram_features_s"] = round(time.perf_counter() - start, 2)
        out["feature_matrix_mb"] = round((x.data.nbytes + x.indices.nbytes + x.indptr.nbytes) / 2**20, 1)
        del vectors
    del texts
    label_names = data.labels
    gold = np.array([label_names.index(data.pool.gold[i]) for i in sources])
    classes = len(label_names)
    features = Features(
        pool=SklearnDataset(x, unlabelled_targets(size), target_labels=np.arange(classes)),
        test=None,
        factory=logistic_regression_factory(
            classes, 0, c=HYBRID_C, solver="newton-cg", class_weight=HYBRID_CLASS_WEIGHT
        )
        if model == "hybrid"
        else logistic_regression_factory(classes, 0, c=10.0),
        name="scale",
    )
    learner = Learner(features, classes, QueryStrategyName.breaking_ties, seed=0)
    labelled = {int(i): int(gold[i]) for i in learner.initial_batch(labels)}
    start = time.perf_counter()
    learner.fit(labelled, set(), 1)
    out["fit_s"] = round(time.perf_counter() - start, 3)
    start = time.perf_counter()
    proba = learner.pool_proba()
    out["pool_proba_s"] = round(time.perf_counter() - start, 3)
    start = time.perf_counter()
    picked = learner.query(20, 1)
    out["query_s"] = round(time.perf_counter() - start, 3)  # BreakingTies over the cached probabilities
    out["round_s"] = round(out["fit_s"] + out["pool_proba_s"] + out["query_s"], 3)
    # baseline in the same process: small-text's own BreakingTies scoring (row by row) of the same probabilities
    from small_text import BreakingTies

    start = time.perf_counter()
    BreakingTies().get_confidence(learner._active.classifier, features.pool, None, None, None)
    out["small_text_breaking_ties_score_s"] = round(time.perf_counter() - start, 3)
    assert len(picked.indices) == 20 and proba.shape == (size, classes)
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return out


def throughput(count: int = 2000) -> dict:
    from sentence_transformers import SentenceTransformer

    from daemon.pool import default_model_path

    data = trec()
    rows, _ = synthetic_rows(data, count, seed=7)
    encoder = SentenceTransformer(str(default_model_path()), device="cpu")
    encoder.encode(["warm up"], show_progress_bar=False)
    start = time.perf_counter()
    encoder.encode([r["text"] for r in rows], batch_size=64, show_progress_bar=False, normalize_embeddings=True)
    seconds = time.perf_counter() - start
    return {"texts": count, "seconds": round(seconds, 2), "texts_per_s": round(count / seconds, 1)}


def child(*args: str) -> dict:
    done = subprocess.run(
        [sys.executable, __file__, *args], cwd=ROOT, capture_output=True, text=True, env={**os.environ}, check=False
    )
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def extrapolate(rows: list[dict], key: str, to: int = 1_000_000) -> float | None:
    points = [(r["size"], r[key]) for r in rows if key in r]
    if len(points) < 2:
        return None
    slope, intercept = np.polyfit([p[0] for p in points], [p[1] for p in points], 1)
    return round(float(slope * to + intercept), 2)


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in result["sizes"] if "error" not in r]
    sizes = [r["size"] for r in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    for key, name in (("fit_s", "fit (400 labels)"), ("pool_proba_s", "pool probabilities"), ("query_s", "query")):
        left.plot(sizes, [r[key] for r in rows], marker="o", label=name)
    left.plot(sizes, [r["load_s"] for r in rows], marker="s", linestyle="--", label="load + check the pool file")
    left.axhline(10, color="grey", linestyle=":", label="target: query 10 s")
    left.set(xscale="log", yscale="log", xlabel="pool size", ylabel="seconds", title="one round of the fast default")
    right.plot(sizes, [r["peak_rss_mb"] / 1024 for r in rows], marker="o", label="peak RSS")
    right.axhline(8, color="grey", linestyle=":", label="target 8 GB")
    right.set(xscale="log", xlabel="pool size", ylabel="GB", title="memory")
    for axis in (left, right):
        axis.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", type=int, default=[5000, 50000, 500000])
    parser.add_argument("--labels", type=int, default=400)
    parser.add_argument("--model", choices=["embeddings", "hybrid"], default="hybrid", help="the default: hybrid")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--throughput", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.one, args.labels, args.model)))
        return
    if args.throughput:
        print(json.dumps(throughput()))
        return
    speed = child("--throughput")
    rows = [
        child("--one", str(size), "--labels", str(args.labels), "--model", args.model) | {"size": size}
        for size in args.sizes
    ]
    for row in rows:
        if "error" not in row and "texts_per_s" in speed:
            row["embed_s_estimated"] = round(row["size"] / speed["texts_per_s"], 1)
    result = {
        "what": "pool size vs loading, one round (fit, pool probabilities, query) and peak RSS of the fast default",
        "model": args.model,
        "date": datetime.date.today().isoformat(),
        "cpu_count": os.cpu_count(),
        "labels": args.labels,
        "embedding_throughput": speed,
        "sizes": rows,
        "extrapolated_1m": {
            key: extrapolate([r for r in rows if "error" not in r], key)
            for key in ("load_s", "fit_s", "pool_proba_s", "query_s", "round_s", "peak_rss_mb", "embed_s_estimated")
        },
        "notes": [
            "pool vectors for each size are TREC-6 embeddings resampled with N(0, 0.02) noise and re-normalised; "
            "embedding time is extrapolated from the measured throughput",
        ],
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "scale.json").write_text(json.dumps(result, indent=1) + "\n")
    plot(result, RESULTS / "scale.png")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
