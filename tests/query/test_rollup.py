"""Trace detail shows each workflow/agent/step span's token and cost sums: computed at read time for spans
stored without them (REST and gRPC), and written at ingest by the ``rollup`` processor when the pipeline
runs it (a real OpenTelemetry SDK → the collector → chDB → the query API).

Expected values are computed by hand from the trees below, not by the code under test."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import grpc
import httpx
from google.protobuf import json_format
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind

from llm_observer.collector.testing import local_config, running
from llm_observer.kernel.batch import SpanBatch
from llm_observer.processors.rollup import factory as rollup_factory
from llm_observer.query.v1 import llm_observer_query_v1_pb2 as pb
from llm_observer.query.v1 import llm_observer_query_v1_pb2_grpc as pb_grpc
from tests.support import add_span, wait_for
from tests.support.collector import stored

IN, OUT, COST = (
    "llm_observer.subtree.input_tokens",
    "llm_observer.subtree.output_tokens",
    "llm_observer.subtree.cost_usd",
)
TRACE_ID = bytes.fromhex("7a" * 16)
RESOURCE = {
    "service.name": "hand-made-agents",
    "llm_observer.organization.id": "org-a",
    "llm_observer.project.id": "web",
}

# Hand-made agent spans, as an application without framework instrumentation sends them:
#
#   W workflow                       -> 650 in, 65 out, 0.0035 USD
#   ├── A1 agent (stored sums 999/99: kept; cost added: 0.0035)
#   │   ├── L1 chat 100/10 0.001
#   │   └── T1 tool                  -> 550 in, 55 out, 0.0025 USD
#   │       ├── L2 chat 200/20 0.002
#   │       └── L4 chat 350/35 0.0005
#   ├── A2 agent                     -> nothing: no model call beneath it
#   │   └── H http
#   └── X, Y: each the other's parent (malformed): nothing, and no hang
#       └── L5 chat under X (not reachable from the root: counted nowhere)
TREE: dict[str, tuple[str, dict[str, Any]]] = {
    "W": ("", {"gen_ai.operation.name": "invoke_workflow"}),
    "A1": ("W", {"gen_ai.operation.name": "invoke_agent", IN: 999, OUT: 99}),
    "L1": (
        "A1",
        {"gen_ai.usage.input_tokens": 100, "gen_ai.usage.output_tokens": 10, "llm_observer.cost.usd": 0.001},
    ),
    "T1": ("A1", {"gen_ai.operation.name": "execute_tool"}),
    "L2": (
        "T1",
        {"gen_ai.usage.input_tokens": 200, "gen_ai.usage.output_tokens": 20, "llm_observer.cost.usd": 0.002},
    ),
    "L4": (
        "T1",
        {"gen_ai.usage.input_tokens": 350, "gen_ai.usage.output_tokens": 35, "llm_observer.cost.usd": 0.0005},
    ),
    "A2": ("W", {"gen_ai.operation.name": "invoke_agent"}),
    "H": ("A2", {"http.request.method": "GET"}),
    "X": ("Y", {}),
    "Y": ("X", {}),
    "L5": ("X", {"gen_ai.usage.input_tokens": 5, "gen_ai.usage.output_tokens": 5}),
}
EXPECTED: dict[str, dict[str, Any]] = {
    "W": {IN: 650, OUT: 65, COST: 0.0035},
    "A1": {IN: 999, OUT: 99, COST: 0.0035},
    "T1": {IN: 550, OUT: 55, COST: 0.0025},
    "A2": {},
    "H": {},
    "X": {},
    "Y": {},
    "L1": {},
    "L2": {},
    "L4": {},
    "L5": {},
}


def _sid(name: str) -> bytes:
    return name.encode().ljust(8, b"-")


def _plant() -> SpanBatch:
    batch = SpanBatch(origin="test:rollup")
    start = time.time_ns() - 600 * 10**9
    for name, (parent, attrs) in TREE.items():
        add_span(
            batch,
            dict(attrs),
            resource=RESOURCE,
            trace_id=TRACE_ID,
            span_id=_sid(name),
            parent_span_id=_sid(parent) if parent else b"",
            name=name,
            start=start,
        )
    return batch


def _sums(attributes: dict[str, Any]) -> dict[str, Any]:
    """The subtree attributes of a span, as numbers whether the API types them or gives stored strings."""
    out: dict[str, Any] = {}
    for key in (IN, OUT):
        if key in attributes:
            out[key] = int(attributes[key])
    if COST in attributes:
        out[COST] = float(attributes[COST])
    return out


async def test_rollup_trace_detail_fills_sums_in_rest_and_grpc(running: Any) -> None:
    await running.exporter.send(_plant())
    tid = TRACE_ID.hex()
    response = await running.http.get(f"/api/v1/traces/{tid}", headers=running.headers("key-for-org-a"))
    assert response.status_code == 200, response.text
    spans = response.json()["spans"]
    by_name = {span["name"]: _sums(span["attributes"]) for span in spans}
    assert by_name == EXPECTED
    # The model calls' own columns are what they were: nothing is added to the trace's totals.
    assert sum(span["input_tokens"] for span in spans) == 100 + 200 + 350 + 5

    async with grpc.aio.insecure_channel(running.grpc_target) as channel:
        reply = await pb_grpc.QueryServiceStub(channel).GetTrace(  # type: ignore[no-untyped-call]
            pb.GetTraceRequest(trace_id=tid), metadata=(("authorization", "Bearer key-for-org-a"),)
        )
    grpc_spans = [json_format.MessageToDict(s, preserving_proto_field_name=True) for s in reply.spans]
    assert {s["name"]: _sums(s.get("attributes", {})) for s in grpc_spans} == EXPECTED
    rest_attributes = {span["span_id"]: span["attributes"] for span in spans}
    for span in grpc_spans:
        assert span.get("attributes", {}) == rest_attributes[span["span_id"]]


def _send_agent_run(endpoint: str) -> None:
    """An agent run with two priced model calls, made with the OpenTelemetry SDK by hand (no framework
    instrumentation, so no subtree attributes), each span exported as it ends."""
    provider = TracerProvider(resource=Resource.create({"service.name": "sdk-agents"}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    tracer = provider.get_tracer("hand-made")
    with tracer.start_as_current_span("invoke_workflow report") as workflow:
        workflow.set_attribute("gen_ai.operation.name", "invoke_workflow")
        with tracer.start_as_current_span("invoke_agent researcher") as agent:
            agent.set_attribute("gen_ai.operation.name", "invoke_agent")
            for model, usage in (
                ("gpt-4o", {"input_tokens": 1000, "cache_read.input_tokens": 200, "output_tokens": 500}),
                ("gpt-4o-mini", {"input_tokens": 1000, "output_tokens": 1000}),
            ):
                with tracer.start_as_current_span(f"chat {model}", kind=SpanKind.CLIENT) as call:
                    call.set_attribute("gen_ai.operation.name", "chat")
                    call.set_attribute("gen_ai.provider.name", "openai")
                    call.set_attribute("gen_ai.request.model", model)
                    for key, value in usage.items():
                        call.set_attribute(f"gen_ai.usage.{key}", value)
            with tracer.start_as_current_span("execute_tool search") as tool:
                tool.set_attribute("gen_ai.operation.name", "execute_tool")
    provider.shutdown()


async def test_rollup_processor_sums_are_stored_and_served(tmp_path: Path) -> None:
    """gpt-4o: 1000 input (200 cache read) + 500 output = 0.00725 USD; gpt-4o-mini: 1000 + 1000 at 0.15 /
    0.60 per million = 0.00075 USD. The agent and the workflow carry 2000 / 1500 / 0.008."""
    config = local_config(
        tmp_path,
        {
            "processors": {"rollup": {}},
            "service": {
                "delivery": {"linger_seconds": 0.01},
                "pipelines": {
                    "traces": {
                        "receivers": ["otlp"],
                        "processors": ["tenant", "logjoin", "normalize", "attribute", "cost", "rollup"],
                        "exporters": ["clickhouse"],
                    }
                },
            },
        },
        extra_factories={"processors": {"rollup": rollup_factory}},
    )
    async with running(config, query=True) as service:
        endpoint = f"http://127.0.0.1:{service.endpoints()['otlp.http']}/v1/traces"
        await asyncio.to_thread(_send_agent_run, endpoint)
        sql = (
            "SELECT SpanName, TraceId, SpanAttributes[{i:String}] AS i, SpanAttributes[{o:String}] AS o, "
            "SpanAttributes[{c:String}] AS c FROM otel.otel_traces ORDER BY SpanName"
        )
        params = {"i": IN, "o": OUT, "c": COST}

        def five_rows() -> list[dict[str, Any]]:
            found = stored(service, sql, params)
            return found if len(found) == 5 else []

        rows = await wait_for(five_rows, timeout=30, what="5 stored spans")
        # Written by the processor at ingest: in the store itself.
        written = {row["SpanName"]: (row["i"], row["o"], row["c"]) for row in rows}
        assert written == {
            "invoke_workflow report": ("2000", "1500", "0.008"),
            "invoke_agent researcher": ("2000", "1500", "0.008"),
            "chat gpt-4o": ("", "", ""),
            "chat gpt-4o-mini": ("", "", ""),
            "execute_tool search": ("", "", ""),
        }
        assert service.query_service is not None
        query = f"http://127.0.0.1:{service.query_service.http_port}/api/v1/traces/{rows[0]['TraceId']}"
        async with httpx.AsyncClient(timeout=30) as http:
            body = (await http.get(query)).json()
    served = {span["name"]: _sums(span["attributes"]) for span in body["spans"]}
    assert served["invoke_agent researcher"] == {IN: 2000, OUT: 1500, COST: 0.008}
    assert served["invoke_workflow report"] == {IN: 2000, OUT: 1500, COST: 0.008}
    assert served["chat gpt-4o"] == served["execute_tool search"] == {}
