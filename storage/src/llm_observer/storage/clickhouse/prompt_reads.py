"""The per-call reads prompt insights make: one row per model call with its figures and, on request, the
prompt identity and text that prompt versions are recovered from.

Prompt clusters and prompt versions group calls by something ClickHouse cannot compute (an embedding's
cluster, a masked template), so this read hands the calls over column by column (Arrow) and the grouping
happens in Python. User input reaches ClickHouse only as parameters; texts are cut in SQL to
``max_text_chars`` so that a long prompt costs the transfer of its head only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from llm_observer.kernel.errors import PermanentError
from llm_observer.storage.clickhouse.client import ClickHouseClient
from llm_observer.storage.clickhouse.queries import InvalidArgument, SpanFilter, Tenant
from llm_observer.storage.clickhouse.reads import MODEL_CALL, TraceStore, _Sql, _where
from llm_observer.storage.clickhouse.schema import TRACES_TABLE

__all__ = [
    "PROMPT_NAME_KEYS",
    "PROMPT_TEMPLATE_KEYS",
    "PROMPT_VERSION_KEYS",
    "PromptCalls",
    "PromptStore",
]

# Span attributes naming a prompt and its version, first non-empty wins. The GenAI conventions define
# neither yet; ``gen_ai.prompt.name`` / ``gen_ai.prompt.version`` are the spellings in use, and
# OpenInference instrumentations write ``llm.prompt_template.version`` (with the template itself).
PROMPT_NAME_KEYS = ("gen_ai.prompt.name",)
PROMPT_VERSION_KEYS = ("gen_ai.prompt.version", "llm.prompt_template.version")
PROMPT_TEMPLATE_KEYS = ("llm.prompt_template.template",)
# Where the prompt text is, best first (as the embedder reads it).
_PROMPT_TEXT_KEYS = ("gen_ai.input.messages", "gen_ai.prompt", "input.value")
_SYSTEM_KEY = "gen_ai.system_instructions"

MAX_CALLS = 1_000_000


@dataclass(frozen=True, slots=True)
class PromptCalls:
    """Model calls, one entry per call in every column (in start order).

    ``error`` is true for a call whose status is Error. ``prompt_name`` / ``prompt_version`` /
    ``template`` are the first non-empty of ``PROMPT_NAME_KEYS`` / ``PROMPT_VERSION_KEYS`` /
    ``PROMPT_TEMPLATE_KEYS`` ("" when absent); ``input_messages`` and ``system_instructions`` are only read
    (else empty) with ``with_text``, and only for calls that carry no prompt name. ``truncated`` is true
    when more calls matched than the ``limit`` asked for.
    """

    trace_id: tuple[str, ...]
    span_id: tuple[str, ...]
    start_ns: tuple[int, ...]
    duration_ns: tuple[int, ...]
    error: tuple[bool, ...]
    input_tokens: tuple[int, ...]
    output_tokens: tuple[int, ...]
    cost_usd: tuple[float, ...]
    model: tuple[str, ...]
    project_id: tuple[str, ...]
    prompt_name: tuple[str, ...]
    prompt_version: tuple[str, ...]
    template: tuple[str, ...]
    input_messages: tuple[str, ...]
    system_instructions: tuple[str, ...]
    truncated: bool = False

    def __len__(self) -> int:
        return len(self.span_id)


def _first(keys: tuple[str, ...]) -> str:
    expr = f"SpanAttributes['{keys[-1]}']"
    for key in reversed(keys[:-1]):
        expr = f"if(SpanAttributes['{key}'] != '', SpanAttributes['{key}'], {expr})"
    return expr


class PromptStore:
    """Prompt insights' reads over one ClickHouse database. Thread-safe; every call blocks."""

    def __init__(self, client: ClickHouseClient, database: str) -> None:
        self.client = client
        self.traces = f"`{database}`.{TRACES_TABLE}"

    @classmethod
    def beside(cls, store: TraceStore) -> PromptStore:
        """The prompt reads of the database ``store`` reads (same client, same table)."""
        prompts = cls.__new__(cls)
        prompts.client = store.client
        prompts.traces = store.traces
        return prompts

    def _arrow(self, sql: str, params: dict[str, Any]) -> pa.Table:
        """The result of ``sql``; an empty table when the traces table does not exist yet (nothing written)."""
        try:
            return self.client.arrow(sql, params)
        except PermanentError as exc:
            if "UNKNOWN_TABLE" in str(exc) or "UNKNOWN_DATABASE" in str(exc):
                return pa.table({})
            raise

    def calls(
        self,
        tenant: Tenant,
        start_ns: int,
        end_ns: int,
        spans: SpanFilter | None = None,
        *,
        with_text: bool = False,
        max_text_chars: int = 4000,
        limit: int = MAX_CALLS,
    ) -> PromptCalls:
        """The model calls of ``tenant`` that started in ``[start_ns, end_ns)`` and match ``spans``, oldest
        first, at most ``limit`` of them (the oldest ones)."""
        if not 1 <= limit <= MAX_CALLS:
            raise InvalidArgument(f"limit must be between 1 and {MAX_CALLS}")
        if max_text_chars < 1:
            raise InvalidArgument("max_text_chars must be at least 1")
        sql = _Sql()
        where = [
            *sql.tenant(tenant),
            *sql.time(start_ns, end_ns),
            MODEL_CALL,
            *sql.spans(spans or SpanFilter()),
        ]
        name = _first(PROMPT_NAME_KEYS)
        if with_text:
            chars = sql.param(max_text_chars, "UInt64")
            text = (
                f"if(prompt_name != '', '', substringUTF8({_first(_PROMPT_TEXT_KEYS)}, 1, {chars})) "
                "AS input_messages, "
                f"if(prompt_name != '', '', substringUTF8(SpanAttributes['{_SYSTEM_KEY}'], 1, {chars})) "
                "AS system_instructions, "
                f"substringUTF8({_first(PROMPT_TEMPLATE_KEYS)}, 1, {chars}) AS template"
            )
        else:
            text = "'' AS input_messages, '' AS system_instructions, '' AS template"
        table = self._arrow(
            f"""
SELECT TraceId AS trace_id, SpanId AS span_id, toInt64(toUnixTimestamp64Nano(Timestamp)) AS start_ns,
    toInt64(Duration) AS duration_ns, toUInt8(StatusCode = 'Error') AS error,
    toInt64(InputTokens) AS input_tokens, toInt64(OutputTokens) AS output_tokens, CostUsd AS cost_usd,
    toString(GenAiRequestModel) AS model, toString(ProjectId) AS project_id,
    {name} AS prompt_name, {_first(PROMPT_VERSION_KEYS)} AS prompt_version, {text}
FROM {self.traces} WHERE {_where(where)}
ORDER BY Timestamp, SpanId
LIMIT {sql.param(limit + 1, "UInt64")}
""",
            sql.params,
        )
        columns: dict[str, list[Any]] = {key: table.column(key).to_pylist() for key in table.column_names}
        truncated = table.num_rows > limit
        if truncated:
            columns = {key: values[:limit] for key, values in columns.items()}

        def strings(key: str) -> tuple[str, ...]:
            return tuple(value if isinstance(value, str) else "" for value in columns.get(key, ()))

        return PromptCalls(
            trace_id=strings("trace_id"),
            span_id=strings("span_id"),
            start_ns=tuple(int(v or 0) for v in columns.get("start_ns", ())),
            duration_ns=tuple(int(v or 0) for v in columns.get("duration_ns", ())),
            error=tuple(bool(v) for v in columns.get("error", ())),
            input_tokens=tuple(int(v or 0) for v in columns.get("input_tokens", ())),
            output_tokens=tuple(int(v or 0) for v in columns.get("output_tokens", ())),
            cost_usd=tuple(float(v or 0.0) for v in columns.get("cost_usd", ())),
            model=strings("model"),
            project_id=strings("project_id"),
            prompt_name=strings("prompt_name"),
            prompt_version=strings("prompt_version"),
            template=strings("template"),
            input_messages=strings("input_messages"),
            system_instructions=strings("system_instructions"),
            truncated=truncated,
        )
