"""The OTLP exporters (``otlp``, ``otlphttp``) against real servers on loopback: a second collector, Jaeger
v2, and a recording backend that answers as a test scripts (``tests/support/otlp_backend.py``)."""

from __future__ import annotations

import email.utils
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from llm_observer.collector.service import Service
from llm_observer.collector.testing import genai_request
from llm_observer.exporters.otlp import (
    OtlpExporter,
    OtlpGrpcExporterConfig,
    OtlpHttpExporterConfig,
    create_grpc,
    create_http,
)
from llm_observer.kernel.auth import hash_api_key
from llm_observer.kernel.batch import SpanBatch
from llm_observer.kernel.component import CreateContext
from llm_observer.kernel.errors import PartialFailure, PermanentError, RetryableError
from llm_observer.kernel.otlp_codec import any_value, decode_traces
from llm_observer.kernel.signals import SIGNAL_LOGS, SIGNAL_METRICS, SignalBatch, SignalRecord
from llm_observer.kernel.telemetry import Telemetry
from tests.support import kv, trace_request, wait_for
from tests.support.collector import sink
from tests.support.jaeger import SKIP_SLOW, Jaeger, jaeger  # noqa: F401 - the fixture
from tests.support.otlp_backend import Answer, OtlpBackend, otlp_backend

StartCollector = Callable[..., Awaitable[Service]]

UPSTREAM_KEY = "llmo-test-upstream-key-0123456789"
DOWNSTREAM_KEY = "llmo-test-downstream-key-0123456789"
PROCESSORS = ["tenant", "normalize", "attribute", "cost"]
# An OpenLLMetry-style span: the upstream collector normalises it and prices it.
LEGACY_CHAT = {
    "gen_ai.operation.name": "chat",
    "gen_ai.system": "openai",
    "gen_ai.request.model": "gpt-4o",
    "gen_ai.usage.prompt_tokens": 1000,
    "gen_ai.usage.completion_tokens": 500,
}


def _key(key: str, organization: str, projects: list[str] | None = None) -> dict[str, Any]:
    return {
        "id": organization,
        "key_sha256": hash_api_key(key),
        "organization_id": organization,
        "projects": projects,
        "scopes": ["ingest"],
    }


def _upstream_overrides() -> dict[str, Any]:
    """The upstream collector's ingest key: its tenant is what the processors write on every span."""
    return {"auth": {"enabled": True, "api_keys": [_key(UPSTREAM_KEY, "acme", ["support"])]}}


async def _post(service: Service, request: ExportTraceServiceRequest, key: str = UPSTREAM_KEY) -> None:
    port = service.endpoints()["otlp.http"]
    async with httpx.AsyncClient() as client:
        response = await client.post(
            f"http://127.0.0.1:{port}/v1/traces",
            content=request.SerializeToString(),
            headers={"Content-Type": "application/x-protobuf", "Authorization": f"Bearer {key}"},
            timeout=10,
        )
    assert response.status_code == 200, response.text


def _span_ids(request: ExportTraceServiceRequest) -> set[bytes]:
    return {span.span_id for rs in request.resource_spans for ss in rs.scope_spans for span in ss.spans}


def _traffic() -> tuple[ExportTraceServiceRequest, set[bytes], bytes]:
    """200 agent spans plus three legacy-scheme chat spans; all span ids, and the legacy trace's id."""
    request = genai_request(40)
    legacy = trace_request(3, LEGACY_CHAT, resource={"service.name": "legacy-app"})
    request.resource_spans.extend(legacy.resource_spans)
    return request, _span_ids(request), legacy.resource_spans[0].scope_spans[0].spans[0].trace_id


