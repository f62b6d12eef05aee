"""The Qdrant exporter inside a running collector: a 10k-span burst is acked while embedding catches up."""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path

import httpx

from llm_observer.collector.testing import genai_request, local_config, running
from llm_observer.exporters.qdrant import QdrantExporter
from llm_observer.storage.vectors.search import VectorSearch
from tests.support import wait_for

TOPICS = [
    "invoice",
    "refund",
    "password",
    "shipping",
    "subscription",
    "api key",
    "dashboard",
    "export",
    "team",
]
VERBS = ["change", "cancel", "find", "reset", "download", "update", "share", "delete", "renew", "track"]


def burst(requests: int, traces_per_request: int, unique: int) -> tuple[list[bytes], int, int]:
    """OTLP requests of agent traces whose chat prompts come from a pool of ``unique`` distinct questions."""
    rng = random.Random(7)
    pool = [
        f"How can I {rng.choice(VERBS)} the {rng.choice(TOPICS)} for order {i}, account {rng.randrange(10**6)}?"
        for i in range(unique)
    ]
    bodies, chats, used = [], 0, set()
    for _ in range(requests):
        request = genai_request(traces_per_request, rng=rng)
        for span in request.resource_spans[0].scope_spans[0].spans:
            for kv in span.attributes:
                if kv.key == "gen_ai.input.messages":
                    question = rng.choice(pool)
                    used.add(question)
                    kv.value.string_value = (
                        '[{"role":"user","parts":[{"type":"text","content":"' + question + '"}]}]'
                    )
                    chats += 1
        bodies.append(request.SerializeToString())
    return bodies, chats, len(used)


async def test_qdrant_pipeline_burst_is_acked_while_embedding_catches_up(tmp_path: Path) -> None:
    config = local_config(
        tmp_path,
        {
            # Not in the default config any more (the vectors exporter is): named here.
            "exporters": {"qdrant": {"url": "qdrant", "sending_queue": {"on_overflow": "drop"}}},
            "service": {
                "delivery": {"linger_seconds": 0},
                "pipelines": {"traces": {"receivers": ["otlp"], "processors": [], "exporters": ["qdrant"]}},
            },
        },
    )
    # 10,000 spans, 4,000 of them chat spans with a prompt drawn from 600 questions.
    bodies, chats, distinct = burst(requests=40, traces_per_request=50, unique=600)
    async with running(config) as service:
        exporter = service.exporters["qdrant"]
        assert isinstance(exporter, QdrantExporter) and exporter.store is not None
        url = f"http://127.0.0.1:{service.endpoints()['otlp.http']}/v1/traces"
        began = time.perf_counter()
        async with httpx.AsyncClient(timeout=30) as client:
            responses = await asyncio.gather(
                *(
                    client.post(url, content=body, headers={"content-type": "application/x-protobuf"})
                    for body in bodies
                )
            )
        acked = time.perf_counter() - began
        assert [r.status_code for r in responses] == [200] * len(bodies)
        written_at_ack = exporter.store.count("llm_observer_prompts")

        def lag() -> float:
            labels = {
                "pipeline": "traces",
                "exporter": "qdrant",
            }  # the exporter's WAL cursor in this pipeline
            return service.telemetry.registry.get_sample_value("llm_observer_wal_lag_records", labels) or 0.0

        lags = [lag()]

        def embedded() -> bool:
            lags.append(lag())
            assert exporter.store is not None
            return exporter.store.count("llm_observer_prompts") >= chats

        await wait_for(embedded, timeout=120, interval=0.2, what="embedding to catch up")
        caught_up = time.perf_counter() - began
        # Acks did not wait for the model: the burst was durable long before its vectors were stored.
        assert written_at_ack < chats
        assert acked < caught_up
        assert exporter.counts.embedded == distinct and exporter.counts.texts == chats
        print(f"10k spans acked in {acked:.2f}s; {chats} prompts embedded and stored after {caught_up:.2f}s")

        # The query service's search shares the exporter's store and model in this process.
        search = VectorSearch.open("qdrant", service.data_dir)
        try:
            hits = search.search("I need to reset the password of my account", 5, organization_id="default")
            assert len(hits) == 5 and all("password" in h["text"] for h in hits[:3])
            assert {h["project_id"] for h in hits} == {"bench"}
        finally:
            search.close()

        # The lag was reported while embedding caught up, and drains to zero.
        assert max(lags) > 0
        await wait_for(
            lambda: lag() == 0,
            timeout=120,
            interval=0.2,
            what=lambda: f"the WAL lag of the qdrant exporter (at {lag()}) to drain",
        )
