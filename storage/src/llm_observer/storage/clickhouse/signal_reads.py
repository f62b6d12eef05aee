"""Reads of the stored OTLP logs (``otel_logs``) and metrics (``otel_metrics_*``) for the query APIs.

As in ``reads``, every public method of ``SignalStore`` takes a ``Tenant`` first and confines its SQL to it,
and user input reaches ClickHouse only as ``{name:Type}`` parameters. A metric's series is aggregated by
ClickHouse itself (window functions for counter increases, array functions for bucket quantiles): only one
value per group and step comes back to Python, however many points the window holds.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from llm_observer.storage.clickhouse.client import ClickHouseClient
from llm_observer.storage.clickhouse.logs import LOGS_TABLE
from llm_observer.storage.clickhouse.metrics import (
    EXPONENTIAL_HISTOGRAM_TABLE,
    GAUGE_TABLE,
    HISTOGRAM_TABLE,
    SUM_TABLE,
    SUMMARY_TABLE,
)
from llm_observer.storage.clickhouse.queries import MAX_TIME_NS, MIN_TIME_NS, InvalidArgument, Tenant
from llm_observer.storage.clickhouse.reads import _Sql, _where, rows_or_none

__all__ = [
    "MAX_SERIES_POINTS",
    "METRIC_AGGREGATIONS",
    "METRIC_KINDS",
    "LogPage",
    "LogQuery",
    "LogRow",
    "MetricInfo",
    "MetricPoint",
    "MetricSeries",
    "MetricSeriesQuery",
    "MetricSeriesResult",
    "SignalStore",
    "parse_severity",
]

# --- logs ------------------------------------------------------------------------------------------

# The first SeverityNumber of each level of the OpenTelemetry log data model.
SEVERITY_LEVELS: Mapping[str, int] = {
    "TRACE": 1,
    "DEBUG": 5,
    "INFO": 9,
    "WARN": 13,
    "WARNING": 13,
    "ERROR": 17,
    "FATAL": 21,
}

# A record's severity number; for one sent with only a text (SeverityNumber 0), the level its text names.
_SEVERITY = (
    "if(SeverityNumber > 0, SeverityNumber, multiIf("
    "startsWith(upper(SeverityText), 'FATAL'), 21, startsWith(upper(SeverityText), 'ERR'), 17, "
    "startsWith(upper(SeverityText), 'WARN'), 13, startsWith(upper(SeverityText), 'INFO'), 9, "
    "startsWith(upper(SeverityText), 'DEBUG'), 5, startsWith(upper(SeverityText), 'TRACE'), 1, 0))"
)

# Log records have no id: this hash of a record's content orders records of the same nanosecond, so that
# cursor pages neither skip nor repeat them (identical records are told apart by an offset in the cursor).
_LOG_KEY = "cityHash64(TraceId, SpanId, ServiceName, SeverityNumber, Body, LogAttributes, ResourceAttributes)"

_LOG_COLUMNS = f"""
    toUnixTimestamp64Nano(Timestamp) AS time_ns, {_LOG_KEY} AS row_key,
    TraceId AS trace_id, SpanId AS span_id, TraceFlags AS trace_flags,
    SeverityText AS severity_text, SeverityNumber AS severity_number,
    ServiceName AS service_name, Body AS body, EventName AS event_name,
    OrganizationId AS organization_id, ProjectId AS project_id,
    ScopeName AS scope_name, ScopeVersion AS scope_version,
    LogAttributes AS attributes, ResourceAttributes AS resource