def _assert_derived(attributes: dict[str, Any], resource: dict[str, Any]) -> None:
    """What the upstream collector derives on a legacy chat span of 1000 + 500 gpt-4o tokens."""
    assert attributes["gen_ai.provider.name"] == "openai"
    assert attributes["gen_ai.usage.input_tokens"] == 1000
    assert attributes["gen_ai.usage.output_tokens"] == 500
    assert attributes["llm_observer.cost.usd"] == pytest.approx(0.0075)
    assert resource["llm_observer.organization.id"] == "acme"
    assert resource["llm_observer.project.id"] == "support"


# --- (a) to a second collector ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("exporter", "settings"),
    [
        ("otlp", {"compression": "gzip"}),
        ("otlp", {"compression": "none"}),
        ("otlphttp", {"encoding": "proto"}),
        ("otlphttp", {"encoding": "json", "compression": "gzip"}),
    ],
)
async def test_otlp_forward_to_a_second_collector_keeps_derived_attributes(
    start_collector: StartCollector, tmp_path: Path, exporter: str, settings: dict[str, Any]
) -> None:
    downstream = await start_collector(data_dir=tmp_path / "downstream", exporters=["debug"])
    ports = downstream.endpoints()
    endpoint = (
        f"127.0.0.1:{ports['otlp.grpc']}" if exporter == "otlp" else f"http://127.0.0.1:{ports['otlp.http']}"
    )
    tls = {"tls": {"insecure": True}} if exporter == "otlp" else {}
    upstream = await start_collector(
        data_dir=tmp_path / "upstream",
        exporters={exporter: {"endpoint": endpoint, **tls, **settings}},
        processors=PROCESSORS,
        overrides=_upstream_overrides(),
    )
    request, span_ids, legacy_trace = _traffic()
    await _post(upstream, request)

    received = sink(downstream).spans
    await wait_for(
        lambda: {span["span_id"] for span in received} >= span_ids,
        timeout=30,
        what=lambda: f"{len(span_ids)} spans downstream, got {len(received)}",
    )
    assert len(received) == len(span_ids)  # once each
    legacy = [span for span in received if span["trace_id"] == legacy_trace]
    assert len(legacy) == 3
    for span in legacy:
        _assert_derived(span["attributes"], span["resource"])
    # Agent spans keep their content and carry the tenant the upstream key decided.
    chats = [span for span in received if span["name"].startswith("chat ") and span not in legacy]
    assert chats and all("gen_ai.input.messages" in span["attributes"] for span in chats)
    assert {span["resource"]["llm_observer.organization.id"] for span in received} == {"acme"}


async def test_otlp_forward_headers_reach_the_second_collector(
    start_collector: StartCollector, tmp_path: Path
) -> None:
    """The downstream collector wants its own key: the exporter's ``headers`` carry it, and its tenant
    (not the upstream's) is what the downstream keeps."""
    downstream = await start_collector(
        data_dir=tmp_path / "downstream",
        exporters=["debug"],
        processors=["tenant"],
        overrides={"auth": {"enabled": True, "api_keys": [_key(DOWNSTREAM_KEY, "globex")]}},
    )
    port = downstream.endpoints()["otlp.grpc"]
    upstream = await start_collector(
        data_dir=tmp_path / "upstream",
        exporters={
            "otlp": {
                "endpoint": f"http://127.0.0.1:{port}",
                "headers": {"Authorization": f"Bearer {DOWNSTREAM_KEY}"},
            }
        },
        processors=PROCESSORS,
        overrides=_upstream_overrides(),
    )
    request = trace_request(5, LEGACY_CHAT)
    await _post(upstream, request)
    received = sink(downstream).spans
    await wait_for(lambda: len(received) == 5, timeout=30, what=lambda: f"5 spans, got {len(received)}")
    assert {span["resource"]["llm_observer.organization.id"] for span in received} == {"globex"}


# --- (b) to Jaeger v2 ----------------------------------------------------------------------------


