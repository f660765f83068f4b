"""AL_ENCODER: the int8 ONNX copy of the bundled MiniLM is made once, gives nearly PyTorch's vectors in its own
cache file, travels with the exported model, and a model the exporter cannot convert falls back to PyTorch."""

import logging
import pickle

import numpy as np
import pytest

from daemon.config import EncoderName, ModelKind, Settings
from daemon.encoders import ONNX_FROM_TEXTS, Encoder, int8_file, quantization_config, resolve, wanted
from daemon.models import build_features
from daemon.pool import default_model_path, embed, embedding_cache, load_table
from tests.conftest import tiny_rows, write_jsonl

TEXTS = [row["text"] for row in tiny_rows(4)]


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """The int8 copy, converted once for the module (~15 s) in its own cache folder."""
    cache = tmp_path_factory.mktemp("onnx-cache")
    return cache, resolve(EncoderName.onnx_int8, default_model_path(), cache, len(TEXTS))


def test_auto_means_onnx_int8_from_the_threshold_up():
    assert wanted(EncoderName.auto, ONNX_FROM_TEXTS - 1) is EncoderName.torch
    assert wanted(EncoderName.auto, ONNX_FROM_TEXTS) is EncoderName.onnx_int8
    assert wanted(EncoderName.torch, 10**9) is EncoderName.torch
    assert wanted(EncoderName.onnx_int8, 1) is EncoderName.onnx_int8
    assert resolve(EncoderName.auto, default_model_path(), "unused", 10) == Encoder(
        EncoderName.torch, default_model_path()
    )


def test_the_int8_file_is_named_as_the_quantiser_names_it_on_each_kind_of_cpu():
    # AVX2 machines get unsigned int8 weights (the file every earlier version looked for only on AVX-512)
    assert int8_file("avx2") == "onnx/model_quint8_avx2.onnx"
    assert int8_file("avx512") == "onnx/model_qint8_avx512.onnx"
    assert int8_file("avx512_vnni") == "onnx/model_qint8_avx512_vnni.onnx"
    assert int8_file("arm64") == "onnx/model_qint8_arm64.onnx"


def test_the_int8_copy_is_made_once_and_embeds_nearly_as_pytorch(converted, tmp_path):
    cache, encoder = converted
    assert encoder.name is EncoderName.onnx_int8 and encoder.onnx_file == int8_file(quantization_config())
    onnx_file = encoder.path / encoder.onnx_file
    assert onnx_file.is_file() and not (encoder.path / "onnx" / "model.onnx").exists()  # fp32 not kept
    made = onnx_file.stat().st_mtime_ns
    assert resolve(EncoderName.auto, default_model_path(), cache, ONNX_FROM_TEXTS) == encoder
    assert onnx_file.stat().st_mtime_ns == made  # found, not converted again

    model = default_model_path()
    quick = embed(TEXTS, model, tmp_path, "f" * 16, encoder=encoder)
    plain = embed(TEXTS, model, tmp_path, "f" * 16)
    assert quick.shape == plain.shape == (len(TEXTS), 384)
    assert np.allclose(np.linalg.norm(quick, axis=1), 1, atol=1e-4)
    cosine = (quick * plain).sum(axis=1)
    assert cosine.min() > 0.95 and not np.array_equal(quick, plain)  # close, but its own vectors
    files = {embedding_cache(model, tmp_path, "f" * 16), embedding_cache(model, tmp_path, "f" * 16, encoder)}
    assert len(files) == 2 and all(path.is_file() for path in files)
    assert embedding_cache(model, tmp_path, "f" * 16, Encoder(EncoderName.torch, model)) == embedding_cache(
        model, tmp_path, "f" * 16
    )  # PyTorch's cache files keep their old names


def test_the_hybrid_model_trained_on_int8_vectors_encodes_new_texts_the_same_way(converted, tmp_path):
    cache, encoder = converted
    pool_file = write_jsonl(tmp_path / "pool.jsonl", tiny_rows(4))
    pool = load_table(pool_file, "text", "label", "id")
    settings = Settings(
        _env_file=None, pool_file=pool_file, cache_dir=cache, model=ModelKind.hybrid, encoder=EncoderName.onnx_int8
    )
    features = build_features(settings, pool, None, None, 3)
    assert features.encoder.onnx_file == encoder.onnx_file and features.encoder.model_path == str(encoder.path)
    again = pickle.loads(pickle.dumps(features.encoder))  # what the export ships
    rows = again.transform(pool.texts[:5]).toarray()
    pooled = features.pool.x[np.arange(5)].toarray()
    assert np.array_equal(rows[:, 384:], pooled[:, 384:])  # the same n-grams
    # int8 activations are quantised per batch: a text's vector moves a little with its batch-mates (PyTorch's
    # would be equal to 1e-6), so five texts alone are near, not equal to, their rows embedded with the pool
    cosine = (rows[:, :384] * pooled[:, :384]).sum(axis=1)
    assert cosine.min() > 0.98


def test_a_model_the_exporter_cannot_convert_is_embedded_with_pytorch(tmp_path, caplog):
    broken = tmp_path / "not-a-model"
    broken.mkdir()
    (broken / "config.json").write_text("{}")
    with caplog.at_level(logging.WARNING, logger="daemon.encoders"):
        encoder = resolve(EncoderName.onnx_int8, broken, tmp_path / "cache", 10)
    assert encoder == Encoder(EncoderName.torch, broken)
    assert "embedding with PyTorch instead" in caplog.text
    assert not any((tmp_path / "cache" / "encoders").glob("*"))  # no half-made copy left behind
