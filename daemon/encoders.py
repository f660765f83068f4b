"""The sentence encoder that embeds the pool: the model as PyTorch runs it, or its int8 ONNX Runtime copy.

bench/encoders.py measured the options that keep the bundled MiniLM offline, on the six dev sets: ONNX Runtime with
the weights quantised to int8 (dynamic quantisation, sentence-transformers' ONNX backend through optimum) embeds
2-3.7x as many texts a second on 2 CPU cores as PyTorch (it varies between runs on a shared machine), and the
labelled texts chosen with its vectors reach 0.2 points less accuracy at 500 labels (averaged over the six sets; vectors' cosine to PyTorch's 0.99). A static
model2vec embedding is 36x faster but loses 5 points. So ``AL_ENCODER``:

- ``torch``: the model directory as it is, through PyTorch (every earlier version);
- ``onnx-int8``: an int8 ONNX copy of it, made once on this machine and kept in the cache folder
  (``<cache>/encoders/``; ~15 s for the MiniLM), loaded through ONNX Runtime;
- ``auto`` (default): ``onnx-int8`` for pools of :data:`ONNX_FROM_TEXTS` texts or more, where the embedding
  takes minutes, ``torch`` below (seconds either way; PyTorch's vectors exactly as before).

ONNX Runtime's dynamic quantisation scales the activations per batch, so an int8 vector moves a little with the
texts that share its batch (cosine ~0.99 to the same text embedded alone). The pool is always cut into the same
batches (parts of 1,024 texts, chunks of 512, batches of 64), so a pool's vectors are the same on every run and
after a resumed embedding; new texts given to the exported model get vectors within that noise.

A model the ONNX exporter cannot convert, or a conversion that fails (a full disk), falls back to ``torch`` with a
warning: the run goes on, only slower. The two encoders' vectors differ a little, so each has its own embedding
cache file (:func:`daemon.pool.embedding_cache`) and the exported model encodes new texts with the one the model
was trained on.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import logging
import platform
from pathlib import Path

from daemon.config import EncoderName
from daemon.files import atomic_dir, remove_leftovers

log = logging.getLogger(__name__)

ONNX_FROM_TEXTS = 20_000  # AL_ENCODER=auto: pools this large are embedded with the int8 ONNX copy
_FOLDER = "encoders"  # inside the cache folder: the converted copies


@dataclasses.dataclass(frozen=True)
class Encoder:
    """How texts become vectors: a model folder and, for ONNX, the file in it that ONNX Runtime loads."""

    name: EncoderName  # torch or onnx_int8 (never auto)
    path: Path  # the folder SentenceTransformer loads
    onnx_file: str | None = None  # relative to path; None: PyTorch

    @property
    def cache_tag(self) -> str:
        """What tells this encoder's embedding cache files apart from PyTorch's ("" for PyTorch, whose files keep
        the names earlier versions gave them)."""
        return "" if self.onnx_file is None else f"-{self.name.value}-{Path(self.onnx_file).stem}"

    def load(self, threads: int | None = None, device: str = "cpu"):
        """The SentenceTransformer, on ``device`` (PyTorch only: the int8 copy runs on ONNX Runtime's CPU
        provider); ``threads`` caps its compute threads (a Ray actor given one CPU must not use every core: its
        neighbours would wait), None leaves the libraries' defaults (every core)."""
        from sentence_transformers import SentenceTransformer

        if self.onnx_file is None:
            if threads:
                import torch

                torch.set_num_threads(threads)
            return SentenceTransformer(str(self.path), device=device)
        options = {"file_name": self.onnx_file, "provider": "CPUExecutionProvider"}
        if threads:
            import onnxruntime

            session = onnxruntime.SessionOptions()
            session.intra_op_num_threads = session.inter_op_num_threads = threads
            options["session_options"] = session
        return SentenceTransformer(str(self.path), device="cpu", backend="onnx", model_kwargs=options)


def wanted(name: EncoderName, pool_size: int) -> EncoderName:
    """The encoder a setting asks for, with ``auto`` decided by the pool's size."""
    if name is EncoderName.auto:
        return EncoderName.onnx_int8 if pool_size >= ONNX_FROM_TEXTS else EncoderName.torch
    return name


