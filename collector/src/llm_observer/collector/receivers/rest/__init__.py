"""The ``rest`` receiver: the JSON ingest ``POST /api/v1/traces`` (one trace) and ``POST /api/v1/traces/batch``
(``{"traces": [...]}`` or a bare list).

Each trace becomes OTel GenAI spans (``format.py``) and takes the same WAL and pipeline as OTLP; the answer,
202 with the accepted span count and trace ids, comes once the WAL holds them. Its routes are served on the
query service's HTTP port when both run in one process (``llm-observer up``), and on ``endpoint`` when that
is set. With ingest keys on, the key decides the tenant (the ``tenant`` processor applies it). Errors use the
query API's shape, ``{"error": {"code", "message"}}``.

A request is taken whole or not at all: any field that cannot be stored (a time outside what the storage
behind the receiver holds or keeps, a number too large, JSON nested too deeply) is a 400 naming the field,
and nothing of the request is kept.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import Field, TypeAdapter, ValidationError

from llm_observer.collector.receivers.asgi import Receive, Send, header, read_body, respond
from llm_observer.collector.receivers.rest.format import (
    JsonTrace,
    JsonTraceBatch,
    tenant_of,
    time_problem,
    to_batch,
    to_otlp,
)
from llm_observer.kernel.batch import SpanBatch
from llm_observer.kernel.component import (
    SIGNAL_TRACES,
    AsgiApp,
    Authenticate,
    ComponentConfig,
    CreateContext,
    Factory,
    Ingest,
    IngestMeta,
    Receiver,
)
from llm_observer.kernel.endpoints import Endpoint
from llm_observer.kernel.errors import AuthError, Backpressure, PermanentError, RetryableError
from llm_observer.kernel.limits import UNLIMITED, TimeLimits
from llm_observer.kernel.otlp_codec import json_depth_problem, loads
from llm_observer.kernel.servers import AsgiServer, serve_asgi
from llm_observer.kernel.telemetry import Telemetry

logger = logging.getLogger(__name__)

TRACE_PATH = "/api/v1/traces"
BATCH_PATH = "/api/v1/traces/batch"
_MIB = 1 << 20
_BATCH = TypeAdapter(JsonTraceBatch | list[JsonTrace])


class RestReceiverConfig(ComponentConfig):
    endpoint: Endpoint | None = Field(
        None, description="a listener of its own; unset, the routes are served on the query HTTP port only"
    )
    max_request_body_size_mib: float = Field(16, gt=0)


class _Refused(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.headers = status, code, headers


def _problems(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in ('body', *err.get('loc', ())))}: {err.get('msg', '')}"
        for err in exc.errors()
    )


def _retry_after(seconds: float | None) -> dict[str, str]:
    return {"Retry-After": str(max(1, round(seconds or 1)))}


class JsonIngestApp:
    """The two routes as a bare ASGI app."""

    def __init__(
        self,
        component_id: str,
        ingest: Ingest,
        telemetry: Telemetry,
        authenticate: Authenticate | None,
        max_body: int,
        limits: TimeLimits = UNLIMITED,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self.component_id = component_id
        self.ingest = ingest
        self.telemetry = telemetry
        self.authenticate = authenticate
        self.max_body = max_body
        self.limits = limits
        self.clock = clock  # the current time in Unix nanoseconds: retention is measured from it

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        extra: dict[str, str] | None = None
        try:
            status, document = 202, await self._handle(scope, receive)
        except _Refused as refused:
            status, extra = refused.status, refused.headers
            document = {"error": {"code": refused.code, "message": str(refused)}}
        except AuthError as exc:  # the key itself, or a tenant it may not write to
            status = exc.status
            extra = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
            document = {"error": {"code": exc.code, "message": str(exc)}}
        await respond(send, status, json.dumps(document).encode(), "application/json", extra)

    async def _handle(self, scope: dict[str, Any], receive: Receive) -> dict[str, Any]:
        path = scope["path"].rstrip("/")
        if path not in (TRACE_PATH, BATCH_PATH):
            raise _Refused(404, "not_found", f"no JSON ingest at {path}")
        if scope["method"] != "POST":
            raise _Refused(405, "method_not_allowed", "use POST", {"Allow": "POST"})
        authorization = header(scope, b"authorization")
        meta = self.authenticate(authorization) if self.authenticate is not None else None
        declared = header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body:
            raise _Refused(413, "payload_too_large", f"the body of {declared} bytes is over {self.max_body}")
        body = await read_body(receive, self.max_body)
        if body is None:
            raise _Refused(413, "payload_too_large", f"the body is over {self.max_body} bytes")
        try:
            data = loads(body)
        except ValueError as exc:
            raise _Refused(400, "invalid_argument", str(exc)) from exc
        too_deep = json_depth_problem(data)
        if too_deep is not None:
            raise _Refused(400, "invalid_argument", too_deep)
        try:
            if path == TRACE_PATH:
                traces = [JsonTrace.model_validate(data)]
                paths = ["body"]
            else:
                parsed = _BATCH.validate_python(data)
                traces = parsed.traces if isinstance(parsed, JsonTraceBatch) else parsed
                where = "body.traces" if isinstance(parsed, JsonTraceBatch) else "body"
                paths = [f"{where}.{index}" for index in range(len(traces))]
        except ValidationError as exc:
            raise _Refused(400, "invalid_argument", _problems(exc) or "invalid request") from exc
        accepted, trace_ids = await self._ingest(traces, paths, meta)
        if path == TRACE_PATH:
            return {"accepted_spans": accepted, "trace_id": trace_ids[0]}
        return {"accepted_spans": accepted, "accepted_traces": len(traces), "trace_ids": trace_ids}

    def _batches(
        self, traces: list[JsonTrace], paths: list[str], meta: IngestMeta | None
    ) -> list[tuple[IngestMeta, SpanBatch]]:
        """One batch per tenant; refuses the whole request when any span cannot be stored."""
        groups: dict[tuple[str, str], list[int]] = {}
        for index, trace in enumerate(traces):
            groups.setdefault(tenant_of(trace, meta), []).append(index)
        now = self.clock()
        out: list[tuple[IngestMeta, SpanBatch]] = []
        for (org, project), indexes in groups.items():
            group = [traces[i] for i in indexes]
            batch = to_batch(group, org, project, now)
            problem = time_problem(group, batch, [paths[i] for i in indexes], self.limits, now)
            if problem is not None:
                reason, message = problem
                spans = sum(len(trace.spans) for trace in traces)
                self.telemetry.received.labels(self.component_id).inc(spans)
                self.telemetry.refused.labels(self.component_id, reason).inc(spans)
                raise _Refused(400, "invalid_argument", message)
            out.append((IngestMeta(organization_id=org, project_id=project), batch))
        return out

    async def _ingest(
        self, traces: list[JsonTrace], paths: list[str], meta: IngestMeta | None
    ) -> tuple[int, list[str]]:
        batches = self._batches(traces, paths, meta)
        t = self.telemetry
        spans = sum(len(trace.spans) for trace in traces)
        t.received.labels(self.component_id).inc(spans)
        count = 0
        trace_ids: list[str] = []
        for tenant, batch in batches:
            try:
                payload, ids = to_otlp(batch)
            except (ValueError, OverflowError) as exc:  # e.g. a string with a lone surrogate
                t.refused.labels(self.component_id, "invalid_span").inc(spans - count)
                raise _Refused(400, "invalid_argument", f"body: cannot encode the spans: {exc}") from exc
            try:
                await self.ingest(SIGNAL_TRACES, payload, tenant)
            except Backpressure as exc:
                t.refused.labels(self.component_id, exc.reason).inc(spans - count)
                raise _Refused(429, "resource_exhausted", str(exc), _retry_after(exc.retry_after)) from exc
            except RetryableError as exc:
                t.refused.labels(self.component_id, "unavailable").inc(spans - count)
                raise _Refused(503, "unavailable", str(exc), _retry_after(exc.retry_after)) from exc
            except PermanentError as exc:
                t.refused.labels(self.component_id, "invalid").inc(spans - count)
                raise _Refused(400, "invalid_argument", str(exc)) from exc
            accepted = len(batch)
            t.accepted.labels(self.component_id).inc(accepted)
            count += accepted
            trace_ids.extend(ids)
        return count, trace_ids


class RestReceiver:
    """Offers its routes to the query service's HTTP server, and listens on ``endpoint`` when set."""

    def __init__(self, app: JsonIngestApp, config: RestReceiverConfig) -> None:
        self.app = app
        self.config = config
        self.http_port = 0
        self._server: AsgiServer | None = None

    def http_routes(self) -> Mapping[str, AsgiApp]:
        return {TRACE_PATH: self.app, BATCH_PATH: self.app}

    def openapi(self) -> Mapping[str, Any]:
        return openapi_document()

    async def start(self) -> None:
        if self.config.endpoint is not None and self._server is None:
            self._server = await serve_asgi(self.app, self.config.endpoint, "receivers.rest.endpoint")
            self.http_port = self._server.port
            logger.info("JSON ingest listening on %s", self.config.endpoint)

    async def shutdown(self) -> None:
        if self._server is not None:
            await self._server.stop()
            self._server = None


