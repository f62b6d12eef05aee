"""The cost processor: exact USD for known cases, agreement with genai-prices, overrides, discounts,
unknown models, provided costs, robust model names, idempotence and batch speed."""

from __future__ import annotations

import copy
import datetime as dt
import logging
import time
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest
from genai_prices import Usage, calc_price
from pydantic import ValidationError

from llm_observer.kernel.batch import SpanBatch
from llm_observer.kernel.component import CreateContext, Processor
from llm_observer.kernel.telemetry import Telemetry
from llm_observer.processors import cost, pricing
from llm_observer.semconv.attributes import (
    COST_CACHE_READ_USD,
    COST_CACHE_WRITE_USD,
    COST_INPUT_USD,
    COST_OUTPUT_USD,
    COST_SOURCE,
    COST_USD,
)
from tests.support import span_batch

NOW_NS = time.time_ns()


def make_processor(tmp_path: Path, **config: Any) -> tuple[Processor, Telemetry]:
    telemetry = Telemetry()
    ctx = CreateContext("cost", tmp_path, telemetry, logging.getLogger("test.cost"))
    return cost.factory.create(ctx, cost.CostConfig.model_validate(config)), telemetry


def events(telemetry: Telemetry, name: str) -> float:
    value = telemetry.registry.get_sample_value(
        "llm_observer_component_events_total", {"component": "cost", "event": name}
    )
    return value or 0.0


def batch_of(*spans: dict[str, Any], start_ns: int = NOW_NS) -> SpanBatch:
    return span_batch(
        *(dict(attrs) for attrs in spans), name="chat", start=start_ns, end=start_ns + 1_000_000
    )


def llm_span(
    model: str,
    provider: str | None = "openai",
    *,
    input_tokens: int = 0,
    output_tokens: int = 0,
    cache_read: int | None = None,
    cache_write: int | None = None,
    reasoning: int | None = None,
    response_model: str | None = None,
) -> dict[str, Any]:
    attrs: dict[str, Any] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": model,
        "gen_ai.usage.input_tokens": input_tokens,
        "gen_ai.usage.output_tokens": output_tokens,
    }
    if provider is not None:
        attrs["gen_ai.provider.name"] = provider
    if response_model is not None:
        attrs["gen_ai.response.model"] = response_model
    if cache_read is not None:
        attrs["gen_ai.usage.cache_read.input_tokens"] = cache_read
    if cache_write is not None:
        attrs["gen_ai.usage.cache_write.input_tokens"] = cache_write
    if reasoning is not None:
        attrs["gen_ai.usage.reasoning.output_tokens"] = reasoning
    return attrs


def cost_attrs(attrs: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in attrs.items() if k.startswith("llm_observer.cost.")}


def test_cost_gpt_4o_with_cache_read_is_exact(tmp_path: Path) -> None:
    process, _ = make_processor(tmp_path)
    batch = process(batch_of(llm_span("gpt-4o", input_tokens=1000, cache_read=200, output_tokens=500)))
    assert cost_attrs(batch.attributes[0]) == {
        COST_USD: 0.00725,
        COST_INPUT_USD: 0.002,  # 800 uncached input tokens at $2.50/M
        COST_CACHE_READ_USD: 0.00025,  # 200 cache reads at $1.25/M
        COST_CACHE_WRITE_USD: 0.0,
        COST_OUTPUT_USD: 0.005,  # 500 output tokens at $10/M
        COST_SOURCE: "computed",
    }


@pytest.mark.parametrize("model", ["claude-sonnet-4-20250514", "claude-3-5-sonnet-20241022"])
def test_cost_anthropic_cache_read_and_write_are_priced_apart(tmp_path: Path, model: str) -> None:
    # Input tokens include the cache reads and writes (normalize folds Anthropic's separate counts in).
    process, _ = make_processor(tmp_path)
    span = llm_span(model, "anthropic", input_tokens=1000, cache_read=200, cache_write=300, output_tokens=500)
    attrs = process(batch_of(span)).attributes[0]
    # $3/M input, $0.30/M cache read, $3.75/M cache write (5 min), $15/M output
    assert attrs[COST_INPUT_USD] == 0.0015
    assert attrs[COST_CACHE_READ_USD] == 0.00006
    assert attrs[COST_CACHE_WRITE_USD] == 0.001125
    assert attrs[COST_OUTPUT_USD] == 0.0075
    assert attrs[COST_USD] == 0.010185


