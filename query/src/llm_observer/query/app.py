"""The query service's HTTP application: the REST and Jaeger routers, the JSON ingest routes the ``rest``
receiver offers when it runs in the same process, and the JSON error format.

Errors are always ``{"error": {"code": …, "message": …}}``: ``invalid_argument`` 400, ``unauthenticated``
401, ``permission_denied`` 403, ``not_found`` 404, ``resource_exhausted`` 429 and ``unavailable`` 503 (both
with ``Retry-After``), ``internal`` 500.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable, Sequence
from html import escape
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Route

from llm_observer.kernel.auth import LoginThrottled
from llm_observer.kernel.component import HttpRoutes
from llm_observer.kernel.errors import AuthError, Backpressure, PermanentError, RetryableError
from llm_observer.query import alerts_rest, jaeger, rest, sessions
from llm_observer.query.backend import NotFound, QueryBackend
from llm_observer.query.insights import cost_routes, prompt_routes, replay_routes
from llm_observer.query.tail import TooManyTails
from llm_observer.query.web import assets as web_assets
from llm_observer.storage.clickhouse.reads import InvalidArgument

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
    return {"Retry-After": str(max(1, math.ceil(seconds or 1)))}


def install_error_handlers(app: FastAPI) -> None:
    """Map every failure to the JSON error format, counting each response by status."""

    async def auth_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, AuthError)
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        if isinstance(exc, LoginThrottled):
            headers = _retry_after(exc.retry_after)
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

    async def not_found(request: Request, exc: Exception) -> JSONResponse:
        return error_response(404, "not_found", str(exc))

    async def backpressure(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, Backpressure | TooManyTails)
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
    app.add_exception_handler(NotFound, counted(not_found))
    app.add_exception_handler(Backpressure, counted(backpressure))
    app.add_exception_handler(TooManyTails, counted(backpressure))
    app.add_exception_handler(RetryableError, counted(unavailable))
    app.add_exception_handler(PermanentError, counted(permanent))
    app.add_exception_handler(Exception, counted(internal))


def create_app(backend: QueryBackend) -> FastAPI:
    """The whole HTTP application: REST, JSON ingest, Jaeger-compatible API, OpenAPI document and docs.

    The JSON ingest is the ``rest`` receiver's: its routes come in ``backend.ingest_routes``, served here as
    they are. Without them (the query service alone), those paths answer 503."""
    app = FastAPI(
        title="llm-observer query API",
        version="1",
        description="Traces, metrics, costs and semantic search over LLM telemetry; Jaeger-compatible under /jaeger.",
        openapi_url="/openapi.json",
        # FastAPI's Swagger UI and ReDoc pages load their scripts from a CDN (blank offline, and a third
        # party sees who reads the docs): /docs is rendered here instead, from the OpenAPI document.
        docs_url=None,
        redoc_url=None,
    )
    app.state.backend = backend
    install_error_handlers(app)
    if backend.config.http.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(backend.config.http.cors_origins),
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
        )
    app.include_router(rest.build_router())
    app.include_router(sessions.build_router())
    app.include_router(alerts_rest.build_router())
    app.include_router(cost_routes.build_router())
    app.include_router(prompt_routes.build_router())
    app.include_router(replay_routes.build_router())
    if backend.ingest_routes:
        _serve_offered_routes(app, backend.ingest_routes)
    else:
        app.include_router(_no_ingest_router())
    app.include_router(jaeger.build_router(), prefix="/jaeger")

    async def docs() -> HTMLResponse:
        return HTMLResponse(docs_page(app.openapi()))

    app.add_api_route("/docs", docs, methods=["GET"], include_in_schema=False)
    # The web view: the page at ``/`` and its files under ``/web/`` (they hold no data; the API does).
    app.include_router(web_assets.build_router())
    return app


def docs_page(document: dict[str, Any]) -> str:
    """The API reference as one self-contained HTML page (no scripts, no external assets): every operation
    with its parameters, from the OpenAPI document served at ``/openapi.json``."""
    info = document.get("info", {})
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        f"<title>{escape(str(info.get('title', 'API')))}</title>",
        "<style>body{font:15px/1.45 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}"
        "code,.path{font-family:ui-monospace,monospace}.op{border-top:1px solid #ddd;padding:.6rem 0}"
        ".method{display:inline-block;min-width:4.5rem;font-weight:600}table{border-collapse:collapse}"
        "td,th{text-align:left;padding:.15rem .8rem .15rem 0;vertical-align:top}</style></head><body>",
        f"<h1>{escape(str(info.get('title', 'API')))}</h1>",
        f"<p>{escape(str(info.get('description', '')))}</p>",
        '<p>The machine-readable document: <a href="/openapi.json">/openapi.json</a> '
        "(load it into any OpenAPI tool).</p>",
    ]
    for path, operations in document.get("paths", {}).items():
        for method, operation in operations.items():
            if not isinstance(operation, dict):
                continue
            parts.append('<div class="op">')
            parts.append(
                f'<span class="method">{escape(method.upper())}</span> <span class="path">{escape(path)}</span>'
            )
            summary = operation.get("description") or operation.get("summary") or ""
            if summary:
                parts.append(f"<p>{escape(str(summary))}</p>")
            parameters = operation.get("parameters", [])
            if parameters:
                parts.append("<table><tr><th>parameter</th><th>in</th><th></th><th>description</th></tr>")
                for parameter in parameters:
                    required = "required" if parameter.get("required") else ""
                    parts.append(
                        f"<tr><td><code>{escape(str(parameter.get('name', '')))}</code></td>"
                        f"<td>{escape(str(parameter.get('in', '')))}</td><td>{required}</td>"
                        f"<td>{escape(str(parameter.get('description', '')))}</td></tr>"
                    )
                parts.append("</table>")
            parts.append("</div>")
    parts.append("</body></html>")
    return "".join(parts)


_JSON_INGEST_PATHS = ("/api/v1/traces", "/api/v1/traces/batch")


def _serve_offered_routes(app: FastAPI, offers: Sequence[HttpRoutes]) -> None:
    """Serve each offered route as it is, and merge the offers' OpenAPI documents into ours."""
    for offer in offers:
        for path, route_app in offer.http_routes().items():
            app.router.routes.append(Route(path, route_app, methods=["POST"], include_in_schema=False))

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            for offer in offers:
                extra = offer.openapi()
                paths = document.setdefault("paths", {})
                for path, operations in extra.get("paths", {}).items():
                    # Merged by method: POST /api/v1/traces (ingest) sits beside GET (search).
                    paths.setdefault(path, {}).update(operations)
                schemas = extra.get("components", {}).get("schemas", {})
                document.setdefault("components", {}).setdefault("schemas", {}).update(schemas)
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _no_ingest_router() -> APIRouter:
    router = APIRouter(tags=["ingest"])

    async def unavailable() -> JSONResponse:
        return error_response(
            503,
            "unavailable",
            "this query service runs without a collector (standalone query mode): send traces to the "
            "collector's OTLP endpoints or run 'llm-observer up'",
            _retry_after(None),
        )

    for path in _JSON_INGEST_PATHS:
        router.add_api_route(path, unavailable, methods=["POST"], include_in_schema=False)
    return router
