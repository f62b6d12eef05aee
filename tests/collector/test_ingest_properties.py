"""Property-based tests of ingest: whatever a client sends, the answer is a 2xx or a 4xx with a message,
never a 5xx, and the valid spans of a request are stored while nothing storage cannot hold is acknowledged.

One real collector serves every example: the OTLP receiver (gRPC and HTTP) and the ``rest`` JSON ingest,
feeding the ``debug`` sink and the ``clickhouse`` exporter (chDB, 30-day retention) whose limits the
receivers enforce. Each example tags its spans (a resource attribute, a metadata key) so that the sink tells
its spans apart from every other example's.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import grpc
import httpx
import pytest
from google.protobuf import json_format
from google.rpc import status_pb2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from llm_observer.collector.service import Service
from llm_observer.collector.testing import local_config
from llm_observer.exporters.clickhouse import ClickHouseExporterConfig, time_limits
from llm_observer.exporters.debug import DebugExporter
from llm_observer.kernel.limits import INT64_MAX, INT64_MIN
from tests.support import kv, wait_until

TTL_DAYS = 30
LIMITS = time_limits(ClickHouseExporterConfig(ttl_days=TTL_DAYS))
DAY_NS = 86_400 * 1_000_000_000
TAG = "test.example"
TRACE_EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
PROPERTY_SETTINGS = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


class Collector:
    """A ``Service`` running in an event loop of its own thread, for synchronous Hypothesis tests."""

    def __init__(self, service: Service, loop: asyncio.AbstractEventLoop) -> None:
        self.service = service
        self.loop = loop
        ports = service.endpoints()
        self.grpc_target = f"127.0.0.1:{ports['otlp.grpc']}"
        self.otlp_http = f"http://127.0.0.1:{ports['otlp.http']}/v1/traces"
        self.rest = f"http://127.0.0.1:{ports['rest.http']}"
        self.http = httpx.Client(timeout=30)
        self.channel = grpc.insecure_channel(self.grpc_target)
        self.export = self.channel.unary_unary(
            TRACE_EXPORT, request_serializer=None, response_deserializer=None
        )

    def spans(self) -> list[dict[str, Any]]:
        sink = self.service.exporters["debug"]
        assert isinstance(sink, DebugExporter)
        return list(sink.spans)  # one C-level copy: the collector's thread appends meanwhile

    def tagged(self, tag: str) -> list[dict[str, Any]]:
        return [s for s in self.spans() if tag in (s["resource"].get(TAG), s["attributes"].get(TAG_ATTR))]

    def arrived(self, tag: str, count: int) -> list[dict[str, Any]] | None:
        """The example's spans once at least ``count`` of them are in the sink, else None."""
        found = self.tagged(tag)
        return found if len(found) >= count else None

    def failed_in_storage(self) -> float | None:
        return self.service.telemetry.registry.get_sample_value(
            "llm_observer_spans_failed_total",
            {"pipeline": "traces", "exporter": "clickhouse", "reason": "permanent"},
        )


TAG_ATTR = f"llm_observer.metadata.{TAG}"


@pytest.fixture(scope="module")
def collector(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Collector]:
    config = local_config(
        tmp_path_factory.mktemp("ingest-properties"),
        {
            "receivers": {"rest": {"endpoint": "127.0.0.1:0"}},
            "exporters": {"debug": {"keep_last": 1_000_000}, "clickhouse": {"ttl_days": TTL_DAYS}},
            "service": {
                "pipelines": {
                    "traces": {"receivers": ["otlp", "rest"], "exporters": ["debug", "clickhouse"]}
                },
                "delivery": {"linger_seconds": 0.01, "drain_timeout_seconds": 10},
            },
        },
    )
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="collector", daemon=True)
    thread.start()
    service = Service(config)
    asyncio.run_coroutine_threadsafe(service.start(), loop).result(120)
    running = Collector(service, loop)
    try:
        yield running
        assert running.failed_in_storage() is None, "storage refused spans ingest acknowledged"
    finally:
        running.http.close()
        running.channel.close()
        asyncio.run_coroutine_threadsafe(service.shutdown(), loop).result(120)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)


# --- strategies -----------------------------------------------------------------------------------------

