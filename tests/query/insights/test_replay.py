"""Trace replay end to end: a trace recorded with content capture by the real openai and anthropic SDKs
(instrumented by llm-observer, answered by the recorded fake provider) goes over OTLP/HTTP into a real
``llm-observer up`` service (WAL, processors, chDB); the replay route and the ``replay`` command re-issue its
calls against another fake provider with a changed model, and the new trace is stored, linked to the
original, with the diff's output, tokens and cost computed by hand here.

The module shares one service (and the recorded traces) between its tests.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anthropic
import grpc
import grpc.aio
import httpx
import openai
import pytest
import pytest_asyncio
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from llm_observer.collector.service import Service
from llm_observer.collector.testing import local_config, running
from llm_observer.instrumentation.anthropic import AnthropicInstrumentor
from llm_observer.instrumentation.openai import OpenAIInstrumentor
from llm_observer.instrumentation.testing import ReplayServer, Route, load_recording
from llm_observer.query.app import create_app
from llm_observer.query.v1 import llm_observer_query_v1_pb2 as pb
from llm_observer.query.v1 import llm_observer_query_v1_pb2_grpc as pb_grpc
from tests.support.waiting import wait_for

pytestmark = pytest.mark.asyncio(loop_scope="module")

RECORDINGS = Path(__file__).parents[2] / "instrumentation" / "recordings"
ORG, PROJECT, TEAM = "acme", "shop", "checkout"
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius"]}},
            "required": ["city"],
        },
    },
}
OPENAI_MESSAGES = [
    {"role": "system", "content": "You are a terse travel assistant."},
    {"role": "user", "content": "What is the weather in Paris?"},
]
ANTHROPIC_SYSTEM = "Answer in one sentence."
ANTHROPIC_MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]


@dataclass
class Recorded:
    """The traces the module's service holds, and the requests the fake provider saw for them."""

    service: Service
    otlp: str
    trace_id: str  # with content: root "agent step" → chat gpt-4o (tool call) → chat claude
    openai_span: str
    anthropic_span: str
    bare_trace_id: str  # the same calls recorded without content
    bare_spans: tuple[str, ...]
    openai_request: dict[str, Any]
    anthropic_request: dict[str, Any]


def _otlp_http(service: Service) -> str:
    for receiver in service.receivers.values():
        port = getattr(receiver, "http_port", 0)
        if port:
            return f"http://127.0.0.1:{port}"
    raise AssertionError("the service runs no OTLP/HTTP receiver")


def _record(otlp: str, capture: bool) -> tuple[str, list[str], list[dict[str, Any]]]:
    """One agent-step trace made by the real SDKs, instrumented by llm-observer; (trace id, LLM span
    ids, request bodies the fake provider received)."""
    provider = TracerProvider(
        resource=Resource.create(
            {
                "service.name": "travel-agent",
                "llm_observer.organization.id": ORG,
                "llm_observer.project.id": PROJECT,
                "llm_observer.team.id": TEAM,
            }
        )
    )
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=otlp + "/v1/traces")))
    kept = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(kept))
    kwargs = {"tracer_provider": provider, "meter_provider": NoOpMeterProvider(), "capture_content": capture}
    OpenAIInstrumentor().instrument(**kwargs)
    AnthropicInstrumentor().instrument(**kwargs)
    routes = load_recording(RECORDINGS / "openai" / "chat_tool_call.json")
    routes += load_recording(RECORDINGS / "anthropic" / "messages.json")
    try:
        with ReplayServer(routes) as server:
            oai = openai.OpenAI(base_url=server.url + "/v1", api_key="recording-key", max_retries=0)
            claude = anthropic.Anthropic(base_url=server.url, api_key="recording-key", max_retries=0)
            with provider.get_tracer("tests").start_as_current_span("agent step") as root:
                oai.chat.completions.create(
                    model="gpt-4o",
                    messages=OPENAI_MESSAGES,  # type: ignore[arg-type]
                    tools=[WEATHER_TOOL],  # type: ignore[list-item]
                    temperature=0.2,
                    max_tokens=300,
                )
                claude.messages.create(
                    model="claude-sonnet-4-6",
                    system=ANTHROPIC_SYSTEM,
                    messages=ANTHROPIC_MESSAGES,  # type: ignore[arg-type]
                    max_tokens=200,
                    stop_sequences=["###"],
                )
            bodies = [request.body for request in server.requests]
    finally:
        OpenAIInstrumentor().uninstrument()
        AnthropicInstrumentor().uninstrument()
    spans = [span for span in kept.get_finished_spans() if "gen_ai.operation.name" in (span.attributes or {})]
    provider.shutdown()
    trace_id = format(root.get_span_context().trace_id, "032x")
    return trace_id, [format(span.context.span_id, "016x") for span in spans], bodies


