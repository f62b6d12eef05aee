"""The gRPC API llm_observer.query.v1.QueryService against a running service, and server reflection."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import grpc
import pytest
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from llm_observer.kernel.batch import STATUS_ERROR
from llm_observer.query.v1 import llm_observer_query_v1_pb2 as pb
from llm_observer.query.v1 import llm_observer_query_v1_pb2_grpc as pb_grpc

MD_A = (("authorization", "Bearer key-for-org-a"),)
MD_B = (("authorization", "Bearer key-for-org-b"),)


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


async def test_grpc_search_traces_paginates_and_filters(running: Any) -> None:
    b = running.planted.batch
    async with grpc.aio.insecure_channel(running.grpc_target) as channel:
        stub = pb_grpc.QueryServiceStub(channel)
        seen: list[str] = []
        cursor = ""
        while True:
            response = await stub.SearchTraces(pb.SearchTracesRequest(limit=7, cursor=cursor), metadata=MD_A)
            seen.extend(t.trace_id for t in response.traces)
            cursor = response.next_cursor
            if not cursor:
                break
        assert len(seen) == len(set(seen)) == 18
        # Sorted by cost, ascending, across pages: the order ClickHouse gives the whole range.
        by_cost: list[pb.TraceSummary] = []
        cursor = ""
        while True:
            response = await stub.SearchTraces(
                pb.SearchTracesRequest(limit=5, cursor=cursor, sort="cost", ascending=True), metadata=MD_A
            )
            by_cost.extend(response.traces)
            cursor = response.next_cursor
            if not cursor:
                break
        assert sorted(t.trace_id for t in by_cost) == sorted(seen)
        assert [(t.cost_usd, t.trace_id) for t in by_cost] == sorted(
            (t.cost_usd, t.trace_id) for t in by_cost
        )
        want = {
            b.trace_id[i].hex()
            for i in range(len(b))
            if b.resource[i]["llm_observer.organization.id"] == "org-a"
            and b.attributes[i].get("gen_ai.provider.name") == "anthropic"
        }
        response = await stub.SearchTraces(
            pb.SearchTracesRequest(limit=100, filter=pb.SpanFilter(provider="anthropic")), metadata=MD_A
        )
        assert {t.trace_id for t in response.traces} == want
        response = await stub.SearchTraces(
            pb.SearchTracesRequest(limit=100, min_cost_usd=10.0), metadata=MD_A
        )
        assert list(response.traces) == [] and response.next_cursor == ""
        response = await stub.SearchTraces(
            pb.SearchTracesRequest(limit=100, filter=pb.SpanFilter(attributes={"customer.tier": "gold"})),
            metadata=MD_A,
        )
        assert len(response.traces) == 2  # t=3 in org-a/web and org-a/api
        summary = response.traces[0]
        rows = running.planted.traces[summary.trace_id]
        assert summary.span_count == len(rows)
        assert summary.input_tokens == sum(b.attributes[i].get("gen_ai.usage.input_tokens", 0) for i in rows)


async def test_grpc_get_trace(running: Any) -> None:
    planted = running.planted
    b = planted.batch
    tid = next(
        t
        for t, rows in planted.traces.items()
        if b.resource[rows[0]]["llm_observer.organization.id"] == "org-a"
    )
    async with grpc.aio.insecure_channel(running.grpc_target) as channel:
        stub = pb_grpc.QueryServiceStub(channel)
        response = await stub.GetTrace(pb.GetTraceRequest(trace_id=tid), metadata=MD_A)
        assert response.trace_id == tid
        assert {s.span_id for s in response.spans} == {b.span_id[i].hex() for i in planted.traces[tid]}
        llm = next(s for s in response.spans if s.request_model)
        assert (
            llm.input.startswith("user: question") and llm.events[0].name == "gen_ai.choice"
            if llm.events
            else True
        )
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.GetTrace(pb.GetTraceRequest(trace_id="f" * 32), metadata=MD_A)
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.GetTrace(pb.GetTraceRequest(trace_id="nope"), metadata=MD_A)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_grpc_metrics_summary_and_cost(running: Any) -> None:
    b = running.planted.batch
    rows = [
        i
        for i in range(len(b))
        if b.resource[i]["llm_observer.organization.id"] == "org-a"
        and "gen_ai.request.model" in b.attributes[i]
    ]
    durations = [(b.end_time_unix_nano[i] - b.start_time_unix_nano[i]) / 1e6 for i in rows]
    async with grpc.aio.insecure_channel(running.grpc_target) as channel:
        stub = pb_grpc.QueryServiceStub(channel)
        response = await stub.GetMetricsSummary(
            pb.GetMetricsSummaryRequest(group_by="provider", step_seconds=300), metadata=MD_A
        )
        total = response.total
        assert total.request_count == len(rows)
        assert total.error_count == sum(1 for i in rows if b.status_code[i] == STATUS_ERROR)
        assert total.latency_p50_ms == pytest.approx(_quantile(durations, 0.5))
        assert total.latency_p99_ms == pytest.approx(_quantile(durations, 0.99))
        assert total.cost_usd == pytest.approx(sum(b.attributes[i]["llm_observer.cost.usd"] for i in rows))
        assert {g.key for g in response.groups} == {"openai", "anthropic"}
        assert sum(p.metrics.request_count for p in response.series) == len(rows)
        times = [p.time_unix_nano for p in response.series]
        assert times == sorted(times) and all(t % (300 * 10**9) == 0 for t in times)
        assert all(not g.series for g in response.groups)
        split = await stub.GetMetricsSummary(
            pb.GetMetricsSummaryRequest(group_by="provider", step_seconds=300, group_series=True),
            metadata=MD_A,
        )
        for group in split.groups:
            mine = [i for i in rows if b.attributes[i]["gen_ai.provider.name"] == group.key]
            assert (
                sum(p.metrics.request_count for p in group.series) == len(mine) == group.metrics.request_count
            )
            assert {p.time_unix_nano for p in group.series} <= set(times)

        cost = await stub.GetCostBreakdown(pb.GetCostBreakdownRequest(group_by="model"), metadata=MD_A)
        assert cost.total.cost_usd == pytest.approx(total.cost_usd)
        assert cost.total.input_cost_usd == pytest.approx(
            sum(b.attributes[i]["llm_observer.cost.input_usd"] for i in rows)
        )
        assert {g.key for g in cost.groups} == {"gpt-4o", "gpt-4o-mini", "claude-sonnet-4"}
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.GetMetricsSummary(pb.GetMetricsSummaryRequest(group_by="color"), metadata=MD_A)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_grpc_refusals(running: Any) -> None:
    async with grpc.aio.insecure_channel(running.grpc_target) as channel:
        stub = pb_grpc.QueryServiceStub(channel)
        for metadata, code in (
            ((), grpc.StatusCode.UNAUTHENTICATED),
            ((("authorization", "Bearer wrong"),), grpc.StatusCode.UNAUTHENTICATED),
            ((("authorization", "Bearer key-revoked"),), grpc.StatusCode.PERMISSION_DENIED),
            ((("authorization", "Bearer key-ingest-only"),), grpc.StatusCode.PERMISSION_DENIED),
        ):
            for call in (
                stub.SearchTraces(pb.SearchTracesRequest(), metadata=metadata),
                stub.GetTrace(pb.GetTraceRequest(trace_id="a" * 32), metadata=metadata),
                stub.GetMetricsSummary(pb.GetMetricsSummaryRequest(), metadata=metadata),
                stub.GetCostBreakdown(pb.GetCostBreakdownRequest(), metadata=metadata),
                stub.SemanticSearch(pb.SemanticSearchRequest(query="x"), metadata=metadata),
            ):
                with pytest.raises(grpc.aio.AioRpcError) as info:
                    await call
                assert info.value.code() == code
            stream = stub.TailSpans(pb.TailSpansRequest(), metadata=metadata)
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stream.read()
            assert info.value.code() == code


async def test_grpc_reflection_lists_the_service(running: Any) -> None:
    async with grpc.aio.insecure_channel(running.grpc_target) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)

        async def ask() -> Any:
            yield reflection_pb2.ServerReflectionRequest(list_services="")
            yield reflection_pb2.ServerReflectionRequest(
                file_containing_symbol="llm_observer.query.v1.QueryService"
            )

        answers = [answer async for answer in stub.ServerReflectionInfo(ask())]
        names = {s.name for s in answers[0].list_services_response.service}
        assert "llm_observer.query.v1.QueryService" in names
        assert answers[1].file_descriptor_response.file_descriptor_proto


async def test_grpc_tail_streams_new_spans(open_running: Any) -> None:
    async with grpc.aio.insecure_channel(open_running.grpc_target) as channel:
        stub = pb_grpc.QueryServiceStub(channel)
        stream = stub.TailSpans(pb.TailSpansRequest(filter=pb.SpanFilter(service="tail-svc")))
        reader = asyncio.ensure_future(stream.read())
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 20
        posted: set[str] = set()
        # The tail reports what is stored after it started: keep adding traces until one comes through.
        while not reader.done():
            assert loop.time() < deadline, "no span came through the tail"
            response = await open_running.http.post(
                "/api/v1/traces",
                json={
                    "service_name": "tail-svc",
                    "spans": [{"name": "tailed", "duration_ms": 5, "model": "m1"}],
                },
            )
            assert response.status_code == 202
            posted.add(response.json()["trace_id"])
            await asyncio.wait([reader], timeout=0.3)
        span = reader.result()
        assert span.trace_id in posted and span.name == "tailed" and span.service_name == "tail-svc"
        stream.cancel()
