"""Reads of conversations and users: a session (``gen_ai.conversation.id`` / ``session.id``) as its traces in
order, and one user's spend, errors and sessions.

Like every read in ``reads``, each call is confined to a tenant and a time window, and user input reaches
ClickHouse only as a parameter. A span carries the conversation and user ids of its own attributes (or its
resource's); a trace belongs to a session when any of its spans names it, and then all its spans count.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from llm_observer.semconv import attributes as attrs
from llm_observer.storage.clickhouse.queries import InvalidArgument, Tenant
from llm_observer.storage.clickhouse.reads import MODEL_CALL, TraceStore, _num, _Sql, _where

_INPUT = f"SpanAttributes['{attrs.GEN_AI_INPUT_MESSAGES}']"
_OUTPUT = f"SpanAttributes['{attrs.GEN_AI_OUTPUT_MESSAGES}']"


@dataclass(frozen=True, slots=True)
class SessionTurn:
    """One trace of a session: what was asked (the last user message of its first model call), what was
    answered (the output of its last model call), and its figures."""

    trace_id: str
    root_span_name: str
    start_ns: int
    end_ns: int
    span_count: int
    llm_call_count: int
    error_count: int
    input_tokens: int
    output_tokens: int
    cost_usd: float
    prompt: str
    answer: str
    user_id: str

    @property
    def duration_ns(self) -> int:
        return self.end_ns - self.start_ns


@dataclass(frozen=True, slots=True)
class SessionSummary:
    """A session's extent and totals (one row of a list of sessions)."""

    session_id: str
    user_id: str
    start_ns: int
    end_ns: int
    trace_count: int
    llm_call_count: int
    error_count: int
    input_tokens: int
    output_tokens: int
    cost_usd: float


@dataclass(frozen=True, slots=True)
class UserTotals:
    """What one user's spans add up to in a window."""

    user_id: str
    first_ns: int
    last_ns: int
    trace_count: int
    session_count: int
    llm_call_count: int
    error_count: int
    input_tokens: int
    output_tokens: int
    cost_usd: float
    models: tuple[str, ...]