def test_cost_older_cache_creation_spelling_is_priced(tmp_path: Path) -> None:
    process, _ = make_processor(tmp_path)
    span = llm_span("claude-3-5-sonnet-20241022", "anthropic", input_tokens=1000, output_tokens=0)
    span["gen_ai.usage.cache_creation.input_tokens"] = 1000
    attrs = process(batch_of(span)).attributes[0]
    assert attrs[COST_CACHE_WRITE_USD] == 0.00375
    assert attrs[COST_INPUT_USD] == 0.0


@pytest.mark.parametrize(
    ("provider", "model", "usage", "when"),
    [
        (
            "openai",
            "gpt-4o-mini",
            {"input_tokens": 12_345, "cache_read_tokens": 1_000, "output_tokens": 678},
            None,
        ),
        ("openai", "gpt-4.1", {"input_tokens": 5_000, "cache_read_tokens": 4_000, "output_tokens": 50}, None),
        ("anthropic", "claude-3-haiku-20240307", {"input_tokens": 9_000, "output_tokens": 1_000}, None),
        (
            "anthropic",
            "claude-opus-4-20250514",
            {
                "input_tokens": 3_000,
                "cache_read_tokens": 1_000,
                "cache_write_tokens": 1_500,
                "output_tokens": 70,
            },
            None,
        ),
        # tiered: every token costs more once a request passes 200k input tokens
        ("google", "gemini-2.5-pro", {"input_tokens": 150_000, "output_tokens": 2_000}, None),
        ("google", "gemini-2.5-pro", {"input_tokens": 250_000, "output_tokens": 2_000}, None),
        # conditional on the request date: o3's price fell on 2025-06-10
        (
            "openai",
            "o3",
            {"input_tokens": 1_000, "output_tokens": 1_000},
            dt.datetime(2025, 5, 1, tzinfo=dt.UTC),
        ),
        (
            "openai",
            "o3",
            {"input_tokens": 1_000, "output_tokens": 1_000},
            dt.datetime(2025, 7, 1, tzinfo=dt.UTC),
        ),
        # conditional on the time of day: DeepSeek's off-peak hours
        (
            "deepseek",
            "deepseek-chat",
            {"input_tokens": 10_000, "output_tokens": 500},
            dt.datetime(2025, 3, 1, 2, 0, tzinfo=dt.UTC),
        ),
        (
            "deepseek",
            "deepseek-chat",
            {"input_tokens": 10_000, "output_tokens": 500},
            dt.datetime(2025, 3, 1, 20, 0, tzinfo=dt.UTC),
        ),
        (
            "aws.bedrock",
            "anthropic.claude-3-5-sonnet-20241022-v2:0",
            {"input_tokens": 2_000, "output_tokens": 300},
            None,
        ),
        ("mistral_ai", "mistral-large-latest", {"input_tokens": 2_000, "output_tokens": 300}, None),
        ("x_ai", "grok-3", {"input_tokens": 2_000, "output_tokens": 300}, None),
    ],
)
def test_cost_matches_genai_prices_calc_price(
    tmp_path: Path, provider: str, model: str, usage: dict[str, int], when: dt.datetime | None
) -> None:
    start = when or dt.datetime.now(dt.UTC)
    process, _ = make_processor(tmp_path)
    span = llm_span(
        model,
        provider,
        input_tokens=usage["input_tokens"],
        output_tokens=usage["output_tokens"],
        cache_read=usage.get("cache_read_tokens"),
        cache_write=usage.get("cache_write_tokens"),
    )
    attrs = process(batch_of(span, start_ns=int(start.timestamp()) * 1_000_000_000)).attributes[0]
    provider_id = pricing.provider_id(provider)[1]
    expected = calc_price(
        Usage(**usage), model_ref=model, provider_id=provider_id, genai_request_timestamp=start
    )
    assert attrs[COST_USD] == pytest.approx(float(expected.total_price), rel=1e-9)
    assert attrs[COST_OUTPUT_USD] == pytest.approx(float(expected.output_price), rel=1e-9)
    input_parts = attrs[COST_INPUT_USD] + attrs[COST_CACHE_READ_USD] + attrs[COST_CACHE_WRITE_USD]
    assert input_parts == pytest.approx(float(expected.input_price), rel=1e-9)


