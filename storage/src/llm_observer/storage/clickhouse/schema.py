"""The storage schema: the ecosystem's ``otel_traces`` table (the contrib ClickHouse exporter's column names
and types, which Grafana's ClickHouse plugin reads in OTel mode) with typed GenAI columns beside it, and the
trace-id lookup table. One set of DDL serves chDB and a ClickHouse server.

The GenAI columns are ``DEFAULT`` expressions over ``SpanAttributes``: the exporter inserts only the OTel
columns and ClickHouse derives the typed ones in native code, so they always agree with the attributes.
Migrations are versioned; ``MIGRATIONS[i]`` brings the schema from version ``i`` to ``i + 1``.
"""

from __future__ import annotations

from dataclasses import dataclass

from llm_observer.storage.clickhouse.logs import LOGS_TABLE, logs_retention, logs_table
from llm_observer.storage.clickhouse.metrics import METRIC_TABLES, metric_tables, metrics_retention
from llm_observer.storage.clickhouse.rollup import retention as rollup_retention
from llm_observer.storage.clickhouse.rollup import rollup_statements

TRACES_TABLE = "otel_traces"
TRACE_ID_TS_TABLE = "otel_traces_trace_id_ts"
TRACE_ID_TS_VIEW = "otel_traces_trace_id_ts_mv"
MIGRATIONS_TABLE = "llm_observer_schema_migrations"

# Parts smaller than this (uncompressed) are written compact: one file for all their columns instead of two
# per column, sub-column and skip index. An insert of ~9,000 spans (~14 MB) as a wide part opens ~220 files
# and allocates a write buffer for each (~220 MB per insert, most of its time in the kernel); compact, it
# takes 1.4-2.3x less time (``bench/bench_insert.py``). Merges write the larger parts wide, as reads want.
WIDE_PART_BYTES = 256 * 1024 * 1024

# Columns the exporter supplies on insert, in order.
INSERT_COLUMNS = (
    "Timestamp",
    "TraceId",
    "SpanId",
    "ParentSpanId",
    "TraceState",
    "SpanName",
    "SpanKind",
    "ServiceName",
    "ResourceAttributes",
    "ScopeName",
    "ScopeVersion",
    "SpanAttributes",
    "Duration",
    "StatusCode",
    "StatusMessage",
    "Events.Timestamp",
    "Events.Name",
    "Events.Attributes",
    "Links.TraceId",
    "Links.SpanId",
    "Links.TraceState",
    "Links.Attributes",
)


def _attr(key: str) -> str:
    return f"SpanAttributes['{key}']"


def _first(*keys: str) -> str:
    """The first non-empty span attribute among ``keys``."""
    expr = _attr(keys[-1])
    for key in reversed(keys[:-1]):
        expr = f"if({_attr(key)} != '', {_attr(key)}, {expr})"
    return expr


def _tenant(key: str, default: str) -> str:
    return (
        f"if({_attr(key)} != '', {_attr(key)}, "
        f"if(ResourceAttributes['{key}'] != '', ResourceAttributes['{key}'], '{default}'))"
    )


# The typed GenAI columns: (name, type, expression over the row).
GENAI_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("GenAiOperation", "LowCardinality(String)", _attr("gen_ai.operation.name")),
    ("GenAiProvider", "LowCardinality(String)", _attr("gen_ai.provider.name")),
    ("GenAiRequestModel", "LowCardinality(String)", _attr("gen_ai.request.model")),
    ("GenAiResponseModel", "LowCardinality(String)", _attr("gen_ai.response.model")),
    ("InputTokens", "UInt64", f"toUInt64OrZero({_attr('gen_ai.usage.input_tokens')})"),
    ("OutputTokens", "UInt64", f"toUInt64OrZero({_attr('gen_ai.usage.output_tokens')})"),
    ("CacheReadTokens", "UInt64", f"toUInt64OrZero({_attr('gen_ai.usage.cache_read.input_tokens')})"),
    (
        "CacheWriteTokens",
        "UInt64",
        "toUInt64OrZero("
        + _first("gen_ai.usage.cache_creation.input_tokens", "gen_ai.usage.cache_write.input_tokens")
        + ")",
    ),
    ("ReasoningTokens", "UInt64", f"toUInt64OrZero({_attr('gen_ai.usage.reasoning.output_tokens')})"),
    ("CostUsd", "Float64", f"toFloat64OrZero({_attr('llm_observer.cost.usd')})"),
    ("OrganizationId", "LowCardinality(String)", _tenant("llm_observer.organization.id", "default")),
    ("ProjectId", "LowCardinality(String)", _tenant("llm_observer.project.id", "default")),
    ("TeamId", "LowCardinality(String)", _tenant("llm_observer.team.id", "")),
    ("UserId", "String", _first("user.id", "user.id")),
    ("ConversationId", "String", _first("gen_ai.conversation.id", "session.id")),
)


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    description: str
    statements: tuple[str, ...]


