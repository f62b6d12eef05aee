"""Inserted parts are written compact (one file for all columns) up to ``schema.WIDE_PART_BYTES``, in new
stores and, through the migration, in stores made before it; on real chDB."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from llm_observer.storage.clickhouse import schema
from llm_observer.storage.clickhouse.client import ClickHouseClient, open_client
from llm_observer.storage.clickhouse.logs import LOGS_TABLE
from llm_observer.storage.clickhouse.metrics import METRIC_TABLES
from llm_observer.storage.clickhouse.migrate import ensure_schema

# Well over ClickHouse's own threshold for a wide part (10 MB uncompressed), well under ours.
ROWS = 12_000
PADDING = 1_000


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClickHouseClient]:
    client = open_client("chdb://clickhouse", tmp_path_factory.mktemp("parts"))
    try:
        yield client
    finally:
        client.close()


def _insert_spans(client: ClickHouseClient, database: str) -> list[dict[str, object]]:
    """One insert of ~14 MB of spans; the part format of every active part of ``otel_traces``."""
    client.command(
        f"INSERT INTO `{database}`.otel_traces (Timestamp, TraceId, SpanId, SpanName, ServiceName, SpanAttributes) "
        # One millisecond apart from the start of today: one day, so one partition and one part.
        "SELECT toDateTime64(toStartOfDay(now()), 9) + toIntervalMillisecond(number), "
        "hex(cityHash64(number)), hex(number), 'chat', 'svc', "
        f"map('gen_ai.request.model', 'gpt-4o', 'gen_ai.prompt', concat(toString(number), repeat('x', {PADDING}))) "
        f"FROM numbers({ROWS})"
    )
    return client.rows(
        "SELECT part_type, rows, data_uncompressed_bytes AS size FROM system.parts "
        "WHERE database = {db:String} AND table = 'otel_traces' AND active",
        {"db": database},
    )


def _setting(client: ClickHouseClient, database: str, table: str) -> str:
    rows = client.rows(
        "SELECT engine_full FROM system.tables WHERE database = {db:String} AND name = {table:String}",
        {"db": database, "table": table},
    )
    return str(rows[0]["engine_full"])


def test_part_format_new_store_inserts_compact_parts(client: ClickHouseClient) -> None:
    ensure_schema(client, "fresh", 30)
    for table in (schema.TRACES_TABLE, LOGS_TABLE, *METRIC_TABLES):
        assert f"min_bytes_for_wide_part = {schema.WIDE_PART_BYTES}" in _setting(client, "fresh", table)
    parts = _insert_spans(client, "fresh")
    assert [(p["part_type"], p["rows"]) for p in parts] == [("Compact", ROWS)]
    assert 10 * 1024 * 1024 < int(str(parts[0]["size"])) < schema.WIDE_PART_BYTES


def test_part_format_migration_applies_to_an_older_store(client: ClickHouseClient) -> None:
    ensure_schema(client, "older", 30, migrations=schema.migrations("older", 30)[:3])
    client.command("SYSTEM STOP MERGES older.otel_traces")  # each insert's part stays as it was written
    # Before the migration, the same insert is a wide part (ClickHouse's default threshold).
    assert [p["part_type"] for p in _insert_spans(client, "older")] == ["Wide"]
    assert ensure_schema(client, "older", 30) == [4]
    for table in (schema.TRACES_TABLE, LOGS_TABLE, *METRIC_TABLES):
        assert f"min_bytes_for_wide_part = {schema.WIDE_PART_BYTES}" in _setting(client, "older", table)
    parts = _insert_spans(client, "older")
    assert sorted(str(p["part_type"]) for p in parts) == ["Compact", "Wide"]
    # The spans are all there, whichever the format of their part.
    rows = client.rows("SELECT count() AS n FROM older.otel_traces")
    assert rows == [{"n": 2 * ROWS}]
