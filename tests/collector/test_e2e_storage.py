"""End to end: real OpenTelemetry SDK exporters → the collector → ClickHouse (chDB)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import httpx
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode

from llm_observer.collector.testing import FlakyExporter, genai_request, local_config, running
from tests.support import wait_for
from tests.support.collector import stored


def _send_agent_trace(exporter: SpanExporter, service_name: str) -> None:
    """An agent → tool + LLM tree through the SDK's BatchSpanProcessor, flushed on shutdown."""
    provider = TracerProvider(
        resource=Resource.create({"service.name": service_name, "llm_observer.project.id": "p1"})
    )
    provider.add_span_processor(BatchSpanProcessor(exporter))
    tracer = provider.get_tracer("e2e-test", "1.0")
    with tracer.start_as_current_span("invoke_agent planner", kind=SpanKind.INTERNAL) as agent:
        agent.set_attribute("gen_ai.operation.name", "invoke_agent")
        agent.set_attribute("gen_ai.agent.name", "planner")
        with tracer.start_as_current_span("chat gpt-4o", kind=SpanKind.CLIENT) as llm:
            llm.set_attribute("gen_ai.operation.name", "chat")
            llm.set_attribute("gen_ai.provider.name", "openai")
            llm.set_attribute("gen_ai.request.model", "gpt-4o")
            llm.set_attribute("gen_ai.response.model", "gpt-4o-2024-08-06")
            llm.set_attribute("gen_ai.usage.input_tokens", 1000)
            llm.set_attribute("gen_ai.usage.output_tokens", 500)
            llm.set_attribute("gen_ai.usage.cache_read.input_tokens", 200)
            llm.set_attribute("gen_ai.usage.cache_write.input_tokens", 7)
            llm.set_attribute("gen_ai.request.temperature", 0.5)
            llm.set_attribute("gen_ai.response.finish_reasons", ["stop"])
            llm.set_attribute("user.id", "alice")
            llm.set_attribute("gen_ai.conversation.id", "conv-1")
            llm.add_event("gen_ai.choice", {"index": 0})
        with tracer.start_as_current_span("execute_tool search", kind=SpanKind.INTERNAL) as tool:
            tool.set_attribute("gen_ai.operation.name", "execute_tool")
            tool.set_status(Status(StatusCode.ERROR, "tool timed out"))
    provider.shutdown()


async def test_sdk_grpc_and_http_protobuf_spans_are_stored_exactly(tmp_path: Path) -> None:
    config = local_config(
        tmp_path,
        {
            "service": {
                "pipelines": {
                    "traces": {"receivers": ["otlp"], "processors": [], "exporters": ["clickhouse"]}
                }
            }
        },
    )
    async with running(config) as service:
        ports = service.endpoints()
        grpc_exporter = GrpcSpanExporter(endpoint=f"127.0.0.1:{ports['otlp.grpc']}", insecure=True)
        http_exporter = HttpSpanExporter(endpoint=f"http://127.0.0.1:{ports['otlp.http']}/v1/traces")
        await asyncio.to_thread(_send_agent_trace, grpc_exporter, "svc-grpc")
        await asyncio.to_thread(_send_agent_trace, http_exporter, "svc-http")
        await wait_for(
            lambda: stored(service, "SELECT count() AS n FROM otel.otel_traces")[0]["n"] == 6,
            timeout=20,
            what="6 spans",
        )
        for service_name in ("svc-grpc", "svc-http"):
            rows = {
                r["SpanName"]: r
                for r in stored(
                    service,
                    "SELECT SpanName, SpanKind, TraceId, SpanId, ParentSpanId, ServiceName, StatusCode, StatusMessage, "
                    "SpanAttributes, ResourceAttributes, Duration, `Events.Name` AS EventNames, GenAiOperation, "
                    "GenAiProvider, GenAiRequestModel, GenAiResponseModel, InputTokens, OutputTokens, CacheReadTokens, "
                    "CacheWriteTokens, OrganizationId, ProjectId, UserId, ConversationId "
                    f"FROM otel.otel_traces WHERE ServiceName = '{service_name}'",
                )
            }
            assert set(rows) == {"invoke_agent planner", "chat gpt-4o", "execute_tool search"}
            agent, llm, tool = rows["invoke_agent planner"], rows["chat gpt-4o"], rows["execute_tool search"]
            assert len({agent["TraceId"], llm["TraceId"], tool["TraceId"]}) == 1
            assert len(agent["TraceId"]) == 32 and len(llm["SpanId"]) == 16
            assert agent["ParentSpanId"] == ""
            assert llm["ParentSpanId"] == agent["SpanId"] and tool["ParentSpanId"] == agent["SpanId"]
            assert llm["SpanKind"] == "Client" and agent["SpanKind"] == "Internal"
            assert tool["StatusCode"] == "Error" and tool["StatusMessage"] == "tool timed out"
            assert llm["SpanAttributes"]["gen_ai.usage.input_tokens"] == "1000"
            assert llm["SpanAttributes"]["gen_ai.request.temperature"] == "0.5"
            assert json.loads(llm["SpanAttributes"]["gen_ai.response.finish_reasons"]) == ["stop"]
            assert llm["ResourceAttributes"]["service.name"] == service_name
            assert llm["EventNames"] == ["gen_ai.choice"]
            assert llm["Duration"] > 0
            assert (llm["GenAiOperation"], llm["GenAiProvider"]) == ("chat", "openai")
            assert (llm["GenAiRequestModel"], llm["GenAiResponseModel"]) == ("gpt-4o", "gpt-4o-2024-08-06")
            assert (llm["InputTokens"], llm["OutputTokens"]) == (1000, 500)
            assert (llm["CacheReadTokens"], llm["CacheWriteTokens"]) == (200, 7)
            assert (llm["OrganizationId"], llm["ProjectId"]) == ("default", "p1")
            assert (llm["UserId"], llm["ConversationId"]) == ("alice", "conv-1")
            assert tool["InputTokens"] == 0 and tool["GenAiProvider"] == ""


