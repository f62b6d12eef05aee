"""The query service inside ``llm-observer up``: REST JSON ingest → WAL → processors → ClickHouse → query."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from llm_observer.collector.config import load_config
from llm_observer.collector.service import Service
from llm_observer.kernel.auth import hash_api_key


async def test_up_rest_ingest_goes_through_the_pipeline(tmp_path: Path) -> None:
    overrides = {
        "receivers": {
            "otlp": {"protocols": {"grpc": {"endpoint": "127.0.0.1:0"}, "http": {"endpoint": "127.0.0.1:0"}}}
        },
        "exporters": {"prometheus": {"endpoint": "127.0.0.1:0"}},
        "service": {"pipelines": {"traces": {"exporters": ["clickhouse"]}}},
        "query": {"http": {"endpoint": "127.0.0.1:0"}, "grpc": {"endpoint": "127.0.0.1:0"}},
        "auth": {
            "enabled": True,
            "api_keys": [
                {
                    "id": "acme",
                    "key_sha256": hash_api_key("acme-key"),
                    "organization_id": "acme",
                    "projects": ["shop"],
                }
            ],
        },
    }
    service = Service(load_config(None, data_dir=tmp_path, overrides=overrides), collector=True, query=True)
    await service.start()
    try:
        port = service.query_service.http_port
        headers = {"Authorization": "Bearer acme-key"}
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            trace = {
                "organization_id": "acme",
                "spans": [
                    {
                        "name": "chat gpt-4o",
                        "model": "gpt-4o",
                        "provider": "openai",
                        "input": "Hello",
                        "output": "Hi there",
                        "prompt_tokens": 1000,
                        "completion_tokens": 500,
                        "duration_ms": 800,
                        "status": "success",
                    }
                ],
            }
            response = await http.post("/api/v1/traces", headers=headers, json=trace)
            assert response.status_code == 202, response.text
            trace_id = response.json()["trace_id"]
            # Wait for the exporter's self-metric rather than polling the store while it inserts.
            registry = service.telemetry.registry
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 30
            while not registry.get_sample_value(
                "llm_observer_spans_exported_total", {"pipeline": "traces", "exporter": "clickhouse"}
            ):
                assert loop.time() < deadline, "the span was not exported"
                await asyncio.sleep(0.05)
            detail = await http.get(f"/api/v1/traces/{trace_id}", headers=headers)
            assert detail.status_code == 200, detail.text
            (span,) = detail.json()["spans"]
            # Stamped with the key's tenant, priced by the cost processor.
            assert (span["organization_id"], span["project_id"]) == ("acme", "shop")
            assert span["request_model"] == "gpt-4o" and span["input_tokens"] == 1000
            assert span["cost_usd"] > 0
            assert span["input"] == "user: Hello"
            summary = (await http.get("/api/v1/metrics/summary", headers=headers)).json()
            assert summary["request_count"] == 1 and summary["cost_usd"] == span["cost_usd"]
    finally:
        await service.shutdown()
