"""OTLP metrics and logs from the OpenTelemetry SDK's own exporters are accepted (never UNIMPLEMENTED) and
counted on the Prometheus endpoint, over gRPC and HTTP; with ``logs`` and ``metrics/NAME`` pipelines they are
stored (every metric kind in its table), a record storage can never hold is quarantined alone, a failing
exporter of a logs pipeline retries with its own settings, and the config refuses misplaced exporters."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
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
from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import (
    InMemoryLogRecordExporter,
    LogRecordExportResult,
    SimpleLogRecordProcessor,
)
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, MetricExportResult, MetricsData
from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource

from llm_observer.collector.deadletter import DeadLetterStore
from llm_observer.collector.service import DEADLETTER_DIR, Service
from llm_observer.collector.testing import local_config
from llm_observer.kernel.component import ComponentConfig, Factory
from llm_observer.kernel.errors import ConfigError, RetryableError
from llm_observer.kernel.signals import SignalBatch
from tests.support import trace_request, wait_for
from tests.support.collector import metrics_port, scrape, sink, stored

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


# --- logs and metrics stored -----------------------------------------------------------------------------

STORING = {
    "service": {
        "pipelines": {
            "logs": {"receivers": ["otlp"], "exporters": ["clickhouse"]},
            "metrics/otlp": {"receivers": ["otlp"], "exporters": ["clickhouse"]},
        }
    }
}


def _all_kinds_metrics_data() -> MetricsData:
    """Real SDK metrics of four kinds: a sync gauge, a counter (sum), a histogram and, through a view, an
    exponential histogram (the Python SDK makes no summaries)."""
    reader = InMemoryMetricReader()
    view = View(instrument_name="request.size", aggregation=ExponentialBucketHistogramAggregation())
    provider = MeterProvider(resource=RESOURCE, metric_readers=[reader], views=[view])
    meter = provider.get_meter("tests.signals", "0.1")
    meter.create_gauge("queue.depth", unit="{item}").set(7, {"queue": "a"})
    meter.create_counter("gen_ai.client.tokens", unit="{token}").add(120, {"gen_ai.token.type": "input"})
    latency = meter.create_histogram("gen_ai.client.operation.duration", unit="s")
    for value in (0.2, 0.4, 3.0):
        latency.record(value)
    size = meter.create_histogram("request.size", unit="By")
    for value in (1.0, 2.0, 4.0, 8.0):
        size.record(value)
    data = reader.get_metrics_data()
    provider.shutdown()
    assert data is not None
    return data


def _summary_request() -> ExportMetricsServiceRequest:
    request = ExportMetricsServiceRequest()
    resource_metrics = request.resource_metrics.add()
    attribute = resource_metrics.resource.attributes.add(key="service.name")
    attribute.value.string_value = "signals-test"
    metric = resource_metrics.scope_metrics.add().metrics.add(name="rpc.rtt", unit="ms")
    point = metric.summary.data_points.add(time_unix_nano=time.time_ns(), count=10, sum=55.0)
    point.quantile_values.add(quantile=0.5, value=5.0)
    point.quantile_values.add(quantile=0.99, value=9.5)
    return request


async def _export(service: Service, method: str, request: Message, response_type: type[Message]) -> Message:
    async with grpc.aio.insecure_channel(_grpc_target(service)) as channel:
        export = channel.unary_unary(
            method,
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=response_type.FromString,
        )
        response: Message = await export(request, timeout=10)
        return response


async def _export_metrics(service: Service, request: ExportMetricsServiceRequest) -> None:
    method = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export"
    await _export(service, method, request, ExportMetricsServiceResponse)


async def _export_logs(service: Service, request: ExportLogsServiceRequest) -> None:
    await _export(
        service,
        "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
        request,
        ExportLogsServiceResponse,
    )


def _count(service: Service, table: str, where: str = "1") -> int:
    return int(stored(service, f"SELECT count() AS n FROM otel.{table} WHERE {where}")[0]["n"])


async def test_signals_sdk_logs_and_metrics_of_every_kind_are_stored(
    start_collector: Callable[..., Awaitable[Service]],
) -> None:
    service = await start_collector(exporters=["clickhouse"], overrides=STORING)
    log_exporter = GrpcLogExporter(endpoint=_grpc_target(service), insecure=True, timeout=10)
    metric_exporter = GrpcMetricExporter(endpoint=_grpc_target(service), insecure=True, timeout=10)
    try:
        assert await asyncio.to_thread(log_exporter.export, _log_records(3)) == LogRecordExportResult.SUCCESS
        data = _all_kinds_metrics_data()
        assert await asyncio.to_thread(metric_exporter.export, data) == MetricExportResult.SUCCESS
    finally:
        await asyncio.to_thread(log_exporter.shutdown)
        await asyncio.to_thread(metric_exporter.shutdown)
    await _export_metrics(service, _summary_request())

    await wait_for(lambda: _count(service, "otel_logs") == 3, 30, "the SDK's log records in otel_logs")
    logs = stored(
        service,
        "SELECT Body, SeverityText, SeverityNumber, ServiceName, ScopeName, LogAttributes, EventName, "
        "OrganizationId FROM otel.otel_logs ORDER BY Body",
    )
    assert [row["Body"] for row in logs] == ["user message 0", "user message 1", "user message 2"]
    assert logs[0]["SeverityNumber"] == 9 and logs[0]["ServiceName"] == "signals-test"
    assert logs[0]["ScopeName"] == "tests.signals" and logs[0]["EventName"] == "gen_ai.user.message"
    assert logs[0]["LogAttributes"] == {"gen_ai.provider.name": "openai"}
    assert logs[0]["OrganizationId"] == "default"

    tables = ("gauge", "sum", "histogram", "exponential_histogram", "summary")
    await wait_for(
        lambda: all(_count(service, f"otel_metrics_{table}") == 1 for table in tables),
        30,
        lambda: {table: _count(service, f"otel_metrics_{table}") for table in tables},
    )
    gauge = stored(
        service, "SELECT MetricName, MetricUnit, Value, Attributes, ServiceName FROM otel.otel_metrics_gauge"
    )
    assert gauge == [
        {
            "MetricName": "queue.depth",
            "MetricUnit": "{item}",
            "Value": 7.0,
            "Attributes": {"queue": "a"},
            "ServiceName": "signals-test",
        }
    ]
    total = stored(
        service, "SELECT MetricName, Value, IsMonotonic, AggregationTemporality FROM otel.otel_metrics_sum"
    )
    assert total == [
        {
            "MetricName": "gen_ai.client.tokens",
            "Value": 120.0,
            "IsMonotonic": True,
            "AggregationTemporality": AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE,
        }
    ]
    (histogram,) = stored(
        service, "SELECT Count, Sum, Min, Max, BucketCounts, ExplicitBounds FROM otel.otel_metrics_histogram"
    )
    assert (histogram["Count"], histogram["Min"], histogram["Max"]) == (3, 0.2, 3.0)
    assert abs(histogram["Sum"] - 3.6) < 1e-9
    assert sum(histogram["BucketCounts"]) == 3
    assert len(histogram["BucketCounts"]) == len(histogram["ExplicitBounds"]) + 1
    (expo,) = stored(
        service,
        "SELECT MetricName, Count, Sum, Scale, PositiveBucketCounts FROM otel.otel_metrics_exponential_histogram",
    )
    assert (expo["MetricName"], expo["Count"], expo["Sum"]) == ("request.size", 4, 15.0)
    assert sum(expo["PositiveBucketCounts"]) == 4
    summary = stored(
        service,
        "SELECT Count, Sum, ValueAtQuantiles.Quantile AS q, ValueAtQuantiles.Value AS v FROM otel.otel_metrics_summary",
    )
    assert summary == [{"Count": 10, "Sum": 55.0, "q": [0.5, 0.99], "v": [5.0, 9.5]}]
    samples = await scrape(metrics_port(service))
    assert samples.value("llm_observer_spans_exported_total", pipeline="logs", exporter="clickhouse")


async def test_signals_a_record_storage_cannot_hold_is_quarantined_and_the_rest_stored(
    start_collector: Callable[..., Awaitable[Service]], tmp_path: Path
) -> None:
    service = await start_collector(exporters=["clickhouse"], overrides=STORING)
    logs = ExportLogsServiceRequest()
    scope_logs = logs.resource_logs.add().scope_logs.add()
    for index in range(3):
        record = scope_logs.log_records.add(time_unix_nano=time.time_ns(), span_id=bytes(8))
        record.body.string_value = f"line {index}"
    scope_logs.log_records[1].trace_id = b"\x01\x02\x03"  # not 16 bytes: no TraceId can hold it
    metrics = _summary_request()
    bad = metrics.resource_metrics[0].scope_metrics[0].metrics.add(name="bad.histogram")
    bad.histogram.data_points.add(time_unix_nano=time.time_ns(), count=1, bucket_counts=[1, 0, 0])
    await _export_logs(service, logs)
    await _export_metrics(service, metrics)

    store = DeadLetterStore(tmp_path / DEADLETTER_DIR)
    await wait_for(lambda: len(store.entries()) == 2, 30, lambda: store.entries())
    await wait_for(lambda: _count(service, "otel_logs") == 2, 30, "the good log records")
    assert [row["Body"] for row in stored(service, "SELECT Body FROM otel.otel_logs ORDER BY Body")] == [
        "line 0",
        "line 2",
    ]
    assert _count(service, "otel_metrics_summary") == 1 and _count(service, "otel_metrics_histogram") == 0
    by_signal = {entry.signal: entry for entry in store.entries()}
    assert set(by_signal) == {"logs", "metrics"}
    assert by_signal["logs"].spans == 1 and by_signal["logs"].organizations == {"default": 1}
    assert "trace_id has 3 bytes, not 16" in by_signal["logs"].problems[0]["problem"]
    assert "3 bucket counts for 0 explicit bounds" in by_signal["metrics"].problems[0]["problem"]
    _entry, quarantined = store.load(by_signal["logs"].id)
    assert isinstance(quarantined, SignalBatch) and len(quarantined) == 1
    (record,) = (
        ExportLogsServiceRequest.FromString(quarantined.records[0].payload)
        .resource_logs[0]
        .scope_logs[0]
        .log_records
    )
    assert record.body.string_value == "line 1"
    await wait_for(lambda: all(p.caught_up() for p in service.pipelines), 30, "every pipeline caught up")


class _FailingLogsConfig(ComponentConfig):
    failures: int = 2
    retry_after: float = 0.25


class _FailingLogs:
    """A logs exporter that refuses its first sends with a Retry-After, then takes everything."""

    def __init__(self, config: _FailingLogsConfig) -> None:
        self.config = config
        self.attempts: list[float] = []
        self.records = 0

    async def start(self) -> None:
        pass

    async def shutdown(self) -> None:
        pass

    async def send_logs(self, batch: SignalBatch) -> None:
        self.attempts.append(time.monotonic())
        if len(self.attempts) <= self.config.failures:
            raise RetryableError("backend busy", retry_after=self.config.retry_after)
        self.records += len(batch)


FAILING = Factory(
    "failinglogs", _FailingLogsConfig, lambda ctx, config: _FailingLogs(config), signal=("logs",)
)


async def test_signals_a_failing_logs_exporter_retries_with_its_own_settings(
    start_collector: Callable[..., Awaitable[Service]],
) -> None:
    service = await start_collector(
        exporters={"debug": {}},
        overrides={
            "exporters": {
                "failinglogs": {
                    "failures": 2,
                    "retry_after": 0.25,
                    "retry_on_failure": {"initial_interval_seconds": 0.01, "max_interval_seconds": 1.0},
                }
            },
            "service": {"pipelines": {"logs": {"receivers": ["otlp"], "exporters": ["failinglogs"]}}},
        },
        extra_factories={"exporters": {"failinglogs": FAILING}},
    )
    exporter = service.exporters["failinglogs"]
    assert isinstance(exporter, _FailingLogs)
    log_exporter = GrpcLogExporter(endpoint=_grpc_target(service), insecure=True, timeout=10)
    try:
        assert await asyncio.to_thread(log_exporter.export, _log_records(2)) == LogRecordExportResult.SUCCESS
    finally:
        await asyncio.to_thread(log_exporter.shutdown)
    await wait_for(lambda: exporter.records == 1, 20, "the request delivered after two refusals")
    assert len(exporter.attempts) == 3
    gaps = [later - earlier for earlier, later in zip(exporter.attempts, exporter.attempts[1:], strict=False)]
    # The exporter's own backoff starts at 10 ms; the backend's Retry-After (250 ms) is the minimum wait.
    assert all(gap >= 0.24 for gap in gaps), gaps
    samples = await scrape(metrics_port(service))
    assert samples.value("llm_observer_export_retries_total", pipeline="logs", exporter="failinglogs") == 2
    assert samples.value("llm_observer_spans_exported_total", pipeline="logs", exporter="failinglogs") == 1


def test_signals_config_refuses_exporters_in_the_wrong_kind_of_pipeline(tmp_path: Path) -> None:
    bad = {
        "service": {
            "pipelines": {
                "metrics/otlp": {"receivers": ["otlp"], "exporters": ["prometheus"]},
                "metrics/mixed": {"receivers": ["otlp", "spanmetrics"], "exporters": ["clickhouse"]},
                "logs": {
                    "receivers": ["otlp"],
                    "processors": ["cost"],
                    "exporters": ["clickhouse", "vectors"],
                },
                "logs/from_connector": {"receivers": ["spanmetrics"], "exporters": ["clickhouse"]},
            }
        }
    }
    with pytest.raises(ConfigError) as error:
        local_config(tmp_path, bad)
    problems = set(error.value.problems)
    assert (
        "service.pipelines.metrics/otlp.exporters[0]",
        "'prometheus' takes metrics from connectors, not OTLP metrics from receivers",
    ) in problems
    assert any(path == "service.pipelines.metrics/mixed.receivers" for path, _ in problems)
    assert ("service.pipelines.logs.processors", "logs pipelines take no processors") in problems
    assert ("service.pipelines.logs.exporters[1]", "'vectors' takes traces, not logs") in problems
    assert (
        "service.pipelines.logs/from_connector.receivers[0]",
        "'spanmetrics' is not defined under receivers",
    ) in problems


def test_signals_default_config_stores_logs_and_otlp_metrics(tmp_path: Path) -> None:
    pipelines = local_config(tmp_path).service.pipelines
    assert pipelines["logs"].receivers == ["otlp"] and pipelines["logs"].exporters == ["clickhouse"]
    assert pipelines["metrics/otlp"].receivers == ["otlp"] and pipelines["metrics/otlp"].exporters == [
        "clickhouse"
    ]