async def test_otlp_json_over_http_is_stored(tmp_path: Path) -> None:
    config = local_config(
        tmp_path,
        {
            "service": {
                "pipelines": {
                    "traces": {"receivers": ["otlp"], "processors": [], "exporters": ["clickhouse"]}
                }
            }
        },
    )
    now = time.time_ns()
    body = {
        "resourceSpans": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "js-app"}}]},
                "scopeSpans": [
                    {
                        "scope": {"name": "manual"},
                        "spans": [
                            {
                                "traceId": "5b8efff798038103d269b633813fc60c",
                                "spanId": "eee19b7ec3c1b174",
                                "name": "chat claude-3-5-haiku",
                                "kind": 3,
                                "startTimeUnixNano": str(now),
                                "endTimeUnixNano": str(now + 1_500_000),
                                "attributes": [
                                    {"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
                                    {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "42"}},
                                ],
                                "status": {"code": 1},
                            }
                        ],
                    }
                ],
            }
        ]
    }
    async with running(config) as service:
        url = f"http://127.0.0.1:{service.endpoints()['otlp.http']}/v1/traces"
        async with httpx.AsyncClient() as client:
            response = await client.post(url, json=body)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "application/json"
        rows = await wait_for(
            lambda: stored(
                service,
                "SELECT TraceId, SpanId, SpanKind, StatusCode, InputTokens, Duration FROM otel.otel_traces",
            ),
            timeout=20,
            what="the JSON span",
        )
        assert rows == [
            {
                "TraceId": "5b8efff798038103d269b633813fc60c",
                "SpanId": "eee19b7ec3c1b174",
                "SpanKind": "Client",
                "StatusCode": "Ok",
                "InputTokens": 42,
                "Duration": 1_500_000,
            }
        ]


async def test_failing_exporter_neither_blocks_storage_nor_gets_duplicates(tmp_path: Path) -> None:
    config = local_config(
        tmp_path,
        {
            "exporters": {"flaky": {"fail": True}},
            "service": {
                "delivery": {
                    "initial_backoff_seconds": 0.05,
                    "max_backoff_seconds": 0.2,
                    "linger_seconds": 0,
                },
                "pipelines": {
                    "traces": {"receivers": ["otlp"], "processors": [], "exporters": ["clickhouse", "flaky"]}
                },
            },
        },
    )
    async with running(config) as service:
        flaky = service.exporters["flaky"]
        assert isinstance(flaky, FlakyExporter)
        url = f"http://127.0.0.1:{service.endpoints()['otlp.http']}/v1/traces"
        sent: list[bytes] = []
        async with httpx.AsyncClient() as client:
            for _ in range(20):
                request = genai_request(traces=10)
                sent.extend(s.span_id for s in request.resource_spans[0].scope_spans[0].spans)
                response = await client.post(
                    url,
                    content=request.SerializeToString(),
                    headers={"content-type": "application/x-protobuf"},
                )
                assert response.status_code == 200
            # Storage has everything while the other exporter is still failing.
            await wait_for(
                lambda: stored(service, "SELECT count() AS n FROM otel.otel_traces")[0]["n"] == len(sent),
                timeout=20,
                what="all spans in storage",
            )
            assert flaky.span_ids == [] and flaky.attempts > 1
            flaky.failing = False
            await wait_for(
                lambda: len(flaky.span_ids) >= len(sent), timeout=20, what="the flaky exporter to catch up"
            )
            # More traffic after recovery goes to both, still exactly once.
            request = genai_request(traces=4)
            sent.extend(s.span_id for s in request.resource_spans[0].scope_spans[0].spans)
            await client.post(
                url, content=request.SerializeToString(), headers={"content-type": "application/x-protobuf"}
            )
            await wait_for(lambda: len(flaky.span_ids) >= len(sent), timeout=20, what="the new spans")
        assert sorted(flaky.span_ids) == sorted(sent)
        rows = stored(service, "SELECT count() AS n, uniqExact(SpanId) AS u FROM otel.otel_traces")
        assert rows == [{"n": len(sent), "u": len(sent)}]
