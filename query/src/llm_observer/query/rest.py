"""The REST read API (``/api/v1/…``), ``/health``, login and the live tail (Server-Sent Events).

Each route resolves its scope through ``deps`` and presents storage's typed rows with ``formats``.
"""

from __future__ import annotations

import json
import weakref
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from llm_observer.kernel.health import HealthReport
from llm_observer.query.deps import Backend, Scope, Spans, TenantScope
from llm_observer.query.formats import (
    cost_document,
    finite,
    log_page,
    metric_name_document,
    metric_series_document,
    parse_step,
    parse_time,
    rfc3339,
    span_document,
    summary_document,
    trace_page,
)
from llm_observer.query.rollup import with_rollup
from llm_observer.query.tail import TailEnded
from llm_observer.storage.clickhouse.reads import (
    TRACE_ORDERS,
    InvalidArgument,
    TraceQuery,
    normalize_trace_id,
)
from llm_observer.storage.clickhouse.signal_reads import LogQuery, MetricSeriesQuery, parse_severity

# A comment line on an idle live tail this often, so that proxies keep it open and a vanished client is
# noticed.
_HEARTBEAT_SECONDS = 15.0


class LoginRequest(BaseModel):
    username: str = Field(min_length=1, max_length=256)
    password: str = Field(min_length=1, max_length=1024)


