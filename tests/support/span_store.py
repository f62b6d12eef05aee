"""A chDB store made by the migrations, holding the spans a test planted: what the storage read tests read."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from llm_observer.kernel.batch import SpanBatch
from llm_observer.storage.clickhouse import schema
from llm_observer.storage.clickhouse.arrow import to_arrow
from llm_observer.storage.clickhouse.client import ClickHouseClient, open_client
from llm_observer.storage.clickhouse.migrate import ensure_schema


@contextmanager
def span_store(
    path: Path, batch: SpanBatch, migrations: tuple[schema.Migration, ...] | None = None
) -> Iterator[ClickHouseClient]:
    """A chDB store in ``path`` (database ``otel``, 30-day retention, ``migrations`` if given) with ``batch``
    inserted into ``otel_traces`` at once (one part); closed on exit."""
    client = open_client("chdb://clickhouse", path)
    try:
        ensure_schema(client, "otel", ttl_days=30, migrations=migrations)
        client.insert_arrow(f"`otel`.{schema.TRACES_TABLE}", schema.INSERT_COLUMNS, to_arrow(batch))
        yield client
    finally:
        client.close()
