"""Span builders: ``SpanBatch`` rows for processor and exporter tests, OTLP requests for the receivers.

Realistic agent traffic in bulk (random ids, about 1 KB a span) is ``llm_observer.collector.testing.
genai_request``, which the benchmarks share; these builders make small, exact data.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from llm_observer.kernel.batch import Attributes, Event, Link, SpanBatch
from llm_observer.kernel.otlp_codec import to_any_value

SPAN_KIND_CLIENT = 3
TRACE_ID = bytes(range(1, 17))

GENAI_ATTRIBUTES: Mapping[str, Any] = {
    "gen_ai.operation.name": "chat",
    "gen_ai.provider.name": "openai",
    "gen_ai.request.model": "gpt-4o",
    "gen_ai.usage.input_tokens": 100,
    "gen_ai.usage.output_tokens": 20,
}


# --- SpanBatch ---------------------------------------------------------------------------------------


def add_span(
    batch: SpanBatch,
    attributes: Attributes | None = None,
    *,
    resource: Attributes | None = None,
    trace_id: bytes = TRACE_ID,
    span_id: bytes | None = None,
    parent_span_id: bytes = b"",
    trace_state: str = "",
    name: str = "chat gpt-4o",
    kind: int = SPAN_KIND_CLIENT,
    start: int | None = None,
    end: int | None = None,
    status_code: int = 0,
    status_message: str = "",
    scope_name: str = "test",
    scope_version: str = "",
    events: list[Event] | None = None,
    links: list[Link] | None = None,
) -> int:
    """Append one span to ``batch`` and return its row.

    ``attributes`` and ``resource`` are stored as given, not copied: pass one resource map to several spans
    to share it as the spans of one OTLP ``ResourceSpans`` do. Defaults: span id = the row number plus one,
    start a second ago, 1.5 ms long, ``{"service.name": "svc"}`` as resource."""
    row = len(batch)
    begin = time.time_ns() - 1_000_000_000 if start is None else start
    values: dict[str, Any] = {
        "trace_id": trace_id,
        "span_id": (row + 1).to_bytes(8, "big") if span_id is None else span_id,
        "parent_span_id": parent_span_id,
        "trace_state": trace_state,
        "name": name,
        "kind": kind,
        "start_time_unix_nano": begin,
        "end_time_unix_nano": begin + 1_500_000 if end is None else end,
        "status_code": status_code,
        "status_message": status_message,
        "attributes": {} if attributes is None else attributes,
        "resource": {"service.name": "svc"} if resource is None else resource,
        "scope_name": scope_name,
        "scope_version": scope_version,
        "events": [] if events is None else events,
        "links": [] if links is None else links,
    }
    for column, cells in batch.columns():
        cells.append(values[column])  # a KeyError here: SpanBatch grew a column this builder must learn
    return row


def span_batch(
    *attributes: Attributes,
    resource: Attributes | None = None,
    events: Sequence[list[Event]] | None = None,
    origin: str = "",
    **fields: Any,
) -> SpanBatch:
    """A batch of one span per ``attributes`` map, all sharing one resource map (``{"service.name": "svc"}``
    unless given); ``events[i]`` are span ``i``'s events; other keyword arguments go to every ``add_span``."""
    batch = SpanBatch(origin=origin)
    shared = {"service.name": "svc"} if resource is None else resource
    for row, attrs in enumerate(attributes):
        add_span(batch, attrs, resource=shared, events=events[row] if events else None, **fields)
    return batch


# --- OTLP requests ---------------------------------------------------------------------------------


def kv(key: str, value: Any) -> KeyValue:
    """An OTLP attribute, typed as the collector decodes it back (str, bool, int, float, bytes, list…)."""
    out = KeyValue(key=key)
    to_any_value(value, out.value)
    return out


def trace_request(
    count: int = 3,
    attributes: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None,
    resource: Mapping[str, Any] | None = None,
    duration_ns: int = 250_000_000,
) -> ExportTraceServiceRequest:
    """An OTLP request of ``count`` valid client spans of one new trace (the first is the parent of the
    others), random unique ids, ending about a minute ago.

    ``attributes``: one map for every span or one per span (default: a GenAI chat span, ``GENAI_ATTRIBUTES``);
    ``resource`` default: ``{"service.name": "test-app"}``. Span names are ``{operation} {model}``."""
    request = ExportTraceServiceRequest()
    rs = request.resource_spans.add()
    rs.resource.attributes.extend(kv(k, v) for k, v in (resource or {"service.name": "test-app"}).items())
    ss = rs.scope_spans.add()
    ss.scope.name = "tests.support"
    trace_id = os.urandom(16)
    root = b""
    start = time.time_ns() - 60_000_000_000
    for index in range(count):
        if attributes is None:
            attrs: Mapping[str, Any] = GENAI_ATTRIBUTES
        elif isinstance(attributes, Mapping):
            attrs = attributes
        else:
            attrs = attributes[index]
        span = ss.spans.add()
        span.trace_id = trace_id
        span.span_id = os.urandom(8)
        span.parent_span_id = root
        span.name = f"{attrs.get('gen_ai.operation.name', 'op')} {attrs.get('gen_ai.request.model', '')}"
        span.kind = Span.SPAN_KIND_CLIENT
        span.start_time_unix_nano = start + index * 1_000_000
        span.end_time_unix_nano = span.start_time_unix_nano + duration_ns
        span.attributes.extend(kv(k, v) for k, v in attrs.items())
        if index == 0:
            root = span.span_id
    return request
