"""FastAPI dependencies every HTTP route shares: the backend, the authenticated principal, the read scope
and the span filter parameters.

A route declares what it needs as a parameter (``scope: Scope``); the scope is resolved once per request by
``QueryBackend.scope`` from the parameters the API spells (the Jaeger routes spell theirs in ``jaeger``).
Every dependency is ``async``: they do no I/O, and FastAPI would run a plain ``def`` in its thread pool, a
thread hop per dependency per request.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Query, Request

from llm_observer.kernel.auth import Principal
from llm_observer.query.backend import QueryBackend, ReadScope
from llm_observer.query.formats import parse_time
from llm_observer.storage.clickhouse.reads import InvalidArgument, SpanFilter


async def backend_of(request: Request) -> QueryBackend:
    backend: QueryBackend = request.app.state.backend
    return backend


def require(scope: str) -> Callable[[Request], Awaitable[Principal]]:
    """A dependency authenticating the caller for ``scope`` (raises 401 / 403)."""

    async def dependency(request: Request) -> Principal:
        backend: QueryBackend = request.app.state.backend
        return backend.auth.authenticate(request.headers.get("authorization"), scope)

    return dependency


QueryPrincipal = Annotated[Principal, Depends(require("query"))]
Backend = Annotated[QueryBackend, Depends(backend_of)]


START_TIME_DOC = "RFC 3339; default end_time minus query.default_lookback_hours (24 h)"
END_TIME_DOC = (
    "RFC 3339; default one minute from now, so that spans from clients whose clocks run a little ahead "
    "are included"
)


async def read_scope(
    principal: QueryPrincipal,
    backend: Backend,
    organization_id: str | None = None,
    project_id: str | None = None,
    start_time: Annotated[str | None, Query(description=START_TIME_DOC)] = None,
    end_time: Annotated[str | None, Query(description=END_TIME_DOC)] = None,
) -> ReadScope:
    """The caller's scope over a time window (REST reads that aggregate or search)."""
    start, end = parse_time(start_time, "start_time"), parse_time(end_time, "end_time")
    return backend.scope(principal, organization_id, project_id, start, end)


async def tenant_scope(
    principal: QueryPrincipal,
    backend: Backend,
    organization_id: str | None = None,
    project_id: str | None = None,
) -> ReadScope:
    """The caller's scope for reads that no time window bounds (by id, the live tail, semantic search)."""
    return backend.scope(principal, organization_id, project_id)


Scope = Annotated[ReadScope, Depends(read_scope)]
TenantScope = Annotated[ReadScope, Depends(tenant_scope)]


async def span_filter(
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
