"""Does the semantic-search exporter keep up with a steady ingest rate, in the default pipeline?

Runs a collector with the default pipeline (clickhouse, spanmetrics and vectors behind the WAL) in this process,
as ``llm-observer up`` does, and sends agent traces over OTLP/HTTP at a fixed rate for ``--seconds``: 5 spans
per trace, 2 of them chat spans whose user prompts are distinct and 300 to 3,000 characters long (a question
with pasted context). Reports the spans/s the vectors exporter delivered (from the collector's own
``llm_observer_spans_exported_total``, whole batches only) and the prompts/s it stored, against what was sent.

    .venv/bin/python bench/bench_embed_rate.py [--rate 360] [--seconds 60]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import random
import tempfile
import time
from pathlib import Path

import httpx

from llm_observer.collector.testing import genai_request, local_config, running
from llm_observer.exporters.vectors.exporter import VectorsExporter
from llm_observer.storage.clickhouse.vector_schema import VECTORS_TABLE

WORDS = [
    "refund",
    "order",
    "account",
    "invoice",
    "shipping",
    "password",
    "subscription",
    "cancel",
    "upgrade",
    "error",
    "billing",
    "delivery",
    "reset",
    "login",
    "address",
    "payment",
    "card",
    "plan",
    "trial",
    "discount",
    "warranty",
    "return",
    "exchange",
    "tracking",
    "package",
    "export",
    "report",
    "dashboard",
    "api",
    "key",
    "token",
    "limit",
    "quota",
    "team",
    "member",
    "invite",
    "role",
    "permission",
    "timeout",
    "retry",
    "region",
    "latency",
]


def long_prompt(rng: random.Random) -> str:
    size = rng.randint(300, 3000)
    parts = ["Why does this fail?"]
    while sum(len(p) + 1 for p in parts) < size:
        parts.append(f"line {rng.randrange(10**6)}: " + " ".join(rng.choice(WORDS) for _ in range(12)) + ".")
    return " ".join(parts)[:size]


def request_body(rng: random.Random, traces: int) -> tuple[bytes, int]:
    request = genai_request(traces, rng=rng)
    chats = 0
    for span in request.resource_spans[0].scope_spans[0].spans:
        for kv in span.attributes:
            if kv.key == "gen_ai.input.messages":
                kv.value.string_value = json.dumps(
                    [{"role": "user", "parts": [{"type": "text", "content": long_prompt(rng)}]}]
                )
                chats += 1
    return request.SerializeToString(), chats


async def main(rate: float, seconds: float) -> None:
    rng = random.Random(11)
    ticks_per_second = 2
    traces = max(1, round(rate / 5 / ticks_per_second))
    ticks = int(seconds * ticks_per_second)
    bodies = [request_body(rng, traces) for _ in range(ticks)]
    with tempfile.TemporaryDirectory() as tmp:
        config = local_config(Path(tmp))
        async with running(config) as service:
            registry = service.telemetry.registry

            def exported() -> float:
                value = registry.get_sample_value(
                    "llm_observer_spans_exported_total", {"pipeline": "traces", "exporter": "vectors"}
                )
                return value or 0.0

            url = f"http://127.0.0.1:{service.endpoints()['otlp.http']}/v1/traces"
            sent = 0
            began = time.perf_counter()
            async with httpx.AsyncClient(timeout=60) as client:
                for tick, (body, _) in enumerate(bodies):
                    await asyncio.sleep(max(0.0, began + tick / ticks_per_second - time.perf_counter()))
                    response = await client.post(
                        url, content=body, headers={"content-type": "application/x-protobuf"}
                    )
                    response.raise_for_status()
                    sent += traces * 5
            elapsed = time.perf_counter() - began
            delivered = exported()
            exporter = service.exporters["vectors"]
            assert isinstance(exporter, VectorsExporter)
            client = exporter.client
            stored = (
                int(client.rows(f"SELECT count() AS n FROM `{exporter.database}`.{VECTORS_TABLE}")[0]["n"])
                if client is not None
                else 0
            )
            print(
                f"prompts stored: {stored / elapsed:.1f}/s of {sum(c for _, c in bodies) / elapsed:.1f}/s sent "
                "(batches still in progress count here, not in the delivered spans)"
            )
            print(
                f"sent {sent / elapsed:.0f} spans/s for {elapsed:.0f} s "
                f"({sum(c for _, c in bodies)} distinct prompts of 300-3000 chars); the vectors exporter "
                f"delivered {delivered / elapsed:.0f} spans/s ({delivered / max(1, sent):.0%} of them)"
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=360, help="spans/s sent")
    parser.add_argument("--seconds", type=float, default=60)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(main(args.rate, args.seconds))
