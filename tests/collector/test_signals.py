"""OTLP metrics and logs from the OpenTelemetry SDK's own exporters are accepted (never UNIMPLEMENTED) and
counted on the Prometheus endpoint, over gRPC and HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import pytest
from google.protobuf.message import Message
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as GrpcLogExporter
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as GrpcMetricExporter
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as HttpLogExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as HttpMetricExporter
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import (
    InMemoryLogRecordExporter,
    LogRecordExportResult,
    SimpleLogRecordProcessor,
)
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, MetricExportResult, MetricsData
from opentelemetry.sdk.resources import Resource

from llm_observer.collector.service import Service
from tests.support import trace_request, wait_for
from tests.support.collector import metrics_port, scrape, sink

RESOURCE = Resource.create({"service.name": "signals-test"})


@pytest.fixture
async def collector(start_collector: Callable[..., Awaitable[Service]]) -> Service:
    return await start_collector()  # the debug sink; prometheus serves the self-metrics


def _metrics_data() -> tuple[MetricsData, int]:
    """Real SDK metrics: a counter with two attribute sets and a histogram (3 data points)."""
    reader = InMemoryMetricReader()
    provider = MeterProvider(resource=RESOURCE, metric_readers=[reader])
    meter = provider.get_meter("tests.signals")
    tokens = meter.create_counter("gen_ai.client.tokens", unit="{token}")
    tokens.add(120, {"gen_ai.token.type": "input"})
    tokens.add(30, {"gen_ai.token.type": "output"})
    meter.create_histogram("gen_ai.client.operation.duration", unit="s").record(0.42)
    data = reader.get_metrics_data()
    provider.shutdown()
    assert data is not None
    return data, 3


def _log_records(count: int) -> tuple[Any, ...]:
    exporter = InMemoryLogRecordExporter()  # type: ignore[no-untyped-call]
    provider = LoggerProvider(resource=RESOURCE)
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    logger = provider.get_logger("tests.signals")
    for index in range(count):
        logger.emit(
            body=f"user message {index}",
            severity_number=SeverityNumber.INFO,
            attributes={"gen_ai.provider.name": "openai"},
            event_name="gen_ai.user.message",
        )
    records = exporter.get_finished_logs()
    provider.shutdown()
    assert len(records) == count
    return records


def _grpc_target(service: Service) -> str:
    return f"127.0.0.1:{service.endpoints()['otlp.grpc']}"


def _http_url(service: Service, path: str) -> str:
    return f"http://127.0.0.1:{service.endpoints()['otlp.http']}{path}"


async def _items_received(service: Service, signal: str) -> float | None:
    samples = await scrape(metrics_port(service))
    return samples.value("llm_observer_items_received_total", component="otlp", signal=signal)


@pytest.mark.parametrize("transport", ["grpc", "http"])
async def test_signals_sdk_metrics_are_accepted_and_counted(collector: Service, transport: str) -> None:
    data, points = _metrics_data()
    exporter: GrpcMetricExporter | HttpMetricExporter
    if transport == "grpc":
        exporter = GrpcMetricExporter(endpoint=_grpc_target(collector), insecure=True, timeout=10)
    else:
        exporter = HttpMetricExporter(endpoint=_http_url(collector, "/v1/metrics"), timeout=10)
    try:
        result = await asyncio.to_thread(exporter.export, data)
    finally:
        await asyncio.to_thread(exporter.shutdown)
    assert result == MetricExportResult.SUCCESS
    assert await _items_received(collector, "metrics") == points
    assert await _items_received(collector, "logs") in (None, 0.0)
    # Metrics are not spans: the span counters stay untouched.
    samples = await scrape(metrics_port(collector))
    assert samples.value("llm_observer_spans_received_total", component="otlp") in (None, 0.0)


@pytest.mark.parametrize("transport", ["grpc", "http"])
async def test_signals_sdk_logs_are_accepted_and_counted(collector: Service, transport: str) -> None:
    records = _log_records(4)
    exporter: GrpcLogExporter | HttpLogExporter
    if transport == "grpc":
        exporter = GrpcLogExporter(endpoint=_grpc_target(collector), insecure=True, timeout=10)
    else:
        exporter = HttpLogExporter(endpoint=_http_url(collector, "/v1/logs"), timeout=10)
    try:
        result = await asyncio.to_thread(exporter.export, records)
    finally:
        await asyncio.to_thread(exporter.shutdown)
    assert result == LogRecordExportResult.SUCCESS
    assert await _items_received(collector, "logs") == 4
    assert await _items_received(collector, "metrics") in (None, 0.0)


async def test_signals_grpc_services_answer_ok_not_unimplemented(collector: Service) -> None:
    """The raw OTLP/gRPC methods: an empty request is a valid one and gets the empty response."""
    calls: list[tuple[str, Message, type[Message]]] = [
        (
            "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
            ExportMetricsServiceRequest(),
            ExportMetricsServiceResponse,
        ),
        (
            "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
            ExportLogsServiceRequest(),
            ExportLogsServiceResponse,
        ),
    ]
    async with grpc.aio.insecure_channel(_grpc_target(collector)) as channel:
        for method, request, response_type in calls:
            export = channel.unary_unary(
                method,
                request_serializer=lambda m: m.SerializeToString(),
                response_deserializer=response_type.FromString,
            )
            response = await export(request, timeout=10)
            assert response == response_type()
        unknown = channel.unary_unary(
            "/opentelemetry.proto.collector.profiles.v1development.ProfilesService/Export",
            request_serializer=None,
            response_deserializer=None,
        )
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await unknown(b"", timeout=10)
        assert failed.value.code() == grpc.StatusCode.UNIMPLEMENTED  # only what OTLP does not define


async def test_signals_metrics_and_logs_leave_the_trace_pipeline_working(collector: Service) -> None:
    """Metrics and logs records sit in the WAL beside traces; the traces pipeline skips them and goes on."""
    data, _ = _metrics_data()
    metric_exporter = GrpcMetricExporter(endpoint=_grpc_target(collector), insecure=True, timeout=10)
    log_exporter = HttpLogExporter(endpoint=_http_url(collector, "/v1/logs"), timeout=10)
    try:
        assert await asyncio.to_thread(metric_exporter.export, data) == MetricExportResult.SUCCESS
        assert await asyncio.to_thread(log_exporter.export, _log_records(2)) == LogRecordExportResult.SUCCESS
    finally:
        await asyncio.to_thread(metric_exporter.shutdown)
        await asyncio.to_thread(log_exporter.shutdown)
    request = trace_request(3)
    async with grpc.aio.insecure_channel(_grpc_target(collector)) as channel:
        export = channel.unary_unary(
            "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=lambda b: b,
        )
        await export(request, timeout=10)
    debug = sink(collector)
    await wait_for(lambda: len(debug.spans) == 3, what="the spans sent after metrics and logs")
    await wait_for(collector.pipelines[0].caught_up, what="every exporter past the metrics and logs records")
