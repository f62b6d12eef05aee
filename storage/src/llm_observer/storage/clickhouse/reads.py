"""Every read the query APIs make, as parameterised SQL over ``otel_traces`` and its trace-id lookup table.

Each public method takes a ``Tenant`` first and confines its SQL to it; user input only ever reaches
ClickHouse as a ``{name:Type}`` parameter (identifiers come from fixed tables in this module). Results are
plain dicts with times in Unix nanoseconds; the REST, gRPC and Jaeger layers format them.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
import threading
import weakref
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from llm_observer.kernel.errors import PermanentError
from llm_observer.semconv import attributes as attrs
from llm_observer.storage.clickhouse.client import ClickHouseClient
from llm_observer.storage.clickhouse.schema import TRACE_ID_TS_TABLE, TRACES_TABLE

# What a "request" is for metrics: one model call, i.e. a span naming the model it asked for.
MODEL_CALL = "GenAiRequestModel != ''"

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

STATUSES: Mapping[str, str] = {"ok": "Ok", "error": "Error", "unset": "Unset"}

_TRACE_ID = re.compile(r"^[0-9a-f]{32}$")
_SPAN_ID = re.compile(r"^[0-9a-f]{16}$")


class InvalidArgument(ValueError):
    """A request parameter is malformed (400 / INVALID_ARGUMENT)."""


@dataclass(frozen=True, slots=True)
class Tenant:
    """The data a request may see: one organization (None: all, auth off) and some projects (None: all)."""

    organization_id: str | None
    project_ids: frozenset[str] | None


@dataclass(frozen=True, slots=True)
class SpanFilter:
    """Conditions on spans; a trace matches when, for each condition, some span of it matches."""

    service: str | None = None
    model: str | None = None
    provider: str | None = None
    operation: str | None = None
    span_name: str | None = None
    user_id: str | None = None
    team_id: str | None = None
    conversation_id: str | None = None
    attributes: tuple[tuple[str, str], ...] = ()
    text: str | None = None

    def key(self) -> tuple[Any, ...]:
        return (
            self.service,
            self.model,
            self.provider,
            self.operation,
            self.span_name,
            self.user_id,
            self.team_id,
            self.conversation_id,
            self.attributes,
            self.text,
        )


@dataclass(frozen=True, slots=True)
class TraceQuery:
    start_ns: int
    end_ns: int
    spans: SpanFilter = field(default_factory=SpanFilter)
    status: str | None = None  # ok | error | unset (for a trace: error = any span failed)
    min_duration_ms: float | None = None
    max_duration_ms: float | None = None
    min_cost_usd: float | None = None
    limit: int = 50
    cursor: str | None = None


def normalize_trace_id(value: str) -> str:
    """Lower-case 32-hex trace id; accepts 16-hex (64-bit Jaeger ids, left-padded)."""
    tid = value.strip().lower()
    if len(tid) == 16 and _SPAN_ID.match(tid):
        tid = tid.rjust(32, "0")
    if not _TRACE_ID.match(tid):
        raise InvalidArgument("trace_id must be 32 hex characters")
    return tid


def encode_cursor(start_ns: int, trace_id: str) -> str:
    raw = json.dumps([start_ns, trace_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        start_ns, trace_id = json.loads(raw)
        if not isinstance(start_ns, int) or not isinstance(trace_id, str) or not _TRACE_ID.match(trace_id):
            raise ValueError("bad cursor contents")
    except (ValueError, TypeError, binascii.Error) as exc:
        raise InvalidArgument("cursor is not one this API returned") from exc
    return start_ns, trace_id


class _Sql:
    """Collects WHERE conditions and their parameters under generated names."""

    def __init__(self) -> None:
        self.params: dict[str, Any] = {}

    def param(self, value: Any, ctype: str) -> str:
        name = f"p{len(self.params)}"
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
        return [
            f"Timestamp >= fromUnixTimestamp64Nano({self.param(start_ns, 'Int64')})",
            f"Timestamp < fromUnixTimestamp64Nano({self.param(end_ns, 'Int64')})",
        ]

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
            fields = (
                "SpanName",
                f"SpanAttributes['{attrs.GEN_AI_INPUT_MESSAGES}']",
                f"SpanAttributes['{attrs.GEN_AI_OUTPUT_MESSAGES}']",
                f"SpanAttributes['{attrs.GEN_AI_SYSTEM_INSTRUCTIONS}']",
                "StatusMessage",
            )
            out.append("(" + " OR ".join(f"positionCaseInsensitiveUTF8({f}, {t}) > 0" for f in fields) + ")")
        return out


def _where(conditions: Iterable[str]) -> str:
    conds = list(conditions)
    return " AND ".join(conds) if conds else "1"


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


def _span(row: dict[str, Any]) -> dict[str, Any]:
    row["events"] = [
        {"time_ns": int(t), "name": n, "attributes": a}
        for t, n, a in zip(
            row.pop("event_times"), row.pop("event_names"), row.pop("event_attributes"), strict=False
        )
    ]
    row["links"] = [
        {"trace_id": t, "span_id": s}
        for t, s in zip(row.pop("link_trace_ids"), row.pop("link_span_ids"), strict=False)
    ]
    row["end_ns"] = int(row["start_ns"]) + int(row["duration_ns"])
    row["cost_usd"] = _num(row["cost_usd"])
    return row


_locks_guard = threading.Lock()
_locks: weakref.WeakKeyDictionary[Any, threading.Lock] = weakref.WeakKeyDictionary()


def storage_lock(client: ClickHouseClient) -> threading.Lock:
    """The lock this module holds around every call on ``client``.

    chDB deadlocks when one thread queries while another inserts from Arrow through the ``Python()`` table
    function (the query waits for chDB's mutex holding the GIL; the insert holds the mutex and waits for the
    GIL). Taking a Python lock first releases the GIL while waiting. Writers sharing the client in this
    process should hold the same lock around inserts until the client serialises its own calls.
    """
    with _locks_guard:
        lock = _locks.get(client)
        if lock is None:
            lock = _locks[client] = threading.Lock()
        return lock


class TraceStore:
    """Reads over one ClickHouse database. Thread-safe; every call blocks: run it in a thread."""

    def __init__(self, client: ClickHouseClient, database: str) -> None:
        self.client = client
        self.traces = f"`{database}`.{TRACES_TABLE}"
        self.trace_ids = f"`{database}`.{TRACE_ID_TS_TABLE}"
        self._lock = storage_lock(client)

    def _rows(self, sql: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        try:
            with self._lock:
                return self.client.rows(sql, params)
        except PermanentError as exc:
            # A store nobody has written to yet has no tables: that is an empty result, not an error.
            if "UNKNOWN_TABLE" in str(exc) or "UNKNOWN_DATABASE" in str(exc):
                return []
            raise

    # --- traces ----------------------------------------------------------------------------------

    def search_traces(self, tenant: Tenant, query: TraceQuery) -> tuple[list[dict[str, Any]], str | None]:
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
            having.append(f"end_ns - start_ns >= {sql.param(int(query.min_duration_ms * 1e6), 'Int64')}")
        if query.max_duration_ms is not None:
            extra.add("end_ns")
            having.append(f"end_ns - start_ns <= {sql.param(int(query.max_duration_ms * 1e6), 'Int64')}")
        if query.min_cost_usd is not None:
            having.append(f"sum(CostUsd) >= {sql.param(query.min_cost_usd, 'Float64')}")
        if query.cursor:
            c_ns, c_id = decode_cursor(query.cursor)
            having.append(f"(start_ns, trace_id) < ({sql.param(c_ns, 'Int64')}, {sql.param(c_id, 'String')})")
        limit = max(1, query.limit)
        end_column = (
            ", max(toUnixTimestamp64Nano(Timestamp) + Duration) AS end_ns" if "end_ns" in extra else ""
        )
        page = self._rows(
            f"""
