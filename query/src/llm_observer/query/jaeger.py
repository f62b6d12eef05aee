"""A Jaeger-compatible query API under ``/jaeger``, for Grafana's Jaeger datasource and Jaeger's own UI.

Legacy HTTP API (what Grafana calls): ``/api/services``, ``/api/services/{service}/operations``,
``/api/operations``, ``/api/traces`` (search) and ``/api/traces/{id}``, in the ``{"data", "total", "limit",
"offset", "errors"}`` envelope. Stable api_v3: ``/api/v3/services``, ``/api/v3/operations``,
``/api/v3/traces`` and ``/api/v3/traces/{id}`` with OTLP/JSON results. GenAI attributes become tags, typed
(tokens as int64, cost and sampling parameters as float64).

Each route resolves its scope once (the Jaeger spellings of organization and time window are read here,
and resolved by ``QueryBackend.scope`` like every other API's), then presents storage's typed rows.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse

from llm_observer.query.backend import QueryBackend, ReadScope
from llm_observer.query.deps import Backend, QueryPrincipal
from llm_observer.query.formats import parse_time, typed_value
from llm_observer.query.rollup import with_rollup
from llm_observer.storage.clickhouse.reads import (
    MAX_TIME_NS,
    MIN_TIME_NS,
    InvalidArgument,
    ServiceOperation,
    SpanFilter,
    SpanRow,
    TraceIdQuery,
    check_time_ns,
    normalize_trace_id,
)

_KINDS = {"Unspecified": 0, "Internal": 1, "Server": 2, "Client": 3, "Producer": 4, "Consumer": 5}
_KIND_BY_JAEGER = {
    "internal": "Internal",
    "server": "Server",
    "client": "Client",
    "producer": "Producer",
    "consumer": "Consumer",
    "unspecified": "Unspecified",
}
_STATUS = {"Unset": 0, "Ok": 1, "Error": 2}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ns|us|µs|ms|s|m|h)\s*$")
_DURATION_NS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "ms": 1_000_000,
    "s": 10**9,
    "m": 60 * 10**9,
    "h": 3600 * 10**9,
}
_TRACE_LIMIT_MAX = 1500


def parse_duration(value: str | None, name: str) -> int | None:
    """Nanoseconds of a Go duration like ``1.5s``, ``100ms``, ``250us`` (at most 2^63 - 1 ns)."""
    if not value:
        return None
    found = _DURATION.match(value)
    if not found:
        raise InvalidArgument(f"{name} must be a duration like 100ms or 1.5s, got {value!r}")
    ns = float(found.group(1)) * _DURATION_NS[found.group(2)]
    if not (math.isfinite(ns) and ns <= MAX_TIME_NS):
        raise InvalidArgument(f"{name} must be at most 2562047h, got {value!r}")
    return int(ns)


def tag(key: str, value: str) -> dict[str, Any]:
    """A Jaeger tag with the type the attribute has in the conventions (storage keeps strings); arrays
    are JSON strings, as Jaeger's model has no array type."""
    typed = typed_value(key, value)
    if isinstance(typed, bool):
        return {"key": key, "type": "bool", "value": typed}
    if isinstance(typed, int):
        return {"key": key, "type": "int64", "value": typed}
    if isinstance(typed, float):
        return {"key": key, "type": "float64", "value": typed}
    return {"key": key, "type": "string", "value": value}


def _span_tags(span: SpanRow) -> list[dict[str, Any]]:
    tags = [tag(key, value) for key, value in sorted(span.attributes.items())]
    tags.append({"key": "span.kind", "type": "string", "value": span.kind.lower()})
    if span.scope_name:
        tags.append({"key": "otel.scope.name", "type": "string", "value": span.scope_name})
    if span.status != "Unset":
        tags.append({"key": "otel.status_code", "type": "string", "value": span.status.upper()})
    if span.status == "Error":
        tags.append({"key": "error", "type": "bool", "value": True})
        if span.status_message:
            tags.append({"key": "otel.status_description", "type": "string", "value": span.status_message})
    return tags


