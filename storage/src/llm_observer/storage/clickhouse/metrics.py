"""The ``otel_metrics_*`` tables: one per OTLP metric kind (gauge, sum, histogram, exponential histogram,
summary) in the ecosystem's shape (the contrib ClickHouse exporter's columns), one row per data point, with
the tenant columns ``otel_logs`` and ``otel_traces`` have (derived from ``ResourceAttributes``, which the
writer stamps with each point's tenant).

A metric's series is its ``(ServiceName, MetricName, Attributes)``; the sort key puts a series' points
together in time order, which is what a read of one series over a window needs.
"""

from __future__ import annotations

from llm_observer.storage.clickhouse.logs import tenant_columns

GAUGE_TABLE = "otel_metrics_gauge"
SUM_TABLE = "otel_metrics_sum"
HISTOGRAM_TABLE = "otel_metrics_histogram"
EXPONENTIAL_HISTOGRAM_TABLE = "otel_metrics_exponential_histogram"
SUMMARY_TABLE = "otel_metrics_summary"
METRIC_TABLES = (GAUGE_TABLE, SUM_TABLE, HISTOGRAM_TABLE, EXPONENTIAL_HISTOGRAM_TABLE, SUMMARY_TABLE)

# The columns every metric table starts with, in insert order.
COMMON_INSERT_COLUMNS = (
    "ResourceAttributes",
    "ResourceSchemaUrl",
    "ScopeName",
    "ScopeVersion",
    "ScopeAttributes",
    "ScopeDroppedAttrCount",
    "ScopeSchemaUrl",
    "ServiceName",
    "MetricName",
    "MetricDescription",
    "MetricUnit",
    "Attributes",
    "StartTimeUnix",
    "TimeUnix",
)
_EXEMPLAR_COLUMNS = (
    "Exemplars.FilteredAttributes",
    "Exemplars.TimeUnix",
    "Exemplars.Value",
    "Exemplars.SpanId",
    "Exemplars.TraceId",
)

# Columns the writer supplies on insert for each table, in order (the tenant columns are derived).
METRIC_INSERT_COLUMNS: dict[str, tuple[str, ...]] = {
    GAUGE_TABLE: (*COMMON_INSERT_COLUMNS, "Value", "Flags", *_EXEMPLAR_COLUMNS),
    SUM_TABLE: (
        *COMMON_INSERT_COLUMNS,
        "Value",
        "Flags",
        *_EXEMPLAR_COLUMNS,
        "AggregationTemporality",
        "IsMonotonic",
    ),
    HISTOGRAM_TABLE: (
        *COMMON_INSERT_COLUMNS,
        "Count",
        "Sum",
        "BucketCounts",
        "ExplicitBounds",
        *_EXEMPLAR_COLUMNS,
        "Flags",
        "Min",
        "Max",
        "AggregationTemporality",
    ),
    EXPONENTIAL_HISTOGRAM_TABLE: (
        *COMMON_INSERT_COLUMNS,
        "Count",
        "Sum",
        "Scale",
        "ZeroCount",
        "PositiveOffset",
        "PositiveBucketCounts",
        "NegativeOffset",
        "NegativeBucketCounts",
        *_EXEMPLAR_COLUMNS,
        "Flags",
        "Min",
        "Max",
        "AggregationTemporality",
    ),
    SUMMARY_TABLE: (
        *COMMON_INSERT_COLUMNS,
        "Count",
        "Sum",
        "ValueAtQuantiles.Quantile",
        "ValueAtQuantiles.Value",
        "Flags",
    ),
}

_COMMON = """
    ResourceAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    ResourceSchemaUrl String CODEC(ZSTD(1)),
    ScopeName String CODEC(ZSTD(1)),
    ScopeVersion String CODEC(ZSTD(1)),
    ScopeAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    ScopeDroppedAttrCount UInt32 CODEC(ZSTD(1)),
    ScopeSchemaUrl String CODEC(ZSTD(1)),
    ServiceName LowCardinality(String) CODEC(ZSTD(1)),
    MetricName String CODEC(ZSTD(1)),
    MetricDescription String CODEC(ZSTD(1)),
    MetricUnit String CODEC(ZSTD(1)),
    Attributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    StartTimeUnix DateTime64(9) CODEC(Delta, ZSTD(1)),
    TimeUnix DateTime64(9) CODEC(Delta, ZSTD(1)),"""