SELECT any(TraceId) AS trace_id, toUnixTimestamp64Nano(min(Timestamp)) AS start_ns{end_column}
FROM {self.traces}
WHERE {_where(where)}
GROUP BY cityHash64(TraceId)
HAVING {_where(having)}
ORDER BY start_ns DESC, trace_id DESC
LIMIT {sql.param(limit + 1, "UInt32")}
""",
            sql.params,
        )
        if not page:
            return [], None
        ids = [row["trace_id"] for row in page]
        full = _Sql()
        where = [
            f"TraceId IN {full.values(ids, 'String')}",
            *full.tenant(tenant),
            *full.time(query.start_ns, query.end_ns),
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
        rows = [summaries[tid] for tid in ids if tid in summaries]
        for row in rows:
            row["cost_usd"] = _num(row["cost_usd"])
            row["status"] = "Error" if row["error_count"] else "Ok"
        next_cursor = None
        if len(rows) > limit:
            rows = rows[:limit]
            next_cursor = encode_cursor(int(rows[-1]["start_ns"]), rows[-1]["trace_id"])
        return rows, next_cursor

    def trace_bounds(self, trace_ids: Sequence[str]) -> dict[str, tuple[int, int]]:
        """First and last span start per trace id, from the lookup table."""
        if not trace_ids:
            return {}
        sql = _Sql()
        rows = self._rows(
            f"""
