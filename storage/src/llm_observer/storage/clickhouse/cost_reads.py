"""The reads behind cost insights: daily spend series (forecasts) and the aggregates that find spend that
could be saved (advice): repeated prompts, long uncached prefixes, models sharing a prompt cluster, retries,
truncations and outputs no later span uses.

Every query is confined to a ``Tenant`` and a time window, counts model calls only (``MODEL_CALL``) and does
the grouping in ClickHouse: Python receives one row per group (or per candidate call where the advice needs
the calls' order), never the raw spans. User input reaches ClickHouse only as parameters.

Definitions shared by the reads (all over the span's captured content; calls without it are left out):

* *prompt hash*: ``cityHash64`` of the system instructions, the input messages and the tool definitions;
* *parameters hash*: ``cityHash64`` of the request parameters (temperature, top_p, top_k, max_tokens,
  penalties, stop sequences, seed, choice count, output type);
* *prefix*: the system instructions (or, when absent, a leading ``system`` input message) followed by the
  tool definitions — what providers can cache across calls. Its token count is estimated as the call's
  input tokens times the prefix's share of the prompt's characters (spans carry no per-part token counts);
* *cluster* (the prompt template): the prefix when there is one, else the input messages with every run of
  digits masked.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from llm_observer.semconv import attributes as attrs
from llm_observer.storage.clickhouse.client import ClickHouseClient
from llm_observer.storage.clickhouse.queries import InvalidArgument, Tenant
from llm_observer.storage.clickhouse.reads import (
    GROUP_BY_COLUMNS,
    MODEL_CALL,
    TraceStore,
    _num,
    _Sql,
    _where,
    rows_or_none,
)

__all__ = [
    "FORECAST_DIMENSIONS",
    "CallGroup",
    "CostStore",
    "PrefixCall",
    "PromptGroup",
    "RetryCall",
    "SpendSeries",
    "Tokens",
]

# The dimensions a spend forecast may be broken down by.
FORECAST_DIMENSIONS = ("organization", "project", "team", "model", "provider")

_HOUR_NS = 3600 * 10**9


def _a(key: str) -> str:
    return f"SpanAttributes['{key}']"


_SYS = _a(attrs.GEN_AI_SYSTEM_INSTRUCTIONS)
_MSGS = _a(attrs.GEN_AI_INPUT_MESSAGES)
_TOOLS = _a(attrs.GEN_AI_TOOL_DEFINITIONS)
_OUT = _a(attrs.GEN_AI_OUTPUT_MESSAGES)
_FINISH = _a(attrs.GEN_AI_RESPONSE_FINISH_REASONS)
_PARAM_KEYS = (
    attrs.GEN_AI_REQUEST_TEMPERATURE,
    attrs.GEN_AI_REQUEST_TOP_P,
    attrs.GEN_AI_REQUEST_TOP_K,
    attrs.GEN_AI_REQUEST_MAX_TOKENS,
    attrs.GEN_AI_REQUEST_FREQUENCY_PENALTY,
    attrs.GEN_AI_REQUEST_PRESENCE_PENALTY,
    attrs.GEN_AI_REQUEST_STOP_SEQUENCES,
    attrs.GEN_AI_REQUEST_SEED,
    attrs.GEN_AI_REQUEST_CHOICE_COUNT,
    "gen_ai.output.type",
)
_HAS_PROMPT = f"({_MSGS} != '' OR {_SYS} != '')"
_PROMPT_HASH = f"cityHash64({_SYS}, {_MSGS}, {_TOOLS})"
_PARAMS_HASH = "cityHash64(" + ", ".join(_a(k) for k in _PARAM_KEYS) + ")"
_LEAD_SYSTEM = f"if(JSONExtractString({_MSGS}, 1, 'role') = 'system', JSONExtractRaw({_MSGS}, 1), '')"
_PREFIX = f"concat(if({_SYS} != '', {_SYS}, {_LEAD_SYSTEM}), {_TOOLS})"
_PROMPT_CHARS = f"(lengthUTF8({_SYS}) + lengthUTF8({_MSGS}) + lengthUTF8({_TOOLS}))"
_PREFIX_TOKENS = f"toUInt64(intDiv(InputTokens * lengthUTF8({_PREFIX}), greatest(1, {_PROMPT_CHARS})))"
_CLUSTER = f"if({_PREFIX} != '', cityHash64({_PREFIX}), cityHash64(replaceRegexpAll({_MSGS}, '[0-9]+', '0')))"
# A request: who sent it (project), to which model, with which parameters and prompt.
_REQUEST_KEY = f"(ProjectId, GenAiRequestModel, {_PARAMS_HASH}, {_PROMPT_HASH})"
_PRICED_MODEL = "if(GenAiResponseModel != '', GenAiResponseModel, GenAiRequestModel)"
_NS = "toUnixTimestamp64Nano(Timestamp)"
_OK = "StatusCode != 'Error'"
# finish_reasons is stored as a JSON array; providers spell a max-token stop differently.
TRUNCATION_REASONS = ("length", "max_tokens", "MAX_TOKENS", "max_output_tokens")
_TRUNCATED = (
    f"hasAny(JSONExtract({_FINISH}, 'Array(String)'), [{', '.join(repr(r) for r in TRUNCATION_REASONS)}])"
)
# The first text part of the first output message: decoded, and as it is written inside the JSON document.
_OUT_TEXT = f"JSONExtractString({_OUT}, 1, 'parts', 1, 'content')"
_OUT_RAW = f"JSONExtractRaw({_OUT}, 1, 'parts', 1, 'content')"


@dataclass(frozen=True, slots=True)
class Tokens:
    """Token counts (summed over calls, or of one call), as the cost processor prices them: input includes
    cache reads and writes."""

    input: int = 0
    output: int = 0
    cache_read: int = 0
    cache_write: int = 0


@dataclass(frozen=True, slots=True)
class SpendSeries:
    """Spend of one group per day from ``start_ns`` (``step_ns`` apart), zeros where nothing was spent.
    ``group`` is the organization followed by the values of the requested dimensions."""

    group: tuple[str, ...]
    start_ns: int
    step_ns: int
    values: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class CallGroup:
    """Calls sharing a key (a prompt, a model in a cluster, truncations of a model, unused outputs…).

    ``first_*`` describe the earliest call; ``span_ids``/``trace_ids`` are a few examples (earliest first
    where the read says so). ``key`` is the read's own grouping key (a hash), ``avg_output_tokens`` and
    ``errors`` are over the group's calls.
    """

    organization_id: str
    project_id: str
    provider: str
    model: str
    priced_model: str
    key: str
    calls: int
    errors: int
    tokens: Tokens
    cost_usd: float
    first_ns: int
    first_tokens: Tokens
    first_cost_usd: float
    avg_output_tokens: float
    span_ids: tuple[str, ...]
    trace_ids: tuple[str, ...]
    text: str = ""


# Kept under a second name for readers of the advice: a group of calls with one prompt.
PromptGroup = CallGroup


@dataclass(frozen=True, slots=True)
class PrefixCall:
    """One call carrying a long cacheable prefix that read nothing from the provider's cache."""

    organization_id: str
    project_id: str
    provider: str
    model: str
    priced_model: str
    prefix_hash: str
    start_ns: int
    input_tokens: int
    prefix_tokens: int
    span_id: str
    trace_id: str


