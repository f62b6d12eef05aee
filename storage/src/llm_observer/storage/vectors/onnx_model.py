"""The bundled embedding model run directly on onnxruntime, in a fraction of the memory.

fastembed runs models with every onnxruntime graph optimisation on and its memory arena: for the bundled int8
all-MiniLM-L6-v2 (23 MB of weights) that is ~150 MB of session memory before the first text, and an arena
that grows with the longest batch it has seen and never shrinks. Unoptimised, the session takes ~30 MB and
runs as fast on this model (``bench/bench_embed_memory.py``); without the arena, what a batch
allocates goes back when it is done. The tokenisation, mean pooling and normalisation are fastembed's, so
the vectors are the same (to float rounding) as those it made: stored vectors stay comparable.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt


class BundledModel:
    """A sentence-embedding ONNX model with mean pooling and L2 normalisation, from a folder holding
    ``model.onnx``, ``tokenizer.json``, ``tokenizer_config.json``, ``special_tokens_map.json`` and
    ``config.json``. Thread-safe (onnxruntime sessions are)."""

    def __init__(self, folder: Path, dim: int, threads: int | None = 1) -> None:
        import onnxruntime as ort

        self.embedding_size = dim
        self._tokenizer = _tokenizer(folder)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        options.enable_cpu_mem_arena = False
        options.enable_mem_pattern = False
        if threads is not None:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(
            str(folder / "model.onnx"), options, providers=["CPUExecutionProvider"]
        )
        self._inputs = {node.name for node in self._session.get_inputs()}

    def embed(self, texts: Sequence[str], batch_size: int = 16) -> Iterator[npt.NDArray[np.float32]]:
        """One unit-length float32 vector per text, in order."""
        for start in range(0, len(texts), batch_size):
            yield from self._run(list(texts[start : start + batch_size]))

    def _run(self, texts: list[str]) -> npt.NDArray[np.float32]:
        encoded = self._tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encoded], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encoded], dtype=np.int64)
        feeds: dict[str, Any] = {"input_ids": ids}
        if "attention_mask" in self._inputs:
            feeds["attention_mask"] = mask
        if "token_type_ids" in self._inputs:
            feeds["token_type_ids"] = np.zeros_like(ids)
        tokens = self._session.run(None, feeds)[0]
        # Mean over the real tokens (summed in float64), then unit length, then back to the model's float32.
        summed = np.sum(tokens, axis=1, where=mask[:, :, np.newaxis].astype(bool), dtype=np.float64)
        pooled = summed / np.maximum(np.sum(mask, axis=1, keepdims=True), 1e-9)
        norms = np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        result: npt.NDArray[np.float32] = (pooled / norms).astype(np.float32)
        return result


def _tokenizer(folder: Path) -> Any:
    """The tokenizer as fastembed sets it up: truncation at the config's length, the special tokens
    registered, padding to the longest text of each batch."""
    from tokenizers import AddedToken, Tokenizer

    config = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
    model_config_path = folder / "config.json"
    model_config = (
        json.loads(model_config_path.read_text(encoding="utf-8")) if model_config_path.exists() else {}
    )
    special_path = folder / "special_tokens_map.json"
    special = json.loads(special_path.read_text(encoding="utf-8")) if special_path.exists() else {}
    limits = [
        v
        for v in (config.get("model_max_length"), config.get("max_length"))
        if isinstance(v, int) and not isinstance(v, bool) and 0 < v < 1 << 31
    ]
    if not limits:
        raise ValueError(f"{folder / 'tokenizer_config.json'} gives no maximum length")
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    truncation = tokenizer.truncation or {}
    tokenizer.enable_truncation(
        max_length=min(limits),
        direction=config.get("truncation_side") or truncation.get("direction", "right"),
    )
    for value in special.values():
        for token in value if isinstance(value, list) else [value]:
            if isinstance(token, str):
                tokenizer.add_special_tokens([token])
            elif isinstance(token, dict):
                tokenizer.add_special_tokens([AddedToken(**token)])
    padding = tokenizer.padding or {}
    pad_token = padding.get("pad_token") or config.get("pad_token")
    if pad_token is None:
        raise ValueError(f"{folder} names no pad token")
    pad_id = padding.get("pad_id", model_config.get("pad_token_id"))
    if pad_id is None:
        pad_id = tokenizer.token_to_id(pad_token)
    tokenizer.enable_padding(
        direction=config.get("padding_side") or padding.get("direction", "right"),
        pad_id=pad_id,
        pad_type_id=padding.get("pad_type_id", 0),
        pad_token=pad_token,
        pad_to_multiple_of=padding.get("pad_to_multiple_of"),
        length=None,
    )
    return tokenizer
