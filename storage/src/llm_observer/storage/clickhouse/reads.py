"""Every read the query APIs make, as parameterised SQL over ``otel_traces`` and its trace-id lookup table.

Each public method of ``TraceStore`` takes a ``Tenant`` first and confines its SQL to it; user input only
ever reaches ClickHouse as a ``{name:Type}`` parameter (identifiers come from fixed tables in this module).
Results are the typed rows of ``rows`` (times in Unix nanoseconds); the REST, gRPC and Jaeger layers present
them. This module is storage's read API: the request and row types are re-exported here.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from llm_observer.kernel.errors import PermanentError
from llm_observer.semconv import attributes as attrs
from llm_observer.storage.clickhouse import rollup
from llm_observer.storage.clickhouse.client import ClickHouseClient
from llm_observer.storage.clickhouse.queries import (
    MAX_TIME_NS,
    MIN_TIME_NS,
    TRACE_ORDERS,
    InvalidArgument,
    SpanFilter,
    Tenant,
    TraceIdQuery,
    TraceQuery,
    check_time_ns,
    decode_cursor,
    decode_sort_cursor,
    encode_cursor,
    encode_sort_cursor,
    normalize_trace_id,
)
from llm_observer.storage.clickhouse.rows import (
    CallCosts,
    CallStats,
    CostBreakdown,
    GroupCosts,
    GroupStats,
    MetricsSummary,
    SeriesPoint,
    ServiceOperation,
    SpanEvent,
    SpanLink,
    SpanRow,
    TracePage,
    TraceSummary,
    message_text,
)
from llm_observer.storage.clickhouse.schema import TRACE_ID_TS_TABLE, TRACES_TABLE

__all__ = [
    "GROUP_BY_COLUMNS",
    "MAX_TIME_NS",
    "MIN_TIME_NS",
    "TRACE_ORDERS",
    "CallCosts",
    "CallStats",
    "CostBreakdown",
    "GroupCosts",
    "GroupStats",
    "InvalidArgument",
    "MetricsSummary",
    "SeriesPoint",
    "ServiceOperation",
    "SpanEvent",
    "SpanFilter",
    "SpanLink",
    "SpanRow",
    "Tenant",
    "TraceIdQuery",
    "TracePage",
    "TraceQuery",
    "TraceStore",
    "TraceSummary",
    "check_time_ns",
    "decode_cursor",
    "decode_sort_cursor",
    "encode_cursor",
    "encode_sort_cursor",
    "message_text",
    "normalize_trace_id",
]

# What a "request" is for metrics: one model call, i.e. a span naming the model it asked for.
MODEL_CALL = "GenAiRequestModel != ''"

# ``TraceQuery.order_by`` → (aggregate over a trace's spans in the range, its parameter type for cursors).
_TRACE_ORDER: Mapping[str, tuple[str, str]] = {
    "start": ("toInt64(toUnixTimestamp64Nano(min(Timestamp)))", "Int64"),
    "duration": (
        "toInt64(max(toUnixTimestamp64Nano(Timestamp) + Duration) - toUnixTimestamp64Nano(min(Timestamp)))",
        "Int64",
    ),
    "cost": ("sum(CostUsd)", "Float64"),
    "tokens": ("toInt64(sum(InputTokens) + sum(OutputTokens))", "Int64"),
    "input_tokens": ("toInt64(sum(InputTokens))", "Int64"),
    "output_tokens": ("toInt64(sum(OutputTokens))", "Int64"),
    "spans": ("toInt64(count())", "Int64"),
    "llm_calls": ("toInt64(countIf(GenAiRequestModel != ''))", "Int64"),
    "errors": ("toInt64(countIf(StatusCode = 'Error'))", "Int64"),
}

GROUP_BY_COLUMNS: Mapping[str, str] = {
    "model": "GenAiRequestModel",
    "provider": "GenAiProvider",
    "project": "ProjectId",
    "team": "TeamId",
    "user": "UserId",
    "operation": "GenAiOperation",
    "service": "ServiceName",
    "organization": "OrganizationId",
}


# Text that is not valid Unicode (an unpaired UTF-16 surrogate) can be neither stored nor sent as a parameter.
_SURROGATE = re.compile(r"[\ud800-\udfff]")

_INT_RANGES: Mapping[str, tuple[int, int]] = {
    "Int64": (-(2**63), 2**63 - 1),
    "UInt64": (0, 2**64 - 1),
    "UInt32": (0, 2**32 - 1),
}


# The last second a DateTime holds (2106-02-07): bounds past it are left to the Timestamp conditions alone.
_LAST_DATETIME = 2**32 - 1


class _Sql:
    """Collects WHERE conditions and their parameters under generated names.

    Every value is matched literally: strings are never read as escapes or patterns, and an integer outside
    its column type is an ``InvalidArgument`` rather than a failed query.
    """

    def __init__(self) -> None:
        self.params: dict[str, Any] = {}

    def param(self, value: Any, ctype: str) -> str:
        name = f"p{len(self.params)}"
        if isinstance(value, str) and _SURROGATE.search(value):
            raise InvalidArgument(f"{value!r} is not valid Unicode (an unpaired surrogate)")
        bounds = _INT_RANGES.get(ctype)
        if bounds is not None and not (isinstance(value, int) and bounds[0] <= value <= bounds[1]):
            raise InvalidArgument(f"{value!r} is out of range for this query")
        self.params[name] = value
        return f"{{{name}:{ctype}}}"

    def values(self, values: Iterable[Any], ctype: str) -> str:
        """``(p1, p2, …)`` for an IN list: one scalar parameter per value (arrays bind differently per driver)."""
        names = [self.param(value, ctype) for value in values]
        return "(" + ", ".join(names) + ")" if names else "(NULL)"

    def tenant(self, tenant: Tenant) -> list[str]:
        out = []
        if tenant.organization_id is not None:
            out.append(f"OrganizationId = {self.param(tenant.organization_id, 'String')}")
        if tenant.project_ids is not None:
            out.append(f"ProjectId IN {self.values(sorted(tenant.project_ids), 'String')}")
        return out

    def time(self, start_ns: int, end_ns: int) -> list[str]:
        """``[start_ns, end_ns)`` on ``Timestamp``, and the minutes around it on ``toStartOfMinute(Timestamp)``:
        the sort key holds the minute before ``TraceId`` and ``Timestamp``, and only a condition on that same
        expression lets the primary index keep, under each service, just the granules of that time. Stores made
        before the key was keyed by trace hold the second (``toDateTime(Timestamp)``) after the span name
        instead; the condition on it prunes those."""
        first_s, last_s = start_ns // 10**9, (end_ns - 1) // 10**9
        out = [
            f"Timestamp >= fromUnixTimestamp64Nano({self.param(start_ns, 'Int64')})",
            f"Timestamp < fromUnixTimestamp64Nano({self.param(end_ns, 'Int64')})",
        ]
        if 0 <= first_s <= last_s <= _LAST_DATETIME:
            first, last = self.param(first_s, "UInt32"), self.param(last_s, "UInt32")
            out.append(
                f"toStartOfMinute(Timestamp) BETWEEN toStartOfMinute(toDateTime({first})) "
                f"AND toStartOfMinute(toDateTime({last}))"
            )
            out.append(f"toDateTime(Timestamp) BETWEEN toDateTime({first}) AND toDateTime({last})")
        return out

    def spans(self, spans: SpanFilter) -> list[str]:
        """One condition per set field of ``spans``."""
        out = []
        if spans.service:
            out.append(f"ServiceName = {self.param(spans.service, 'String')}")
        if spans.model:
            p = self.param(spans.model, "String")
            out.append(f"(GenAiRequestModel = {p} OR GenAiResponseModel = {p})")
        if spans.provider:
            out.append(f"GenAiProvider = {self.param(spans.provider, 'String')}")
        if spans.operation:
            out.append(f"GenAiOperation = {self.param(spans.operation, 'String')}")
        if spans.span_name:
            out.append(f"SpanName = {self.param(spans.span_name, 'String')}")
        if spans.user_id:
            out.append(f"UserId = {self.param(spans.user_id, 'String')}")
        if spans.team_id:
            out.append(f"TeamId = {self.param(spans.team_id, 'String')}")
        if spans.conversation_id:
            out.append(f"ConversationId = {self.param(spans.conversation_id, 'String')}")
        for key, value in spans.attributes:
            k, v = self.param(key, "String"), self.param(value, "String")
            out.append(f"(SpanAttributes[{k}] = {v} OR ResourceAttributes[{k}] = {v})")
        if spans.text:
            t = self.param(spans.text, "String")
            plain = ("SpanName", "StatusMessage")
            # The message attributes hold JSON documents, where the text's quotes, backslashes and control
            # characters (and, from some writers, every non-ASCII character) are escaped.
            documents = (
                f"SpanAttributes['{attrs.GEN_AI_INPUT_MESSAGES}']",
                f"SpanAttributes['{attrs.GEN_AI_OUTPUT_MESSAGES}']",
                f"SpanAttributes['{attrs.GEN_AI_SYSTEM_INSTRUCTIONS}']",
            )
            forms = {
                spans.text,
                json.dumps(spans.text, ensure_ascii=False)[1:-1],
                json.dumps(spans.text)[1:-1],
            }
            escaped = [t if form == spans.text else self.param(form, "String") for form in sorted(forms)]
            matches = [f"positionCaseInsensitiveUTF8({f}, {t}) > 0" for f in plain]
            matches += [f"positionCaseInsensitiveUTF8({f}, {e}) > 0" for f in documents for e in escaped]
            out.append("(" + " OR ".join(matches) + ")")
        return out


def _where(conditions: Iterable[str]) -> str:
    conds = list(conditions)
    return " AND ".join(conds) if conds else "1"


def _duration_ns(ms: float, name: str) -> int:
    """Nanoseconds of a duration in milliseconds; ``InvalidArgument`` naming ``name`` when it has none."""
    if not (math.isfinite(ms) and abs(ms) <= _MAX_DURATION_MS):
        raise InvalidArgument(f"{name} must be a finite number of milliseconds up to {_MAX_DURATION_MS:.0f}")
    return int(ms * 1e6)


_MAX_DURATION_MS = (2**63 - 1) // 10**6


def _num(value: Any) -> float:
    number = float(value or 0.0)
    return 0.0 if math.isnan(number) or math.isinf(number) else number


_SPAN_COLUMNS = """
    TraceId AS trace_id, SpanId AS span_id, ParentSpanId AS parent_span_id, TraceState AS trace_state,
    SpanName AS name, SpanKind AS kind, ServiceName AS service_name,
    toUnixTimestamp64Nano(Timestamp) AS start_ns, Duration AS duration_ns,
    StatusCode AS status, StatusMessage AS status_message,
    OrganizationId AS organization_id, ProjectId AS project_id,
    GenAiOperation AS operation, GenAiProvider AS provider,
    GenAiRequestModel AS request_model, GenAiResponseModel AS response_model,
    InputTokens AS input_tokens, OutputTokens AS output_tokens,
    CacheReadTokens AS cache_read_tokens, CacheWriteTokens AS cache_write_tokens,
    ReasoningTokens AS reasoning_tokens, CostUsd AS cost_usd,
    ScopeName AS scope_name, ScopeVersion AS scope_version,
    SpanAttributes AS attributes, ResourceAttributes AS resource,
    arrayMap(t -> toUnixTimestamp64Nano(t), Events.Timestamp) AS event_times,
    Events.Name AS event_names, Events.Attributes AS event_attributes,
    Links.TraceId AS link_trace_ids, Links.SpanId AS link_span_ids
