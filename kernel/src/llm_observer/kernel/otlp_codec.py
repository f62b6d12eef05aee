"""Conversion between OTLP protobuf messages and ``SpanBatch``, and ingest-time span validation."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from llm_observer.kernel.batch import COLUMNS, Attributes, AttrValue, Event, Link, SpanBatch
from llm_observer.kernel.limits import MAX_JSON_DEPTH, UNLIMITED, TimeLimits

try:
    from llm_observer.kernel import _otlp_native
except ImportError:  # built without a C compiler: the protobuf runtime decodes everything
    _otlp_native = None  # type: ignore[assignment]

NATIVE_DECODE = _otlp_native is not None
# Absent from a decoder built before it existed (an editable install not rebuilt): every span is then checked
# in Python.
_count_valid_spans = getattr(_otlp_native, "count_valid_spans", None)
_U64_MAX = (1 << 64) - 1
"""Whether ``decode_trace_bytes`` reads request bytes natively (the C extension was built)."""

# The order in which the native decoder fills a batch's columns.
_NATIVE_COLUMNS = (
    "trace_id", "span_id", "parent_span_id", "trace_state", "name", "kind", "start_time_unix_nano",
    "end_time_unix_nano", "status_code", "status_message", "attributes", "resource", "scope_name",
    "scope_version", "events", "links",
)  # fmt: skip
assert COLUMNS == _NATIVE_COLUMNS, "SpanBatch columns changed: update _otlp_native.c and this tuple"


def any_value(value: AnyValue) -> AttrValue:
    which = value.WhichOneof("value")
    if which == "string_value":
        return value.string_value
    if which == "int_value":
        return value.int_value
    if which == "double_value":
        return value.double_value
    if which == "bool_value":
        return value.bool_value
    if which == "array_value":
        values = value.array_value.values
        # Arrays of strings (finish reasons, stop sequences) are the common case: skip the recursion.
        if all(v.WhichOneof("value") == "string_value" for v in values):
            return [v.string_value for v in values]
        return [any_value(v) for v in values]
    if which == "kvlist_value":
        return {kv.key: any_value(kv.value) for kv in value.kvlist_value.values}
    if which == "bytes_value":
        return value.bytes_value
    return None


def attributes_of(kvs: Iterable[KeyValue]) -> Attributes:
    out: Attributes = {}
    for kv in kvs:
        value = kv.value
        which = value.WhichOneof("value")
        # The scalar cases inline: this loop runs for every attribute of every span.
        if which == "string_value":
            out[kv.key] = value.string_value
        elif which == "int_value":
            out[kv.key] = value.int_value
        elif which == "double_value":
            out[kv.key] = value.double_value
        elif which == "bool_value":
            out[kv.key] = value.bool_value
        else:
            out[kv.key] = any_value(value)
    return out


def decode_traces(request: ExportTraceServiceRequest, into: SpanBatch | None = None) -> SpanBatch:
    """Append every span of ``request`` to ``into`` (a new batch when omitted) and return it."""
    batch = into if into is not None else SpanBatch()
    trace_id, span_id, parent = batch.trace_id, batch.span_id, batch.parent_span_id
    trace_state, name, kind = batch.trace_state, batch.name, batch.kind
    start, end = batch.start_time_unix_nano, batch.end_time_unix_nano
    status_code, status_message = batch.status_code, batch.status_message
    attributes, resource = batch.attributes, batch.resource
    scope_name, scope_version = batch.scope_name, batch.scope_version
    events, links = batch.events, batch.links
    for rs in request.resource_spans:
        res = attributes_of(rs.resource.attributes)
        for ss in rs.scope_spans:
            sname, sversion = ss.scope.name, ss.scope.version
            for span in ss.spans:
                trace_id.append(span.trace_id)
                span_id.append(span.span_id)
                parent.append(span.parent_span_id)
                trace_state.append(span.trace_state)
                name.append(span.name)
                kind.append(span.kind)
                start.append(span.start_time_unix_nano)
                end.append(span.end_time_unix_nano)
                status = span.status
                status_code.append(status.code)
                status_message.append(status.message)
                attributes.append(attributes_of(span.attributes))
                resource.append(res)
                scope_name.append(sname)
                scope_version.append(sversion)
                events.append(
                    [Event(e.time_unix_nano, e.name, attributes_of(e.attributes)) for e in span.events]
                    if span.events
                    else []
                )
                links.append(
                    [
                        Link(ln.trace_id, ln.span_id, ln.trace_state, attributes_of(ln.attributes))
                        for ln in span.links
                    ]
                    if span.links
                    else []
                )
    return batch


def decode_trace_bytes(payload: bytes, into: SpanBatch | None = None) -> SpanBatch:
    """Append every span of the serialised ``ExportTraceServiceRequest`` to ``into`` and return it.

    The same batch as ``decode_traces(ExportTraceServiceRequest.FromString(payload))``, five to six times as
    fast in pipeline-sized batches (``bench/bench_decode.py``) when the native decoder is built: it reads the
    wire format without building the message, and equal short strings (keys, names) are one object. What it
    does not handle as the protobuf runtime does (unexpected wire types, invalid UTF-8, deep nesting,
    truncation) goes the slow way, which raises ``DecodeError`` for bytes that are not a request. It reads only
    the fields a ``SpanBatch`` holds, so damage confined to the others (a scope's attributes, a schema URL)
    does not stop it; ingest has parsed every request in full before it reaches the WAL.
    """
    batch = into if into is not None else SpanBatch()
    if _otlp_native is not None:
        before = len(batch)
        columns = tuple(getattr(batch, name) for name in _NATIVE_COLUMNS)
        try:
            _otlp_native.decode_traces(payload, columns, Event, Link)
            return batch
        except _otlp_native.Unsupported:
            for column in columns:
                del column[before:]
    return decode_traces(ExportTraceServiceRequest.FromString(payload), batch)


def to_any_value(value: AttrValue, out: AnyValue) -> None:
    if isinstance(value, str):
        out.string_value = value
    elif isinstance(value, bool):
        out.bool_value = value
    elif isinstance(value, int):
        out.int_value = value
    elif isinstance(value, float):
        out.double_value = value
    elif isinstance(value, bytes):
        out.bytes_value = value
    elif isinstance(value, (list, tuple)):
        array = out.array_value
        for item in value:
            to_any_value(item, array.values.add())
    elif isinstance(value, dict):
        kvlist = out.kvlist_value
        for key, item in value.items():
            kv = kvlist.values.add()
            kv.key = key
            to_any_value(item, kv.value)
    elif value is not None:
        out.string_value = str(value)


def _fill_attributes(target: Any, attributes: Attributes) -> None:
    for key, value in attributes.items():
        kv = target.add()
        kv.key = key
        to_any_value(value, kv.value)


def encode_traces(batch: SpanBatch) -> ExportTraceServiceRequest:
    """The batch as one OTLP request, spans grouped by their (shared) resource map and scope."""
    request = ExportTraceServiceRequest()
    by_resource: dict[int, ResourceSpans] = {}
    by_scope: dict[tuple[int, str, str], ScopeSpans] = {}
    for i in range(len(batch)):
        res = batch.resource[i]
        rs = by_resource.get(id(res))
        if rs is None:
            rs = request.resource_spans.add()
            _fill_attributes(rs.resource.attributes, res)
            by_resource[id(res)] = rs
        scope_key = (id(res), batch.scope_name[i], batch.scope_version[i])
        ss = by_scope.get(scope_key)
        if ss is None:
            ss = rs.scope_spans.add()
            ss.scope.name, ss.scope.version = scope_key[1], scope_key[2]
            by_scope[scope_key] = ss
        span: Span = ss.spans.add()
        span.trace_id = batch.trace_id[i]
        span.span_id = batch.span_id[i]
        span.parent_span_id = batch.parent_span_id[i]
        span.trace_state = batch.trace_state[i]
        span.name = batch.name[i]
        span.kind = batch.kind[i]  # type: ignore[assignment]
        span.start_time_unix_nano = batch.start_time_unix_nano[i]
        span.end_time_unix_nano = batch.end_time_unix_nano[i]
        span.status.code = batch.status_code[i]  # type: ignore[assignment]
        span.status.message = batch.status_message[i]
        _fill_attributes(span.attributes, batch.attributes[i])
        for event in batch.events[i]:
            ev = span.events.add()
            ev.time_unix_nano, ev.name = event.time_unix_nano, event.name
            _fill_attributes(ev.attributes, event.attributes)
        for link in batch.links[i]:
            ln = span.links.add()
            ln.trace_id, ln.span_id, ln.trace_state = link.trace_id, link.span_id, link.trace_state
            _fill_attributes(ln.attributes, link.attributes)
    return request


# --- ingest-time validation ------------------------------------------------------------------------

_ZERO_TRACE = bytes(16)
_ZERO_SPAN = bytes(8)


INVALID_SPAN = "invalid_span"
EXPIRED = "expired"
"""Why a span is refused at ingest: ``EXPIRED`` when it starts before its storage's retention began."""


def span_problem(span: Span, limits: TimeLimits = UNLIMITED, now_unix_nano: int = 0) -> str | None:
    """Why this span cannot be stored, or None when it is valid.

    Times are checked against ``limits``; the start time also against its retention at ``now_unix_nano``.
    """
    tid = span.trace_id
    if len(tid) != 16 or tid == _ZERO_TRACE:
        return "trace_id must be 16 bytes and not all zero"
    sid = span.span_id
    if len(sid) != 8 or sid == _ZERO_SPAN:
        return "span_id must be 8 bytes and not all zero"
    parent = span.parent_span_id
    if parent and len(parent) != 8:
        return "parent_span_id must be empty or 8 bytes"
    start, end = span.start_time_unix_nano, span.end_time_unix_nano
    if start == 0:
        return "start_time_unix_nano is missing"
    if end < start:
        return "end_time_unix_nano is before start_time_unix_nano"
    problem = limits.start_problem("start_time_unix_nano", start, now_unix_nano) or limits.time_problem(
        "end_time_unix_nano", end
    )
    if problem is not None:
        return problem
    for index, event in enumerate(span.events):
        problem = limits.time_problem(f"events[{index}].time_unix_nano", event.time_unix_nano)
        if problem is not None:
            return problem
    return None


@dataclass(frozen=True, slots=True)
class Rejected:
    """What ``drop_invalid_spans`` removed: how many spans were kept, how many were refused per reason
    (``INVALID_SPAN``, ``EXPIRED``), and a message naming the first problem."""

    kept: int
    refused: dict[str, int]
    first: str

    @property
    def count(self) -> int:
        return sum(self.refused.values())


def drop_invalid_spans(
    request: ExportTraceServiceRequest,
    limits: TimeLimits = UNLIMITED,
    now_unix_nano: int | None = None,
    raw: bytes | None = None,
) -> Rejected:
    """Remove invalid spans from ``request`` in place (times checked against ``limits`` at
    ``now_unix_nano``, default the current time). ``raw``, the bytes ``request`` was parsed from, lets the
    native decoder settle the usual case, every span valid, without a Python step per span."""
    now = time.time_ns() if now_unix_nano is None else now_unix_nano
    earliest = limits.earliest_start(now)
    latest = limits.latest_unix_nano
    if raw is not None and _count_valid_spans is not None:
        valid = _count_valid_spans(raw, min(max(earliest, 0), _U64_MAX), min(max(latest, 0), _U64_MAX))
        if valid is not None:
            return Rejected(valid, {}, "")
    kept = 0
    refused: dict[str, int] = {}
    first = ""
    for rs in request.resource_spans:
        for ss in rs.scope_spans:
            bad: list[int] = []
            for index, span in enumerate(ss.spans):
                # The common case, valid and without events, checked inline (this runs for every span before
                # it is acknowledged); anything else takes ``span_problem``, which says what is wrong.
                tid, sid, start, end = (
                    span.trace_id,
                    span.span_id,
                    span.start_time_unix_nano,
                    span.end_time_unix_nano,
                )
                if (
                    len(tid) == 16
                    and len(sid) == 8
                    and tid != _ZERO_TRACE
                    and sid != _ZERO_SPAN
                    and len(span.parent_span_id) in (0, 8)
                    and 0 < start <= end <= latest
                    and start >= earliest
                    and not span.events
                ):
                    kept += 1
                    continue
                problem = span_problem(span, limits, now)
                if problem is None:
                    kept += 1
                    continue
                bad.append(index)
                start = span.start_time_unix_nano
                reason = EXPIRED if 0 < start < earliest and problem.startswith("start_") else INVALID_SPAN
                refused[reason] = refused.get(reason, 0) + 1
                if not first:
                    first = f"span {span.span_id.hex() or '?'}: {problem}"
            for index in reversed(bad):
                del ss.spans[index]
    return Rejected(kept, refused, first)


def log_record_problem(record: LogRecord, limits: TimeLimits = UNLIMITED) -> str | None:
    """Why this log record's times cannot be stored (with the span its content may join), or None."""
    return limits.time_problem("time_unix_nano", record.time_unix_nano) or limits.time_problem(
        "observed_time_unix_nano", record.observed_time_unix_nano
    )


def drop_invalid_log_records(
    request: ExportLogsServiceRequest, limits: TimeLimits = UNLIMITED
) -> tuple[int, int, str]:
    """Remove log records whose times cannot be stored from ``request`` in place.

    Returns (records kept, records rejected, message naming the first problem).
    """
    kept = rejected = 0
    first = ""
    for rl in request.resource_logs:
        for sl in rl.scope_logs:
            bad: list[int] = []
            for index, record in enumerate(sl.log_records):
                problem = log_record_problem(record, limits)
                if problem is None:
                    kept += 1
                else:
                    bad.append(index)
                    if not first:
                        first = f"log record {index} of span {record.span_id.hex() or '-'}: {problem}"
            if bad:
                rejected += len(bad)
                for index in reversed(bad):
                    del sl.log_records[index]
    return kept, rejected, first


# --- OTLP/JSON ------------------------------------------------------------------------------------

_ID_FIELDS = frozenset({"traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id"})


def hex_ids_to_base64(node: Any, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """OTLP/JSON carries ids as hex; protobuf's JSON mapping wants base64. Convert in place.

    Raises ValueError for an id that is not hex, and for objects and arrays nested deeper than
    ``max_depth`` (no recursion: a deep body cannot exhaust the stack here).
    """
    stack: list[tuple[Any, int]] = [(node, 1)]
    while stack:
        current, depth = stack.pop()
        if depth > max_depth:
            raise ValueError(f"body nests objects and arrays deeper than {max_depth} levels")
        if isinstance(current, dict):
            for key, value in current.items():
                if key in _ID_FIELDS and isinstance(value, str):
                    try:
                        current[key] = base64.b64encode(bytes.fromhex(value)).decode("ascii")
                    except ValueError as exc:
                        raise ValueError(f"{key} {value!r} is not hex") from exc
                elif isinstance(value, dict | list):
                    stack.append((value, depth + 1))
        elif isinstance(current, list):
            stack.extend((item, depth + 1) for item in current if isinstance(item, dict | list))
    return node


def json_depth_problem(node: Any, max_depth: int = MAX_JSON_DEPTH) -> str | None:
    """A message when objects and arrays in ``node`` nest deeper than ``max_depth``, else None."""
    if not isinstance(node, dict | list):
        return None
    stack: list[tuple[Any, int]] = [(node, 1)]
    while stack:
        current, depth = stack.pop()
        children = current.values() if isinstance(current, dict) else current
        for child in children:
            if isinstance(child, dict | list):
                if depth + 1 > max_depth:
                    return f"body nests objects and arrays deeper than {max_depth} levels"
                stack.append((child, depth + 1))
    return None


def loads(body: bytes | str) -> Any:
    """``json.loads`` that raises ValueError, with a readable message, for every body it cannot read:
    invalid UTF-8, invalid JSON, and nesting too deep for the parser."""
    try:
        text = body.decode("utf-8") if isinstance(body, bytes) else body
    except UnicodeDecodeError as exc:
        raise ValueError(f"body is not valid UTF-8 at byte {exc.start}") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from exc
    except RecursionError as exc:
        raise ValueError(f"body nests objects and arrays deeper than {MAX_JSON_DEPTH} levels") from exc


def json_body_to_dict(body: bytes) -> Any:
    """Parse an OTLP/JSON body; raises ValueError with a readable message."""
    return hex_ids_to_base64(loads(body))


def base64_ids_to_hex(node: Any) -> Any:
    """The reverse of ``hex_ids_to_base64``: protobuf's JSON mapping writes ids as base64, OTLP/JSON as
    hex. Converts in place (no recursion)."""
    stack: list[Any] = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, dict):
            for key, value in current.items():
                if key in _ID_FIELDS and isinstance(value, str):
                    current[key] = base64.b64decode(value).hex()
                elif isinstance(value, dict | list):
                    stack.append(value)
        elif isinstance(current, list):
            stack.extend(item for item in current if isinstance(item, dict | list))
    return node


def to_otlp_json(message: Message) -> bytes:
    """An OTLP message (a request, or ``TracesData`` / ``LogsData`` / ``MetricsData``) as OTLP/JSON: lowerCamelCase
    keys, enums as integers, trace and span ids as hex, as every OTLP/JSON reader expects."""
    data = json_format.MessageToDict(message, use_integers_for_enums=True)
    return json.dumps(base64_ids_to_hex(data), separators=(",", ":")).encode()
