"""Where the vectors are and how texts become vectors: shared by the Qdrant exporter and semantic search."""

from __future__ import annotations

from pydantic import Field, field_validator

from llm_observer.kernel.component import ComponentConfig
from llm_observer.storage.vectors.embed import BUNDLED_MODEL, DEFAULT_THREADS


class VectorSettings(ComponentConfig):
    """``url`` is a folder for Qdrant's local mode (a relative path is under the data dir) or
    ``http(s)://HOST:PORT`` for a Qdrant server. ``model`` is the bundled offline model or any fastembed model
    name (downloaded into ``<data dir>/models`` on first start); a search embeds with the same model."""

    url: str = "qdrant"
    api_key: str | None = None
    collection: str = Field(default="llm_observer_prompts", pattern=r"^[A-Za-z0-9_-]{1,200}$")
    model: str = BUNDLED_MODEL
    threads: int | None = Field(default=DEFAULT_THREADS, ge=1)  # None: onnxruntime's default (all cores)
    timeout_seconds: float = Field(default=10.0, gt=0)

    @field_validator("url")
    @classmethod
    def _known_url(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("expected a folder (local mode) or http(s)://HOST:PORT")
        if "://" in value and not value.startswith(("http://", "https://")):
            raise ValueError(f"expected a folder (local mode) or http(s)://HOST:PORT, got {value!r}")
        return value
