"""The ClickHouse exporter under bad rows and backfills, against a real chDB store: a row no column can hold
costs only itself (and is named), a backfill of many days is split by partition, and a batch sent again
after a partial failure stores nothing twice."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from llm_observer.exporters.clickhouse import ClickHouseExporter, ClickHouseExporterConfig, factory
from llm_observer.kernel.batch import Event, SpanBatch
from llm_observer.kernel.component import CreateContext
from llm_observer.kernel.errors import PartialFailure, PermanentError, RetryableError
from llm_observer.kernel.telemetry import Telemetry
from llm_observer.storage.clickhouse.client import classify
from tests.support import add_span

NOW = time.time_ns() - 3_600_000_000_000
DAY = 86_400_000_000_000


@pytest.fixture
async def exporter(tmp_path: Path) -> AsyncIterator[ClickHouseExporter]:
    ctx = CreateContext("clickhouse", tmp_path, Telemetry(), logging.getLogger("test"))
    exp = factory.create(ctx, ClickHouseExporterConfig())
    await exp.start()
    yield exp
    await exp.shutdown()


def _count(exp: ClickHouseExporter) -> int:
    assert exp.client is not None
    return int(exp.client.rows("SELECT count() AS n, uniqExact(SpanId) AS u FROM otel.otel_traces")[0]["n"])


def _batch(starts: list[int], origin: str = "traces:1-2") -> SpanBatch:
    batch = SpanBatch(origin=origin)
    for n, start in enumerate(starts):
        add_span(
            batch,
            span_id=(n + 1).to_bytes(8, "big"),
            start=start,
            end=start + 1000 if start < 2**63 else start,
        )
    return batch


async def test_clickhouse_faults_row_past_2262_is_named_and_the_rest_stored(
    exporter: ClickHouseExporter,
) -> None:
    batch = _batch([NOW + n for n in range(10)])
    batch.start_time_unix_nano[3] = 2**63 + 1
    batch.events[6] = [Event(2**64 - 1, "late", {})]
    with pytest.raises(PartialFailure) as caught:
        await exporter.send(batch)
    assert caught.value.rows == [3, 6]
    assert "start_time_unix_nano" in caught.value.problems[3]
    assert "events[0].time_unix_nano" in caught.value.problems[6]
    assert _count(exporter) == 8
    # The same batch again (a replay after a crash) stores nothing twice.
    with pytest.raises(PartialFailure):
        await exporter.send(batch)
    assert _count(exporter) == 8


async def test_clickhouse_faults_unconvertible_text_costs_only_its_row(exporter: ClickHouseExporter) -> None:
    batch = _batch([NOW + n for n in range(6)])
    batch.name[2] = "lone surrogate \ud800"
    with pytest.raises(PartialFailure) as caught:
        await exporter.send(batch)
    assert caught.value.rows == [2] and "convert" in caught.value.problems[2]
    assert _count(exporter) == 5


async def test_clickhouse_faults_backfill_of_many_days_is_split_by_partition(
    exporter: ClickHouseExporter,
) -> None:
    batch = _batch([NOW + (d - 60) * DAY for d in range(120)])
    await exporter.send(batch)
    assert _count(exporter) == 120
    await exporter.send(batch)  # replayed: every group is dropped as already stored
    assert _count(exporter) == 120


def test_clickhouse_faults_errors_are_classed_by_what_a_retry_can_change() -> None:
    partitions = classify(
        "Code: 252. DB::Exception: Too many partitions for single INSERT block (more than 100). (TOO_MANY_PARTS)",
        "insert",
    )
    assert isinstance(partitions, PermanentError) and partitions.reason == "too_many_partitions"
    merges = classify(
        "Code: 252. DB::Exception: Too many parts (300). Merges are processing slower", "insert"
    )
    assert isinstance(merges, RetryableError)
    disk = classify("Code: 74. DB::ErrnoException: Cannot write to file x: No space left on device", "insert")
    assert isinstance(disk, RetryableError)
    data = classify("Code: 27. DB::Exception: Cannot parse input", "insert")
    assert isinstance(data, PermanentError) and not isinstance(data, RetryableError)