def jaeger_trace(trace_id: str, spans: Iterable[SpanRow]) -> dict[str, Any]:
    """One trace in the legacy JSON model Grafana parses."""
    processes: dict[str, dict[str, Any]] = {}
    process_ids: dict[tuple[str, tuple[tuple[str, str], ...]], str] = {}
    out = []
    for span in spans:
        resource = tuple(sorted(span.resource.items()))
        process_key = (span.service_name, resource)
        pid = process_ids.get(process_key)
        if pid is None:
            pid = process_ids[process_key] = f"p{len(process_ids) + 1}"
            processes[pid] = {
                "serviceName": span.service_name,
                "tags": [tag(k, v) for k, v in resource if k != "service.name"],
            }
        references = []
        if span.parent_span_id:
            references.append({"refType": "CHILD_OF", "traceID": trace_id, "spanID": span.parent_span_id})
        references.extend(
            {"refType": "FOLLOWS_FROM", "traceID": link.trace_id, "spanID": link.span_id}
            for link in span.links
        )
        out.append(
            {
                "traceID": trace_id,
                "spanID": span.span_id,
                "flags": 1,
                "operationName": span.name,
                "references": references,
                "startTime": span.start_ns // 1000,
                "duration": span.duration_ns // 1000,
                "tags": _span_tags(span),
                "logs": [
                    {
                        "timestamp": event.time_ns // 1000,
                        "fields": [
                            {"key": "event", "type": "string", "value": event.name},
                            *(tag(k, v) for k, v in sorted(event.attributes.items())),
                        ],
                    }
                    for event in span.events
                ],
                "processID": pid,
                "warnings": None,
            }
        )
    return {"traceID": trace_id, "spans": out, "processes": processes, "warnings": None}


def _otlp_value(value: Any) -> dict[str, Any]:
    """A typed value as an OTLP/JSON ``AnyValue``."""
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, list):
        return {"arrayValue": {"values": [_otlp_value(item) for item in value]}}
    return {"stringValue": value if isinstance(value, str) else json.dumps(value)}


def _otlp_attrs(attributes: Mapping[str, str]) -> list[dict[str, Any]]:
    return [
        {"key": key, "value": _otlp_value(typed_value(key, value))}
        for key, value in sorted(attributes.items())
    ]


def otlp_resource_spans(spans: Iterable[SpanRow]) -> list[dict[str, Any]]:
    """Spans as OTLP/JSON ``resourceSpans`` (hex ids, nanosecond strings), grouped by resource and scope."""
    by_resource: dict[tuple[tuple[str, str], ...], dict[tuple[str, str], list[dict[str, Any]]]] = {}
    for span in spans:
        resource = tuple(sorted(span.resource.items()))
        scopes = by_resource.setdefault(resource, {})
        scopes.setdefault((span.scope_name, span.scope_version), []).append(
            {
                "traceId": span.trace_id,
                "spanId": span.span_id,
                "parentSpanId": span.parent_span_id,
                "traceState": span.trace_state,
                "name": span.name,
                "kind": _KINDS.get(span.kind, 0),
                "startTimeUnixNano": str(span.start_ns),
                "endTimeUnixNano": str(span.end_ns),
                "attributes": _otlp_attrs(span.attributes),
                "events": [
                    {
                        "timeUnixNano": str(event.time_ns),
                        "name": event.name,
                        "attributes": _otlp_attrs(event.attributes),
                    }
                    for event in span.events
                ],
                "links": [{"traceId": link.trace_id, "spanId": link.span_id} for link in span.links],
                "status": {"code": _STATUS.get(span.status, 0), "message": span.status_message},
            }
        )
    return [
        {
            "resource": {"attributes": _otlp_attrs(dict(resource))},
            "scopeSpans": [
                {"scope": {"name": name, "version": version}, "spans": items}
                for (name, version), items in scopes.items()
            ],
        }
        for resource, scopes in by_resource.items()
    ]


def _operations(ops: Iterable[ServiceOperation]) -> list[dict[str, str]]:
    return [{"name": op.name, "spanKind": op.kind.lower()} for op in ops]


def _envelope(data: Any, total: int | None = None) -> dict[str, Any]:
    count = total if total is not None else (len(data) if isinstance(data, list) else 0)
    return {"data": data, "total": count, "limit": 0, "offset": 0, "errors": None}


_LOGFMT_PAIR = re.compile(r'\s*([^\s="]+)=("(?:[^"\\]|\\.)*"|[^\s"]*)(?=\s|$)', re.DOTALL)


