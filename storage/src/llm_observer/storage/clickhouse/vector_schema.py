"""Tables of the ``vectors`` exporter, beside the spans in the same database.

- ``llm_observer_vectors``: one row per unique (embedding model, content hash) — the vector, an excerpt of
  the text and when it was first seen. A ``ReplacingMergeTree`` on that key, so a text stored twice (two
  collectors racing, a retried send) is merged back to one row; reads take one row per hash anyway.
- ``llm_observer_vector_spans``: one small row per span and kind (prompt or output) naming the hash, with
  what a search filters on and returns. Sorted by organization then hash, so that the spans of a few
  texts within a tenant are a few small ranges to read. Partitioned by month, not by day: every search
  reads every part, and with 30 daily parts their fixed cost was most of a search's time; expired rows
  are therefore deleted by TTL merges rather than by dropping whole parts. The same retention as the span
  store.

Vectors are ``Array(BFloat16)``: half the bytes of ``Float32`` and, measured on 100k vectors of 384
dimensions in chDB, a scan six times faster (25 ms against 160 ms: reading the float column dominates),
while dot products are still summed in ``Float32`` and the top 10 is the same (``bench/bench_vectors.py``
reports the overlap). There is no similarity index: an exact scan answers within the search budget, and an
approximate index cannot apply the tenant filter before it ranks.
"""

from __future__ import annotations

import re

from llm_observer.storage.clickhouse.client import ClickHouseClient

VECTORS_TABLE = "llm_observer_vectors"
VECTOR_SPANS_TABLE = "llm_observer_vector_spans"

VECTOR_COLUMNS = ("EmbeddingModel", "Hash", "Vector", "Text", "FirstSeen")
SPAN_COLUMNS = (
    "Time",
    "OrganizationId",
    "ProjectId",
    "Kind",
    "EmbeddingModel",
    "Hash",
    "TraceId",
    "SpanId",
    "Model",
    "RequestModel",
    "Provider",
    "ServiceName",
    "SpanName",
)

_TTL_DAYS = re.compile(r"\bTTL\b.*?toIntervalDay\((\d+)\)")


def vector_tables(database: str, ttl_days: int) -> tuple[str, ...]:
    """``CREATE TABLE IF NOT EXISTS`` of both tables (the database must exist)."""
    db = f"`{database}`"
    vectors = f"""
CREATE TABLE IF NOT EXISTS {db}.{VECTORS_TABLE} (
    EmbeddingModel LowCardinality(String),
    Hash FixedString(16),
    Vector Array(BFloat16),
    Text String CODEC(ZSTD(3)),
    FirstSeen DateTime CODEC(Delta(4), ZSTD(1))
) ENGINE = ReplacingMergeTree
ORDER BY (EmbeddingModel, Hash)
SETTINGS index_granularity = 1024
"""
    spans = f"""
CREATE TABLE IF NOT EXISTS {db}.{VECTOR_SPANS_TABLE} (
    Time DateTime64(9) CODEC(Delta(8), ZSTD(1)),
    OrganizationId LowCardinality(String),
    ProjectId LowCardinality(String),
    Kind LowCardinality(String),
    EmbeddingModel LowCardinality(String),
    Hash FixedString(16) CODEC(ZSTD(1)),
    TraceId FixedString(16) CODEC(ZSTD(1)),
    SpanId FixedString(8) CODEC(ZSTD(1)),
    Model LowCardinality(String),
    RequestModel LowCardinality(String),
    Provider LowCardinality(String),
    ServiceName LowCardinality(String),
    SpanName LowCardinality(String)
) ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(Time)
ORDER BY (OrganizationId, EmbeddingModel, Hash, Kind, TraceId, SpanId)
TTL toDateTime(Time) + toIntervalDay({int(ttl_days)})
SETTINGS index_granularity = 1024
"""
    return (vectors, spans)


def ensure_vector_schema(client: ClickHouseClient, database: str, ttl_days: int) -> None:
    """Create the database and both tables when missing, and move the span rows' retention to ``ttl_days``
    when it differs. Idempotent."""
    client.command(f"CREATE DATABASE IF NOT EXISTS `{database}`")
    for statement in vector_tables(database, ttl_days):
        client.command(statement)
    rows = client.rows(
        "SELECT engine_full FROM system.tables WHERE database = {db:String} AND name = {table:String}",
        {"db": database, "table": VECTOR_SPANS_TABLE},
    )
    found = _TTL_DAYS.search(str(rows[0]["engine_full"])) if rows else None
    if found is None or int(found.group(1)) != int(ttl_days):
        client.command(
            f"ALTER TABLE `{database}`.{VECTOR_SPANS_TABLE} "
            f"MODIFY TTL toDateTime(Time) + toIntervalDay({int(ttl_days)})"
        )