@dataclass(frozen=True, slots=True)
class RetryCall:
    """A failed call of a request (project, model, parameters and prompt) that was sent again soon after."""

    organization_id: str
    project_id: str
    provider: str
    model: str
    priced_model: str
    key: str
    start_ns: int
    error: bool
    tokens: Tokens
    cost_usd: float
    span_id: str
    trace_id: str


def _tokens(row: Mapping[str, Any], prefix: str = "t_") -> Tokens:
    return Tokens(
        int(row[f"{prefix}in"] or 0),
        int(row[f"{prefix}out"] or 0),
        int(row[f"{prefix}cr"] or 0),
        int(row[f"{prefix}cw"] or 0),
    )


_GROUP_COLUMNS = f"""
    OrganizationId AS org, ProjectId AS project, any(GenAiProvider) AS provider, GenAiRequestModel AS model,
    any({_PRICED_MODEL}) AS priced, count() AS calls, countIf(StatusCode = 'Error') AS errors,
    sum(InputTokens) AS t_in, sum(OutputTokens) AS t_out, sum(CacheReadTokens) AS t_cr, sum(CacheWriteTokens) AS t_cw,
    sum(CostUsd) AS cost, avg(OutputTokens) AS avg_out,
    min({_NS}) AS first_ns, argMin(InputTokens, Timestamp) AS f_in, argMin(OutputTokens, Timestamp) AS f_out,
    argMin(CacheReadTokens, Timestamp) AS f_cr, argMin(CacheWriteTokens, Timestamp) AS f_cw,
    argMin(CostUsd, Timestamp) AS f_cost,
    arraySlice(arraySort(x -> x.1, groupArray((Timestamp, SpanId, TraceId))), 1, {{examples:UInt32}}) AS ex
"""


