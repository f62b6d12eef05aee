"""Query values a client can send but storage cannot use are 400 / INVALID_ARGUMENT naming the parameter,
never a failed query (500 / INTERNAL): non-finite and huge numbers, times outside what storage holds, Jaeger
tags that do not parse."""

from __future__ import annotations

import base64
import json
from typing import Any

import grpc
import pytest

from llm_observer.query.v1 import llm_observer_query_v1_pb2 as pb
from llm_observer.query.v1 import llm_observer_query_v1_pb2_grpc as pb_grpc
from llm_observer.storage.clickhouse.reads import encode_cursor

A = {"Authorization": "Bearer key-for-org-a"}
MD_A = (("authorization", "Bearer key-for-org-a"),)

CASES: list[tuple[str, dict[str, Any], str]] = [
    ("/api/v1/traces", {"min_duration_ms": "inf"}, "min_duration_ms"),
    ("/api/v1/traces", {"min_duration_ms": "1e309"}, "min_duration_ms"),
    ("/api/v1/traces", {"max_duration_ms": "NaN"}, "max_duration_ms"),
    ("/api/v1/traces", {"max_duration_ms": "-Infinity"}, "max_duration_ms"),
    ("/api/v1/traces", {"min_duration_ms": "1e300"}, "min_duration_ms"),
    ("/api/v1/traces", {"min_cost": "nan"}, "min_cost"),
    ("/api/v1/traces", {"end_time": "0001-01-01T00:00:00Z"}, "end_time"),
    ("/api/v1/traces", {"start_time": "9999-12-31T23:59:59Z"}, "start_time"),
    ("/api/v1/traces", {"start_time": "1899-12-31T23:59:59+01:00"}, "start_time"),
    ("/api/v1/traces", {"end_time": "2262-04-12T00:00:00Z"}, "end_time"),
    ("/api/v1/traces", {"cursor": encode_cursor(2**70, "a" * 32)}, "cursor"),
    ("/api/v1/traces", {"cursor": base64.urlsafe_b64encode(b"[" * 5000).decode()}, "cursor"),
    ("/api/v1/metrics/summary", {"step_seconds": str(10**30)}, "step_seconds"),
    ("/api/v1/metrics/summary", {"end_time": "0001-01-01T00:00:00Z"}, "end_time"),
    ("/api/v1/metrics/cost", {"start_time": "0001-01-01T00:00:00Z"}, "start_time"),
    ("/api/v1/search/semantic", {"q": "x", "end_time": "0001-01-01T00:00:00Z"}, "end_time"),
    ("/jaeger/api/traces", {"start": str(10**30)}, "start"),
    ("/jaeger/api/traces", {"end": str(-(10**20))}, "end"),
    ("/jaeger/api/traces", {"lookback": "99999999999999h"}, "lookback"),
    ("/jaeger/api/traces", {"minDuration": "9999999999999999999999h"}, "minDuration"),
    ("/jaeger/api/traces", {"tags": 'user.id="DOMAIN\\alice"'}, "tags"),  # \a: no such escape
    ("/jaeger/api/traces", {"tags": 'a="\\'}, "tags"),
    ("/jaeger/api/traces", {"tags": 'a=1 "dangling"'}, "tags"),
    ("/jaeger/api/traces", {"tags": '{"a":' + "[" * 5000}, "tags"),
    ("/jaeger/api/traces", {"tags": "[1]"}, "tags"),
    ("/jaeger/api/v3/traces", {"query.start_time_min": "0001-01-01T00:00:00Z"}, "query.start_time_min"),
    ("/jaeger/api/v3/traces", {"query.attributes": 'k="\\x41"'}, "query.attributes"),
]


@pytest.mark.parametrize(("path", "params", "name"), CASES, ids=[f"{c[0]}:{c[2]}" for c in CASES])
async def test_bad_parameters_rest_and_jaeger_are_400_naming_the_parameter(
    running: Any, path: str, params: dict[str, Any], name: str
) -> None:
    response = await running.http.get(path, headers=A, params=params)
    assert response.status_code == 400, (params, response.text)
    error = response.json()["error"]
    assert error["code"] == "invalid_argument" and name in error["message"], error


async def test_bad_parameters_grpc_are_invalid_argument_naming_the_field(running: Any) -> None:
    cases: list[tuple[str, Any, str]] = [
        ("SearchTraces", pb.SearchTracesRequest(min_duration_ms=float("inf")), "min_duration_ms"),
        ("SearchTraces", pb.SearchTracesRequest(max_duration_ms=float("nan")), "max_duration_ms"),
        ("SearchTraces", pb.SearchTracesRequest(min_cost_usd=float("-inf")), "min_cost_usd"),
        ("SearchTraces", pb.SearchTracesRequest(min_duration_ms=1e300), "min_duration_ms"),
        ("SearchTraces", pb.SearchTracesRequest(start_time_unix_nano=-(2**63)), "start_time_unix_nano"),
        (
            "SearchTraces",
            pb.SearchTracesRequest(cursor=encode_cursor(-(2**63), "a" * 32)),
            "cursor",
        ),
        ("GetMetricsSummary", pb.GetMetricsSummaryRequest(step_seconds=2**40), "step_seconds"),
        ("GetMetricsSummary", pb.GetMetricsSummaryRequest(end_time_unix_nano=-(2**62)), "end_time_unix_nano"),
        (
            "GetCostBreakdown",
            pb.GetCostBreakdownRequest(start_time_unix_nano=-(2**62)),
            "start_time_unix_nano",
        ),
        (
            "SemanticSearch",
            pb.SemanticSearchRequest(query="x", start_time_unix_nano=-(2**62)),
            "start_time_unix_nano",
        ),
    ]
    async with grpc.aio.insecure_channel(running.grpc_target) as channel:
        stub = pb_grpc.QueryServiceStub(channel)
        for method, request, name in cases:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await getattr(stub, method)(request, metadata=MD_A)
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, (method, caught.value.details())
            assert name in (caught.value.details() or ""), (method, caught.value.details())


async def test_bad_parameters_leave_the_service_answering(running: Any) -> None:
    """After every refusal above, the same service still answers a good query with every trace."""
    for path, params, _ in CASES:
        await running.http.get(path, headers=A, params=params)
    listed = await running.http.get("/api/v1/traces", headers=A, params={"limit": 1000})
    assert listed.status_code == 200 and len(listed.json()["traces"]) == 18
    assert json.loads(listed.text)["next_cursor"] is None