async def _stored(client: httpx.AsyncClient, trace_id: str, spans: int) -> dict[str, Any]:
    async def ready() -> dict[str, Any] | None:
        response = await client.get(f"/api/v1/traces/{trace_id}")
        if response.status_code != 200:
            return None
        body: dict[str, Any] = response.json()
        return body if len(body["spans"]) >= spans else None

    return await wait_for(ready, timeout=60, what=f"trace {trace_id} with {spans} spans stored")


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def recorded(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Recorded]:
    config = local_config(
        tmp_path_factory.mktemp("replay-up"),
        {"service": {"pipelines": {"traces": {"exporters": ["clickhouse"]}}}},
    )
    async with running(config, query=True) as service:
        otlp = _otlp_http(service)
        trace_id, spans, bodies = await asyncio.to_thread(_record, otlp, True)
        bare_id, bare_spans, _ = await asyncio.to_thread(_record, otlp, False)
        recorded = Recorded(
            service=service,
            otlp=otlp,
            trace_id=trace_id,
            openai_span=spans[0],
            anthropic_span=spans[1],
            bare_trace_id=bare_id,
            bare_spans=tuple(bare_spans),
            openai_request=bodies[0],
            anthropic_request=bodies[1],
        )
        async with _api(recorded) as client:
            await _stored(client, trace_id, 3)
            await _stored(client, bare_id, 3)
        yield recorded


def _api(recorded: Recorded, otlp: str | None = None) -> httpx.AsyncClient:
    """The query app as ``up`` serves it, over ASGI, on the service's backend; replays go to ``otlp`` (default:
    the service's own OTLP/HTTP receiver)."""
    backend = recorded.service.query_service.backend  # type: ignore[union-attr]
    assert backend is not None
    app = create_app(backend)
    app.state.replay_otlp_endpoint = otlp or recorded.otlp
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://query", timeout=120)


@pytest.fixture
def provider() -> Iterator[ReplayServer]:
    """The fake provider the replays call: OpenAI answers as gpt-4o-mini, Anthropic as recorded."""
    routes = load_recording(RECORDINGS / "openai" / "chat.json")
    routes += load_recording(RECORDINGS / "anthropic" / "messages.json")
    with ReplayServer(routes) as server:
        yield server


