"""How the default model was chosen, without looking at the test set: a validation split of TREC-6's training file.

    .venv/bin/python bench/defaults.py           # about 3 min on 2 cores; writes bench/results/defaults.json

1,000 texts of data/trec6/train.jsonl (seeded) are held out as validation; the rest is the pool. For each
candidate feature set x logistic-regression C, three seeds of active learning with oracle labels: a random first
batch of 20, then BreakingTies batches of 20 (smallest margin between the two most probable classes), up to 400
labels; accuracy on the validation texts at 100/200/300/400 labels. The features are built with the daemon's own
functions (``daemon.pool.embed``, ``daemon.models.fit_ngrams`` and ``join_features``); the loop is a plain
scikit-learn one so that C and the class weights can vary (they are not settings). data/trec6/test.jsonl is never
read. The winner became the ``hybrid`` model and the default; bench/strategies.py then measures it on the test set.
"""

from __future__ import annotations

import datetime
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
CACHE = ROOT / "tests" / "output" / "cache"
CHECKPOINTS = (100, 200, 300, 400)
CANDIDATES = [  # (features, C, class_weight)
    ("embeddings", 10.0, None),  # the previous default
    ("embeddings", 100.0, None),
    ("embeddings", 10.0, "balanced"),
    ("tfidf", 10.0, None),
    ("hybrid", 10.0, None),
    ("hybrid", 100.0, None),
    ("hybrid", 100.0, "balanced"),
    ("hybrid", 1000.0, None),
]


def main() -> None:
    sys.path.insert(0, str(ROOT))
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    from daemon.app import load_data
    from daemon.config import Settings
    from daemon.models import fit_ngrams, join_features
    from daemon.pool import default_model_path, embed

    settings = Settings(_env_file=None, pool_file=ROOT / "data/trec6/train.jsonl", test_file=None, cache_dir=CACHE)
    data = load_data(settings)
    texts, names = data.pool.texts, data.labels
    y = np.array([names.index(label) for label in data.pool.gold])
    order = np.random.default_rng(123).permutation(len(texts))
    validation, pool = order[:1000], order[1000:]
    embeddings = embed(texts, Path(default_model_path()), settings.cache_path, data.pool.fingerprint)
    vectorizer, _ = fit_ngrams([texts[i] for i in pool])
    ngrams = vectorizer.transform(texts)
    features = {"embeddings": embeddings, "tfidf": ngrams, "hybrid": join_features(embeddings, ngrams)}

    def run(x, c: float, weight: str | None, seed: int) -> dict[int, float]:
        labelled = list(np.random.default_rng(seed).choice(pool, 20, replace=False))
        found = {}
        while True:
            model = LogisticRegression(C=c, max_iter=2000, class_weight=weight, solver="newton-cg")
            model.fit(x[labelled], y[labelled])
            if len(labelled) in CHECKPOINTS:
                found[len(labelled)] = float((model.predict(x[validation]) == y[validation]).mean())
            if len(labelled) >= max(CHECKPOINTS):
                return found
            rest = np.setdiff1d(pool, labelled)
            proba = np.zeros((len(rest), len(names)))
            proba[:, model.classes_] = model.predict_proba(x[rest])
            top = np.sort(proba, axis=1)
            labelled += list(rest[np.argsort(top[:, -1] - top[:, -2], kind="stable")[:20]])

    rows = []
    with threadpool_limits(1):
        for name, c, weight in CANDIDATES:
            mark = time.perf_counter()
            runs = [run(features[name], c, weight, seed) for seed in range(3)]
            mean = {n: round(float(np.mean([r[n] for r in runs])), 4) for n in CHECKPOINTS}
            rows.append({"features": name, "C": c, "class_weight": weight, "validation_accuracy": mean})
            print(name, c, weight, mean, f"{time.perf_counter() - mark:.0f} s", flush=True)
    best = max(rows, key=lambda r: sum(r["validation_accuracy"].values()))
    from daemon.models import HYBRID_C, HYBRID_CLASS_WEIGHT

    default = {"features": "hybrid", "C": HYBRID_C, "class_weight": HYBRID_CLASS_WEIGHT}
    result = {
        "what": __doc__.splitlines()[0],
        "date": datetime.date.today().isoformat(),
        "split": {"pool": len(pool), "validation": len(validation), "seed": 123},
        "strategy": "BreakingTies, batch 20, first batch random; mean of seeds 0, 1, 2",
        "candidates": rows,
        "best_by_mean_validation_accuracy": best,
        "daemon_default": default,
        "default_is_best": all(best[k] == v for k, v in default.items()),
        "note": "differences of 0.01-0.02 between the hybrid variants are within the seed-to-seed spread; the gap "
        "between hybrid and embeddings alone (0.07-0.10) is not",
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "defaults.json").write_text(json.dumps(result, indent=1) + "\n")
    print("best:", best)


if __name__ == "__main__":
    main()