def _otlp_json_attributes(items: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        value = item.get("value", {})
        if "stringValue" in value:
            out[item["key"]] = value["stringValue"]
        elif "intValue" in value:
            out[item["key"]] = int(value["intValue"])
        elif "doubleValue" in value:
            out[item["key"]] = float(value["doubleValue"])
        elif "boolValue" in value:
            out[item["key"]] = value["boolValue"]
        else:
            out[item["key"]] = value
    return out


@SKIP_SLOW
@pytest.mark.parametrize("exporter", ["otlp", "otlphttp"])
async def test_otlp_forward_to_jaeger_is_queryable_with_derived_attributes(
    start_collector: StartCollector,
    tmp_path: Path,
    jaeger: Jaeger,  # noqa: F811 - the fixture imported above
    exporter: str,
) -> None:
    endpoint = (
        f"http://127.0.0.1:{jaeger.otlp_grpc}"
        if exporter == "otlp"
        else f"http://127.0.0.1:{jaeger.otlp_http}"
    )
    upstream = await start_collector(
        data_dir=tmp_path / "upstream",
        exporters={exporter: {"endpoint": endpoint}},
        processors=PROCESSORS,
        overrides=_upstream_overrides(),
    )
    request, span_ids, legacy_trace = _traffic()
    await _post(upstream, request)

    traces = {span.trace_id for rs in request.resource_spans for ss in rs.scope_spans for span in ss.spans}
    stored: dict[bytes, list[dict[str, Any]]] = {}

    async def every_span_stored() -> bool:
        for trace_id in traces:
            stored[trace_id] = await jaeger.trace(trace_id.hex()) or []
        return sum(len(spans) for spans in stored.values()) >= len(span_ids)

    await wait_for(
        lambda: every_span_stored(),  # type: ignore[arg-type, return-value]  # wait_for awaits it
        timeout=30,
        what=lambda: f"{len(span_ids)} spans in Jaeger, got {sum(len(s) for s in stored.values())}",
    )
    assert {bytes.fromhex(span["spanId"]) for spans in stored.values() for span in spans} == span_ids
    legacy = stored[legacy_trace]
    assert len(legacy) == 3
    for span in legacy:
        _assert_derived(
            _otlp_json_attributes(span.get("attributes", [])),
            _otlp_json_attributes(span["resource"].get("attributes", [])),
        )


# --- (c) answers classified as the OTLP specification says ------------------------------------------


def _ctx(tmp_path: Path, component_id: str = "otlp") -> CreateContext:
    return CreateContext(component_id, tmp_path, Telemetry(), logging.getLogger("test.otlp"))


def _event(ctx: CreateContext, event: str) -> float:
    value = ctx.telemetry.registry.get_sample_value(
        "llm_observer_component_events_total", {"component": ctx.component_id, "event": event}
    )
    return value or 0.0


def _batch(count: int, origin: str = "traces:1-2") -> SpanBatch:
    batch = decode_traces(trace_request(count, LEGACY_CHAT))
    batch.origin = origin
    return batch


async def _grpc_exporter(
    tmp_path: Path, backend: OtlpBackend, **settings: Any
) -> tuple[OtlpExporter, CreateContext]:
    ctx = _ctx(tmp_path)
    config = OtlpGrpcExporterConfig(endpoint=f"http://127.0.0.1:{backend.grpc_port}", **settings)
    exporter = create_grpc(ctx, config)
    await exporter.start()
    return exporter, ctx


async def _http_exporter(
    tmp_path: Path, backend: OtlpBackend, **settings: Any
) -> tuple[OtlpExporter, CreateContext]:
    ctx = _ctx(tmp_path, "otlphttp")
    config = OtlpHttpExporterConfig(endpoint=f"http://127.0.0.1:{backend.http_port}", **settings)
    exporter = create_http(ctx, config)
    await exporter.start()
    return exporter, ctx


async def test_otlp_grpc_answers_are_classified(tmp_path: Path) -> None:
    async with otlp_backend() as backend:
        exporter, ctx = await _grpc_exporter(tmp_path, backend, headers={"X-Tenant": "t1"})
        try:
            backend.script.extend(
                [
                    Answer(grpc.StatusCode.UNAVAILABLE, retry_after=2.5),
                    Answer(grpc.StatusCode.UNAVAILABLE),
                    Answer(grpc.StatusCode.RESOURCE_EXHAUSTED, retry_after=1.0),
                    Answer(grpc.StatusCode.RESOURCE_EXHAUSTED),  # no RetryInfo: too big, never retried
                    Answer(grpc.StatusCode.INVALID_ARGUMENT, message="bad span"),
                    Answer(grpc.StatusCode.UNAUTHENTICATED),
                    Answer(rejected=2, message="two spans too old"),
                ]
            )
            batch = _batch(3, origin="")
            with pytest.raises(RetryableError) as unavailable:
                await exporter.send(batch)
            assert unavailable.value.retry_after == pytest.approx(2.5)
            assert "UNAVAILABLE" in str(unavailable.value)
            with pytest.raises(RetryableError) as bare:
                await exporter.send(batch)
            assert bare.value.retry_after is None
            with pytest.raises(RetryableError) as exhausted:
                await exporter.send(batch)
            assert exhausted.value.retry_after == pytest.approx(1.0)
            with pytest.raises(PermanentError) as too_big:
                await exporter.send(batch)
            assert too_big.value.reason == "resource_exhausted"
            with pytest.raises(PermanentError) as invalid:
                await exporter.send(batch)
            assert invalid.value.reason == "invalid_argument" and "bad span" in str(invalid.value)
            assert not isinstance(invalid.value, PartialFailure)
            with pytest.raises(PermanentError) as unauthenticated:
                await exporter.send(batch)
            assert unauthenticated.value.reason == "unauthenticated"
            await exporter.send(batch)  # a partial success is a success: the rest is delivered
            assert _event(ctx, "rejected_spans") == 2
            assert len(backend.spans()) == 3
            assert all(got.headers.get("x-tenant") == "t1" for got in backend.answered)
            # (grpcio's server hides the grpc-encoding header; gzip over gRPC is checked end to end above.)
        finally:
            await exporter.shutdown()


async def test_otlp_http_answers_are_classified(tmp_path: Path) -> None:
    async with otlp_backend() as backend:
        exporter, ctx = await _http_exporter(tmp_path, backend, headers={"X-Tenant": "t1"}, encoding="json")
        try:
            later = email.utils.formatdate(time.time() + 30, usegmt=True)
            backend.script.extend(
                [
                    Answer(http_status=503, retry_after=7),
                    Answer(http_status=429, retry_after_header=later),
                    Answer(http_status=502),
                    Answer(http_status=400, message="bad span"),
                    Answer(http_status=500),  # not in the retryable list: permanent, as the spec says
                    Answer(rejected=1, message="one span too old"),
                ]
            )
            batch = _batch(3, origin="")
            with pytest.raises(RetryableError) as unavailable:
                await exporter.send(batch)
            assert unavailable.value.retry_after == 7
            with pytest.raises(RetryableError) as throttled:
                await exporter.send(batch)
            assert throttled.value.retry_after is not None and 20 < throttled.value.retry_after <= 30
            with pytest.raises(RetryableError) as gateway:
                await exporter.send(batch)
            assert gateway.value.retry_after is None
            with pytest.raises(PermanentError) as invalid:
                await exporter.send(batch)
            assert invalid.value.reason == "http_400" and "bad span" in str(invalid.value)
            with pytest.raises(PermanentError) as server_error:
                await exporter.send(batch)
            assert server_error.value.reason == "http_500"
            await exporter.send(batch)
            assert _event(ctx, "rejected_spans") == 1
            assert len(backend.spans()) == 3
            sent = backend.received[-1]
            assert sent.gzip and sent.headers["x-tenant"] == "t1"
            assert sent.headers["content-type"] == "application/json"
        finally:
            await exporter.shutdown()


async def test_otlp_http_connection_refused_is_retryable(tmp_path: Path) -> None:
    async with otlp_backend() as backend:
        port = backend.http_port
    ctx = _ctx(tmp_path)
    exporter = create_http(ctx, OtlpHttpExporterConfig(endpoint=f"http://127.0.0.1:{port}"))
    await exporter.start()
    try:
        with pytest.raises(RetryableError):
            await exporter.send(_batch(1))
    finally:
        await exporter.shutdown()


async def test_otlp_split_send_resumes_after_a_passing_failure(tmp_path: Path) -> None:
    """A batch bigger than ``max_request_size_mib`` goes as several requests; when the second fails, the
    retry of the same batch sends only what was not delivered: every span arrives exactly once."""
    async with otlp_backend() as backend:
        exporter, ctx = await _grpc_exporter(tmp_path, backend, max_request_size_mib=0.01)  # ~10 KB
        try:
            batch = decode_traces(genai_request(20))
            batch.origin = "traces:10-20"
            backend.script.extend([Answer(), Answer(grpc.StatusCode.UNAVAILABLE)])
            with pytest.raises(RetryableError, match="the retry sends the rest"):
                await exporter.send(batch)
            await exporter.send(batch)
            spans = [span.span_id for span in backend.spans()]
            assert len(backend.received) > 2
            assert sorted(spans) == sorted(batch.span_id)  # each once
            assert _event(ctx, "requests_resumed") == 1
            assert all(got.request.ByteSize() <= 10_486 for got in backend.received)
        finally:
            await exporter.shutdown()


async def test_otlp_refused_request_costs_only_its_rows(tmp_path: Path) -> None:
    async with otlp_backend() as backend:
        exporter, _ = await _grpc_exporter(tmp_path, backend, max_request_size_mib=0.01)
        try:
            batch = decode_traces(genai_request(20))
            batch.origin = "traces:1-5"
            backend.script.extend([Answer(), Answer(grpc.StatusCode.INVALID_ARGUMENT, message="no")])
            with pytest.raises(PartialFailure) as refused:
                await exporter.send(batch)
            rows = refused.value.rows
            assert 0 < len(rows) < len(batch)
            delivered = {span.span_id for span in backend.spans()}
            assert delivered == {batch.span_id[i] for i in range(len(batch)) if i not in set(rows)}
        finally:
            await exporter.shutdown()


# --- (d) logs and metrics forwarded as received -------------------------------------------------------


def _logs_request(body: str) -> bytes:
    request = ExportLogsServiceRequest()
    rl = request.resource_logs.add()
    rl.resource.attributes.append(kv("service.name", "app"))
    record = rl.scope_logs.add().log_records.add()
    record.time_unix_nano = time.time_ns()
    record.body.string_value = body
    return request.SerializeToString()


def _metrics_request(name: str, value: float) -> bytes:
    request = ExportMetricsServiceRequest()
    rm = request.resource_metrics.add()
    rm.resource.attributes.append(kv("service.name", "app"))
    metric = rm.scope_metrics.add().metrics.add()
    metric.name = name
    point = metric.gauge.data_points.add()
    point.time_unix_nano = time.time_ns()
    point.as_double = value
    return request.SerializeToString()


@pytest.mark.parametrize("transport", ["grpc", "http-proto", "http-json"])
async def test_otlp_forwards_logs_and_metrics_merged(tmp_path: Path, transport: str) -> None:
    async with otlp_backend() as backend:
        if transport == "grpc":
            exporter, _ = await _grpc_exporter(tmp_path, backend)
        else:
            exporter, _ = await _http_exporter(tmp_path, backend, encoding=transport.split("-")[1])
        try:
            logs = SignalBatch(
                SIGNAL_LOGS,
                [SignalRecord(lsn, _logs_request(f"line {lsn}")) for lsn in range(1, 4)],
                "logs:1-3",
            )
            metrics = SignalBatch(
                SIGNAL_METRICS,
                [SignalRecord(lsn, _metrics_request(f"m{lsn}", lsn / 2)) for lsn in range(4, 6)],
                "metrics:4-5",
            )
            await exporter.send_logs(logs)
            await exporter.send_metrics(metrics)
            by_signal = {got.signal: got.request for got in backend.received}
            assert len(backend.received) == 2  # one request per batch: the records merged
            bodies = [
                record.body.string_value
                for rl in by_signal["logs"].resource_logs  # type: ignore[attr-defined]
                for sl in rl.scope_logs
                for record in sl.log_records
            ]
            assert bodies == ["line 1", "line 2", "line 3"]
            points = [
                (metric.name, metric.gauge.data_points[0].as_double)
                for rm in by_signal["metrics"].resource_metrics  # type: ignore[attr-defined]
                for sm in rm.scope_metrics
                for metric in sm.metrics
            ]
            assert points == [("m4", 2.0), ("m5", 2.5)]
            assert any_value(by_signal["logs"].resource_logs[0].resource.attributes[0].value) == "app"  # type: ignore[attr-defined]
        finally:
            await exporter.shutdown()


async def test_otlp_logs_too_big_for_one_request_are_cut(tmp_path: Path) -> None:
    async with otlp_backend() as backend:
        exporter, _ = await _grpc_exporter(tmp_path, backend, max_request_size_mib=0.001)  # ~1 KB
        try:
            request = ExportLogsServiceRequest()
            for index in range(10):
                request.MergeFromString(_logs_request(f"{index:03d}" + "x" * 300))
            records = [SignalRecord(1, request.SerializeToString()), SignalRecord(2, _logs_request("small"))]
            await exporter.send_logs(SignalBatch(SIGNAL_LOGS, records, "logs:1-2"))
            bodies = [
                record.body.string_value[:3]
                for got in backend.received
                for rl in got.request.resource_logs  # type: ignore[attr-defined]
                for sl in rl.scope_logs
                for record in sl.log_records
            ]
            assert bodies == [f"{index:03d}" for index in range(10)] + ["sma"]
            assert all(got.request.ByteSize() <= 1100 for got in backend.received)
        finally:
            await exporter.shutdown()


async def test_otlp_collector_forwards_logs_and_metrics_pipelines(
    start_collector: StartCollector, tmp_path: Path
) -> None:
    """Logs and metrics pipelines of a running collector forward what its receiver accepted, unchanged."""
    async with otlp_backend() as backend:
        upstream = await start_collector(
            data_dir=tmp_path / "upstream",
            exporters={"otlp": {"endpoint": f"http://127.0.0.1:{backend.grpc_port}"}},
            overrides={
                "service": {
                    "pipelines": {
                        "logs": {"receivers": ["otlp"], "exporters": ["otlp"]},
                        "metrics/otlp": {"receivers": ["otlp"], "exporters": ["otlp"]},
                    }
                }
            },
        )
        port = upstream.endpoints()["otlp.http"]
        logs = [_logs_request(f"line {index}") for index in range(3)]
        metrics = _metrics_request("queue.depth", 4.0)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            headers = {"Content-Type": "application/x-protobuf"}
            for body in logs:
                assert (await client.post("/v1/logs", content=body, headers=headers)).status_code == 200
            assert (await client.post("/v1/metrics", content=metrics, headers=headers)).status_code == 200

        def bodies() -> list[str]:
            return [
                record.body.string_value
                for got in backend.received
                if got.signal == "logs"
                for rl in got.request.resource_logs  # type: ignore[attr-defined]
                for sl in rl.scope_logs
                for record in sl.log_records
            ]

        await wait_for(lambda: len(bodies()) == 3, timeout=30, what=lambda: f"3 log records, got {bodies()}")
        assert sorted(bodies()) == ["line 0", "line 1", "line 2"]
        forwarded = await wait_for(
            lambda: [got.request for got in backend.received if got.signal == "metrics"],
            timeout=30,
            what="the metrics request",
        )
        assert [m.SerializeToString() for m in forwarded] == [metrics]
