"""Pre-aggregated model calls: per-minute and per-hour tables that the metrics summary reads for large ranges.

Two ``AggregatingMergeTree`` tables, fed by materialized views (spans → minutes → hours), hold one row per
tenant, time slot (a minute or an hour, aligned to the Unix epoch) and combination of the dimensions a summary
can group or filter by (service, span name, operation, provider, requested and responding model, team): the
number of model calls and failed ones, the token and cost sums, and a DDSketch of the call durations
(``quantilesDD`` with a relative accuracy of 1 %). Only model-call spans (``GenAiRequestModel != ''``) are
aggregated, as only they count in a summary.

``RollupPlan`` splits a range into the whole hours (hour table), the whole minutes around them (minute table)
and the partial minutes at the edges (``otel_traces``); the summary merges the three. Counts, tokens and
costs are exact; latency percentiles are within 1 % of the exact ones. User, conversation, attribute and text
filters, and grouping by user, are not in the aggregates: those summaries read ``otel_traces`` alone, as do
summaries of few calls (``TraceStore.exact_max_calls``), which get exact percentiles.

A store created before these tables existed gets them from the migration, which also fills them from the
spans already stored (see ``backfill``).
"""

from __future__ import annotations

from dataclasses import dataclass

from llm_observer.storage.clickhouse.queries import SpanFilter

ROLLUP_MINUTE_TABLE = "otel_traces_calls_1m"
ROLLUP_HOUR_TABLE = "otel_traces_calls_1h"
# (table, its view, slot width in seconds), finest first.
ROLLUPS: tuple[tuple[str, str, int], ...] = (
    (ROLLUP_MINUTE_TABLE, f"{ROLLUP_MINUTE_TABLE}_mv", 60),
    (ROLLUP_HOUR_TABLE, f"{ROLLUP_HOUR_TABLE}_mv", 3600),
)

# The sketch and its levels: the state's type names them, so reads must use exactly these.
LATENCY_SKETCH = "quantilesDD(0.01, 0.5, 0.95, 0.99)"
LATENCY_STATE = "quantilesDDState(0.01, 0.5, 0.95, 0.99)"
LATENCY_MERGE_STATE = "quantilesDDMergeState(0.01, 0.5, 0.95, 0.99)"
LATENCY_MERGE = "quantilesDDMerge(0.01, 0.5, 0.95, 0.99)"

# The dimensions kept, in key order after the tenant and the slot.
DIMENSIONS = (
    "ServiceName",
    "GenAiRequestModel",
    "GenAiResponseModel",
    "GenAiProvider",
    "GenAiOperation",
    "SpanName",
    "TeamId",
)
# Group-by columns (``reads.GROUP_BY_COLUMNS`` values) the aggregates can serve.
ROLLUP_GROUP_COLUMNS = frozenset({"OrganizationId", "ProjectId", *DIMENSIONS})

# (rollup column, type, aggregate over raw spans, aggregate over rollup rows).
MEASURES: tuple[tuple[str, str, str, str], ...] = (
    ("Calls", "SimpleAggregateFunction(sum, UInt64)", "count()", "sum(Calls)"),
    ("Errors", "SimpleAggregateFunction(sum, UInt64)", "countIf(StatusCode = 'Error')", "sum(Errors)"),
    ("InputTokens", "SimpleAggregateFunction(sum, UInt64)", "sum(InputTokens)", "sum(InputTokens)"),
    ("OutputTokens", "SimpleAggregateFunction(sum, UInt64)", "sum(OutputTokens)", "sum(OutputTokens)"),
    (
        "CacheReadTokens",
        "SimpleAggregateFunction(sum, UInt64)",
        "sum(CacheReadTokens)",
        "sum(CacheReadTokens)",
    ),
    (
        "CacheWriteTokens",
        "SimpleAggregateFunction(sum, UInt64)",
        "sum(CacheWriteTokens)",
        "sum(CacheWriteTokens)",
    ),
    (
        "ReasoningTokens",
        "SimpleAggregateFunction(sum, UInt64)",
        "sum(ReasoningTokens)",
        "sum(ReasoningTokens)",
    ),
    ("CostUsd", "SimpleAggregateFunction(sum, Float64)", "sum(CostUsd)", "sum(CostUsd)"),
    ("Latency", f"AggregateFunction({LATENCY_SKETCH}, UInt64)", f"{LATENCY_STATE}(Duration)", ""),
)


def _slot(column: str, seconds: int) -> str:
    # Epoch-aligned whatever the server's time zone (toStartOfHour is not, in a zone with a half-hour offset),
    # so a summary's step buckets, also epoch-aligned, hold whole slots.
    return f"toDateTime(toStartOfInterval({column}, toIntervalSecond({seconds})))"


def _select_from_spans(seconds: int, db: str, traces: str) -> str:
    measures = ",\n    ".join(f"{raw} AS {name}" for name, _, raw, _ in MEASURES)
    return f"""SELECT OrganizationId, ProjectId, {_slot("Timestamp", seconds)} AS Start, {", ".join(DIMENSIONS)},
    {measures}
FROM {db}.{traces}
WHERE GenAiRequestModel != ''
GROUP BY OrganizationId, ProjectId, Start, {", ".join(DIMENSIONS)}"""


