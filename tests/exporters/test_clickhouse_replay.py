"""Inserts that are safe to retry across collectors: rows read from a replayable source (``IngestMeta.source``,
e.g. a Kafka chunk) are keyed by that source, so the same chunk stored by two collectors, in different WAL
ranges, is stored once; on a real chDB store."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import pytest

from llm_observer.exporters.clickhouse import ClickHouseExporter, ClickHouseExporterConfig, factory
from llm_observer.exporters.clickhouse.exporter import insert_units, source_token
from llm_observer.kernel.batch import IngestMeta, Provenance, SpanBatch
from llm_observer.kernel.component import CreateContext
from llm_observer.kernel.telemetry import Telemetry
from llm_observer.storage.clickhouse import schema
from tests.support import add_span

NOW = time.time_ns() - 3_600_000_000_000
DAY = 86_400_000_000_000


def _exporter(data_dir: Path, **config: Any) -> ClickHouseExporter:
    ctx = CreateContext("clickhouse", data_dir, Telemetry(), logging.getLogger("test"))
    return factory.create(ctx, ClickHouseExporterConfig(**config))


def _chunk(batch: SpanBatch, first_span: int, spans: int, source: str | None, day: int = 0) -> None:
    """Append ``spans`` spans (ids from ``first_span``) read from ``source`` (None: an OTLP request)."""
    start = len(batch)
    for n in range(first_span, first_span + spans):
        add_span(
            batch,
            {"gen_ai.request.model": "gpt-4o"},
            resource={"service.name": "svc"},
            trace_id=(n // 4).to_bytes(16, "big"),
            span_id=n.to_bytes(8, "big"),
            start=NOW - day * DAY + n,
        )
    batch.provenance.append(Provenance(start, len(batch), IngestMeta(source=source)))


def _stored(exporter: ClickHouseExporter, table: str = schema.TRACES_TABLE) -> list[dict[str, Any]]:
    assert exporter.client is not None
    key = "SpanId" if table == schema.TRACES_TABLE else "TraceId"
    return exporter.client.rows(f"SELECT {key} AS id, count() AS n FROM otel.{table} GROUP BY id ORDER BY id")


async def test_clickhouse_replay_same_source_chunk_from_two_collectors_is_stored_once(tmp_path: Path) -> None:
    # Two collectors (two exporter instances over one store) read the same Kafka chunk after a rebalance:
    # it lands in different WAL ranges and beside different neighbours.
    first, second = SpanBatch(origin="traces:0-1"), SpanBatch(origin="traces:57-59")
    _chunk(first, 0, 8, "kafka:otlp_spans/3/1200-1208")
    _chunk(second, 100, 2, "kafka:otlp_spans/1/40-42")
    _chunk(second, 0, 8, "kafka:otlp_spans/3/1200-1208")
    one, two = _exporter(tmp_path), _exporter(tmp_path)
    await one.start()
    await two.start()
    try:
        await one.send(first)
        await two.send(second)
        await two.send(second)  # and a plain retry
        stored = _stored(one)
        assert len(stored) == 10 and {row["n"] for row in stored} == {1}
        # The materialized trace-id table is deduplicated with its source table: 2 + 1 traces, once each.
        lookup = _stored(one, schema.TRACE_ID_TS_TABLE)
        assert len(lookup) == 3 and {row["n"] for row in lookup} == {1}
    finally:
        await one.shutdown()
        await two.shutdown()


async def test_clickhouse_replay_mixed_batch_keys_each_source_and_the_rest(tmp_path: Path) -> None:
    batch = SpanBatch(origin="traces:7-10")
    _chunk(batch, 0, 3, None)  # an OTLP request: no source
    _chunk(batch, 10, 4, "kafka:otlp_spans/0/5-9")
    _chunk(batch, 20, 2, "kafka:otlp_spans/2/77-79")
    _chunk(batch, 30, 1, None)
    units, misfit = insert_units(batch, None)
    assert not misfit
    assert [rows for _, rows in units] == [[0, 1, 2, 9], [3, 4, 5, 6], [7, 8]]
    assert units[1][0] == source_token(batch, "kafka:otlp_spans/0/5-9", [3, 4, 5, 6])
    assert units[1][0].startswith("kafka:otlp_spans/0/5-9/4/")
    assert units[0][0].startswith("traces:7-10/")

    exporter = _exporter(tmp_path)
    await exporter.start()
    try:
        await exporter.send(batch)
        # Another collector read only the second source, and the unsourced rows are new to it.
        other = SpanBatch(origin="traces:1-2")
        _chunk(other, 20, 2, "kafka:otlp_spans/2/77-79")
        _chunk(other, 40, 2, None)
        await exporter.send(other)
        stored = _stored(exporter)
        assert len(stored) == 12 and {row["n"] for row in stored} == {1}
    finally:
        await exporter.shutdown()


async def test_clickhouse_replay_part_of_a_chunk_is_not_mistaken_for_the_whole(tmp_path: Path) -> None:
    # The delivery helper narrows a refused batch down in halves: a half of a chunk must not share its key.
    whole = SpanBatch(origin="traces:3-4")
    _chunk(whole, 0, 6, "kafka:otlp_spans/0/0-6")
    half = whole.take([0, 1, 2])
    half.origin = whole.origin
    half.provenance.append(Provenance(0, 3, IngestMeta(source="kafka:otlp_spans/0/0-6")))
    exporter = _exporter(tmp_path)
    await exporter.start()
    try:
        await exporter.send(half)
        await exporter.send(whole)
        stored = _stored(exporter)
        # The half went in first; the whole is a different insert, so its other half is not lost.
        assert {row["id"] for row in stored} == {n.to_bytes(8, "big").hex() for n in range(6)}
    finally:
        await exporter.shutdown()


async def test_clickhouse_replay_day_groups_of_a_source(tmp_path: Path) -> None:
    # A chunk spanning more days than one insert may hold is split the same way by every collector.
    first, second = SpanBatch(origin="traces:0-1"), SpanBatch(origin="traces:9-10")
    for day in range(60):
        _chunk(first, day * 2, 2, None, day=day)
    first.provenance[:] = [Provenance(0, len(first), IngestMeta(source="kafka:otlp_spans/0/0-60"))]
    _chunk(second, 1000, 1, None)
    for day in range(60):
        _chunk(second, day * 2, 2, None, day=day)
    second.provenance[:] = [
        Provenance(0, 1, IngestMeta()),
        Provenance(1, len(second), IngestMeta(source="kafka:otlp_spans/0/0-60")),
    ]
    exporter = _exporter(tmp_path, ttl_days=365)
    await exporter.start()
    try:
        await exporter.send(first)
        await exporter.send(second)
        stored = _stored(exporter)
        assert len(stored) == 121 and {row["n"] for row in stored} == {1}
    finally:
        await exporter.shutdown()


def test_clickhouse_replay_provenance_that_does_not_fit_falls_back_to_the_wal_range(
    caplog: pytest.LogCaptureFixture,
) -> None:
    batch = SpanBatch(origin="traces:4-5")
    _chunk(batch, 0, 4, "kafka:otlp_spans/0/0-4")
    # As if a processor had dropped rows without mapping the provenance: the range runs past the batch.
    batch.provenance[:] = [Provenance(0, 9, IngestMeta(source="kafka:otlp_spans/0/0-9"))]
    units, misfit = insert_units(batch, None)
    assert misfit
    assert units == [(units[0][0], None)] and units[0][0].startswith("traces:4-5/4/")
    # Overlapping ranges do not fit either.
    batch.provenance[:] = [
        Provenance(0, 3, IngestMeta(source="a")),
        Provenance(2, 4, IngestMeta(source="b")),
    ]
    assert insert_units(batch, None)[1]


def test_clickhouse_replay_unstorable_rows_leave_the_key_of_their_source_deterministic() -> None:
    batch = SpanBatch(origin="traces:1-2")
    _chunk(batch, 0, 5, "kafka:otlp_spans/0/0-5")
    units, _ = insert_units(batch, [0, 1, 3, 4])  # row 2 cannot be stored, in every collector alike
    assert units == [(source_token(batch, "kafka:otlp_spans/0/0-5", [0, 1, 3, 4]), [0, 1, 3, 4])]
    assert insert_units(batch, [])[0] == []
