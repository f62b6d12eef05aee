"""Times and span / trace documents as the REST API shows them (INTERFACES.md)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from llm_observer.semconv import attributes as attrs
from llm_observer.storage.clickhouse.reads import InvalidArgument, message_text


def rfc3339(ns: int) -> str:
    """``2026-01-02T03:04:05.123456789Z`` (UTC, nanoseconds kept)."""
    seconds, frac = divmod(int(ns), 1_000_000_000)
    base = datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{base}.{frac:09d}Z"


def parse_time(value: str | None, name: str) -> int | None:
    """Unix nanoseconds of an RFC 3339 time (a zone is required; ``Z`` allowed)."""
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
    except ValueError as exc:
        raise InvalidArgument(f"{name} must be an RFC 3339 time, got {value!r}") from exc
    if moment.tzinfo is None:
        raise InvalidArgument(f"{name} must carry a time zone (e.g. 'Z'), got {value!r}")
    return int(moment.timestamp()) * 1_000_000_000 + nanos


def trace_summary(row: dict[str, Any]) -> dict[str, Any]:
    start, end = int(row["start_ns"]), int(row["end_ns"])
    return {
        "trace_id": row["trace_id"],
        "root_span_name": row["root_name"],
        "service_name": row["service_name"],
        "organization_id": row["organization_id"],
        "project_id": row["project_id"],
        "start_time": rfc3339(start),
        "duration_ms": (end - start) / 1e6,
        "span_count": int(row["span_count"]),
        "error_count": int(row["error_count"]),
        "status": row["status"],
        "input_tokens": int(row["input_tokens"]),
        "output_tokens": int(row["output_tokens"]),
        "cost_usd": float(row["cost_usd"]),
        "models": list(row["models"]),
    }


def span_document(row: dict[str, Any]) -> dict[str, Any]:
    attributes: dict[str, str] = row["attributes"]
    return {
        "trace_id": row["trace_id"],
        "span_id": row["span_id"],
        "parent_span_id": row["parent_span_id"] or None,
        "name": row["name"],
        "kind": row["kind"],
        "start_time": rfc3339(row["start_ns"]),
        "end_time": rfc3339(row["end_ns"]),
        "duration_ms": int(row["duration_ns"]) / 1e6,
        "status": row["status"],
        "status_message": row["status_message"],
        "service_name": row["service_name"],
        "organization_id": row["organization_id"],
        "project_id": row["project_id"],
        "operation": row["operation"] or None,
        "provider": row["provider"] or None,
        "request_model": row["request_model"] or None,
        "response_model": row["response_model"] or None,
        "input_tokens": int(row["input_tokens"]),
        "output_tokens": int(row["output_tokens"]),
        "cache_read_tokens": int(row["cache_read_tokens"]),
        "cache_write_tokens": int(row["cache_write_tokens"]),
        "reasoning_tokens": int(row["reasoning_tokens"]),
        "cost_usd": float(row["cost_usd"]),
        "input": message_text(attributes.get(attrs.GEN_AI_INPUT_MESSAGES, "")) or None,
        "output": message_text(attributes.get(attrs.GEN_AI_OUTPUT_MESSAGES, "")) or None,
        "attributes": attributes,
        "resource": row["resource"],
        "events": [
            {"time": rfc3339(event["time_ns"]), "name": event["name"], "attributes": event["attributes"]}
            for event in row["events"]
        ],
        "links": row["links"],
    }


def metrics_document(row: dict[str, Any]) -> dict[str, Any]:
    out = {
        "request_count": int(row["request_count"]),
        "error_count": int(row["error_count"]),
        "error_rate": float(row["error_rate"]),
        "latency_ms": row["latency_ms"],
        "input_tokens": int(row.get("input_tokens") or 0),
        "output_tokens": int(row.get("output_tokens") or 0),
        "cache_read_tokens": int(row.get("cache_read_tokens") or 0),
        "cache_write_tokens": int(row.get("cache_write_tokens") or 0),
        "reasoning_tokens": int(row.get("reasoning_tokens") or 0),
        "cost_usd": float(row["cost_usd"]),
    }
    if "key" in row:
        out = {"key": row["key"], **out}
    if "time_ns" in row:
        out = {"time": rfc3339(int(row["time_ns"])), **out}
    return out