def _group(row: Mapping[str, Any], key: str, text: str = "") -> CallGroup:
    examples = row["ex"] or []
    return CallGroup(
        organization_id=str(row["org"]),
        project_id=str(row["project"]),
        provider=str(row["provider"]),
        model=str(row["model"]),
        priced_model=str(row["priced"] or row["model"]),
        key=key,
        calls=int(row["calls"]),
        errors=int(row["errors"] or 0),
        tokens=_tokens(row),
        cost_usd=_num(row["cost"]),
        first_ns=int(row["first_ns"]),
        first_tokens=_tokens(row, "f_"),
        first_cost_usd=_num(row["f_cost"]),
        avg_output_tokens=_num(row["avg_out"]),
        span_ids=tuple(str(e[1]) for e in examples),
        trace_ids=tuple(str(e[2]) for e in examples),
        text=text,
    )


class CostStore:
    """Cost insights' reads over one ClickHouse database. Thread-safe; every call blocks (run it in a
    thread). ``queries`` counts the queries made."""

    def __init__(self, client: ClickHouseClient, traces_table: str) -> None:
        self.client = client
        self.traces = traces_table
        self.queries = 0

    @classmethod
    def of(cls, store: TraceStore) -> CostStore:
        """The cost reads over the database ``store`` reads."""
        return cls(store.client, store.traces)

    def _rows(self, sql: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        self.queries += 1
        return rows_or_none(self.client, sql, params)

    def _scope(self, tenant: Tenant, start_ns: int, end_ns: int) -> tuple[_Sql, list[str]]:
        if end_ns <= start_ns:
            raise InvalidArgument("start_time must be before end_time")
        sql = _Sql()
        return sql, [MODEL_CALL, *sql.tenant(tenant), *sql.time(start_ns, end_ns)]

    # --- forecasts ----------------------------------------------------------------------------------

    def spend_series(
        self, tenant: Tenant, group_by: Sequence[str], start_ns: int, end_ns: int, step_ns: int
    ) -> list[SpendSeries]:
        """Spend per group and bucket over ``[start_ns, end_ns)``: dense series of ``ceil((end - start) /
        step)`` buckets for the groups that spent in the range, the organization always the first key."""
        if step_ns <= 0:
            raise InvalidArgument("the bucket step must be positive")
        columns = []
        for dimension in group_by:
            if dimension not in FORECAST_DIMENSIONS:
                raise InvalidArgument(f"group_by must be among {', '.join(FORECAST_DIMENSIONS)}")
            if dimension != "organization":
                columns.append(GROUP_BY_COLUMNS[dimension])
        sql, where = self._scope(tenant, start_ns, end_ns)
        keys = ["OrganizationId AS g0"] + [f"{c} AS g{i + 1}" for i, c in enumerate(columns)]
        names = ", ".join(f"g{i}" for i in range(len(keys)))
        start = sql.param(start_ns, "Int64")
        step = sql.param(step_ns, "Int64")
        rows = self._rows(
            f"SELECT {', '.join(keys)}, intDiv({_NS} - {start}, {step}) AS bucket, sum(CostUsd) AS cost "
            f"FROM {self.traces} WHERE {_where(where)} GROUP BY {names}, bucket",
            sql.params,
        )
        size = -(-(end_ns - start_ns) // step_ns)
        series: dict[tuple[str, ...], list[float]] = {}
        for row in rows:
            group = tuple(str(row[f"g{i}"]) for i in range(len(keys)))
            series.setdefault(group, [0.0] * size)[int(row["bucket"])] += _num(row["cost"])
        return [SpendSeries(g, start_ns, step_ns, tuple(v)) for g, v in sorted(series.items())]

    # --- advice -------------------------------------------------------------------------------------

    def prompt_groups(
        self,
        tenant: Tenant,
        start_ns: int,
        end_ns: int,
        *,
        min_calls: int = 2,
        limit: int = 100_000,
        with_text: bool = False,
        examples: int = 3,
    ) -> list[CallGroup]:
        """Successful calls grouped by (project, model, parameters hash, prompt hash), costliest first:
        groups of at least ``min_calls`` calls, at most ``limit`` of them. ``key`` is
        ``"<parameters hash>:<prompt hash>:<prefix hash>"``; with ``with_text`` each group carries its input messages
        (the JSON document, for embedding)."""
        sql, where = self._scope(tenant, start_ns, end_ns)
        where += [_OK, _HAS_PROMPT]
        text = f", any({_MSGS}) AS text" if with_text else ""
        sql.params["examples"] = examples
        rows = self._rows(
            f"SELECT {_GROUP_COLUMNS}, toString({_PARAMS_HASH}) AS ph, toString({_PROMPT_HASH}) AS qh, "
            f"toString(any(cityHash64({_PREFIX}))) AS xh{text} "
            f"FROM {self.traces} WHERE {_where(where)} "
            f"GROUP BY org, project, model, {_PARAMS_HASH}, {_PROMPT_HASH} "
            f"HAVING calls >= {sql.param(min_calls, 'UInt64')} "
            f"ORDER BY cost DESC, first_ns LIMIT {sql.param(limit, 'UInt64')}",
            sql.params,
        )
        return [_group(r, f"{r['ph']}:{r['qh']}:{r['xh']}", str(r.get("text") or "")) for r in rows]

    def prefix_calls(
        self, tenant: Tenant, start_ns: int, end_ns: int, *, min_prefix_tokens: int = 1024
    ) -> list[PrefixCall]:
        """Calls whose prefix (system instructions and tools) is estimated at ``min_prefix_tokens`` or more,
        that read no cached tokens, of prefixes sent at least twice by the same project and model; in time
        order."""
        sql, where = self._scope(tenant, start_ns, end_ns)
        where += [f"{_PREFIX} != ''", "CacheReadTokens = 0"]
        low = sql.param(min_prefix_tokens, "UInt64")
        rows = self._rows(
            f"SELECT * FROM (SELECT OrganizationId AS org, ProjectId AS project, GenAiProvider AS provider, "
            f"GenAiRequestModel AS model, {_PRICED_MODEL} AS priced, toString(cityHash64({_PREFIX})) AS ph, "
            f"{_NS} AS ts, InputTokens AS t_in, {_PREFIX_TOKENS} AS pt, SpanId AS sid, TraceId AS tid, "
            f"count() OVER (PARTITION BY org, project, model, ph) AS sends "
            f"FROM {self.traces} WHERE {_where(where)} AND {_PREFIX_TOKENS} >= {low}) "
            f"WHERE sends >= 2 ORDER BY org, project, model, ph, ts",
            sql.params,
        )
        return [
            PrefixCall(
                str(r["org"]),
                str(r["project"]),
                str(r["provider"]),
                str(r["model"]),
                str(r["priced"]),
                str(r["ph"]),
                int(r["ts"]),
                int(r["t_in"]),
                int(r["pt"]),
                str(r["sid"]),
                str(r["tid"]),
            )
            for r in rows
        ]

    def cluster_models(
        self, tenant: Tenant, start_ns: int, end_ns: int, *, examples: int = 3
    ) -> list[CallGroup]:
        """Calls per (project, cluster, model), for the clusters served by two models or more; ``key`` is
        the cluster."""
        sql, where = self._scope(tenant, start_ns, end_ns)
        where.append(_HAS_PROMPT)
        sql.params["examples"] = examples
        rows = self._rows(
            f"SELECT * FROM (SELECT {_GROUP_COLUMNS}, toString({_CLUSTER}) AS cluster, "
            f"uniqExact(model) OVER (PARTITION BY org, project, cluster) AS models "
            f"FROM {self.traces} WHERE {_where(where)} GROUP BY org, project, model, cluster) "
            f"WHERE models >= 2 ORDER BY org, project, cluster, cost DESC",
            sql.params,
        )
        return [_group(r, str(r["cluster"])) for r in rows]

    def retry_calls(self, tenant: Tenant, start_ns: int, end_ns: int, *, window_ns: int) -> list[RetryCall]:
        """The failed calls that were retried: followed within ``window_ns`` by the next call of the same
        request (project, model, parameters and prompt), in time order per request."""
        sql, where = self._scope(tenant, start_ns, end_ns)
        where.append(_HAS_PROMPT)
        window = sql.param(window_ns, "Int64")
        rows = self._rows(
            f"SELECT * FROM (SELECT OrganizationId AS org, ProjectId AS project, GenAiProvider AS provider, "
            f"GenAiRequestModel AS model, {_PRICED_MODEL} AS priced, "
            f"concat(toString({_PARAMS_HASH}), ':', toString({_PROMPT_HASH})) AS rk, {_NS} AS ts, "
            f"StatusCode = 'Error' AS failed, InputTokens AS t_in, OutputTokens AS t_out, CacheReadTokens AS t_cr, "
            f"CacheWriteTokens AS t_cw, CostUsd AS cost, SpanId AS sid, TraceId AS tid, "
            f"leadInFrame(toNullable({_NS}), 1) OVER (PARTITION BY org, project, model, rk ORDER BY ts, sid "
            f"ROWS BETWEEN CURRENT ROW AND 1 FOLLOWING) AS next_ts "
            f"FROM {self.traces} WHERE {_where(where)} AND {_REQUEST_KEY} IN (SELECT {_REQUEST_KEY} "
            f"FROM {self.traces} WHERE {_where(where)} AND StatusCode = 'Error')) "
            f"WHERE failed AND next_ts IS NOT NULL AND next_ts - ts <= {window} "
            f"ORDER BY org, project, model, rk, ts",
            sql.params,
        )
        return [
            RetryCall(
                str(r["org"]),
                str(r["project"]),
                str(r["provider"]),
                str(r["model"]),
                str(r["priced"]),
                str(r["rk"]),
                int(r["ts"]),
                bool(r["failed"]),
                _tokens(r),
                _num(r["cost"]),
                str(r["sid"]),
                str(r["tid"]),
            )
            for r in rows
        ]

    def truncations(
        self, tenant: Tenant, start_ns: int, end_ns: int, *, examples: int = 3
    ) -> list[CallGroup]:
        """Calls that stopped at their output-token limit (``finish_reasons`` holds one of
        ``TRUNCATION_REASONS``), per project and model."""
        sql, where = self._scope(tenant, start_ns, end_ns)
        where.append(_TRUNCATED)
        sql.params["examples"] = examples
        rows = self._rows(
            f"SELECT {_GROUP_COLUMNS} FROM {self.traces} WHERE {_where(where)} "
            f"GROUP BY org, project, model ORDER BY cost DESC",
            sql.params,
        )
        return [_group(r, "truncated") for r in rows]

    def unused_outputs(
        self, tenant: Tenant, start_ns: int, end_ns: int, *, snippet_chars: int = 64, examples: int = 3
    ) -> list[CallGroup]:
        """Successful calls whose output no later step of their trace used, per project and model.

        A call C (with a captured text output, the first text part of its first output message) counts when
        its trace has a later model call (started at or after C ended) with captured input, and no span of
        the trace other than C that ended at or after C ended (later steps, and C's ancestors) holds the
        first ``snippet_chars`` characters of C's output in any attribute value, decoded or as written in
        a JSON document. Calls that returned tool calls first carry no text part and are never counted.
        """
        sql, where = self._scope(tenant, start_ns, end_ns)
        where += [_OK, f"{_OUT} != ''"]
        tenant_where = [*sql.tenant(tenant), *sql.time(start_ns - _HOUR_NS, end_ns + _HOUR_NS)]
        chars = sql.param(snippet_chars, "UInt32")
        sql.params["examples"] = examples
        calls = (
            f"SELECT TraceId AS tid, SpanId AS sid, OrganizationId AS org, ProjectId AS project, "
            f"GenAiProvider AS provider, GenAiRequestModel AS model, {_PRICED_MODEL} AS priced, "
            f"Timestamp AS ts, {_NS} + Duration AS end_ns, InputTokens AS t_in, OutputTokens AS t_out, "
            f"CacheReadTokens AS t_cr, CacheWriteTokens AS t_cw, CostUsd AS cost, "
            f"leftUTF8({_OUT_TEXT}, {chars}) AS snippet, "
            f"leftUTF8(substring({_OUT_RAW}, 2, greatest(0, length({_OUT_RAW}) - 2)), {chars}) AS raw "
            f"FROM {self.traces} WHERE {_where(where)} AND {_OUT_TEXT} != ''"
        )
        later = (
            f"SELECT TraceId AS tid, SpanId AS sid, {_NS} AS start_ns, {_NS} + Duration AS end_ns, "
            f"GenAiRequestModel != '' AND {_MSGS} != '' AS reads, "
            f"concat(arrayStringConcat(mapValues(SpanAttributes), '\\n'), '\\n', "
            f"arrayStringConcat(arrayMap(m -> arrayStringConcat(mapValues(m), '\\n'), Events.Attributes), '\\n'))"
            f" AS body FROM {self.traces} WHERE {_where(tenant_where)} AND TraceId IN (SELECT tid FROM c)"
        )
        unused = (
            "SELECT c.tid AS tid, c.sid AS sid, any(c.org) AS org, any(c.project) AS project, "
            "any(c.provider) AS provider, any(c.model) AS model, any(c.priced) AS priced, any(c.ts) AS u_ts, "
            "any(c.t_in) AS u_in, any(c.t_out) AS u_out, any(c.t_cr) AS u_cr, any(c.t_cw) AS u_cw, any(c.cost) AS u_cost, "
            "countIf(l.sid != c.sid AND l.start_ns >= c.end_ns AND l.reads) AS later_calls, "
            "countIf(l.sid != c.sid AND l.end_ns >= c.end_ns AND "
            "(position(l.body, c.snippet) > 0 OR (c.raw != '' AND position(l.body, c.raw) > 0))) AS uses "
            "FROM c INNER JOIN l ON c.tid = l.tid GROUP BY c.tid, c.sid "
            "HAVING later_calls > 0 AND uses = 0"
        )
        rows = self._rows(
            f"WITH c AS ({calls}), l AS ({later}) "
            f"SELECT org, project, any(provider) AS provider, model, any(priced) AS priced, count() AS calls, "
            f"0 AS errors, sum(u_in) AS t_in, sum(u_out) AS t_out, sum(u_cr) AS t_cr, sum(u_cw) AS t_cw, sum(u_cost) AS cost, "
            f"avg(u_out) AS avg_out, min(toUnixTimestamp64Nano(u_ts)) AS first_ns, argMin(u_in, u_ts) AS f_in, "
            f"argMin(u_out, u_ts) AS f_out, argMin(u_cr, u_ts) AS f_cr, argMin(u_cw, u_ts) AS f_cw, "
            f"argMin(u_cost, u_ts) AS f_cost, "
            f"arraySlice(arraySort(x -> x.1, groupArray((u_ts, sid, tid))), 1, {{examples:UInt32}}) AS ex "
            f"FROM ({unused}) GROUP BY org, project, model ORDER BY cost DESC",
            sql.params,
        )
        return [_group(r, "unused") for r in rows]
