"""Optimisation advice: where a tenant's model spend over a window could have been lower, each finding with
the money it would have saved, priced from the genai-prices table (``PriceBook``), and the spans that prove
it (a few example span and trace ids, and counts).

The kinds of finding (the reads behind them are defined in ``llm_observer.storage.clickhouse.cost_reads``):

``response_cache_exact``
    Successful calls repeating an earlier call exactly: same project, model, request parameters and prompt
    (system instructions, messages, tools). A response cache would have answered all but the first of each
    group: the saving is their price.
``response_cache_near``
    Distinct prompts of the same project, model, parameters and prefix whose user text embeds within
    ``near_threshold`` cosine similarity of an earlier one (greedy: each prompt joins the first earlier
    prompt it is that close to). A semantic cache would have answered them: the saving is the price of the
    first call of each joining prompt (its repeats are already counted as exact duplicates).
``prompt_cache``
    A prefix (system instructions and tool definitions) of ``min_prefix_tokens`` or more, sent at least
    twice by a project to a model whose provider prices cached input lower, with no cached tokens read.
    Walking the calls in time order, a call within ``cache_ttl_s`` of the previous one would have read the
    prefix from the cache (saving ``prefix * (input - cache read)``), any other call would have written it
    (costing ``prefix * (cache write - input)`` more, where the provider charges for writes).
``cheaper_model``
    A prompt cluster (the same prefix, or the same messages up to digits) served by a model A and by a model
    B that costs less for A's traffic, where B already served at least ``min_cheaper_calls`` calls of the
    cluster, with a mean output length within ``output_tolerance`` of A's and an error rate at most
    ``error_margin`` above A's: the saving is A's traffic priced at A's rates minus the same tokens priced
    at B's rates.
``retry``
    A failed call followed within ``retry_window_s`` by the same request (project, model, parameters,
    prompt): the failed attempts' price is waste.
``truncation``
    Calls that stopped at their output-token limit (``finish_reasons`` ``length``/``max_tokens``): their
    answer is cut off and usually re-asked, so their whole price is counted as at risk.
``unused_output``
    Successful calls whose text output no later step of the trace used (the exact test is
    ``CostStore.unused_outputs``): a later model call of the trace read its input, yet no span that ended
    after the call holds the start of its output. Outputs consumed by code that records nothing (a
    classifier's label steering a branch) cannot be seen and show here: the finding lists the spans to
    check.

Prices: each group's tokens are priced with the rates of its model at its first call (tiered prices at the
group's mean input per call); a model the price table does not know is priced at the cost stored on its
spans (what the collector computed), and a cheaper-model comparison needs both prices.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from llm_observer.processors.pricing import PriceBook, Rates
from llm_observer.semconv import attributes as attrs
from llm_observer.storage.clickhouse.cost_reads import CallGroup, CostStore, PrefixCall, RetryCall, Tokens
from llm_observer.storage.clickhouse.queries import InvalidArgument, Tenant

__all__ = [
    "ADVICE_KINDS",
    "Advice",
    "AdviceItem",
    "AdviceKind",
    "AdviceSettings",
    "Pricer",
    "TextEmbedder",
    "compute_advice",
]

AdviceKind = Literal[
    "response_cache_exact",
    "response_cache_near",
    "prompt_cache",
    "cheaper_model",
    "retry",
    "truncation",
    "unused_output",
]
ADVICE_KINDS: tuple[AdviceKind, ...] = (
    "response_cache_exact",
    "response_cache_near",
    "prompt_cache",
    "cheaper_model",
    "retry",
    "truncation",
    "unused_output",
)
_S = 10**9


class TextEmbedder(Protocol):
    """What near-duplicate detection needs of an embedder (``storage.vectors.embed.Embedder``): one
    unit-length vector per text."""

    def embed(self, texts: Sequence[str]) -> list[list[float]]: ...


@dataclass(frozen=True, slots=True)
class AdviceSettings:
    """The thresholds of the findings (see the module docstring)."""

    near_threshold: float = 0.95
    max_prompts: int = 2000  # distinct prompts embedded for near-duplicates, costliest first
    min_prefix_tokens: int = 1024
    cache_ttl_s: float = 300.0
    min_cheaper_calls: int = 5
    output_tolerance: float = 0.25
    error_margin: float = 0.02
    retry_window_s: float = 300.0
    examples: int = 5

    def check(self) -> None:
        if not 0.0 < self.near_threshold <= 1.0:
            raise InvalidArgument("near_threshold must be in (0, 1]")
        if self.max_prompts < 0 or self.min_prefix_tokens < 1 or self.min_cheaper_calls < 1:
            raise InvalidArgument("max_prompts, min_prefix_tokens and min_cheaper_calls must be positive")
        if not (self.cache_ttl_s > 0 and self.retry_window_s > 0 and self.output_tolerance >= 0):
            raise InvalidArgument("cache_ttl_s and retry_window_s must be positive")
        if not 1 <= self.examples <= 100:
            raise InvalidArgument("examples must be between 1 and 100")


@dataclass(frozen=True, slots=True)
class AdviceItem:
    """One finding for a project and model.

    JSON shape: ``kind``, ``title`` (one line for people), ``organization_id``, ``project_id``,
    ``provider``, ``model``, ``saving_usd`` (over the window), ``spend_usd`` (the price of the calls the
    finding is about), ``calls`` (how many), ``groups`` (how many prompts, prefixes or requests they form;
    1 where that means nothing), ``span_ids``/``trace_ids`` (examples, at most ``examples``), ``details``
    (the kind's own figures: ``alternative_model``, ``prefix_tokens``, ``similarity``…).
    """

    kind: AdviceKind
    title: str
    organization_id: str
    project_id: str
    provider: str
    model: str
    saving_usd: float
    spend_usd: float
    calls: int
    groups: int
    span_ids: tuple[str, ...]
    trace_ids: tuple[str, ...]
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Advice:
    """The findings over ``[start_ns, end_ns)``, largest saving first, their total, and ``notes`` on what
    could not be checked (no embedder, models without a price)."""

    start_ns: int
    end_ns: int
    items: tuple[AdviceItem, ...]
    total_saving_usd: float
    notes: tuple[str, ...] = ()


class Pricer:
    """Token prices from a ``PriceBook`` (genai-prices and the configured overrides)."""

    def __init__(self, book: PriceBook | None = None) -> None:
        self.book = book or PriceBook()
        self.unpriced: set[tuple[str, str]] = set()

    def rates(self, provider: str, model: str, time_ns: int, input_per_call: int) -> Rates | None:
        schedule = self.book.lookup(provider or None, model)
        if schedule is None:
            self.unpriced.add((provider, model))
            return None
        return schedule.rates(time_ns, input_per_call)

    def price(self, provider: str, model: str, tokens: Tokens, calls: int, time_ns: int) -> float | None:
        """USD of ``calls`` calls totalling ``tokens`` at ``model``'s rates; None without a price."""
        rates = self.rates(provider, model, time_ns, tokens.input // max(1, calls))
        return None if rates is None else price_at(rates, tokens, calls)


def price_at(rates: Rates, tokens: Tokens, calls: int) -> float:
    """USD of ``tokens`` (input including cache reads and writes) over ``calls`` calls at ``rates``."""
    uncached = max(0, tokens.input - tokens.cache_read - tokens.cache_write)
    micro = (
        uncached * rates.input
        + tokens.cache_read * rates.cache_read
        + tokens.cache_write * rates.cache_write
        + tokens.output * rates.output
    )
    return micro / 1e6 + rates.per_request * calls


def _minus(a: Tokens, b: Tokens) -> Tokens:
    return Tokens(
        a.input - b.input, a.output - b.output, a.cache_read - b.cache_read, a.cache_write - b.cache_write
    )


def _group_price(pricer: Pricer, group: CallGroup) -> float:
    found = pricer.price(group.provider, group.priced_model, group.tokens, group.calls, group.first_ns)
    return group.cost_usd if found is None else found


def _first_price(pricer: Pricer, group: CallGroup) -> float:
    found = pricer.price(group.provider, group.priced_model, group.first_tokens, 1, group.first_ns)
    return group.first_cost_usd if found is None else found


class _Collector:
    """Findings summed per (kind, organization, project, model), examples from the largest first."""

    def __init__(self, examples: int) -> None:
        self.examples = examples
        self.parts: dict[tuple[str, str, str, str], list[Any]] = {}

    def add(
        self,
        kind: AdviceKind,
        org: str,
        project: str,
        provider: str,
        model: str,
        saving: float,
        spend: float,
        calls: int,
        spans: Iterable[tuple[str, str]],
        details: dict[str, Any] | None = None,
    ) -> None:
        key = (kind, org, project, model)
        part = self.parts.setdefault(key, [provider, 0.0, 0.0, 0, 0, [], {}, -math.inf])
        part[1] += saving
        part[2] += spend
        part[3] += calls
        part[4] += 1
        part[5].append((saving, list(spans)))
        # Figures named ``*_sum`` add up over the groups; the others are those of the largest saving.
        largest = saving > part[7]
        part[7] = max(part[7], saving)
        for name, value in (details or {}).items():
            if name.endswith("_sum"):
                part[6][name] = part[6].get(name, 0) + value
            elif largest or name not in part[6]:
                part[6][name] = value

    def items(self) -> list[AdviceItem]:
        out = []
        for (kind, org, project, model), part in self.parts.items():
            provider, saving, spend, calls, groups, spans, details, _ = part
            chosen: list[tuple[str, str]] = []
            for _, found in sorted(spans, key=lambda s: -s[0]):
                for pair in found:
                    if len(chosen) < self.examples and pair not in chosen:
                        chosen.append(pair)
            out.append(
                AdviceItem(
                    kind=kind,  # type: ignore[arg-type]
                    title=_title(kind, model, calls, groups, details),
                    organization_id=org,
                    project_id=project,
                    provider=provider,
                    model=model,
                    saving_usd=saving,
                    spend_usd=spend,
                    calls=calls,
                    groups=groups,
                    span_ids=tuple(s for s, _ in chosen),
                    trace_ids=tuple(t for _, t in chosen),
                    details=details,
                )
            )
        return out


def _title(kind: str, model: str, calls: int, groups: int, details: dict[str, Any]) -> str:
    if kind == "response_cache_exact":
        return f"{calls} calls to {model} repeated an earlier identical request ({groups} prompts): cache responses"
    if kind == "response_cache_near":
        return f"{calls} calls to {model} asked nearly the same as an earlier prompt: a semantic cache would answer"
    if kind == "prompt_cache":
        return (
            f"{calls} calls to {model} sent a {details.get('prefix_tokens', 0)}-token prefix uncached "
            f"({groups} prefixes): enable provider prompt caching"
        )
    if kind == "cheaper_model":
        return f"{details.get('alternative_model')} already serves this prompt cluster for less than {model}"
    if kind == "retry":
        return f"{calls} failed calls to {model} were retried: their spend is waste"
    if kind == "truncation":
        return f"{calls} calls to {model} hit the output-token limit: answers cut off"
    return f"{calls} outputs of {model} were never used by a later step"


def compute_advice(
    store: CostStore,
    tenant: Tenant,
    start_ns: int,
    end_ns: int,
    *,
    pricer: Pricer | None = None,
    embedder: TextEmbedder | None = None,
    settings: AdviceSettings | None = None,
    kinds: Iterable[AdviceKind] = ADVICE_KINDS,
) -> Advice:
    """Every finding of ``kinds`` over the tenant's model calls in ``[start_ns, end_ns)``. Blocks (a few
    queries, and embedding prompts when ``embedder`` is given): run it in a thread."""
    settings = settings or AdviceSettings()
    settings.check()
    if end_ns <= start_ns:
        raise InvalidArgument("start_time must be before end_time")
    wanted = set(kinds)
    unknown = wanted - set(ADVICE_KINDS)
    if unknown:
        raise InvalidArgument(f"kind must be among {', '.join(ADVICE_KINDS)}")
    pricer = pricer or Pricer()
    found = _Collector(settings.examples)
    notes: list[str] = []
    span = (start_ns, end_ns)
    if "response_cache_exact" in wanted:
        _exact(found, pricer, store.prompt_groups(tenant, *span, examples=settings.examples + 1))
    if "response_cache_near" in wanted:
        if embedder is None:
            notes.append("near-duplicate prompts were not checked: no embedding model is available")
        elif settings.max_prompts > 0:
            groups = store.prompt_groups(
                tenant, *span, min_calls=1, limit=settings.max_prompts, with_text=True, examples=1
            )
            if len(groups) >= settings.max_prompts:
                notes.append(
                    f"near duplicates were looked for among the {settings.max_prompts} costliest prompts only"
                )
            _near(found, pricer, embedder, groups, settings.near_threshold)
    if "prompt_cache" in wanted:
        calls = store.prefix_calls(tenant, *span, min_prefix_tokens=settings.min_prefix_tokens)
        _prompt_cache(found, pricer, calls, settings.cache_ttl_s)
    if "cheaper_model" in wanted:
        _cheaper(found, pricer, store.cluster_models(tenant, *span), settings)
    if "retry" in wanted:
        window = int(settings.retry_window_s * _S)
        _retries(found, pricer, store.retry_calls(tenant, *span, window_ns=window))
    if "truncation" in wanted:
        for group in store.truncations(tenant, *span, examples=settings.examples):
            spend = _group_price(pricer, group)
            found.add(
                "truncation",
                group.organization_id,
                group.project_id,
                group.provider,
                group.model,
                spend,
                spend,
                group.calls,
                zip(group.span_ids, group.trace_ids, strict=True),
                {"output_tokens_sum": group.tokens.output},
            )
    if "unused_output" in wanted:
        for group in store.unused_outputs(tenant, *span, examples=settings.examples):
            spend = _group_price(pricer, group)
            found.add(
                "unused_output",
                group.organization_id,
                group.project_id,
                group.provider,
                group.model,
                spend,
                spend,
                group.calls,
                zip(group.span_ids, group.trace_ids, strict=True),
            )
    if pricer.unpriced:
        names = ", ".join(sorted(f"{p or '?'}/{m}" for p, m in pricer.unpriced))
        notes.append(
            f"no table price for {names}: their stored costs were used, and no cheaper model compared"
        )
    items = sorted(found.items(), key=lambda i: (-i.saving_usd, i.kind, i.project_id, i.model))
    return Advice(start_ns, end_ns, tuple(items), math.fsum(i.saving_usd for i in items), tuple(notes))


def _exact(found: _Collector, pricer: Pricer, groups: Sequence[CallGroup]) -> None:
    for group in groups:
        repeats = _minus(group.tokens, group.first_tokens)
        priced = pricer.price(group.provider, group.priced_model, repeats, group.calls - 1, group.first_ns)
        saving = group.cost_usd - group.first_cost_usd if priced is None else priced
        found.add(
            "response_cache_exact",
            group.organization_id,
            group.project_id,
            group.provider,
            group.model,
            saving,
            _group_price(pricer, group),
            group.calls - 1,
            list(zip(group.span_ids, group.trace_ids, strict=True))[1:],
            {"duplicate_calls_sum": group.calls - 1},
        )


def _user_text(document: str) -> str:
    from llm_observer.storage.vectors.embed import prompt_text

    return prompt_text({attrs.GEN_AI_INPUT_MESSAGES: document}, roles=("user",), scope="all")


def _near(
    found: _Collector, pricer: Pricer, embedder: TextEmbedder, groups: Sequence[CallGroup], threshold: float
) -> None:
    import numpy as np

    buckets: dict[tuple[str, str, str, str, str], list[tuple[CallGroup, str]]] = defaultdict(list)
    for group in groups:
        text = _user_text(group.text)
        if text.strip():
            params, _, prefix = group.key.split(":")
            buckets[(group.organization_id, group.project_id, group.model, params, prefix)].append(
                (group, text)
            )
    for members in buckets.values():
        if len(members) < 2:
            continue
        members.sort(key=lambda m: m[0].first_ns)
        vectors = np.asarray(embedder.embed([text for _, text in members]), dtype=np.float32)
        leaders: list[int] = []
        for i, (group, _) in enumerate(members):
            if leaders:
                sims = vectors[leaders] @ vectors[i]
                best = int(np.argmax(sims))
                if float(sims[best]) >= threshold:
                    leader = members[leaders[best]][0]
                    saving = _first_price(pricer, group)
                    found.add(
                        "response_cache_near",
                        group.organization_id,
                        group.project_id,
                        group.provider,
                        group.model,
                        saving,
                        saving,
                        1,
                        [(group.span_ids[0], group.trace_ids[0])] if group.span_ids else [],
                        {
                            "similar_to_span_id": leader.span_ids[0] if leader.span_ids else "",
                            "threshold": threshold,
                        },
                    )
                    continue
            leaders.append(i)


def _prompt_cache(found: _Collector, pricer: Pricer, calls: Sequence[PrefixCall], ttl_s: float) -> None:
    by_prefix: dict[tuple[str, str, str, str], list[PrefixCall]] = defaultdict(list)
    for call in calls:
        by_prefix[(call.organization_id, call.project_id, call.model, call.prefix_hash)].append(call)
    ttl = int(ttl_s * _S)
    for group in by_prefix.values():
        group.sort(key=lambda c: c.start_ns)
        first = group[0]
        rates = pricer.rates(first.provider, first.priced_model, first.start_ns, first.input_tokens)
        if rates is None or rates.cache_read >= rates.input:
            continue  # no price, or the provider sells no cheaper cached input
        read_micro = write_micro = spend_micro = 0.0
        reads = 0
        previous: int | None = None
        for call in group:
            spend_micro += call.prefix_tokens * rates.input
            if previous is not None and call.start_ns - previous <= ttl:
                read_micro += call.prefix_tokens * (rates.input - rates.cache_read)
                reads += 1
            else:
                write_micro += call.prefix_tokens * (rates.cache_write - rates.input)
            previous = call.start_ns
        saving = (read_micro - write_micro) / 1e6
        if saving <= 0:
            continue
        found.add(
            "prompt_cache",
            first.organization_id,
            first.project_id,
            first.provider,
            first.model,
            saving,
            spend_micro / 1e6,
            len(group),
            [(c.span_id, c.trace_id) for c in group[1:]],
            {
                "prefix_tokens": round(sum(c.prefix_tokens for c in group) / len(group)),
                "cache_reads_sum": reads,
                "cache_read_price_per_mtok": rates.cache_read,
                "input_price_per_mtok": rates.input,
            },
        )


def _cheaper(found: _Collector, pricer: Pricer, rows: Sequence[CallGroup], settings: AdviceSettings) -> None:
    clusters: dict[tuple[str, str, str], list[CallGroup]] = defaultdict(list)
    for row in rows:
        clusters[(row.organization_id, row.project_id, row.key)].append(row)
    for models in clusters.values():
        for current in models:
            mean_input = current.tokens.input // max(1, current.calls)
            now_rates = pricer.rates(current.provider, current.priced_model, current.first_ns, mean_input)
            if now_rates is None:
                continue
            now_price = price_at(now_rates, current.tokens, current.calls)
            error_rate = current.errors / current.calls
            best: tuple[float, CallGroup, float] | None = None
            for other in models:
                if other is current or other.calls < settings.min_cheaper_calls:
                    continue
                tolerance = settings.output_tolerance * max(current.avg_output_tokens, 1.0)
                if abs(other.avg_output_tokens - current.avg_output_tokens) > tolerance:
                    continue
                if other.errors / other.calls > error_rate + settings.error_margin:
                    continue
                rates = pricer.rates(other.provider, other.priced_model, current.first_ns, mean_input)
                if rates is None:
                    continue
                there = price_at(rates, current.tokens, current.calls)
                if there < now_price and (best is None or now_price - there > best[0]):
                    best = (now_price - there, other, there)
            if best is None:
                continue
            saving, other, there = best
            found.add(
                "cheaper_model",
                current.organization_id,
                current.project_id,
                current.provider,
                current.model,
                saving,
                now_price,
                current.calls,
                zip(current.span_ids, current.trace_ids, strict=True),
                {
                    "alternative_model": other.model,
                    "alternative_provider": other.provider,
                    "alternative_calls": other.calls,
                    "alternative_cost_usd": there,
                    "alternative_span_ids": list(other.span_ids),
                    "cluster": current.key,
                    "avg_output_tokens": current.avg_output_tokens,
                    "alternative_avg_output_tokens": other.avg_output_tokens,
                    "error_rate": error_rate,
                    "alternative_error_rate": other.errors / other.calls,
                },
            )


def _retries(found: _Collector, pricer: Pricer, calls: Sequence[RetryCall]) -> None:
    """``calls``: the failed calls retried within the window (``CostStore.retry_calls``)."""
    by_request: dict[tuple[str, str, str, str], list[RetryCall]] = defaultdict(list)
    for call in calls:
        by_request[(call.organization_id, call.project_id, call.model, call.key)].append(call)
    for wasted in by_request.values():
        spend = 0.0
        for call in wasted:
            priced = pricer.price(call.provider, call.priced_model, call.tokens, 1, call.start_ns)
            spend += call.cost_usd if priced is None else priced
        first = wasted[0]
        found.add(
            "retry",
            first.organization_id,
            first.project_id,
            first.provider,
            first.model,
            spend,
            spend,
            len(wasted),
            [(c.span_id, c.trace_id) for c in wasted],
        )