SELECT TraceId AS trace_id, toUnixTimestamp64Nano(min(Start)) AS start_ns,
    toUnixTimestamp64Nano(max(End)) AS end_ns
FROM {self.trace_ids} WHERE TraceId IN {sql.values(trace_ids, "String")} GROUP BY TraceId
""",
            sql.params,
        )
        return {row["trace_id"]: (int(row["start_ns"]), int(row["end_ns"])) for row in rows}

    def get_traces(self, tenant: Tenant, trace_ids: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
        """The spans of each trace (ordered by start), for the ids that exist in the tenant's data.

        One round trip: scalar subqueries over the lookup table bound ``Timestamp``, which ClickHouse
        evaluates first and uses to prune partitions and granules before the TraceId bloom filter.
        """
        if not trace_ids:
            return {}
        sql = _Sql()
        ids = sql.values(sorted(set(trace_ids)), "String")
        where = [
            f"TraceId IN {ids}",
            *sql.tenant(tenant),
            f"Timestamp >= (SELECT min(Start) FROM {self.trace_ids} WHERE TraceId IN {ids})",
            f"Timestamp <= (SELECT max(End) FROM {self.trace_ids} WHERE TraceId IN {ids})",
        ]
        rows = self._rows(
            f"SELECT {_SPAN_COLUMNS} FROM {self.traces} WHERE {_where(where)} ORDER BY Timestamp, SpanId",
            sql.params,
        )
        out: dict[str, list[dict[str, Any]]] = {}
        for row in rows:
            out.setdefault(row["trace_id"], []).append(_span(row))
        return out

    def get_trace(self, tenant: Tenant, trace_id: str) -> list[dict[str, Any]]:
        """The spans of one trace, ordered by start; empty when it does not exist for this tenant."""
        return self.get_traces(tenant, [normalize_trace_id(trace_id)]).get(normalize_trace_id(trace_id), [])

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

    @staticmethod
    def _metrics(row: dict[str, Any]) -> dict[str, Any]:
        p50, p95, p99 = (_num(v) / 1e6 for v in row.pop("latency_ns") or (0, 0, 0))
        count = int(row["request_count"])
        row["error_rate"] = int(row["error_count"]) / count if count else 0.0
        row["latency_ms"] = {"p50": p50, "p95": p95, "p99": p99}
        row["cost_usd"] = _num(row["cost_usd"])
        return row

    def metrics_summary(
        self,
        tenant: Tenant,
        start_ns: int,
        end_ns: int,
        group_by: str = "model",
        spans: SpanFilter | None = None,
        step_seconds: int | None = None,
    ) -> dict[str, Any]:
        """Totals, per-group figures and (with a step) a time series, over model-call spans."""
        column = GROUP_BY_COLUMNS.get(group_by)
        if column is None:
            raise InvalidArgument(f"group_by must be one of {', '.join(GROUP_BY_COLUMNS)}")
        if step_seconds is not None and step_seconds < 1:
            raise InvalidArgument("step must be at least one second")
        sql = _Sql()
        where = _where(
            [*sql.tenant(tenant), *sql.time(start_ns, end_ns), MODEL_CALL, *sql.spans(spans or SpanFilter())]
        )
        # One scan for the total, the groups and the series: GROUPING SETS, told apart by grouping().
        bucket, all_times = "toInt64(0)", "toUInt8(1)"
        sets = "(key), ()"
        if step_seconds:
            step = sql.param(int(step_seconds), "UInt32")
            bucket = f"toUnixTimestamp64Nano(toDateTime64(toStartOfInterval(Timestamp, toIntervalSecond({step})), 9))"
            sets = "(key), (), (time_ns)"
            all_times = "grouping(time_ns)"
        rows = self._rows(
            f"""
