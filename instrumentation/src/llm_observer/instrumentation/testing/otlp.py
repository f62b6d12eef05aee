"""Decoding what an OTLP/HTTP exporter sent to a :class:`ReplayServer` standing in for the collector."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from llm_observer.instrumentation.testing.replay import RecordedRequest, Route

__all__ = ["ExportedSpan", "otlp_trace_route", "spans_from_requests"]


def otlp_trace_route() -> Route:
    """The route answering ``POST /v1/traces`` like a collector (an empty protobuf response)."""
    return Route("POST", "/v1/traces", body=b"", headers={"Content-Type": "application/x-protobuf"})


@dataclass(frozen=True, slots=True)
class ExportedSpan:
    """One span as received: ids in hex, times in ns, attributes as Python values."""

    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    kind: int
    start_ns: int
    end_ns: int
    status_code: int
    attributes: dict[str, Any]
    resource: dict[str, Any]
    scope: str


def _value(value: AnyValue) -> Any:
    field = value.WhichOneof("value")
    if field == "array_value":
        return tuple(_value(item) for item in value.array_value.values)
    if field == "kvlist_value":
        return _attributes(value.kvlist_value.values)
    return getattr(value, field) if field else None


def _attributes(items: Iterable[KeyValue]) -> dict[str, Any]:
    return {item.key: _value(item.value) for item in items}


def spans_from_requests(requests: Iterable[RecordedRequest]) -> list[ExportedSpan]:
    """Every span in the ``POST /v1/traces`` protobuf requests, in arrival order."""
    spans: list[ExportedSpan] = []
    for request in requests:
        if request.method != "POST" or request.path != "/v1/traces":
            continue
        message = ExportTraceServiceRequest.FromString(request.raw)
        for resource_spans in message.resource_spans:
            resource = _attributes(resource_spans.resource.attributes)
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    spans.append(
                        ExportedSpan(
                            name=span.name,
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_span_id=span.parent_span_id.hex(),
                            kind=span.kind,
                            start_ns=span.start_time_unix_nano,
                            end_ns=span.end_time_unix_nano,
                            status_code=span.status.code,
                            attributes=_attributes(span.attributes),
                            resource=resource,
                            scope=scope_spans.scope.name,
                        )
                    )
    return spans
