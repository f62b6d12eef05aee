"""Bad input against a running collector: clear OTLP errors, the server keeps serving, nothing else is lost.

Every case runs against a real ``Service`` (OTLP receiver on loopback ports, the ``debug`` exporter as sink,
or the ``clickhouse`` exporter on chDB where what the store holds matters); after the bad request, a good
one must still be accepted and stored.
"""

from __future__ import annotations

import base64
import gzip
import json
import logging
import os
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, cast

import grpc
import httpx
import pytest
from google.protobuf import json_format
from google.rpc import code_pb2, status_pb2
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from llm_observer.collector.service import Service
from tests.support import trace_request, wait_for
from tests.support.collector import sink, stored

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
LIMIT_MIB = 0.25
LIMIT = int(LIMIT_MIB * (1 << 20))
TRACE_EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


@pytest.fixture
async def collector(start_collector: Callable[..., Awaitable[Service]]) -> Service:
    return await start_collector(
        overrides={
            "receivers": {
                "otlp": {
                    "protocols": {
                        "http": {"max_request_body_size_mib": LIMIT_MIB},
                        "grpc": {"max_recv_msg_size_mib": LIMIT_MIB},
                    }
                }
            }
        }
    )


def _url(service: Service, path: str = "/v1/traces") -> str:
    return f"http://127.0.0.1:{service.endpoints()['otlp.http']}{path}"


def _status(response: httpx.Response) -> status_pb2.Status:
    """The OTLP error body: a google.rpc.Status in the response's content type."""
    content_type = response.headers["content-type"]
    if content_type.startswith(JSON):
        return json_format.Parse(response.text, status_pb2.Status())
    assert content_type == PROTOBUF, content_type
    return status_pb2.Status.FromString(response.content)


async def _assert_still_serving(service: Service) -> None:
    """A good request after the bad one is accepted, and only its spans reach the sink."""
    good = trace_request(2)
    async with httpx.AsyncClient() as client:
        response = await client.post(
            _url(service), content=good.SerializeToString(), headers={"content-type": PROTOBUF}
        )
    assert response.status_code == 200, response.content
    debug = sink(service)
    wanted = {span.span_id for span in good.resource_spans[0].scope_spans[0].spans}
    await wait_for(lambda: {s["span_id"] for s in debug.spans} >= wanted, what="the good spans in the sink")
    assert {s["span_id"] for s in debug.spans} == wanted, "spans of the bad request were stored"


def _deflate_prefix_of_two_requests() -> bytes:
    """A gzip body cut short: the first request's bytes are complete (full flush), the rest is missing."""
    first, second = trace_request(2), trace_request(2)
    compressor = zlib.compressobj(wbits=16 + zlib.MAX_WBITS)
    head = compressor.compress(first.SerializeToString()) + compressor.flush(zlib.Z_FULL_FLUSH)
    whole = head + compressor.compress(second.SerializeToString()) + compressor.flush()
    assert gzip.decompress(whole) == first.SerializeToString() + second.SerializeToString()
    return whole[: len(head)]


@dataclass(frozen=True)
class HttpCase:
    status: int
    body: Callable[[], bytes] | bytes = b""
    content_type: str | None = PROTOBUF
    method: str = "POST"
    path: str = "/v1/traces"
    headers: dict[str, str] = field(default_factory=dict)
    chunked: bool = False
    message: str = ""  # expected in the Status message (lower case)
    allow: str | None = None


