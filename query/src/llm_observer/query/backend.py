"""What the REST, gRPC and Jaeger front ends share: the read scope of a request, cached reads, vectors.

Every request resolves one ``ReadScope`` first (``QueryBackend.scope``: the caller's principal against the
organization / project and time window it names); every read then goes to storage confined to the scope's
tenant, off the event loop and through the result cache.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from llm_observer.kernel.auth import Authenticator, LoginGuard, Principal
from llm_observer.kernel.component import HttpRoutes
from llm_observer.kernel.errors import LLMObserverError, PermissionDenied, RetryableError
from llm_observer.kernel.telemetry import Telemetry
from llm_observer.query.alerting.model import AlertingApi
from llm_observer.query.cache import ResultCache
from llm_observer.query.config import QueryConfig
from llm_observer.query.tail import TailHub
from llm_observer.semconv import attributes as attrs
from llm_observer.storage.clickhouse.reads import (
    MIN_TIME_NS,
    CostBreakdown,
    InvalidArgument,
    MetricsSummary,
    ServiceOperation,
    SpanFilter,
    SpanRow,
    Tenant,
    TraceIdQuery,
    TracePage,
    TraceQuery,
    TraceStore,
    check_time_ns,
)
from llm_observer.storage.clickhouse.signal_reads import (
    LogPage,
    LogQuery,
    MetricInfo,
    MetricSeriesQuery,
    MetricSeriesResult,
    SignalStore,
)
from llm_observer.storage.vectors.settings import ClickHouseVectorSettings, VectorSettings

logger = logging.getLogger(__name__)

T = TypeVar("T")

_HOUR_NS = 3600 * 10**9


class Unavailable(RetryableError):
    """A feature this deployment cannot serve right now (503 / UNAVAILABLE)."""


class NotFound(LLMObserverError):
    """What a request names does not exist, or the feature it asks for is off (404 / NOT_FOUND)."""


ALERTING_DISABLED = "alerting is not enabled: list alerting in service.extensions"


@dataclass(frozen=True, slots=True)
class ReadScope:
    """Who asks, the data they may read, and the time window ``[start_ns, end_ns)`` they ask about.

    Reads by id (a trace, the services) and the live tail are not bounded by the window.
    """

    principal: Principal
    tenant: Tenant
    start_ns: int
    end_ns: int


@dataclass(frozen=True, slots=True)
class SemanticHit:
    """One stored prompt (or answer) near the searched text; ``fields`` is all the vector store returned."""

    trace_id: str
    span_id: str
    score: float
    text: str
    model: str
    fields: Mapping[str, Any]


class QueryBackend:
    """Scopes, reads (cached, tenant-confined) and semantic search, for every front end."""

    def __init__(
        self,
        config: QueryConfig,
        store: TraceStore,
        authenticator: Authenticator,
        ingest_routes: Sequence[HttpRoutes],
        data_dir: Path,
        vectors: VectorSettings | None = None,
        clock: Callable[[], int] = time.time_ns,
        telemetry: Telemetry | None = None,
        component_id: str = "query",
        signals: SignalStore | None = None,
        extensions: Mapping[str, Any] | None = None,
    ) -> None:
        self.config = config
        # The process's running extensions by id (live: the alerting extension may start after this
        # service), searched at each request for the one serving ``AlertingApi``.
        self.extensions: Mapping[str, Any] = extensions if extensions is not None else {}
        self.store = store
        self.signals = signals
        self.auth = authenticator
        self.ingest_routes = ingest_routes
        self.data_dir = data_dir
        self.vectors = vectors
        self.clock = clock
        # Where a trace replay sends its new trace (the collector's OTLP/HTTP receiver, in ``up``).
        self.replay_otlp_endpoint: str | None = None
        self.cache = ResultCache(config.cache_ttl_seconds, config.cache_max_entries)
        self._vectors: Any = None
        self._vectors_error: str | None = None
        self._vectors_failed_at = 0.0
        self._vectors_lock = asyncio.Lock()
        self._events = telemetry.component(component_id) if telemetry is not None else None
        self.telemetry = telemetry  # its ``health`` is what /health answers from
        self.logins = LoginGuard(authenticator)
        self.tails = TailHub(
            self,
            interval=config.tail_poll_interval_seconds,
            lag_seconds=config.tail_lag_seconds,
            max_per_principal=config.tail_max_per_principal,
            max_total=config.tail_max_total,
            max_queued_spans=config.tail_max_queued_spans,
            clock=self.clock,
            count=self.count,
        )

    def count(self, event: str, n: int = 1) -> None:
        """Count an event in the self-metrics (``llm_observer_component_events_total{component="query"}``)."""
        if self._events is not None:
            self._events.event(event, n)

    # --- the scope of a request --------------------------------------------------------------------

    def scope(
        self,
        principal: Principal,
        organization_id: str | None,
        project_id: str | None,
        start_ns: int | None = None,
        end_ns: int | None = None,
        names: tuple[str, str] = ("start_time", "end_time"),
    ) -> ReadScope:
        """What ``principal`` may read for a request naming an organization, project and time window.

        The window defaults to the last ``default_lookback_hours`` (ending a minute from now, for clock
        skew). Raises ``PermissionDenied`` when the request names an organization or project outside the
        principal's, ``InvalidArgument`` (naming the parameter: ``names`` spells the window's two) when a
        time is outside what storage holds or the window is empty.
        """
        org = principal.check_organization(organization_id)
        project = principal.check_project(project_id)
        projects = frozenset({project}) if project else principal.project_ids
        if start_ns is not None:
            check_time_ns(start_ns, names[0])
        if end_ns is not None:
            check_time_ns(end_ns, names[1])
        end = end_ns if end_ns is not None else self.clock() + 60 * 10**9
        if start_ns is not None:
            start = start_ns
        else:
            start = max(MIN_TIME_NS, end - int(self.config.default_lookback_hours * _HOUR_NS))
        if start >= end:
            raise InvalidArgument(f"{names[0]} must be before {names[1]}")
        return ReadScope(principal, Tenant(organization_id=org, project_ids=projects), start, end)

    def alerting(self, principal: Principal, organization_id: str | None) -> tuple[AlertingApi, str | None]:
        """The running alerting API and the organization ``principal`` may act on in it (None: every
        organization, auth off and none named).

        Alerting is organization-wide, so a key limited to some projects is refused (``PermissionDenied``),
        as is a request naming another organization; ``NotFound`` when no extension serves alerting.
        """
        organization = principal.check_organization(organization_id)
        if principal.project_ids is not None:
            raise PermissionDenied(
                f"{principal.subject} is limited to projects; alerts, rules and silences are "
                "organization-wide: use a key of the whole organization"
            )
        for extension in list(self.extensions.values()):
            if isinstance(extension, AlertingApi):
                return extension, organization
        raise NotFound(ALERTING_DISABLED)

    def alerting_enabled(self) -> bool:
        """Whether an extension of this process serves ``AlertingApi``."""
        return any(isinstance(extension, AlertingApi) for extension in list(self.extensions.values()))

    def page_size(self, limit: int | None, default: int = 50) -> int:
        if limit is None:
            return default
        if limit < 1:
            raise InvalidArgument("limit must be at least 1")
        return min(limit, self.config.max_page_size)

    async def _cached(self, key: tuple[Any, ...], fn: Callable[[], T]) -> T:
        async def compute() -> T:
            return await asyncio.to_thread(fn)

        return await self.cache.get_or_compute(key, compute)

    # --- reads -------------------------------------------------------------------------------------

    async def search_traces(self, tenant: Tenant, query: TraceQuery) -> TracePage:
        return await self._cached(("search", tenant, query), lambda: self.store.search_traces(tenant, query))

    async def get_trace(self, tenant: Tenant, trace_id: str) -> tuple[SpanRow, ...]:
        return await self._cached(("trace", tenant, trace_id), lambda: self.store.get_trace(tenant, trace_id))

    async def get_traces(
        self, tenant: Tenant, trace_ids: tuple[str, ...]
    ) -> Mapping[str, tuple[SpanRow, ...]]:
        return await self._cached(
            ("traces", tenant, trace_ids), lambda: self.store.get_traces(tenant, trace_ids)
        )

    async def metrics_summary(
        self, scope: ReadScope, group_by: str, spans: SpanFilter, step: int | None, group_series: bool = False
    ) -> MetricsSummary:
        tenant, start, end = scope.tenant, scope.start_ns, scope.end_ns
        return await self._cached(
            ("summary", tenant, start, end, group_by, spans, step, group_series),
            lambda: self.store.metrics_summary(tenant, start, end, group_by, spans, step, group_series),
        )

    async def cost_breakdown(self, scope: ReadScope, group_by: str, spans: SpanFilter) -> CostBreakdown:
        tenant, start, end = scope.tenant, scope.start_ns, scope.end_ns
        return await self._cached(
            ("cost", tenant, start, end, group_by, spans),
            lambda: self.store.cost_breakdown(tenant, start, end, group_by, spans),
        )

    async def services(self, tenant: Tenant) -> tuple[str, ...]:
        return await self._cached(("services", tenant), lambda: self.store.services(tenant))

    async def operations(
        self, tenant: Tenant, service: str | None, kind: str | None = None
    ) -> tuple[ServiceOperation, ...]:
        return await self._cached(
            ("ops", tenant, service, kind), lambda: self.store.operations(tenant, service, kind)
        )

    async def find_traces(self, tenant: Tenant, query: TraceIdQuery) -> dict[str, tuple[SpanRow, ...]]:
        """The spans of the traces ``query`` finds, newest trace first."""
        ids = await self._cached(("find", tenant, query), lambda: self.store.find_trace_ids(tenant, query))
        if not ids:
            return {}
        traces = await self.get_traces(tenant, ids)
        return {tid: traces[tid] for tid in ids if tid in traces}

    # --- logs and metrics --------------------------------------------------------------------------

    def _signal_store(self) -> SignalStore:
        if self.signals is None:
            raise Unavailable("this query service reads no logs or metrics store")
        return self.signals

    async def trace_logs(self, tenant: Tenant, trace_id: str, limit: int, cursor: str | None) -> LogPage:
        store = self._signal_store()
        return await self._cached(
            ("trace_logs", tenant, trace_id, limit, cursor),
            lambda: store.trace_logs(tenant, trace_id, limit, cursor),
        )

    async def search_logs(self, tenant: Tenant, query: LogQuery) -> LogPage:
        store = self._signal_store()
        return await self._cached(("logs", tenant, query), lambda: store.search_logs(tenant, query))

    async def metric_names(self, scope: ReadScope, service: str | None) -> tuple[MetricInfo, ...]:
        store = self._signal_store()
        tenant, start, end = scope.tenant, scope.start_ns, scope.end_ns
        return await self._cached(
            ("metric_names", tenant, start, end, service),
            lambda: store.metric_names(tenant, start, end, service),
        )

    async def metric_series(self, tenant: Tenant, query: MetricSeriesQuery) -> MetricSeriesResult:
        store = self._signal_store()
        return await self._cached(("series", tenant, query), lambda: store.metric_series(tenant, query))

    # Never cached: the live tail polls for what is new.

    async def span_keys_since(
        self, tenant: Tenant, since_ns: int, spans: SpanFilter, limit: int
    ) -> tuple[tuple[str, str, int], ...]:
        return await asyncio.to_thread(self.store.span_keys_since, tenant, since_ns, spans, limit)

    async def spans_by_keys(
        self, tenant: Tenant, since_ns: int, keys: Sequence[tuple[str, str]]
    ) -> tuple[SpanRow, ...]:
        return await asyncio.to_thread(self.store.spans_by_keys, tenant, since_ns, keys)

    # --- semantic search ---------------------------------------------------------------------------

    async def vector_search(self) -> Any:
        """The shared vector search, opened on first use; a failure is retried after a minute."""
        settings = self.vectors
        if settings is None:
            raise Unavailable("semantic search is disabled (query.vectors.enabled is false)")
        async with self._vectors_lock:
            now = time.monotonic()
            if self._vectors is None and (self._vectors_error is None or now - self._vectors_failed_at > 60):
                try:
                    self._vectors = await asyncio.to_thread(self._open_vector_search, settings)
                    self._vectors_error = None
                except Exception as exc:  # ImportError without the extra, or a store that cannot open
                    self._vectors_error = f"semantic search is unavailable: {exc}"
                    self._vectors_failed_at = now
                    logger.warning("Semantic search is unavailable: %s", exc)
        if self._vectors is None:
            raise Unavailable(self._vectors_error or "semantic search is unavailable", retry_after=60)
        return self._vectors

    def _open_vector_search(self, settings: VectorSettings) -> Any:
        """The search over the store ``settings`` describe: ClickHouse tables beside the spans (the
        ``vectors`` exporter) or a Qdrant collection (the ``qdrant`` exporter)."""
        if isinstance(settings, ClickHouseVectorSettings):
            from llm_observer.storage.clickhouse.vector_reads import ClickHouseVectorSearch

            if settings.clickhouse is None:
                raise ValueError(f"the ClickHouse store of exporter storage {settings.storage!r} is unknown")
            return ClickHouseVectorSearch.open(
                settings.clickhouse, self.data_dir, model=settings.model, threads=settings.threads
            )
        from llm_observer.storage.vectors.search import VectorSearch

        return VectorSearch.open(
            settings.url,
            self.data_dir,
            collection=settings.collection,
            model=settings.model,
            api_key=settings.api_key,
            threads=settings.threads,
        )

    async def semantic_search(
        self,
        tenant: Tenant,
        text: str,
        k: int,
        model: str | None = None,
        start_ns: int | None = None,
        end_ns: int | None = None,
        kind: str | None = "prompt",
    ) -> list[SemanticHit]:
        """The ``k`` stored prompts (``kind``: prompt, output or None for both) nearest ``text``, best first.

        Unlike the other reads, the search is not bounded in time unless ``start_ns`` / ``end_ns`` are
        given. The vector store is searched one organization at a time: with auth off and no organization
        named, that is the default organization.
        """
        if not text.strip():
            raise InvalidArgument("q must not be empty")
        if not 1 <= k <= 1000:
            raise InvalidArgument("k must be between 1 and 1000")
        if kind not in ("prompt", "output", None):
            raise InvalidArgument("kind must be prompt, output or all")
        vectors = await self.vector_search()
        organization = tenant.organization_id or attrs.DEFAULT_ORGANIZATION
        projects = sorted(tenant.project_ids) if tenant.project_ids is not None else [None]
        start = datetime.fromtimestamp(start_ns / 1e9, tz=UTC) if start_ns is not None else None
        end = datetime.fromtimestamp(end_ns / 1e9, tz=UTC) if end_ns is not None else None
        hits: list[SemanticHit] = []
        for project in projects:
            found = await asyncio.to_thread(
                vectors.search,
                text,
                k,
                organization_id=organization,
                project_id=project,
                model=model,
                start=start,
                end=end,
                kind=kind,
            )
            hits.extend(_hit(item) for item in found)
        hits.sort(key=lambda hit: -hit.score)
        return hits[:k]

    async def close(self) -> None:
        await self.tails.close()
        self.logins.close()
        vectors, self._vectors = self._vectors, None
        close = getattr(vectors, "close", None)
        if close is not None:
            await asyncio.to_thread(close)


def _hit(item: Mapping[str, Any]) -> SemanticHit:
    return SemanticHit(
        trace_id=str(item.get("trace_id") or ""),
        span_id=str(item.get("span_id") or ""),
        score=float(item.get("score") or 0.0),
        text=str(item.get("text") or ""),
        model=str(item.get("model") or ""),
        fields=dict(item),
    )