SELECT {column} AS key, {bucket} AS time_ns, grouping(key) AS all_keys, {all_times} AS all_times,
    {self._METRICS}
FROM {self.traces} WHERE {where}
GROUP BY GROUPING SETS ({sets})
""",
            sql.params,
        )
        empty = {"request_count": 0, "error_count": 0, "latency_ns": None, "cost_usd": 0}
        total = next((row for row in rows if row["all_keys"] and row["all_times"]), empty)
        groups = sorted(
            (row for row in rows if not row["all_keys"]),
            key=lambda row: (-float(row["cost_usd"] or 0), -int(row["request_count"]), row["key"]),
        )
        result: dict[str, Any] = {
            **self._metrics(self._strip(total)),
            "group_by": group_by,
            "groups": [self._metrics(self._strip(row, keep_key=True)) for row in groups],
        }
        if step_seconds:
            series = sorted(
                (row for row in rows if row["all_keys"] and not row["all_times"]), key=lambda r: r["time_ns"]
            )
            result["series"] = [self._metrics(self._strip(row, keep_time=True)) for row in series]
        return result

    @staticmethod
    def _strip(row: dict[str, Any], keep_key: bool = False, keep_time: bool = False) -> dict[str, Any]:
        out = {k: v for k, v in row.items() if k not in ("key", "time_ns", "all_keys", "all_times")}
        if keep_key:
            out["key"] = row["key"]
        if keep_time:
            out["time_ns"] = row["time_ns"]
        return out

    def cost_breakdown(
        self,
        tenant: Tenant,
        start_ns: int,
        end_ns: int,
        group_by: str = "model",
        spans: SpanFilter | None = None,
    ) -> dict[str, Any]:
        """Cost split into input / output / cache parts, per group and in total, over model-call spans."""
        column = GROUP_BY_COLUMNS.get(group_by)
        if column is None:
            raise InvalidArgument(f"group_by must be one of {', '.join(GROUP_BY_COLUMNS)}")
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
        base = f"FROM {self.traces} WHERE {where}"

        def clean(row: dict[str, Any]) -> dict[str, Any]:
            for key in (
                "cost_usd",
                "input_cost_usd",
                "output_cost_usd",
                "cache_read_cost_usd",
                "cache_write_cost_usd",
            ):
                row[key] = _num(row.get(key))
            return row

        rows = self._rows(
            f"SELECT {column} AS key, grouping(key) AS all_keys, {metrics} {base} GROUP BY GROUPING SETS ((key), ())",
            sql.params,
        )
        empty = {
            "request_count": 0,
            "input_tokens": 0,
            "output_tokens": 0,
            "cache_read_tokens": 0,
            "cache_write_tokens": 0,
        }
        total = next((row for row in rows if row["all_keys"]), empty)
        total = {k: v for k, v in total.items() if k not in ("key", "all_keys")}
        groups = sorted(
            (row for row in rows if not row["all_keys"]),
            key=lambda row: (-float(row["cost_usd"] or 0), row["key"]),
        )
        for row in groups:
            del row["all_keys"]
        return {**clean(total), "group_by": group_by, "groups": [clean(g) for g in groups]}

    # --- services and operations (Jaeger) --------------------------------------------------------

    def services(self, tenant: Tenant) -> list[str]:
        sql = _Sql()
        rows = self._rows(
            f"SELECT DISTINCT ServiceName AS s FROM {self.traces} WHERE {_where(sql.tenant(tenant))} ORDER BY s",
            sql.params,
        )
        return [row["s"] for row in rows]

    def operations(
        self, tenant: Tenant, service: str | None, kind: str | None = None
    ) -> list[dict[str, str]]:
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
        return rows

    def find_trace_ids(
        self,
        tenant: Tenant,
        start_ns: int,
        end_ns: int,
        spans: SpanFilter,
        min_duration_ns: int | None,
        max_duration_ns: int | None,
        limit: int,
        error: bool | None = None,
        span_kind: str | None = None,
    ) -> list[str]:
        """Jaeger search: ids of the newest traces having one span that meets every condition."""
        sql = _Sql()
        where = [*sql.tenant(tenant), *sql.time(start_ns, end_ns), *sql.spans(spans)]
        if min_duration_ns is not None:
            where.append(f"Duration >= {sql.param(min_duration_ns, 'UInt64')}")
        if max_duration_ns is not None:
            where.append(f"Duration <= {sql.param(max_duration_ns, 'UInt64')}")
        if error is not None:
            where.append("StatusCode = 'Error'" if error else "StatusCode != 'Error'")
        if span_kind:
            where.append(f"SpanKind = {sql.param(span_kind, 'String')}")
        rows = self._rows(
            f"SELECT TraceId AS trace_id, max(Timestamp) AS last FROM {self.traces} WHERE {_where(where)} "
            f"GROUP BY TraceId ORDER BY last DESC, trace_id LIMIT {sql.param(max(1, limit), 'UInt32')}",
            sql.params,
        )
        return [row["trace_id"] for row in rows]

    # --- live tail -------------------------------------------------------------------------------

    def spans_since(
        self, tenant: Tenant, since_ns: int, spans: SpanFilter, limit: int = 1000
    ) -> list[dict[str, Any]]:
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
        return [_span(row) for row in rows]


def message_text(raw: str) -> str:
    """Readable text of a ``gen_ai.*.messages`` JSON value (roles and text parts); the raw value otherwise."""
    if not raw:
        return ""
    try:
        messages = json.loads(raw)
    except ValueError:
        return raw
    if not isinstance(messages, list):
        return raw
    lines = []
    for message in messages:
        if not isinstance(message, dict):
            lines.append(str(message))
            continue
        role = message.get("role", "")
        texts: list[str] = []
        parts = message.get("parts")
        if isinstance(parts, list):
            for part in parts:
                if isinstance(part, dict):
                    content = part.get("content")
                    if isinstance(content, str):
                        texts.append(content)
                    elif part.get("type") == "tool_call":
                        texts.append(
                            f"[tool call {part.get('name', '')}({json.dumps(part.get('arguments'))})]"
                        )
                    elif content is not None:
                        texts.append(json.dumps(content))
        elif isinstance(message.get("content"), str):
            texts.append(message["content"])
        text = "\n".join(texts)
        lines.append(f"{role}: {text}" if role else text)
    return "\n".join(lines)