def _parse_tags(tags: str | None, name: str = "tags") -> tuple[tuple[str, str], ...]:
    """Jaeger's ``tags`` parameter (``name`` as the request spells it): a JSON object, or logfmt
    ``k=v k2="v 2"``. Unquoted values are taken literally (backslashes too); quoted ones take JSON's
    escapes (``\\"``, ``\\\\``, ``\\n``, ``\\u00e9``). Anything else is an ``InvalidArgument`` naming ``name``."""
    if not tags or not tags.strip():
        return ()
    text = tags.strip()
    if text.startswith("{"):
        try:
            parsed = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise InvalidArgument(f"{name} is not valid JSON: {exc}") from exc
        if not isinstance(parsed, dict):
            raise InvalidArgument(f"{name} must be a JSON object")
        try:
            return tuple((str(k), v if isinstance(v, str) else json.dumps(v)) for k, v in parsed.items())
        except (ValueError, RecursionError) as exc:
            raise InvalidArgument(f"{name} holds a value that is not a string, number or flag") from exc
    pairs = []
    position = 0
    while position < len(text):
        found = _LOGFMT_PAIR.match(text, position)
        if found is None:
            raise InvalidArgument(
                f"{name} must be JSON or key=value pairs (quote values with spaces); cannot read {text[position:]!r}"
            )
        key, value = found.group(1), found.group(2)
        if value.startswith('"'):
            try:
                value = json.loads(value)
            except ValueError as exc:
                raise InvalidArgument(f"{name}: the value of {key!r} has a bad escape: {exc}") from exc
        pairs.append((key, value))
        position = found.end()
        while position < len(text) and text[position].isspace():
            position += 1
    return tuple(pairs)


async def _search(
    backend: QueryBackend,
    scope: ReadScope,
    service: str | None,
    operation: str | None,
    tags: tuple[tuple[str, str], ...],
    min_duration: int | None,
    max_duration: int | None,
    limit: int,
) -> dict[str, tuple[SpanRow, ...]]:
    error: bool | None = None
    span_kind: str | None = None
    attributes = []
    for key, value in tags:
        # Tags Jaeger derives from span fields rather than attributes.
        if key == "error":
            error = value.lower() == "true"
        elif key == "span.kind":
            span_kind = _KIND_BY_JAEGER.get(value.lower(), value)
        elif key == "otel.status_code":
            error = value.upper() == "ERROR"
        else:
            attributes.append((key, value))
    query = TraceIdQuery(
        start_ns=scope.start_ns,
        end_ns=scope.end_ns,
        spans=SpanFilter(service=service, span_name=operation, attributes=tuple(attributes)),
        min_duration_ns=min_duration,
        max_duration_ns=max_duration,
        limit=min(max(limit, 1), _TRACE_LIMIT_MAX),
        error=error,
        span_kind=span_kind,
    )
    return await backend.find_traces(scope.tenant, query)


# --- scopes: Jaeger names only the organization (no project) and spells times its own ways --------------


async def _tenant_scope(
    principal: QueryPrincipal, backend: Backend, organization_id: str | None = None
) -> ReadScope:
    return backend.scope(principal, organization_id, None)


async def _search_scope(
    principal: QueryPrincipal,
    backend: Backend,
    start: Annotated[int | None, Query(description="µs since the epoch")] = None,
    end: Annotated[int | None, Query(description="µs since the epoch")] = None,
    lookback: Annotated[str | None, Query(description="a duration before end, e.g. 1h")] = None,
    organization_id: str | None = None,
) -> ReadScope:
    end_ns = check_time_ns(end * 1000, "end") if end is not None else None
    start_ns = check_time_ns(start * 1000, "start") if start is not None else None
    if start_ns is None and lookback and lookback != "custom":
        span = parse_duration(lookback, "lookback")
        if span is not None:
            start_ns = max(MIN_TIME_NS, (end_ns if end_ns is not None else backend.clock()) - span)
    return backend.scope(principal, organization_id, None, start_ns, end_ns, ("start", "end"))


async def _v3_search_scope(
    principal: QueryPrincipal,
    backend: Backend,
    start_min: Annotated[str | None, Query(alias="query.start_time_min", description="RFC 3339")] = None,
    start_max: Annotated[str | None, Query(alias="query.start_time_max", description="RFC 3339")] = None,
    organization_id: str | None = None,
) -> ReadScope:
    start_ns = parse_time(start_min, "query.start_time_min")
    end_ns = parse_time(start_max, "query.start_time_max")
    names = ("query.start_time_min", "query.start_time_max")
    return backend.scope(principal, organization_id, None, start_ns, end_ns, names)


TenantScope = Annotated[ReadScope, Depends(_tenant_scope)]
SearchScope = Annotated[ReadScope, Depends(_search_scope)]
V3SearchScope = Annotated[ReadScope, Depends(_v3_search_scope)]