def test_cost_time_and_size_dependent_prices_differ(tmp_path: Path) -> None:
    # The cases above agree with genai-prices; these show they really pick different prices.
    process, _ = make_processor(tmp_path)
    before = int(dt.datetime(2025, 5, 1, tzinfo=dt.UTC).timestamp()) * 1_000_000_000
    after = int(dt.datetime(2025, 7, 1, tzinfo=dt.UTC).timestamp()) * 1_000_000_000
    o3 = llm_span("o3", input_tokens=1_000_000)
    assert process(batch_of(o3, start_ns=before)).attributes[0][COST_USD] == 10.0
    assert process(batch_of(o3, start_ns=after)).attributes[0][COST_USD] == 2.0
    small = process(batch_of(llm_span("gemini-2.5-pro", "gcp.gemini", input_tokens=200_000)))
    large = process(batch_of(llm_span("gemini-2.5-pro", "gcp.gemini", input_tokens=200_001)))
    assert small.attributes[0][COST_USD] == 0.25  # $1.25/M
    assert large.attributes[0][COST_USD] == pytest.approx(200_001 * 2.5e-6, rel=1e-12)  # $2.50/M


def test_cost_reasoning_tokens_are_billed_as_output(tmp_path: Path) -> None:
    # OpenAI's o-series: reasoning tokens are part of the output count, at the output price.
    process, _ = make_processor(tmp_path)
    start = int(dt.datetime(2025, 7, 1, tzinfo=dt.UTC).timestamp()) * 1_000_000_000
    span = llm_span("o3-2025-04-16", input_tokens=0, output_tokens=1_000_000, reasoning=800_000)
    assert process(batch_of(span, start_ns=start)).attributes[0][COST_OUTPUT_USD] == 8.0


def test_cost_reasoning_price_of_its_own_is_used(tmp_path: Path) -> None:
    process, _ = make_processor(tmp_path, prices=[{"model": "thinker", "output": 10.0, "reasoning": 2.0}])
    span = llm_span("thinker", input_tokens=0, output_tokens=1_000_000, reasoning=250_000)
    attrs = process(batch_of(span)).attributes[0]
    assert attrs[COST_OUTPUT_USD] == 8.0  # 750k at $10/M + 250k at $2/M


@pytest.mark.parametrize(
    ("provider", "model"),
    [
        ("openai", "gpt-4o-2024-08-06"),  # a dated version the table lists
        ("openai", "gpt-4o-2099-12-31"),  # a dated version it does not: the undated model's price
        ("openai", "GPT-4o"),
        ("openai", "openai/gpt-4o"),
        (None, "openai/gpt-4o"),
        ("openai", " gpt-4o "),
        (None, "gpt-4o"),
        ("azure.ai.openai", "gpt-4o"),
    ],
)
def test_cost_model_names_match_robustly(tmp_path: Path, provider: str | None, model: str) -> None:
    process, _ = make_processor(tmp_path)
    span = llm_span(model, provider, input_tokens=1000, cache_read=200, output_tokens=500)
    assert process(batch_of(span)).attributes[0][COST_USD] == 0.00725


def test_cost_prices_the_response_model_first(tmp_path: Path) -> None:
    process, _ = make_processor(tmp_path)
    span = llm_span("gpt-4o", input_tokens=1_000_000, response_model="gpt-4o-mini-2024-07-18")
    assert process(batch_of(span)).attributes[0][COST_USD] == 0.15  # gpt-4o-mini: $0.15/M input


