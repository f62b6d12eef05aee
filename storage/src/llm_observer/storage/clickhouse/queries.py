"""What a read asks for: the tenant it is confined to, span conditions, trace searches, and their cursors.

Every type here is frozen and hashable, so a whole request can key a result cache.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from dataclasses import dataclass, field

_TRACE_ID = re.compile(r"^[0-9a-f]{32}$")
_SPAN_ID = re.compile(r"^[0-9a-f]{16}$")

# The times storage can hold and compare: DateTime64(9), from 1900-01-01 to the end of signed 64-bit
# nanoseconds (2262-04-11T23:47:16.854775807Z).
MIN_TIME_NS = -2_208_988_800 * 10**9
MAX_TIME_NS = 2**63 - 1
TIME_RANGE = "1900-01-01T00:00:00Z and 2262-04-11T23:47:16Z"


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
    model: str | None = None  # the requested or the responding model
    provider: str | None = None
    operation: str | None = None
    span_name: str | None = None
    user_id: str | None = None
    team_id: str | None = None
    conversation_id: str | None = None
    attributes: tuple[tuple[str, str], ...] = ()  # equality on a span or resource attribute
    text: str | None = None  # contained in a prompt, answer, span name or error message


# What a trace list can be ordered by (``TraceQuery.order_by``): every one is computed by ClickHouse over the
# whole range before the page is cut, so a sorted list pages through millions of traces like the default one.
TRACE_ORDERS = (
    "start",
    "duration",
    "cost",
    "tokens",
    "input_tokens",
    "output_tokens",
    "spans",
    "llm_calls",
    "errors",
)


@dataclass(frozen=True, slots=True)
class TraceQuery:
    """A trace search over ``[start_ns, end_ns)``, ``limit`` per page, ordered by ``order_by`` (one of
    ``TRACE_ORDERS``; ties broken by trace id), newest / largest first unless ``ascending``."""

    start_ns: int
    end_ns: int
    spans: SpanFilter = field(default_factory=SpanFilter)
    status: str | None = None  # ok | error | unset (for a trace: error = any span failed)
    min_duration_ms: float | None = None
    max_duration_ms: float | None = None
    min_cost_usd: float | None = None
    limit: int = 50
    cursor: str | None = None
    order_by: str = "start"
    ascending: bool = False


@dataclass(frozen=True, slots=True)
class TraceIdQuery:
    """The newest traces having one span that meets every condition (Jaeger's search)."""

    start_ns: int
    end_ns: int
    spans: SpanFilter = field(default_factory=SpanFilter)
    min_duration_ns: int | None = None
    max_duration_ns: int | None = None
    limit: int = 20
    error: bool | None = None  # True: the span failed; False: it did not
    span_kind: str | None = None  # Internal | Server | Client | Producer | Consumer


def check_time_ns(value: int, name: str) -> int:
    """``value`` (Unix nanoseconds) when storage can hold it; ``InvalidArgument`` naming ``name`` otherwise."""
    if not MIN_TIME_NS <= value <= MAX_TIME_NS:
        raise InvalidArgument(f"{name} must be between {TIME_RANGE}")
    return value


def normalize_trace_id(value: str) -> str:
    """Lower-case 32-hex trace id; accepts 16-hex (64-bit Jaeger ids, left-padded)."""
    tid = value.strip().lower()
    if len(tid) == 16 and _SPAN_ID.match(tid):
        tid = tid.rjust(32, "0")
    if not _TRACE_ID.match(tid):
        raise InvalidArgument("trace_id must be 32 hex characters")
    return tid


def encode_cursor(start_ns: int, trace_id: str) -> str:
    """The cursor of the page after the trace ``trace_id`` starting at ``start_ns``."""
    raw = json.dumps([start_ns, trace_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, str]:
    """``(start_ns, trace_id)`` of a cursor made by ``encode_cursor``; ``InvalidArgument`` otherwise."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        start_ns, trace_id = json.loads(raw)
        if (
            type(start_ns) is not int
            or not MIN_TIME_NS <= start_ns <= MAX_TIME_NS
            or not isinstance(trace_id, str)
            or not _TRACE_ID.match(trace_id)
        ):
            raise ValueError("bad cursor contents")
    except (ValueError, TypeError, RecursionError, binascii.Error) as exc:
        raise InvalidArgument("cursor is not one this API returned") from exc
    return start_ns, trace_id


def encode_sort_cursor(order_by: str, ascending: bool, value: int | float, trace_id: str) -> str:
    """The cursor of the page after ``trace_id`` in a list ordered by ``order_by`` (whose value for that trace
    is ``value``). The default order (``start``, newest first) keeps the cursor ``encode_cursor`` makes."""
    if order_by == "start" and not ascending:
        return encode_cursor(int(value), trace_id)
    raw = json.dumps([order_by, "asc" if ascending else "desc", value, trace_id], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode("ascii").rstrip("=")


def decode_sort_cursor(cursor: str, order_by: str, ascending: bool) -> tuple[int | float, str]:
    """``(value, trace_id)`` of a cursor ``encode_sort_cursor`` made for the same order; ``InvalidArgument``
    for any other cursor (one from a list in another order included: its position means nothing here)."""
    if order_by == "start" and not ascending:
        return decode_cursor(cursor)
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        key, direction, value, trace_id = json.loads(raw)
        if (
            key != order_by
            or direction != ("asc" if ascending else "desc")
            or type(value) not in (int, float)
            or (type(value) is float and not math.isfinite(value))
            or (type(value) is int and not -(2**63) <= value < 2**63)
            or not isinstance(trace_id, str)
            or not _TRACE_ID.match(trace_id)
        ):
            raise ValueError("bad cursor contents")
    except (ValueError, TypeError, RecursionError, binascii.Error) as exc:
        raise InvalidArgument("cursor is not one this API returned for this order") from exc
    return value, trace_id
