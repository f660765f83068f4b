"""The default benchmark set, one command (``make bench``): about 85-100 min on 2 CPU cores.

    .venv/bin/python bench/all.py                     # TREC-6, everything below
    .venv/bin/python bench/all.py --pool my.parquet --test my-test.parquet --text-column body --label-column topic
    .venv/bin/python bench/all.py --only efficiency,idle

1. efficiency: label efficiency of the default model (hybrid) and of embeddings alone, BreakingTies and random
   sampling, 3 seeds, up to 500 labels, in-process with oracle labels (bench/strategies.py ->
   results/label-efficiency.json/.png): accuracy and macro-F1 vs labels, labels to 0.80/0.85/0.90, the label
   saving against random at equal accuracy. ``--pool``/``--test`` point it at any labelled JSONL/CSV/Parquet.
2. wait: the annotator's wait with the default model against a real local Argilla started for the purpose
   (bench/wait.py, 10 rounds, ``--merge``: the transformer configurations already in results/wait.json stay).
3. idle: CPU and RSS of the daemon waiting on annotators for 60 s (bench/idle.py).
4. scale: the daemon end to end (batch 0, features, rounds, peak RSS) on pools of 10k, 100k and 1M synthetic texts
   (bench/scale.py).
5. first-batch: seconds from `al-daemon run` starting to batch 0 visible in Argilla, empty embedding cache, for
   the demo pool and 10k / 100k / 1M synthetic texts (bench/first_batch.py, its own local Argilla).
6. activelab: several noisy annotators per text (data/politeness): ActiveLab against random selection, 25 rounds
   x 25 annotations, 5 seeds (bench/activelab.py -> results/activelab.json/.png; ~5 min).
7. activelab-noisy: the same on TREC-6 with 20 synthetic annotators wrong 10-50 % of the time
   (results/activelab-trec6-noisy.json/.png; ~7 min).
8. ray: embedding throughput of the local engine and of a local Ray cluster with 1 and 2 workers, one run
   (bench/ray_throughput.py -> results/ray-throughput.json/.png; ~5 min).
9. multilabel: multi-label active learning on GoEmotions (28 emotions), hybrid and embeddings x five strategies
   x 3 seeds to 1,000 labels (bench/multilabel.py -> results/multilabel.json/.png; ~30-40 min). Reads the data
   from ../shared/data/goemotions or $AL_BENCH_DATA/goemotions (the full set; the checkout ships a 4,000-text subset,
   data/goemotions, too small for this benchmark); without it this step fails with a line saying so and the others
   still run.
10. warm-start: a 100-label seed, then 200 labels chosen by the default, against no seed and against the seed
   followed by random batches, on TREC-6, MR and HWU64 x 3 seeds (bench/warm_start.py -> results/warm-start.json/
   .png; ~10 min). MR and HWU64 come from ../shared/data or $AL_BENCH_DATA, as for multilabel.

Not in the default set, chosen with ``--only encoders``: the CPU encoders (PyTorch, ONNX fp32/int8, threads,
model2vec) for throughput and label efficiency on the six dev sets beside the checkout (bench/encoders.py).

Each step runs as its own process; a failing step is reported and the others still run (exit code 1 at the
end). The wall time of each step goes to results/bench-all.json (a step not run keeps its last record). The transformer studies (every model x strategy
in bench/strategies.py, the transformer wait configurations) take hours on CPU and are not part of this set.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # bench.strategies names the results of another pool
RESULTS = ROOT / "bench" / "results"
STEPS = (
    "efficiency",
    "wait",
    "idle",
    "scale",
    "first-batch",
    "activelab",
    "activelab-noisy",
    "ray",
    "multilabel",
    "warm-start",
)
EXTRA = ("encoders",)  # chosen with --only: needs the dev sets beside the checkout (../shared/data or AL_BENCH_DATA)


def relative(path: Path) -> str:
    """Paths inside the checkout as relative ones (each step runs in it), so the results name no machine."""
    path = Path(path).resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def commands(args: argparse.Namespace) -> dict[str, list[str]]:
    data = ["--pool", relative(args.pool), "--test", relative(args.test)]
    data += ["--text-column", args.text_column, "--label-column", args.label_column]
    from bench.strategies import dataset_name

    name = dataset_name(args.pool)
    out = RESULTS / ("label-efficiency.json" if name == "TREC-6" else f"label-efficiency-{name}.json")
    python = sys.executable
    return {
        "efficiency": [python, "bench/strategies.py", "--models", "hybrid,embeddings"]
        + ["--strategies", "breaking_ties,random", "--seeds", "0,1,2", "--max-labels", "500", "--out", relative(out)]
        + data,
        "wait": [python, "bench/wait.py", "--merge", "--configs", "embeddings-inline,hybrid-inline", "--rounds", "10"],
        "idle": [python, "bench/idle.py"],
        "scale": [python, "bench/scale.py"],
        "first-batch": [python, "bench/first_batch.py"],
        "encoders": [python, "bench/encoders.py"],
        "ray": [python, "bench/ray_throughput.py"],
        "multilabel": [python, "bench/multilabel.py"],
        "warm-start": [python, "bench/warm_start.py"],
        "activelab": [python, "bench/activelab.py"],
        "activelab-noisy": [python, "bench/activelab.py", "--pool", "data/trec6/train.jsonl"]
        + ["--test", "data/trec6/test.jsonl", "--synthetic", "20", "--out", "bench/results/activelab-trec6-noisy.json"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(STEPS), help=f"comma list of {', '.join(STEPS + EXTRA)}")
    parser.add_argument("--pool", type=Path, default=ROOT / "data/trec6/train.jsonl")
    parser.add_argument("--test", type=Path, default=ROOT / "data/trec6/test.jsonl")
    parser.add_argument("--text-column", default="text")
    parser.add_argument("--label-column", default="label")
    args = parser.parse_args()
    chosen = [step for step in args.only.split(",") if step]
    unknown = set(chosen) - set(STEPS + EXTRA)
    if unknown:
        parser.error(f"unknown step(s) {', '.join(sorted(unknown))}; choose from {', '.join(STEPS + EXTRA)}")
    steps = commands(args)
    now = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    kept = RESULTS / "bench-all.json"  # the steps not run now keep their last record
    record = {"date": now, "steps": json.loads(kept.read_text()).get("steps", {}) if kept.exists() else {}}
    started = time.perf_counter()
    failed = []
    for name in chosen:
        print(f"== {name}: {' '.join(steps[name][1:])}", flush=True)
        mark = time.perf_counter()
        code = subprocess.run(steps[name], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, check=False)
        seconds = round(time.perf_counter() - mark, 1)
        record["steps"][name] = {
            "date": now,
            "command": steps[name][1:],
            "exit_code": code.returncode,
            "seconds": seconds,
        }
        print(f"== {name}: exit {code.returncode} after {seconds / 60:.1f} min", flush=True)
        if code.returncode != 0:
            failed.append(name)
    record["wall_seconds"] = round(time.perf_counter() - started, 1)
    record["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "bench-all.json").write_text(json.dumps(record, indent=1) + "\n")
    print(f"done in {record['wall_seconds'] / 60:.1f} min" + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
