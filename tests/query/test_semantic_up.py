"""Semantic search end to end in ``llm-observer up``'s default config: REST ingest → WAL → processors →
the ``vectors`` exporter (ClickHouse beside the spans) → ``/api/v1/search/semantic``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from llm_observer.collector.testing import local_config, running
from llm_observer.exporters.vectors import VectorsExporter
from tests.support import wait_for

PASSWORD = [
    "How do I reset my password?",
    "I forgot my password, how can I change it?",
    "Can't log in - need to reset the password for my account",
]
OTHER = [
    "What's the weather forecast for Paris tomorrow?",
    "Write a haiku about autumn leaves falling",
    "Give me a recipe for vegan chocolate chip cookies",
]


def _trace(prompt: str) -> dict[str, Any]:
    return {
        "spans": [
            {
                "name": "chat gpt-4o",
                "model": "gpt-4o",
                "provider": "openai",
                "input": prompt,
                "output": "Sure.",
                "prompt_tokens": 10,
                "completion_tokens": 5,
                "duration_ms": 300,
                "status": "success",
            }
        ]
    }


async def test_semantic_up_default_config_searches_vectors_beside_the_spans(tmp_path: Path) -> None:
    config = local_config(tmp_path)
    assert config.extensions["query"].config.vectors.exporter == "vectors"
    async with running(config, query=True) as service:
        exporter = service.exporters["vectors"]
        assert isinstance(exporter, VectorsExporter)
        port = service.query_service.http_port
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            prompts = [*PASSWORD, *OTHER, PASSWORD[0], PASSWORD[0]]  # 8 spans, 6 texts
            for prompt in prompts:
                response = await http.post("/api/v1/traces", json=_trace(prompt))
                assert response.status_code == 202, response.text

            def event(name: str) -> float:
                labels = {"component": "vectors", "event": name}
                value = service.telemetry.registry.get_sample_value(
                    "llm_observer_component_events_total", labels
                )
                return value or 0.0

            await wait_for(
                lambda: event("span_rows_written") >= len(prompts),
                timeout=60,
                interval=0.1,
                what=lambda: f"span rows ({event('span_rows_written')} written)",
            )
            assert exporter.counts.embedded == 6

            async def found() -> list[dict[str, Any]]:
                response = await http.get(
                    "/api/v1/search/semantic", params={"q": "password reset help", "k": 5}
                )
                assert response.status_code == 200, response.text
                results: list[dict[str, Any]] = response.json()["results"]
                return results if len(results) == 5 else []

            results = await wait_for(found, timeout=30, interval=0.1, what="five search results")
            assert all(r["text"] in PASSWORD for r in results)
            assert [r["text"] for r in results].count(PASSWORD[0]) == 3  # one hit per span
            assert {r["organization_id"] for r in results} == {"default"}
            assert len({r["span_id"] for r in results}) == 5
        assert (event("texts_embedded"), event("texts_deduplicated")) == (6.0, 2.0)