"""

_MAX_DATETIME_SECONDS = 2**32 - 1


def parse_severity(value: str | int | None) -> int:
    """The lowest SeverityNumber a ``severity_min`` of ``value`` admits: a level name (``warn``, ``ERROR``)
    or a number 1-24; 0 (no bound) for None or ``""``."""
    if value is None or value == "":
        return 0
    if isinstance(value, int) or value.strip().isdigit():
        number = int(value)
        if not 0 <= number <= 24:
            raise InvalidArgument("severity_min must be a severity number 1-24 or a level name")
        return number
    level = SEVERITY_LEVELS.get(value.strip().upper())
    if level is None:
        raise InvalidArgument(
            f"severity_min must be a severity number 1-24 or one of {', '.join(sorted(SEVERITY_LEVELS))}"
        )
    return level


@dataclass(frozen=True, slots=True)
class LogQuery:
    """Log records over ``[start_ns, end_ns)``, newest first, ``limit`` per page."""

    start_ns: int
    end_ns: int
    service: str | None = None
    severity_min: int = 0  # SeverityNumber (a record with only a text counts as the level it names)
    text: str | None = None  # contained in the body, case-insensitively
    trace_id: str | None = None
    limit: int = 100
    cursor: str | None = None


@dataclass(frozen=True, slots=True)
class LogRow:
    """One stored log record. Ids are lower-case hex, ``""`` when the record is not in a trace."""

    time_ns: int
    trace_id: str
    span_id: str
    trace_flags: int
    severity_text: str
    severity_number: int
    service_name: str
    body: str
    event_name: str
    organization_id: str
    project_id: str
    scope_name: str
    scope_version: str
    attributes: Mapping[str, str]
    resource: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class LogPage:
    logs: tuple[LogRow, ...]
    next_cursor: str | None


def _encode_log_cursor(direction: str, time_ns: int, key: int, skip: int) -> str:
    raw = json.dumps([direction, time_ns, key, skip], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _decode_log_cursor(cursor: str, direction: str) -> tuple[int, int, int]:
    """``(time_ns, row_key, skip)`` of a cursor this module made for ``direction``; ``InvalidArgument`` else."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        made_for, time_ns, key, skip = json.loads(raw)
        if (
            made_for != direction
            or type(time_ns) is not int
            or not MIN_TIME_NS <= time_ns <= MAX_TIME_NS
            or type(key) is not int
            or not 0 <= key < 2**64
            or type(skip) is not int
            or not 0 < skip < 2**31
        ):
            raise ValueError("bad cursor contents")
    except (ValueError, TypeError, RecursionError, binascii.Error) as exc:
        raise InvalidArgument("cursor is not one this API returned") from exc
    return time_ns, key, skip


def _log(row: Mapping[str, Any]) -> LogRow:
    return LogRow(
        time_ns=int(row["time_ns"]),
        trace_id=row["trace_id"],
        span_id=row["span_id"],
        trace_flags=int(row["trace_flags"]),
        severity_text=row["severity_text"],
        severity_number=int(row["severity_number"]),
        service_name=row["service_name"],
        body=row["body"],
        event_name=row["event_name"],
        organization_id=row["organization_id"],
        project_id=row["project_id"],
        scope_name=row["scope_name"],
        scope_version=row["scope_version"],
        attributes=row["attributes"],
        resource=row["resource"],
    )


# --- metrics ---------------------------------------------------------------------------------------

METRIC_KINDS: Mapping[str, str] = {
    "gauge": GAUGE_TABLE,
    "sum": SUM_TABLE,
    "histogram": HISTOGRAM_TABLE,
    "exponential_histogram": EXPONENTIAL_HISTOGRAM_TABLE,
    "summary": SUMMARY_TABLE,
}

# The aggregations each kind offers (besides ``pNN`` quantiles for the distributions), the default first.
METRIC_AGGREGATIONS: Mapping[str, tuple[str, ...]] = {
    "gauge": ("avg", "min", "max", "last", "count"),
    "sum": ("rate", "increase", "value"),
    "histogram": ("p50", "count", "sum", "avg", "rate"),
    "exponential_histogram": ("p50", "count", "sum", "avg", "rate"),
    "summary": ("p50", "count", "sum", "avg", "rate"),
}
_QUANTILE_KINDS = frozenset({"histogram", "exponential_histogram", "summary"})
_PERCENTILE = re.compile(r"^p(\d{1,3}(?:\.\d{1,6})?)$")

# As many points per series as Prometheus answers with (its limit of 11,000 per query).
MAX_SERIES_POINTS = 11_000
MAX_GROUP_BY_KEYS = 10
_TEMPORALITY = {1: "delta", 2: "cumulative"}

# How far before the window counter-like reads look for each series' previous point: a step, and at least
# five minutes (SDKs export every 60 s by default, and a step may be shorter).
_LOOKBACK_NS = 300 * 10**9

