"""Configuration of the Qdrant vector exporter (prompt embeddings)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from llm_observer.kernel.component import ComponentConfig
from llm_observer.storage.vectors.embed import BUNDLED_MODEL, DEFAULT_THREADS


class QdrantExporterConfig(ComponentConfig):
    """What is embedded, with which model, and where the vectors go.

    ``url`` is a folder for Qdrant's local mode (a relative path is under the collector's data dir) or
    ``http(s)://HOST:PORT`` for a Qdrant server. ``model`` is the bundled offline model or any fastembed model
    name (downloaded into ``<data dir>/models`` on first start). Texts are cut to ``max_text_chars``
    before they are hashed and embedded; ``excerpt_chars`` of each are kept in the point's payload. Points of spans
    older than ``retention_days`` are deleted (at start, then hourly); ``None`` keeps them.
    """

    url: str = "qdrant"
    api_key: str | None = None
    collection: str = Field(default="llm_observer_prompts", pattern=r"^[A-Za-z0-9_-]{1,200}$")
    model: str = BUNDLED_MODEL
    embed_outputs: bool = False
    prompt_roles: tuple[str, ...] = Field(default=("user",), min_length=1)
    prompt_scope: Literal["last", "all"] = "last"
    batch_size: int = Field(default=64, ge=1, le=4096)
    max_text_chars: int = Field(default=2000, ge=16, le=100_000)
    excerpt_chars: int = Field(default=500, ge=0, le=100_000)
    cache_size: int = Field(default=10_000, ge=0)
    threads: int | None = Field(default=DEFAULT_THREADS, ge=1)  # None: onnxruntime's default (all cores)
    timeout_seconds: float = Field(default=10.0, gt=0)
    # Like the span store's TTL, so that a search never finds a trace that storage already dropped.
    retention_days: float | None = Field(default=90, gt=0)

    @field_validator("url")
    @classmethod
    def _known_url(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("expected a folder (local mode) or http(s)://HOST:PORT")
        if "://" in value and not value.startswith(("http://", "https://")):
            raise ValueError(f"expected a folder (local mode) or http(s)://HOST:PORT, got {value!r}")
        return value