def build_router() -> APIRouter:
    router = APIRouter()

    @router.get("/health", tags=["service"], responses={503: {"description": "data is not moving"}})
    async def health(backend: Backend) -> JSONResponse:
        """Whether the process is serving and its data is moving: 200 ``{"status": "ok"}``, or 503
        ``{"status": "unhealthy", "problems": [{"component", "reason"}]}`` while a pipeline is not (a
        delivery worker down or making no progress, the WAL refusing writes). The collector's OTLP/HTTP
        ``/health`` answers from the same checks."""
        report = backend.telemetry.health.report() if backend.telemetry is not None else HealthReport({})
        body = {
            **report.document(),
            "storage": backend.store.client.endpoint,
            "ingest": bool(backend.ingest_routes),
        }
        return JSONResponse(body, status_code=200 if report.healthy else 503)

    @router.get("/api/v1/traces", tags=["traces"])
    async def list_traces(
        scope: Scope,
        backend: Backend,
        spans: Spans,
        status: Annotated[str | None, Query(description="ok | error | unset")] = None,
        min_duration_ms: float | None = None,
        max_duration_ms: float | None = None,
        min_cost: Annotated[float | None, Query(description="minimum trace cost in USD")] = None,
        limit: Annotated[int | None, Query(ge=1)] = None,
        cursor: str | None = None,
        sort: Annotated[str, Query(description=" | ".join(TRACE_ORDERS))] = "start",
        order: Annotated[str, Query(description="desc (default) | asc")] = "desc",
    ) -> dict[str, Any]:
        """Trace summaries, newest first (or by ``sort``, largest first unless ``order=asc``), with cursor
        pagination: a cursor continues the list in the order it was made for."""
        if order not in ("asc", "desc"):
            raise InvalidArgument("order must be asc or desc")
        query = TraceQuery(
            start_ns=scope.start_ns,
            end_ns=scope.end_ns,
            spans=spans,
            status=status.lower() if status else None,
            min_duration_ms=finite(min_duration_ms, "min_duration_ms"),
            max_duration_ms=finite(max_duration_ms, "max_duration_ms"),
            min_cost_usd=finite(min_cost, "min_cost"),
            limit=backend.page_size(limit),
            cursor=cursor,
            order_by=sort,
            ascending=order == "asc",
        )
        return trace_page(await backend.search_traces(scope.tenant, query))

    @router.get("/api/v1/traces/{trace_id}", tags=["traces"])
    async def get_trace(trace_id: str, scope: TenantScope, backend: Backend) -> dict[str, Any]:
        """Every span of one trace, ordered by start time; workflow, agent and step spans carry the token
        and cost sums of their subtree (``llm_observer.subtree.*``), computed here when not stored."""
        tid = normalize_trace_id(trace_id)
        spans = await backend.get_trace(scope.tenant, tid)
        if not spans:
            raise StarletteHTTPException(404, f"trace {tid} not found")
        return {"trace_id": tid, "spans": [span_document(span) for span in with_rollup(spans)]}

    @router.get("/api/v1/traces/{trace_id}/logs", tags=["logs"])
    async def trace_logs(
        trace_id: str,
        scope: TenantScope,
        backend: Backend,
        limit: Annotated[int | None, Query(ge=1, description="default 1000")] = None,
        cursor: str | None = None,
    ) -> dict[str, Any]:
        """The log records of one trace, oldest first (an empty list when it has none)."""
        tid = normalize_trace_id(trace_id)
        page = await backend.trace_logs(scope.tenant, tid, backend.page_size(limit, 1000), cursor)
        return {"trace_id": tid, **log_page(page)}

    @router.get("/api/v1/logs", tags=["logs"])
    async def search_logs(
        scope: Scope,
        backend: Backend,
        service: Annotated[str | None, Query(description="service.name")] = None,
        severity_min: Annotated[
            str | None,
            Query(description="lowest severity: a level (trace, debug, info, warn, error, fatal) or 1-24"),
        ] = None,
        q: Annotated[str | None, Query(description="text contained in the body (case-insensitive)")] = None,
        trace_id: str | None = None,
        limit: Annotated[int | None, Query(ge=1, description="default 100")] = None,
        cursor: str | None = None,
    ) -> dict[str, Any]:
        """Log records in the window, newest first, with cursor pagination."""
        query = LogQuery(
            start_ns=scope.start_ns,
            end_ns=scope.end_ns,
            service=service or None,
            severity_min=parse_severity(severity_min),
            text=q or None,
            trace_id=normalize_trace_id(trace_id) if trace_id else None,
            limit=backend.page_size(limit, 100),
            cursor=cursor,
        )
        return log_page(await backend.search_logs(scope.tenant, query))

    @router.get("/api/v1/metrics/names", tags=["metrics"])
    async def metric_names(
        scope: Scope,
        backend: Backend,
        service: Annotated[str | None, Query(description="service.name")] = None,
    ) -> dict[str, Any]:
        """The OTLP metrics with data points in the window: name, kind, unit, description, point count."""
        names = await backend.metric_names(scope, service or None)
        return {
            "metrics": [metric_name_document(info) for info in names],
            "start_time": rfc3339(scope.start_ns),
            "end_time": rfc3339(scope.end_ns),
        }

    @router.get("/api/v1/metrics/series", tags=["metrics"])
    async def metric_series(
        scope: Scope,
        backend: Backend,
        name: Annotated[str, Query(min_length=1, description="the metric's name")],
        step: Annotated[
            str | None,
            Query(description="bucket width: seconds or 30s, 5m, 1h, 1d; default about 120 buckets"),
        ] = None,
        agg: Annotated[
            str | None,
            Query(
                description="gauge: avg (default), min, max, last, count; sum: rate (default for counters), "
                "increase, value (default otherwise); histogram, exponential_histogram, summary: p50 "
                "(default) or any pNN, count, sum, avg, rate"
            ),
        ] = None,
        group_by: Annotated[
            list[str] | None,
            Query(description="data point or resource attribute keys, comma-separated or repeated"),
        ] = None,
        kind: Annotated[
            str | None,
            Query(
                description="gauge | sum | histogram | exponential_histogram | summary; needed only when "
                "the name is stored as more than one"
            ),
        ] = None,
        service: Annotated[str | None, Query(description="service.name")] = None,
        attribute: Annotated[
            list[str] | None, Query(description="KEY=VALUE equality on a data point or resource attribute")
        ] = None,
    ) -> dict[str, Any]:
        """A metric's series over the window, bucketed by ``step`` and aggregated in storage: counters as
        rates over their increases (resets handled), distributions as quantiles estimated from buckets."""
        keys = tuple(key.strip() for item in group_by or () for key in item.split(",") if key.strip())
        query = MetricSeriesQuery(
            name=name,
            start_ns=scope.start_ns,
            end_ns=scope.end_ns,
            step_ns=parse_step(step, scope.start_ns, scope.end_ns),
            agg=agg.strip().lower() if agg else None,
            kind=kind or None,
            group_by=keys,
            service=service or None,
            attributes=_pairs(attribute),
        )
        result = await backend.metric_series(scope.tenant, query)
        return metric_series_document(result, scope.start_ns, scope.end_ns)

    @router.get("/api/v1/metrics/summary", tags=["metrics"])
    async def metrics_summary(
        scope: Scope,
        backend: Backend,
        spans: Spans,
        group_by: Annotated[
            str, Query(description="model | provider | project | team | user | operation | service")
        ] = "model",
        step_seconds: Annotated[
            int | None, Query(ge=1, le=2**32 - 1, description="add a time series with this step")
        ] = None,
        group_series: Annotated[
            bool, Query(description="with step_seconds: each group's own series too (groups[].series)")
        ] = False,
    ) -> dict[str, Any]:
        """Request volume, errors, latency percentiles, tokens and cost over model calls, in total and per group."""
        if group_series and step_seconds is None:
            raise InvalidArgument("group_series needs step_seconds")
        summary = await backend.metrics_summary(scope, group_by, spans, step_seconds, group_series)
        return summary_document(summary, scope.start_ns, scope.end_ns)

    @router.get("/api/v1/metrics/cost", tags=["metrics"])
    async def cost_breakdown(
        scope: Scope, backend: Backend, spans: Spans, group_by: str = "model"
    ) -> dict[str, Any]:
        """Cost in USD split into input / output / cache parts, in total and per group."""
        breakdown = await backend.cost_breakdown(scope, group_by, spans)
        return cost_document(breakdown, scope.start_ns, scope.end_ns)

    @router.get("/api/v1/search/semantic", tags=["search"])
    async def semantic_search(
        scope: TenantScope,
        backend: Backend,
        q: Annotated[str, Query(min_length=1)],
        k: Annotated[int, Query(ge=1, le=1000)] = 10,
        model: str | None = None,
        start_time: Annotated[str | None, Query(description="RFC 3339; default: no bound")] = None,
        end_time: Annotated[str | None, Query(description="RFC 3339; default: no bound")] = None,
        kind: Annotated[str, Query(description="prompt | output | all")] = "prompt",
    ) -> dict[str, Any]:
        """Stored prompts (or answers) nearest in meaning to ``q``, best first."""
        hits = await backend.semantic_search(
            scope.tenant,
            q,
            k,
            model,
            parse_time(start_time, "start_time"),
            parse_time(end_time, "end_time"),
            None if kind == "all" else kind,
        )
        return {"results": [dict(hit.fields) for hit in hits]}

    @router.post("/api/v1/auth/login", tags=["auth"])
    async def login(request: Request, body: LoginRequest, backend: Backend) -> dict[str, Any]:
        """Exchange a user's name and password for a bearer JWT.

        Rate-limited per client address and per user name (``auth.login``): 429 with ``Retry-After``."""
        if not backend.auth.enabled:
            raise StarletteHTTPException(404, "auth is disabled: no login needed")
        client = request.client.host if request.client else "unknown"
        token = await backend.logins.login(body.username, body.password, client)
        return {
            "access_token": token.access_token,
            "token_type": token.token_type,
            "expires_in": token.expires_in,
        }

    @router.get("/api/v1/tail", tags=["traces"])
    async def tail(request: Request, scope: TenantScope, backend: Backend, spans: Spans) -> StreamingResponse:
        """Live tail as Server-Sent Events: one ``span`` event per new span matching the filters.

        Tails are capped per principal and in all (429 over a cap); a client that falls more than
        ``tail_max_queued_spans`` spans behind gets an ``error`` event and the stream ends."""
        holder = scope.principal.subject
        if scope.principal.unrestricted and request.client is not None:
            holder = f"{holder}@{request.client.host}"
        subscription = backend.tails.open(holder, scope.tenant, spans)

        async def events() -> AsyncIterator[str]:
            try:
                await backend.tails.ready(subscription)
                yield ": tailing\n\n"
                while True:
                    try:
                        fresh = await subscription.next(_HEARTBEAT_SECONDS)
                    except TailEnded as exc:
                        error = {"error": {"code": "resource_exhausted", "message": str(exc)}}
                        yield f"event: error\ndata: {json.dumps(error)}\n\n"
                        return
                    if not fresh:
                        yield ": keepalive\n\n"
                    for span in fresh:
                        yield f"event: span\ndata: {json.dumps(span_document(span))}\n\n"
            finally:
                subscription.close()

        stream = events()
        # A stream that is never started (the client left first) still gives its place back.
        weakref.finalize(stream, subscription.close).atexit = False
        return StreamingResponse(
            stream, media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
        )

    return router


def _pairs(items: list[str] | None) -> tuple[tuple[str, str], ...]:
    pairs = []
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidArgument(f"attribute must be KEY=VALUE, got {item!r}")
        pairs.append((key, value))
    return tuple(sorted(pairs))