# Parts of a data point whose increase a counter-like read sums: the count, the sum, one bucket (with its
# bounds), the value of a sum metric.
_COUNT, _SUM, _BUCKET, _VALUE = 0, 1, 2, 3


@dataclass(frozen=True, slots=True)
class MetricInfo:
    """A metric name seen in a window: its kind, unit, description and how many data points it has.

    ``monotonic`` and ``temporality`` (``cumulative`` | ``delta``) are those of sums (``temporality`` also of
    histograms); None for the other kinds.
    """

    name: str
    kind: str
    unit: str
    description: str
    points: int
    monotonic: bool | None
    temporality: str | None


@dataclass(frozen=True, slots=True)
class MetricSeriesQuery:
    """One metric's series over ``[start_ns, end_ns)`` in buckets of ``step_ns`` (aligned to ``start_ns``),
    one series per distinct value of the ``group_by`` attribute keys."""

    name: str
    start_ns: int
    end_ns: int
    step_ns: int
    agg: str | None = None  # None: the kind's default
    kind: str | None = None  # None: the kind the name is stored as
    group_by: tuple[str, ...] = ()
    service: str | None = None
    attributes: tuple[tuple[str, str], ...] = ()  # equality on a data point or resource attribute


@dataclass(frozen=True, slots=True)
class MetricPoint:
    """The aggregate of one bucket ``[time_ns, time_ns + step)``; None when it has none (no observations)."""

    time_ns: int
    value: float | None


@dataclass(frozen=True, slots=True)
class MetricSeries:
    labels: tuple[tuple[str, str], ...]  # (group_by key, value), in group_by order
    points: tuple[MetricPoint, ...]


@dataclass(frozen=True, slots=True)
class MetricSeriesResult:
    """``kind`` is None (and ``series`` empty) when the name has no points in the window."""

    name: str
    kind: str | None
    unit: str
    agg: str
    step_ns: int
    group_by: tuple[str, ...]
    series: tuple[MetricSeries, ...]


def _quantile(agg: str) -> float | None:
    """The quantile (0-1) of a ``pNN`` aggregation, None for another name."""
    found = _PERCENTILE.match(agg)
    if found is None:
        return None
    percent = float(found.group(1))
    if percent > 100:
        raise InvalidArgument(f"agg {agg!r}: a percentile is at most p100")
    return percent / 100


def _check_agg(kind: str, agg: str, monotonic: bool | None) -> None:
    allowed = METRIC_AGGREGATIONS[kind]
    if agg in allowed or (kind in _QUANTILE_KINDS and _quantile(agg) is not None):
        if kind == "sum" and agg in ("rate", "increase") and monotonic is False:
            raise InvalidArgument(
                f"agg {agg!r} needs a monotonic sum (a counter); this one goes up and down: use agg=value"
            )
        return
    quantiles = " or a percentile such as p50, p95, p99.9" if kind in _QUANTILE_KINDS else ""
    raise InvalidArgument(f"agg for a {kind} must be one of {', '.join(allowed)}{quantiles}; got {agg!r}")


