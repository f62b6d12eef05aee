"""What a replay changed, call by call: the answer's text (a unified diff), tokens, cost and latency.

The result of ``llm-observer replay`` and ``POST /api/v1/traces/{trace_id}/replay`` is a
:class:`ReplayResult`; its JSON shape (``ReplayResult.model_dump(mode="json")``)::

    {"original_trace_id": "…", "replay_trace_id": "…", "replay_root_span_id": "…", "exported": true,
     "calls": [{
        "original_span_id": "…", "replay_span_id": "…" | null, "name": "chat gpt-4o", "provider": "openai",
        "error": null | "what failed",
        "original": {"model": "gpt-4o", "response_model": "gpt-4o-2024-08-06", "output": "…",
                     "finish_reasons": ["stop"], "input_tokens": 1180, "output_tokens": 21,
                     "cache_read_tokens": 1024, "cache_write_tokens": 0, "reasoning_tokens": 0,
                     "cost_usd": 0.00188 | null, "latency_ms": 812.5},
        "replay": {… the same fields …} | null,
        "output_changed": true, "output_diff": "--- original …\\n+++ replay …\\n@@ … @@\\n-…\\n+…",
        "input_tokens_delta": -1156, "output_tokens_delta": -13,
        "cost_delta_usd": -0.0018716 | null, "latency_delta_ms": -500.1 | null}],
     "totals": {"original_cost_usd": …, "replay_cost_usd": …, "cost_delta_usd": …,
                "original_input_tokens": …, "replay_input_tokens": …, "original_output_tokens": …,
                "replay_output_tokens": …, "original_latency_ms": …, "replay_latency_ms": …}}

Costs are computed from the tokens with the price table (``PriceBook``: the response model, else the
request model, at the call's start time), the same arithmetic the collector's cost processor does with no
price overrides configured; ``null`` when no price is known for the model.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from llm_observer.processors.pricing import PriceBook

__all__ = [
    "CallDiff",
    "CallSide",
    "ReplayResult",
    "ReplayTotals",
    "cost_usd",
    "diff_call",
    "format_result",
    "output_text",
    "totals",
]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class CallSide(_Frozen):
    """One side (the recorded call or its replay) of a :class:`CallDiff`."""

    model: str | None
    response_model: str | None
    output: str
    finish_reasons: tuple[str, ...] = ()
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    cost_usd: float | None = None
    latency_ms: float | None = None


class CallDiff(_Frozen):
    """One recorded LLM call next to its replay (``replay`` is None when the replay failed: ``error``)."""

    original_span_id: str
    replay_span_id: str | None
    name: str
    provider: str
    error: str | None
    original: CallSide
    replay: CallSide | None
    output_changed: bool
    output_diff: str
    input_tokens_delta: int | None
    output_tokens_delta: int | None
    cost_delta_usd: float | None
    latency_delta_ms: float | None


class ReplayTotals(_Frozen):
    """Sums over the calls that were replayed (a cost sum is None when a call on that side has no price)."""

    original_cost_usd: float | None
    replay_cost_usd: float | None
    cost_delta_usd: float | None
    original_input_tokens: int
    replay_input_tokens: int
    original_output_tokens: int
    replay_output_tokens: int
    original_latency_ms: float
    replay_latency_ms: float


class ReplayResult(_Frozen):
    """A replay: the new trace (linked to the original) and one :class:`CallDiff` per replayed call.
    ``exported`` says whether the collector accepted the new trace's spans."""

    original_trace_id: str
    replay_trace_id: str
    replay_root_span_id: str
    exported: bool
    calls: tuple[CallDiff, ...]
    totals: ReplayTotals