"""


def _span(row: Mapping[str, Any]) -> SpanRow:
    return SpanRow(
        trace_id=row["trace_id"],
        span_id=row["span_id"],
        parent_span_id=row["parent_span_id"],
        trace_state=row["trace_state"],
        name=row["name"],
        kind=row["kind"],
        service_name=row["service_name"],
        start_ns=int(row["start_ns"]),
        duration_ns=int(row["duration_ns"]),
        status=row["status"],
        status_message=row["status_message"],
        organization_id=row["organization_id"],
        project_id=row["project_id"],
        operation=row["operation"],
        provider=row["provider"],
        request_model=row["request_model"],
        response_model=row["response_model"],
        input_tokens=int(row["input_tokens"]),
        output_tokens=int(row["output_tokens"]),
        cache_read_tokens=int(row["cache_read_tokens"]),
        cache_write_tokens=int(row["cache_write_tokens"]),
        reasoning_tokens=int(row["reasoning_tokens"]),
        cost_usd=_num(row["cost_usd"]),
        scope_name=row["scope_name"],
        scope_version=row["scope_version"],
        attributes=row["attributes"],
        resource=row["resource"],
        events=tuple(
            SpanEvent(int(t), n, a)
            for t, n, a in zip(row["event_times"], row["event_names"], row["event_attributes"], strict=False)
        ),
        links=tuple(
            SpanLink(t, s) for t, s in zip(row["link_trace_ids"], row["link_span_ids"], strict=False)
        ),
    )


def _summary(row: Mapping[str, Any]) -> TraceSummary:
    return TraceSummary(
        trace_id=row["trace_id"],
        root_span_name=row["root_name"],
        service_name=row["service_name"],
        organization_id=row["organization_id"],
        project_id=row["project_id"],
        start_ns=int(row["start_ns"]),
        end_ns=int(row["end_ns"]),
        span_count=int(row["span_count"]),
        error_count=int(row["error_count"]),
        input_tokens=int(row["input_tokens"]),
        output_tokens=int(row["output_tokens"]),
        cost_usd=_num(row["cost_usd"]),
        models=tuple(row["models"]),
        unset_count=int(row["unset_count"]),
        llm_call_count=int(row.get("llm_call_count") or 0),
    )


def _stats(row: Mapping[str, Any]) -> CallStats:
    p50, p95, p99 = (_num(v) / 1e6 for v in row["latency_ns"] or (0, 0, 0))
    return CallStats(
        request_count=int(row["request_count"]),
        error_count=int(row["error_count"]),
        latency_p50_ms=p50,
        latency_p95_ms=p95,
        latency_p99_ms=p99,
        input_tokens=int(row["input_tokens"] or 0),
        output_tokens=int(row["output_tokens"] or 0),
        cache_read_tokens=int(row["cache_read_tokens"] or 0),
        cache_write_tokens=int(row["cache_write_tokens"] or 0),
        reasoning_tokens=int(row["reasoning_tokens"] or 0),
        cost_usd=_num(row["cost_usd"]),
    )


def _costs(row: Mapping[str, Any]) -> CallCosts:
    return CallCosts(
        request_count=int(row["request_count"] or 0),
        input_tokens=int(row["input_tokens"] or 0),
        output_tokens=int(row["output_tokens"] or 0),
        cache_read_tokens=int(row["cache_read_tokens"] or 0),
        cache_write_tokens=int(row["cache_write_tokens"] or 0),
        cost_usd=_num(row["cost_usd"]),
        input_cost_usd=_num(row["input_cost_usd"]),
        output_cost_usd=_num(row["output_cost_usd"]),
        cache_read_cost_usd=_num(row["cache_read_cost_usd"]),
        cache_write_cost_usd=_num(row["cache_write_cost_usd"]),
    )


def _group_column(group_by: str) -> str:
    column = GROUP_BY_COLUMNS.get(group_by)
    if column is None:
        raise InvalidArgument(f"group_by must be one of {', '.join(GROUP_BY_COLUMNS)}")
    return column


def rows_or_none(client: ClickHouseClient, sql: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The rows of a read; none when its table does not exist yet. A store nobody has written to (or one that
    predates a table) holds nothing: an empty result, not an error."""
    try:
        return client.rows(sql, params)
    except PermanentError as exc:
        if "UNKNOWN_TABLE" in str(exc) or "UNKNOWN_DATABASE" in str(exc):
            return []
        raise