HTTP_CASES: dict[str, Any] = {  # HttpCase, or a pytest.param of one
    "malformed-protobuf": HttpCase(400, b"\xff\xff\xff\xff\x0f", message="malformed protobuf"),
    "truncated-protobuf": HttpCase(
        400, lambda: trace_request(3).SerializeToString()[:-7], message="malformed protobuf"
    ),
    "invalid-utf8-in-protobuf-string": HttpCase(
        400,
        lambda: (
            trace_request(1, attributes={"k": "MARK"})
            .SerializeToString()
            .replace(b"MARK", b"\xff\xfe\xfd\xfc")
        ),
    ),
    "body-over-limit": HttpCase(413, os.urandom(LIMIT + 1000), message="limit"),
    "body-over-limit-chunked": HttpCase(413, os.urandom(LIMIT + 1000), chunked=True, message="limit"),
    "gzip-bomb-over-limit": HttpCase(
        413, gzip.compress(b"\x00" * (8 * LIMIT)), headers={"content-encoding": "gzip"}, message="limit"
    ),
    "bad-gzip": HttpCase(400, b"this is not gzip", headers={"content-encoding": "gzip"}, message="gzip"),
    "truncated-gzip": HttpCase(
        400, _deflate_prefix_of_two_requests, headers={"content-encoding": "gzip"}, message="gzip"
    ),
    "unknown-content-encoding": HttpCase(415, b"", headers={"content-encoding": "br"}, message="encoding"),
    "wrong-content-type": HttpCase(415, b"hello", content_type="text/plain", message="content type"),
    "no-content-type": HttpCase(415, b"hello", content_type=None, message="content type"),
    "get": HttpCase(405, content_type=None, method="GET", allow="POST"),
    "unknown-path": HttpCase(404, b"", path="/v1/spans", message="/v1/spans"),
    "json-invalid-utf8": HttpCase(400, b'{"resourceSpans": [], "x": "\xff\xfe"}', JSON, message="utf-8"),
    "json-syntax-error": HttpCase(400, b'{"resourceSpans": [', JSON, message="json"),
    "json-non-hex-trace-id": HttpCase(
        400,
        json.dumps(
            {
                "resourceSpans": [
                    {"scopeSpans": [{"spans": [{"traceId": "not-hex!", "spanId": "00f067aa0ba902b7"}]}]}
                ]
            }
        ).encode(),
        JSON,
        message="traceid",
    ),
    "json-wrong-field-type": HttpCase(400, b'{"resourceSpans": 5}', JSON),
    **{
        f"json-top-level-{name}": HttpCase(400, body, JSON)
        for name, body in (("null", b"null"), ("number", b"123"), ("array", b"[]"), ("string", b'"x"'))
    },
}


@pytest.mark.parametrize("case", list(HTTP_CASES.values()), ids=list(HTTP_CASES))
async def test_bad_input_http_answers_otlp_error_and_keeps_serving(
    collector: Service, case: HttpCase
) -> None:
    body = case.body() if callable(case.body) else case.body
    headers = dict(case.headers)
    if case.content_type is not None:
        headers["content-type"] = case.content_type
    content: Any = body
    if case.chunked:

        async def chunks() -> Any:
            for start in range(0, len(body), 65536):
                yield body[start : start + 65536]

        content = chunks()
    async with httpx.AsyncClient() as client:
        response = await client.request(
            case.method, _url(collector, case.path), content=content, headers=headers, timeout=10
        )
    assert response.status_code == case.status, response.content[:300]
    status = _status(response)
    assert status.message
    assert case.message in status.message.lower(), status.message
    if case.status == 400:
        assert status.code == code_pb2.INVALID_ARGUMENT
    else:
        assert status.code != code_pb2.OK
    if case.allow is not None:
        assert response.headers["allow"] == case.allow
    if case.content_type == JSON:
        assert response.headers["content-type"].startswith(JSON)
    assert collector.telemetry.registry.get_sample_value(
        "llm_observer_spans_accepted_total", {"component": "otlp"}
    ) in (None, 0.0)
    await _assert_still_serving(collector)