NOW = time.time_ns()
times = st.one_of(
    st.integers(0, (1 << 64) - 1),
    st.integers(NOW - 2 * TTL_DAYS * DAY_NS, NOW + DAY_NS),
    st.sampled_from(
        [0, 1, 1 << 63, (1 << 63) - 1, (1 << 64) - 1, LIMITS.latest_unix_nano, 4_294_967_295 * 10**9]
    ),
)
attribute_values: st.SearchStrategy[Any] = st.recursive(
    st.one_of(
        st.text(max_size=20),
        st.integers(INT64_MIN, INT64_MAX),
        st.floats(),
        st.booleans(),
        st.binary(max_size=10),
        st.none(),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@st.composite
def hostile_spans(draw: st.DrawFn) -> Span:
    span = Span(
        trace_id=draw(st.one_of(st.binary(min_size=16, max_size=16), st.binary(max_size=17))),
        span_id=draw(st.one_of(st.binary(min_size=8, max_size=8), st.binary(max_size=9))),
        parent_span_id=draw(st.one_of(st.just(b""), st.binary(max_size=9))),
        name=draw(st.text(max_size=30)),
        start_time_unix_nano=draw(times),
        end_time_unix_nano=draw(times),
    )
    span.kind = draw(st.sampled_from(list(Span.SpanKind.values())))
    for key, value in draw(st.dictionaries(st.text(max_size=10), attribute_values, max_size=4)).items():
        span.attributes.append(kv(key, value))
    for when in draw(st.lists(times, max_size=3)):
        span.events.add(time_unix_nano=when, name="event")
    return span


def valid_span(start: int) -> Span:
    """A span every part of the collector must take: fresh ids, times well inside what storage keeps."""
    return Span(
        trace_id=os.urandom(15) + b"\x01",
        span_id=os.urandom(7) + b"\x01",
        name="valid",
        start_time_unix_nano=start,
        end_time_unix_nano=start + 1_000_000,
    )


def storable(span: dict[str, Any]) -> bool:
    start, end = span["start_time_unix_nano"], span["end_time_unix_nano"]
    times_ok = 0 < start <= end <= LIMITS.latest_unix_nano
    events_ok = all(0 <= e.time_unix_nano <= LIMITS.latest_unix_nano for e in span["events"])
    return times_ok and events_ok and start >= LIMITS.earliest_start(time.time_ns()) - DAY_NS


def _request(tag: str, spans: list[Span]) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    rs = request.resource_spans.add()
    rs.resource.attributes.append(kv(TAG, tag))
    rs.scope_spans.add().spans.extend(spans)
    return request


def _hex_json(request: ExportTraceServiceRequest) -> bytes:
    data = json_format.MessageToDict(request)
    for rs in data.get("resourceSpans", []):
        for ss in rs.get("scopeSpans", []):
            for span in ss.get("spans", []):
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in span:
                        span[key] = base64.b64decode(span[key]).hex()
    return json.dumps(data).encode()


def _http_status(response: httpx.Response) -> status_pb2.Status:
    if response.headers["content-type"].startswith("application/json"):
        return json_format.Parse(response.text, status_pb2.Status(), ignore_unknown_fields=True)
    return status_pb2.Status.FromString(response.content)


def _check_stored(collector: Collector, tag: str, valid: list[Span], expected: int) -> None:
    """The example's spans arrive: exactly ``expected`` of them, every valid one among them, none that
    storage cannot hold."""
    spans: list[dict[str, Any]] | None = []
    if expected:
        spans = wait_until(
            lambda: collector.arrived(tag, expected),
            what=lambda: f"{expected} spans of example {tag}, have {len(collector.tagged(tag))}",
        )
    assert spans is not None and len(spans) == expected
    stored_ids = {(s["trace_id"], s["span_id"]) for s in spans}
    assert {(s.trace_id, s.span_id) for s in valid} <= stored_ids
    assert all(storable(s) for s in spans), [s for s in spans if not storable(s)]


# --- OTLP -------------------------------------------------------------------------------------------------


@PROPERTY_SETTINGS
@given(
    hostile=st.lists(hostile_spans(), max_size=4),
    valid_at=st.lists(st.integers(0, 4), max_size=2),
    transport=st.sampled_from(["grpc", "http-protobuf", "http-json"]),
)
def test_ingest_properties_otlp_keeps_valid_spans_and_refuses_the_rest(
    collector: Collector, hostile: list[Span], valid_at: list[int], transport: str
) -> None:
    tag = uuid.uuid4().hex
    valid = [valid_span(NOW - i * 1_000_000_000) for i in range(len(valid_at))]
    spans = list(hostile)
    for span, position in zip(valid, valid_at, strict=True):
        spans.insert(min(position, len(spans)), span)
    request = _request(tag, spans)
    total = len(valid) + len(hostile)
    if transport == "grpc":
        response = ExportTraceServiceResponse.FromString(
            collector.export(request.SerializeToString(), timeout=30)
        )
    else:
        is_json = transport == "http-json"
        http = collector.http.post(
            collector.otlp_http,
            content=_hex_json(request) if is_json else request.SerializeToString(),
            headers={"content-type": "application/json" if is_json else "application/x-protobuf"},
        )
        if is_json and http.status_code == 400:
            # protobuf's JSON mapping refuses what its binary form carries (NaN keys, invalid UTF-8 in bytes
            # turned text): a 400 with a message, and nothing of the request kept.
            assert _http_status(http).message
            return
        assert http.status_code == 200, http.text[:500]
        response = (
            json_format.Parse(http.text, ExportTraceServiceResponse())
            if is_json
            else ExportTraceServiceResponse.FromString(http.content)
        )
    rejected = response.partial_success.rejected_spans
    assert 0 <= rejected <= len(hostile)
    if rejected:
        assert response.partial_success.error_message
    _check_stored(collector, tag, valid, total - rejected)


@PROPERTY_SETTINGS
@given(body=st.binary(max_size=300), transport=st.sampled_from(["grpc", "http"]))
def test_ingest_properties_otlp_protobuf_bytes_never_fail_the_server(
    collector: Collector, body: bytes, transport: str
) -> None:
    if transport == "grpc":
        try:
            collector.export(body, timeout=30)
        except grpc.RpcError as exc:
            assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT, exc
            assert exc.details()
        return
    response = collector.http.post(
        collector.otlp_http, content=body, headers={"content-type": "application/x-protobuf"}
    )
    assert response.status_code in (200, 400), response.content[:300]
    if response.status_code == 400:
        assert _http_status(response).message


OTLP_KEYS = [
    "resourceSpans", "scopeSpans", "spans", "resource", "scope", "attributes", "key", "value", "stringValue",
    "intValue", "doubleValue", "boolValue", "bytesValue", "arrayValue", "kvlistValue", "values", "traceId",
    "spanId", "parentSpanId", "name", "kind", "startTimeUnixNano", "endTimeUnixNano", "events",
    "timeUnixNano", "links", "status", "code", "message", "droppedAttributesCount",
]  # fmt: skip
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(-(1 << 70), 1 << 70),
    st.floats(),
    st.text(max_size=20),
    st.sampled_from(
        ["\ud800", "5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b173", "1700000000000000000"]
    ),
)
json_documents: st.SearchStrategy[Any] = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(OTLP_KEYS), st.text(max_size=6)), inner, max_size=5),
    ),
    max_leaves=25,
)