def _number(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


class SignalStore:
    """Reads of logs and metrics over one ClickHouse database. Thread-safe; every call blocks: run it in a
    thread (as ``TraceStore``)."""

    def __init__(self, client: ClickHouseClient, database: str) -> None:
        self.client = client
        self.database = database
        self.logs = f"`{database}`.{LOGS_TABLE}"

    def _table(self, kind: str) -> str:
        return f"`{self.database}`.{METRIC_KINDS[kind]}"

    def _rows(self, sql: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        return rows_or_none(self.client, sql, params)

    # --- logs --------------------------------------------------------------------------------------

    def trace_logs(
        self, tenant: Tenant, trace_id: str, limit: int = 1000, cursor: str | None = None
    ) -> LogPage:
        """The log records of one trace, oldest first (``trace_id`` normalised by the caller)."""
        sql = _Sql()
        where = [*sql.tenant(tenant), f"TraceId = {sql.param(trace_id, 'String')}"]
        return self._log_page(sql, where, "asc", limit, cursor)

    def search_logs(self, tenant: Tenant, query: LogQuery) -> LogPage:
        """Log records matching ``query``, newest first, and the cursor of the next page."""
        sql = _Sql()
        where = [*sql.tenant(tenant), *sql.time(query.start_ns, query.end_ns)]
        # The table is partitioned and sorted by the whole second (TimestampTime): bounding it too lets
        # ClickHouse skip the partitions and granules outside the window.
        if query.start_ns >= 0:
            where.append(f"TimestampTime >= toDateTime({sql.param(query.start_ns // 10**9, 'Int64')})")
        if 0 <= query.end_ns // 10**9 < _MAX_DATETIME_SECONDS:
            where.append(f"TimestampTime <= toDateTime({sql.param(query.end_ns // 10**9, 'Int64')})")
        if query.service:
            where.append(f"ServiceName = {sql.param(query.service, 'String')}")
        if query.severity_min:
            where.append(f"{_SEVERITY} >= {sql.param(query.severity_min, 'UInt32')}")
        if query.trace_id:
            where.append(f"TraceId = {sql.param(query.trace_id, 'String')}")
        if query.text:
            where.append(f"positionCaseInsensitiveUTF8(Body, {sql.param(query.text, 'String')}) > 0")
        return self._log_page(sql, where, "desc", query.limit, query.cursor)

    def _log_page(
        self, sql: _Sql, where: list[str], direction: str, limit: int, cursor: str | None
    ) -> LogPage:
        limit = max(1, limit)
        skip = 0
        after: tuple[int, int] | None = None
        if cursor:
            c_ns, c_key, skip = _decode_log_cursor(cursor, direction)
            after = (c_ns, c_key)
            op = "<=" if direction == "desc" else ">="
            t = sql.param(c_ns, "Int64")
            where.append(f"Timestamp {op} fromUnixTimestamp64Nano({t})")
            where.append(
                f"(Timestamp, row_key) {op} (fromUnixTimestamp64Nano({t}), {sql.param(c_key, 'UInt64')})"
            )
        order = "DESC" if direction == "desc" else "ASC"
        rows = self._rows(
            f"SELECT {_LOG_COLUMNS} FROM {self.logs} WHERE {_where(where)} "
            f"ORDER BY Timestamp {order}, row_key {order} "
            f"LIMIT {sql.param(limit + 1, 'UInt32')} OFFSET {sql.param(skip, 'UInt32')}",
            sql.params,
        )
        page = rows[:limit]
        next_cursor = None
        if len(rows) > limit:
            last = (int(page[-1]["time_ns"]), int(page[-1]["row_key"]))
            same = sum(1 for row in page if (int(row["time_ns"]), int(row["row_key"])) == last)
            # Records equal to the cursor's come first in a page: the ones skipped before are still behind.
            next_cursor = _encode_log_cursor(direction, *last, same + (skip if last == after else 0))
        return LogPage(tuple(_log(row) for row in page), next_cursor)

    # --- metrics -----------------------------------------------------------------------------------

    def metric_names(
        self,
        tenant: Tenant,
        start_ns: int,
        end_ns: int,
        service: str | None = None,
        name: str | None = None,
    ) -> tuple[MetricInfo, ...]:
        """The metrics with data points in ``[start_ns, end_ns)`` (of ``service``; only ``name``), sorted."""
        sql = _Sql()
        where = [*sql.tenant(tenant), *self._window(sql, start_ns, end_ns)]
        if service:
            where.append(f"ServiceName = {sql.param(service, 'String')}")
        if name is not None:
            where.append(f"MetricName = {sql.param(name, 'String')}")
        selects = []
        for kind in METRIC_KINDS:
            monotonic = "toInt8(min(IsMonotonic))" if kind == "sum" else "toInt8(-1)"
            temporality = (
                "toInt32(max(AggregationTemporality))"
                if kind in ("sum", "histogram", "exponential_histogram")
                else "toInt32(0)"
            )
            selects.append(
                f"SELECT MetricName AS name, '{kind}' AS kind, any(MetricUnit) AS unit, "
                f"any(MetricDescription) AS description, count() AS points, {monotonic} AS monotonic, "
                f"{temporality} AS temporality FROM {self._table(kind)} WHERE {_where(where)} "
                "GROUP BY MetricName"
            )
        rows = self._rows(f"SELECT * FROM ({' UNION ALL '.join(selects)}) ORDER BY name, kind", sql.params)
        return tuple(
            MetricInfo(
                name=row["name"],
                kind=row["kind"],
                unit=row["unit"],
                description=row["description"],
                points=int(row["points"]),
                monotonic=None if int(row["monotonic"]) < 0 else bool(int(row["monotonic"])),
                temporality=_TEMPORALITY.get(int(row["temporality"])),
            )
            for row in rows
        )

    @staticmethod
    def _window(sql: _Sql, start_ns: int, end_ns: int) -> list[str]:
        return [
            f"TimeUnix >= fromUnixTimestamp64Nano({sql.param(start_ns, 'Int64')})",
            f"TimeUnix < fromUnixTimestamp64Nano({sql.param(end_ns, 'Int64')})",
        ]

    def metric_series(self, tenant: Tenant, query: MetricSeriesQuery) -> MetricSeriesResult:
        """The series of one metric, per group and step, aggregated as ``query.agg`` says.

        ``InvalidArgument`` for a bad step, kind, aggregation or grouping, and when the name is stored as more
        than one kind in the window and ``query.kind`` does not choose one.
        """
        if not query.name:
            raise InvalidArgument("name must name a metric")
        if query.step_ns < 10**9:
            raise InvalidArgument("step must be at least one second")
        if query.end_ns <= query.start_ns:
            raise InvalidArgument("start_time must be before end_time")
        if -(-(query.end_ns - query.start_ns) // query.step_ns) > MAX_SERIES_POINTS:
            raise InvalidArgument(
                f"the window holds more than {MAX_SERIES_POINTS} steps: widen step or narrow the window"
            )
        if query.kind is not None and query.kind not in METRIC_KINDS:
            raise InvalidArgument(f"kind must be one of {', '.join(METRIC_KINDS)}")
        if len(query.group_by) > MAX_GROUP_BY_KEYS or any(not key for key in query.group_by):
            raise InvalidArgument(f"group_by takes 1 to {MAX_GROUP_BY_KEYS} non-empty attribute keys")
        found = [
            info
            for info in self.metric_names(tenant, query.start_ns, query.end_ns, query.service, query.name)
            if query.kind is None or info.kind == query.kind
        ]
        if len(found) > 1:
            kinds = ", ".join(info.kind for info in found)
            raise InvalidArgument(f"metric {query.name!r} is stored as {kinds}: choose one with kind")
        info = found[0] if found else None
        kind = info.kind if info is not None else query.kind
        monotonic = info.monotonic if info is not None else None
        default = "value" if kind == "sum" and monotonic is False else None
        agg = query.agg or default or (METRIC_AGGREGATIONS[kind][0] if kind else "")
        if kind is not None:
            _check_agg(kind, agg, monotonic)
        if info is None or kind is None:
            return MetricSeriesResult(query.name, kind, "", agg, query.step_ns, query.group_by, ())
        rows = self._rows(*_SeriesSql(self._table(kind), kind, agg, tenant, query).build())
        series: dict[tuple[str, ...], list[MetricPoint]] = {}
        for row in rows:
            point = MetricPoint(query.start_ns + int(row["b"]) * query.step_ns, _number(row["v"]))
            series.setdefault(tuple(row["labels"]), []).append(point)
        return MetricSeriesResult(
            name=query.name,
            kind=kind,
            unit=info.unit,
            agg=agg,
            step_ns=query.step_ns,
            group_by=query.group_by,
            series=tuple(
                MetricSeries(tuple(zip(query.group_by, labels, strict=True)), tuple(points))
                for labels, points in sorted(series.items())
            ),
        )


class _SeriesSql:
    """The SQL of one ``metric_series`` read: a SELECT of ``(labels, b, v)`` per group and bucket index."""

    def __init__(self, table: str, kind: str, agg: str, tenant: Tenant, query: MetricSeriesQuery) -> None:
        self.table, self.kind, self.agg, self.query = table, kind, agg, query
        self.sql = _Sql()
        self.q = _quantile(agg)
        self.start = self.sql.param(query.start_ns, "Int64")
        self.step = self.sql.param(query.step_ns, "Int64")
        # Counter-like reads start early (see ``where``), never before what storage can hold.
        lookback = max(query.step_ns, _LOOKBACK_NS)
        self.read_start = self.sql.param(max(MIN_TIME_NS, query.start_ns - lookback), "Int64")
        self.step_seconds = self.sql.param(query.step_ns / 1e9, "Float64")
        self.filters = [*self.sql.tenant(tenant), f"MetricName = {self.sql.param(query.name, 'String')}"]
        if query.service:
            self.filters.append(f"ServiceName = {self.sql.param(query.service, 'String')}")
        for key, value in query.attributes:
            k, v = self.sql.param(key, "String"), self.sql.param(value, "String")
            self.filters.append(f"(Attributes[{k}] = {v} OR ResourceAttributes[{k}] = {v})")
        labels = []
        for key in query.group_by:
            k = self.sql.param(key, "String")
            labels.append(
                f"multiIf(mapContains(Attributes, {k}), Attributes[{k}], mapContains(ResourceAttributes, {k}), "
                f"ResourceAttributes[{k}], {k} = 'service.name', toString(ServiceName), '')"
            )
        self.labels = f"[{', '.join(labels)}]::Array(String)" if labels else "emptyArrayString()"
        self.bucket = f"intDiv(toUnixTimestamp64Nano(TimeUnix) - {self.start}, {self.step})"
        self.series_id = "cityHash64(ServiceName, ResourceAttributes, ScopeName, Attributes)"

    def where(self, lookback: bool) -> str:
        """The rows of the window; with ``lookback``, also a step (at least five minutes) before it, so that
        the first increase in the window has the point before it to start from, as a Prometheus ``rate``
        looks back over its range."""
        start = f"fromUnixTimestamp64Nano({self.start})"
        if lookback:
            start = f"fromUnixTimestamp64Nano({self.read_start})"
        end = f"fromUnixTimestamp64Nano({self.sql.param(self.query.end_ns, 'Int64')})"
        return _where([*self.filters, f"TimeUnix >= {start}", f"TimeUnix < {end}"])

    def build(self) -> tuple[str, Mapping[str, Any]]:
        if self.kind == "gauge":
            return self.gauge(), self.sql.params
        if self.kind == "sum" and self.agg == "value":
            return self.sum_value(), self.sql.params
        if self.kind == "summary" and self.q is not None:
            return self.summary_quantile(), self.sql.params
        return self.increases(), self.sql.params

    def gauge(self) -> str:
        value = {
            "avg": "avg(Value)",
            "min": "min(Value)",
            "max": "max(Value)",
            "last": "argMax(Value, TimeUnix)",
            "count": "toFloat64(count())",
        }[self.agg]
        return (
            f"SELECT {self.labels} AS labels, {self.bucket} AS b, {value} AS v FROM {self.table} "
            f"WHERE {self.where(False)} GROUP BY labels, b ORDER BY labels, b"
        )

    def sum_value(self) -> str:
        """Each series' value at the end of the bucket (the bucket's total change for a delta sum), summed
        over the series of a group: an up-down counter's level, or a cumulative counter's total."""
        return f"""
SELECT labels, b, sum(v) AS v FROM (
    SELECT {self.labels} AS labels, {self.bucket} AS b, {self.series_id} AS sid,
        if(max(AggregationTemporality) = 1, sum(Value), argMax(Value, TimeUnix)) AS v
    FROM {self.table} WHERE {self.where(False)} GROUP BY labels, b, sid
) GROUP BY labels, b ORDER BY labels, b"""

    def summary_quantile(self) -> str:
        """The stored value at the quantile of each series' newest point in the bucket; over the series of a
        group, the largest (quantiles do not add up: the maximum is a bound that holds)."""
        q = self.sql.param(self.q, "Float64")
        at = (
            f"arrayFirstIndex(x -> abs(x - {q}) < 1e-9, ValueAtQuantiles.Quantile) AS qi, "
            "if(qi = 0, nan, ValueAtQuantiles.Value[qi]) AS at"
        )
        return f"""
SELECT labels, b, max(v) AS v FROM (
    SELECT {self.labels} AS labels, {self.bucket} AS b, {self.series_id} AS sid,
        argMax(at, TimeUnix) AS v
    FROM (SELECT *, {at} FROM {self.table} WHERE {self.where(False)})
    GROUP BY labels, b, sid
) GROUP BY labels, b ORDER BY labels, b"""

    # The columns a point's increase is computed from, per kind (each also read from the previous point).
    _COLUMNS: Mapping[str, tuple[str, ...]] = {
        "sum": ("Value",),
        "histogram": ("Count", "Sum", "BucketCounts", "ExplicitBounds"),
        "exponential_histogram": (
            "Count",
            "Sum",
            "Scale",
            "ZeroCount",
            "PositiveOffset",
            "PositiveBucketCounts",
            "NegativeOffset",
            "NegativeBucketCounts",
        ),
        "summary": ("Count", "Sum"),
    }

    def _parts(self) -> str:
        """Each point's increases that the aggregation needs, as an array of (part, lower, upper, increase).

        Over the columns of ``increases``' point rows: ``skip`` (a baseline: no increase), ``whole`` (the
        point's values are its increase) and ``prev_<column>`` (the series' previous point).
        """

        def scalar(expr: str, prev: str) -> str:
            return f"if(skip, 0., if(whole, toFloat64({expr}), toFloat64({expr}) - toFloat64({prev})))"

        def counts(column: str, prev_index: str, same: str) -> str:
            """Per-bucket increases of a bucket-count array; ``prev_index`` (of ``k``) finds the same bucket
            in the previous point's array, ``same`` says whether the buckets are comparable at all. A bucket
            whose count fell starts over (as a counter reset)."""
            return (
                f"if(skip, arrayMap(c -> 0., {column}), if(whole OR NOT ({same}), arrayMap(c -> toFloat64(c), "
                f"{column}), arrayMap((c, k) -> if({prev_index} >= 1 AND c >= prev_{column}[{prev_index}], "
                f"toFloat64(c - prev_{column}[{prev_index}]), toFloat64(c)), {column}, arrayEnumerate({column}))))"
            )

        if self.kind == "sum":
            return f"[({_VALUE}, 0., 0., {scalar('Value', 'prev_Value')})]"
        if self.q is None:
            wanted = {"count": [_COUNT], "rate": [_COUNT], "sum": [_SUM], "avg": [_COUNT, _SUM]}[self.agg]
            column = {_COUNT: scalar("Count", "prev_Count"), _SUM: scalar("Sum", "prev_Sum")}
            return "[" + ", ".join(f"({part}, 0., 0., {column[part]})" for part in wanted) + "]"
        if self.kind == "histogram":
            # Bucket i holds (bounds[i-1], bounds[i]]; the first starts at 0 when its bound is positive and the
            # last one, unbounded, ends at the highest bound (as Prometheus estimates them). No bounds: no
            # quantile.
            increments = counts("BucketCounts", "k", "ExplicitBounds = prev_ExplicitBounds")
            return f"""arrayMap((c, i) -> ({_BUCKET},
                multiIf(length(ExplicitBounds) = 0, nan, i = 1, least(ExplicitBounds[1], 0.), ExplicitBounds[i - 1]),
                multiIf(length(ExplicitBounds) = 0, nan, i > length(ExplicitBounds), ExplicitBounds[i - 1],
                    ExplicitBounds[i]),
                c), {increments}, arrayEnumerate(BucketCounts))"""
        # Exponential: positive bucket at index k holds (base^k, base^(k+1)], base = 2^(2^-scale); negative
        # ones mirror it; the zero bucket is the point 0. Buckets of the previous point are found by index
        # (its offset may differ); a changed scale makes the point count as it is.
        base = "exp2(exp2(-Scale))"
        positive = counts(
            "PositiveBucketCounts", "(PositiveOffset - prev_PositiveOffset + k)", "Scale = prev_Scale"
        )
        negative = counts(
            "NegativeBucketCounts", "(NegativeOffset - prev_NegativeOffset + k)", "Scale = prev_Scale"
        )
        return f"""arrayConcat(
            [({_BUCKET}, 0., 0., {scalar("ZeroCount", "if(ZeroCount >= prev_ZeroCount, prev_ZeroCount, 0)")})],
            arrayMap((c, k) -> ({_BUCKET}, pow({base}, PositiveOffset + k - 1), pow({base}, PositiveOffset + k),
                c), {positive}, arrayEnumerate(PositiveBucketCounts)),
            arrayMap((c, k) -> ({_BUCKET}, -pow({base}, NegativeOffset + k), -pow({base}, NegativeOffset + k - 1),
                c), {negative}, arrayEnumerate(NegativeBucketCounts)))"""

    def increases(self) -> str:
        """Counter-like reads: each part's increase since the series' previous point, summed per bucket.

        A delta point is its own increase. For a cumulative one, a reset (the start time moved, or the
        count or value fell) starts over from 0, so the increase is the whole new value; so does a bucket
        whose count fell. A series' first point is only a baseline, unless the series started
        (StartTimeUnix) inside the rows read. The previous point comes from one window over the series'
        points, before the buckets are spread into rows.
        """
        temporality = "2" if self.kind == "summary" else "AggregationTemporality"
        falls = "Value < prev_Value" if self.kind == "sum" else "Count < prev_Count"
        columns = self._COLUMNS[self.kind]
        lags = ", ".join(f"lagInFrame({column}) OVER s AS prev_{column}" for column in columns)
        points = f"""
SELECT {self.labels} AS labels, {self.bucket} AS b, TimeUnix AS t, StartTimeUnix, {temporality} AS temporality,
    {", ".join(columns)}, {lags}, lagInFrame(StartTimeUnix) OVER s AS prev_start,
    (row_number() OVER s) = 1 AS first
FROM {self.table} WHERE {self.where(True)}
WINDOW s AS (PARTITION BY {self.series_id} ORDER BY TimeUnix ROWS BETWEEN 1 PRECEDING AND CURRENT ROW)"""
        read_start = f"fromUnixTimestamp64Nano({self.read_start})"
        parts = f"""
SELECT labels, b, item.1 AS part, item.2 AS lo, item.3 AS hi, item.4 AS v
FROM (
    SELECT labels, b, t,
        temporality != 1 AND first AND StartTimeUnix < {read_start} AS skip,
        temporality = 1 OR first OR StartTimeUnix != prev_start OR {falls} AS whole,
        {self._parts()} AS parts
    FROM ({points})
    WHERE t >= fromUnixTimestamp64Nano({self.start})
) ARRAY JOIN parts AS item"""
        sums = f"""
SELECT labels, b, part, lo, hi, sum(v) AS v FROM ({parts}) GROUP BY labels, b, part, lo, hi"""
        if self.q is not None:
            q = self.sql.param(self.q, "Float64")
            value = """if(n = 0, nan,
    buckets[i].1 + (buckets[i].2 - buckets[i].1) * (rank - arrayPushFront(cum, 0.)[i]) / counts[i])"""
            return f"""
SELECT labels, b, {value} AS v FROM (
    SELECT labels, b,
        arraySort(x -> (x.1, x.2), groupArrayIf((lo, hi, v), part = {_BUCKET} AND v > 0)) AS buckets,
        arrayMap(x -> x.3, buckets) AS counts, arrayCumSum(counts) AS cum, arraySum(counts) AS n,
        {q} * n AS rank, greatest(arrayFirstIndex(c -> c >= rank, cum), 1) AS i
    FROM ({sums}) GROUP BY labels, b
) ORDER BY labels, b"""
        value = {
            "rate": f"sumIf(v, part IN ({_COUNT}, {_VALUE})) / {self.step_seconds}",
            "increase": f"sumIf(v, part = {_VALUE})",
            "count": f"sumIf(v, part = {_COUNT})",
            "sum": f"sumIf(v, part = {_SUM})",
            "avg": f"if(sumIf(v, part = {_COUNT}) = 0, nan, sumIf(v, part = {_SUM}) / sumIf(v, part = {_COUNT}))",
        }[self.agg]
        return f"SELECT labels, b, {value} AS v FROM ({sums}) GROUP BY labels, b ORDER BY labels, b"