def test_cost_azure_deployment_alias(tmp_path: Path) -> None:
    process, telemetry = make_processor(tmp_path, model_aliases={"prod-chat-deployment": "gpt-4o"})
    span = llm_span(
        "prod-chat-deployment", "azure.ai.openai", input_tokens=1000, cache_read=200, output_tokens=500
    )
    unmapped = llm_span("other-deployment", "azure.ai.openai", input_tokens=1000, output_tokens=500)
    batch = process(batch_of(span, unmapped))
    assert batch.attributes[0][COST_USD] == 0.00725
    assert COST_USD not in batch.attributes[1]
    assert events(telemetry, "unknown_model") == 1


def test_cost_override_wins_over_the_table(tmp_path: Path) -> None:
    process, _ = make_processor(tmp_path, prices=[{"model": "gpt-4o", "input": 1.0, "output": 2.0}])
    span = llm_span("gpt-4o-2024-08-06", input_tokens=1000, cache_read=200, output_tokens=500)
    attrs = process(batch_of(span)).attributes[0]
    # No cache price given: cache reads are billed at the override's input price.
    assert cost_attrs(attrs) == {
        COST_USD: 0.002,
        COST_INPUT_USD: 0.0008,
        COST_CACHE_READ_USD: 0.0002,
        COST_CACHE_WRITE_USD: 0.0,
        COST_OUTPUT_USD: 0.001,
        COST_SOURCE: "computed",
    }


def test_cost_override_for_custom_model_per_token_and_per_request(tmp_path: Path) -> None:
    process, _ = make_processor(
        tmp_path,
        prices=[
            {"model": "acme-ft-7b", "provider": "vllm", "input": 0.5, "output": 1.5, "per_request": 0.001},
            {"model": "acme-ft-7b", "input": 9.0, "output": 9.0},
        ],
    )
    self_hosted = llm_span("acme-ft-7b", "vllm", input_tokens=2_000_000, output_tokens=1_000_000)
    elsewhere = llm_span("ACME-FT-7B", "together", input_tokens=1_000_000, output_tokens=0)
    batch = process(batch_of(self_hosted, elsewhere))
    assert batch.attributes[0][COST_USD] == 1.0 + 1.5 + 0.001
    assert batch.attributes[1][COST_USD] == 9.0


def test_cost_override_with_cache_prices(tmp_path: Path) -> None:
    prices = [{"model": "m", "input": 4.0, "output": 8.0, "cache_read": 1.0, "cache_write": 5.0}]
    process, _ = make_processor(tmp_path, prices=prices)
    span = llm_span("m", "anthropic", input_tokens=3_000_000, cache_read=1_000_000, cache_write=1_000_000)
    attrs = process(batch_of(span)).attributes[0]
    assert (attrs[COST_INPUT_USD], attrs[COST_CACHE_READ_USD], attrs[COST_CACHE_WRITE_USD]) == (4.0, 1.0, 5.0)
    assert attrs[COST_USD] == 10.0


def test_cost_discounts_by_provider_and_model(tmp_path: Path) -> None:
    process, _ = make_processor(
        tmp_path,
        discounts=[
            {"provider": "anthropic", "model": "claude-3-haiku", "multiplier": 0.5},
            {"provider": "openai", "multiplier": 0.8},
        ],
    )
    gpt = llm_span("gpt-4o", input_tokens=1000, cache_read=200, output_tokens=500)
    haiku = llm_span("claude-3-haiku-20240307", "anthropic", input_tokens=1_000_000)  # $0.25/M
    sonnet = llm_span("claude-3-5-sonnet-20241022", "anthropic", input_tokens=1_000_000)  # $3/M
    batch = process(batch_of(gpt, haiku, sonnet))
    assert batch.attributes[0][COST_USD] == 0.0058
    assert batch.attributes[1][COST_USD] == 0.125
    assert batch.attributes[2][COST_USD] == 3.0