def resolve(name: EncoderName, model_path: Path, cache_dir: Path, pool_size: int) -> Encoder:
    """The encoder to embed a pool of ``pool_size`` texts with: for ONNX, the converted copy of ``model_path``
    (converted now if this machine has none yet), or PyTorch when the conversion is not possible."""
    model_path = Path(model_path)
    if wanted(name, pool_size) is EncoderName.torch:
        return Encoder(EncoderName.torch, model_path)
    try:
        return _onnx_int8(model_path, Path(cache_dir))
    except Exception as exc:  # noqa: BLE001 - any failure of the exporter means: embed with PyTorch
        log.warning(
            "AL_ENCODER=%s: no int8 ONNX copy of %s (%s: %s); embedding with PyTorch instead (slower, same labels)",
            name.value,
            model_path,
            type(exc).__name__,
            exc,
        )
        return Encoder(EncoderName.torch, model_path)


def quantization_config() -> str:
    """sentence-transformers' int8 configuration for this CPU (which instructions the int8 kernels may use)."""
    if platform.machine().lower() in ("arm64", "aarch64"):
        return "arm64"
    cpuinfo = Path("/proc/cpuinfo")
    flags = cpuinfo.read_text() if cpuinfo.exists() else ""
    return "avx512_vnni" if "avx512_vnni" in flags else "avx512" if "avx512f" in flags else "avx2"


def int8_file(config: str) -> str:
    """Where the quantiser writes the int8 copy for ``config``, inside the model folder. sentence-transformers names
    it after the weights' type, which the configuration decides: signed on AVX-512 and ARM64
    (``onnx/model_qint8_avx512.onnx``), unsigned on AVX2 (``onnx/model_quint8_avx2.onnx``)."""
    from optimum.onnxruntime import AutoQuantizationConfig

    weights = getattr(AutoQuantizationConfig, config)(is_static=False).weights_dtype
    return f"onnx/model_{weights.name.lower()}_{config}.onnx"


def _onnx_int8(model_path: Path, cache_dir: Path) -> Encoder:
    config = quantization_config()
    model_key = hashlib.sha256(str(model_path.resolve()).encode()).hexdigest()[:12]
    target = cache_dir / _FOLDER / f"{model_path.name}-{model_key}-onnx-int8-{config}"
    onnx_file = int8_file(config)
    if not (target / onnx_file).is_file():
        log.info("converting %s to int8 ONNX (%s) in %s: once per model and machine", model_path, config, target)
        remove_leftovers(target.parent, target.name)
        with atomic_dir(target, what="the int8 ONNX copy of the encoder") as work:
            _convert(model_path, work, config, onnx_file)
    return Encoder(EncoderName.onnx_int8, target, onnx_file)


def _convert(model_path: Path, work: Path, config: str, onnx_file: str) -> None:
    """The model exported to ONNX (fp32) in ``work``, then its int8 dynamic quantisation beside it; the fp32 file
    is removed once the int8 one exists (it is not used)."""
    quiet = _BelowWarning()
    root, library = logging.getLogger(), logging.getLogger("sentence_transformers")
    level = library.level
    root.addFilter(quiet)  # the quantiser logs a line per tensor through the root logger
    library.setLevel(logging.ERROR)  # "saving the exported ONNX model is heavily recommended": it is, just below
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # the exporter prints its progress
            _export(model_path, work, config)
    finally:
        root.removeFilter(quiet)
        library.setLevel(level)
    if not (work / onnx_file).is_file():
        written = sorted(path.name for path in (work / "onnx").glob("*.onnx"))
        raise RuntimeError(f"the quantiser wrote no {onnx_file} (onnx/ holds {written})")
    (work / "onnx" / "model.onnx").unlink(missing_ok=True)


def _export(model_path: Path, work: Path, config: str) -> None:
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.backend import export_dynamic_quantized_onnx_model

    exported = SentenceTransformer(str(model_path), device="cpu", backend="onnx")  # no ONNX file yet: exports it
    exported.save_pretrained(str(work))
    fp32 = SentenceTransformer(str(work), device="cpu", backend="onnx", model_kwargs={"file_name": "onnx/model.onnx"})
    export_dynamic_quantized_onnx_model(fp32, config, str(work))


class _BelowWarning(logging.Filter):
    """Drops what is logged below WARNING straight to the root logger (the daemon's own loggers are named, and a
    logger's filters see only the records logged to it)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING
