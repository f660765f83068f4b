"""Embedding throughput on this machine and on a Ray cluster of 1 and 2 workers, measured in one run.

    .venv/bin/python bench/ray_throughput.py                 # about 6 min on 2 cores
    .venv/bin/python bench/ray_throughput.py --texts 4096 --repeats 1 --encoder torch

A real local Ray cluster is started for the purpose (``ray start --head`` in a subprocess with 2 CPUs, as the tests
do: tests/ray_cluster.py). The same texts (synthetic perturbed TREC-6 questions, bench/scale.py) are embedded by
the daemon's engines (daemon/engine.py, daemon/cluster.py) exactly as ``daemon.pool.embed`` drives them, parts of
1,024 texts: the local engine (one process, the encoder's own threads on both cores), then the Ray engine with
``AL_RAY_WORKERS=1`` and ``2`` (one CPU per actor; the actors load the model once per run, which is counted),
interleaved ``--repeats`` times; medians, and the ratio of 2 workers to 1 (target ≥ 1.8 on an idle machine). Each
Ray run's vectors are checked equal to the local engine's. Writes bench/results/ray-throughput.json and .png.
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from scale import synthetic_rows, trec  # noqa: E402  (bench/ siblings)
from wait import environment  # noqa: E402

RESULTS = ROOT / "bench" / "results"
CACHE = ROOT / "tests" / "output" / "cache"


def run(engine, texts: list[str], encoder) -> tuple[float, np.ndarray]:
    started = time.perf_counter()
    parts = dict(engine.embed(texts, encoder, 0))
    seconds = time.perf_counter() - started
    return seconds, np.concatenate([parts[start] for start in sorted(parts)])


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(result["texts_per_s"])
    fig, axis = plt.subplots(figsize=(6, 3.4))
    axis.bar(names, [result["texts_per_s"][n] for n in names], color=["grey", "tab:blue", "tab:blue"])
    for i, name in enumerate(names):
        axis.text(i, result["texts_per_s"][name], f"{result['texts_per_s'][name]:.0f}", ha="center", va="bottom")
    axis.set(ylabel="texts/s", title=f"embedding {result['texts']:,} texts ({result['encoder']}), 2 CPU cores")
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def main() -> None:
    from daemon.cluster import RayEngine
    from daemon.config import EncoderName
    from daemon.encoders import resolve
    from daemon.engine import LocalEngine
    from daemon.pool import default_model_path
    from tests.ray_cluster import RayCluster

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=16384)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--encoder", default=EncoderName.onnx_int8.value, choices=["torch", "onnx-int8"])
    args = parser.parse_args()
    rows, _ = synthetic_rows(trec(), args.texts, seed=11)
    texts = [row["text"] for row in rows]
    encoder = resolve(EncoderName(args.encoder), default_model_path(), CACHE, args.texts)
    cluster = RayCluster(cpus=2)
    cluster.up()
    seconds: dict[str, list[float]] = {"local": [], "ray, 1 worker": [], "ray, 2 workers": []}
    same = True
    try:
        engines = {
            "local": LocalEngine(),
            "ray, 1 worker": RayEngine(cluster.address, workers=1),
            "ray, 2 workers": RayEngine(cluster.address, workers=2),
        }
        reference = None
        for repeat in range(args.repeats):
            for name, engine in engines.items():
                took, vectors = run(engine, texts, encoder)
                seconds[name].append(took)
                if reference is None:
                    reference = vectors
                same = same and np.array_equal(vectors, reference)
                print(f"{repeat + 1}/{args.repeats} {name}: {args.texts / took:.0f} texts/s", flush=True)
        fallbacks = sum(engine.fallbacks for engine in engines.values() if isinstance(engine, RayEngine))
    finally:
        import ray

        ray.shutdown()
        cluster.down()
    rates = {name: round(args.texts / statistics.median(values), 1) for name, values in seconds.items()}
    result = {
        "what": "embedding throughput: the local engine and the Ray engine with 1 and 2 workers, one run",
        "date": datetime.date.today().isoformat(),
        "environment": environment(),
        "texts": args.texts,
        "encoder": args.encoder,
        "repeats": args.repeats,
        "cluster": "ray start --head, 2 CPUs, on this machine; one CPU per actor",
        "seconds": {name: [round(v, 2) for v in values] for name, values in seconds.items()},
        "texts_per_s": rates,
        "two_workers_vs_one": round(rates["ray, 2 workers"] / rates["ray, 1 worker"], 2),
        "two_workers_vs_local": round(rates["ray, 2 workers"] / rates["local"], 2),
        "vectors_equal_to_local": same,
        "ray_fallbacks": fallbacks,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "ray-throughput.json").write_text(json.dumps(result, indent=1) + "\n")
    plot(result, RESULTS / "ray-throughput.png")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
