"""Optimisation advice on a synthetic workload with planted waste, written through the real cost processor
and ClickHouse exporter into chDB: each finding is there, its saving equals the figure computed here by hand
from the genai-prices rates, and its example spans are the planted ones.

Each kind of waste is planted in its own project, so its figures are checked alone."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from llm_observer.processors.pricing import PriceBook
from llm_observer.query.insights.advice import (
    Advice,
    AdviceItem,
    AdviceSettings,
    Pricer,
    compute_advice,
)
from llm_observer.storage.clickhouse.queries import InvalidArgument, Tenant
from llm_observer.storage.vectors.embed import shared_embedder
from tests.query.insights.cost_support import (
    DAY,
    HOUR,
    MINUTE,
    CostPlant,
    LlmCall,
    S,
    cost_plant,
    messages,
)

__all__ = ["cost_plant"]

T0 = (time.time_ns() - 2 * DAY) // HOUR * HOUR
WINDOW = (T0 - HOUR, T0 + DAY)
SYSTEM_3K = " ".join(
    f"Rule {i}: answer politely, cite the policy section, never invent facts." for i in range(240)
)


def rates(model: str) -> tuple[float, float, float]:
    """(input, output, cache read) USD per million tokens of an OpenAI model, from the price table."""
    schedule = PriceBook().lookup("openai", model)
    assert schedule is not None and schedule.fixed is not None
    return schedule.fixed.input, schedule.fixed.output, schedule.fixed.cache_read


def usd(model: str, input_tokens: int, output_tokens: int) -> float:
    inp, out, _ = rates(model)
    return (input_tokens * inp + output_tokens * out) / 1e6


def planted() -> dict[str, list[LlmCall]]:
    """The workload, by project."""
    hour = [T0 + i * HOUR for i in range(24)]
    dups = [
        LlmCall(hour[i], project="dups", user="What are your opening hours?", temperature=0.0,
                input_tokens=120, output_tokens=40, output=f"We open at nine ({i}).")
        for i in range(5)
    ]  # fmt: skip
    # Same words at another temperature: another request, not a duplicate.
    dups.append(LlmCall(hour[6], project="dups", user="What are your opening hours?", temperature=0.7))
    dups += [
        LlmCall(hour[7], project="dups", user="How do I reset my password?", temperature=0.0,
                input_tokens=100, output_tokens=30),
        LlmCall(hour[8], project="dups", user="How can I reset my password?", temperature=0.0,
                input_tokens=100, output_tokens=30),
    ]  # fmt: skip
    cache = [
        LlmCall(T0 + i * 2 * MINUTE, project="cache", system=SYSTEM_3K, user=question,
                input_tokens=3100, output_tokens=50)
        for i, question in enumerate(
            ["Can I return shoes?", "Which carriers ship to Norway?", "Is gift wrapping free?", "Do you price match?"]
        )
    ]  # fmt: skip
    # The same prefix an hour later: its cache entry would have expired (a write, not a read).
    cache.append(LlmCall(T0 + 2 * HOUR, project="cache", system=SYSTEM_3K, user="Do you sell vouchers?",
                         input_tokens=3100, output_tokens=50))  # fmt: skip
    short = "You sort support tickets into billing, shipping or other. Answer with the label only."
    cheap = [
        LlmCall(T0 + i * MINUTE, project="cheap", system=short, user=f"Ticket {1000 + i}: parcel {i} is late",
                input_tokens=200, output_tokens=30)
        for i in range(10)
    ] + [
        LlmCall(T0 + (20 + i) * MINUTE, model="gpt-4o-mini", project="cheap", system=short,
                user=f"Ticket {2000 + i}: invoice {i} is wrong", input_tokens=200, output_tokens=28)
        for i in range(6)
    ]  # fmt: skip
    retry = [
        LlmCall(T0, project="retry", user="Translate 'good morning' into French", error=True,
                input_tokens=80, output_tokens=0),
        LlmCall(T0 + 20 * S, project="retry", user="Translate 'good morning' into French",
                input_tokens=80, output_tokens=10),
        # Failed, and asked again only an hour later: not a retry.
        LlmCall(T0 + 2 * HOUR, project="retry", user="Spell 'necessary'", error=True, input_tokens=40,
                output_tokens=0),
        LlmCall(T0 + 3 * HOUR, project="retry", user="Spell 'necessary'", input_tokens=40, output_tokens=5),
    ]  # fmt: skip
    trunc = [
        LlmCall(T0 + i * MINUTE, project="trunc", user=f"Write a long essay on topic {i}", max_tokens=256,
                input_tokens=100, output_tokens=256, finish="length", output="Once upon a time")
        for i in range(2)
    ] + [LlmCall(T0 + 5 * MINUTE, project="trunc", user="Write a short poem", max_tokens=256,
                 input_tokens=100, output_tokens=60, output="Roses")]  # fmt: skip
    draft = "Draft: the refund policy allows returns within 30 days of delivery."
    weather = "Weather summary: sunny with light winds all afternoon."
    unused = [
        # Trace 901: the draft is quoted by the next call (used).
        LlmCall(T0, project="unused", model="", trace=901, span=90100, duration_ms=10_000),
        LlmCall(T0 + S, project="unused", trace=901, parent=90100, user="Draft the refund answer",
                output=draft, input_tokens=150, output_tokens=20),
        LlmCall(T0 + 3 * S, project="unused", trace=901, parent=90100,
                user=f"Polish this: {draft}", output="Returns are accepted for 30 days.",
                input_tokens=170, output_tokens=15),
        # Trace 902: the weather summary is never read by the next call nor by the parent (unused).
        LlmCall(T0, project="unused", model="", trace=902, span=90200, duration_ms=10_000),
        LlmCall(T0 + S, project="unused", trace=902, parent=90200, user="Summarise the weather",
                output=weather, input_tokens=140, output_tokens=25),
        LlmCall(T0 + 3 * S, project="unused", trace=902, parent=90200, user="Write a haiku about autumn",
                output="Leaves drift", input_tokens=60, output_tokens=12),
    ]  # fmt: skip
    return {"dups": dups, "cache": cache, "cheap": cheap, "retry": retry, "trunc": trunc, "unused": unused}


def one(advice: Advice, kind: str, project: str) -> AdviceItem:
    found = [i for i in advice.items if i.kind == kind and i.project_id == project]
    assert len(found) == 1, f"{kind} in {project}: {found}"
    return found[0]


def projects_of(advice: Advice, kind: str) -> set[str]:
    return {i.project_id for i in advice.items if i.kind == kind}


@pytest.fixture(scope="module")
def embedder(tmp_path_factory: pytest.TempPathFactory) -> object:
    return shared_embedder(models_dir=tmp_path_factory.mktemp("models"))


async def test_advice_finds_each_planted_waste_with_its_saving(
    cost_plant: CostPlant, embedder: object
) -> None:
    work = planted()
    await cost_plant.write([call for calls in work.values() for call in calls])
    advice = compute_advice(
        cost_plant.store, Tenant("org-a", None), *WINDOW, embedder=embedder, settings=AdviceSettings()
    )  # type: ignore[arg-type]

    # Response caching, exact: four repeats of the opening-hours question.
    exact = one(advice, "response_cache_exact", "dups")
    assert exact.saving_usd == pytest.approx(4 * usd("gpt-4o", 120, 40), rel=1e-12)
    assert exact.calls == 4 and exact.groups == 1
    assert set(exact.span_ids) == {c.span_id for c in work["dups"][1:5]}
    assert projects_of(advice, "response_cache_exact") == {"dups"}

    # Response caching, near: the second password question.
    near = one(advice, "response_cache_near", "dups")
    assert near.saving_usd == pytest.approx(usd("gpt-4o", 100, 30), rel=1e-12)
    assert near.span_ids == (work["dups"][7].span_id,)
    assert near.details["similar_to_span_id"] == work["dups"][6].span_id

    # Provider prompt caching: 3 reads of the estimated prefix at the cache-read discount.
    system_doc = json.dumps([{"type": "text", "content": SYSTEM_3K}])
    prefix_tokens = [
        3100 * len(system_doc) // (len(system_doc) + len(messages(("user", c.user)))) for c in work["cache"]
    ]
    assert min(prefix_tokens) > 2900  # the planted prefix is about 3k tokens
    inp, _, read = rates("gpt-4o")
    cached = one(advice, "prompt_cache", "cache")
    expected = sum(prefix_tokens[1:4]) * (inp - read) / 1e6  # calls 2-4 within 5 minutes of the previous
    assert cached.saving_usd == pytest.approx(expected, rel=1e-12)
    assert cached.calls == 5 and cached.details["cache_reads_sum"] == 3
    assert projects_of(advice, "prompt_cache") == {"cache"}

    # Cheaper model: gpt-4o-mini already serves the ticket cluster with the same output length.
    cheaper = one(advice, "cheaper_model", "cheap")
    mini_in, mini_out, _ = rates("gpt-4o-mini")
    expected = usd("gpt-4o", 2000, 300) - (2000 * mini_in + 300 * mini_out) / 1e6
    assert cheaper.model == "gpt-4o" and cheaper.details["alternative_model"] == "gpt-4o-mini"
    assert cheaper.saving_usd == pytest.approx(expected, rel=1e-12)
    assert cheaper.calls == 10
    assert set(cheaper.span_ids) <= {c.span_id for c in work["cheap"][:10]}
    assert projects_of(advice, "cheaper_model") == {"cheap"}

    # Retries: the failed translation retried after 20 s; the spelling retried an hour later is not one.
    retry = one(advice, "retry", "retry")
    assert retry.saving_usd == pytest.approx(usd("gpt-4o", 80, 0), rel=1e-12)
    assert retry.span_ids == (work["retry"][0].span_id,) and retry.calls == 1

    # Truncations: the two essays cut at 256 tokens.
    trunc = one(advice, "truncation", "trunc")
    assert trunc.saving_usd == pytest.approx(2 * usd("gpt-4o", 100, 256), rel=1e-12)
    assert set(trunc.span_ids) == {c.span_id for c in work["trunc"][:2]}
    assert projects_of(advice, "truncation") == {"trunc"}

    # Unused outputs: only the weather summary.
    unused = one(advice, "unused_output", "unused")
    assert unused.saving_usd == pytest.approx(usd("gpt-4o", 140, 25), rel=1e-12)
    assert unused.span_ids == (work["unused"][4].span_id,)
    assert unused.trace_ids == (work["unused"][4].trace_id,)
    assert projects_of(advice, "unused_output") == {"unused"}

    assert advice.total_saving_usd == pytest.approx(sum(i.saving_usd for i in advice.items))
    assert [i.saving_usd for i in advice.items] == sorted((i.saving_usd for i in advice.items), reverse=True)
    print(f"\nadvice: {len(advice.items)} findings, ${advice.total_saving_usd:.6f} saved over the window")


async def test_advice_is_confined_to_the_tenant_and_window(cost_plant: CostPlant) -> None:
    work = planted()
    await cost_plant.write(work["dups"])
    assert compute_advice(cost_plant.store, Tenant("org-b", None), *WINDOW).items == ()
    assert compute_advice(cost_plant.store, Tenant("org-a", frozenset({"other"})), *WINDOW).items == ()
    later = compute_advice(cost_plant.store, Tenant("org-a", None), T0 + 2 * HOUR, T0 + DAY)
    exact = one(later, "response_cache_exact", "dups")
    assert exact.calls == 2  # hours 2, 3 and 4 are in the window: two repeats of the first of them
    # Without an embedder the near-duplicate check is skipped, and says so.
    assert any("near-duplicate" in note for note in later.notes)


async def test_advice_uses_stored_costs_for_unpriced_models(cost_plant: CostPlant) -> None:
    calls = [
        LlmCall(T0 + i * HOUR, model="in-house-7b", provider="self", user="Hi", cost_usd=0.5)
        for i in range(3)
    ]
    await cost_plant.write(calls)
    advice = compute_advice(cost_plant.store, Tenant("org-a", None), *WINDOW, pricer=Pricer())
    exact = one(advice, "response_cache_exact", "default")
    assert exact.saving_usd == pytest.approx(1.0)
    assert any("in-house-7b" in note for note in advice.notes)


def test_advice_rejects_bad_settings(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument):
        AdviceSettings(near_threshold=1.5).check()
    with pytest.raises(InvalidArgument):
        AdviceSettings(examples=0).check()
