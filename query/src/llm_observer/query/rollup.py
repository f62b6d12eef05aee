"""Token usage and cost of each span's subtree, computed over a whole stored trace when read.

The framework instrumentors and the collector's ``rollup`` processor write ``llm_observer.subtree.input_tokens``,
``.output_tokens`` and ``.cost_usd`` onto workflow, agent and step spans; a span stored without them (an
instrumentation that does not compute them, a pipeline without ``rollup``, a child that reached the collector
after its parent) gets them here, for the trace detail APIs. The whole trace is known, so these sums are exact.

The rules are the processor's: a span that reports usage itself (``gen_ai.usage.input_tokens`` or
``.output_tokens``) is a model call, gets nothing, and adds its own usage (not that of anything beneath it) to
its ancestors; every other span with a model call beneath it gets the sums, the cost sum only when one of
those calls has a cost. An attribute already stored is never replaced. Values are stored-attribute strings,
as storage gives every attribute.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from llm_observer.semconv import attributes as attr
from llm_observer.semconv.attributes import COST_USD, GEN_AI_USAGE_INPUT_TOKENS, GEN_AI_USAGE_OUTPUT_TOKENS
from llm_observer.storage.clickhouse.rows import SpanRow

__all__ = ["SUBTREE_COST_USD", "SUBTREE_INPUT_TOKENS", "SUBTREE_OUTPUT_TOKENS", "with_rollup"]

# The spellings of ``llm_observer.processors.rollup`` (the query service does not depend on the processors).
SUBTREE_INPUT_TOKENS = attr.SUBTREE_INPUT_TOKENS
SUBTREE_OUTPUT_TOKENS = attr.SUBTREE_OUTPUT_TOKENS
SUBTREE_COST_USD = attr.SUBTREE_COST_USD

# Costs are summed in whole pico-dollars, so a sum does not depend on the order of the spans.
_PICO = 10**12


def with_rollup(spans: Sequence[SpanRow]) -> tuple[SpanRow, ...]:
    """``spans`` (one trace, in their order), each span that lacks a subtree attribute it should carry
    replaced by a copy that has it. Spans in a parent cycle (malformed data) are left as they are."""
    if len(spans) < 2:
        return tuple(spans)
    by_id: dict[str, SpanRow] = {}
    for span in spans:
        by_id.setdefault(span.span_id, span)
    children: dict[str, list[str]] = {}
    for span_id, span in by_id.items():
        if span.parent_span_id and span.parent_span_id != span_id:
            children.setdefault(span.parent_span_id, []).append(span_id)
    # (input, output, pico-USD, costed) of each span's model calls beneath it, None when it has none.
    sums: dict[str, tuple[int, int, int, bool] | None] = {}
    for top in by_id:
        parent = by_id[top].parent_span_id
        if parent and parent in by_id and parent != top:
            continue  # summed from its own root
        _sum_from(top, by_id, children, sums)
    out: list[SpanRow] = []
    for span in spans:
        found = sums.get(span.span_id)
        if found is None or _reports_usage(span):
            out.append(span)
            continue
        inp, outp, pico, costed = found
        values = {SUBTREE_INPUT_TOKENS: str(inp), SUBTREE_OUTPUT_TOKENS: str(outp)}
        if costed:
            values[SUBTREE_COST_USD] = repr(pico / _PICO)
        missing = {key: value for key, value in values.items() if key not in span.attributes}
        out.append(dataclasses.replace(span, attributes={**span.attributes, **missing}) if missing else span)
    return tuple(out)


def _sum_from(
    top: str,
    by_id: dict[str, SpanRow],
    children: dict[str, list[str]],
    sums: dict[str, tuple[int, int, int, bool] | None],
) -> None:
    """Fill ``sums`` for ``top`` and every span beneath it, depth first without recursion (traces may be
    deeper than Python's stack)."""
    stack: list[tuple[str, bool]] = [(top, False)]
    while stack:
        span_id, expanded = stack.pop()
        if not expanded:
            if span_id in sums:
                continue
            sums[span_id] = None  # marks it visited
            stack.append((span_id, True))
            stack.extend((child, False) for child in children.get(span_id, ()) if child not in sums)
            continue
        inp = out = pico = 0
        costed = seen = False
        for child in children.get(span_id, ()):
            span = by_id[child]
            if _reports_usage(span):
                part: tuple[int, int, int, bool] | None = (
                    span.input_tokens,
                    span.output_tokens,
                    round(span.cost_usd * _PICO),
                    COST_USD in span.attributes,
                )
            else:
                part = sums.get(child)
            if part is None:
                continue
            seen = True
            inp += part[0]
            out += part[1]
            pico += part[2]
            costed = costed or part[3]
        sums[span_id] = (inp, out, pico, costed) if seen else None


def _reports_usage(span: SpanRow) -> bool:
    attributes = span.attributes
    return GEN_AI_USAGE_INPUT_TOKENS in attributes or GEN_AI_USAGE_OUTPUT_TOKENS in attributes
