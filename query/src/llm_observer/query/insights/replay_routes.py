"""``POST /api/v1/traces/{trace_id}/replay``: re-issue a stored trace's LLM calls and answer the diff.

Body (JSON, every field optional)::

    {"span_id": "…", "model": "gpt-4o-mini", "base_url": "https://…", "base_urls": {"anthropic": "…"},
     "api_keys": {"openai": "sk-…"}}

Answer: the :class:`~llm_observer.query.insights.replay_diff.ReplayResult` document (``replay_trace_id``,
``calls: [diff…]``, ``totals``). Tenant-scoped like every read (``organization_id`` / ``project_id`` query
parameters, the caller's key or token); because a replay spends provider credit and writes a trace, the
caller needs the ``ingest`` scope besides ``query``.

The new trace goes over OTLP/HTTP to the collector named by ``app.state.replay_otlp_endpoint`` (what
``llm-observer up`` sets to its own OTLP/HTTP receiver), else ``LLM_OBSERVER_REPLAY_OTLP_ENDPOINT``, else
``http://127.0.0.1:4318``, with the headers of ``app.state.replay_otlp_headers``, else of
``LLM_OBSERVER_REPLAY_OTLP_HEADERS`` (``key=value`` pairs separated by commas, as
``OTEL_EXPORTER_OTLP_HEADERS``: an ingest key when the collector requires one).

Provider API keys come from the request's ``api_keys`` or the service's environment (``OPENAI_API_KEY``,
``ANTHROPIC_API_KEY``); they are neither logged nor stored. A request that points a provider at another
``base_url`` must bring that provider's key itself: the service's own key is never sent to a host the
caller chose.

Errors: 404 ``not_found`` (no such trace in the caller's tenant, or the span is not an LLM call of it);
400 ``failed_precondition`` (content not captured — the message names the spans — or no API key); 501
``unimplemented`` (a provider replay does not support yet, or the replay packages are not installed).
"""

from __future__ import annotations

import asyncio
import os
from typing import Annotated, Any
from urllib.parse import unquote

from fastapi import APIRouter, Body, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from llm_observer.kernel.errors import PermissionDenied
from llm_observer.query.backend import QueryBackend, ReadScope
from llm_observer.query.deps import Backend, TenantScope
from llm_observer.query.insights.replay_diff import ReplayResult
from llm_observer.storage.clickhouse.reads import normalize_trace_id

__all__ = [
    "OTLP_ENDPOINT_ENV",
    "OTLP_HEADERS_ENV",
    "ReplayRefused",
    "ReplayRequest",
    "backend_otlp_endpoint",
    "build_router",
    "env_otlp_headers",
    "run_replay",
]

OTLP_ENDPOINT_ENV = "LLM_OBSERVER_REPLAY_OTLP_ENDPOINT"
OTLP_HEADERS_ENV = "LLM_OBSERVER_REPLAY_OTLP_HEADERS"
_DEFAULT_OTLP_ENDPOINT = "http://127.0.0.1:4318"


class ReplayRequest(BaseModel):
    """What to replay and where to send it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    span_id: str | None = Field(default=None, description="replay only this LLM span of the trace")
    model: str | None = Field(default=None, description="the model every replayed call asks for instead")
    base_url: str | None = Field(default=None, description="the provider SDK's base URL, for every provider")
    base_urls: dict[str, str] = Field(
        default_factory=dict, description="base URL per provider (gen_ai.provider.name)"
    )
    api_keys: dict[str, str] = Field(
        default_factory=dict,
        repr=False,
        description="API key per provider; default the service's OPENAI_API_KEY / ANTHROPIC_API_KEY",
    )


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def _otlp_endpoint(request: Request) -> str:
    configured = getattr(request.app.state, "replay_otlp_endpoint", None)
    if isinstance(configured, str) and configured:
        return configured
    return backend_otlp_endpoint(request.app.state.backend)


class ReplayRefused(Exception):
    """A replay that could not start: ``status`` and ``code`` are its REST error (gRPC maps them too)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


