"""The Kafka exporter against a real Apache Kafka broker (KRaft, started by ``tests.support.kafka``).

A collector whose traces pipeline exports to ClickHouse (chDB) and Kafka: the topic holds one message per
trace, keyed by its id, equal to what ClickHouse stored; a broker outage holds only the Kafka exporter's
cursor, and afterwards every acknowledged span is in Kafka exactly once. Slow (a broker start is ~10 s):
these run when ``LLM_OBSERVER_SLOW_TESTS=1``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from llm_observer.collector.service import Service
from llm_observer.collector.testing import genai_request
from llm_observer.exporters.kafka import KafkaExporter, KafkaExporterConfig, factory
from llm_observer.kernel.batch import SpanBatch
from llm_observer.kernel.component import SIGNAL_LOGS, CreateContext
from llm_observer.kernel.errors import PartialFailure, RetryableError
from llm_observer.kernel.otlp_codec import decode_traces, json_body_to_dict
from llm_observer.kernel.signals import SignalBatch, SignalRecord
from llm_observer.kernel.telemetry import Telemetry
from tests.support import span_batch, wait_for
from tests.support.collector import stored
from tests.support.kafka import SKIP_SLOW, Consumed, KafkaBroker, kafka_broker
from tests.support.spans import add_span

pytestmark = SKIP_SLOW

__all__ = ["kafka_broker"]  # the fixture, used by name

PROCESSORS = ["tenant", "normalize", "cost"]


def _topic() -> str:
    return f"spans-{uuid.uuid4().hex[:8]}"


async def _post(service: Service, request: ExportTraceServiceRequest) -> None:
    port = service.endpoints()["otlp.http"]
    async with httpx.AsyncClient() as client:
        response = await client.post(
            f"http://127.0.0.1:{port}/v1/traces",
            content=request.SerializeToString(),
            headers={"content-type": "application/x-protobuf"},
            timeout=30,
        )
    assert response.status_code == 200, response.text


async def _consumed(broker: KafkaBroker, topic: str, count: int, timeout: float = 60) -> list[Consumed]:
    """The topic's messages once it holds at least ``count``."""
    found: list[Consumed] = []

    async def enough() -> bool:
        nonlocal found
        found = await asyncio.to_thread(broker.consume_all, topic)
        return len(found) >= count

    await wait_for(enough, timeout=timeout, interval=0.5, what=lambda: f"{count} messages, have {len(found)}")
    return found


def _exporter(broker: KafkaBroker, **config: Any) -> KafkaExporter:
    ctx = CreateContext("kafka", Path("."), Telemetry(), logging.getLogger("test"))
    exporter = factory.create(ctx, KafkaExporterConfig(brokers=[broker.bootstrap], **config))
    assert isinstance(exporter, KafkaExporter)
    return exporter


def _span_count(service: Service) -> int:
    return int(stored(service, "SELECT count() AS n FROM otel.otel_traces")[0]["n"])


async def test_kafka_exporter_one_message_per_trace_equal_to_what_clickhouse_stored(
    start_collector: Any, kafka_broker: KafkaBroker
) -> None:
    topic = _topic()
    kafka_broker.create_topic(topic, partitions=3)
    service = await start_collector(
        exporters={"clickhouse": {}, "kafka": {"brokers": [kafka_broker.bootstrap], "topic": topic}},
        processors=PROCESSORS,
    )
    request = genai_request(12, 4)
    await _post(service, request)
    await wait_for(lambda: _span_count(service) == 48, timeout=30, what="48 spans stored")
    messages = await _consumed(kafka_broker, topic, 12)
    assert len(messages) == 12

    from_kafka: dict[bytes, dict[str, Any]] = {}
    for message in messages:
        batch = decode_traces(ExportTraceServiceRequest.FromString(message.value))
        assert set(batch.trace_id) == {message.key}, "one trace per message, keyed by its id"
        for row in range(len(batch)):
            from_kafka[batch.span_id[row]] = {
                "trace": batch.trace_id[row],
                "name": batch.name[row],
                "attributes": batch.attributes[row],
                "resource": batch.resource[row],
            }
    rows = stored(
        service,
        "SELECT SpanId, TraceId, SpanName, SpanAttributes, ResourceAttributes FROM otel.otel_traces",
    )
    assert {bytes.fromhex(r["SpanId"]) for r in rows} == set(from_kafka)
    for row in rows:
        span = from_kafka[bytes.fromhex(row["SpanId"])]
        assert span["trace"].hex() == row["TraceId"]
        assert span["name"] == row["SpanName"]
        # The processed spans: what the processors derived is in both, with the same values.
        assert set(span["attributes"]) == set(row["SpanAttributes"])
        for key, value in span["attributes"].items():
            if isinstance(value, float):
                assert float(row["SpanAttributes"][key]) == pytest.approx(value)
            elif isinstance(value, (str, int)) and not isinstance(value, bool):
                assert row["SpanAttributes"][key] == str(value)
        assert (
            span["resource"]["llm_observer.project.id"]
            == row["ResourceAttributes"]["llm_observer.project.id"]
        )
    assert any("llm_observer.cost.usd" in s["attributes"] for s in from_kafka.values())


