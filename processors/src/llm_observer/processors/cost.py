"""The ``cost`` processor: USD cost of every span that reports token usage.

Runs after ``normalize``, so usage is in the current GenAI attributes: ``gen_ai.usage.input_tokens``
(which *includes* cache reads and writes), ``gen_ai.usage.cache_read.input_tokens``,
``gen_ai.usage.cache_write.input_tokens`` (or the older ``cache_creation`` spelling),
``gen_ai.usage.output_tokens`` (which includes ``gen_ai.usage.reasoning.output_tokens``).

Writes ``llm_observer.cost.usd`` (the total) and its parts beside it: ``input_usd`` (input tokens that were
not cache reads or writes), ``cache_read_usd``, ``cache_write_usd`` and ``output_usd`` (reasoning
included), with ``llm_observer.cost.source`` = ``computed``. A per-request price is part of the total only.

* The price is that of the response model when the span has one (the exact version billed), else of the
  request model; it is resolved once per (provider, model) by ``pricing.PriceBook`` (user overrides, then
  the genai-prices table) and applied with float arithmetic, so pricing costs about a microsecond a span.
* No known price: no cost attribute, and the span is counted as ``unknown_model`` (``no_model`` when the
  span names no model). A cost is never guessed.
* A cost the instrumentation already put on the span (OpenLIT ``gen_ai.usage.cost``, OpenInference
  ``llm.cost.*``) is kept and copied with source ``provided``.
* Idempotent: running it twice gives the same attributes.
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import Field, model_validator

from llm_observer.kernel.batch import Attributes, SpanBatch
from llm_observer.kernel.component import ComponentConfig, CreateContext, Factory, Processor
from llm_observer.processors.pricing import Discount, PriceBook, PriceOverride, PriceSchedule, Rates
from llm_observer.semconv.attributes import (
    COST_CACHE_READ_USD,
    COST_CACHE_WRITE_USD,
    COST_INPUT_USD,
    COST_OUTPUT_USD,
    COST_SOURCE,
    COST_USD,
    GEN_AI_PROVIDER_NAME,
    GEN_AI_REQUEST_MODEL,
    GEN_AI_RESPONSE_MODEL,
    GEN_AI_SYSTEM,
    GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS,
    GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
    GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS,
    GEN_AI_USAGE_INPUT_TOKENS,
    GEN_AI_USAGE_OUTPUT_TOKENS,
    GEN_AI_USAGE_REASONING_OUTPUT_TOKENS,
)

SOURCE_COMPUTED = "computed"
SOURCE_PROVIDED = "provided"

# Costs that instrumentations report themselves (USD).
OPENLIT_COST = "gen_ai.usage.cost"
OPENINFERENCE_COST_TOTAL = "llm.cost.total"
OPENINFERENCE_COST_PROMPT = "llm.cost.prompt"
OPENINFERENCE_COST_COMPLETION = "llm.cost.completion"
OPENINFERENCE_COST_INPUT = "llm.cost.prompt_details.input"
OPENINFERENCE_COST_CACHE_READ = "llm.cost.prompt_details.cache_read"
OPENINFERENCE_COST_CACHE_WRITE = "llm.cost.prompt_details.cache_write"

_COST_KEYS = (
    COST_USD,
    COST_INPUT_USD,
    COST_OUTPUT_USD,
    COST_CACHE_READ_USD,
    COST_CACHE_WRITE_USD,
    COST_SOURCE,
)
_DIGITS = 12  # provided parts are rounded to a pico-dollar after subtraction: hides float noise
_PROVIDED_KEYS = frozenset(
    {OPENLIT_COST, OPENINFERENCE_COST_TOTAL, OPENINFERENCE_COST_PROMPT, OPENINFERENCE_COST_COMPLETION}
)
_MISSING = PriceSchedule("", "", "table", None)  # "not resolved yet" in the per-processor cache


class PriceConfig(ComponentConfig):
    """A user price in USD per million tokens (``per_request`` in USD per request).

    ``model`` matches case-insensitively, also dated and ``provider/``-prefixed spellings of it; with
    ``provider`` it applies to that provider only. It replaces the table's price completely: a cache price
    left out bills cached tokens at ``input``, a reasoning price left out bills them at ``output``.
    """

    model: str = Field(min_length=1)
    provider: str | None = None
    input: float = Field(default=0.0, ge=0)
    output: float = Field(default=0.0, ge=0)
    cache_read: float | None = Field(default=None, ge=0)
    cache_write: float | None = Field(default=None, ge=0)
    reasoning: float | None = Field(default=None, ge=0)
    per_request: float = Field(default=0.0, ge=0)


class DiscountConfig(ComponentConfig):
    """Multiply the price of matching spans (e.g. 0.8 for a negotiated 20% discount). The first
    discount whose ``provider`` and ``model`` (each optional) match applies."""

    multiplier: float = Field(ge=0)
    provider: str | None = None
    model: str | None = None


class CostConfig(ComponentConfig):
    """Config of the ``cost`` processor."""

    prices: tuple[PriceConfig, ...] = ()
    discounts: tuple[DiscountConfig, ...] = ()
    # Model names as sent -> the model they are priced as, e.g. Azure deployment names.
    model_aliases: dict[str, str] = Field(default_factory=dict)
    # Keep a cost the instrumentation put on the span (marked ``provided``) instead of computing one.
    keep_provided: bool = True

    @model_validator(mode="after")
    def _aliases_not_empty(self) -> CostConfig:
        for name, target in self.model_aliases.items():
            if not name.strip() or not target.strip():
                raise ValueError("model_aliases keys and values must not be empty")
        return self


def price_book(config: CostConfig) -> PriceBook:
    """The ``PriceBook`` a config describes."""
    overrides = [
        PriceOverride(
            model=p.model.strip().lower(),
            provider=p.provider,
            rates=Rates.per_million(
                input=p.input,
                output=p.output,
                cache_read=p.cache_read,
                cache_write=p.cache_write,
                reasoning=p.reasoning,
                per_request=p.per_request,
            ),
        )
        for p in config.prices
    ]
    discounts = [Discount(d.multiplier, d.provider, d.model) for d in config.discounts]
    return PriceBook(overrides, discounts, config.model_aliases)


def create(ctx: CreateContext, config: CostConfig) -> Processor:
    book = price_book(config)
    metrics = ctx.telemetry.component(ctx.component_id)
    keep_provided = config.keep_provided
    # (provider, response model, request model) -> schedule; bounded like the book's own cache.
    resolved: dict[tuple[Any, Any, Any], PriceSchedule | None] = {}

    def schedule_for(provider: Any, response_model: Any, request_model: Any) -> PriceSchedule | None:
        key = (provider, response_model, request_model)
        try:
            return resolved[key]
        except KeyError:
            pass
        prov = provider if isinstance(provider, str) else None
        schedule = None
        # The response model is the version billed; a request model (e.g. an Azure deployment name
        # with a configured alias) is the fallback when the response model has no price.
        for model in (response_model, request_model):
            if isinstance(model, str) and model.strip():
                schedule = book.lookup(prov, model)
                if schedule is not None:
                    break
        if len(resolved) >= 10_000:
            resolved.clear()
        resolved[key] = schedule
        return schedule

    def process(batch: SpanBatch) -> SpanBatch:
        counts: dict[str, int] = {}
        starts = batch.start_time_unix_nano
        for row, attrs in enumerate(batch.attributes):
            if keep_provided and not attrs.keys().isdisjoint(_PROVIDED_KEYS) and _copy_provided(attrs):
                counts["provided"] = counts.get("provided", 0) + 1
                continue
            input_tokens = attrs.get(GEN_AI_USAGE_INPUT_TOKENS)
            output_tokens = attrs.get(GEN_AI_USAGE_OUTPUT_TOKENS)
            if input_tokens is None and output_tokens is None:
                if COST_USD in attrs:
                    _drop_cost(attrs)  # no usage: a cost here was not ours to show
                continue
            response_model = attrs.get(GEN_AI_RESPONSE_MODEL)
            request_model = attrs.get(GEN_AI_REQUEST_MODEL)
            if not response_model and not request_model:
                counts["no_model"] = counts.get("no_model", 0) + 1
                _drop_cost(attrs)
                continue
            provider = attrs.get(GEN_AI_PROVIDER_NAME) or attrs.get(GEN_AI_SYSTEM)
            try:
                schedule = resolved.get((provider, response_model, request_model), _MISSING)
            except TypeError:  # an array or map where a name belongs: it names nothing
                provider, response_model, request_model = (
                    v if isinstance(v, str) else None for v in (provider, response_model, request_model)
                )
                schedule = resolved.get((provider, response_model, request_model), _MISSING)
            if schedule is _MISSING:
                schedule = schedule_for(provider, response_model, request_model)
            if schedule is None:
                counts["unknown_model"] = counts.get("unknown_model", 0) + 1
                _drop_cost(attrs)
                continue
            # Token counts are ints after normalize; anything else goes the slow way.
            inp = input_tokens if type(input_tokens) is int and input_tokens > 0 else _tokens(input_tokens)
            out = (
                output_tokens if type(output_tokens) is int and output_tokens > 0 else _tokens(output_tokens)
            )
            cache_read = attrs.get(GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS, 0)
            if type(cache_read) is not int or cache_read < 0:
                cache_read = _tokens(cache_read)
            cache_write = attrs.get(GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS) or attrs.get(
                GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS, 0
            )
            if type(cache_write) is not int or cache_write < 0:
                cache_write = _tokens(cache_write)
            rates = schedule.fixed or schedule.rates(starts[row], inp)
            uncached = inp - cache_read - cache_write
            if uncached < 0:
                # Cache counts beyond the input count: the producer reported them apart from the input
                # (Anthropic's API shape) and nothing folded them in. Price what was reported.
                counts["usage_inconsistent"] = counts.get("usage_inconsistent", 0) + 1
                uncached = 0
            # Products in USD x 1e6 are exact for the usual prices; one division each gives clean values.
            if rates.separate_reasoning:
                reasoning = min(_tokens(attrs.get(GEN_AI_USAGE_REASONING_OUTPUT_TOKENS)), out)
                output_m = (out - reasoning) * rates.output + reasoning * rates.reasoning
            else:
                output_m = out * rates.output
            input_m = uncached * rates.input
            read_m = cache_read * rates.cache_read
            write_m = cache_write * rates.cache_write
            attrs[COST_USD] = (input_m + read_m + write_m + output_m) / 1e6 + rates.per_request
            attrs[COST_INPUT_USD] = input_m / 1e6
            attrs[COST_OUTPUT_USD] = output_m / 1e6
            attrs[COST_CACHE_READ_USD] = read_m / 1e6
            attrs[COST_CACHE_WRITE_USD] = write_m / 1e6
            attrs[COST_SOURCE] = SOURCE_COMPUTED
        for event, count in counts.items():
            metrics.event(event, count)
        return batch

    return process


def _tokens(value: Any) -> int:
    """A token count as a non-negative int (0 when absent or not a number)."""
    if type(value) is int:
        return value if value > 0 else 0
    if value is None or isinstance(value, bool):
        return 0
    try:
        number = float(value)
    except (TypeError, ValueError):
        return 0
    return int(number) if math.isfinite(number) and number > 0 else 0


def _usd(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) and number >= 0 else None


def _copy_provided(attrs: Attributes) -> bool:
    """Copy a cost the span already carries to our attributes; False when it carries none."""
    total = _usd(attrs.get(OPENINFERENCE_COST_TOTAL))
    if total is None:
        total = _usd(attrs.get(OPENLIT_COST))
    prompt = _usd(attrs.get(OPENINFERENCE_COST_PROMPT))
    completion = _usd(attrs.get(OPENINFERENCE_COST_COMPLETION))
    if total is None:
        if prompt is None and completion is None:
            return False
        total = (prompt or 0.0) + (completion or 0.0)
    _drop_cost(attrs)
    attrs[COST_USD] = total
    cache_read = _usd(attrs.get(OPENINFERENCE_COST_CACHE_READ))
    cache_write = _usd(attrs.get(OPENINFERENCE_COST_CACHE_WRITE))
    uncached = _usd(attrs.get(OPENINFERENCE_COST_INPUT))
    if uncached is None and prompt is not None:
        uncached = round(max(prompt - (cache_read or 0.0) - (cache_write or 0.0), 0.0), _DIGITS)
    for key, value in (
        (COST_INPUT_USD, uncached),
        (COST_CACHE_READ_USD, cache_read),
        (COST_CACHE_WRITE_USD, cache_write),
        (COST_OUTPUT_USD, completion),
    ):
        if value is not None:
            attrs[key] = value
    attrs[COST_SOURCE] = SOURCE_PROVIDED
    return True


def _drop_cost(attrs: Attributes) -> None:
    for key in _COST_KEYS:
        attrs.pop(key, None)


factory = Factory("cost", CostConfig, create)
