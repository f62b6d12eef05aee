"""Token prices per (provider, model), resolved once and kept as plain floats.

The cost processor prices whole batches with arithmetic only; this module does the slow part once per
distinct (provider, model): it matches the names robustly (case, ``provider/model`` prefixes, Bedrock ids,
dated versions, configured aliases such as Azure deployment names), takes the user's override or the
price table shipped in PyPI ``genai-prices``, applies a configured discount, and turns the result into a
``PriceSchedule`` of per-token USD rates.

Token accounting follows genai-prices: input tokens include cache reads and writes, output tokens include
reasoning tokens; a cache or reasoning price the table does not list bills those tokens at the input or
output rate. Tiered table prices (the rate for *all* tokens rises once a request's input tokens pass a
threshold) and time-conditional prices (start dates, off-peak hours) are evaluated per span, on integers.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from genai_prices import types as gp_types
from genai_prices.data_snapshot import find_provider_by_id, get_snapshot

logger = logging.getLogger(__name__)

_NS_PER_DAY = 86_400 * 1_000_000_000
_US_PER_DAY = 86_400 * 1_000_000

# OpenTelemetry ``gen_ai.provider.name`` values (and older ``gen_ai.system`` spellings) -> genai-prices ids.
# ``None``: a provider with no public per-token price table (self-hosted, or not in genai-prices).
PROVIDER_IDS: Mapping[str, str | None] = {
    "openai": "openai",
    "anthropic": "anthropic",
    "aws.bedrock": "aws",
    "bedrock": "aws",
    "aws": "aws",
    "azure.ai.openai": "azure",
    "azure.ai.inference": "azure",
    "az.ai.openai": "azure",
    "az.ai.inference": "azure",
    "azure": "azure",
    "cohere": "cohere",
    "deepseek": "deepseek",
    "gcp.gemini": "google",
    "gcp.vertex_ai": "google",
    "gcp.gen_ai": "google",
    "gemini": "google",
    "vertex_ai": "google",
    "vertexai": "google",
    "google": "google",
    "groq": "groq",
    "mistral_ai": "mistral",
    "mistralai": "mistral",
    "mistral": "mistral",
    "perplexity": "perplexity",
    "x_ai": "x-ai",
    "xai": "x-ai",
    "x-ai": "x-ai",
    "together": "together",
    "together_ai": "together",
    "fireworks": "fireworks",
    "fireworks_ai": "fireworks",
    "openrouter": "openrouter",
    "ibm.watsonx.ai": None,
    "ollama": None,
    "vllm": None,
    "huggingface": None,
    "local": None,
}

# ``provider/model`` prefixes that name the provider (LiteLLM, OpenRouter and gateway spellings).
_PREFIX_PROVIDERS: Mapping[str, str] = {
    "openai": "openai",
    "anthropic": "anthropic",
    "azure": "azure",
    "bedrock": "aws",
    "aws": "aws",
    "google": "google",
    "gemini": "google",
    "vertex_ai": "google",
    "mistral": "mistral",
    "mistralai": "mistral",
    "deepseek": "deepseek",
    "groq": "groq",
    "cohere": "cohere",
    "x-ai": "x-ai",
    "xai": "x-ai",
    "perplexity": "perplexity",
}

_DATE_SUFFIX = re.compile(r"(?:[-@_]20\d\d-?[01]\d-?[0-3]\d|-latest)$")
_BEDROCK_SUFFIX = re.compile(r"(?:-v\d+(?::\d+)?|:\d+)$")
_BEDROCK_ID = re.compile(
    r"^(?:(?:us|eu|apac|au|ca|jp|us-gov|global)\.)?"
    r"(?:anthropic|amazon|meta|mistral|cohere|ai21|deepseek|writer|qwen|openai)\.(?P<model>.+)$"
)


@dataclass(frozen=True, slots=True)
class Rates:
    """USD per million tokens (and USD per request) for one model at one point in time.

    Per-million values keep the arithmetic exact for the usual prices: tokens times price is an exact
    float, and one division by a million gives the nearest float to the true cost.
    """

    input: float
    output: float
    cache_read: float
    cache_write: float
    reasoning: float
    per_request: float = 0.0
    # Whether reasoning tokens are billed at a rate of their own rather than the output rate.
    separate_reasoning: bool = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "separate_reasoning", self.reasoning != self.output)

    def scaled(self, multiplier: float) -> Rates:
        return Rates(
            self.input * multiplier,
            self.output * multiplier,
            self.cache_read * multiplier,
            self.cache_write * multiplier,
            self.reasoning * multiplier,
            self.per_request * multiplier,
        )

    @classmethod
    def per_million(
        cls,
        *,
        input: float = 0.0,
        output: float = 0.0,
        cache_read: float | None = None,
        cache_write: float | None = None,
        reasoning: float | None = None,
        per_request: float = 0.0,
    ) -> Rates:
        """Rates from prices per million tokens; cache prices default to the input price, reasoning to
        the output price (those tokens are part of the input and output counts)."""
        return cls(
            input,
            output,
            input if cache_read is None else cache_read,
            input if cache_write is None else cache_write,
            output if reasoning is None else reasoning,
            per_request,
        )


@dataclass(frozen=True, slots=True)
class _Condition:
    """A genai-prices price constraint, evaluated on a span's start time in nanoseconds."""

    kind: Literal["since", "daily"]
    since_ns: int = 0
    start_us: int = 0  # time of day, UTC, microseconds
    end_us: int = 0

    def active(self, time_ns: int) -> bool:
        if self.kind == "since":
            return time_ns >= self.since_ns
        tod = (time_ns // 1000) % _US_PER_DAY
        if self.end_us < self.start_us:
            return tod >= self.start_us or tod < self.end_us
        return self.start_us <= tod < self.end_us


@dataclass(frozen=True, slots=True)
class _Tiered:
    """Rates by the request's input-token count: ``bands`` are (threshold, rates), ascending; a band
    applies when the input tokens exceed its threshold (the base band's threshold is -1)."""

    bands: tuple[tuple[int, Rates], ...]

    def at(self, input_tokens: int) -> Rates:
        for threshold, rates in reversed(self.bands):
            if input_tokens > threshold:
                return rates
        return self.bands[0][1]


@dataclass(frozen=True, slots=True)
class PriceSchedule:
    """The price of one (provider, model): fixed rates, or rates that depend on time and request size."""

    model_id: str
    provider_id: str
    source: Literal["table", "override"]
    fixed: Rates | None
    # Only when ``fixed`` is None: (condition or None for always, tiers), tried last to first.
    conditional: tuple[tuple[_Condition | None, _Tiered], ...] = ()

    def rates(self, time_ns: int, input_tokens: int) -> Rates:
        """The rates for a request that started at ``time_ns`` (0: now) with ``input_tokens``."""
        if self.fixed is not None:
            return self.fixed
        if time_ns <= 0:
            time_ns = int(dt.datetime.now(dt.UTC).timestamp() * 1e9)
        chosen = self.conditional[0][1]
        for condition, tiers in reversed(self.conditional):
            if condition is None or condition.active(time_ns):
                chosen = tiers
                break
        return chosen.at(input_tokens)


@dataclass(frozen=True, slots=True)
class PriceOverride:
    """A user price: ``model`` (case-insensitive; dated and prefixed spellings match too), optionally
    only for ``provider``."""

    model: str
    rates: Rates
    provider: str | None = None


@dataclass(frozen=True, slots=True)
class Discount:
    """Multiply prices matching ``provider`` and/or ``model`` (either may be None for any)."""

    multiplier: float
    provider: str | None = None
    model: str | None = None


def provider_id(provider: str | None) -> tuple[bool, str | None]:
    """Map a span's provider name to a genai-prices provider id.

    Returns (known, id): ``(True, None)`` when the span names no provider, ``(False, None)`` when it
    names one that has no price table (so no table price may be guessed for it).
    """
    if not provider:
        return True, None
    name = provider.strip().lower()
    if name in PROVIDER_IDS:
        mapped = PROVIDER_IDS[name]
        return mapped is not None, mapped
    found = find_provider_by_id(get_snapshot().providers, name)
    return (True, found.id) if found is not None else (False, None)


def model_candidates(model: str, aliases: Mapping[str, str]) -> list[tuple[str, str | None]]:
    """Spellings of ``model`` to try, most specific first, each with the provider its prefix names."""
    out: list[tuple[str, str | None]] = []

    def add(name: str, hint: str | None) -> None:
        name = name.strip()
        if not name:
            return
        aliased = aliases.get(name)
        if aliased is not None and (aliased, hint) not in out:
            out.append((aliased, hint))
        if (name, hint) not in out:
            out.append((name, hint))

    name = model.strip().lower()
    add(name, None)
    hint: str | None = None
    if "/" in name:
        parts = name.split("/")
        hint = next((_PREFIX_PROVIDERS[p] for p in parts[:-1] if p in _PREFIX_PROVIDERS), None)
        # Azure and gateways name a deployment after the prefix: its alias may be configured.
        add(parts[-1], hint)
    for base, base_hint in list(out):
        bedrock = _BEDROCK_ID.match(base)
        if bedrock is not None:
            add(_BEDROCK_SUFFIX.sub("", bedrock.group("model")), base_hint)
    for base, base_hint in list(out):
        stripped = _BEDROCK_SUFFIX.sub("", base) if ":" in base else base
        undated = _DATE_SUFFIX.sub("", stripped)
        if undated != base:
            add(undated, base_hint)
    return out


class PriceBook:
    """Resolves (provider, model) to a ``PriceSchedule``: user overrides first, then the table.

    Resolution is cached; the cache is bounded because model names come from clients.
    """

    def __init__(
        self,
        overrides: Sequence[PriceOverride] = (),
        discounts: Sequence[Discount] = (),
        aliases: Mapping[str, str] | None = None,
        max_cached: int = 10_000,
    ) -> None:
        self._overrides = tuple(overrides)
        self._discounts = tuple(discounts)
        self._aliases = {k.strip().lower(): v.strip().lower() for k, v in (aliases or {}).items()}
        self._max_cached = max_cached
        self._cache: dict[tuple[str | None, str], PriceSchedule | None] = {}

    def lookup(self, provider: str | None, model: str) -> PriceSchedule | None:
        """The price of ``model`` as sold by ``provider``, or None when no price is known."""
        key = (provider, model)
        try:
            return self._cache[key]
        except KeyError:
            pass
        schedule = self._resolve(provider, model)
        if len(self._cache) >= self._max_cached:
            self._cache.clear()
        self._cache[key] = schedule
        if schedule is None:
            logger.info(
                "No price is known for model %r of provider %r; its spans get no cost.", model, provider
            )
        return schedule

    def _resolve(self, provider: str | None, model: str) -> PriceSchedule | None:
        provider_name = provider.strip().lower() if provider else None
        known, gp_provider = provider_id(provider_name)
        candidates = model_candidates(model, self._aliases)
        for name, hint in candidates:
            override = self._override(provider_name, gp_provider or hint, name)
            if override is not None:
                custom = PriceSchedule(name, provider_name or "", "override", override.rates)
                return self._discounted(custom, provider_name, gp_provider, name)
        if not known:
            return None
        for name, hint in candidates:
            found = _table_model(gp_provider or hint, name)
            if found is not None:
                table_provider, info = found
                table = _schedule_from_table(table_provider, info)
                if table is None:
                    return None  # the model is known but priced in units spans do not carry
                return self._discounted(table, provider_name, table_provider.id, name)
        return None

    def _override(self, provider: str | None, gp_provider: str | None, name: str) -> PriceOverride | None:
        for override in self._overrides:
            if override.model.lower() != name:
                continue
            if override.provider is None or override.provider.lower() in (provider, gp_provider):
                return override
        return None

    def _discounted(
        self, schedule: PriceSchedule, provider: str | None, gp_provider: str | None, name: str
    ) -> PriceSchedule:
        for discount in self._discounts:
            if discount.provider is not None and discount.provider.lower() not in (provider, gp_provider):
                continue
            if discount.model is not None and discount.model.lower() not in (name, schedule.model_id):
                continue
            return _scaled(schedule, discount.multiplier)
        return schedule


def _scaled(schedule: PriceSchedule, multiplier: float) -> PriceSchedule:
    if multiplier == 1.0:
        return schedule
    return PriceSchedule(
        schedule.model_id,
        schedule.provider_id,
        schedule.source,
        schedule.fixed.scaled(multiplier) if schedule.fixed is not None else None,
        tuple(
            (cond, _Tiered(tuple((t, r.scaled(multiplier)) for t, r in tiers.bands)))
            for cond, tiers in schedule.conditional
        ),
    )


def _table_model(provider: str | None, name: str) -> tuple[gp_types.Provider, gp_types.ModelInfo] | None:
    try:
        return get_snapshot().find_provider_model(name, None, provider, None)
    except LookupError:
        return None


def _schedule_from_table(provider: gp_types.Provider, info: gp_types.ModelInfo) -> PriceSchedule | None:
    prices = info.prices
    entries: list[tuple[_Condition | None, gp_types.ModelPrice]]
    if isinstance(prices, gp_types.ModelPrice):
        entries = [(None, prices)]
    else:
        entries = [(_condition(c.constraint), c.prices) for c in prices]
    conditional: list[tuple[_Condition | None, _Tiered]] = []
    for condition, model_price in entries:
        tiers = _tiers(model_price)
        if tiers is None:
            return None  # priced by units spans do not carry (audio seconds, characters...)
        conditional.append((condition, tiers))
    if len(conditional) == 1 and conditional[0][0] is None and len(conditional[0][1].bands) == 1:
        return PriceSchedule(info.id, provider.id, "table", conditional[0][1].bands[0][1])
    return PriceSchedule(info.id, provider.id, "table", None, tuple(conditional))


def _condition(
    constraint: gp_types.StartDateConstraint | gp_types.TimeOfDateConstraint | None,
) -> _Condition | None:
    if constraint is None:
        return None
    if isinstance(constraint, gp_types.StartDateConstraint):
        since = dt.datetime.combine(constraint.start_date, dt.time(0), tzinfo=dt.UTC)
        return _Condition("since", since_ns=int(since.timestamp()) * 1_000_000_000)
    return _Condition("daily", start_us=_utc_us(constraint.start_time), end_us=_utc_us(constraint.end_time))


def _utc_us(value: dt.time) -> int:
    if value.tzinfo is not None:
        value = dt.datetime.combine(dt.date(1970, 1, 2), value).astimezone(dt.UTC).time()
    return ((value.hour * 60 + value.minute) * 60 + value.second) * 1_000_000 + value.microsecond


_PRICE_KEYS = ("input_mtok", "output_mtok", "cache_read_mtok", "cache_write_mtok", "output_reasoning_mtok")


def _tiers(model_price: gp_types.ModelPrice) -> _Tiered | None:
    values: dict[str, Any] = {key: getattr(model_price, key, None) for key in _PRICE_KEYS}
    requests = getattr(model_price, "requests_kcount", None)
    if values["input_mtok"] is None and values["output_mtok"] is None and requests is None:
        return None
    thresholds = sorted(
        {
            tier.start
            for value in values.values()
            if isinstance(value, gp_types.TieredPrices)
            for tier in value.tiers
        }
    )
    per_request = float(requests) / 1000.0 if isinstance(requests, Decimal) else 0.0
    bands: list[tuple[int, Rates]] = []
    for threshold in [-1, *thresholds]:
        # The input count just above ``threshold`` selects this band's tier for every price key.
        at = {key: _tier_price(value, threshold + 1) for key, value in values.items()}
        inp, out = at["input_mtok"] or 0.0, at["output_mtok"] or 0.0
        bands.append(
            (
                threshold,
                Rates.per_million(
                    input=inp,
                    output=out,
                    cache_read=at["cache_read_mtok"],
                    cache_write=at["cache_write_mtok"],
                    reasoning=at["output_reasoning_mtok"],
                    per_request=per_request,
                ),
            )
        )
    return _Tiered(tuple(bands))


def _tier_price(value: Decimal | gp_types.TieredPrices | None, input_tokens: int) -> float | None:
    if value is None:
        return None
    if isinstance(value, Decimal):
        return float(value)
    price = value.base
    for tier in reversed(value.tiers):
        if input_tokens > tier.start:
            price = tier.price
            break
    return float(price)


def table_version() -> str:
    """The version of the bundled price table (the genai-prices package version)."""
    import genai_prices

    return str(genai_prices.__version__)
