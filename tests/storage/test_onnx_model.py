"""The bundled model run on onnxruntime directly gives fastembed's vectors."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from llm_observer.storage.vectors import embed as E
from llm_observer.storage.vectors.onnx_model import BundledModel


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return E.prepare_bundled_model(tmp_path_factory.mktemp("models"))


def _texts() -> list[str]:
    words = [
        "refund",
        "order",
        "shipping",
        "invoice",
        "password",
        "reset",
        "émoji",
        "日本語",
        "code",
        "python",
        "error",
        "the",
        "a",
    ]
    rng = random.Random(3)
    # Short and long (past the 128 word-piece cut), in one batch, and the degenerate ones.
    return [" ".join(rng.choice(words) for _ in range(rng.randint(1, 300))) for _ in range(40)] + [
        "",
        " ",
        "a",
    ]


def test_onnx_model_vectors_equal_fastembeds(folder: Path) -> None:
    from fastembed import TextEmbedding

    E._register_bundled_model()
    reference = TextEmbedding(
        model_name=E.BUNDLED_MODEL,
        cache_dir=str(folder.parent / "fastembed"),
        threads=1,
        specific_model_path=str(folder),
        local_files_only=True,
    )
    texts = _texts()
    expected = np.array(list(reference.embed(texts, batch_size=16)))
    got = np.array(list(BundledModel(folder, E.BUNDLED_MODEL_DIM).embed(texts, batch_size=16)))
    assert got.shape == (len(texts), E.BUNDLED_MODEL_DIM)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_onnx_model_vectors_do_not_depend_on_the_batch(folder: Path) -> None:
    model = BundledModel(folder, E.BUNDLED_MODEL_DIM)
    texts = _texts()
    alone = np.array([next(model.embed([t])) for t in texts])
    batched = np.array(list(model.embed(texts, batch_size=7)))
    np.testing.assert_allclose(batched, alone, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(batched, axis=1), 1.0, atol=1e-5)