def _without(body: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {key: value for key, value in body.items() if key not in keys}


# --- the API ---------------------------------------------------------------------------------------------


async def test_replay_api_changed_model_diff_and_linked_trace(
    recorded: Recorded, provider: ReplayServer
) -> None:
    async with _api(recorded) as client:
        response = await client.post(
            f"/api/v1/traces/{recorded.trace_id}/replay",
            json={
                "span_id": recorded.openai_span,
                "model": "gpt-4o-mini",
                "base_urls": {"openai": provider.url + "/v1"},
                "api_keys": {"openai": "replay-key"},
            },
        )
        assert response.status_code == 200, response.text
        result = response.json()
        assert result["original_trace_id"] == recorded.trace_id
        assert result["exported"] is True

        # The request is the original one, model aside: system prompt, conversation, tools, parameters.
        (sent,) = provider.requests
        assert sent.path == "/v1/chat/completions"
        assert sent.headers["authorization"] == "Bearer replay-key"
        assert sent.body["model"] == "gpt-4o-mini"
        assert _without(sent.body, "model") == _without(recorded.openai_request, "model")

        (call,) = result["calls"]
        assert call["error"] is None and call["original_span_id"] == recorded.openai_span
        original, replay = call["original"], call["replay"]
        assert original["model"] == "gpt-4o" and original["response_model"] == "gpt-4o-2024-08-06"
        assert replay["model"] == "gpt-4o-mini" and replay["response_model"] == "gpt-4o-mini-2024-07-18"
        assert original["output"] == '[tool_call get_weather {"city": "Paris", "unit": "celsius"}]'
        assert replay["output"] == "Paris is the capital of France."
        assert call["output_changed"] is True
        assert call["output_diff"].splitlines()[2:] == [
            "@@ -1 +1 @@",
            '-[tool_call get_weather {"city": "Paris", "unit": "celsius"}]',
            "+Paris is the capital of France.",
        ]
        # Tokens as the two recordings answered them.
        assert (original["input_tokens"], original["output_tokens"], original["cache_read_tokens"]) == (
            1180,
            21,
            1024,
        )
        assert (replay["input_tokens"], replay["output_tokens"]) == (24, 8)
        assert (call["input_tokens_delta"], call["output_tokens_delta"]) == (-1156, -13)
        # gpt-4o: 156 fresh x $2.50 + 1024 cached x $1.25 + 21 out x $10 per million tokens;
        # gpt-4o-mini: 24 in x $0.15 + 8 out x $0.60 per million tokens.
        original_cost = (156 * 2.5 + 1024 * 1.25 + 21 * 10.0) / 1e6
        replay_cost = (24 * 0.15 + 8 * 0.60) / 1e6
        assert original["cost_usd"] == pytest.approx(original_cost, rel=1e-9)
        assert replay["cost_usd"] == pytest.approx(replay_cost, rel=1e-9)
        assert call["cost_delta_usd"] == pytest.approx(replay_cost - original_cost, rel=1e-9)
        assert original["latency_ms"] > 0 and replay["latency_ms"] > 0
        assert call["latency_delta_ms"] == pytest.approx(replay["latency_ms"] - original["latency_ms"])
        assert result["totals"]["replay_cost_usd"] == pytest.approx(replay_cost, rel=1e-9)

        # The new trace is stored in the original's tenant, its LLM span linked to the span it replays.
        stored = await _stored(client, result["replay_trace_id"], 2)
        spans = {span["span_id"]: span for span in stored["spans"]}
        root = spans[result["replay_root_span_id"]]
        assert root["name"] == "replay agent step"
        assert root["attributes"]["llm_observer.replay.original_trace_id"] == recorded.trace_id
        assert root["attributes"]["llm_observer.replay.original_span_id"] == recorded.openai_span
        assert root["attributes"]["llm_observer.replay.model"] == "gpt-4o-mini"
        llm = spans[call["replay_span_id"]]
        assert llm["parent_span_id"] == root["span_id"]
        assert llm["name"] == "chat gpt-4o-mini" and llm["response_model"] == "gpt-4o-mini-2024-07-18"
        assert llm["links"] == [{"trace_id": recorded.trace_id, "span_id": recorded.openai_span}]
        for span in stored["spans"]:
            assert (span["organization_id"], span["project_id"]) == (ORG, PROJECT)
            assert span["resource"]["llm_observer.team.id"] == TEAM
        # The collector priced the replayed span as the diff did, and kept its content.
        assert llm["cost_usd"] == pytest.approx(replay_cost, rel=1e-9)
        assert llm["output"] and "Paris is the capital of France." in llm["output"]


async def test_replay_api_whole_trace_rebuilds_both_providers(
    recorded: Recorded, provider: ReplayServer
) -> None:
    async with _api(recorded) as client:
        response = await client.post(
            f"/api/v1/traces/{recorded.trace_id}/replay",
            json={
                "base_urls": {"openai": provider.url + "/v1", "anthropic": provider.url},
                "api_keys": {"openai": "k1", "anthropic": "k2"},
            },
        )
        assert response.status_code == 200, response.text
        result = response.json()
        assert [call["original_span_id"] for call in result["calls"]] == [
            recorded.openai_span,
            recorded.anthropic_span,
        ]
        assert all(call["error"] is None for call in result["calls"])
        openai_sent, anthropic_sent = (request.body for request in provider.requests)
        assert openai_sent == recorded.openai_request
        assert anthropic_sent == recorded.anthropic_request
        claude = result["calls"][1]
        assert claude["original"]["output"] == claude["replay"]["output"] == "Paris is the capital of France."
        assert claude["output_changed"] is False and claude["output_diff"] == ""
        # Anthropic counts cache tokens apart; the conventions' input count includes them: 12 + 2048 + 1500.
        assert claude["replay"]["input_tokens"] == 3560
        stored = await _stored(client, result["replay_trace_id"], 3)
        links = sorted(
            link["span_id"]
            for span in stored["spans"]
            if span["operation"] == "chat"
            for link in span["links"]
        )
        assert links == sorted([recorded.openai_span, recorded.anthropic_span])
        # One LLM span per call: the replay makes no duplicate spans.
        assert sum(1 for span in stored["spans"] if span["operation"] == "chat") == 2


async def test_replay_api_without_content_names_the_spans(recorded: Recorded, provider: ReplayServer) -> None:
    async with _api(recorded) as client:
        response = await client.post(
            f"/api/v1/traces/{recorded.bare_trace_id}/replay",
            json={"base_url": provider.url, "api_keys": {"openai": "k", "anthropic": "k"}},
        )
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "failed_precondition"
    assert "was not captured" in error["message"]
    assert "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT" in error["message"]
    for span_id in recorded.bare_spans:
        assert span_id in error["message"]
    assert provider.requests == []


async def test_replay_api_refuses_unknown_trace_and_other_tenants(recorded: Recorded) -> None:
    async with _api(recorded) as client:
        missing = await client.post("/api/v1/traces/" + "ab" * 16 + "/replay", json={})
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
        other = await client.post(
            f"/api/v1/traces/{recorded.trace_id}/replay", params={"organization_id": "globex"}, json={}
        )
        assert other.status_code == 404
        not_llm = await client.post(f"/api/v1/traces/{recorded.trace_id}/replay", json={"span_id": "00" * 8})
        assert not_llm.status_code == 404 and "not an LLM call" in not_llm.json()["error"]["message"]


async def test_replay_api_keeps_service_keys_from_caller_hosts(
    recorded: Recorded, provider: ReplayServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "the-service-key")
    async with _api(recorded) as client:
        response = await client.post(
            f"/api/v1/traces/{recorded.trace_id}/replay",
            json={"span_id": recorded.openai_span, "base_url": provider.url + "/v1"},
        )
    assert response.status_code == 400
    assert "must give its key too" in response.json()["error"]["message"]
    assert provider.requests == []


# --- the command ------------------------------------------------------------------------------------------


async def test_replay_cli_prints_the_diff(recorded: Recorded, provider: ReplayServer) -> None:
    port = recorded.service.query_service.http_port  # type: ignore[union-attr]
    env = {**os.environ, "OPENAI_API_KEY": "cli-key"}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "llm_observer.query.insights.replay_cli",
        recorded.trace_id,
        "--url",
        f"http://127.0.0.1:{port}",
        "--span",
        recorded.openai_span,
        "--model",
        "gpt-4o-mini",
        "--base-url",
        f"openai={provider.url}/v1",
        "--otlp-endpoint",
        recorded.otlp,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 120)
    text = stdout.decode()
    assert process.returncode == 0, stderr.decode()
    assert f"replay of trace {recorded.trace_id} -> new trace " in text
    assert "model: gpt-4o-2024-08-06 -> gpt-4o-mini-2024-07-18" in text
    assert "+Paris is the capital of France." in text
    assert "tokens in:  1180 -> 24 (-1156)" in text
    assert "cost:       $0.001880 -> $0.000008 (-$0.001872)" in text
    assert provider.requests[0].headers["authorization"] == "Bearer cli-key"
    assert "cli-key" not in text and "cli-key" not in stderr.decode()
    new_trace = text.split(" -> new trace ")[1].split()[0]
    async with _api(recorded) as client:
        stored = await _stored(client, new_trace, 2)
    assert any(link["span_id"] == recorded.openai_span for span in stored["spans"] for link in span["links"])