def cost_usd(
    book: PriceBook,
    provider: str | None,
    models: Iterable[str | None],
    start_ns: int,
    input_tokens: int,
    output_tokens: int,
    cache_read_tokens: int = 0,
    cache_write_tokens: int = 0,
    reasoning_tokens: int = 0,
) -> float | None:
    """The USD price of one call's tokens (``input_tokens`` includes cached ones, as the conventions
    count them), priced as the first of ``models`` with a known price; None when none has one."""
    schedule = None
    for model in models:
        if model:
            schedule = book.lookup(provider, model)
            if schedule is not None:
                break
    if schedule is None:
        return None
    rates = schedule.fixed or schedule.rates(start_ns, input_tokens)
    uncached = max(0, input_tokens - cache_read_tokens - cache_write_tokens)
    if rates.separate_reasoning:
        reasoning = min(reasoning_tokens, output_tokens)
        output_m = (output_tokens - reasoning) * rates.output + reasoning * rates.reasoning
    else:
        output_m = output_tokens * rates.output
    total_m = (
        uncached * rates.input
        + cache_read_tokens * rates.cache_read
        + cache_write_tokens * rates.cache_write
        + output_m
    )
    return total_m / 1e6 + rates.per_request


def output_text(messages: Sequence[Mapping[str, Any]] | None) -> str:
    """The readable answer of GenAI output messages: text parts as they are, a tool call as
    ``[tool_call NAME ARGUMENTS-JSON]``, reasoning as ``[reasoning] …``; choices after the first are headed
    ``[choice N]``."""
    blocks: list[str] = []
    for index, item in enumerate(messages or ()):
        lines: list[str] = [f"[choice {index}]"] if index else []
        for part in item.get("parts") or ():
            if not isinstance(part, Mapping):
                continue
            kind = part.get("type")
            if kind == "text":
                lines.append(str(part.get("content") or ""))
            elif kind == "tool_call":
                arguments = json.dumps(part.get("arguments"), sort_keys=True, ensure_ascii=False)
                lines.append(f"[tool_call {part.get('name')} {arguments}]")
            elif kind == "reasoning":
                lines.append(f"[reasoning] {part.get('content') or ''}")
            elif kind:
                lines.append(f"[{kind}]")
        blocks.append("\n".join(lines))
    return "\n".join(blocks)


def diff_call(
    original_span_id: str,
    replay_span_id: str | None,
    name: str,
    provider: str,
    original: CallSide,
    replay: CallSide | None,
    error: str | None = None,
) -> CallDiff:
    """Compare a recorded call with its replay (None when it failed with ``error``)."""
    if replay is None:
        return CallDiff(
            original_span_id=original_span_id,
            replay_span_id=replay_span_id,
            name=name,
            provider=provider,
            error=error,
            original=original,
            replay=None,
            output_changed=False,
            output_diff="",
            input_tokens_delta=None,
            output_tokens_delta=None,
            cost_delta_usd=None,
            latency_delta_ms=None,
        )
    # Lines without their ends, joined here: difflib would run a last line without a newline into the next.
    diff = "\n".join(
        difflib.unified_diff(
            original.output.splitlines(),
            replay.output.splitlines(),
            fromfile=f"original {original_span_id} ({original.response_model or original.model})",
            tofile=f"replay {replay_span_id} ({replay.response_model or replay.model})",
            lineterm="",
        )
    )
    if diff:
        diff += "\n"
    cost_delta = (
        replay.cost_usd - original.cost_usd
        if replay.cost_usd is not None and original.cost_usd is not None
        else None
    )
    latency_delta = (
        replay.latency_ms - original.latency_ms
        if replay.latency_ms is not None and original.latency_ms is not None
        else None
    )
    return CallDiff(
        original_span_id=original_span_id,
        replay_span_id=replay_span_id,
        name=name,
        provider=provider,
        error=error,
        original=original,
        replay=replay,
        output_changed=original.output != replay.output,
        output_diff=diff,
        input_tokens_delta=replay.input_tokens - original.input_tokens,
        output_tokens_delta=replay.output_tokens - original.output_tokens,
        cost_delta_usd=cost_delta,
        latency_delta_ms=latency_delta,
    )


