"""What the REST, gRPC and Jaeger front ends share: tenant resolution, cached reads, ingest, vectors.

Every read goes through ``tenant_for`` (the caller's principal against the organization / project the
request names) and then through the store, off the event loop and through the result cache.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from llm_observer.kernel.auth import Authenticator, Principal
from llm_observer.kernel.component import SIGNAL_TRACES, Ingest, IngestMeta
from llm_observer.kernel.errors import PermanentError, PermissionDenied, RetryableError
from llm_observer.kernel.telemetry import Telemetry
from llm_observer.query.cache import ResultCache
from llm_observer.query.config import QueryConfig
from llm_observer.query.json_ingest import JsonTrace, to_otlp
from llm_observer.semconv import attributes as attrs
from llm_observer.storage.clickhouse.reads import InvalidArgument, SpanFilter, Tenant, TraceQuery, TraceStore

logger = logging.getLogger(__name__)

T = TypeVar("T")

_HOUR_NS = 3600 * 10**9


class Unavailable(RetryableError):
    """A feature this deployment cannot serve right now (503 / UNAVAILABLE)."""


def tenant_for(principal: Principal, organization_id: str | None, project_id: str | None) -> Tenant:
    """The data ``principal`` may read for a request naming ``organization_id`` / ``project_id``.

    Raises ``PermissionDenied`` when the request names an organization or project outside the principal's.
    """
    org = principal.check_organization(organization_id)
    project = principal.check_project(project_id)
    projects = frozenset({project}) if project else principal.project_ids
    return Tenant(organization_id=org, project_ids=projects)


class QueryBackend:
    """Reads (cached, tenant-confined), JSON ingest and semantic search, for every front end."""

    def __init__(
        self,
        config: QueryConfig,
        store: TraceStore,
        authenticator: Authenticator,
        ingest: Ingest | None,
        data_dir: Path,
        clock: Callable[[], int] = time.time_ns,
        telemetry: Telemetry | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.auth = authenticator
        self.ingest = ingest
        self.data_dir = data_dir
        self.clock = clock
        self.cache = ResultCache(config.cache_ttl_seconds, config.cache_max_entries)
        self._vectors: Any = None
        self._vectors_error: str | None = None
        self._vectors_failed_at = 0.0
        self._vectors_lock = asyncio.Lock()
        self._events = telemetry.component("query") if telemetry is not None else None

    def count(self, event: str, n: int = 1) -> None:
        """Count an event in the self-metrics (``llm_observer_component_events_total{component="query"}``)."""
        if self._events is not None:
            self._events.event(event, n)

    # --- helpers -----------------------------------------------------------------------------------

    def time_range(self, start_ns: int | None, end_ns: int | None) -> tuple[int, int]:
        """The range a request asks for; by default the last ``default_lookback_hours``."""
        end = end_ns if end_ns is not None else self.clock() + 60 * 10**9
        start = start_ns if start_ns is not None else end - int(self.config.default_lookback_hours * _HOUR_NS)
        if start >= end:
            raise InvalidArgument("start_time must be before end_time")
        return start, end

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

    async def search_traces(
        self, tenant: Tenant, query: TraceQuery
    ) -> tuple[list[dict[str, Any]], str | None]:
        return await self._cached(("search", tenant, query), lambda: self.store.search_traces(tenant, query))

    async def get_trace(self, tenant: Tenant, trace_id: str) -> list[dict[str, Any]]:
        return await self._cached(("trace", tenant, trace_id), lambda: self.store.get_trace(tenant, trace_id))

    async def get_traces(self, tenant: Tenant, trace_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
        key = ("traces", tenant, tuple(trace_ids))
        return await self._cached(key, lambda: self.store.get_traces(tenant, trace_ids))

    async def metrics_summary(
        self, tenant: Tenant, start_ns: int, end_ns: int, group_by: str, spans: SpanFilter, step: int | None
    ) -> dict[str, Any]:
        key = ("summary", tenant, start_ns, end_ns, group_by, spans, step)
        return await self._cached(
            key, lambda: self.store.metrics_summary(tenant, start_ns, end_ns, group_by, spans, step)
        )

    async def cost_breakdown(
        self, tenant: Tenant, start_ns: int, end_ns: int, group_by: str, spans: SpanFilter
    ) -> dict[str, Any]:
        key = ("cost", tenant, start_ns, end_ns, group_by, spans)
        return await self._cached(
            key, lambda: self.store.cost_breakdown(tenant, start_ns, end_ns, group_by, spans)
        )

    async def services(self, tenant: Tenant) -> list[str]:
        return await self._cached(("services", tenant), lambda: self.store.services(tenant))

    async def operations(
        self, tenant: Tenant, service: str | None, kind: str | None = None
    ) -> list[dict[str, str]]:
        return await self._cached(
            ("ops", tenant, service, kind), lambda: self.store.operations(tenant, service, kind)
        )

    async def find_trace_ids(self, tenant: Tenant, **kwargs: Any) -> list[str]:
        key = ("find", tenant, tuple(sorted(kwargs.items(), key=lambda kv: kv[0])))
        return await self._cached(key, lambda: self.store.find_trace_ids(tenant, **kwargs))

    async def spans_since(
        self, tenant: Tenant, since_ns: int, spans: SpanFilter, limit: int
    ) -> list[dict[str, Any]]:
        # Never cached: the tail polls for what is new.
        return await asyncio.to_thread(self.store.spans_since, tenant, since_ns, spans, limit)

    # --- ingest ------------------------------------------------------------------------------------

    async def ingest_json(self, principal: Principal, traces: list[JsonTrace]) -> tuple[int, list[str]]:
        """Hand JSON traces to the collector's WAL; returns the number of spans accepted and the trace ids.

        The principal's organization wins over the payload's; a project outside its projects is refused.
        Raises ``Unavailable`` in standalone query mode, ``Backpressure`` when the collector is over a limit.
        """
        if self.ingest is None:
            raise Unavailable(
                "this query service runs without a collector (standalone query mode): send traces to the "
                "collector's OTLP endpoints or run 'llm-observer up'"
            )
        groups: dict[tuple[str, str], list[JsonTrace]] = {}
        for trace in traces:
            org = principal.check_organization(trace.organization_id) or attrs.DEFAULT_ORGANIZATION
            project = trace.project_id or attrs.DEFAULT_PROJECT
            if principal.project_ids is not None and project not in principal.project_ids:
                if trace.project_id is None and len(principal.project_ids) == 1:
                    project = next(iter(principal.project_ids))
                else:
                    raise PermissionDenied(f"{principal.subject} may not write to project {project!r}")
            groups.setdefault((org, project), []).append(trace)
        count = 0
        trace_ids: list[str] = []
        for (org, project), group in groups.items():
            payload, ids = to_otlp(group, org, project)
            try:
                await self.ingest(SIGNAL_TRACES, payload, IngestMeta(organization_id=org, project_id=project))
            except PermanentError as exc:
                raise InvalidArgument(str(exc)) from exc
            count += sum(len(trace.spans) for trace in group)
            trace_ids.extend(ids)
        self.count("rest_ingested_spans", count)
        return count, trace_ids

    # --- semantic search ---------------------------------------------------------------------------

    async def _vector_search(self) -> Any:
        """The shared vector search, opened on first use; a failure is retried after a minute."""
        if not self.config.vectors.enabled:
            raise Unavailable("semantic search is disabled (query.vectors.enabled is false)")
        async with self._vectors_lock:
            now = time.monotonic()
            if self._vectors is None and (self._vectors_error is None or now - self._vectors_failed_at > 60):
                try:
                    from llm_observer.storage.vectors.search import VectorSearch

                    vectors = self.config.vectors
                    kwargs: dict[str, Any] = {}
                    if vectors.collection:
                        kwargs["collection"] = vectors.collection
                    if vectors.model:
                        kwargs["model"] = vectors.model
                    if vectors.api_key:
                        kwargs["api_key"] = vectors.api_key
                    self._vectors = await asyncio.to_thread(
                        VectorSearch.open, vectors.url, self.data_dir, **kwargs
                    )
                    self._vectors_error = None
                except Exception as exc:  # ImportError without the extra, or a store that cannot open
                    self._vectors_error = f"semantic search is unavailable: {exc}"
                    self._vectors_failed_at = now
                    logger.warning("Semantic search is unavailable: %s", exc)
        if self._vectors is None:
            raise Unavailable(self._vectors_error or "semantic search is unavailable", retry_after=60)
        return self._vectors

    async def semantic_search(
        self,
        tenant: Tenant,
        text: str,
        k: int,
        model: str | None = None,
        start_ns: int | None = None,
        end_ns: int | None = None,
        kind: str | None = "prompt",
    ) -> list[dict[str, Any]]:
        """The ``k`` stored prompts (``kind``: prompt, output or None for both) nearest ``text``, best first.

        The vector store is searched one organization at a time: with auth off and no organization named,
        that is the default organization.
        """
        if not text.strip():
            raise InvalidArgument("q must not be empty")
        if not 1 <= k <= 1000:
            raise InvalidArgument("k must be between 1 and 1000")
        if kind not in ("prompt", "output", None):
            raise InvalidArgument("kind must be prompt, output or all")
        vectors = await self._vector_search()
        organization = tenant.organization_id or attrs.DEFAULT_ORGANIZATION
        projects = sorted(tenant.project_ids) if tenant.project_ids is not None else [None]
        start = datetime.fromtimestamp(start_ns / 1e9, tz=UTC) if start_ns is not None else None
        end = datetime.fromtimestamp(end_ns / 1e9, tz=UTC) if end_ns is not None else None
        results: list[dict[str, Any]] = []
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
            results.extend(dict(item) for item in found)
        results.sort(key=lambda item: -float(item.get("score", 0.0)))
        return results[:k]

    async def close(self) -> None:
        vectors, self._vectors = self._vectors, None
        close = getattr(vectors, "close", None)
        if close is not None:
            await asyncio.to_thread(close)


async def tail_spans(
    backend: QueryBackend, tenant: Tenant, spans: SpanFilter, poll_interval: float | None = None
) -> AsyncIterator[list[dict[str, Any]]]:
    """Yield lists of spans stored after the call began, matching ``spans``, until the consumer stops.

    Polls storage; a span is reported once. Spans whose start time lies more than ``tail_lag_seconds``
    before they reach storage are not reported (the tail looks back that far on each poll).
    """
    interval = poll_interval if poll_interval is not None else backend.config.tail_poll_interval_seconds
    lag = int(backend.config.tail_lag_seconds * 1e9)
    seen: dict[tuple[str, str], int] = {}
    # What is already there when the tail starts is history, not news.
    for span in await backend.spans_since(tenant, backend.clock() - lag, spans, 100_000):
        seen[(span["trace_id"], span["span_id"])] = int(span["start_ns"])
    while True:
        await asyncio.sleep(interval)
        since = backend.clock() - lag
        fresh = []
        for span in await backend.spans_since(tenant, since, spans, 10_000):
            key = (span["trace_id"], span["span_id"])
            if key not in seen:
                seen[key] = int(span["start_ns"])
                fresh.append(span)
        for key in [k for k, start in seen.items() if start < since]:
            del seen[key]
        if fresh:
            yield fresh
