"""Times, and the REST API's JSON documents of the typed rows storage returns.

The documents' keys, their order and their value types are part of the public API (clients and the CLI parse
them; ``tests/query/test_shapes.py`` pins them): presenting rows differently must not change them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from llm_observer.semconv import attributes as attrs
from llm_observer.storage.clickhouse.reads import (
    CallCosts,
    CallStats,
    CostBreakdown,
    InvalidArgument,
    MetricsSummary,
    SeriesPoint,
    SpanRow,
    TracePage,
    TraceSummary,
    check_time_ns,
)
from llm_observer.storage.clickhouse.signal_reads import (
    MAX_SERIES_POINTS,
    LogPage,
    LogRow,
    MetricInfo,
    MetricSeriesResult,
)


def rfc3339(ns: int) -> str:
    """``2026-01-02T03:04:05.123456789Z`` (UTC, nanoseconds kept)."""
    seconds, frac = divmod(int(ns), 1_000_000_000)
    base = datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{base}.{frac:09d}Z"


def finite(value: float | None, name: str, minimum: float = 0.0) -> float | None:
    """``value`` when it is a finite number of at least ``minimum``; ``InvalidArgument`` naming ``name``."""
    if value is not None and not (math.isfinite(value) and value >= minimum):
        raise InvalidArgument(f"{name} must be a finite number of at least {minimum:g}, got {value!r}")
    return value


def parse_time(value: str | None, name: str) -> int | None:
    """Unix nanoseconds of an RFC 3339 time (a zone is required; ``Z`` allowed) that storage can hold."""
    if value is None or value == "":
        return None
    text = value.strip()
    try:
        # Python keeps microseconds: cut longer fractions rather than refuse them.
        head, dot, rest = text.partition(".")
        if dot:
            digits = len(rest) - len(rest.lstrip("0123456789"))
            frac, zone = rest[:digits], rest[digits:]
            nanos = int((frac + "000000000")[:9])
            moment = datetime.fromisoformat(head + zone.replace("z", "Z"))
        else:
            nanos = 0
            moment = datetime.fromisoformat(text.replace("z", "Z"))
    except (ValueError, OverflowError) as exc:
        raise InvalidArgument(f"{name} must be an RFC 3339 time, got {value!r}") from exc
    if moment.tzinfo is None:
        raise InvalidArgument(f"{name} must carry a time zone (e.g. 'Z'), got {value!r}")
    delta = moment - _EPOCH
    seconds = delta.days * 86_400 + delta.seconds
    return check_time_ns(seconds * 1_000_000_000 + delta.microseconds * 1000 + nanos, name)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# Storage keeps every attribute value as a string (as the OpenTelemetry ClickHouse exporter does); every API
# gives back the type the conventions give the attribute.
_INT_PREFIXES = (
    "gen_ai.usage.",
    "gen_ai.request.max_tokens",
    "gen_ai.request.top_k",
    "gen_ai.request.seed",
    "gen_ai.request.choice.count",
    "http.status_code",
    "http.response.status_code",
    "server.port",
    "process.pid",
    "llm_observer.subtree.input_tokens",
    "llm_observer.subtree.output_tokens",
)
_FLOAT_PREFIXES = (
    "llm_observer.cost.",
    "llm_observer.subtree.cost_usd",
    "gen_ai.request.temperature",
    "gen_ai.request.top_p",
    "gen_ai.request.frequency_penalty",
    "gen_ai.request.presence_penalty",
    "gen_ai.response.time_to_first_chunk",
)
_BOOL_SUFFIXES = (".stream", ".is_stream", "error")
_ARRAY_KEYS = frozenset(
    {
        attrs.GEN_AI_RESPONSE_FINISH_REASONS,
        attrs.GEN_AI_REQUEST_STOP_SEQUENCES,
        "gen_ai.request.encoding_formats",
    }
)


def typed_value(key: str, value: str) -> Any:
    """The stored string ``value`` of attribute ``key`` as the type the conventions give it: an int, a
    float, a bool or a list (a JSON array); a value that does not parse as that type stays a string."""
    if key.startswith(_INT_PREFIXES):
        try:
            return int(value)
        except ValueError:
            return value
    if key.startswith(_FLOAT_PREFIXES):
        try:
            number = float(value)
        except ValueError:
            return value
        return number if math.isfinite(number) else value
    if value in ("true", "false") and key.endswith(_BOOL_SUFFIXES):
        return value == "true"
    if key in _ARRAY_KEYS and value.startswith("["):
        try:
            items = json.loads(value)
        except ValueError:
            return value
        return items if isinstance(items, list) else value
    return value


def typed_attributes(attributes: Mapping[str, str]) -> dict[str, Any]:
    """Every attribute with its typed value (``typed_value``), in key order."""
    return {key: typed_value(key, value) for key, value in sorted(attributes.items())}


def trace_summary(trace: TraceSummary) -> dict[str, Any]:
    return {
        "trace_id": trace.trace_id,
        "root_span_name": trace.root_span_name,
        "service_name": trace.service_name,
        "organization_id": trace.organization_id,
        "project_id": trace.project_id,
        "start_time": rfc3339(trace.start_ns),
        "duration_ms": trace.duration_ns / 1e6,
        "span_count": trace.span_count,
        "error_count": trace.error_count,
        "status": trace.status,
        "input_tokens": trace.input_tokens,
        "output_tokens": trace.output_tokens,
        "cost_usd": trace.cost_usd,
        "models": list(trace.models),
        "llm_call_count": trace.llm_call_count,
    }


def trace_page(page: TracePage) -> dict[str, Any]:
    return {"traces": [trace_summary(trace) for trace in page.traces], "next_cursor": page.next_cursor}


def span_document(span: SpanRow) -> dict[str, Any]:
    return {
        "trace_id": span.trace_id,
        "span_id": span.span_id,
        "parent_span_id": span.parent_span_id or None,
        "name": span.name,
        "kind": span.kind,
        "start_time": rfc3339(span.start_ns),
        "end_time": rfc3339(span.end_ns),
        "duration_ms": span.duration_ns / 1e6,
        "status": span.status,
        "status_message": span.status_message,
        "service_name": span.service_name,
        "organization_id": span.organization_id,
        "project_id": span.project_id,
        "operation": span.operation or None,
        "provider": span.provider or None,
        "request_model": span.request_model or None,
        "response_model": span.response_model or None,
        "input_tokens": span.input_tokens,
        "output_tokens": span.output_tokens,
        "cache_read_tokens": span.cache_read_tokens,
        "cache_write_tokens": span.cache_write_tokens,
        "reasoning_tokens": span.reasoning_tokens,
        "cost_usd": span.cost_usd,
        "input": span.input_text or None,
        "output": span.output_text or None,
        "attributes": typed_attributes(span.attributes),
        "resource": typed_attributes(span.resource),
        "events": [
            {
                "time": rfc3339(event.time_ns),
                "name": event.name,
                "attributes": typed_attributes(event.attributes),
            }
            for event in span.events
        ],
        "links": [{"trace_id": link.trace_id, "span_id": link.span_id} for link in span.links],
    }


def stats_document(stats: CallStats) -> dict[str, Any]:
    return {
        "request_count": stats.request_count,
        "error_count": stats.error_count,
        "error_rate": stats.error_rate,
        "latency_ms": {"p50": stats.latency_p50_ms, "p95": stats.latency_p95_ms, "p99": stats.latency_p99_ms},
        "input_tokens": stats.input_tokens,
        "output_tokens": stats.output_tokens,
        "cache_read_tokens": stats.cache_read_tokens,
        "cache_write_tokens": stats.cache_write_tokens,
        "reasoning_tokens": stats.reasoning_tokens,
        "cost_usd": stats.cost_usd,
    }


def summary_document(summary: MetricsSummary, start_ns: int, end_ns: int) -> dict[str, Any]:
    """The totals, then ``groups`` (a list) and ``by_<group_by>`` (the same groups by key), then the series."""
    doc = stats_document(summary.total)
    groups = [
        {"key": group.key, **stats_document(group.stats), **_series_document(group.series)}
        for group in summary.groups
    ]
    doc.update(
        start_time=rfc3339(start_ns), end_time=rfc3339(end_ns), group_by=summary.group_by, groups=groups
    )
    doc[f"by_{summary.group_by}"] = {group["key"]: group for group in groups}
    doc.update(_series_document(summary.series))
    return doc


def _series_document(series: Sequence[SeriesPoint] | None) -> dict[str, Any]:
    if series is None:
        return {}
    return {"series": [{"time": rfc3339(point.time_ns), **stats_document(point.stats)} for point in series]}


def costs_document(costs: CallCosts) -> dict[str, Any]:
    return {
        "request_count": costs.request_count,
        "input_tokens": costs.input_tokens,
        "output_tokens": costs.output_tokens,
        "cache_read_tokens": costs.cache_read_tokens,
        "cache_write_tokens": costs.cache_write_tokens,
        "cost_usd": costs.cost_usd,
        "input_cost_usd": costs.input_cost_usd,
        "output_cost_usd": costs.output_cost_usd,
        "cache_read_cost_usd": costs.cache_read_cost_usd,
        "cache_write_cost_usd": costs.cache_write_cost_usd,
    }


def cost_document(breakdown: CostBreakdown, start_ns: int, end_ns: int) -> dict[str, Any]:
    return {
        **costs_document(breakdown.total),
        "group_by": breakdown.group_by,
        "groups": [{"key": group.key, **costs_document(group.costs)} for group in breakdown.groups],
        "start_time": rfc3339(start_ns),
        "end_time": rfc3339(end_ns),
    }


# --- logs and metrics ------------------------------------------------------------------------------

_STEP_UNITS = {"s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9, "d": 86_400 * 10**9}
# A series without a step gets about this many points.
DEFAULT_SERIES_POINTS = 120


def parse_step(value: str | None, start_ns: int, end_ns: int, name: str = "step") -> int:
    """Nanoseconds of a step given as seconds (``60``, ``0.5``) or a duration (``30s``, ``5m``, ``1h``,
    ``1d``), at least one second; without one, whole seconds giving about ``DEFAULT_SERIES_POINTS``."""
    if value is None or value.strip() == "":
        seconds = -(-(end_ns - start_ns) // (DEFAULT_SERIES_POINTS * 10**9))
        wanted = max(1, seconds) * 10**9
        # At least what keeps the series within the points limit (a window of decades).
        return max(wanted, -(-(end_ns - start_ns) // MAX_SERIES_POINTS))
    text = value.strip().lower()
    unit = _STEP_UNITS["s"]
    if text[-1:] in _STEP_UNITS:
        unit, text = _STEP_UNITS[text[-1]], text[:-1]
    try:
        number = float(text)
    except ValueError as exc:
        raise InvalidArgument(
            f"{name} must be seconds or a duration such as 30s, 5m, 1h; got {value!r}"
        ) from exc
    if not math.isfinite(number) or number * unit < 10**9 or number * unit > 2**62:
        raise InvalidArgument(f"{name} must be at least one second, got {value!r}")
    return int(number * unit)


def log_document(log: LogRow) -> dict[str, Any]:
    return {
        "time": rfc3339(log.time_ns),
        "trace_id": log.trace_id or None,
        "span_id": log.span_id or None,
        "trace_flags": log.trace_flags,
        "severity_text": log.severity_text,
        "severity_number": log.severity_number,
        "service_name": log.service_name,
        "body": log.body,
        "event_name": log.event_name or None,
        "organization_id": log.organization_id,
        "project_id": log.project_id,
        "scope_name": log.scope_name,
        "scope_version": log.scope_version,
        "attributes": typed_attributes(log.attributes),
        "resource": typed_attributes(log.resource),
    }


def log_page(page: LogPage) -> dict[str, Any]:
    return {"logs": [log_document(log) for log in page.logs], "next_cursor": page.next_cursor}


def metric_name_document(info: MetricInfo) -> dict[str, Any]:
    return {
        "name": info.name,
        "kind": info.kind,
        "unit": info.unit,
        "description": info.description,
        "points": info.points,
        "monotonic": info.monotonic,
        "temporality": info.temporality,
    }


def metric_series_document(result: MetricSeriesResult, start_ns: int, end_ns: int) -> dict[str, Any]:
    """The series, each with its ``labels`` (``group_by`` key to value) and points ``{time, value}``, where
    ``time`` starts the step the value aggregates and ``value`` is null for a step without observations."""
    return {
        "name": result.name,
        "kind": result.kind,
        "unit": result.unit,
        "agg": result.agg,
        "step_seconds": result.step_ns / 1e9,
        "start_time": rfc3339(start_ns),
        "end_time": rfc3339(end_ns),
        "group_by": list(result.group_by),
        "series": [
            {
                "labels": dict(series.labels),
                "points": [{"time": rfc3339(p.time_ns), "value": p.value} for p in series.points],
            }
            for series in result.series
        ],
    }