def rollup_statements(database: str, ttl_days: int, traces: str) -> tuple[str, ...]:
    """The tables and their views, then the backfill of the spans already stored (see ``backfill``)."""
    db = f"`{database}`"
    columns = ",\n    ".join(
        [
            "OrganizationId LowCardinality(String)",
            "ProjectId LowCardinality(String)",
            "Start DateTime CODEC(Delta(4), ZSTD(1))",
            *(f"{name} LowCardinality(String)" for name in DIMENSIONS),
            *(f"{name} {ctype}" for name, ctype, _, _ in MEASURES),
        ]
    )
    out: list[str] = []
    for table, _, _ in ROLLUPS:
        out.append(
            f"""
CREATE TABLE IF NOT EXISTS {db}.{table} (
    {columns}
) ENGINE = AggregatingMergeTree
PARTITION BY toDate(Start)
ORDER BY (OrganizationId, ProjectId, Start, {", ".join(DIMENSIONS)})
TTL Start + toIntervalDay({int(ttl_days)})
SETTINGS index_granularity = 1024, ttl_only_drop_parts = 1
"""
        )
    out.extend(backfill(database, traces))
    (minute_table, minute_view, minute), (hour_table, hour_view, _) = ROLLUPS
    out.append(
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.{minute_view} TO {db}.{minute_table}\n"
        f"AS {_select_from_spans(minute, db, traces)}\n"
    )
    # The hour view reads what the minute view writes (a few rows per minute and dimension combination),
    # not the spans again, so it adds little to what the minute view costs an insert.
    out.append(
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.{hour_view} TO {db}.{hour_table}\n"
        f"AS {_hours_from_minutes(db)}\n"
    )
    return tuple(out)


def _hours_from_minutes(db: str) -> str:
    minute_table, _, _ = ROLLUPS[0]
    merged = ",\n    ".join(
        f"{merge or f'{LATENCY_MERGE_STATE}(Latency)'} AS {name}" for name, _, _, merge in MEASURES
    )
    return f"""SELECT OrganizationId, ProjectId, {_slot("Start", ROLLUPS[1][2])} AS Start, {", ".join(DIMENSIONS)},
    {merged}
FROM {db}.{minute_table}
GROUP BY OrganizationId, ProjectId, Start, {", ".join(DIMENSIONS)}"""


def backfill(database: str, traces: str) -> tuple[str, ...]:
    """Fill the tables from the spans already in ``traces``: the minute table from the spans, the hour table
    from the minute table (merging sketches is far cheaper than re-reading the spans).

    The migration runs these before it creates the views, so that no span is counted twice; spans written by
    another process between the two are missed by the aggregates. Migrate a store with writers stopped (the
    collector migrates at start, before its exporter writes) to keep long-range summaries exact.
    """
    db = f"`{database}`"
    minute_table, _, minute = ROLLUPS[0]
    hour_table, _, _ = ROLLUPS[1]
    return (
        # Grouping ~10^8 spans by minute holds every minute's sketches; spill to disk rather than fail.
        f"INSERT INTO {db}.{minute_table}\n{_select_from_spans(minute, db, traces)}\n"
        "SETTINGS max_bytes_before_external_group_by = 1000000000",
        f"INSERT INTO {db}.{hour_table}\n{_hours_from_minutes(db)}",
    )


def retention(database: str, ttl_days: int) -> tuple[str, ...]:
    """Statements that move the rollup tables to a new retention."""
    return tuple(
        f"ALTER TABLE `{database}`.{table} MODIFY TTL Start + toIntervalDay({int(ttl_days)})"
        for table, _, _ in ROLLUPS
    )


def servable(spans: SpanFilter, column: str) -> bool:
    """Whether the aggregates hold what a summary with these filters, grouped by ``column``, needs."""
    return (
        column in ROLLUP_GROUP_COLUMNS
        and not spans.user_id
        and not spans.conversation_id
        and not spans.attributes
        and not spans.text
    )


@dataclass(frozen=True, slots=True)
class RollupPlan:
    """Where each part of ``[start_ns, end_ns)`` is read from: ``hours`` (a range of whole hours, in seconds,
    or None) from the hour table, ``minutes`` (whole minutes) from the minute table, ``raw`` (nanoseconds)
    from the spans."""

    hours: tuple[int, int] | None
    minutes: tuple[tuple[int, int], ...]
    raw: tuple[tuple[int, int], ...]


def plan(start_ns: int, end_ns: int, step_seconds: int | None) -> RollupPlan | None:
    """How to read ``[start_ns, end_ns)`` from the aggregates, or None when they cannot serve it (a range
    outside what ``DateTime`` holds, or a step whose buckets would split a minute)."""
    if step_seconds is not None and step_seconds % 60:
        return None
    if start_ns < 0 or end_ns > 2**32 * 10**9 or end_ns <= start_ns:
        return None
    second = 10**9
    m0 = -(-start_ns // (60 * second)) * 60  # first whole minute, in seconds
    m1 = end_ns // (60 * second) * 60
    if m1 <= m0:
        return None
    raw = tuple((lo, hi) for lo, hi in ((start_ns, m0 * second), (m1 * second, end_ns)) if hi > lo)
    h0 = -(-m0 // 3600) * 3600
    h1 = m1 // 3600 * 3600
    if h1 > h0 and (step_seconds is None or step_seconds % 3600 == 0):
        minutes = tuple((lo, hi) for lo, hi in ((m0, h0), (h1, m1)) if hi > lo)
        return RollupPlan((h0, h1), minutes, raw)
    return RollupPlan(None, ((m0, m1),), raw)
