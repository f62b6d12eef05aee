"""The measures rules watch, computed from a window's call statistics (``CallWindow``), and how each is
shown (its unit).

A measure is *additive* when it sums over calls (counts, tokens, spend): a window without calls has the
value 0 there. The others (rates and percentiles) have no value without calls.
"""

from __future__ import annotations

from typing import Literal

from llm_observer.query.alerting.config import Measure
from llm_observer.storage.clickhouse.alert_reads import CallWindow

Unit = Literal["count", "per_second", "ratio", "ms", "usd", "usd_per_hour", "tokens", "burn", "number"]

UNITS: dict[str, Unit] = {
    "request_count": "count",
    "request_rate": "per_second",
    "error_count": "count",
    "error_rate": "ratio",
    "latency_p50": "ms",
    "latency_p95": "ms",
    "latency_p99": "ms",
    "ttft_p95": "ms",
    "tokens_per_request": "tokens",
    "input_tokens": "tokens",
    "output_tokens": "tokens",
    "cost_usd": "usd",
    "cost_per_hour": "usd_per_hour",
}

ADDITIVE = frozenset(
    {
        "request_count",
        "request_rate",
        "error_count",
        "input_tokens",
        "output_tokens",
        "cost_usd",
        "cost_per_hour",
    }
)

LATENCY = frozenset({"latency_p50", "latency_p95", "latency_p99"})


def needs_quantiles(measure: Measure) -> bool:
    return measure in LATENCY


def needs_ttft(measure: Measure) -> bool:
    return measure == "ttft_p95"


def value_of(measure: Measure, window: CallWindow | None, window_s: float) -> float | None:
    """The measure over ``window`` (``window_s`` long); None when it has no value there (no calls, or no
    streamed calls for TTFT). ``window`` None means no calls: 0 for additive measures."""
    if window is None or window.request_count == 0:
        return 0.0 if measure in ADDITIVE else None
    n = window.request_count
    match measure:
        case "request_count":
            return float(n)
        case "request_rate":
            return n / window_s
        case "error_count":
            return float(window.error_count)
        case "error_rate":
            return window.error_count / n
        case "latency_p50":
            return window.latency_p50_ms
        case "latency_p95":
            return window.latency_p95_ms
        case "latency_p99":
            return window.latency_p99_ms
        case "ttft_p95":
            return window.ttft_p95_ms if window.ttft_count else None
        case "tokens_per_request":
            return (window.input_tokens + window.output_tokens) / n
        case "input_tokens":
            return float(window.input_tokens)
        case "output_tokens":
            return float(window.output_tokens)
        case "cost_usd":
            return window.cost_usd
        case "cost_per_hour":
            return window.cost_usd * 3600.0 / window_s
    raise ValueError(f"unknown measure {measure!r}")
