"""The Kafka receiver: chunking that a replay re-forms exactly (no broker), and against a real Apache Kafka
broker (slow: ``LLM_OBSERVER_SLOW_TESTS=1``): OTLP a plain producer wrote is stored by a collector whose
pipeline is kafka → ClickHouse with offsets committed after the WAL; a commit of ``x`` with ``end=y``
makes the next owner's first WAL record exactly ``[x, y)``; logs arrive as logs."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from llm_observer.collector.receivers.kafka import KafkaReceiver, KafkaReceiverConfig, factory
from llm_observer.collector.receivers.kafka_chunks import InFlight, PartitionState, ends_metadata, parse_ends
from llm_observer.collector.testing import genai_request
from llm_observer.collector.wal import Record, WriteAheadLog
from llm_observer.exporters.kafka import KafkaExporterConfig
from llm_observer.exporters.kafka import factory as exporter_factory
from llm_observer.kernel.component import SIGNAL_LOGS, SIGNAL_TRACES, CreateContext
from llm_observer.kernel.signals import SignalBatch, SignalRecord
from llm_observer.kernel.telemetry import Telemetry
from tests.support import wait_for
from tests.support.collector import stored
from tests.support.kafka import KafkaBroker, kafka_broker

__all__ = ["kafka_broker"]  # the fixture, used by name


# --- chunking, no broker ------------------------------------------------------------------------------


@dataclass
class _Message:
    at: int
    data: bytes

    def offset(self) -> int:
        return self.at

    def value(self) -> bytes:
        return self.data


def _messages(first: int, last: int, size: int = 10) -> list[Any]:
    return [_Message(offset, bytes([offset % 256]) * size) for offset in range(first, last + 1)]


def test_kafka_chunks_one_per_poll_split_by_size() -> None:
    state = PartitionState("t", 3, SIGNAL_TRACES)
    chunks = state.form(_messages(10, 19), max_bytes=40)
    assert [(c.first, c.end) for c in chunks] == [(10, 14), (14, 18), (18, 20)]
    assert chunks[0].source == "kafka:t/3/10-14"
    assert chunks[0].values == [bytes([o]) * 10 for o in range(10, 14)]
    assert state.committed == 10, "a group with no offset yet starts at the first chunk"


def test_kafka_chunks_follow_each_other_without_gaps() -> None:
    state = PartitionState.assigned("t", 0, SIGNAL_TRACES, committed=5, metadata="")
    # Offsets 5 and 6 were no messages (transaction markers): the chunk still starts at the commit.
    [chunk] = state.form(_messages(7, 8), max_bytes=1 << 20)
    assert (chunk.first, chunk.end) == (5, 9)
    [chunk] = state.form(_messages(11, 11), max_bytes=1 << 20)
    assert (chunk.first, chunk.end) == (9, 12)


def test_kafka_chunks_named_in_the_commit_are_reformed_exactly() -> None:
    state = PartitionState("t", 0, SIGNAL_TRACES, committed=5, next_first=5)
    state.in_flight.extend([InFlight(5, 9, mark=3), InFlight(9, 12, mark=4)])
    offset, metadata = state.commit_point() or (0, "")
    assert (offset, metadata) == (5, "llm-observer:ends=+4,+3")
    assert parse_ends(5, metadata) == [9, 12]
    assert parse_ends(5, "") == parse_ends(5, "someone-else") == parse_ends(5, ends_metadata(5, [])) == []

    # The next owner: the first poll brings part of the first chunk only, so nothing is complete yet.
    after = PartitionState.assigned("t", 0, SIGNAL_TRACES, offset, metadata)
    assert after.replaying
    assert after.form(_messages(5, 6), max_bytes=1 << 20) == []
    # The next brings the rest and more: [5, 9) and [9, 12) exactly as before, then the new messages.
    chunks = after.form(_messages(7, 14), max_bytes=1 << 20)
    assert [(c.first, c.end) for c in chunks] == [(5, 9), (9, 12), (12, 15)]
    assert chunks[0].values == [bytes([o]) * 10 for o in range(5, 9)]
    assert [c.source for c in chunks[:2]] == ["kafka:t/0/5-9", "kafka:t/0/9-12"]
    assert not after.replaying


def test_kafka_chunks_planned_chunk_completes_when_the_position_passes_its_end() -> None:
    state = PartitionState.assigned("t", 0, SIGNAL_TRACES, 5, ends_metadata(5, [9]))
    # Offsets 7 and 8 were no messages: the position says the range is over.
    chunks = state.form(_messages(5, 6), max_bytes=1 << 20, position=9)
    assert [(c.first, c.end, len(c.values)) for c in chunks] == [(5, 9, 2)]


def test_kafka_chunks_commit_moves_only_past_delivered_chunks() -> None:
    state = PartitionState("t", 0, SIGNAL_TRACES, committed=5, next_first=5)
    state.in_flight.extend([InFlight(5, 9, mark=3), InFlight(9, 12, mark=4)])
    assert not state.delivered(2), "written to the WAL is not delivered"
    assert state.delivered(3) and state.commit_point() == (9, "llm-observer:ends=+3")
    assert state.delivered(10) and state.commit_point() == (12, "")
    state.last_commit = (12, "")
    assert state.commit_point() is None, "nothing new to commit"


# --- against a broker ----------------------------------------------------------------------------------


def _produce(broker: KafkaBroker, topic: str, values: list[bytes], partition: int | None = None) -> None:
    producer = Producer({"bootstrap.servers": broker.bootstrap, "enable.idempotence": True})
    for value in values:
        if partition is None:
            producer.produce(topic, value)
        else:
            producer.produce(topic, value, partition=partition)
    assert producer.flush(30) == 0


def _commit(broker: KafkaBroker, group_id: str, offsets: list[TopicPartition]) -> None:
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group_id})
    try:
        consumer.commit(offsets=offsets, asynchronous=False)
    finally:
        consumer.close()


@pytest.fixture
async def wal(tmp_path: Path) -> AsyncIterator[WriteAheadLog]:
    log = WriteAheadLog(tmp_path / "wal", sync=False)
    await log.open()
    yield log
    await log.close()


def _records(log: WriteAheadLog) -> list[Record]:
    return log.read(log.first, log.head, 1 << 30)


async def _receiver(broker: KafkaBroker, log: WriteAheadLog, **config: Any) -> KafkaReceiver:
    ctx = CreateContext("kafka", Path("."), Telemetry(), logging.getLogger("test"), ingest=log.append)
    receiver = factory.create(ctx, KafkaReceiverConfig(brokers=[broker.bootstrap], **config))
    assert isinstance(receiver, KafkaReceiver)
    await receiver.start()
    return receiver


async def test_kafka_receiver_stores_what_a_plain_producer_wrote_and_commits_after_the_wal(
    start_collector: Any, kafka_broker: KafkaBroker
) -> None:
    topic, group = f"in-{uuid.uuid4().hex[:8]}", f"g-{uuid.uuid4().hex[:8]}"
    kafka_broker.create_topic(topic, partitions=2)
    requests = [genai_request(3, 2) for _ in range(10)]
    await asyncio.to_thread(_produce, kafka_broker, topic, [r.SerializeToString() for r in requests])
    service = await start_collector(
        exporters=["clickhouse"],
        overrides={
            "receivers": {
                "kafka": {
                    "brokers": [kafka_broker.bootstrap],
                    "topic": topic,
                    "logs_topic": None,
                    "metrics_topic": None,
                    "group_id": group,
                }
            },
            "service": {"pipelines": {"traces": {"receivers": ["kafka"]}}},
        },
    )
    count = lambda: stored(service, "SELECT count() AS n FROM otel.otel_traces")[0]["n"]  # noqa: E731
    await wait_for(lambda: count() == 60, timeout=60, what="60 spans stored")
    ids = {s.span_id.hex() for r in requests for s in r.resource_spans[0].scope_spans[0].spans}
    assert {r["SpanId"] for r in stored(service, "SELECT SpanId FROM otel.otel_traces")} == ids

    def committed_to_the_end() -> bool:
        offsets = kafka_broker.committed(group, topic, 2)
        return sum(tp.offset for tp in offsets if tp.offset > 0) == 10 and all(
            not tp.metadata for tp in offsets
        )

    await wait_for(
        lambda: asyncio.to_thread(committed_to_the_end), timeout=30, interval=0.5, what="clean commits"
    )
    registry = service.telemetry.registry

    def lags() -> list[float | None]:
        return [
            registry.get_sample_value(
                "llm_observer_kafka_consumer_lag", {"component": "kafka", "topic": topic, "partition": str(p)}
            )
            for p in (0, 1)
        ]

    # The gauge is refreshed once a second (and cleared while a rebalance moves the partitions), so the value
    # read just after the last commit can be from the refresh before it: wait until it reports the assigned
    # partitions, every one of them read to its end.
    def read_to_the_end() -> bool:
        reported = [lag for lag in lags() if lag is not None]
        return bool(reported) and all(lag == 0 for lag in reported)

    await wait_for(
        read_to_the_end, timeout=30, interval=0.2, what=lambda: f"a lag of 0 on every partition, not {lags()}"
    )


async def test_kafka_receiver_first_chunk_after_a_commit_with_end_is_exactly_that_range(
    kafka_broker: KafkaBroker, wal: WriteAheadLog
) -> None:
    topic, group = f"re-{uuid.uuid4().hex[:8]}", f"g-{uuid.uuid4().hex[:8]}"
    kafka_broker.create_topic(topic, partitions=1)
    requests = [genai_request(1, 1) for _ in range(6)]
    values = [r.SerializeToString() for r in requests]
    await asyncio.to_thread(_produce, kafka_broker, topic, values, 0)
    # The state a crash leaves: offset 2 committed as the start of chunk [2, 4), which may be stored.
    await asyncio.to_thread(
        _commit, kafka_broker, group, [TopicPartition(topic, 0, 2, metadata=ends_metadata(2, [4]))]
    )
    receiver = await _receiver(
        kafka_broker, wal, topic=topic, logs_topic=None, metrics_topic=None, group_id=group
    )
    try:
        await wait_for(lambda: sum(len(_chunk_values(r)) for r in _records(wal)) == 4, timeout=60)
    finally:
        await receiver.shutdown()
    first, *rest = _records(wal)
    assert first.meta is not None and first.meta.source == f"kafka:{topic}/0/2-4"
    assert first.payload == values[2] + values[3], "the replayed chunk is [2, 4) and nothing else"
    assert [r.meta.source for r in rest if r.meta] == [f"kafka:{topic}/0/4-6"]
    assert ExportTraceServiceRequest.FromString(rest[0].payload) == _merged(requests[4:6])
    [tp] = await asyncio.to_thread(kafka_broker.committed, group, topic, 1)
    assert (tp.offset, tp.metadata or "") == (6, "")


def _merged(requests: list[ExportTraceServiceRequest]) -> ExportTraceServiceRequest:
    out = ExportTraceServiceRequest()
    for request in requests:
        out.MergeFrom(request)
    return out


def _chunk_values(record: Record) -> list[Any]:
    return [
        s
        for rs in ExportTraceServiceRequest.FromString(record.payload).resource_spans
        for s in rs.scope_spans
    ]


async def test_kafka_logs_from_the_exporter_are_read_back_as_logs(
    kafka_broker: KafkaBroker, wal: WriteAheadLog
) -> None:
    logs_topic, group = f"logs-{uuid.uuid4().hex[:8]}", f"g-{uuid.uuid4().hex[:8]}"
    kafka_broker.create_topic(logs_topic, partitions=1)
    logs = ExportLogsServiceRequest()
    record = logs.resource_logs.add().scope_logs.add().log_records.add()
    record.body.string_value = "tool call failed"
    record.span_id = b"\x01" * 8
    ctx = CreateContext("kafka", Path("."), Telemetry(), logging.getLogger("test"))
    exporter = exporter_factory.create(
        ctx, KafkaExporterConfig(brokers=[kafka_broker.bootstrap], logs_topic=logs_topic)
    )
    await exporter.start()
    try:
        await exporter.send_logs(  # type: ignore[attr-defined]
            SignalBatch(SIGNAL_LOGS, [SignalRecord(3, logs.SerializeToString())], origin="logs:3-4")
        )
    finally:
        await exporter.shutdown()
    receiver = await _receiver(
        kafka_broker, wal, topic=None, logs_topic=logs_topic, metrics_topic=None, group_id=group
    )
    try:
        await wait_for(lambda: len(_records(wal)) == 1, timeout=60, what="one WAL record")
    finally:
        await receiver.shutdown()
    [stored_record] = _records(wal)
    assert stored_record.signal == SIGNAL_LOGS
    assert ExportLogsServiceRequest.FromString(stored_record.payload) == logs
    assert stored_record.meta is not None and stored_record.meta.source == f"kafka:{logs_topic}/0/0-1"