class SessionReads:
    """Session and user reads over a ``TraceStore``'s tables. Blocking, like the store: run it in a thread."""

    def __init__(self, store: TraceStore) -> None:
        self.store = store

    def session_turns(
        self, tenant: Tenant, session_id: str, start_ns: int, end_ns: int, limit: int = 500
    ) -> tuple[SessionTurn, ...]:
        """The session's traces in the window, oldest first (at most ``limit``)."""
        if not session_id:
            raise InvalidArgument("session id must not be empty")
        sql = _Sql()
        scope = [*sql.tenant(tenant), *sql.time(start_ns, end_ns)]
        member = [*scope, f"ConversationId = {sql.param(session_id, 'String')}"]
        rows = self.store._rows(
            f"""
SELECT TraceId AS trace_id,
    toUnixTimestamp64Nano(min(Timestamp)) AS start_ns,
    max(toUnixTimestamp64Nano(Timestamp) + Duration) AS end_ns,
    count() AS span_count,
    countIf({MODEL_CALL}) AS llm_call_count,
    countIf(StatusCode = 'Error') AS error_count,
    sum(InputTokens) AS input_tokens,
    sum(OutputTokens) AS output_tokens,
    sum(CostUsd) AS cost_usd,
    argMin(SpanName, (ParentSpanId != '', Timestamp)) AS root_name,
    argMinIf({_INPUT}, Timestamp, {MODEL_CALL} AND {_INPUT} != '') AS first_input,
    argMaxIf({_OUTPUT}, toUnixTimestamp64Nano(Timestamp) + Duration, {MODEL_CALL} AND {_OUTPUT} != '')
        AS last_output,
    anyIf(UserId, UserId != '') AS user_id
FROM {self.store.traces}
WHERE {_where(scope)} AND TraceId IN (SELECT TraceId FROM {self.store.traces} WHERE {_where(member)})
GROUP BY TraceId
ORDER BY start_ns, trace_id
LIMIT {sql.param(max(1, limit), "UInt32")}
""",
            sql.params,
        )
        return tuple(
            SessionTurn(
                trace_id=row["trace_id"],
                root_span_name=row["root_name"],
                start_ns=int(row["start_ns"]),
                end_ns=int(row["end_ns"]),
                span_count=int(row["span_count"]),
                llm_call_count=int(row["llm_call_count"]),
                error_count=int(row["error_count"]),
                input_tokens=int(row["input_tokens"]),
                output_tokens=int(row["output_tokens"]),
                cost_usd=_num(row["cost_usd"]),
                prompt=last_text(row["first_input"], "user"),
                answer=last_text(row["last_output"], None),
                user_id=row["user_id"],
            )
            for row in rows
        )

    def sessions(
        self, tenant: Tenant, start_ns: int, end_ns: int, user_id: str | None = None, limit: int = 100
    ) -> tuple[SessionSummary, ...]:
        """The sessions with spans in the window (of one user, when given), most recently active first."""
        sql = _Sql()
        where = [*sql.tenant(tenant), *sql.time(start_ns, end_ns), "ConversationId != ''"]
        if user_id:
            where.append(f"UserId = {sql.param(user_id, 'String')}")
        rows = self.store._rows(
            f"""
SELECT ConversationId AS session_id,
    anyIf(UserId, UserId != '') AS user_id,
    toUnixTimestamp64Nano(min(Timestamp)) AS start_ns,
    max(toUnixTimestamp64Nano(Timestamp) + Duration) AS end_ns,
    uniqExact(TraceId) AS trace_count,
    countIf({MODEL_CALL}) AS llm_call_count,
    countIf(StatusCode = 'Error') AS error_count,
    sum(InputTokens) AS input_tokens,
    sum(OutputTokens) AS output_tokens,
    sum(CostUsd) AS cost_usd
FROM {self.store.traces}
WHERE {_where(where)}
GROUP BY ConversationId
ORDER BY end_ns DESC, session_id
LIMIT {sql.param(max(1, limit), "UInt32")}
""",
            sql.params,
        )
        return tuple(
            SessionSummary(
                session_id=row["session_id"],
                user_id=row["user_id"],
                start_ns=int(row["start_ns"]),
                end_ns=int(row["end_ns"]),
                trace_count=int(row["trace_count"]),
                llm_call_count=int(row["llm_call_count"]),
                error_count=int(row["error_count"]),
                input_tokens=int(row["input_tokens"]),
                output_tokens=int(row["output_tokens"]),
                cost_usd=_num(row["cost_usd"]),
            )
            for row in rows
        )

    def user_totals(self, tenant: Tenant, user_id: str, start_ns: int, end_ns: int) -> UserTotals | None:
        """The user's totals over the spans that name them in the window; None when there are none."""
        if not user_id:
            raise InvalidArgument("user id must not be empty")
        sql = _Sql()
        where = [*sql.tenant(tenant), *sql.time(start_ns, end_ns), f"UserId = {sql.param(user_id, 'String')}"]
        rows = self.store._rows(
            f"""
SELECT count() AS span_count,
    toUnixTimestamp64Nano(min(Timestamp)) AS first_ns,
    toUnixTimestamp64Nano(max(Timestamp)) AS last_ns,
    uniqExact(TraceId) AS trace_count,
    uniqExactIf(ConversationId, ConversationId != '') AS session_count,
    countIf({MODEL_CALL}) AS llm_call_count,
    countIf(StatusCode = 'Error') AS error_count,
    sum(InputTokens) AS input_tokens,
    sum(OutputTokens) AS output_tokens,
    sum(CostUsd) AS cost_usd,
    arraySort(groupUniqArrayIf(GenAiRequestModel, {MODEL_CALL})) AS models
FROM {self.store.traces}
WHERE {_where(where)}
""",
            sql.params,
        )
        if not rows or not int(rows[0]["span_count"]):
            return None
        row = rows[0]
        return UserTotals(
            user_id=user_id,
            first_ns=int(row["first_ns"]),
            last_ns=int(row["last_ns"]),
            trace_count=int(row["trace_count"]),
            session_count=int(row["session_count"]),
            llm_call_count=int(row["llm_call_count"]),
            error_count=int(row["error_count"]),
            input_tokens=int(row["input_tokens"]),
            output_tokens=int(row["output_tokens"]),
            cost_usd=_num(row["cost_usd"]),
            models=tuple(row["models"]),
        )


def last_text(raw: str, role: str | None) -> str:
    """The text of the last message (of ``role``, when given) in a ``gen_ai.*.messages`` JSON value: the
    words a person typed or read in that turn, without the system prompt and history before them."""
    if not raw:
        return ""
    try:
        messages = json.loads(raw)
    except ValueError:
        return raw
    if not isinstance(messages, list):
        return raw
    for message in reversed(messages):
        if not isinstance(message, Mapping) or (role is not None and message.get("role") != role):
            continue
        text = _parts_text(message)
        if text:
            return text
    return ""


def _parts_text(message: Mapping[str, Any]) -> str:
    parts = message.get("parts")
    if isinstance(parts, list):
        texts = [
            part["content"]
            for part in parts
            if isinstance(part, Mapping) and isinstance(part.get("content"), str)
        ]
        return "\n".join(texts)
    content = message.get("content")
    return content if isinstance(content, str) else ""