@pytest.mark.parametrize(
    ("provider", "model"),
    [
        ("openai", "no-such-model-anywhere"),
        ("ollama", "llama3"),  # self-hosted: no table price may be guessed
        ("vllm", "gpt-4o"),
        ("openai", "claude-3-5-sonnet-20241022"),  # not sold by that provider
    ],
)
def test_cost_unknown_model_gets_no_cost_and_is_counted(tmp_path: Path, provider: str, model: str) -> None:
    process, telemetry = make_processor(tmp_path)
    batch = process(batch_of(llm_span(model, provider, input_tokens=10, output_tokens=10)))
    assert cost_attrs(batch.attributes[0]) == {}
    assert events(telemetry, "unknown_model") == 1


def test_cost_unknown_model_removes_a_cost_the_client_forged(tmp_path: Path) -> None:
    process, _ = make_processor(tmp_path)
    span = llm_span("no-such-model", input_tokens=10)
    span[COST_USD] = 123.0
    span[COST_SOURCE] = "provided"
    no_usage = {"gen_ai.operation.name": "chat", COST_USD: 5.0}
    batch = process(batch_of(span, no_usage))
    assert cost_attrs(batch.attributes[0]) == {}
    assert cost_attrs(batch.attributes[1]) == {}


def test_cost_spans_without_usage_or_model(tmp_path: Path) -> None:
    process, telemetry = make_processor(tmp_path)
    plain = {"http.method": "GET"}
    no_model = {"gen_ai.usage.input_tokens": 5}
    batch = process(batch_of(plain, no_model))
    assert batch.attributes[0] == {"http.method": "GET"}
    assert cost_attrs(batch.attributes[1]) == {}
    assert events(telemetry, "no_model") == 1
    assert events(telemetry, "unknown_model") == 0


def test_cost_provided_by_openlit_is_kept(tmp_path: Path) -> None:
    process, telemetry = make_processor(tmp_path)
    span = llm_span("gpt-4o", input_tokens=1000, output_tokens=500)
    span["gen_ai.usage.cost"] = 0.0042
    attrs = process(batch_of(span)).attributes[0]
    assert cost_attrs(attrs) == {COST_USD: 0.0042, COST_SOURCE: "provided"}
    assert attrs["gen_ai.usage.cost"] == 0.0042
    assert events(telemetry, "provided") == 1


def test_cost_provided_by_openinference_is_kept_with_parts(tmp_path: Path) -> None:
    process, _ = make_processor(tmp_path)
    span = {
        "llm.model_name": "some-model",
        "llm.cost.total": 0.03,
        "llm.cost.prompt": 0.01,
        "llm.cost.completion": 0.02,
        "llm.cost.prompt_details.cache_read": 0.004,
    }
    attrs = process(batch_of(span)).attributes[0]
    assert cost_attrs(attrs) == {
        COST_USD: 0.03,
        COST_INPUT_USD: 0.006,
        COST_CACHE_READ_USD: 0.004,
        COST_OUTPUT_USD: 0.02,
        COST_SOURCE: "provided",
    }
    only_parts = process(batch_of({"llm.cost.prompt": "0.5", "llm.cost.completion": 0.25})).attributes[0]
    assert only_parts[COST_USD] == 0.75


def test_cost_provided_can_be_ignored(tmp_path: Path) -> None:
    process, _ = make_processor(tmp_path, keep_provided=False)
    span = llm_span("gpt-4o", input_tokens=1000, cache_read=200, output_tokens=500)
    span["gen_ai.usage.cost"] = 1.0
    attrs = process(batch_of(span)).attributes[0]
    assert (attrs[COST_USD], attrs[COST_SOURCE]) == (0.00725, "computed")


def test_cost_is_idempotent(tmp_path: Path) -> None:
    process, _ = make_processor(tmp_path, discounts=[{"multiplier": 0.9}])
    spans = [
        llm_span("gpt-4o", input_tokens=1000, cache_read=200, output_tokens=500),
        llm_span("claude-sonnet-4-20250514", "anthropic", input_tokens=900, cache_write=100, output_tokens=5),
        {**llm_span("gpt-4o", input_tokens=1), "gen_ai.usage.cost": 0.5},
        llm_span("unknown-thing", input_tokens=1),
    ]
    once = process(batch_of(*spans))
    first = copy.deepcopy(once.attributes)
    twice = process(once)
    assert twice.attributes == first