def _create(ctx: CreateContext, config: RestReceiverConfig) -> Receiver:
    if ctx.ingest is None:
        raise ValueError("the rest receiver needs an ingest")
    authenticate: Authenticate | None = ctx.extras.get("authenticate")
    app = JsonIngestApp(
        ctx.component_id,
        ctx.ingest,
        ctx.telemetry,
        authenticate,
        int(config.max_request_body_size_mib * _MIB),
        ctx.time_limits,
    )
    return RestReceiver(app, config)


factory = Factory("rest", RestReceiverConfig, _create)


def openapi_document() -> dict[str, Any]:
    """The two routes as OpenAPI paths, their request bodies from the pydantic models."""
    ref = "#/components/schemas/{model}"
    schemas: dict[str, Any] = {}
    for model in (JsonTrace, JsonTraceBatch):
        schema = model.model_json_schema(ref_template=ref)
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema

    def operation(summary: str, body: dict[str, Any], answer: dict[str, Any]) -> dict[str, Any]:
        return {
            "post": {
                "tags": ["ingest"],
                "summary": summary,
                "requestBody": {"required": True, "content": {"application/json": {"schema": body}}},
                "responses": {
                    "202": {"description": "in the WAL", "content": {"application/json": {"schema": answer}}},
                    "400": {"description": "invalid_argument"},
                    "401": {"description": "unauthenticated"},
                    "403": {"description": "permission_denied"},
                    "429": {"description": "resource_exhausted (Retry-After)"},
                },
            }
        }

    counts = {"accepted_spans": {"type": "integer"}}
    trace_answer = {"type": "object", "properties": {**counts, "trace_id": {"type": "string"}}}
    batch_answer = {
        "type": "object",
        "properties": {
            **counts,
            "accepted_traces": {"type": "integer"},
            "trace_ids": {"type": "array", "items": {"type": "string"}},
        },
    }
    trace_ref = {"$ref": ref.format(model="JsonTrace")}
    batch_body = {
        "anyOf": [{"$ref": ref.format(model="JsonTraceBatch")}, {"type": "array", "items": trace_ref}]
    }
    return {
        "paths": {
            TRACE_PATH: operation("Ingest one trace in the JSON format", trace_ref, trace_answer),
            BATCH_PATH: operation("Ingest many traces", batch_body, batch_answer),
        },
        "components": {"schemas": schemas},
    }
