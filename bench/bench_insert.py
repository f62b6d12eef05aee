"""Benchmark of what one insert into ``otel_traces`` costs the embedded engine, and which part of the table
costs it: the real table (its skip indexes, typed GenAI columns and the materialized views behind it) against
copies without the views, without the skip indexes, without the views written as wide parts (a file per
column: ClickHouse's format for parts over 10 MB, which ``schema.WIDE_PART_BYTES`` raises), and without the
views with granules closed at 1 MiB instead of 8,192 rows (``index_granularity_bytes``: what a trace-by-id
read would gain, ``bench_trace_by_id.py --granules``), on the same Arrow tables, alternating.

The input is what the ClickHouse exporter inserts in ``llm-observer up``: ``bench_arrow``'s batches
(``genai_request`` spans run through ``up``'s default processors), ``--batch`` spans each, converted once.
Wall time per insert (the engine works on its own threads, with the GIL released), median of ``--rounds``.

    .venv/bin/python bench/bench_insert.py [--batch 9000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import statistics
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

from bench_arrow import _processed_batches
from bench_trace_by_id import with_granule_bytes

from llm_observer.exporters.clickhouse import ClickHouseExporterConfig, factory
from llm_observer.kernel.component import CreateContext
from llm_observer.kernel.telemetry import Telemetry
from llm_observer.storage.clickhouse import schema
from llm_observer.storage.clickhouse.arrow import to_arrow
from llm_observer.storage.clickhouse.client import ClickHouseClient


def _small_granules_table(database: str, name: str) -> str:
    """``otel_traces`` as the migrations make it (compact parts included), named ``name``, with granules
    closed at 1 MiB: a setting fixed when a table is made, so the copy is made from the schema's statement."""
    statement = schema.migrations(database, 30)[0].statements[0]
    made: str = with_granule_bytes(statement, 1 << 20).replace(
        f"`{database}`.{schema.TRACES_TABLE} (", f"`{database}`.{name} ("
    )
    assert name in made, "otel_traces' statement changed: update this benchmark"
    # Migration 4 gives otel_traces compact parts; a table made from migration 1's statement has to be told.
    return made.rstrip() + f", min_bytes_for_wide_part = {schema.WIDE_PART_BYTES}"


@contextlib.asynccontextmanager
async def migrated_store() -> AsyncIterator[ClickHouseClient]:
    """A fresh embedded store with the schema the ClickHouse exporter makes (database ``otel``), dropped after."""
    with tempfile.TemporaryDirectory() as data_dir:
        ctx = CreateContext("clickhouse", Path(data_dir), Telemetry(), logging.getLogger("bench"))
        exporter = factory.create(ctx, ClickHouseExporterConfig())
        await exporter.start()
        try:
            assert exporter.client is not None
            yield exporter.client
        finally:
            await exporter.shutdown()


async def _measure(batch_spans: int, rounds: int) -> dict[str, object]:
    tables = [to_arrow(batch) for batch in _processed_batches(batch_spans, 4)]
    async with migrated_store() as client:
        client.command("CREATE TABLE otel.bench_no_views AS otel.otel_traces")
        client.command("CREATE TABLE otel.bench_no_indexes AS otel.otel_traces")
        client.command("CREATE TABLE otel.bench_wide AS otel.otel_traces")
        client.command("ALTER TABLE otel.bench_wide MODIFY SETTING min_bytes_for_wide_part = 10485760")
        client.command(_small_granules_table("otel", "bench_small_granules"))
        # Whatever skip indexes the schema gives otel_traces (the copy has the same).
        indexes = client.rows(
            "SELECT name FROM system.data_skipping_indices "
            "WHERE database = 'otel' AND table = 'bench_no_indexes'"
        )
        assert indexes, "otel_traces has no skip indexes to leave out"
        for index in indexes:
            client.command(f"ALTER TABLE otel.bench_no_indexes DROP INDEX `{index['name']}`")
        variants = {
            "otel_traces with its views and indexes": "otel.otel_traces",
            "without the views": "otel.bench_no_views",
            "without the views and skip indexes": "otel.bench_no_indexes",
            "without the views, as wide parts": "otel.bench_wide",
            "without the views, 1 MiB granules": "otel.bench_small_granules",
        }
        times: dict[str, list[float]] = {name: [] for name in variants}
        token = 0
        for _ in range(rounds):
            for name, table in variants.items():
                started = time.perf_counter()
                for arrow_table in tables:
                    token += 1
                    settings = {"insert_deduplication_token": f"bench-{token}"}
                    client.insert_arrow(table, schema.INSERT_COLUMNS, arrow_table, settings)
                times[name].append((time.perf_counter() - started) / len(tables))
    return {
        "spans_per_insert": batch_spans,
        "ms_per_insert": {name: round(1000 * statistics.median(t), 1) for name, t in times.items()},
        "spans_per_s": {name: round(batch_spans / statistics.median(t)) for name, t in times.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=9_000, help="spans per insert (up inserts ~9,000)")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(_measure(args.batch, args.rounds)), indent=2))


if __name__ == "__main__":
    main()
