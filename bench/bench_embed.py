"""Benchmark of the embed step and the Qdrant exporter (bundled all-MiniLM-L6-v2 int8, Qdrant local mode).

Reports:
  1. the model alone: unique texts/s at realistic prompt lengths (short questions, ~100-word prompts, and
     long prompts of 300 to 3,000 characters), with one onnxruntime thread (the default) and with all cores,
     at the default model batch and at 64 texts per run;
  2. the exporter alone end to end (extract, hash, embed, upsert into local Qdrant): a 10k-span burst, once
     with every prompt distinct and once with the repetition real applications show (most prompts repeat),
     i.e. how long the exporter's WAL cursor needs to catch up with a burst, and the dedup effect; then
     ``--long`` spans whose distinct prompts are 300 to 3,000 characters long (wall and CPU time per span);
  3. a running collector with the qdrant exporter: a burst sent over OTLP/HTTP, its ack time, and the time
     until every prompt is embedded and stored (the embedding lag under load).

    .venv/bin/python bench/bench_embed.py [--texts 500] [--spans 10000] [--repeat 0.9] [--distinct 1000]
        [--long 1000]
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
from llm_observer.kernel.errors import RetryableError
from llm_observer.kernel.telemetry import Telemetry
from llm_observer.storage.vectors.embed import BUNDLED_MODEL, DEFAULT_MODEL_BATCH, EmbedCounts, Embedder

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


def long_prompt(rng: random.Random) -> str:
    """A distinct prompt of 300 to 3,000 characters: a question with pasted context (logs, a document)."""
    size = rng.randint(300, 3000)
    parts = [question(rng, 12)]
    while sum(len(p) + 1 for p in parts) < size:
        parts.append(f"line {rng.randrange(10**6)}: " + " ".join(rng.choice(WORDS) for _ in range(12)) + ".")
    return " ".join(parts)[:size]


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
        for kind in ("12-word", "100-word", "300-3000 char"):
            for batch_size in (DEFAULT_MODEL_BATCH, 64):
                if kind == "12-word":
                    batch = [question(rng, 12) for _ in range(texts)]
                elif kind == "100-word":
                    batch = [question(rng, 100) for _ in range(texts)]
                else:
                    batch = [long_prompt(rng) for _ in range(texts)]
                began, cpu = time.perf_counter(), time.process_time()
                embedder.embed(batch, batch_size=batch_size)
                elapsed, cpu = time.perf_counter() - began, time.process_time() - cpu
                print(
                    f"model only, threads={threads or 'all'}, {kind:>13} prompts, {batch_size:>2} per run: "
                    f"{texts / elapsed:7.0f} unique texts/s ({cpu / texts * 1000:.0f} ms CPU each)"
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
        config = factory.config_model.model_validate({"cache_size": 10_000})
        exporter: QdrantExporter = factory.create(ctx, config)
        await exporter.start()
        batches = [
            make_batch(prompts[i : i + batch_size], i + 1, time.time_ns())
            for i in range(0, spans, batch_size)
        ]
        began = time.perf_counter()
        for batch in batches:
            await send(exporter, batch)
        elapsed = time.perf_counter() - began
        counts: EmbedCounts = exporter.counts
        print(
            f"exporter, {spans} spans, {label:>12}: {spans / elapsed:7.0f} spans/s, burst caught up in "
            f"{elapsed:5.1f} s; embedded {counts.embedded}, deduplicated {counts.deduplicated} "
            f"({counts.deduplicated / max(1, counts.texts):.0%})"
        )
        await exporter.shutdown()


async def send(exporter: QdrantExporter, batch: SpanBatch) -> int:
    """Send as the collector does: a send over its budget stored part of the batch; the retry resumes."""
    retries = 0
    while True:
        try:
            await exporter.send(batch)
            return retries
        except RetryableError:
            retries += 1


async def bench_long(data_dir: Path, spans: int, batch_size: int) -> None:
    """The exporter on distinct prompts of 300 to 3,000 characters: the worst case (nothing to deduplicate)."""
    rng = random.Random(4)
    prompts = [long_prompt(rng) for _ in range(spans)]
    ctx = CreateContext(
        component_id="qdrant",
        data_dir=data_dir / "long",
        telemetry=Telemetry(),
        logger=logging.getLogger("bench"),
    )
    exporter: QdrantExporter = factory.create(ctx, factory.config_model.model_validate({}))
    await exporter.start()
    batches = []
    for i in range(0, spans, batch_size):
        batch = make_batch(prompts[i : i + batch_size], i + 1, time.time_ns())
        batch.origin = f"bench:{i}"  # what a retry resumes by, as the collector's ranges
        batches.append(batch)
    began, cpu, retries = time.perf_counter(), time.process_time(), 0
    for batch in batches:
        retries += await send(exporter, batch)
    elapsed, cpu = time.perf_counter() - began, time.process_time() - cpu
    print(
        f"exporter, {spans} spans, distinct 300-3000 char prompts (mean {sum(map(len, prompts)) // spans}): "
        f"{spans / elapsed:5.1f} spans/s, {cpu / spans * 1000:.0f} ms CPU per span; "
        f"{retries} sends resumed after their budget"
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
            # Qdrant (local mode here) is the deployments' option, not a default exporter: declare it.
            "exporters": {"qdrant": {"cache_size": 10_000}},
            "service": {
                "delivery": {"linger_seconds": 0},
                "pipelines": {"traces": {"receivers": ["otlp"], "processors": [], "exporters": ["qdrant"]}},
            },
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
    parser.add_argument("--long", type=int, default=1000, help="spans with long distinct prompts")
    args = parser.parse_args()
    print(f"cpus: {os.cpu_count()}")
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        bench_model(data_dir / "models", args.texts)
        asyncio.run(bench_exporter(data_dir, args.spans, args.repeat, args.batch))
        asyncio.run(bench_long(data_dir, args.long, args.batch))
        asyncio.run(bench_pipeline(data_dir, args.spans, args.distinct))


if __name__ == "__main__":
    main()