async def test_bad_input_http_accepts_otlp_json_with_hex_ids_and_int_enums(collector: Service) -> None:
    trace_id, parent_id, span_id = "5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174", "eee19b7ec3c1b173"
    body = {
        "resourceSpans": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "json-app"}}]},
                "scopeSpans": [
                    {
                        "scope": {"name": "manual"},
                        "spans": [
                            {
                                "traceId": trace_id,
                                "spanId": span_id,
                                "parentSpanId": parent_id,
                                "name": "chat gpt-4o",
                                "kind": 3,
                                "startTimeUnixNano": "1700000000000000000",
                                "endTimeUnixNano": "1700000001500000000",
                                "attributes": [
                                    {"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
                                    {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "12"}},
                                    {"key": "gen_ai.request.temperature", "value": {"doubleValue": 0.5}},
                                    {"key": "gen_ai.request.stream", "value": {"boolValue": True}},
                                ],
                                "status": {"code": 2, "message": "rate limited"},
                            }
                        ],
                    }
                ],
            }
        ]
    }
    async with httpx.AsyncClient() as client:
        response = await client.post(
            _url(collector), content=json.dumps(body).encode(), headers={"content-type": JSON}
        )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith(JSON)
    assert "rejectedSpans" not in response.text
    debug = sink(collector)
    await wait_for(lambda: len(debug.spans) == 1, what="the JSON span in the sink")
    span = debug.spans[0]
    assert span["trace_id"] == bytes.fromhex(trace_id)
    assert span["span_id"] == bytes.fromhex(span_id)
    assert span["parent_span_id"] == bytes.fromhex(parent_id)
    assert (span["kind"], span["status_code"], span["status_message"]) == (3, 2, "rate limited")
    assert span["end_time_unix_nano"] - span["start_time_unix_nano"] == 1_500_000_000
    assert span["attributes"] == {
        "gen_ai.operation.name": "chat",
        "gen_ai.usage.input_tokens": 12,
        "gen_ai.request.temperature": 0.5,
        "gen_ai.request.stream": True,
    }
    assert span["resource"] == {"service.name": "json-app"}


async def test_bad_input_http_accepts_gzip_protobuf(collector: Service) -> None:
    request = trace_request(4)
    async with httpx.AsyncClient() as client:
        response = await client.post(
            _url(collector),
            content=gzip.compress(request.SerializeToString()),
            headers={"content-type": PROTOBUF, "content-encoding": "gzip"},
        )
    assert response.status_code == 200
    assert ExportTraceServiceResponse.FromString(response.content) == ExportTraceServiceResponse()
    debug = sink(collector)
    await wait_for(lambda: len(debug.spans) == 4, what="4 gzip spans")


# --- gRPC ------------------------------------------------------------------------------------------


def _target(service: Service) -> str:
    return f"127.0.0.1:{service.endpoints()['otlp.grpc']}"


async def _grpc_export(
    channel: grpc.aio.Channel, request: ExportTraceServiceRequest
) -> ExportTraceServiceResponse:
    """TraceService/Export, as every OTLP/gRPC client calls it."""
    export = channel.unary_unary(
        TRACE_EXPORT,
        request_serializer=ExportTraceServiceRequest.SerializeToString,
        response_deserializer=ExportTraceServiceResponse.FromString,
    )
    return cast(ExportTraceServiceResponse, await export(request, timeout=10))


@pytest.mark.parametrize(
    "signal_path",
    [
        TRACE_EXPORT,
        "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
        "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
    ],
    ids=["traces", "metrics", "logs"],
)
@pytest.mark.parametrize(
    "garbage",
    [b"\xff\xff\xff\xff\x0f", b"\x0a\x05ab"],
    ids=["bad-varint", "truncated"],
)
async def test_bad_input_grpc_garbage_is_invalid_argument(
    collector: Service, signal_path: str, garbage: bytes
) -> None:
    async with grpc.aio.insecure_channel(_target(collector)) as channel:
        export = channel.unary_unary(  # no serializers: raw bytes on the wire
            signal_path, request_serializer=None, response_deserializer=None
        )
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await export(garbage, timeout=10)
    assert failed.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "malformed protobuf" in (failed.value.details() or "")
    await _assert_still_serving(collector)


