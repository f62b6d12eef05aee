"""Filter values match literally through every API: backslashes, quotes and control characters are data,
never escapes or patterns (REST, Jaeger legacy and api_v3, gRPC)."""

from __future__ import annotations

import json
import time
from typing import Any

import grpc

from llm_observer.kernel.batch import SpanBatch
from llm_observer.query.v1 import llm_observer_query_v1_pb2 as pb
from llm_observer.query.v1 import llm_observer_query_v1_pb2_grpc as pb_grpc
from tests.support import add_span

A = {"Authorization": "Bearer key-for-org-a"}
MD_A = (("authorization", "Bearer key-for-org-a"),)

VALUES = ("DOMAIN\\alice", "\\", "ends\\", "\\N", "tab\there", 'say "hi" \\"', "C:\\new\\table")


async def _plant(running: Any) -> dict[str, str]:
    """One trace per value in org-a: the value as service, span name, user, model, session and attribute."""
    batch = SpanBatch(origin="test:literal")
    start = time.time_ns() - 600 * 10**9
    traces = {}
    for n, value in enumerate(VALUES):
        trace_id = bytes([0xE0 + n]) * 16
        traces[value] = trace_id.hex()
        add_span(
            batch,
            {
                "user.id": value,
                "gen_ai.request.model": value,
                "session.id": value,
                "ticket.path": value,
                "gen_ai.input.messages": json.dumps(
                    [{"role": "user", "parts": [{"type": "text", "content": f"about {value}"}]}]
                ),
            },
            resource={
                "service.name": value,
                "llm_observer.organization.id": "org-a",
                "llm_observer.project.id": "web",
            },
            trace_id=trace_id,
            span_id=bytes([0xE0 + n]) * 8,
            name=value,
            start=start + n * 10**6,
            end=start + n * 10**6 + 5 * 10**6,
        )
    await running.exporter.send(batch)
    return traces


async def test_literal_values_match_through_rest(running: Any) -> None:
    traces = await _plant(running)
    http = running.http
    for value, trace_id in traces.items():
        for params in (
            {"service": value},
            {"name": value},
            {"user_id": value},
            {"model": value},
            {"session_id": value},
            {"attribute": f"ticket.path={value}"},
        ):
            response = await http.get("/api/v1/traces", headers=A, params=params)
            assert response.status_code == 200, (params, response.text)
            assert [t["trace_id"] for t in response.json()["traces"]] == [trace_id], params
        response = await http.get("/api/v1/traces", headers=A, params={"q": f"about {value}"})
        assert trace_id in [t["trace_id"] for t in response.json()["traces"]]
        summary = await http.get("/api/v1/metrics/summary", headers=A, params={"model": value})
        assert summary.status_code == 200 and summary.json()["request_count"] == 1
    # A doubled backslash is a different value, not an escape of the single one.
    response = await http.get("/api/v1/traces", headers=A, params={"user_id": "DOMAIN\\\\alice"})
    assert response.status_code == 200 and response.json()["traces"] == []


async def test_literal_values_match_through_jaeger(running: Any) -> None:
    traces = await _plant(running)
    http = running.http
    window = {"start": (time.time_ns() - 3600 * 10**9) // 1000, "end": time.time_ns() // 1000}
    for value, trace_id in traces.items():
        operations = await http.get("/jaeger/api/operations", headers=A, params={"service": value})
        assert operations.json()["data"] == [{"name": value, "spanKind": "client"}]
        for params in (
            {"service": value, "operation": value},
            {"tags": json.dumps({"user.id": value})},
            {"tags": "ticket.path=" + json.dumps(value)},  # logfmt, quoted: JSON escapes
        ):
            response = await http.get("/jaeger/api/traces", headers=A, params={**params, **window})
            assert response.status_code == 200, (params, response.text)
            assert [t["traceID"] for t in response.json()["data"]] == [trace_id], params
        response = await http.get(
            "/jaeger/api/v3/traces",
            headers=A,
            params={"query.service_name": value, "query.attributes": json.dumps({"session.id": value})},
        )
        assert response.status_code == 200, response.text
        spans = response.json()["result"]["resourceSpans"][0]["scopeSpans"][0]["spans"]
        assert [s["traceId"] for s in spans] == [trace_id]
    # logfmt, unquoted: taken as it is, backslash included.
    response = await http.get(
        "/jaeger/api/traces", headers=A, params={"tags": "user.id=DOMAIN\\alice", **window}
    )
    assert [t["traceID"] for t in response.json()["data"]] == [traces["DOMAIN\\alice"]]


async def test_literal_values_match_through_grpc(running: Any) -> None:
    traces = await _plant(running)
    async with grpc.aio.insecure_channel(running.grpc_target) as channel:
        stub = pb_grpc.QueryServiceStub(channel)
        for value, trace_id in traces.items():
            for spans in (
                pb.SpanFilter(service=value),
                pb.SpanFilter(span_name=value),
                pb.SpanFilter(user_id=value),
                pb.SpanFilter(conversation_id=value),
                pb.SpanFilter(attributes={"ticket.path": value}),
            ):
                response = await stub.SearchTraces(pb.SearchTracesRequest(filter=spans), metadata=MD_A)
                assert [t.trace_id for t in response.traces] == [trace_id], spans
            summary = await stub.GetMetricsSummary(
                pb.GetMetricsSummaryRequest(filter=pb.SpanFilter(model=value)), metadata=MD_A
            )
            assert summary.total.request_count == 1
