"""The query service as an extension the collector's runtime starts (entry point ``llm_observer.extensions``
``query``), as Jaeger v2 runs its query service as a Collector extension.

Its config names the stores it reads (``query.storage``, ``query.vectors.exporter``): the loader checks that
those components exist, and ``create`` that their configs are storage settings it can read with.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from llm_observer.kernel.component import CreateContext, Factory, Reference
from llm_observer.kernel.errors import ConfigError
from llm_observer.query.config import QueryConfig
from llm_observer.query.service import QueryService
from llm_observer.storage.clickhouse.settings import ClickHouseSettings
from llm_observer.storage.vectors.settings import ClickHouseVectorSettings, VectorSettings

EXPORTERS = "exporters"

T = TypeVar("T")


def references(config: QueryConfig) -> Sequence[Reference]:
    """The exporters whose stores the service reads."""
    refs = [Reference("storage", EXPORTERS, config.storage, ClickHouseSettings)]
    if config.vectors.enabled:
        refs.append(Reference("vectors.exporter", EXPORTERS, config.vectors.exporter, VectorSettings))
    return refs


def _settings(ctx: CreateContext, key: str, exporter_id: str, settings: type[T], what: str) -> T:
    config = ctx.configs.get(EXPORTERS, {}).get(exporter_id)
    if config is None:
        raise ConfigError([(key, f"exporter {exporter_id!r} is not defined under exporters")])
    if not isinstance(config, settings):
        raise ConfigError(
            [(key, f"exporter {exporter_id!r} does not write {what} the query service can read")]
        )
    return config


def create(ctx: CreateContext, config: QueryConfig) -> QueryService:
    """A ``QueryService`` over the named stores; ``ConfigError`` when one is not a store it can read."""
    storage = _settings(ctx, "query.storage", config.storage, ClickHouseSettings, "a ClickHouse store")
    vectors = None
    if config.vectors.enabled:
        vectors = _settings(
            ctx, "query.vectors.exporter", config.vectors.exporter, VectorSettings, "a vector store"
        )
        if isinstance(vectors, ClickHouseVectorSettings):
            # Vectors beside the spans: the search opens the store of the ClickHouse exporter they name.
            where = _settings(
                ctx,
                "query.vectors.exporter",
                vectors.storage,
                ClickHouseSettings,
                "a ClickHouse store",
            )
            vectors = vectors.bound(where)
    return QueryService(
        config,
        storage,
        vectors,
        data_dir=ctx.data_dir,
        auth=ctx.auth,
        ingest_routes=ctx.http_routes,
        telemetry=ctx.telemetry,
        component_id=ctx.component_id,
        # The process's running extensions (live): where the alert routes find the alerting API.
        extensions=ctx.extensions,
        replay_otlp_endpoint=_otlp_http_url(ctx),
    )


def _otlp_http_url(ctx: CreateContext) -> str | None:
    """The OTLP/HTTP receiver of the same process, where a trace replay sends its new trace (None when the
    process receives no OTLP/HTTP: the replay then uses ``LLM_OBSERVER_REPLAY_OTLP_ENDPOINT``)."""
    otlp = ctx.configs.get("receivers", {}).get("otlp")
    http = getattr(getattr(otlp, "protocols", None), "http", None)
    endpoint = getattr(http, "endpoint", None)
    if not getattr(http, "enabled", True) or not isinstance(endpoint, str) or ":" not in endpoint:
        return None
    host, _, port = endpoint.rpartition(":")
    if port == "0":  # picked at start: unknown here
        return None
    if host in ("", "0.0.0.0", "[::]", "::"):
        host = "127.0.0.1"
    return f"http://{host}:{port}"


factory: Factory[QueryConfig, QueryService] = Factory("query", QueryConfig, create, references=references)