def _not_found() -> JSONResponse:
    return JSONResponse(
        {
            "data": None,
            "total": 0,
            "limit": 0,
            "offset": 0,
            "errors": [{"code": 404, "msg": "trace not found"}],
        },
        status_code=404,
    )


def build_router() -> APIRouter:
    router = APIRouter(tags=["jaeger"])

    # --- legacy API ----------------------------------------------------------------------------

    @router.get("/api/services")
    async def services(scope: TenantScope, backend: Backend) -> Any:
        return _envelope(list(await backend.services(scope.tenant)))

    @router.get("/api/services/{service}/operations")
    async def service_operations(service: str, scope: TenantScope, backend: Backend) -> Any:
        ops = await backend.operations(scope.tenant, service)
        return _envelope(sorted({op.name for op in ops}))

    @router.get("/api/operations")
    async def operations(
        scope: TenantScope, backend: Backend, service: str, spanKind: str | None = None
    ) -> Any:
        kind = _KIND_BY_JAEGER.get(spanKind.lower(), spanKind) if spanKind else None
        return _envelope(_operations(await backend.operations(scope.tenant, service, kind)))

    @router.get("/api/traces")
    async def find_traces(
        scope: SearchScope,
        backend: Backend,
        service: str | None = None,
        operation: str | None = None,
        tags: str | None = None,
        limit: int = 20,
        minDuration: str | None = None,
        maxDuration: str | None = None,
    ) -> Any:
        found = await _search(
            backend,
            scope,
            service,
            operation or None,
            _parse_tags(tags),
            parse_duration(minDuration, "minDuration"),
            parse_duration(maxDuration, "maxDuration"),
            limit,
        )
        return _envelope([jaeger_trace(tid, spans) for tid, spans in found.items()])

    @router.get("/api/traces/{trace_id}")
    async def get_trace(trace_id: str, scope: TenantScope, backend: Backend) -> Any:
        tid = normalize_trace_id(trace_id)
        spans = await backend.get_trace(scope.tenant, tid)
        if not spans:
            return _not_found()
        return _envelope([jaeger_trace(tid, with_rollup(spans))])

    # --- api_v3 ----------------------------------------------------------------------------------

    @router.get("/api/v3/services")
    async def v3_services(scope: TenantScope, backend: Backend) -> Any:
        return {"services": list(await backend.services(scope.tenant))}

    @router.get("/api/v3/operations")
    async def v3_operations(
        scope: TenantScope, backend: Backend, service: str, span_kind: str | None = None
    ) -> Any:
        kind = _KIND_BY_JAEGER.get(span_kind.lower(), span_kind) if span_kind else None
        return {"operations": _operations(await backend.operations(scope.tenant, service, kind))}

    @router.get("/api/v3/traces")
    async def v3_find_traces(request: Request, scope: V3SearchScope, backend: Backend) -> Any:
        params = request.query_params
        attributes: tuple[tuple[str, str], ...] = ()
        raw_attributes = params.get("query.attributes")
        if raw_attributes:
            attributes = _parse_tags(raw_attributes, "query.attributes")
        # grpc-gateway also spells map entries as query.attributes[key]=value.
        attributes += tuple(
            (key[len("query.attributes[") : -1], value)
            for key, value in params.multi_items()
            if key.startswith("query.attributes[") and key.endswith("]")
        )
        try:
            depth = int(params.get("query.search_depth") or params.get("query.num_traces") or 20)
        except ValueError as exc:
            raise InvalidArgument("query.search_depth must be an integer") from exc
        found = await _search(
            backend,
            scope,
            params.get("query.service_name") or None,
            params.get("query.operation_name") or None,
            attributes,
            parse_duration(params.get("query.duration_min"), "query.duration_min"),
            parse_duration(params.get("query.duration_max"), "query.duration_max"),
            depth,
        )
        return {
            "result": {"resourceSpans": otlp_resource_spans(s for trace in found.values() for s in trace)}
        }

    @router.get("/api/v3/traces/{trace_id}")
    async def v3_get_trace(trace_id: str, scope: TenantScope, backend: Backend) -> Any:
        tid = normalize_trace_id(trace_id)
        spans = await backend.get_trace(scope.tenant, tid)
        if not spans:
            return JSONResponse({"error": {"httpCode": 404, "message": "trace not found"}}, status_code=404)
        return {"result": {"resourceSpans": otlp_resource_spans(with_rollup(spans))}}

    return router
