"""The REST API (``/api/v1/…``), ``/health``, the live tail (SSE) and the JSON error format.

Errors are always ``{"error": {"code": …, "message": …}}``: ``invalid_argument`` 400, ``unauthenticated``
401, ``permission_denied`` 403, ``not_found`` 404, ``resource_exhausted`` 429 and ``unavailable`` 503 (both
with ``Retry-After``), ``internal`` 500.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from llm_observer.kernel.auth import Principal
from llm_observer.kernel.errors import AuthError, Backpressure, PermanentError, RetryableError
from llm_observer.query.backend import QueryBackend, tail_spans, tenant_for
from llm_observer.query.formats import metrics_document, parse_time, rfc3339, span_document, trace_summary
from llm_observer.query.json_ingest import JsonTrace, JsonTraceBatch
from llm_observer.storage.clickhouse.reads import InvalidArgument, SpanFilter, TraceQuery, normalize_trace_id

logger = logging.getLogger(__name__)

_STATUS_CODES = {
    400: "invalid_argument",
    401: "unauthenticated",
    403: "permission_denied",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    422: "invalid_argument",
    429: "resource_exhausted",
    503: "unavailable",
}


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


def _retry_after(seconds: float | None) -> dict[str, str]:
    return {"Retry-After": str(max(1, round(seconds or 1)))}


def install_error_handlers(app: FastAPI) -> None:
    """Map every failure to the JSON error format."""

    async def auth_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, AuthError)
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return error_response(exc.status, exc.code, str(exc), headers)

    async def invalid(request: Request, exc: Exception) -> JSONResponse:
        if isinstance(exc, RequestValidationError):
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err.get('loc', ()))}: {err.get('msg', '')}"
                for err in exc.errors()
            )
            return error_response(400, "invalid_argument", problems or "invalid request")
        return error_response(400, "invalid_argument", str(exc))

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        code = _STATUS_CODES.get(exc.status_code, "error")
        return error_response(exc.status_code, code, str(exc.detail), getattr(exc, "headers", None))

    async def backpressure(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, Backpressure)
        return error_response(429, "resource_exhausted", str(exc), _retry_after(exc.retry_after))

    async def unavailable(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RetryableError)
        return error_response(503, "unavailable", str(exc), _retry_after(exc.retry_after))

    async def permanent(request: Request, exc: Exception) -> JSONResponse:
        logger.error("A query failed: %s", exc)
        return error_response(500, "internal", "the query failed; see the query service's log")

    async def internal(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("Unexpected error serving %s", request.url.path)
        return error_response(500, "internal", "internal error")

    def counted(
        handler: Callable[[Request, Exception], Awaitable[JSONResponse]],
    ) -> Callable[[Request, Exception], Awaitable[JSONResponse]]:
        async def wrapper(request: Request, exc: Exception) -> JSONResponse:
            response = await handler(request, exc)
            backend = getattr(request.app.state, "backend", None)
            if backend is not None:
                backend.count(f"http_{response.status_code}")
            return response

        return wrapper

    app.add_exception_handler(AuthError, counted(auth_error))
    app.add_exception_handler(InvalidArgument, counted(invalid))
    app.add_exception_handler(RequestValidationError, counted(invalid))
    app.add_exception_handler(StarletteHTTPException, counted(http_error))
    app.add_exception_handler(Backpressure, counted(backpressure))
    app.add_exception_handler(RetryableError, counted(unavailable))
    app.add_exception_handler(PermanentError, counted(permanent))
    app.add_exception_handler(Exception, counted(internal))


def backend_of(request: Request) -> QueryBackend:
    backend: QueryBackend = request.app.state.backend
    return backend


def require(scope: str) -> Callable[[Request], Awaitable[Principal]]:
    """A dependency authenticating the caller for ``scope`` (raises 401 / 403)."""

    async def dependency(request: Request) -> Principal:
        return backend_of(request).auth.authenticate(request.headers.get("authorization"), scope)

    return dependency


QueryPrincipal = Annotated[Principal, Depends(require("query"))]
IngestPrincipal = Annotated[Principal, Depends(require("ingest"))]
Backend = Annotated[QueryBackend, Depends(backend_of)]


def span_filter(
    service: Annotated[str | None, Query(description="service.name")] = None,
    model: Annotated[str | None, Query(description="request or response model")] = None,
    provider: Annotated[str | None, Query(description="gen_ai.provider.name")] = None,
    operation: Annotated[str | None, Query(description="gen_ai.operation.name")] = None,
    name: Annotated[str | None, Query(description="span name")] = None,
    user_id: str | None = None,
    team_id: str | None = None,
    session_id: Annotated[str | None, Query(description="session.id / gen_ai.conversation.id")] = None,
    attribute: Annotated[
        list[str] | None, Query(description="KEY=VALUE equality on a span or resource attribute (repeatable)")
    ] = None,
    q: Annotated[
        str | None, Query(description="text contained in a prompt, answer, span name or error")
    ] = None,
) -> SpanFilter:
    pairs = []
    for item in attribute or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidArgument(f"attribute must be KEY=VALUE, got {item!r}")
        pairs.append((key, value))
    return SpanFilter(
        service=service,
        model=model,
        provider=provider,
        operation=operation,
        span_name=name,
        user_id=user_id,
        team_id=team_id,
        conversation_id=session_id,
        attributes=tuple(pairs),
        text=q,
    )


Spans = Annotated[SpanFilter, Depends(span_filter)]


class LoginRequest(BaseModel):
    username: str = Field(min_length=1, max_length=256)
    password: str = Field(min_length=1, max_length=1024)


def build_router() -> APIRouter:
    router = APIRouter()

    @router.get("/health", tags=["service"])
    async def health(backend: Backend) -> dict[str, Any]:
        """Liveness: the service answers and storage is reachable."""
        return {
            "status": "ok",
            "storage": backend.store.client.endpoint,
            "ingest": backend.ingest is not None,
        }

    @router.get("/api/v1/traces", tags=["traces"])
    async def list_traces(
        principal: QueryPrincipal,
        backend: Backend,
        spans: Spans,
        organization_id: str | None = None,
        project_id: str | None = None,
        start_time: Annotated[str | None, Query(description="RFC 3339; default end_time - 24 h")] = None,
        end_time: Annotated[str | None, Query(description="RFC 3339; default now")] = None,
        status: Annotated[str | None, Query(description="ok | error | unset")] = None,
        min_duration_ms: float | None = None,
        max_duration_ms: float | None = None,
        min_cost: Annotated[float | None, Query(description="minimum trace cost in USD")] = None,
        limit: Annotated[int | None, Query(ge=1)] = None,
        cursor: str | None = None,
    ) -> dict[str, Any]:
        """Trace summaries, newest first, with cursor pagination."""
        tenant = tenant_for(principal, organization_id, project_id)
        start, end = backend.time_range(
            parse_time(start_time, "start_time"), parse_time(end_time, "end_time")
        )
        query = TraceQuery(
            start_ns=start,
            end_ns=end,
            spans=spans,
            status=status.lower() if status else None,
            min_duration_ms=min_duration_ms,
            max_duration_ms=max_duration_ms,
            min_cost_usd=min_cost,
            limit=backend.page_size(limit),
            cursor=cursor,
        )
        rows, next_cursor = await backend.search_traces(tenant, query)
        return {"traces": [trace_summary(row) for row in rows], "next_cursor": next_cursor}

    @router.get("/api/v1/traces/{trace_id}", tags=["traces"])
    async def get_trace(
        trace_id: str,
        principal: QueryPrincipal,
        backend: Backend,
        organization_id: str | None = None,
        project_id: str | None = None,
    ) -> dict[str, Any]:
        """Every span of one trace, ordered by start time."""
        tenant = tenant_for(principal, organization_id, project_id)
        tid = normalize_trace_id(trace_id)
        spans = await backend.get_trace(tenant, tid)
        if not spans:
            raise StarletteHTTPException(404, f"trace {tid} not found")
        return {"trace_id": tid, "spans": [span_document(span) for span in spans]}

    @router.get("/api/v1/metrics/summary", tags=["metrics"])
    async def metrics_summary(
        principal: QueryPrincipal,
        backend: Backend,
        spans: Spans,
        organization_id: str | None = None,
        project_id: str | None = None,
        start_time: str | None = None,
        end_time: str | None = None,
        group_by: Annotated[
            str, Query(description="model | provider | project | team | user | operation | service")
        ] = "model",
        step_seconds: Annotated[
            int | None, Query(ge=1, description="add a time series with this step")
        ] = None,
    ) -> dict[str, Any]:
        """Request volume, errors, latency percentiles, tokens and cost over model calls, in total and per group."""
        tenant = tenant_for(principal, organization_id, project_id)
        start, end = backend.time_range(
            parse_time(start_time, "start_time"), parse_time(end_time, "end_time")
        )
        result = await backend.metrics_summary(tenant, start, end, group_by, spans, step_seconds)
        return _summary_document(result, start, end)

    @router.get("/api/v1/metrics/cost", tags=["metrics"])
    async def cost_breakdown(
        principal: QueryPrincipal,
        backend: Backend,
        spans: Spans,
        organization_id: str | None = None,
        project_id: str | None = None,
        start_time: str | None = None,
        end_time: str | None = None,
        group_by: str = "model",
    ) -> dict[str, Any]:
        """Cost in USD split into input / output / cache parts, in total and per group."""
        tenant = tenant_for(principal, organization_id, project_id)
        start, end = backend.time_range(
            parse_time(start_time, "start_time"), parse_time(end_time, "end_time")
        )
        result = await backend.cost_breakdown(tenant, start, end, group_by, spans)
        return _cost_document(result, start, end)

    @router.get("/api/v1/search/semantic", tags=["search"])
    async def semantic_search(
        principal: QueryPrincipal,
        backend: Backend,
        q: Annotated[str, Query(min_length=1)],
        k: Annotated[int, Query(ge=1, le=1000)] = 10,
        organization_id: str | None = None,
        project_id: str | None = None,
        model: str | None = None,
        start_time: str | None = None,
        end_time: str | None = None,
        kind: Annotated[str, Query(description="prompt | output | all")] = "prompt",
    ) -> dict[str, Any]:
        """Stored prompts (or answers) nearest in meaning to ``q``, best first."""
        tenant = tenant_for(principal, organization_id, project_id)
        results = await backend.semantic_search(
            tenant,
            q,
            k,
            model,
            parse_time(start_time, "start_time"),
            parse_time(end_time, "end_time"),
            None if kind == "all" else kind,
        )
        return {"results": results}

    @router.post("/api/v1/traces", tags=["ingest"], status_code=202)
    async def ingest_trace(trace: JsonTrace, principal: IngestPrincipal, backend: Backend) -> dict[str, Any]:
        """Ingest one trace in the JSON format; it takes the same WAL and pipeline as OTLP."""
        accepted, trace_ids = await backend.ingest_json(principal, [trace])
        return {"accepted_spans": accepted, "trace_id": trace_ids[0]}

    @router.post("/api/v1/traces/batch", tags=["ingest"], status_code=202)
    async def ingest_batch(
        body: JsonTraceBatch | list[JsonTrace], principal: IngestPrincipal, backend: Backend
    ) -> dict[str, Any]:
        """Ingest many traces: ``{"traces": [...]}`` or a bare list."""
        traces = body.traces if isinstance(body, JsonTraceBatch) else body
        accepted, trace_ids = await backend.ingest_json(principal, traces)
        return {"accepted_spans": accepted, "accepted_traces": len(traces), "trace_ids": trace_ids}

    @router.post("/api/v1/auth/login", tags=["auth"])
    async def login(body: LoginRequest, backend: Backend) -> dict[str, Any]:
        """Exchange a user's name and password for a bearer JWT."""
        if not backend.auth.enabled:
            raise StarletteHTTPException(404, "auth is disabled: no login needed")
        token = backend.auth.login(body.username, body.password)
        return {
            "access_token": token.access_token,
            "token_type": token.token_type,
            "expires_in": token.expires_in,
        }

    @router.get("/api/v1/tail", tags=["traces"])
    async def tail(
        request: Request,
        principal: QueryPrincipal,
        backend: Backend,
        spans: Spans,
        organization_id: str | None = None,
        project_id: str | None = None,
    ) -> StreamingResponse:
        """Live tail as Server-Sent Events: one ``span`` event per new span matching the filters."""
        tenant = tenant_for(principal, organization_id, project_id)

        async def events() -> AsyncIterator[str]:
            yield ": tailing\n\n"
            async for fresh in tail_spans(backend, tenant, spans):
                if await request.is_disconnected():
                    return
                for span in fresh:
                    yield f"event: span\ndata: {json.dumps(span_document(span))}\n\n"

        return StreamingResponse(
            events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
        )

    return router


