"""``query:`` — the query service's configuration (HTTP and gRPC listeners, storage, cache, vectors)."""

from __future__ import annotations

from pydantic import Field, field_validator

from llm_observer.kernel.component import ComponentConfig


def _check_endpoint(value: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"expected HOST:PORT, got {value!r}")
    return value


class HttpConfig(ComponentConfig):
    """REST, Jaeger-compatible API, ``/health``, ``/openapi.json`` and the docs."""

    endpoint: str = "127.0.0.1:8080"
    cors_origins: list[str] = Field(default_factory=list)

    _endpoint = field_validator("endpoint")(_check_endpoint)


class GrpcConfig(ComponentConfig):
    """``llm_observer.query.v1.QueryService`` with server reflection."""

    endpoint: str = "127.0.0.1:8081"

    _endpoint = field_validator("endpoint")(_check_endpoint)


class StorageConfig(ComponentConfig):
    """Where spans are read: ``chdb://PATH`` (relative to the data dir) or ``http(s)://HOST:PORT``."""

    endpoint: str = "chdb://clickhouse"
    database: str = Field(default="otel", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    username: str | None = None
    password: str | None = None


class VectorsConfig(ComponentConfig):
    """Semantic search over the embeddings the qdrant exporter wrote (needs the ``vectors`` extra)."""

    enabled: bool = True
    url: str = "qdrant"
    collection: str | None = None  # default: the qdrant exporter's default collection
    model: str | None = None  # default: the bundled embedding model (must match the exporter's)
    api_key: str | None = None


class QueryConfig(ComponentConfig):
    """The query service: every read API over the stored spans, and the REST JSON ingest."""

    http: HttpConfig = Field(default_factory=HttpConfig)
    grpc: GrpcConfig = Field(default_factory=GrpcConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    cache_ttl_seconds: float = Field(default=5.0, ge=0)
    cache_max_entries: int = Field(default=1024, ge=0)
    max_page_size: int = Field(default=1000, gt=0)
    default_lookback_hours: float = Field(default=24.0, gt=0)
    tail_poll_interval_seconds: float = Field(default=1.0, gt=0)
    tail_lag_seconds: float = Field(default=30.0, ge=0)
    vectors: VectorsConfig = Field(default_factory=VectorsConfig)