async def test_bad_input_grpc_message_over_limit_is_resource_exhausted(collector: Service) -> None:
    big = trace_request(1, attributes={"gen_ai.input.messages": "x" * (LIMIT + 1000)})
    async with grpc.aio.insecure_channel(_target(collector)) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await _grpc_export(channel, big)
    assert failed.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    await _assert_still_serving(collector)


# --- spans invalid on their own: partial success ----------------------------------------------------


def _mixed_request() -> tuple[ExportTraceServiceRequest, set[bytes]]:
    """Three valid spans and three invalid ones (zero trace id, 7-byte span id, end before start)."""
    request = trace_request(6)
    spans = request.resource_spans[0].scope_spans[0].spans
    good = {spans[0].span_id, spans[2].span_id, spans[4].span_id}
    spans[1].trace_id = bytes(16)
    spans[3].span_id = b"\x01" * 7
    spans[5].end_time_unix_nano = spans[5].start_time_unix_nano - 1
    return request, good


@pytest.mark.parametrize("transport", ["grpc", "http-protobuf", "http-json"])
async def test_bad_input_invalid_spans_are_rejected_through_partial_success(
    collector: Service, transport: str
) -> None:
    request, good = _mixed_request()
    if transport == "grpc":
        async with grpc.aio.insecure_channel(_target(collector)) as channel:
            response = await _grpc_export(channel, request)
    else:
        is_json = transport == "http-json"
        if is_json:
            data = json_format.MessageToDict(request)
            for span in data["resourceSpans"][0]["scopeSpans"][0]["spans"]:
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in span:  # protobuf's JSON mapping gives base64; OTLP/JSON wants hex
                        span[key] = base64.b64decode(span[key]).hex()
            body, content_type = json.dumps(data).encode(), JSON
        else:
            body, content_type = request.SerializeToString(), PROTOBUF
        async with httpx.AsyncClient() as client:
            http = await client.post(_url(collector), content=body, headers={"content-type": content_type})
        assert http.status_code == 200, http.content
        response = (
            json_format.Parse(http.text, ExportTraceServiceResponse())
            if is_json
            else ExportTraceServiceResponse.FromString(http.content)
        )
    assert response.partial_success.rejected_spans == 3
    assert response.partial_success.error_message

    debug = sink(collector)
    await wait_for(lambda: len(debug.spans) >= 3, what="the valid spans in the sink")
    assert {s["span_id"] for s in debug.spans} == good
    registry = collector.telemetry.registry
    assert registry.get_sample_value("llm_observer_spans_received_total", {"component": "otlp"}) == 6
    assert registry.get_sample_value("llm_observer_spans_accepted_total", {"component": "otlp"}) == 3
    assert (
        registry.get_sample_value(
            "llm_observer_spans_refused_total", {"component": "otlp", "reason": "invalid_span"}
        )
        == 3
    )
    await _assert_still_serving_after(collector, good)


async def _assert_still_serving_after(service: Service, before: set[bytes]) -> None:
    good = trace_request(2)
    async with grpc.aio.insecure_channel(_target(service)) as channel:
        response = await _grpc_export(channel, good)
    assert not response.HasField("partial_success")
    debug = sink(service)
    wanted = before | {span.span_id for span in good.resource_spans[0].scope_spans[0].spans}
    await wait_for(lambda: {s["span_id"] for s in debug.spans} == wanted, what="every valid span stored")


# --- times storage cannot hold, or no longer keeps ----------------------------------------------------

DAY_NS = 86_400 * 1_000_000_000
TTL_DAYS = 30


def _hexed(request: ExportTraceServiceRequest) -> bytes:
    """``request`` as OTLP/JSON: ids in hex, as OTLP/JSON carries them."""
    data = json_format.MessageToDict(request)
    for rs in data["resourceSpans"]:
        for ss in rs["scopeSpans"]:
            for span in ss["spans"]:
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in span:
                        span[key] = base64.b64decode(span[key]).hex()
    return json.dumps(data).encode()


