"""Semantic search over the vectors the real exporters wrote (bundled model): the default ``vectors`` exporter
(ClickHouse tables beside the spans, in chDB) and the ``qdrant`` exporter (Qdrant local mode)."""

from __future__ import annotations

import json
import logging
from typing import Any

import grpc
import pytest

from llm_observer.exporters.clickhouse import ClickHouseExporterConfig
from llm_observer.exporters.qdrant import factory as qdrant_factory
from llm_observer.exporters.vectors import factory as vectors_factory
from llm_observer.kernel.batch import SpanBatch
from llm_observer.kernel.component import CreateContext
from llm_observer.kernel.telemetry import Telemetry
from llm_observer.query.config import VectorsConfig
from llm_observer.query.v1 import llm_observer_query_v1_pb2 as pb
from llm_observer.query.v1 import llm_observer_query_v1_pb2_grpc as pb_grpc

PASSWORD = [
    "How do I reset my password?",
    "I forgot my password, how can I change it?",
    "Can't log in - need to reset the password for my account",
]
UNRELATED = [
    "What's the weather forecast for Paris tomorrow?",
    "Write a haiku about autumn leaves falling",
    "Give me a recipe for vegan chocolate chip cookies",
    "Explain the difference between TCP and UDP",
    "Which planets in the solar system have rings?",
    "Convert 100 degrees Fahrenheit to Celsius",
]


def prompts_batch(prompts: list[str], org: str, first: int, start_ns: int) -> SpanBatch:
    batch = SpanBatch()
    resource = {
        "service.name": "support",
        "llm_observer.organization.id": org,
        "llm_observer.project.id": "web",
    }
    for n, prompt in enumerate(prompts, start=first):
        batch.trace_id.append(n.to_bytes(16, "big"))
        batch.span_id.append(n.to_bytes(8, "big"))
        batch.parent_span_id.append(b"")
        batch.trace_state.append("")
        batch.name.append("chat gpt-4o")
        batch.kind.append(3)
        batch.start_time_unix_nano.append(start_ns + n * 10**9)
        batch.end_time_unix_nano.append(start_ns + n * 10**9 + 10**8)
        batch.status_code.append(0)
        batch.status_message.append("")
        batch.attributes.append(
            {
                "gen_ai.operation.name": "chat",
                "gen_ai.request.model": "gpt-4o",
                "gen_ai.input.messages": json.dumps(
                    [{"role": "user", "parts": [{"type": "text", "content": prompt}]}]
                ),
            }
        )
        batch.resource.append(resource)
        batch.scope_name.append("test")
        batch.scope_version.append("")
        batch.events.append([])
        batch.links.append([])
    return batch


@pytest.mark.parametrize("store", ["vectors", "qdrant"])
async def test_semantic_search_finds_planted_near_duplicates_first(
    store: str, start_running: Any, tmp_path: Any
) -> None:
    # The default store, and Qdrant named by query.vectors.exporter; auth on, as in ``running``.
    running = await start_running(cache_ttl_seconds=0, vectors=VectorsConfig(exporter=store))
    ctx = CreateContext(
        store,
        tmp_path,
        Telemetry(),
        logging.getLogger(f"test.{store}"),
        configs={"exporters": {"clickhouse": ClickHouseExporterConfig()}},
    )
    factory: Any = vectors_factory if store == "vectors" else qdrant_factory
    exporter = factory.create(ctx, factory.config_model())
    await exporter.start()
    try:
        start = running.planted.base_ns
        await exporter.send(prompts_batch(UNRELATED[:3] + PASSWORD + UNRELATED[3:], "org-a", 1000, start))
        # org-b holds the closest possible match: it must never reach org-a.
        await exporter.send(prompts_batch(["How do I reset my password?"], "org-b", 2000, start))
        response = await running.http.get(
            "/api/v1/search/semantic",
            headers={"Authorization": "Bearer key-for-org-a"},
            params={"q": "password reset help", "k": 5},
        )
        assert response.status_code == 200, response.text
        results = response.json()["results"]
        assert len(results) == 5
        assert {r["text"] for r in results[:3]} == set(PASSWORD)
        assert all(r["organization_id"] == "org-a" for r in results)
        scores = [r["score"] for r in results]
        assert scores == sorted(scores, reverse=True)
        assert {"trace_id", "span_id", "score", "text", "model"} <= set(results[0])

        b_results = (
            await running.http.get(
                "/api/v1/search/semantic",
                headers={"Authorization": "Bearer key-for-org-b"},
                params={"q": "password reset help", "k": 5},
            )
        ).json()["results"]
        assert [r["text"] for r in b_results] == ["How do I reset my password?"]

        async with grpc.aio.insecure_channel(running.grpc_target) as channel:
            stub = pb_grpc.QueryServiceStub(channel)
            metadata = (("authorization", "Bearer key-for-org-a"),)
            # ``q`` as in REST; ``query``, the field's former name, still works.
            answer = await stub.SemanticSearch(
                pb.SemanticSearchRequest(q="I can't remember my password", k=3), metadata=metadata
            )
            assert {r.text for r in answer.results} == set(PASSWORD)
            assert json.loads(answer.results[0].fields_json)["organization_id"] == "org-a"
            former = await stub.SemanticSearch(
                pb.SemanticSearchRequest(query="I can't remember my password", k=3), metadata=metadata
            )
            assert [r.span_id for r in former.results] == [r.span_id for r in answer.results]
            try:
                await stub.SemanticSearch(pb.SemanticSearchRequest(k=3), metadata=metadata)
                raise AssertionError("an empty search was accepted")
            except grpc.aio.AioRpcError as exc:
                assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT
                assert "q must be" in (exc.details() or "")
        empty = await running.http.get(
            "/api/v1/search/semantic",
            headers={"Authorization": "Bearer key-for-org-a"},
            params={"q": "x", "model": "nope"},
        )
        assert empty.json() == {"results": []}
    finally:
        await running.service.shutdown()  # releases the vector store before the exporter closes it
        await exporter.shutdown()


async def test_semantic_search_disabled_is_503(tmp_path: Any, new_service: Any) -> None:
    import httpx

    from llm_observer.query.config import GrpcConfig, HttpConfig, QueryConfig, VectorsConfig

    config = QueryConfig(
        http=HttpConfig(endpoint="127.0.0.1:0"),
        grpc=GrpcConfig(endpoint="127.0.0.1:0"),
        vectors=VectorsConfig(enabled=False),
    )
    service = new_service(tmp_path, config)
    await service.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{service.http_port}") as http:
            response = await http.get("/api/v1/search/semantic", params={"q": "hello"})
            assert response.status_code == 503
            assert response.json()["error"]["code"] == "unavailable"
            # A store nobody wrote yet answers empty results, not errors.
            assert (await http.get("/api/v1/traces")).json() == {"traces": [], "next_cursor": None}
    finally:
        await service.shutdown()
