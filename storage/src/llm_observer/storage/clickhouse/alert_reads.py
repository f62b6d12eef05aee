"""The aggregate reads alerting makes: per-group call statistics over windows ending now, the same over a
grid of buckets (baselines, backtests), and spend series (budgets and their forecast).

Every figure is computed by ClickHouse over model-call spans (``MODEL_CALL``) in one query per call, grouped
by organization and the requested dimensions; Python only unpacks the (few) result rows. User input reaches
ClickHouse only as parameters, identifiers only from ``GROUP_BY_COLUMNS``. Percentiles are the exact ones of
the metrics API (``TraceStore.metrics_summary``), so an alert's value is the figure a user sees there.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from llm_observer.semconv import attributes as attrs
from llm_observer.storage.clickhouse.client import ClickHouseClient
from llm_observer.storage.clickhouse.queries import InvalidArgument
from llm_observer.storage.clickhouse.reads import (
    GROUP_BY_COLUMNS,
    MODEL_CALL,
    _num,
    _Sql,
    _where,
    rows_or_none,
)
from llm_observer.storage.clickhouse.schema import TRACES_TABLE

__all__ = ["AlertStore", "CallWindow", "SpendSeries"]

# Seconds on the span (a float attribute, present on streamed calls only) → milliseconds.
_TTFT_MS = f"toFloat64OrNull(SpanAttributes['{attrs.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK}']) * 1000"
_NS = "toUnixTimestamp64Nano(Timestamp)"


@dataclass(frozen=True, slots=True)
class CallWindow:
    """Model-call statistics of one group over ``[start_ns, end_ns)``.

    ``group`` holds the stored values of the requested dimensions, in the order asked. Latency percentiles
    are 0 when not requested (or no calls); ``ttft_count`` is the number of calls that reported a time to
    first chunk (0 when not requested). ``slow_counts[i]`` counts calls longer than the i-th threshold asked.
    """

    organization_id: str
    group: tuple[str, ...]
    start_ns: int
    end_ns: int
    request_count: int
    error_count: int
    latency_p50_ms: float = 0.0
    latency_p95_ms: float = 0.0
    latency_p99_ms: float = 0.0
    ttft_count: int = 0
    ttft_p95_ms: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    slow_counts: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class SpendSeries:
    """Spend of one group per bucket from ``start_ns`` (``step_ns`` apart), zeros where nothing was spent."""

    organization_id: str
    group: tuple[str, ...]
    start_ns: int
    step_ns: int
    values: tuple[float, ...]

    @property
    def total(self) -> float:
        return math.fsum(self.values)


class AlertStore:
    """Alerting's reads over one ClickHouse database. Thread-safe (as ``TraceStore``); every call blocks.

    ``filters`` are ``(dimension, value)`` equalities on the dimensions of ``GROUP_BY_COLUMNS`` (an
    organization filter confines a read to that tenant); ``group_by`` names dimensions of the same table.
    An unknown dimension is an ``InvalidArgument``. ``queries`` counts the queries made (for benchmarks and
    self-metrics).
    """

    def __init__(self, client: ClickHouseClient, database: str) -> None:
        self.client = client
        self.traces = f"`{database}`.{TRACES_TABLE}"
        self.queries = 0

    def _rows(self, sql: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        self.queries += 1
        return rows_or_none(self.client, sql, params)

    def windows(
        self,
        filters: Iterable[tuple[str, str]],
        group_by: Sequence[str],
        end_ns: int,
        windows_ns: Collection[int],
        *,
        quantiles_for: Collection[int] = (),
        ttft_for: Collection[int] = (),
        slow_ms: Sequence[float] = (),
    ) -> list[CallWindow]:
        """Statistics of each group over each window ``[end_ns - w, end_ns)`` for ``w`` in ``windows_ns``,
        in one scan of the longest window. Latency percentiles only for the windows in ``quantiles_for``,
        TTFT only for those in ``ttft_for`` (each costs a pass over the window's rows). Groups without calls
        in a window get no row for it."""
        lengths = sorted({int(w) for w in windows_ns})
        if not lengths or lengths[0] <= 0:
            raise InvalidArgument("windows must be positive durations")
        sql = _Sql()
        keys, where = self._scope(sql, filters, group_by)
        where += sql.time(end_ns - lengths[-1], end_ns)
        slow = [sql.param(_duration_ns(ms), "UInt64") for ms in slow_ms]
        columns = []
        for i, length in enumerate(lengths):
            inside = f"{_NS} >= {sql.param(end_ns - length, 'Int64')}"
            columns += _aggregates(
                f"w{i}",
                inside,
                slow,
                quantiles=length in quantiles_for,
                ttft=length in ttft_for,
            )
        rows = self._rows(
            f"SELECT {', '.join(keys)}, {', '.join(columns)} FROM {self.traces} WHERE {_where(where)} "
            f"GROUP BY {', '.join(_key_names(group_by))}",
            sql.params,
        )
        out = []
        for row in rows:
            for i, length in enumerate(lengths):
                window = _call_window(row, f"w{i}", group_by, end_ns - length, end_ns, len(slow))
                if window is not None:
                    out.append(window)
        return out

    def buckets(
        self,
        filters: Iterable[tuple[str, str]],
        group_by: Sequence[str],
        start_ns: int,
        end_ns: int,
        step_ns: int,
        *,
        quantiles: bool = True,
        ttft: bool = False,
        slow_ms: Sequence[float] = (),
    ) -> list[CallWindow]:
        """Statistics of each group in each bucket ``[start_ns + k * step_ns, start_ns + (k + 1) * step_ns)``
        that has calls, for the buckets inside ``[start_ns, end_ns)`` (a last partial bucket is cut at
        ``end_ns``)."""
        slow_count = len(slow_ms)

        def columns(sql: _Sql) -> list[str]:
            slow = [sql.param(_duration_ns(ms), "UInt64") for ms in slow_ms]
            return _aggregates("b", "1", slow, quantiles=quantiles, ttft=ttft)

        rows = self._bucketed(filters, group_by, start_ns, end_ns, step_ns, columns)
        out = []
        for row in rows:
            begin = start_ns + int(row["bucket"]) * step_ns
            window = _call_window(row, "b", group_by, begin, min(begin + step_ns, end_ns), slow_count)
            if window is not None:
                out.append(window)
        return out

    def spend_series(
        self,
        filters: Iterable[tuple[str, str]],
        group_by: Sequence[str],
        start_ns: int,
        end_ns: int,
        step_ns: int,
    ) -> list[SpendSeries]:
        """Spend per group and bucket over ``[start_ns, end_ns)``: dense series of ``ceil((end - start) /
        step)`` buckets, for the groups that have calls in the range."""
        rows = self._bucketed(
            filters, group_by, start_ns, end_ns, step_ns, lambda sql: ["sum(CostUsd) AS cost"]
        )
        size = -(-(end_ns - start_ns) // step_ns)
        series: dict[tuple[str, tuple[str, ...]], list[float]] = {}
        for row in rows:
            values = series.setdefault(_key(row, group_by), [0.0] * size)
            values[int(row["bucket"])] += _num(row["cost"])
        return [
            SpendSeries(org, group, start_ns, step_ns, tuple(values))
            for (org, group), values in sorted(series.items())
        ]

    def _bucketed(
        self,
        filters: Iterable[tuple[str, str]],
        group_by: Sequence[str],
        start_ns: int,
        end_ns: int,
        step_ns: int,
        columns: Callable[[_Sql], list[str]],
    ) -> list[dict[str, Any]]:
        """Rows of ``columns`` per group and ``bucket`` (its index from ``start_ns``, ``step_ns`` wide)."""
        if step_ns <= 0:
            raise InvalidArgument("the bucket step must be positive")
        if end_ns <= start_ns:
            return []
        sql = _Sql()
        keys, where = self._scope(sql, filters, group_by)
        where += sql.time(start_ns, end_ns)
        start = sql.param(start_ns, "Int64")
        step = sql.param(step_ns, "Int64")
        aggregates = columns(sql)
        return self._rows(
            f"SELECT {', '.join(keys)}, intDiv({_NS} - {start}, {step}) AS bucket, {', '.join(aggregates)} "
            f"FROM {self.traces} WHERE {_where(where)} GROUP BY {', '.join(_key_names(group_by))}, bucket",
            sql.params,
        )

    def _scope(
        self, sql: _Sql, filters: Iterable[tuple[str, str]], group_by: Sequence[str]
    ) -> tuple[list[str], list[str]]:
        """The key columns (organization, then ``group_by``) and the conditions of ``filters``."""
        keys = ["OrganizationId AS g0"] + [f"{_column(d)} AS g{i + 1}" for i, d in enumerate(group_by)]
        where = [MODEL_CALL]
        for dimension, value in filters:
            where.append(f"{_column(dimension)} = {sql.param(value, 'String')}")
        return keys, where


def _column(dimension: str) -> str:
    column = GROUP_BY_COLUMNS.get(dimension)
    if column is None:
        raise InvalidArgument(f"{dimension!r} is not a dimension; one of {', '.join(GROUP_BY_COLUMNS)}")
    return column


def _key_names(group_by: Sequence[str]) -> list[str]:
    return [f"g{i}" for i in range(len(group_by) + 1)]


def _key(row: Mapping[str, Any], group_by: Sequence[str]) -> tuple[str, tuple[str, ...]]:
    """The organization and group of a row keyed as ``_scope`` names its columns."""
    return str(row["g0"]), tuple(str(row[f"g{i + 1}"]) for i in range(len(group_by)))


def _duration_ns(ms: float) -> int:
    if not (math.isfinite(ms) and 0 <= ms < 2**63 / 1e6):
        raise InvalidArgument(f"{ms!r} is not a latency threshold in milliseconds")
    return int(ms * 1e6)


def _aggregates(prefix: str, inside: str, slow: Sequence[str], *, quantiles: bool, ttft: bool) -> list[str]:
    """The aggregate columns of one window (rows where ``inside`` holds), named ``{prefix}_…``."""
    columns = [
        f"countIf({inside}) AS {prefix}_n",
        f"countIf({inside} AND StatusCode = 'Error') AS {prefix}_errors",
        f"sumIf(InputTokens, {inside}) AS {prefix}_in",
        f"sumIf(OutputTokens, {inside}) AS {prefix}_out",
        f"sumIf(CostUsd, {inside}) AS {prefix}_cost",
    ]
    if quantiles:
        columns.append(f"quantilesExactInclusiveIf(0.5, 0.95, 0.99)(Duration, {inside}) AS {prefix}_lat")
    if ttft:
        columns.append(f"countIf({inside} AND isNotNull({_TTFT_MS})) AS {prefix}_ttft_n")
        columns.append(
            f"quantileExactInclusiveIf(0.95)(assumeNotNull({_TTFT_MS}), {inside} AND isNotNull({_TTFT_MS})) AS {prefix}_ttft"
        )
    columns += [f"countIf({inside} AND Duration > {p}) AS {prefix}_slow{j}" for j, p in enumerate(slow)]
    return columns


def _call_window(
    row: Mapping[str, Any], prefix: str, group_by: Sequence[str], start_ns: int, end_ns: int, slow: int
) -> CallWindow | None:
    count = int(row[f"{prefix}_n"] or 0)
    if count == 0:
        return None
    p50, p95, p99 = (_num(v) / 1e6 for v in row.get(f"{prefix}_lat") or (0, 0, 0))
    ttft_count = int(row.get(f"{prefix}_ttft_n") or 0)
    organization_id, group = _key(row, group_by)
    return CallWindow(
        organization_id=organization_id,
        group=group,
        start_ns=start_ns,
        end_ns=end_ns,
        request_count=count,
        error_count=int(row[f"{prefix}_errors"] or 0),
        latency_p50_ms=p50,
        latency_p95_ms=p95,
        latency_p99_ms=p99,
        ttft_count=ttft_count,
        ttft_p95_ms=_num(row.get(f"{prefix}_ttft")) if ttft_count else 0.0,
        input_tokens=int(row[f"{prefix}_in"] or 0),
        output_tokens=int(row[f"{prefix}_out"] or 0),
        cost_usd=_num(row[f"{prefix}_cost"]),
        slow_counts=tuple(int(row[f"{prefix}_slow{j}"] or 0) for j in range(slow)),
    )
