"""Tenant isolation on every endpoint (REST, Jaeger, gRPC) and SQL-injection strings in every filter."""

from __future__ import annotations

import json
from typing import Any

import grpc
import pytest

from llm_observer.query.v1 import llm_observer_query_v1_pb2 as pb
from llm_observer.query.v1 import llm_observer_query_v1_pb2_grpc as pb_grpc

A = {"Authorization": "Bearer key-for-org-a"}
A_WEB = {"Authorization": "Bearer key-for-org-a-web-only"}
B = {"Authorization": "Bearer key-for-org-b"}

INJECTIONS = (
    "x' OR '1'='1",
    "'; DROP TABLE otel.otel_traces; --",
    "\\' OR 1=1 --",
    "{p0:String}",
    "org-a') OR (1=1",
    "%' UNION SELECT * FROM system.tables --",
    '" OR ""="',
)


def org_traces(planted: Any, org: str, project: str | None = None) -> set[str]:
    b = planted.batch
    return {
        tid
        for tid, rows in planted.traces.items()
        if b.resource[rows[0]]["llm_observer.organization.id"] == org
        and (project is None or b.resource[rows[0]]["llm_observer.project.id"] == project)
    }


async def test_tenancy_rest_reads_are_confined(running: Any) -> None:
    http, planted = running.http, running.planted
    a_ids, b_ids = org_traces(planted, "org-a"), org_traces(planted, "org-b")
    listed = (await http.get("/api/v1/traces", headers=B, params={"limit": 1000})).json()["traces"]
    assert {t["trace_id"] for t in listed} == b_ids
    for tid in list(a_ids)[:3]:
        assert (await http.get(f"/api/v1/traces/{tid}", headers=B)).status_code == 404
        assert (await http.get(f"/jaeger/api/traces/{tid}", headers=B)).status_code == 404
        assert (await http.get(f"/jaeger/api/v3/traces/{tid}", headers=B)).status_code == 404
        assert (await http.get(f"/api/v1/traces/{tid}", headers=A)).status_code == 200
    summary = (await http.get("/api/v1/metrics/summary", headers=B)).json()
    assert summary["request_count"] == 16  # 8 traces x 2 model calls in org-b
    cost = (await http.get("/api/v1/metrics/cost", headers=B, params={"group_by": "organization"})).json()
    assert [g["key"] for g in cost["groups"]] == ["org-b"]
    by_project = (await http.get("/api/v1/metrics/summary", headers=B, params={"group_by": "project"})).json()
    assert set(by_project["by_project"]) == {"default"}

    # Naming another organization is refused, not silently widened.
    for path in (
        "/api/v1/traces",
        "/api/v1/metrics/summary",
        "/api/v1/metrics/cost",
        "/jaeger/api/services",
        f"/api/v1/traces/{next(iter(a_ids))}",
        "/api/v1/search/semantic",
    ):
        response = await http.get(path, headers=B, params={"organization_id": "org-a", "q": "hello"})
        assert response.status_code == 403, path
        assert response.json()["error"]["code"] == "permission_denied"


async def test_tenancy_project_scoped_key(running: Any) -> None:
    http, planted = running.http, running.planted
    listed = (await http.get("/api/v1/traces", headers=A_WEB, params={"limit": 1000})).json()["traces"]
    assert {t["trace_id"] for t in listed} == org_traces(planted, "org-a", "web")
    api_trace = next(iter(org_traces(planted, "org-a", "api")))
    assert (await http.get(f"/api/v1/traces/{api_trace}", headers=A_WEB)).status_code == 404
    assert (await http.get("/api/v1/traces", headers=A_WEB, params={"project_id": "api"})).status_code == 403
    summary = (
        await http.get("/api/v1/metrics/summary", headers=A_WEB, params={"group_by": "project"})
    ).json()
    assert set(summary["by_project"]) == {"web"}
    services_ = (await http.get("/jaeger/api/services", headers=A_WEB)).json()["data"]
    assert services_ == ["chatbot"]


async def test_tenancy_jaeger_is_confined(running: Any) -> None:
    http, planted = running.http, running.planted
    assert (await http.get("/jaeger/api/services", headers=B)).json()["data"] == ["chatbot"]
    ops = (await http.get("/jaeger/api/services/agent-svc/operations", headers=B)).json()["data"]
    assert ops == []
    ops = (await http.get("/jaeger/api/operations", headers=B, params={"service": "agent-svc"})).json()[
        "data"
    ]
    assert ops == []
    assert (await http.get("/jaeger/api/v3/services", headers=B)).json() == {"services": ["chatbot"]}
    v3ops = (await http.get("/jaeger/api/v3/operations", headers=B, params={"service": "agent-svc"})).json()
    assert v3ops == {"operations": []}
    params = {"service": "chatbot", "start": 0, "end": 2**52, "limit": 1000}
    found = (await http.get("/jaeger/api/traces", headers=B, params=params)).json()["data"]
    assert {t["traceID"] for t in found} == org_traces(planted, "org-b")
    v3 = (
        await http.get(
            "/jaeger/api/v3/traces",
            headers=B,
            params={
                "query.service_name": "chatbot",
                "query.start_time_min": "2001-01-01T00:00:00Z",
                "query.search_depth": 1000,
            },
        )
    ).json()
    ids = {
        s["traceId"] for rs in v3["result"]["resourceSpans"] for ss in rs["scopeSpans"] for s in ss["spans"]
    }
    assert ids == org_traces(planted, "org-b")