@PROPERTY_SETTINGS
@given(document=json_documents, depth=st.sampled_from([0, 1, 100_000]))
def test_ingest_properties_otlp_json_documents_never_fail_the_server(
    collector: Collector, document: Any, depth: int
) -> None:
    """``depth`` 0: the document is the body; 1: it is a span; more: it sits that many arrays deep."""
    if depth == 0:
        body = json.dumps(document)
    elif depth == 1:
        body = json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [document]}]}]})
    else:
        body = '{"resourceSpans":' + "[" * depth + json.dumps(document) + "]" * depth + "}"
    response = collector.http.post(
        collector.otlp_http, content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code in (200, 400), response.text[:300]
    assert response.headers["content-type"].startswith("application/json")
    if response.status_code == 400:
        assert _http_status(response).message


# --- the JSON ingest --------------------------------------------------------------------------------------

moments = st.one_of(
    st.none(),
    st.datetimes(timezones=st.none() | st.timezones()).map(lambda d: d.isoformat()),
    st.integers(-(1 << 70), 1 << 70),
    st.text(max_size=12),
)
numbers = st.one_of(
    st.none(), st.integers(), st.floats(), st.sampled_from(["Infinity", "NaN", "1e309", "-1"])
)
rest_spans = st.fixed_dictionaries(
    {},
    optional={
        "span_id": st.text(max_size=20) | st.none(),
        "name": st.text(max_size=20),
        "parent_span_id": st.text(max_size=20) | st.none(),
        "model": st.text(max_size=10) | st.none(),
        "input": json_documents,
        "output": json_documents,
        "prompt_tokens": numbers,
        "completion_tokens": numbers,
        "duration_ms": numbers,
        "cost_usd": numbers,
        "status": st.text(max_size=8) | st.none(),
        "start_time": moments,
        "metadata": st.dictionaries(st.text(max_size=6), json_scalars, max_size=3),
    },
)
rest_traces = st.fixed_dictionaries(
    {"spans": st.lists(rest_spans, min_size=1, max_size=4)},
    optional={
        "organization_id": st.text(max_size=8) | st.none(),
        "project_id": st.text(max_size=8) | st.none(),
        "trace_id": st.sampled_from(["0" * 32, "zz", "5B8EFFF798038103D269B633813FC60C"]) | st.none(),
        "model": st.text(max_size=10) | st.none(),
        "trace_type": st.text(max_size=10) | st.none(),
        "start_time": moments,
        "metadata": st.dictionaries(st.text(max_size=6), json_scalars, max_size=3),
    },
)


def _tagged_copy(trace: dict[str, Any], tag: str) -> dict[str, Any]:
    """``trace`` with a fresh trace id (unless it sets a hostile one) and the example's tag in its metadata."""
    out = dict(trace)
    if out.get("trace_id") == "5B8EFFF798038103D269B633813FC60C" or "trace_id" not in out:
        out["trace_id"] = uuid.uuid4().hex
    out["metadata"] = {**trace.get("metadata", {}), TAG: tag}
    return out


@PROPERTY_SETTINGS
@given(traces=st.lists(rest_traces, min_size=1, max_size=3), shape=st.sampled_from(["one", "batch", "list"]))
def test_ingest_properties_rest_takes_a_request_whole_or_refuses_it(
    collector: Collector, traces: list[dict[str, Any]], shape: str
) -> None:
    tag = uuid.uuid4().hex
    tagged = [_tagged_copy(trace, tag) for trace in traces]
    document: Any
    if shape == "one":
        tagged = tagged[:1]
        path, document = "/api/v1/traces", tagged[0]
    else:
        path, document = "/api/v1/traces/batch", {"traces": tagged} if shape == "batch" else tagged
    response = collector.http.post(
        collector.rest + path, content=json.dumps(document), headers={"content-type": "application/json"}
    )
    assert response.status_code in (202, 400), response.text[:500]
    answer = response.json()
    if response.status_code == 400:
        assert answer["error"]["code"] == "invalid_argument" and answer["error"]["message"]
        REFUSED_TAGS.add(tag)
        return
    spans = sum(len(trace["spans"]) for trace in tagged)
    assert answer["accepted_spans"] == spans
    found = wait_until(
        lambda: collector.arrived(tag, spans),
        what=lambda: f"{spans} spans of example {tag}, have {len(collector.tagged(tag))}",
    )
    assert found is not None and len(found) == spans
    assert all(storable(s) for s in found)


REFUSED_TAGS: set[str] = set()


@PROPERTY_SETTINGS
@given(document=json_documents, path=st.sampled_from(["/api/v1/traces", "/api/v1/traces/batch"]))
def test_ingest_properties_rest_arbitrary_json_never_fails_the_server(
    collector: Collector, document: Any, path: str
) -> None:
    response = collector.http.post(
        collector.rest + path, content=json.dumps(document), headers={"content-type": "application/json"}
    )
    assert response.status_code in (202, 400), response.text[:300]
    if response.status_code == 400:
        assert response.json()["error"]["message"]


def test_ingest_properties_refused_rest_requests_left_nothing(collector: Collector) -> None:
    """Runs after the REST properties: a request answered 400 has none of its spans in the sink (a good
    request sent after them is exported, so theirs would have been by now)."""
    tag = uuid.uuid4().hex
    response = collector.http.post(
        collector.rest + "/api/v1/traces", json={"metadata": {TAG: tag}, "spans": [{"name": "last"}]}
    )
    assert response.status_code == 202
    wait_until(lambda: collector.tagged(tag), what="the last request's span")
    leaked = {s["attributes"].get(TAG_ATTR) for s in collector.spans()} & REFUSED_TAGS
    assert not leaked, f"{len(leaked)} refused requests left spans behind"
