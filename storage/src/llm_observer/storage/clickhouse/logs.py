"""The ``otel_logs`` table: the ecosystem's shape for OTLP log records (the contrib ClickHouse exporter's
columns, which Grafana's ClickHouse plugin reads in OTel mode), with the tenant columns ``otel_traces`` has.

``OrganizationId`` and ``ProjectId`` are ``DEFAULT`` expressions over ``ResourceAttributes``, as the span
table derives them: the writer stamps each record's tenant (the receiver's key, else the data's own resource
attributes) into its resource before insert, so column and attributes always agree. The query service reads
logs by tenant and trace id; the bloom filter on ``TraceId`` and the set indexes on the tenant serve it.
"""

from __future__ import annotations

from llm_observer.semconv.attributes import ORGANIZATION_ID, PROJECT_ID

LOGS_TABLE = "otel_logs"

# Columns the writer supplies on insert, in order (``TimestampTime`` and the tenant columns are derived).
LOG_INSERT_COLUMNS = (
    "Timestamp",
    "TraceId",
    "SpanId",
    "TraceFlags",
    "SeverityText",
    "SeverityNumber",
    "ServiceName",
    "Body",
    "ResourceSchemaUrl",
    "ResourceAttributes",
    "ScopeSchemaUrl",
    "ScopeName",
    "ScopeVersion",
    "ScopeAttributes",
    "LogAttributes",
    "EventName",
)


def resource_tenant(key: str, default: str) -> str:
    """The SQL expression of a tenant column derived from a row's ``ResourceAttributes``."""
    return f"if(ResourceAttributes['{key}'] != '', ResourceAttributes['{key}'], '{default}')"


def tenant_columns() -> str:
    """The tenant column definitions shared by the log and metric tables."""
    return (
        f"OrganizationId LowCardinality(String) DEFAULT {resource_tenant(ORGANIZATION_ID, 'default')} "
        "CODEC(ZSTD(1)),\n"
        f"    ProjectId LowCardinality(String) DEFAULT {resource_tenant(PROJECT_ID, 'default')} CODEC(ZSTD(1)),\n"
        "    INDEX idx_organization OrganizationId TYPE set(1024) GRANULARITY 4,\n"
        "    INDEX idx_project ProjectId TYPE set(1024) GRANULARITY 4"
    )


def logs_table(database: str, ttl_days: int) -> str:
    """``CREATE TABLE`` of ``otel_logs`` in ``database`` with a retention of ``ttl_days``."""
    return f"""
CREATE TABLE IF NOT EXISTS `{database}`.{LOGS_TABLE} (
    Timestamp DateTime64(9) CODEC(Delta(8), ZSTD(1)),
    TimestampTime DateTime DEFAULT toDateTime(Timestamp),
    TraceId String CODEC(ZSTD(1)),
    SpanId String CODEC(ZSTD(1)),
    TraceFlags UInt8,
    SeverityText LowCardinality(String) CODEC(ZSTD(1)),
    SeverityNumber UInt8,
    ServiceName LowCardinality(String) CODEC(ZSTD(1)),
    Body String CODEC(ZSTD(1)),
    ResourceSchemaUrl LowCardinality(String) CODEC(ZSTD(1)),
    ResourceAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    ScopeSchemaUrl LowCardinality(String) CODEC(ZSTD(1)),
    ScopeName String CODEC(ZSTD(1)),
    ScopeVersion LowCardinality(String) CODEC(ZSTD(1)),
    ScopeAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    LogAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    EventName String CODEC(ZSTD(1)),
    {tenant_columns()},
    INDEX idx_trace_id TraceId TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_res_attr_key mapKeys(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_res_attr_value mapValues(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_scope_attr_key mapKeys(ScopeAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_scope_attr_value mapValues(ScopeAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_log_attr_key mapKeys(LogAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_log_attr_value mapValues(LogAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_body Body TYPE tokenbf_v1(32768, 3, 0) GRANULARITY 8
) ENGINE = MergeTree
PARTITION BY toDate(TimestampTime)
PRIMARY KEY (ServiceName, TimestampTime)
ORDER BY (ServiceName, TimestampTime, Timestamp)
TTL TimestampTime + toIntervalDay({int(ttl_days)})
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1, non_replicated_deduplication_window = 10000
"""


def logs_retention(database: str, ttl_days: int) -> tuple[str, ...]:
    """Statements that move ``otel_logs`` to a new retention."""
    return (
        f"ALTER TABLE `{database}`.{LOGS_TABLE} MODIFY TTL TimestampTime + toIntervalDay({int(ttl_days)})",
    )
