"""Benchmark of the embed step and the Qdrant exporter (bundled all-MiniLM-L6-v2 int8, Qdrant local mode).

Reports:
  1. the model alone: unique texts/s at realistic prompt lengths (short questions and ~100-word prompts), with
     one onnxruntime thread (the default) and with all cores;
  2. the exporter alone end to end (extract, hash, embed, upsert into local Qdrant): a 10k-span burst, once
     with every prompt distinct and once with the repetition real applications show (most prompts repeat),
     i.e. how long the exporter's WAL cursor needs to catch up with a burst, and the dedup effect;
  3. a running collector with the qdrant exporter: a burst sent over OTLP/HTTP, its ack time, and the time
     until every prompt is embedded and stored (the embedding lag under load).

    .venv/bin/python bench/bench_embed.py [--texts 500] [--spans 10000] [--repeat 0.9] [--distinct 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import re
import tempfile
import time
from pathlib import Path

from llm_observer.exporters.qdrant import QdrantExporter, factory
from llm_observer.kernel.batch import SpanBatch
from llm_observer.kernel.component import CreateContext
from llm_observer.kernel.telemetry import Telemetry
from llm_observer.storage.vectors.embed import BUNDLED_MODEL, EmbedCounts, Embedder

WORDS = re.findall(
    r"\w+",
    "refund order account invoice shipping password subscription cancel upgrade error billing delivery "
    "reset login address payment card plan trial discount warranty return exchange tracking package "
    "how do I can you please help me with my the a to for on in is it why when what where which change "
    "update delete export report dashboard api key token limit quota team member invite role permission",
)


def question(rng: random.Random, words: int) -> str:
    text = " ".join(rng.choice(WORDS) for _ in range(words))
    return text[0].upper() + text[1:] + "?"


def make_batch(prompts: list[str], first: int, start_ns: int) -> SpanBatch:
    batch = SpanBatch()
    resource = {
        "service.name": "bench",
        "llm_observer.organization.id": "acme",
        "llm_observer.project.id": "p1",
    }
    for i, prompt in enumerate(prompts):
        n = first + i
        batch.trace_id.append(n.to_bytes(16, "big"))
        batch.span_id.append(n.to_bytes(8, "big"))
        batch.parent_span_id.append(b"")
        batch.trace_state.append("")
        batch.name.append("chat gpt-4o-mini")
        batch.kind.append(3)
        batch.start_time_unix_nano.append(start_ns + i)
        batch.end_time_unix_nano.append(start_ns + i + 1)
        batch.status_code.append(0)
        batch.status_message.append("")
        batch.attributes.append(
            {
                "gen_ai.provider.name": "openai",
                "gen_ai.request.model": "gpt-4o-mini",
                "gen_ai.input.messages": json.dumps(
                    [
                        {
                            "role": "system",
                            "parts": [{"type": "text", "content": "You are a support agent."}],
                        },
                        {"role": "user", "parts": [{"type": "text", "content": prompt}]},
                    ]
                ),
            }
        )
        batch.resource.append(resource)
        batch.scope_name.append("bench")
        batch.scope_version.append("1")
        batch.events.append([])
        batch.links.append([])
    return batch


def bench_model(models_dir: Path, texts: int) -> None:
    rng = random.Random(1)
    for threads in (1, None):
        embedder = Embedder(BUNDLED_MODEL, models_dir, cache_size=0, threads=threads)
        embedder.embed(["warm up"])
        for words in (12, 100):
            batch = [question(rng, words) for _ in range(texts)]
            began = time.perf_counter()
            embedder.embed(batch, batch_size=64)
            elapsed = time.perf_counter() - began
            print(
                f"model only, threads={threads or 'all'}, {words:>3}-word prompts: "
                f"{texts / elapsed:7.0f} unique texts/s"
            )


async def bench_exporter(data_dir: Path, spans: int, repeat: float, batch_size: int) -> None:
    rng = random.Random(2)
    for label, ratio in (("all distinct", 0.0), (f"{repeat:.0%} repeats", repeat)):
        pool = [question(rng, 14) for _ in range(50)]  # the canned questions that repeat
        prompts = [rng.choice(pool) if rng.random() < ratio else question(rng, 14) for _ in range(spans)]
        ctx = CreateContext(
            component_id="qdrant",
            data_dir=data_dir / label.replace(" ", "_"),
            telemetry=Telemetry(),
            logger=logging.getLogger("bench"),
        )
        config = factory.config_model.model_validate({"cache_size": 10_000, "batch_size": 64})
        exporter: QdrantExporter = factory.create(ctx, config)
        await exporter.start()
        batches = [
            make_batch(prompts[i : i + batch_size], i + 1, time.time_ns())
            for i in range(0, spans, batch_size)
        ]
        began = time.perf_counter()
        for batch in batches:
            await exporter.send(batch)
        elapsed = time.perf_counter() - began
        counts: EmbedCounts = exporter.counts
        print(
            f"exporter, {spans} spans, {label:>12}: {spans / elapsed:7.0f} spans/s, burst caught up in "
            f"{elapsed:5.1f} s; embedded {counts.embedded}, deduplicated {counts.deduplicated} "
            f"({counts.deduplicated / max(1, counts.texts):.0%})"
        )
        await exporter.shutdown()


async def bench_pipeline(data_dir: Path, spans: int, unique: int) -> None:
    """A running collector (OTLP/HTTP → WAL → qdrant exporter): burst ack time versus embedding catch-up."""
    import httpx

    from llm_observer.collector.testing import genai_request, local_config, running

    rng = random.Random(3)
    pool = [question(rng, 14) for _ in range(unique)]
    bodies, prompts = [], 0
    for _ in range(spans // 250):
        request = genai_request(50, rng=rng)  # 50 traces x 5 spans, 2 of them chat spans with a prompt
        for span in request.resource_spans[0].scope_spans[0].spans:
            for kv in span.attributes:
                if kv.key == "gen_ai.input.messages":
                    kv.value.string_value = json.dumps(
                        [{"role": "user", "parts": [{"type": "text", "content": rng.choice(pool)}]}]
                    )
                    prompts += 1
        bodies.append(request.SerializeToString())
    config = local_config(
        data_dir / "pipeline",
        {
            "service": {
                "delivery": {"linger_seconds": 0},
                "pipelines": {"traces": {"receivers": ["otlp"], "processors": [], "exporters": ["qdrant"]}},
            }
        },
    )
    async with running(config) as service:
        exporter = service.exporters["qdrant"]
        assert isinstance(exporter, QdrantExporter) and exporter.store is not None
        url = f"http://127.0.0.1:{service.endpoints()['otlp.http']}/v1/traces"
        began = time.perf_counter()
        async with httpx.AsyncClient(timeout=60) as client:
            sends = [
                client.post(url, content=body, headers={"content-type": "application/x-protobuf"})
                for body in bodies
            ]
            statuses = {r.status_code for r in await asyncio.gather(*sends)}
        acked = time.perf_counter() - began
        while exporter.store.count("llm_observer_prompts") < prompts:
            await asyncio.sleep(0.1)
        caught_up = time.perf_counter() - began
        print(
            f"collector, {len(bodies) * 250} spans ({prompts} prompts, {unique} distinct): acked in {acked:.2f} s "
            f"({len(bodies) * 250 / acked:,.0f} spans/s, HTTP {sorted(statuses)}); embedding caught up after "
            f"{caught_up:.1f} s (max lag {caught_up - acked:.1f} s)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--texts", type=int, default=500)
    parser.add_argument("--spans", type=int, default=10_000)
    parser.add_argument("--repeat", type=float, default=0.9)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--distinct", type=int, default=1000, help="distinct prompts in the collector burst")
    args = parser.parse_args()
    print(f"cpus: {os.cpu_count()}")
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        bench_model(data_dir / "models", args.texts)
        asyncio.run(bench_exporter(data_dir, args.spans, args.repeat, args.batch))
        asyncio.run(bench_pipeline(data_dir, args.spans, args.distinct))


if __name__ == "__main__":
    main()
