"""The REST, gRPC and Jaeger APIs present one stored span alike: typed attribute values, the same trace
status, and the same documented defaults."""

from __future__ import annotations

import time
from typing import Any

import grpc
from google.protobuf import json_format

from llm_observer.kernel.batch import Event
from llm_observer.query.v1 import llm_observer_query_v1_pb2 as pb
from llm_observer.query.v1 import llm_observer_query_v1_pb2_grpc as pb_grpc
from tests.support import span_batch

TRACE_ID = bytes.fromhex("5e" * 16)
RESOURCE = {
    "service.name": "typed-svc",
    "llm_observer.organization.id": "org-a",
    "llm_observer.project.id": "web",
    "process.pid": 4242,
}
ATTRIBUTES = {
    "gen_ai.operation.name": "chat",
    "gen_ai.request.model": "gpt-4o-mini",
    "gen_ai.usage.input_tokens": 13,
    "gen_ai.usage.output_tokens": 6,
    "llm_observer.cost.usd": 5.85e-06,
    "gen_ai.request.temperature": 0.2,
    "gen_ai.request.stream": True,
    "gen_ai.response.finish_reasons": ["stop"],
    "user.id": "00123",
}
TYPED = {
    "gen_ai.usage.input_tokens": 13,
    "gen_ai.usage.output_tokens": 6,
    "llm_observer.cost.usd": 5.85e-06,
    "gen_ai.request.temperature": 0.2,
    "gen_ai.request.stream": True,
    "gen_ai.response.finish_reasons": ["stop"],
    "user.id": "00123",  # a string that looks like a number stays a string
}


async def _plant_unset_trace(running: Any) -> str:
    """One trace of one span whose status is Unset, with typed attributes of every kind."""
    start = time.time_ns() - 600 * 10**9
    batch = span_batch(
        ATTRIBUTES,
        resource=RESOURCE,
        events=[[Event(start + 1000, "gen_ai.choice", {"index": 0})]],
        trace_id=TRACE_ID,
        name="chat gpt-4o-mini",
        start=start,
        status_code=0,
        origin="test:typed",
    )
    await running.exporter.send(batch)
    return TRACE_ID.hex()


async def test_consistency_attributes_are_typed_alike_in_rest_grpc_and_jaeger(running: Any) -> None:
    tid = await _plant_unset_trace(running)
    headers = running.headers("key-for-org-a")
    rest = (await running.http.get(f"/api/v1/traces/{tid}", headers=headers)).json()["spans"][0]
    for key, value in TYPED.items():
        assert rest["attributes"][key] == value and type(rest["attributes"][key]) is type(value), key
    assert rest["resource"]["process.pid"] == 4242
    assert rest["events"][0]["attributes"] == {"index": "0"}  # not a conventions' number: kept as stored

    async with grpc.aio.insecure_channel(running.grpc_target) as channel:
        reply = await pb_grpc.QueryServiceStub(channel).GetTrace(
            pb.GetTraceRequest(trace_id=tid), metadata=(("authorization", "Bearer key-for-org-a"),)
        )
    grpc_span = json_format.MessageToDict(reply.spans[0], preserving_proto_field_name=True)
    assert grpc_span["attributes"] == rest["attributes"]
    assert grpc_span["resource"] == rest["resource"]
    assert isinstance(grpc_span["attributes"]["gen_ai.request.stream"], bool)

    jaeger = (await running.http.get(f"/jaeger/api/traces/{tid}", headers=headers)).json()
    tags = {t["key"]: t for t in jaeger["data"][0]["spans"][0]["tags"]}
    assert tags["gen_ai.usage.input_tokens"]["value"] == rest["attributes"]["gen_ai.usage.input_tokens"]
    assert tags["gen_ai.usage.input_tokens"]["type"] == "int64"
    assert tags["llm_observer.cost.usd"]["type"] == "float64"
    assert tags["gen_ai.request.stream"] == {"key": "gen_ai.request.stream", "type": "bool", "value": True}
    assert tags["user.id"]["type"] == "string"

    v3 = (await running.http.get(f"/jaeger/api/v3/traces/{tid}", headers=headers)).json()
    span = v3["result"]["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    otlp = {a["key"]: a["value"] for a in span["attributes"]}
    assert otlp["gen_ai.response.finish_reasons"] == {"arrayValue": {"values": [{"stringValue": "stop"}]}}
    assert otlp["gen_ai.usage.input_tokens"] == {"intValue": "13"}


async def test_consistency_trace_of_unset_spans_reports_unset(running: Any) -> None:
    tid = await _plant_unset_trace(running)
    headers = running.headers("key-for-org-a")
    listed = (
        await running.http.get("/api/v1/traces", headers=headers, params={"service": "typed-svc"})
    ).json()["traces"]
    assert [(t["trace_id"], t["status"]) for t in listed] == [(tid, "Unset")]
    unset = (await running.http.get("/api/v1/traces", headers=headers, params={"status": "unset"})).json()
    assert all(t["status"] == "Unset" for t in unset["traces"]) and tid in {
        t["trace_id"] for t in unset["traces"]
    }
    async with grpc.aio.insecure_channel(running.grpc_target) as channel:
        reply = await pb_grpc.QueryServiceStub(channel).SearchTraces(
            pb.SearchTracesRequest(filter=pb.SpanFilter(service="typed-svc")),
            metadata=(("authorization", "Bearer key-for-org-a"),),
        )
    assert [(t.trace_id, t.status) for t in reply.traces] == [(tid, "Unset")]
    # The planted traces have Ok spans: they stay Ok (or Error when one failed).
    others = (await running.http.get("/api/v1/traces", headers=headers, params={"limit": 100})).json()
    assert {t["status"] for t in others["traces"] if t["trace_id"] != tid} <= {"Ok", "Error"}


async def test_consistency_openapi_states_the_window_the_code_uses(running: Any) -> None:
    document = (await running.http.get("/openapi.json")).json()
    parameters = {p["name"]: p for p in document["paths"]["/api/v1/traces"]["get"]["parameters"]}
    assert "one minute from now" in parameters["end_time"]["description"]
    headers = running.headers("key-for-org-a")
    before = time.time()
    summary = (await running.http.get("/api/v1/metrics/summary", headers=headers)).json()
    end = summary["end_time"]
    from datetime import datetime

    end_s = datetime.fromisoformat(end.split(".")[0] + "+00:00").timestamp()
    assert before + 55 <= end_s <= time.time() + 61
    document_semantic = document["paths"]["/api/v1/search/semantic"]["get"]["parameters"]
    assert "q" in {p["name"] for p in document_semantic}