_EXEMPLARS = """
    Exemplars Nested (
        FilteredAttributes Map(LowCardinality(String), String),
        TimeUnix DateTime64(9),
        Value Float64,
        SpanId String,
        TraceId String
    ) CODEC(ZSTD(1)),"""

_INDEXES = """
    INDEX idx_res_attr_key mapKeys(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_res_attr_value mapValues(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_scope_attr_key mapKeys(ScopeAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_scope_attr_value mapValues(ScopeAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_attr_key mapKeys(Attributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_attr_value mapValues(Attributes) TYPE bloom_filter(0.01) GRANULARITY 1"""

# The columns of each kind after the common ones.
_KIND_COLUMNS: dict[str, str] = {
    GAUGE_TABLE: """
    Value Float64 CODEC(ZSTD(1)),
    Flags UInt32 CODEC(ZSTD(1)),"""
    + _EXEMPLARS,
    SUM_TABLE: """
    Value Float64 CODEC(ZSTD(1)),
    Flags UInt32 CODEC(ZSTD(1)),"""
    + _EXEMPLARS
    + """
    AggregationTemporality Int32 CODEC(ZSTD(1)),
    IsMonotonic Boolean CODEC(Delta, ZSTD(1)),""",
    HISTOGRAM_TABLE: """
    Count UInt64 CODEC(Delta, ZSTD(1)),
    Sum Float64 CODEC(ZSTD(1)),
    BucketCounts Array(UInt64) CODEC(ZSTD(1)),
    ExplicitBounds Array(Float64) CODEC(ZSTD(1)),"""
    + _EXEMPLARS
    + """
    Flags UInt32 CODEC(ZSTD(1)),
    Min Float64 CODEC(ZSTD(1)),
    Max Float64 CODEC(ZSTD(1)),
    AggregationTemporality Int32 CODEC(ZSTD(1)),""",
    EXPONENTIAL_HISTOGRAM_TABLE: """
    Count UInt64 CODEC(Delta, ZSTD(1)),
    Sum Float64 CODEC(ZSTD(1)),
    Scale Int32 CODEC(ZSTD(1)),
    ZeroCount UInt64 CODEC(ZSTD(1)),
    PositiveOffset Int32 CODEC(ZSTD(1)),
    PositiveBucketCounts Array(UInt64) CODEC(ZSTD(1)),
    NegativeOffset Int32 CODEC(ZSTD(1)),
    NegativeBucketCounts Array(UInt64) CODEC(ZSTD(1)),"""
    + _EXEMPLARS
    + """
    Flags UInt32 CODEC(ZSTD(1)),
    Min Float64 CODEC(ZSTD(1)),
    Max Float64 CODEC(ZSTD(1)),
    AggregationTemporality Int32 CODEC(ZSTD(1)),""",
    SUMMARY_TABLE: """
    Count UInt64 CODEC(Delta, ZSTD(1)),
    Sum Float64 CODEC(ZSTD(1)),
    ValueAtQuantiles Nested (
        Quantile Float64,
        Value Float64
    ) CODEC(ZSTD(1)),
    Flags UInt32 CODEC(ZSTD(1)),""",
}


def metric_table(database: str, table: str, ttl_days: int) -> str:
    """``CREATE TABLE`` of one of ``METRIC_TABLES`` in ``database`` with a retention of ``ttl_days``."""
    return f"""
CREATE TABLE IF NOT EXISTS `{database}`.{table} ({_COMMON}{_KIND_COLUMNS[table]}
    {tenant_columns()},{_INDEXES}
) ENGINE = MergeTree
PARTITION BY toDate(TimeUnix)
ORDER BY (ServiceName, MetricName, Attributes, toUnixTimestamp64Nano(TimeUnix))
TTL toDateTime(TimeUnix) + toIntervalDay({int(ttl_days)})
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1, non_replicated_deduplication_window = 10000
"""


def metric_tables(database: str, ttl_days: int) -> tuple[str, ...]:
    """``CREATE TABLE`` of every metric table."""
    return tuple(metric_table(database, table, ttl_days) for table in METRIC_TABLES)


def metrics_retention(database: str, ttl_days: int) -> tuple[str, ...]:
    """Statements that move the metric tables to a new retention."""
    return tuple(
        f"ALTER TABLE `{database}`.{table} MODIFY TTL toDateTime(TimeUnix) + toIntervalDay({int(ttl_days)})"
        for table in METRIC_TABLES
    )
