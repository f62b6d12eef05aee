"""What the reads return: immutable, typed rows with times in Unix nanoseconds.

The query service's front ends (REST, Jaeger, gRPC) present these; none of them reads SQL column names.
Rows are frozen so that one cached result can be shared by concurrent requests.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

from llm_observer.semconv import attributes as attrs


@dataclass(frozen=True, slots=True)
class SpanEvent:
    time_ns: int
    name: str
    attributes: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class SpanLink:
    trace_id: str
    span_id: str


@dataclass(frozen=True, slots=True)
class SpanRow:
    """One stored span. Ids are lower-case hex; an absent parent, model or provider is ``""``."""

    trace_id: str
    span_id: str
    parent_span_id: str
    trace_state: str
    name: str
    kind: str  # Unspecified | Internal | Server | Client | Producer | Consumer
    service_name: str
    start_ns: int
    duration_ns: int
    status: str  # Unset | Ok | Error
    status_message: str
    organization_id: str
    project_id: str
    operation: str
    provider: str
    request_model: str
    response_model: str
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    reasoning_tokens: int
    cost_usd: float
    scope_name: str
    scope_version: str
    attributes: Mapping[str, str]
    resource: Mapping[str, str]
    events: tuple[SpanEvent, ...]
    links: tuple[SpanLink, ...]

    @property
    def end_ns(self) -> int:
        return self.start_ns + self.duration_ns

    @property
    def input_text(self) -> str:
        """The prompt as readable text (``""`` when content was not captured)."""
        return message_text(self.attributes.get(attrs.GEN_AI_INPUT_MESSAGES, ""))

    @property
    def output_text(self) -> str:
        """The answer as readable text (``""`` when content was not captured)."""
        return message_text(self.attributes.get(attrs.GEN_AI_OUTPUT_MESSAGES, ""))


@dataclass(frozen=True, slots=True)
class TraceSummary:
    """One trace in a search result: its root, extent and totals over its spans."""

    trace_id: str
    root_span_name: str
    service_name: str  # the root span's service
    organization_id: str
    project_id: str
    start_ns: int
    end_ns: int
    span_count: int
    error_count: int
    input_tokens: int
    output_tokens: int
    cost_usd: float
    models: tuple[str, ...]  # requested models, sorted
    unset_count: int = 0  # spans whose status is Unset
    llm_call_count: int = 0  # spans naming the model they asked for

    @property
    def duration_ns(self) -> int:
        return self.end_ns - self.start_ns

    @property
    def status(self) -> str:
        """``Error`` when any span failed, ``Unset`` when no span has a status, else ``Ok`` (as the
        ``status`` filter of a trace search reads them)."""
        if self.error_count:
            return "Error"
        return "Unset" if self.unset_count >= self.span_count else "Ok"


@dataclass(frozen=True, slots=True)
class TracePage:
    """One page of a trace search, newest first; ``next_cursor`` is None on the last page."""

    traces: tuple[TraceSummary, ...]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class CallStats:
    """Figures over a set of model calls (spans naming the model they asked for)."""

    request_count: int = 0
    error_count: int = 0
    latency_p50_ms: float = 0.0
    latency_p95_ms: float = 0.0
    latency_p99_ms: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    cost_usd: float = 0.0

    @property
    def error_rate(self) -> float:
        return self.error_count / self.request_count if self.request_count else 0.0


@dataclass(frozen=True, slots=True)
class GroupStats:
    key: str
    stats: CallStats
    series: tuple[SeriesPoint, ...] | None = None  # the group's own time series, when asked for


@dataclass(frozen=True, slots=True)
class SeriesPoint:
    time_ns: int  # the start of the step
    stats: CallStats


@dataclass(frozen=True, slots=True)
class MetricsSummary:
    """Totals, per-group figures (most expensive first) and, when a step was asked for, a time series."""

    group_by: str
    total: CallStats
    groups: tuple[GroupStats, ...]
    series: tuple[SeriesPoint, ...] | None = None


@dataclass(frozen=True, slots=True)
class CallCosts:
    """Cost in USD over a set of model calls, split into its parts, with the tokens it paid for."""

    request_count: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cost_usd: float = 0.0
    input_cost_usd: float = 0.0
    output_cost_usd: float = 0.0
    cache_read_cost_usd: float = 0.0
    cache_write_cost_usd: float = 0.0


@dataclass(frozen=True, slots=True)
class GroupCosts:
    key: str
    costs: CallCosts


@dataclass(frozen=True, slots=True)
class CostBreakdown:
    group_by: str
    total: CallCosts
    groups: tuple[GroupCosts, ...]  # most expensive first


@dataclass(frozen=True, slots=True)
class ServiceOperation:
    """A span name seen in a service, with its span kind."""

    name: str
    kind: str


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