def totals(calls: Sequence[CallDiff]) -> ReplayTotals:
    """Sums over the replayed calls (those with a ``replay`` side)."""
    done = [call for call in calls if call.replay is not None]
    original_costs = [call.original.cost_usd for call in done]
    replay_costs = [call.replay.cost_usd for call in done if call.replay is not None]
    original_cost = None if any(c is None for c in original_costs) else sum(c or 0.0 for c in original_costs)
    replay_cost = None if any(c is None for c in replay_costs) else sum(c or 0.0 for c in replay_costs)
    return ReplayTotals(
        original_cost_usd=original_cost,
        replay_cost_usd=replay_cost,
        cost_delta_usd=(
            replay_cost - original_cost if replay_cost is not None and original_cost is not None else None
        ),
        original_input_tokens=sum(call.original.input_tokens for call in done),
        replay_input_tokens=sum(call.replay.input_tokens for call in done if call.replay is not None),
        original_output_tokens=sum(call.original.output_tokens for call in done),
        replay_output_tokens=sum(call.replay.output_tokens for call in done if call.replay is not None),
        original_latency_ms=sum(call.original.latency_ms or 0.0 for call in done),
        replay_latency_ms=sum((call.replay.latency_ms or 0.0) for call in done if call.replay is not None),
    )


# --- text ---------------------------------------------------------------------------------------------


def _usd(value: float | None) -> str:
    return "n/a" if value is None else f"${value:.6f}"


def _signed_usd(value: float | None) -> str:
    return "n/a" if value is None else f"{'+' if value >= 0 else '-'}${abs(value):.6f}"


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f} ms"


def _signed(value: float | int | None, unit: str = "") -> str:
    if value is None:
        return "n/a"
    return f"{value:+.0f}{unit}" if isinstance(value, float) else f"{value:+d}{unit}"


def format_result(result: ReplayResult) -> str:
    """The terminal report of a replay: per call a header, the output diff, then tokens, cost and
    latency side by side; totals last."""
    out = [f"replay of trace {result.original_trace_id} -> new trace {result.replay_trace_id}"]
    if not result.exported:
        out.append("warning: the collector did not accept the new trace; it is not stored")
    for call in result.calls:
        out.append("")
        out.append(f"== {call.name} [{call.provider}] span {call.original_span_id}")
        if call.replay is None:
            out.append(f"   replay failed: {call.error}")
            continue
        out.append(
            f"   model: {call.original.response_model or call.original.model} -> "
            f"{call.replay.response_model or call.replay.model}   (replay span {call.replay_span_id})"
        )
        if call.output_changed:
            out.append(call.output_diff.rstrip("\n"))
        else:
            out.append("   output: unchanged")
        original, replay = call.original, call.replay
        out.append(
            f"   tokens in:  {original.input_tokens} -> {replay.input_tokens} "
            f"({_signed(call.input_tokens_delta)})"
        )
        out.append(
            f"   tokens out: {original.output_tokens} -> {replay.output_tokens} "
            f"({_signed(call.output_tokens_delta)})"
        )
        out.append(
            f"   cost:       {_usd(original.cost_usd)} -> {_usd(replay.cost_usd)} "
            f"({_signed_usd(call.cost_delta_usd)})"
        )
        out.append(
            f"   latency:    {_ms(original.latency_ms)} -> {_ms(replay.latency_ms)} "
            f"({_signed(call.latency_delta_ms, ' ms')})"
        )
    t = result.totals
    out.append("")
    out.append(
        f"total: tokens in {t.original_input_tokens} -> {t.replay_input_tokens}, "
        f"out {t.original_output_tokens} -> {t.replay_output_tokens}, "
        f"cost {_usd(t.original_cost_usd)} -> {_usd(t.replay_cost_usd)} ({_signed_usd(t.cost_delta_usd)}), "
        f"latency {_ms(t.original_latency_ms)} -> {_ms(t.replay_latency_ms)}"
    )
    return "\n".join(out)
