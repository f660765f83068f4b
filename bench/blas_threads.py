"""How much holding BLAS to one thread speeds up the default model's round (train + pool probabilities).

    .venv/bin/python bench/blas_threads.py

Same process, same data, alternating the two settings (the machine is shared and noisy): TREC-6 pool
embeddings, oracle labels for 100/300/1000 random items, logistic regression C=10 as the daemon trains it.
Writes bench/results/blas_threads.json and .png.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import numpy as np

from daemon.app import load_data
from daemon.config import Settings
from daemon.pool import default_model_path, embed
from daemon.smalltext import logistic_regression_factory

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    settings = Settings(_env_file=None)
    data = load_data(settings)
    x = embed(data.pool.texts, default_model_path(), settings.cache_path, data.pool.fingerprint)
    y = np.array([data.labels.index(g) for g in data.pool.gold])
    from small_text import SklearnDataset

    pool = SklearnDataset(x, y, target_labels=np.arange(6))
    rng = np.random.default_rng(0)
    rows = []
    for n in (100, 300, 1000):
        train = pool[rng.choice(len(y), n, replace=False)]
        timings: dict[str, list[float]] = {"default": [], "one_blas_thread": []}
        for _ in range(5):
            for name, threads in (("default", None), ("one_blas_thread", 1)):
                factory = logistic_regression_factory(6, 0, c=10.0)
                factory.blas_threads = threads
                clf = factory.new()
                start = time.perf_counter()
                clf.fit(train)
                clf.predict_proba(pool)
                timings[name].append(time.perf_counter() - start)
        row = {"labels": n, **{k: statistics.median(v) for k, v in timings.items()}}
        row["speedup"] = row["default"] / row["one_blas_thread"]
        rows.append(row)
        print(json.dumps(row))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "blas_threads.json").write_text(json.dumps({"pool": len(y), "rounds": rows}, indent=1))
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6, 3.5), layout="constrained")
    axis = figure.add_subplot()
    for key in ("default", "one_blas_thread"):
        axis.plot([r["labels"] for r in rows], [r[key] for r in rows], marker="o", label=key)
    axis.set_xlabel("labels")
    axis.set_ylabel("train + pool predict (s, median of 5)")
    axis.legend()
    figure.savefig(RESULTS / "blas_threads.png")


if __name__ == "__main__":
    main()
