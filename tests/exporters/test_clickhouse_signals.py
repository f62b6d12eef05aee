"""The ClickHouse exporter stores OTLP logs and metrics (real chDB): every column of ``otel_logs`` and the five
``otel_metrics_*`` tables, the tenant of the ingest key over the data's own, a replayed range stored once, and
a request holding a record no column can hold refused alone, with what is wrong."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality

from llm_observer.exporters.clickhouse import ClickHouseExporter, ClickHouseExporterConfig, factory
from llm_observer.kernel.batch import IngestMeta
from llm_observer.kernel.component import SIGNAL_LOGS, SIGNAL_METRICS, CreateContext, signals_of
from llm_observer.kernel.errors import PartialFailure
from llm_observer.kernel.signals import SignalBatch, SignalRecord, split_request
from llm_observer.kernel.telemetry import Telemetry
from llm_observer.storage.clickhouse import metrics as metrics_schema

NOW = time.time_ns() - 60_000_000_000
TRACE_ID = bytes(range(16))
SPAN_ID = bytes(range(8))


@pytest.fixture
async def exporter(tmp_path: Path) -> AsyncIterator[ClickHouseExporter]:
    ctx = CreateContext("clickhouse", tmp_path, Telemetry(), logging.getLogger("test"))
    created = factory.create(ctx, ClickHouseExporterConfig(ttl_days=7))
    await created.start()
    yield created
    await created.shutdown()


def _rows(exporter: ClickHouseExporter, sql: str) -> list[dict[str, Any]]:
    assert exporter.client is not None
    return exporter.client.rows(sql)


def _kv(key: str, value: str | int) -> KeyValue:
    kv = KeyValue(key=key)
    if isinstance(value, str):
        kv.value.string_value = value
    else:
        kv.value.int_value = value
    return kv


def _logs(*bodies: str, organization: str = "orgA", service: str = "svc") -> bytes:
    request = ExportLogsServiceRequest()
    resource_logs = request.resource_logs.add(schema_url="https://opentelemetry.io/schemas/1.26.0")
    resource_logs.resource.attributes.extend(
        [_kv("service.name", service), _kv("llm_observer.organization.id", organization)]
    )
    scope_logs = resource_logs.scope_logs.add()
    scope_logs.scope.name, scope_logs.scope.version = "tests.logs", "1.2"
    scope_logs.scope.attributes.append(_kv("scope.kind", "unit"))
    for index, body in enumerate(bodies):
        record = scope_logs.log_records.add(
            time_unix_nano=NOW + index,
            observed_time_unix_nano=NOW + index + 5,
            severity_number=9,
            severity_text="INFO",
            trace_id=TRACE_ID,
            span_id=SPAN_ID,
            flags=1,
            event_name="gen_ai.user.message",
        )
        record.body.string_value = body
        record.attributes.extend([_kv("index", index)])
    return request.SerializeToString()


def _metrics() -> bytes:
    """One data point of each of the five kinds."""
    request = ExportMetricsServiceRequest()
    resource_metrics = request.resource_metrics.add()
    resource_metrics.resource.attributes.append(_kv("service.name", "svc"))
    scope = resource_metrics.scope_metrics.add()
    scope.scope.name = "tests.metrics"
    gauge = scope.metrics.add(name="queue.depth", unit="{item}", description="items waiting")
    point = gauge.gauge.data_points.add(time_unix_nano=NOW, as_int=7)
    point.attributes.append(_kv("queue", "a"))
    exemplar = point.exemplars.add(time_unix_nano=NOW, as_double=7.0, trace_id=TRACE_ID, span_id=SPAN_ID)
    exemplar.filtered_attributes.append(_kv("user", "u1"))
    total = scope.metrics.add(name="tokens", unit="{token}")
    total.sum.aggregation_temporality = AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE
    total.sum.is_monotonic = True
    total.sum.data_points.add(start_time_unix_nano=NOW - 10, time_unix_nano=NOW, as_double=150.0)
    histogram = scope.metrics.add(name="latency", unit="s")
    histogram.histogram.aggregation_temporality = AggregationTemporality.AGGREGATION_TEMPORALITY_DELTA
    histogram.histogram.data_points.add(
        time_unix_nano=NOW,
        count=3,
        sum=1.5,
        bucket_counts=[1, 2, 0],
        explicit_bounds=[0.1, 1.0],
        min=0.05,
        max=0.9,
    )
    exponential = scope.metrics.add(name="size", unit="By")
    exponential.exponential_histogram.aggregation_temporality = (
        AggregationTemporality.AGGREGATION_TEMPORALITY_DELTA
    )
    expo = exponential.exponential_histogram.data_points.add(
        time_unix_nano=NOW, count=4, sum=10.0, scale=2, zero_count=1
    )
    expo.positive.offset, expo.positive.bucket_counts[:] = 3, [1, 2]
    expo.negative.offset, expo.negative.bucket_counts[:] = -1, [1]
    summary = scope.metrics.add(name="rtt", unit="ms")
    summary_point = summary.summary.data_points.add(time_unix_nano=NOW, count=10, sum=55.0)
    summary_point.quantile_values.add(quantile=0.5, value=5.0)
    summary_point.quantile_values.add(quantile=0.99, value=9.5)
    return request.SerializeToString()


def _batch(
    signal: int, *payloads: bytes, meta: IngestMeta | None = None, origin: str = "p:1-9"
) -> SignalBatch:
    records = [SignalRecord(lsn, payload, meta) for lsn, payload in enumerate(payloads, 1)]
    return SignalBatch(signal, records, origin)


def test_clickhouse_signals_factory_declares_every_signal_and_pushed_metrics() -> None:
    assert signals_of(factory) == ("traces", "logs", "metrics") and factory.push_metrics


async def test_clickhouse_signals_logs_land_in_otel_logs_with_every_column(
    exporter: ClickHouseExporter,
) -> None:
    await exporter.send_logs(_batch(SIGNAL_LOGS, _logs("hello", "world")))
    rows = _rows(
        exporter,
        "SELECT toUnixTimestamp64Nano(Timestamp) AS ts, TimestampTime = toDateTime(Timestamp) AS same_second, "
        "TraceId, SpanId, TraceFlags, SeverityText, SeverityNumber, ServiceName, Body, ResourceSchemaUrl, "
        "ResourceAttributes, ScopeName, ScopeVersion, ScopeAttributes, LogAttributes, EventName, "
        "OrganizationId, ProjectId FROM otel.otel_logs ORDER BY Timestamp",
    )
    assert [row["Body"] for row in rows] == ["hello", "world"]
    first = rows[0]
    assert first["ts"] == NOW and first["same_second"] == 1
    assert (first["TraceId"], first["SpanId"], first["TraceFlags"]) == (TRACE_ID.hex(), SPAN_ID.hex(), 1)
    assert (first["SeverityText"], first["SeverityNumber"], first["EventName"]) == (
        "INFO",
        9,
        "gen_ai.user.message",
    )
    assert first["ServiceName"] == "svc" and first["ResourceSchemaUrl"].endswith("1.26.0")
    assert (first["ScopeName"], first["ScopeVersion"], first["ScopeAttributes"]) == (
        "tests.logs",
        "1.2",
        {"scope.kind": "unit"},
    )
    assert first["LogAttributes"] == {"index": "0"}
    assert (first["OrganizationId"], first["ProjectId"]) == ("orgA", "default")


async def test_clickhouse_signals_the_ingest_key_decides_the_tenant(exporter: ClickHouseExporter) -> None:
    meta = IngestMeta(organization_id="orgKey", project_id="p1")
    await exporter.send_logs(_batch(SIGNAL_LOGS, _logs("claims orgA", organization="orgA"), meta=meta))
    await exporter.send_metrics(_batch(SIGNAL_METRICS, _metrics(), meta=meta))
    (log,) = _rows(exporter, "SELECT OrganizationId, ProjectId, ResourceAttributes FROM otel.otel_logs")
    assert (log["OrganizationId"], log["ProjectId"]) == ("orgKey", "p1")
    assert log["ResourceAttributes"]["llm_observer.organization.id"] == "orgKey"
    for table in metrics_schema.METRIC_TABLES:
        assert _rows(exporter, f"SELECT OrganizationId, ProjectId FROM otel.{table}") == [
            {"OrganizationId": "orgKey", "ProjectId": "p1"}
        ]


async def test_clickhouse_signals_each_metric_kind_lands_in_its_table(exporter: ClickHouseExporter) -> None:
    await exporter.send_metrics(_batch(SIGNAL_METRICS, _metrics()))
    (gauge,) = _rows(
        exporter,
        "SELECT MetricName, MetricUnit, MetricDescription, Attributes, Value, Exemplars.Value AS ev, "
        "Exemplars.TraceId AS et, Exemplars.FilteredAttributes AS ea, ScopeName FROM otel.otel_metrics_gauge",
    )
    assert (gauge["MetricName"], gauge["MetricUnit"], gauge["MetricDescription"]) == (
        "queue.depth",
        "{item}",
        "items waiting",
    )
    assert (
        gauge["Attributes"] == {"queue": "a"}
        and gauge["Value"] == 7.0
        and gauge["ScopeName"] == "tests.metrics"
    )
    assert (gauge["ev"], gauge["et"], gauge["ea"]) == ([7.0], [TRACE_ID.hex()], [{"user": "u1"}])
    (total,) = _rows(
        exporter,
        "SELECT Value, IsMonotonic, AggregationTemporality, toUnixTimestamp64Nano(StartTimeUnix) AS st "
        "FROM otel.otel_metrics_sum",
    )
    assert total == {"Value": 150.0, "IsMonotonic": True, "AggregationTemporality": 2, "st": NOW - 10}
    (histogram,) = _rows(
        exporter,
        "SELECT Count, Sum, BucketCounts, ExplicitBounds, Min, Max, AggregationTemporality "
        "FROM otel.otel_metrics_histogram",
    )
    assert histogram == {
        "Count": 3,
        "Sum": 1.5,
        "BucketCounts": [1, 2, 0],
        "ExplicitBounds": [0.1, 1.0],
        "Min": 0.05,
        "Max": 0.9,
        "AggregationTemporality": 1,
    }
    (expo,) = _rows(
        exporter,
        "SELECT Count, Sum, Scale, ZeroCount, PositiveOffset, PositiveBucketCounts, NegativeOffset, "
        "NegativeBucketCounts FROM otel.otel_metrics_exponential_histogram",
    )
    assert expo == {
        "Count": 4,
        "Sum": 10.0,
        "Scale": 2,
        "ZeroCount": 1,
        "PositiveOffset": 3,
        "PositiveBucketCounts": [1, 2],
        "NegativeOffset": -1,
        "NegativeBucketCounts": [1],
    }
    (summary,) = _rows(
        exporter,
        "SELECT Count, Sum, ValueAtQuantiles.Quantile AS q, ValueAtQuantiles.Value AS v FROM otel.otel_metrics_summary",
    )
    assert summary == {"Count": 10, "Sum": 55.0, "q": [0.5, 0.99], "v": [5.0, 9.5]}


async def test_clickhouse_signals_a_replayed_range_is_stored_once(exporter: ClickHouseExporter) -> None:
    logs = _batch(SIGNAL_LOGS, _logs("a", "b"), _logs("c"))
    metrics = _batch(SIGNAL_METRICS, _metrics())
    for _ in range(2):
        await exporter.send_logs(logs)
        await exporter.send_metrics(metrics)
    assert _rows(exporter, "SELECT count() AS n FROM otel.otel_logs") == [{"n": 3}]
    assert _rows(exporter, "SELECT count() AS n FROM otel.otel_metrics_summary") == [{"n": 1}]
    # The same records read twice from a Kafka partition, in WAL ranges of their own, are stored once too.
    sourced = IngestMeta(source="kafka:otlp_logs/0/10-11")
    for origin in ("logs:1-2", "logs:7-9"):
        await exporter.send_logs(_batch(SIGNAL_LOGS, _logs("from kafka"), meta=sourced, origin=origin))
    assert _rows(exporter, "SELECT count() AS n FROM otel.otel_logs WHERE Body = 'from kafka'") == [{"n": 1}]


async def test_clickhouse_signals_a_record_no_column_can_hold_costs_only_its_request(
    exporter: ClickHouseExporter,
) -> None:
    bad_logs = ExportLogsServiceRequest.FromString(_logs("good one", "too late"))
    bad_logs.resource_logs[0].scope_logs[0].log_records[1].time_unix_nano = (1 << 64) - 1
    bad_metrics = ExportMetricsServiceRequest.FromString(_metrics())
    point = bad_metrics.resource_metrics[0].scope_metrics[0].metrics[2].histogram.data_points[0]
    del point.bucket_counts[:]
    point.bucket_counts.extend([1, 2, 3, 4])
    with pytest.raises(PartialFailure) as logs_refused:
        await exporter.send_logs(_batch(SIGNAL_LOGS, _logs("kept"), bad_logs.SerializeToString()))
    assert logs_refused.value.rows == [1]
    assert "log record 1: time_unix_nano 18446744073709551615 is outside" in logs_refused.value.problems[1]
    with pytest.raises(PartialFailure) as metrics_refused:
        await exporter.send_metrics(_batch(SIGNAL_METRICS, bad_metrics.SerializeToString(), _metrics()))
    assert metrics_refused.value.rows == [0]
    assert (
        "'latency' data point 0: 4 bucket counts for 2 explicit bounds" in metrics_refused.value.problems[0]
    )
    assert _rows(exporter, "SELECT Body FROM otel.otel_logs") == [{"Body": "kept"}]
    assert _rows(exporter, "SELECT count() AS n FROM otel.otel_metrics_histogram") == [{"n": 1}]
    # Split into single records, the refused request's good parts are storable on their own.
    parts = split_request(SIGNAL_LOGS, bad_logs.SerializeToString())
    assert len(parts) == 2
    with pytest.raises(PartialFailure) as split_refused:
        await exporter.send_logs(_batch(SIGNAL_LOGS, *parts, origin="p:2-3"))
    assert split_refused.value.rows == [1]
    assert _rows(exporter, "SELECT Body FROM otel.otel_logs ORDER BY Body") == [
        {"Body": "good one"},
        {"Body": "kept"},
    ]
    assert len(split_request(SIGNAL_METRICS, _metrics())) == 5