async def test_kafka_exporter_json_encoding_and_logs_topic(kafka_broker: KafkaBroker) -> None:
    topic, logs_topic = _topic(), _topic()
    exporter = _exporter(kafka_broker, topic=topic, logs_topic=logs_topic, encoding="otlp_json")
    await exporter.start()
    try:
        batch = span_batch({"gen_ai.request.model": "gpt-4o", "n": 3}, origin="traces:1-2")
        await exporter.send(batch)
        logs = ExportLogsServiceRequest()
        record = logs.resource_logs.add().scope_logs.add().log_records.add()
        record.body.string_value = "hello"
        record.trace_id = bytes(range(1, 17))
        await exporter.send_logs(
            SignalBatch(SIGNAL_LOGS, [SignalRecord(7, logs.SerializeToString())], origin="logs:7-8")
        )
    finally:
        await exporter.shutdown()
    [span_message] = await _consumed(kafka_broker, topic, 1)
    body = json.loads(span_message.value)
    span = body["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    assert span["traceId"] == bytes(range(1, 17)).hex(), "OTLP/JSON ids are hex"
    assert span["kind"] == 3, "OTLP/JSON enums are integers"
    decoded = ExportTraceServiceRequest()
    json_format.ParseDict(json_body_to_dict(span_message.value), decoded)
    assert decode_traces(decoded).attributes == batch.attributes
    [log_message] = await _consumed(kafka_broker, logs_topic, 1)
    assert log_message.key is None
    log_body = json.loads(log_message.value)
    assert log_body["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0]["body"] == {"stringValue": "hello"}


async def test_kafka_exporter_refuses_only_the_trace_too_large_for_a_message(
    kafka_broker: KafkaBroker,
) -> None:
    topic = _topic()
    exporter = _exporter(
        kafka_broker, topic=topic, producer={"max_message_bytes": 20_000, "compression": "none"}
    )
    await exporter.start()
    try:
        batch = SpanBatch(origin="traces:1-3")
        add_span(batch, {"small": "x"}, trace_id=b"\x01" * 16)
        big = add_span(batch, {"big": "y" * 50_000}, trace_id=b"\x02" * 16)
        with pytest.raises(PartialFailure) as refused:
            await exporter.send(batch)
        assert refused.value.rows == [big]
        assert "MSG_SIZE_TOO_LARGE" in str(refused.value)
    finally:
        await exporter.shutdown()
    [message] = await _consumed(kafka_broker, topic, 1)
    assert message.key == b"\x01" * 16


async def test_kafka_exporter_broker_outage_holds_only_its_cursor_and_loses_nothing(
    start_collector: Any, kafka_broker: KafkaBroker
) -> None:
    topic = _topic()
    kafka_broker.create_topic(topic, partitions=2)
    service = await start_collector(
        exporters={
            "clickhouse": {},
            "kafka": {"brokers": [kafka_broker.bootstrap], "topic": topic, "timeout": 3},
        },
        processors=PROCESSORS,
        overrides={"service": {"delivery": {"max_backoff_seconds": 1}}},
    )
    traces: set[bytes] = set()
    spans = 0

    async def send(count: int) -> None:
        nonlocal spans
        for _ in range(count):
            request = genai_request(5, 3)
            traces.update(s.trace_id for s in request.resource_spans[0].scope_spans[0].spans)
            spans += 15
            await _post(service, request)

    await send(4)
    await _consumed(kafka_broker, topic, 20)
    kafka_broker.stop()
    try:
        await send(6)
        # ClickHouse never stalls while Kafka is away: every acknowledged span is stored meanwhile.
        await wait_for(lambda: _span_count(service) == spans, timeout=30, what="stored during the outage")
    finally:
        kafka_broker.start()
    await send(2)
    messages = await _consumed(kafka_broker, topic, len(traces), timeout=120)
    keys = [m.key for m in messages]
    assert len(keys) == len(traces) and set(keys) == traces, "every trace in Kafka exactly once"
    await wait_for(lambda: _span_count(service) == spans, timeout=30, what="all spans stored")
    [row] = stored(service, "SELECT count() AS n, uniqExact(SpanId) AS u FROM otel.otel_traces")
    assert row["n"] == row["u"] == spans, "no duplicates in storage"


async def test_kafka_exporter_send_fails_retryably_while_the_broker_is_down(
    kafka_broker: KafkaBroker,
) -> None:
    exporter = _exporter(kafka_broker, topic=_topic(), timeout=1)
    await exporter.start()
    kafka_broker.stop()
    try:
        with pytest.raises(RetryableError):
            await exporter.send(span_batch({"a": 1}, origin="traces:1-2"))
    finally:
        kafka_broker.start()
        await exporter.shutdown()
