"""``query:`` — the query service's configuration.

The service reads the stores that exporters write, so it names them instead of repeating their settings:
``storage`` is the id of an exporter whose config is a ``ClickHouseSettings`` (the ClickHouse exporter's),
``vectors.exporter`` the id of one whose config is a ``VectorSettings`` (the ``vectors`` exporter's, which
keeps embeddings in ClickHouse beside the spans, or the ``qdrant`` exporter's)::

    query:
      http: {endpoint: 127.0.0.1:8080}
      grpc: {endpoint: 127.0.0.1:8081}
      storage: clickhouse
      vectors: {enabled: true, exporter: vectors}
"""

from __future__ import annotations

from pydantic import Field

from llm_observer.kernel.component import ComponentConfig
from llm_observer.kernel.endpoints import Endpoint


class HttpConfig(ComponentConfig):
    """REST, Jaeger-compatible API, ``/health``, ``/openapi.json`` and the docs."""

    endpoint: Endpoint = "127.0.0.1:8080"
    cors_origins: list[str] = Field(default_factory=list)


class GrpcConfig(ComponentConfig):
    """``llm_observer.query.v1.QueryService`` with server reflection."""

    endpoint: Endpoint = "127.0.0.1:8081"


class VectorsConfig(ComponentConfig):
    """Semantic search over the embeddings that the named exporter writes (same store and model)."""

    enabled: bool = True
    exporter: str = Field(default="vectors", min_length=1)


class QueryConfig(ComponentConfig):
    """The query service: every read API over the stored spans."""

    http: HttpConfig = Field(default_factory=HttpConfig)
    grpc: GrpcConfig = Field(default_factory=GrpcConfig)
    storage: str = Field(default="clickhouse", min_length=1)
    vectors: VectorsConfig = Field(default_factory=VectorsConfig)
    cache_ttl_seconds: float = Field(default=5.0, ge=0)
    cache_max_entries: int = Field(default=1024, ge=0)
    max_page_size: int = Field(default=1000, gt=0)
    default_lookback_hours: float = Field(default=24.0, gt=0)
    tail_poll_interval_seconds: float = Field(default=1.0, gt=0)
    tail_lag_seconds: float = Field(default=30.0, ge=0)
    # Live tails (SSE /api/v1/tail, gRPC TailSpans): open at once per principal and in all (over a cap:
    # 429 / RESOURCE_EXHAUSTED), and spans waiting for one client before it is dropped as too slow.
    tail_max_per_principal: int = Field(default=8, gt=0)
    tail_max_total: int = Field(default=32, gt=0)
    tail_max_queued_spans: int = Field(default=1000, gt=0)