async def test_tenancy_grpc_is_confined(running: Any) -> None:
    planted = running.planted
    md_b = (("authorization", "Bearer key-for-org-b"),)
    async with grpc.aio.insecure_channel(running.grpc_target) as channel:
        stub = pb_grpc.QueryServiceStub(channel)
        found = await stub.SearchTraces(pb.SearchTracesRequest(limit=1000), metadata=md_b)
        assert {t.trace_id for t in found.traces} == org_traces(planted, "org-b")
        a_trace = next(iter(org_traces(planted, "org-a")))
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.GetTrace(pb.GetTraceRequest(trace_id=a_trace), metadata=md_b)
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
        summary = await stub.GetMetricsSummary(
            pb.GetMetricsSummaryRequest(group_by="organization"), metadata=md_b
        )
        assert [g.key for g in summary.groups] == ["org-b"]
        cost = await stub.GetCostBreakdown(pb.GetCostBreakdownRequest(group_by="organization"), metadata=md_b)
        assert [g.key for g in cost.groups] == ["org-b"]
        for call in (
            stub.SearchTraces(pb.SearchTracesRequest(organization_id="org-a"), metadata=md_b),
            stub.GetTrace(pb.GetTraceRequest(trace_id=a_trace, organization_id="org-a"), metadata=md_b),
            stub.GetMetricsSummary(pb.GetMetricsSummaryRequest(organization_id="org-a"), metadata=md_b),
            stub.GetCostBreakdown(pb.GetCostBreakdownRequest(organization_id="org-a"), metadata=md_b),
            stub.SemanticSearch(pb.SemanticSearchRequest(query="x", organization_id="org-a"), metadata=md_b),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await call
            assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
        stream = stub.TailSpans(pb.TailSpansRequest(organization_id="org-a"), metadata=md_b)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stream.read()
        assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_tenancy_sql_injection_strings_are_inert(running: Any) -> None:
    http = running.http
    filters = (
        "service",
        "model",
        "provider",
        "operation",
        "name",
        "user_id",
        "team_id",
        "session_id",
        "q",
        "project_id",
        "status",
        "cursor",
    )
    for value in INJECTIONS:
        for name in filters:
            response = await http.get("/api/v1/traces", headers=A, params={name: value})
            assert response.status_code in (200, 400, 403), (name, value, response.text)
            if response.status_code == 200:
                assert response.json()["traces"] == [], (name, value)
        response = await http.get("/api/v1/traces", headers=A, params={"attribute": f"{value}={value}"})
        assert response.json()["traces"] == []
        response = await http.get("/api/v1/traces", headers=A, params={"attribute": f"customer.tier={value}"})
        assert response.json()["traces"] == []
        for name in ("model", "provider", "service", "user_id", "q"):
            body = (await http.get("/api/v1/metrics/summary", headers=A, params={name: value})).json()
            assert body["request_count"] == 0, (name, value)
            body = (await http.get("/api/v1/metrics/cost", headers=A, params={name: value})).json()
            assert body["request_count"] == 0
        for path in (f"/api/v1/traces/{value}", f"/jaeger/api/traces/{value}"):
            assert (await http.get(path, headers=A)).status_code in (400, 404)
        jaeger = (
            await http.get(
                "/jaeger/api/traces",
                headers=A,
                params={
                    "service": value,
                    "operation": value,
                    "tags": json.dumps({value: value}),
                    "start": 0,
                    "end": 2**52,
                },
            )
        ).json()
        assert jaeger["data"] == []
        ops = (await http.get(f"/jaeger/api/services/{value}/operations", headers=A)).json()
        assert ops["data"] == []
        v3 = (
            await http.get(
                "/jaeger/api/v3/traces",
                headers=A,
                params={
                    "query.service_name": value,
                    "query.operation_name": value,
                    "query.start_time_min": "2001-01-01T00:00:00Z",
                },
            )
        ).json()
        assert v3 == {"result": {"resourceSpans": []}}
    # Nothing was dropped or widened: every trace is still there, and only org-a's.
    listed = (await http.get("/api/v1/traces", headers=A, params={"limit": 1000})).json()["traces"]
    assert {t["trace_id"] for t in listed} == org_traces(running.planted, "org-a")
    async with grpc.aio.insecure_channel(running.grpc_target) as channel:
        stub = pb_grpc.QueryServiceStub(channel)
        md = (("authorization", "Bearer key-for-org-a"),)
        for value in INJECTIONS:
            request = pb.SearchTracesRequest(
                filter=pb.SpanFilter(
                    service=value, model=value, provider=value, text=value, attributes={value: value}
                )
            )
            assert list((await stub.SearchTraces(request, metadata=md)).traces) == []
            summary = await stub.GetMetricsSummary(
                pb.GetMetricsSummaryRequest(filter=pb.SpanFilter(model=value)), metadata=md
            )
            assert summary.total.request_count == 0