def _summary_document(result: dict[str, Any], start: int, end: int) -> dict[str, Any]:
    doc = metrics_document(result)
    doc.update(
        start_time=rfc3339(start),
        end_time=rfc3339(end),
        group_by=result["group_by"],
        groups=[metrics_document(group) for group in result["groups"]],
    )
    doc[f"by_{result['group_by']}"] = {group["key"]: group for group in doc["groups"]}
    if "series" in result:
        doc["series"] = [metrics_document(point) for point in result["series"]]
    return doc


def _cost_document(result: dict[str, Any], start: int, end: int) -> dict[str, Any]:
    return {**result, "start_time": rfc3339(start), "end_time": rfc3339(end)}


def create_app(backend: QueryBackend) -> FastAPI:
    """The whole HTTP application: REST, Jaeger-compatible API, OpenAPI document and docs."""
    from llm_observer.query.jaeger import build_jaeger_router

    app = FastAPI(
        title="llm-observer query API",
        version="1",
        description="Traces, metrics, costs and semantic search over LLM telemetry; Jaeger-compatible under /jaeger.",
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url="/redoc",
    )
    app.state.backend = backend
    install_error_handlers(app)
    if backend.config.http.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(backend.config.http.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
        )
    app.include_router(build_router())
    app.include_router(build_jaeger_router(), prefix="/jaeger")
    return app