def _request_with_bad_times() -> tuple[ExportTraceServiceRequest, set[bytes], int]:
    """Eight spans of one request: two valid ones, and six whose times the ClickHouse store cannot hold or
    would drop on arrival (start, end and event times from 2^63 ns, year 2200, older than the retention)."""
    request = trace_request(8)
    spans = request.resource_spans[0].scope_spans[0].spans
    good = {spans[0].span_id, spans[7].span_id}
    spans[1].start_time_unix_nano, spans[1].end_time_unix_nano = 1 << 63, (1 << 63) + 5
    spans[2].end_time_unix_nano = (1 << 64) - 1
    spans[3].events.add(time_unix_nano=1 << 63, name="late")
    spans[4].start_time_unix_nano = 7_258_118_400 * 1_000_000_000  # 2200-01-01
    spans[4].end_time_unix_nano = spans[4].start_time_unix_nano + 1
    old = spans[5].start_time_unix_nano - (TTL_DAYS + 1) * DAY_NS
    spans[5].start_time_unix_nano, spans[5].end_time_unix_nano = old, old + 1
    spans[6].start_time_unix_nano = spans[6].end_time_unix_nano = 4_294_967_296 * 1_000_000_000  # 2106
    return request, good, 1


@pytest.mark.parametrize("transport", ["grpc", "http-protobuf", "http-json"])
async def test_bad_input_times_storage_cannot_hold_are_rejected_and_the_rest_stored(
    start_collector: Callable[..., Awaitable[Service]], transport: str
) -> None:
    service = await start_collector(exporters={"clickhouse": {"ttl_days": TTL_DAYS}})
    request, good, expired = _request_with_bad_times()
    if transport == "grpc":
        async with grpc.aio.insecure_channel(_target(service)) as channel:
            response = await _grpc_export(channel, request)
    else:
        is_json = transport == "http-json"
        body = _hexed(request) if is_json else request.SerializeToString()
        async with httpx.AsyncClient() as client:
            http = await client.post(
                _url(service), content=body, headers={"content-type": JSON if is_json else PROTOBUF}
            )
        assert http.status_code == 200, http.content
        response = (
            json_format.Parse(http.text, ExportTraceServiceResponse())
            if is_json
            else ExportTraceServiceResponse.FromString(http.content)
        )
    assert response.partial_success.rejected_spans == 6
    assert "the latest time storage can hold" in response.partial_success.error_message

    def stored_ids() -> set[bytes]:
        rows = stored(service, "SELECT SpanId FROM otel.otel_traces")
        return {bytes.fromhex(row["SpanId"]) for row in rows}

    await wait_for(lambda: stored_ids() == good, what="the two valid spans in ClickHouse")
    registry = service.telemetry.registry
    refused = {
        reason: registry.get_sample_value(
            "llm_observer_spans_refused_total", {"component": "otlp", "reason": reason}
        )
        for reason in ("invalid_span", "expired")
    }
    assert refused == {"invalid_span": 6 - expired, "expired": expired}
    assert not any(
        sample.labels.get("exporter") == "clickhouse"
        for family in registry.collect()
        if family.name == "llm_observer_spans_failed"
        for sample in family.samples
    )


async def test_bad_input_span_older_than_the_retention_names_it(
    start_collector: Callable[..., Awaitable[Service]],
) -> None:
    service = await start_collector(exporters={"clickhouse": {"ttl_days": TTL_DAYS}})
    request = trace_request(1)
    span = request.resource_spans[0].scope_spans[0].spans[0]
    span.start_time_unix_nano -= (TTL_DAYS + 2) * DAY_NS
    span.end_time_unix_nano -= (TTL_DAYS + 2) * DAY_NS
    async with grpc.aio.insecure_channel(_target(service)) as channel:
        response = await _grpc_export(channel, request)
    assert response.partial_success.rejected_spans == 1
    message = response.partial_success.error_message
    assert "start_time_unix_nano" in message and f"retention of {TTL_DAYS} days" in message


