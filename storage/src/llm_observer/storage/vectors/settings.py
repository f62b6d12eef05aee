"""Where the vectors are and how texts become vectors: shared by the vector exporters and semantic search."""

from __future__ import annotations

from pydantic import Field, PrivateAttr, field_validator, model_validator

from llm_observer.kernel.component import ComponentConfig
from llm_observer.storage.clickhouse.settings import ClickHouseSettings
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


class ClickHouseVectorSettings(VectorSettings):
    """Embeddings kept in ClickHouse tables beside the spans (``storage.clickhouse.vector_schema``).

    ``storage`` names the ClickHouse exporter whose store (endpoint, database, retention) the vectors share, as
    ``query.storage`` does; ``model`` and ``threads`` are as for Qdrant. ``url``, ``api_key`` and
    ``collection`` locate a Qdrant store: other values than their defaults are refused rather than ignored.
    """

    storage: str = Field(default="clickhouse", min_length=1)
    # Set by whoever resolved ``storage`` (the query service's factory): the named exporter's settings.
    _clickhouse: ClickHouseSettings | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _no_qdrant_options(self) -> ClickHouseVectorSettings:
        # Compared with the defaults, not by presence: a dumped config (``config show``) names every field.
        fields = type(self).model_fields
        given = sorted(
            name for name in ("url", "api_key", "collection") if getattr(self, name) != fields[name].default
        )
        if given:
            raise ValueError(
                f"{', '.join(given)} locate a Qdrant store; these vectors live in the ClickHouse store "
                "that `storage` names"
            )
        return self

    def bound(self, clickhouse: ClickHouseSettings) -> ClickHouseVectorSettings:
        """A copy that carries ``clickhouse``, the ``ClickHouseSettings`` of the exporter ``storage`` names."""
        copy = self.model_copy()
        copy._clickhouse = clickhouse
        return copy

    @property
    def clickhouse(self) -> ClickHouseSettings | None:
        """The settings given to ``bound`` (None before)."""
        return self._clickhouse