def migrations(database: str, ttl_days: int) -> tuple[Migration, ...]:
    """Every migration, in order, for ``database`` with a retention of ``ttl_days``."""
    db = f"`{database}`"
    genai = ",\n    ".join(
        f"`{name}` {ctype} DEFAULT {expr} CODEC(ZSTD(1))" for name, ctype, expr in GENAI_COLUMNS
    )
    traces = f"""
CREATE TABLE IF NOT EXISTS {db}.{TRACES_TABLE} (
    Timestamp DateTime64(9) CODEC(Delta(8), ZSTD(1)),
    TraceId String CODEC(ZSTD(1)),
    SpanId String CODEC(ZSTD(1)),
    ParentSpanId String CODEC(ZSTD(1)),
    TraceState String CODEC(ZSTD(1)),
    SpanName LowCardinality(String) CODEC(ZSTD(1)),
    SpanKind LowCardinality(String) CODEC(ZSTD(1)),
    ServiceName LowCardinality(String) CODEC(ZSTD(1)),
    ResourceAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    ScopeName String CODEC(ZSTD(1)),
    ScopeVersion String CODEC(ZSTD(1)),
    SpanAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    Duration UInt64 CODEC(ZSTD(1)),
    StatusCode LowCardinality(String) CODEC(ZSTD(1)),
    StatusMessage String CODEC(ZSTD(1)),
    Events Nested (
        Timestamp DateTime64(9),
        Name LowCardinality(String),
        Attributes Map(LowCardinality(String), String)
    ) CODEC(ZSTD(1)),
    Links Nested (
        TraceId String,
        SpanId String,
        TraceState String,
        Attributes Map(LowCardinality(String), String)
    ) CODEC(ZSTD(1)),
    {genai},
    INDEX idx_trace_id TraceId TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_res_attr_key mapKeys(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_res_attr_value mapValues(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_span_attr_key mapKeys(SpanAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_span_attr_value mapValues(SpanAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_duration Duration TYPE minmax GRANULARITY 1,
    INDEX idx_model GenAiRequestModel TYPE set(256) GRANULARITY 4
) ENGINE = MergeTree
PARTITION BY toDate(Timestamp)
ORDER BY (OrganizationId, ProjectId, ServiceName, toStartOfMinute(Timestamp), TraceId, Timestamp)
TTL toDateTime(Timestamp) + toIntervalDay({int(ttl_days)})
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1, non_replicated_deduplication_window = 10000
"""
    # A lookup by id has no time to prune partitions with: it probes every part, ~0.1 ms each. At the default
    # 90-day retention a partition a week makes ~13 partitions where a partition a day made 90. Rows outlive
    # their spans by up to a week; a lookup of a trace whose spans are gone then finds no span.
    trace_id_ts = f"""
CREATE TABLE IF NOT EXISTS {db}.{TRACE_ID_TS_TABLE} (
    TraceId String CODEC(ZSTD(1)),
    Start DateTime64(9) CODEC(Delta(8), ZSTD(1)),
    End DateTime64(9) CODEC(Delta(8), ZSTD(1)),
    INDEX idx_trace_id TraceId TYPE bloom_filter(0.01) GRANULARITY 1
) ENGINE = MergeTree
PARTITION BY toMonday(Start)
ORDER BY (TraceId, Start)
TTL toDateTime(Start) + toIntervalDay({int(ttl_days)})
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1, non_replicated_deduplication_window = 10000
"""
    trace_id_ts_view = f"""
CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.{TRACE_ID_TS_VIEW} TO {db}.{TRACE_ID_TS_TABLE}
AS SELECT TraceId, min(Timestamp) AS Start, max(Timestamp) AS End
FROM {db}.{TRACES_TABLE}
WHERE TraceId != ''
GROUP BY TraceId
"""
    return (
        Migration(
            1,
            "otel_traces with GenAI columns, trace-id lookup table",
            (traces, trace_id_ts, trace_id_ts_view),
        ),
        Migration(
            2,
            "otel_logs and the otel_metrics_* tables, with tenant columns",
            (logs_table(database, ttl_days), *metric_tables(database, ttl_days)),
        ),
        Migration(
            3,
            "per-minute and per-hour aggregates of model calls, filled from the stored spans",
            rollup_statements(database, ttl_days, TRACES_TABLE),
        ),
        Migration(
            4,
            "inserted parts of the span, log and metric tables in compact format",
            tuple(
                f"ALTER TABLE {db}.{table} MODIFY SETTING min_bytes_for_wide_part = {WIDE_PART_BYTES}"
                for table in (TRACES_TABLE, LOGS_TABLE, *METRIC_TABLES)
            ),
        ),
    )


def bootstrap(database: str) -> tuple[str, ...]:
    """Statements that must run before migrations can be read."""
    return (
        f"CREATE DATABASE IF NOT EXISTS `{database}`",
        f"CREATE TABLE IF NOT EXISTS `{database}`.{MIGRATIONS_TABLE} "
        "(version UInt32, description String, applied_at DateTime DEFAULT now()) "
        "ENGINE = MergeTree ORDER BY version",
    )


def retention_statements(database: str, ttl_days: int) -> tuple[str, ...]:
    """Statements that move existing tables to a new retention."""
    return (
        f"ALTER TABLE `{database}`.{TRACES_TABLE} MODIFY TTL toDateTime(Timestamp) + toIntervalDay({int(ttl_days)})",
        f"ALTER TABLE `{database}`.{TRACE_ID_TS_TABLE} MODIFY TTL toDateTime(Start) + toIntervalDay({int(ttl_days)})",
        *logs_retention(database, ttl_days),
        *metrics_retention(database, ttl_days),
        *rollup_retention(database, ttl_days),
    )