async def test_bad_input_without_a_declared_retention_old_spans_are_kept(collector: Service) -> None:
    """The ``debug`` exporter declares no limits: only times past int64 nanoseconds are refused."""
    request = trace_request(2)
    spans = request.resource_spans[0].scope_spans[0].spans
    spans[0].start_time_unix_nano, spans[0].end_time_unix_nano = 1_000_000_000, 2_000_000_000  # 1970
    spans[1].end_time_unix_nano = 1 << 63
    async with grpc.aio.insecure_channel(_target(collector)) as channel:
        response = await _grpc_export(channel, request)
    assert response.partial_success.rejected_spans == 1
    assert "end_time_unix_nano" in response.partial_success.error_message
    await wait_for(lambda: len(sink(collector).spans) == 1, what="the 1970 span in the sink")
    assert sink(collector).spans[0]["span_id"] == spans[0].span_id


async def test_bad_input_log_record_times_storage_cannot_hold_are_rejected(
    start_collector: Callable[..., Awaitable[Service]],
) -> None:
    service = await start_collector(
        exporters={"clickhouse": {"ttl_days": TTL_DAYS}}, processors=["logjoin", "normalize"]
    )
    request = trace_request(1)
    span = request.resource_spans[0].scope_spans[0].spans[0]
    logs = ExportLogsServiceRequest()
    records = logs.resource_logs.add().scope_logs.add().log_records
    for time_field, value in (
        ("time_unix_nano", 1 << 63),
        ("observed_time_unix_nano", (1 << 64) - 1),
        ("time_unix_nano", span.start_time_unix_nano),
    ):
        record = records.add(trace_id=span.trace_id, span_id=span.span_id, event_name="gen_ai.user.message")
        setattr(record, time_field, value)
        record.body.string_value = "hello"
    async with httpx.AsyncClient() as client:
        http = await client.post(
            _url(service, "/v1/logs"), content=logs.SerializeToString(), headers={"content-type": PROTOBUF}
        )
        assert http.status_code == 200, http.content
        response = ExportLogsServiceResponse.FromString(http.content)
        assert response.partial_success.rejected_log_records == 2
        assert "time_unix_nano" in response.partial_success.error_message
        http = await client.post(
            _url(service), content=request.SerializeToString(), headers={"content-type": PROTOBUF}
        )
    assert http.status_code == 200
    assert not ExportTraceServiceResponse.FromString(http.content).HasField("partial_success")
    rows = await wait_for(
        lambda: stored(service, "SELECT length(Events.Timestamp) AS events FROM otel.otel_traces"),
        what="the span in ClickHouse",
    )
    assert rows == [{"events": 1}]


# --- JSON nested deeper than any OTLP message -----------------------------------------------------------


def _nested_attribute(depth: int) -> bytes:
    """A resource attribute whose value is a key-value list nested ``depth`` deep: valid OTLP/JSON."""
    value = '{"kvlistValue":{"values":[{"key":"k","value":' * depth + "{}" + "}]}}" * depth
    return ('{"resourceSpans":[{"resource":{"attributes":[{"key":"k","value":' + value + "}]}}]}").encode()


NESTED_BODIES = {
    "kvlist-200": lambda: _nested_attribute(200),
    "arrays-1000": lambda: b'{"resourceSpans":' + b"[" * 1_000 + b"]" * 1_000 + b"}",
    "arrays-100000": lambda: b'{"resourceSpans":' + b"[" * 100_000 + b"]" * 100_000 + b"}",
}


@pytest.mark.parametrize("body", list(NESTED_BODIES.values()), ids=list(NESTED_BODIES))
async def test_bad_input_deeply_nested_otlp_json_is_400_without_a_traceback(
    collector: Service, body: Callable[[], bytes], caplog: pytest.LogCaptureFixture
) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.post(_url(collector), content=body(), headers={"content-type": JSON})
    assert response.status_code == 400, response.text[:300]
    status = _status(response)
    assert status.code == code_pb2.INVALID_ARGUMENT
    assert "deeper than" in status.message
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    await _assert_still_serving(collector)