class TraceStore:
    """Reads over one ClickHouse database. Thread-safe; every call blocks: run it in a thread.

    It takes no lock of its own: a ClickHouse server serves concurrent queries, and the chDB client
    serialises every call into the engine itself (queries and the exporter's inserts alike).
    """

    # A summary of up to this many model calls is read from the spans, with exact percentiles (about 20 ms of
    # work); a larger one keeps what the per-minute / per-hour aggregates (``rollup``) give: percentiles within
    # 1 % of the exact ones, at a cost that no longer grows with the number of calls.
    EXACT_MAX_CALLS = 250_000

    def __init__(
        self, client: ClickHouseClient, database: str, exact_max_calls: int = EXACT_MAX_CALLS
    ) -> None:
        self.client = client
        self.exact_max_calls = exact_max_calls
        self.traces = f"`{database}`.{TRACES_TABLE}"
        self.trace_ids = f"`{database}`.{TRACE_ID_TS_TABLE}"
        self.rollup_minutes = f"`{database}`.{rollup.ROLLUP_MINUTE_TABLE}"
        self.rollup_hours = f"`{database}`.{rollup.ROLLUP_HOUR_TABLE}"

    def _rows(self, sql: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        return rows_or_none(self.client, sql, params)

    # --- traces ----------------------------------------------------------------------------------

    def search_traces(self, tenant: Tenant, query: TraceQuery) -> TracePage:
        """Trace summaries, newest first, and the cursor of the next page (None on the last page).

        Two passes: the first groups the range by trace with only the aggregates the filters need and keeps
        one page of ids (grouped by a 64-bit hash of the id: cheaper than by the string); the second computes
        the full summaries of just those traces (the TraceId bloom filter makes it cheap). Grouping every trace
        with every aggregate costs about four times more.
        """
        sql = _Sql()
        where = [*sql.tenant(tenant), *sql.time(query.start_ns, query.end_ns)]
        having = [f"countIf({cond}) > 0" for cond in sql.spans(query.spans)]
        extra: set[str] = set()
        if query.status == "error":
            having.append("countIf(StatusCode = 'Error') > 0")
        elif query.status == "ok":
            having.append("countIf(StatusCode = 'Error') = 0")
        elif query.status == "unset":
            having.append("countIf(StatusCode != 'Unset') = 0")
        elif query.status:
            raise InvalidArgument("status must be one of ok, error, unset")
        if query.min_duration_ms is not None:
            extra.add("end_ns")
            low = _duration_ns(query.min_duration_ms, "min_duration_ms")
            having.append(f"end_ns - start_ns >= {sql.param(low, 'Int64')}")
        if query.max_duration_ms is not None:
            extra.add("end_ns")
            high = _duration_ns(query.max_duration_ms, "max_duration_ms")
            having.append(f"end_ns - start_ns <= {sql.param(high, 'Int64')}")
        if query.min_cost_usd is not None:
            if not math.isfinite(query.min_cost_usd):
                raise InvalidArgument("min_cost_usd must be a finite number")
            having.append(f"sum(CostUsd) >= {sql.param(query.min_cost_usd, 'Float64')}")
        if query.order_by not in _TRACE_ORDER:
            raise InvalidArgument(f"sort must be one of {', '.join(TRACE_ORDERS)}")
        sort_expr, sort_type = _TRACE_ORDER[query.order_by]
        direction = "ASC" if query.ascending else "DESC"
        if query.cursor:
            c_value, c_id = decode_sort_cursor(query.cursor, query.order_by, query.ascending)
            before = ">" if query.ascending else "<"
            having.append(
                f"(sort_value, trace_id) {before} ({sql.param(c_value, sort_type)}, {sql.param(c_id, 'String')})"
            )
        limit = max(1, query.limit)
        end_column = (
            ", max(toUnixTimestamp64Nano(Timestamp) + Duration) AS end_ns" if "end_ns" in extra else ""
        )
        tenant_where = sql.tenant(tenant)

        def first_pass(low_ns: int, rows: int) -> list[dict[str, Any]]:
            where = [*tenant_where, *sql.time(low_ns, query.end_ns)]
            return self._rows(
                f"""
SELECT any(TraceId) AS trace_id, toUnixTimestamp64Nano(min(Timestamp)) AS start_ns{end_column},
    {sort_expr} AS sort_value
FROM {self.traces}
WHERE {_where(where)}
GROUP BY cityHash64(TraceId)
HAVING {_where(having)}
ORDER BY sort_value {direction}, trace_id {direction}
LIMIT {sql.param(rows, "UInt32")}
""",
                sql.params,
            )

        # Where the spans of the page's traces lie: all of them at or after ``low`` (see _newest_first).
        low = query.start_ns
        if query.order_by == "start" and not query.ascending:
            top = query.end_ns if not query.cursor else min(query.end_ns, int(c_value) + 1)
            page, low = self._newest_first(tenant, query.start_ns, top, limit + 1, first_pass)
        else:
            page = first_pass(query.start_ns, limit + 1)
        if not page:
            return TracePage((), None)
        ids = [row["trace_id"] for row in page]
        full = _Sql()
        where = [
            f"TraceId IN {full.values(ids, 'String')}",
            *full.tenant(tenant),
            *full.time(low, query.end_ns),
        ]
        summaries = {
            row["trace_id"]: row
            for row in self._rows(
                f"""
SELECT TraceId AS trace_id,
    toUnixTimestamp64Nano(min(Timestamp)) AS start_ns,
    max(toUnixTimestamp64Nano(Timestamp) + Duration) AS end_ns,
    count() AS span_count,
    countIf(StatusCode = 'Error') AS error_count,
    countIf(StatusCode = 'Unset') AS unset_count,
    countIf(GenAiRequestModel != '') AS llm_call_count,
    sum(InputTokens) AS input_tokens,
    sum(OutputTokens) AS output_tokens,
    sum(CostUsd) AS cost_usd,
    arraySort(groupUniqArrayIf(GenAiRequestModel, GenAiRequestModel != '')) AS models,
    argMin(SpanName, (ParentSpanId != '', Timestamp)) AS root_name,
    argMin(ServiceName, (ParentSpanId != '', Timestamp)) AS service_name,
    any(OrganizationId) AS organization_id,
    any(ProjectId) AS project_id
FROM {self.traces}
WHERE {_where(where)}
GROUP BY TraceId
""",
                full.params,
            )
        }
        traces = [_summary(summaries[tid]) for tid in ids if tid in summaries]
        next_cursor = None
        if len(page) > limit:
            traces = traces[:limit]
            last = page[limit - 1]
            value = last["sort_value"]
            value = float(value) if sort_type == "Float64" else int(value)
            next_cursor = encode_sort_cursor(query.order_by, query.ascending, value, last["trace_id"])
        return TracePage(tuple(traces), next_cursor)

    # The newest page first looks at the last few minutes, then at 8 times more, and so on: a busy store has a
    # page of traces in its last minutes, and grouping those is far cheaper than grouping the whole range. A
    # window with spans but no trace that passes the filters is only doubled. A window with no span of the
    # tenant at all (an idle tenant, a gap before the range's end) sends the search below it for the newest
    # spans (``_newest_below``, one-row reads), and the windows start again from there: doubling from the
    # range's end instead would reach past a gap of hours by as much again, and group hours of spans.
    _FIRST_WINDOW_NS = 300 * 10**9
    _WIDEN = 8
    _WIDEN_EMPTY = 2

    def _newest_first(
        self,
        tenant: Tenant,
        start_ns: int,
        top_ns: int,
        rows: int,
        first_pass: Callable[[int, int], list[dict[str, Any]]],
    ) -> tuple[list[dict[str, Any]], int]:
        """The first ``rows`` of the newest-first list over ``[start_ns, …)`` whose starts are below ``top_ns``,
        and a time at or before which none of their spans lies.

        A trace that starts at or after ``low`` has all its spans at or after ``low`` (a span starts no earlier
        than its trace), so grouping only the spans from ``low`` gives such a trace exactly the figures the whole
        range gives it. A trace that started before ``low`` but has later spans is seen partially there, with a
        start too late: those are found (a span of theirs before ``low``, through the TraceId bloom filter) and
        dropped, and a window that leaves fewer than ``rows`` traces is widened, up to the whole range."""
        width = self._FIRST_WINDOW_NS
        while top_ns - width > start_ns:
            low = top_ns - width
            candidates = first_pass(low, rows * 2)
            if candidates:
                earlier = self._with_spans_between(
                    tenant, [row["trace_id"] for row in candidates], start_ns, low
                )
                whole = [row for row in candidates if row["trace_id"] not in earlier]
                if len(whole) >= rows:
                    return whole[:rows], low
                width *= self._WIDEN
            elif self._has_spans(tenant, low, top_ns):
                width *= self._WIDEN_EMPTY
            else:
                below = self._newest_below(tenant, start_ns, low)
                if below is None:
                    return [], low
                top_ns, width = below, self._FIRST_WINDOW_NS
        return first_pass(start_ns, rows), start_ns

    def _has_spans(self, tenant: Tenant, start_ns: int, end_ns: int) -> bool:
        """Whether the tenant has a span in ``[start_ns, end_ns)`` (reads until the first one)."""
        sql = _Sql()
        where = [*sql.tenant(tenant), *sql.time(start_ns, end_ns)]
        return bool(
            self._rows(f"SELECT 1 AS found FROM {self.traces} WHERE {_where(where)} LIMIT 1", sql.params)
        )

    def _newest_below(self, tenant: Tenant, start_ns: int, end_ns: int) -> int | None:
        """A time ``t`` in ``(start_ns, end_ns]`` such that the tenant has no span in ``[t, end_ns)`` and has one
        in the first window below ``t``; None when it has none in ``[start_ns, end_ns)``.

        Steps down in doubling steps until a step holds a span, then halves that step to the first window's
        width: some twenty one-row reads for a gap of a day, where grouping the spans that a window doubled
        past the gap reaches costs a read of all of them."""
        high, step = end_ns, self._FIRST_WINDOW_NS
        while True:
            low = max(start_ns, high - step)
            if self._has_spans(tenant, low, high):
                break
            if low == start_ns:
                return None
            high, step = low, step * 2
        while high - low > self._FIRST_WINDOW_NS:
            middle = (low + high) // 2
            if self._has_spans(tenant, middle, high):
                low = middle
            else:
                high = middle
        return high

    def _with_spans_between(self, tenant: Tenant, ids: list[str], start_ns: int, end_ns: int) -> set[str]:
        """Those of ``ids`` with a span of the tenant's in ``[start_ns, end_ns)``.

        The trace-id lookup table, ordered by TraceId, names the suspects in a few point reads (its rows bound
        each trace's spans per insert); scanning the TraceId bloom filter over the whole range instead costs a
        read of every granule's index. The lookup table holds every tenant's spans, so each suspect is confirmed
        in the tenant's own spans, over only the time its lookup rows cover.
        """
        lookup = _Sql()
        suspects = self._rows(
            f"""
SELECT TraceId AS trace_id, toUnixTimestamp64Nano(min(Start)) AS first_ns
FROM {self.trace_ids}
WHERE TraceId IN {lookup.values(ids, "String")}
    AND Start < fromUnixTimestamp64Nano({lookup.param(end_ns, "Int64")})
    AND End >= fromUnixTimestamp64Nano({lookup.param(start_ns, "Int64")})
GROUP BY TraceId
""",
            lookup.params,
        )
        if not suspects:
            return set()
        first_ns = max(start_ns, min(int(row["first_ns"]) for row in suspects))
        check = _Sql()
        where = [
            f"TraceId IN {check.values([row['trace_id'] for row in suspects], 'String')}",
            *check.tenant(tenant),
            *check.time(first_ns, end_ns),
        ]
        return {
            row["trace_id"]
            for row in self._rows(
                f"SELECT DISTINCT TraceId AS trace_id FROM {self.traces} WHERE {_where(where)}", check.params
            )
        }

    def get_traces(self, tenant: Tenant, trace_ids: Sequence[str]) -> dict[str, tuple[SpanRow, ...]]:
        """The spans of each trace (ordered by start), for the ids that exist in the tenant's data.

        The lookup table, ordered by TraceId, gives the time the traces' spans lie in; that time then prunes
        partitions and, through the sort key's minutes (``_Sql.time``), granules, before the TraceId bloom
        filter is read. The sort key holds ``TraceId`` after the service and the minute, so a trace's spans of
        one service and minute lie side by side, mostly in one granule.
        """
        if not trace_ids:
            return {}
        ids = sorted(set(trace_ids))
        lookup = _Sql()
        bounds = self._rows(
            f"""
SELECT count() AS found, toUnixTimestamp64Nano(min(Start)) AS first_ns, toUnixTimestamp64Nano(max(End)) AS last_ns
FROM {self.trace_ids}
WHERE TraceId IN {lookup.values(ids, "String")}
""",
            lookup.params,
        )
        if not bounds or not int(bounds[0]["found"]):
            return {}
        sql = _Sql()
        where = [
            f"TraceId IN {sql.values(ids, 'String')}",
            *sql.tenant(tenant),
            *sql.time(int(bounds[0]["first_ns"]), int(bounds[0]["last_ns"]) + 1),
        ]
        rows = self._rows(
            f"SELECT {_SPAN_COLUMNS} FROM {self.traces} WHERE {_where(where)} ORDER BY Timestamp, SpanId",
            sql.params,
        )
        out: dict[str, list[SpanRow]] = {}
        for row in rows:
            out.setdefault(row["trace_id"], []).append(_span(row))
        return {trace_id: tuple(spans) for trace_id, spans in out.items()}

    def get_trace(self, tenant: Tenant, trace_id: str) -> tuple[SpanRow, ...]:
        """The spans of one trace, ordered by start; empty when it does not exist for this tenant."""
        tid = normalize_trace_id(trace_id)
        return self.get_traces(tenant, [tid]).get(tid, ())

    # --- metrics ---------------------------------------------------------------------------------

    _METRICS = """
    count() AS request_count,
    countIf(StatusCode = 'Error') AS error_count,
    quantilesExactInclusive(0.5, 0.95, 0.99)(Duration) AS latency_ns,
    sum(InputTokens) AS input_tokens,
    sum(OutputTokens) AS output_tokens,
    sum(CacheReadTokens) AS cache_read_tokens,
    sum(CacheWriteTokens) AS cache_write_tokens,
    sum(ReasoningTokens) AS reasoning_tokens,
    sum(CostUsd) AS cost_usd
"""

    def metrics_summary(
        self,
        tenant: Tenant,
        start_ns: int,
        end_ns: int,
        group_by: str = "model",
        spans: SpanFilter | None = None,
        step_seconds: int | None = None,
        group_series: bool = False,
    ) -> MetricsSummary:
        """Totals, per-group figures and (with a step) a time series, over model-call spans; with
        ``group_series`` too, each group's own series (what a chart with one line per model draws).

        With filters and a grouping the aggregates hold and a step of whole minutes, the per-hour and
        per-minute aggregates plus the spans of the partial minutes at the range's edges are read first
        (``rollup``). When they count more than ``exact_max_calls`` model calls their figures are the answer:
        counts, tokens and costs as the spans give them, latency percentiles within 1 % of the exact ones (a
        DDSketch). Otherwise (and whenever the aggregates cannot serve the request) the spans are read and
        percentiles are exact.
        """
        column = _group_column(group_by)
        if step_seconds is not None and step_seconds < 1:
            raise InvalidArgument("step must be at least one second")
        spans = spans or SpanFilter()
        rows = None
        ranges = rollup.plan(start_ns, end_ns, step_seconds) if rollup.servable(spans, column) else None
        if ranges is not None:
            rows = self._summary_from_rollups(tenant, ranges, column, spans, step_seconds, group_series)
            calls = sum(
                int(row["request_count"]) for row in rows or () if row["all_keys"] and row["all_times"]
            )
            if calls <= self.exact_max_calls:
                rows = None
        if rows is None:
            rows = self._summary_from_spans(
                tenant, start_ns, end_ns, column, spans, step_seconds, group_series
            )
        total = next((_stats(row) for row in rows if row["all_keys"] and row["all_times"]), CallStats())
        groups = sorted(
            (row for row in rows if not row["all_keys"] and row["all_times"]),
            key=lambda row: (-float(row["cost_usd"] or 0), -int(row["request_count"]), row["key"]),
        )
        series = None
        by_group: dict[str, list[SeriesPoint]] = {}
        if step_seconds:
            points = sorted(
                (row for row in rows if not row["all_times"]),
                key=lambda row: int(row["time_ns"]),
            )
            series = tuple(SeriesPoint(int(row["time_ns"]), _stats(row)) for row in points if row["all_keys"])
            for row in points:
                if not row["all_keys"]:
                    by_group.setdefault(str(row["key"]), []).append(
                        SeriesPoint(int(row["time_ns"]), _stats(row))
                    )
        return MetricsSummary(
            group_by=group_by,
            total=total,
            groups=tuple(
                GroupStats(
                    str(row["key"]),
                    _stats(row),
                    tuple(by_group.get(str(row["key"]), ())) if group_series and step_seconds else None,
                )
                for row in groups
            ),
            series=series,
        )

    @staticmethod
    def _grouping(
        sql: _Sql, time_column: str, step_seconds: int | None, group_series: bool
    ) -> tuple[str, str, str]:
        """(bucket expression over ``time_column``, GROUPING SETS, the all-times flag) of a summary: one scan
        gives the total, the groups and the series, told apart by grouping()."""
        if not step_seconds:
            return "toInt64(0)", "(key), ()", "toUInt8(1)"
        step = sql.param(int(step_seconds), "UInt32")
        bucket = f"toUnixTimestamp64Nano(toDateTime64(toStartOfInterval({time_column}, toIntervalSecond({step})), 9))"
        sets = "(key), (), (time_ns)" + (", (key, time_ns)" if group_series else "")
        return bucket, sets, "grouping(time_ns)"

    def _summary_from_spans(
        self,
        tenant: Tenant,
        start_ns: int,
        end_ns: int,
        column: str,
        spans: SpanFilter,
        step_seconds: int | None,
        group_series: bool,
    ) -> list[dict[str, Any]]:
        sql = _Sql()
        where = _where([*sql.tenant(tenant), *sql.time(start_ns, end_ns), MODEL_CALL, *sql.spans(spans)])
        bucket, sets, all_times = self._grouping(sql, "Timestamp", step_seconds, group_series)
        return self._rows(
            f"""
SELECT {column} AS key, {bucket} AS time_ns, grouping(key) AS all_keys, {all_times} AS all_times,
    {self._METRICS}
FROM {self.traces} WHERE {where}
GROUP BY GROUPING SETS ({sets})
""",
            sql.params,
        )

    def _summary_from_rollups(
        self,
        tenant: Tenant,
        ranges: rollup.RollupPlan,
        column: str,
        spans: SpanFilter,
        step_seconds: int | None,
        group_series: bool,
    ) -> list[dict[str, Any]] | None:
        """The summary rows from the aggregates, plus the spans of the partial minutes at the edges; None
        when the store has no aggregates yet (the caller reads the spans)."""
        sql = _Sql()
        tenant_where = sql.tenant(tenant)
        filters = sql.spans(spans)
        parts = []
        slot_parts: list[tuple[str, list[tuple[int, int]]]] = []
        if ranges.hours is not None:
            slot_parts.append((self.rollup_hours, [ranges.hours]))
        if ranges.minutes:
            slot_parts.append((self.rollup_minutes, list(ranges.minutes)))
        merged = ", ".join(
            f"{merge or f'{rollup.LATENCY_MERGE_STATE}(Latency)'} AS {name}"
            for name, _, _, merge in rollup.MEASURES
        )
        for table, slots in slot_parts:
            bucket, _, _ = self._grouping(sql, "Start", step_seconds, group_series)
            times = " OR ".join(
                f"(Start >= toDateTime({sql.param(lo, 'Int64')}) AND Start < toDateTime({sql.param(hi, 'Int64')}))"
                for lo, hi in slots
            )
            where = _where([*tenant_where, f"({times})", *filters])
            parts.append(
                f"SELECT {column} AS key, {bucket} AS time_ns, {merged} FROM {table} WHERE {where} "
                "GROUP BY ALL"
            )
        if ranges.raw:
            bucket, _, _ = self._grouping(sql, "Timestamp", step_seconds, group_series)
            times = " OR ".join("(" + " AND ".join(sql.time(lo, hi)) + ")" for lo, hi in ranges.raw)
            where = _where([*tenant_where, f"({times})", MODEL_CALL, *filters])
            measures = ", ".join(f"{raw} AS {name}" for name, _, raw, _ in rollup.MEASURES)
            parts.append(
                f"SELECT {column} AS key, {bucket} AS time_ns, {measures} FROM {self.traces} WHERE {where} "
                "GROUP BY ALL"
            )
        _, sets, all_times = self._grouping(sql, "Start", step_seconds, group_series)
        union = "\nUNION ALL\n".join(parts)
        query = f"""
SELECT key, {"time_ns" if step_seconds else "toInt64(0) AS time_ns"}, grouping(key) AS all_keys,
    {all_times} AS all_times,
    sum(Calls) AS request_count,
    sum(Errors) AS error_count,
    {rollup.LATENCY_MERGE}(Latency) AS latency_ns,
    sum(InputTokens) AS input_tokens,
    sum(OutputTokens) AS output_tokens,
    sum(CacheReadTokens) AS cache_read_tokens,
    sum(CacheWriteTokens) AS cache_write_tokens,
    sum(ReasoningTokens) AS reasoning_tokens,
    sum(CostUsd) AS cost_usd
FROM ({union})
GROUP BY GROUPING SETS ({sets})
"""
        try:
            return self.client.rows(query, sql.params)
        except PermanentError as exc:
            if "UNKNOWN_TABLE" in str(exc) or "UNKNOWN_DATABASE" in str(exc):
                return None
            raise

    def cost_breakdown(
        self,
        tenant: Tenant,
        start_ns: int,
        end_ns: int,
        group_by: str = "model",
        spans: SpanFilter | None = None,
    ) -> CostBreakdown:
        """Cost split into input / output / cache parts, per group and in total, over model-call spans."""
        column = _group_column(group_by)
        sql = _Sql()
        where = _where(
            [*sql.tenant(tenant), *sql.time(start_ns, end_ns), MODEL_CALL, *sql.spans(spans or SpanFilter())]
        )
        parts = ", ".join(
            f"sum(toFloat64OrZero(SpanAttributes['{attr}'])) AS {name}"
            for name, attr in (
                ("input_cost_usd", attrs.COST_INPUT_USD),
                ("output_cost_usd", attrs.COST_OUTPUT_USD),
                ("cache_read_cost_usd", attrs.COST_CACHE_READ_USD),
                ("cache_write_cost_usd", attrs.COST_CACHE_WRITE_USD),
            )
        )
        metrics = (
            f"count() AS request_count, sum(InputTokens) AS input_tokens, sum(OutputTokens) AS output_tokens, "
            f"sum(CacheReadTokens) AS cache_read_tokens, sum(CacheWriteTokens) AS cache_write_tokens, "
            f"sum(CostUsd) AS cost_usd, {parts}"
        )
        rows = self._rows(
            f"SELECT {column} AS key, grouping(key) AS all_keys, {metrics} "
            f"FROM {self.traces} WHERE {where} GROUP BY GROUPING SETS ((key), ())",
            sql.params,
        )
        total = next((_costs(row) for row in rows if row["all_keys"]), CallCosts())
        groups = sorted(
            (row for row in rows if not row["all_keys"]),
            key=lambda row: (-float(row["cost_usd"] or 0), row["key"]),
        )
        return CostBreakdown(
            group_by=group_by,
            total=total,
            groups=tuple(GroupCosts(str(row["key"]), _costs(row)) for row in groups),
        )

    # --- services and operations (Jaeger) --------------------------------------------------------

    def services(self, tenant: Tenant) -> tuple[str, ...]:
        """The service names in the tenant's data, sorted."""
        sql = _Sql()
        rows = self._rows(
            f"SELECT DISTINCT ServiceName AS s FROM {self.traces} WHERE {_where(sql.tenant(tenant))} ORDER BY s",
            sql.params,
        )
        return tuple(row["s"] for row in rows)

    def operations(
        self, tenant: Tenant, service: str | None, kind: str | None = None
    ) -> tuple[ServiceOperation, ...]:
        """The span names (with their kinds) of ``service``, or of every service, sorted."""
        sql = _Sql()
        where = sql.tenant(tenant)
        if service:
            where.append(f"ServiceName = {sql.param(service, 'String')}")
        if kind:
            where.append(f"SpanKind = {sql.param(kind, 'String')}")
        rows = self._rows(
            f"SELECT DISTINCT SpanName AS name, SpanKind AS kind FROM {self.traces} WHERE {_where(where)} "
            "ORDER BY name, kind",
            sql.params,
        )
        return tuple(ServiceOperation(row["name"], row["kind"]) for row in rows)

    def find_trace_ids(self, tenant: Tenant, query: TraceIdQuery) -> tuple[str, ...]:
        """Ids of the newest traces having one span that meets every condition of ``query``."""
        sql = _Sql()
        where = [*sql.tenant(tenant), *sql.time(query.start_ns, query.end_ns), *sql.spans(query.spans)]
        if query.min_duration_ns is not None:
            where.append(f"Duration >= {sql.param(query.min_duration_ns, 'UInt64')}")
        if query.max_duration_ns is not None:
            where.append(f"Duration <= {sql.param(query.max_duration_ns, 'UInt64')}")
        if query.error is not None:
            where.append("StatusCode = 'Error'" if query.error else "StatusCode != 'Error'")
        if query.span_kind:
            where.append(f"SpanKind = {sql.param(query.span_kind, 'String')}")
        rows = self._rows(
            f"SELECT TraceId AS trace_id, max(Timestamp) AS last FROM {self.traces} WHERE {_where(where)} "
            f"GROUP BY TraceId ORDER BY last DESC, trace_id LIMIT {sql.param(max(1, query.limit), 'UInt32')}",
            sql.params,
        )
        return tuple(row["trace_id"] for row in rows)

    # --- live tail -------------------------------------------------------------------------------

    def spans_since(
        self, tenant: Tenant, since_ns: int, spans: SpanFilter, limit: int = 1000
    ) -> tuple[SpanRow, ...]:
        """Spans starting at or after ``since_ns`` (oldest first), for the live tail."""
        sql = _Sql()
        where = [
            *sql.tenant(tenant),
            f"Timestamp >= fromUnixTimestamp64Nano({sql.param(since_ns, 'Int64')})",
            *sql.spans(spans),
        ]
        rows = self._rows(
            f"SELECT {_SPAN_COLUMNS} FROM {self.traces} WHERE {_where(where)} ORDER BY Timestamp, SpanId "
            f"LIMIT {sql.param(limit, 'UInt32')}",
            sql.params,
        )
        return tuple(_span(row) for row in rows)

    def span_keys_since(
        self, tenant: Tenant, since_ns: int, spans: SpanFilter, limit: int = 10_000
    ) -> tuple[tuple[str, str, int], ...]:
        """``(trace_id, span_id, start_ns)`` of the spans ``spans_since`` would return: what a live tail
        needs to tell new spans from ones it has reported, without reading the spans themselves."""
        sql = _Sql()
        where = [
            *sql.tenant(tenant),
            f"Timestamp >= fromUnixTimestamp64Nano({sql.param(since_ns, 'Int64')})",
            *sql.spans(spans),
        ]
        rows = self._rows(
            f"SELECT TraceId AS trace_id, SpanId AS span_id, toUnixTimestamp64Nano(Timestamp) AS start_ns "
            f"FROM {self.traces} WHERE {_where(where)} ORDER BY Timestamp, SpanId "
            f"LIMIT {sql.param(limit, 'UInt32')}",
            sql.params,
        )
        return tuple((row["trace_id"], row["span_id"], int(row["start_ns"])) for row in rows)

    def spans_by_keys(
        self, tenant: Tenant, since_ns: int, keys: Sequence[tuple[str, str]]
    ) -> tuple[SpanRow, ...]:
        """The spans with these ``(trace_id, span_id)`` starting at or after ``since_ns``, oldest first."""
        if not keys:
            return ()
        sql = _Sql()
        pairs = ", ".join(f"({sql.param(t, 'String')}, {sql.param(s, 'String')})" for t, s in keys)
        where = [
            *sql.tenant(tenant),
            f"Timestamp >= fromUnixTimestamp64Nano({sql.param(since_ns, 'Int64')})",
            f"TraceId IN ({', '.join(sql.param(t, 'String') for t in sorted({t for t, _ in keys}))})",
            f"(TraceId, SpanId) IN ({pairs})",
        ]
        rows = self._rows(
            f"SELECT {_SPAN_COLUMNS} FROM {self.traces} WHERE {_where(where)} ORDER BY Timestamp, SpanId",
            sql.params,
        )
        return tuple(_span(row) for row in rows)