async def run_replay(
    backend: QueryBackend,
    scope: ReadScope,
    trace_id: str,
    asked: ReplayRequest,
    otlp_endpoint: str,
    otlp_headers: dict[str, str] | None = None,
) -> ReplayResult:
    """Replay ``trace_id`` (of the scope's tenant) as ``asked``: what REST and gRPC share. Raises
    ``PermissionDenied`` without the ingest scope and :class:`ReplayRefused` when the replay cannot start."""
    if "ingest" not in scope.principal.scopes:
        raise PermissionDenied(
            f"{scope.principal.subject} may not replay: a replay writes a trace, which needs the ingest scope"
        )
    try:
        from llm_observer.query.insights import replay as replay_module
    except ImportError as exc:
        raise ReplayRefused(
            501,
            "unimplemented",
            f"replay needs the instrumentation and processors packages ({exc.name} is missing)",
        ) from exc
    tid = normalize_trace_id(trace_id)
    rows = await backend.get_trace(scope.tenant, tid)
    if not rows:
        raise ReplayRefused(404, "not_found", f"trace {tid} not found")
    base_urls = dict(asked.base_urls)
    if asked.base_url:
        base_urls.setdefault("*", asked.base_url)
    options = replay_module.ReplayOptions(
        span_id=asked.span_id,
        model=asked.model,
        base_urls=base_urls,
        api_keys=dict(asked.api_keys),
        otlp_endpoint=otlp_endpoint,
        otlp_headers=dict(otlp_headers or {}),
        # The service's own keys never go to a host the caller chose.
        env_keys_with_base_url=False,
    )
    try:
        recorded = replay_module.recorded_trace_from_rows(tid, rows)
        result = await asyncio.to_thread(replay_module.replay_trace, recorded, options)
    except replay_module.ReplayError as exc:
        raise ReplayRefused(exc.status, exc.code, str(exc)) from exc
    backend.count("replays")
    return result


def env_otlp_headers() -> dict[str, str]:
    """The headers of ``LLM_OBSERVER_REPLAY_OTLP_HEADERS`` (``key=value,key2=value2``; values may be
    percent-encoded, as in ``OTEL_EXPORTER_OTLP_HEADERS``); pairs without ``=`` are ignored."""
    headers: dict[str, str] = {}
    for pair in os.environ.get(OTLP_HEADERS_ENV, "").split(","):
        key, sep, value = pair.partition("=")
        if sep and key.strip():
            headers[key.strip()] = unquote(value.strip())
    return headers


def backend_otlp_endpoint(backend: QueryBackend) -> str:
    """Where a replay sends its trace when the app names no endpoint: the backend's (``up``), else
    ``LLM_OBSERVER_REPLAY_OTLP_ENDPOINT``, else the default OTLP/HTTP port on this host."""
    return backend.replay_otlp_endpoint or os.environ.get(OTLP_ENDPOINT_ENV) or _DEFAULT_OTLP_ENDPOINT


def build_router() -> APIRouter:
    """The replay route (include it in the query app)."""
    router = APIRouter(tags=["insights"])

    @router.post(
        "/api/v1/traces/{trace_id}/replay",
        response_model=ReplayResult,
        responses={400: {}, 403: {}, 404: {}, 501: {}},
    )
    async def replay(
        trace_id: str,
        request: Request,
        scope: TenantScope,
        backend: Backend,
        body: Annotated[ReplayRequest | None, Body()] = None,
    ) -> Any:
        """Re-issue the trace's recorded LLM calls (or one, ``span_id``) through the provider's SDK,
        record the run as a new trace linked to the original, and answer the per-call diff of output,
        tokens, cost and latency."""
        try:
            return await run_replay(
                backend,
                scope,
                trace_id,
                body or ReplayRequest(),
                _otlp_endpoint(request),
                dict(getattr(request.app.state, "replay_otlp_headers", None) or env_otlp_headers()),
            )
        except ReplayRefused as exc:
            return _error(exc.status, exc.code, str(exc))

    return router