async def test_replay_cli_without_content_exits_2(recorded: Recorded) -> None:
    port = recorded.service.query_service.http_port  # type: ignore[union-attr]
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "llm_observer.query.insights.replay_cli",
        recorded.bare_trace_id,
        "--url",
        f"http://127.0.0.1:{port}",
        env={**os.environ, "OPENAI_API_KEY": "k", "ANTHROPIC_API_KEY": "k"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 2, stdout.decode()
    message = stderr.decode()
    assert "was not captured" in message and all(span in message for span in recorded.bare_spans)


async def test_replay_grpc_answers_the_api_document(recorded: Recorded, provider: ReplayServer) -> None:
    service = recorded.service.query_service  # type: ignore[union-attr]
    assert service is not None and service.backend is not None and service.grpc_port
    service.backend.replay_otlp_endpoint = recorded.otlp
    async with grpc.aio.insecure_channel(f"127.0.0.1:{service.grpc_port}") as channel:
        stub = pb_grpc.QueryServiceStub(channel)
        answer = await stub.ReplayTrace(
            pb.ReplayTraceRequest(
                trace_id=recorded.trace_id,
                span_id=recorded.openai_span,
                model="gpt-4o-mini",
                base_urls={"openai": provider.url + "/v1"},
                api_keys={"openai": "replay-key"},
            )
        )
        assert answer.original_trace_id == recorded.trace_id and answer.exported
        (call,) = answer.calls
        assert call.original.model == "gpt-4o" and call.replay.model == "gpt-4o-mini"
        assert (call.replay.input_tokens, call.replay.output_tokens) == (24, 8)
        assert call.replay.cost_usd == pytest.approx((24 * 0.15 + 8 * 0.60) / 1e6, rel=1e-9)
        assert call.output_changed and call.HasField("replay_span_id")
        (sent,) = provider.requests
        assert sent.body["model"] == "gpt-4o-mini"

        with pytest.raises(grpc.aio.AioRpcError) as bare:
            await stub.ReplayTrace(pb.ReplayTraceRequest(trace_id=recorded.bare_trace_id))
        assert bare.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert recorded.bare_spans[0] in (bare.value.details() or "")
        with pytest.raises(grpc.aio.AioRpcError) as unknown:
            await stub.ReplayTrace(pb.ReplayTraceRequest(trace_id="ab" * 16))
        assert unknown.value.code() == grpc.StatusCode.NOT_FOUND


async def test_replay_api_sends_the_configured_otlp_headers(
    recorded: Recorded, provider: ReplayServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A collector that requires ingest keys: the operator gives the query service one for replays.
    monkeypatch.setenv("LLM_OBSERVER_REPLAY_OTLP_HEADERS", "authorization=Bearer%20ingest-key,x-empty")
    with ReplayServer([Route("POST", "/v1/traces", body=b"")]) as collector:
        async with _api(recorded, collector.url) as client:
            response = await client.post(
                f"/api/v1/traces/{recorded.trace_id}/replay",
                json={
                    "span_id": recorded.openai_span,
                    "base_urls": {"openai": provider.url + "/v1"},
                    "api_keys": {"openai": "replay-key"},
                },
            )
        assert response.status_code == 200, response.text
        assert response.json()["exported"] is True
        (export,) = collector.requests
        assert export.path == "/v1/traces"
        assert export.headers["authorization"] == "Bearer ingest-key"
