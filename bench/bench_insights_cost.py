"""Cost insights benchmark: the time to compute optimisation advice (and spend forecasts) over a large store.

A synthetic workload of ``--spans`` model calls over a day (default one million), priced by the real cost
processor and written through the real ClickHouse exporter into chDB in a temporary directory: 20 projects,
four models, three-call agent traces; a quarter of the prompts repeat exactly, some paraphrase each other,
one call in fifty carries a ~3k-token system prompt, 1% fail (most retried), 2% hit the token limit. Then
``compute_advice`` over the whole day for the organization, each finding kind timed on its own, with and
without the near-duplicate check (which embeds the ``--max-prompts`` costliest distinct prompts with the
bundled model), and ``forecast_spend`` per project and model.

Usage: ``.venv/bin/python bench/bench_insights_cost.py [--spans 1000000] [--max-prompts 2000]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from llm_observer.query.insights.advice import ADVICE_KINDS, AdviceSettings, Pricer, compute_advice
from llm_observer.query.insights.forecast import forecast_spend
from llm_observer.storage.clickhouse.queries import Tenant
from llm_observer.storage.vectors.embed import shared_embedder
from tests.query.insights.cost_support import DAY, HOUR, CostPlant, LlmCall, S

MODELS = (
    ("gpt-4o", "openai"),
    ("gpt-4o-mini", "openai"),
    ("claude-sonnet-4", "anthropic"),
    ("gpt-4.1", "openai"),
)
LONG_SYSTEM = " ".join(f"Policy {i}: be exact, cite the section, never guess." for i in range(300))
TOPICS = ("refund", "shipping", "password", "invoice", "warranty", "account", "delivery", "discount")


def traces(count: int, start_ns: int, rng: random.Random, first_id: int) -> list[LlmCall]:
    """``count`` calls (three per agent trace, with a root span each), spread over a day from ``start_ns``."""
    calls: list[LlmCall] = []
    trace = first_id
    while len(calls) < count:
        trace += 1
        at = start_ns + rng.randrange(DAY - 60 * S)
        project = f"p{rng.randrange(20):02d}"
        model, provider = MODELS[rng.randrange(4)] if rng.random() < 0.5 else MODELS[trace % 2]
        root = trace * 10
        calls.append(LlmCall(at, model="", project=project, trace=trace, span=root, duration_ms=9000))
        for step in range(3):
            topic = TOPICS[rng.randrange(len(TOPICS))]
            if rng.random() < 0.25:
                user = f"How do I change my {topic} settings?"  # an exact repeat across traces
            elif rng.random() < 0.1:
                user = f"How can I change the {topic} settings, please?"  # a paraphrase
            else:
                user = f"Case {rng.randrange(10**6)}: question about {topic} number {rng.randrange(10**4)}"
            long = rng.random() < 0.02
            failed = rng.random() < 0.01
            calls.append(
                LlmCall(
                    at + step * 2 * S,
                    model=model,
                    provider=provider,
                    project=project,
                    trace=trace,
                    span=root + step + 1,
                    parent=root,
                    system=LONG_SYSTEM if long else f"You answer {topic} questions briefly.",
                    user=user,
                    output=f"Answer {step} about {topic}: {rng.randrange(10**6)}",
                    finish="length" if rng.random() < 0.02 else "stop",
                    input_tokens=3200 if long else rng.randrange(80, 400),
                    output_tokens=0 if failed else rng.randrange(10, 300),
                    error=failed,
                    temperature=0.0,
                )
            )
            if failed and rng.random() < 0.8:  # retried a few seconds later
                calls.append(
                    LlmCall(
                        at + step * 2 * S + S,
                        model=model,
                        provider=provider,
                        project=project,
                        trace=trace,
                        span=root + 5,
                        parent=root,
                        system=f"You answer {topic} questions briefly.",
                        user=user,
                        output="Retried answer",
                        input_tokens=200,
                        output_tokens=50,
                        temperature=0.0,
                    )
                )
    return calls[:count]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--spans", type=int, default=1_000_000, help="model calls to plant (default 1M)")
    parser.add_argument("--max-prompts", type=int, default=2000, help="distinct prompts embedded")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    rng = random.Random(args.seed)
    directory = Path(tempfile.mkdtemp(prefix="bench-insights-"))
    plant = CostPlant(directory)
    await plant.start()
    start = (time.time_ns() - 2 * DAY) // HOUR * HOUR
    began = time.perf_counter()
    written, next_id, chunk = 0, 0, 50_000
    while written < args.spans:
        calls = traces(min(chunk, args.spans - written), start, rng, next_id)
        next_id += len(calls) + 1
        await plant.write(calls, chunk=chunk)
        written += len(calls)
    ingest = time.perf_counter() - began
    print(f"planted {written} spans (with their root spans) in {ingest:.1f} s", flush=True)

    tenant = Tenant("org-a", None)
    window = (start - HOUR, start + DAY + HOUR)
    results: dict[str, float] = {}
    pricer = Pricer()
    for kind in ADVICE_KINDS:
        if kind == "response_cache_near":
            continue
        began = time.perf_counter()
        advice = compute_advice(plant.store, tenant, *window, pricer=pricer, kinds=[kind])
        results[kind] = time.perf_counter() - began
        saving = sum(i.saving_usd for i in advice.items)
        print(
            f"  {kind:22s} {results[kind]:7.2f} s  {len(advice.items):4d} findings  ${saving:,.2f}",
            flush=True,
        )
    began = time.perf_counter()
    advice = compute_advice(plant.store, tenant, *window, pricer=pricer)
    results["all_without_near"] = time.perf_counter() - began
    print(f"advice, every kind but near duplicates: {results['all_without_near']:.2f} s", flush=True)

    embedder = shared_embedder(models_dir=directory / "models")
    settings = AdviceSettings(max_prompts=args.max_prompts)
    began = time.perf_counter()
    near = compute_advice(
        plant.store,
        tenant,
        *window,
        pricer=pricer,
        embedder=embedder,
        settings=settings,
        kinds=["response_cache_near"],
    )
    results["response_cache_near"] = time.perf_counter() - began
    print(
        f"  response_cache_near    {results['response_cache_near']:7.2f} s  {len(near.items):4d} findings "
        f"({args.max_prompts} prompts embedded at most)",
        flush=True,
    )
    began = time.perf_counter()
    full = compute_advice(plant.store, tenant, *window, pricer=pricer, embedder=embedder, settings=settings)
    results["all"] = time.perf_counter() - began
    print(
        f"advice, every kind (embeddings cached): {results['all']:.2f} s, total saving ${full.total_saving_usd:,.2f}"
    )

    began = time.perf_counter()
    forecasts = forecast_spend(plant.store, tenant, start + DAY, group_by=["project", "model"])
    results["forecast"] = time.perf_counter() - began
    print(f"forecast of {len(forecasts)} project/model groups: {results['forecast']:.2f} s")
    print(
        json.dumps(
            {"spans": written, "ingest_s": round(ingest, 1), **{k: round(v, 2) for k, v in results.items()}}
        )
    )
    await plant.close()
    shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