def test_cost_tolerates_odd_token_values(tmp_path: Path) -> None:
    process, telemetry = make_processor(tmp_path)
    span = llm_span("gpt-4o", input_tokens=0, output_tokens=0)
    span["gen_ai.usage.input_tokens"] = "1000"
    span["gen_ai.usage.output_tokens"] = 500.0
    span["gen_ai.usage.cache_read.input_tokens"] = -3
    inconsistent = llm_span("gpt-4o", input_tokens=100, cache_read=300, output_tokens=0)
    batch = process(batch_of(span, inconsistent))
    assert batch.attributes[0][COST_USD] == 0.0075
    assert batch.attributes[1][COST_USD] == 0.000375  # the 300 cache reads, reported as they were
    assert events(telemetry, "usage_inconsistent") == 1


def test_cost_config_rejects_bad_values() -> None:
    with pytest.raises(ValidationError):
        cost.CostConfig.model_validate({"prices": [{"model": "m", "input": -1}]})
    with pytest.raises(ValidationError):
        cost.CostConfig.model_validate({"discounts": [{"multiplier": -0.5}]})
    with pytest.raises(ValidationError):
        cost.CostConfig.model_validate({"price": []})


def test_cost_factory_is_registered() -> None:
    (entry,) = entry_points(group="llm_observer.processors", name="cost")
    factory = entry.load()
    assert factory.type_name == "cost"
    assert factory.config_model is cost.CostConfig


def test_cost_prices_10k_span_batch_fast(tmp_path: Path) -> None:
    process, _ = make_processor(tmp_path)
    models = [
        ("openai", "gpt-4o"),
        ("openai", "gpt-4o-mini-2024-07-18"),
        ("anthropic", "claude-sonnet-4-20250514"),
        ("google", "gemini-2.5-pro"),
        ("openai", "o3"),
    ]
    spans = [
        llm_span(m, p, input_tokens=1000 + i, cache_read=i % 200, output_tokens=300, reasoning=10)
        for i in range(10_000)
        for p, m in [models[i % len(models)]]
    ]
    process(batch_of(*spans[:10]))  # resolve the prices once
    batch = batch_of(*spans)
    started = time.perf_counter()
    process(batch)
    elapsed = time.perf_counter() - started
    print(f"cost: 10,000 spans in {elapsed * 1000:.1f} ms ({10_000 / elapsed:,.0f} spans/s)")
    assert all(COST_USD in attrs for attrs in batch.attributes)
    expected = calc_price(
        Usage(input_tokens=1000, output_tokens=300), model_ref="gpt-4o", provider_id="openai"
    )
    assert batch.attributes[0][COST_USD] == pytest.approx(float(expected.total_price), rel=1e-9)


def test_cost_odd_attribute_types_never_raise(tmp_path: Path) -> None:
    process, telemetry = make_processor(tmp_path)
    odd_values: list[Any] = [["gpt-4o"], {"m": 1}, b"gpt-4o", True, 3.5, float("nan"), 10**30, -1, ""]
    spans = []
    for value in odd_values:
        for key in (
            "gen_ai.request.model",
            "gen_ai.response.model",
            "gen_ai.provider.name",
            "gen_ai.usage.input_tokens",
            "gen_ai.usage.cache_read.input_tokens",
            "gen_ai.usage.cost",
        ):
            span = llm_span("gpt-4o", input_tokens=1000, output_tokens=500)
            span[key] = value
            spans.append(span)
    batch = process(batch_of(*spans))
    for attrs in batch.attributes:
        if COST_USD in attrs:
            assert attrs[COST_USD] >= 0
            assert attrs[COST_SOURCE] in ("computed", "provided")
    assert events(telemetry, "unknown_model") + events(telemetry, "no_model") > 0
