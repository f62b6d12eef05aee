"""Rebuilding requests from spans, and one replay run without a store.

A call is made by the real SDK (instrumented by llm-observer with content capture) against the recorded
fake provider; the request rebuilt from its span's attributes is sent by the same SDK to a second fake
provider, and the two request bodies must be equal — conversation with tool calls and results, system
instructions, tool definitions and parameters. The streamed replay runs ``replay_trace`` against a fake
collector (a replay server answering ``/v1/traces``) and reads the OTLP request it received.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from llm_observer.instrumentation.anthropic import AnthropicInstrumentor
from llm_observer.instrumentation.openai import OpenAIInstrumentor
from llm_observer.instrumentation.testing import ReplayServer, Route, TelemetryCapture, load_recording
from llm_observer.query.insights.replay import (
    ContentNotCaptured,
    NothingToReplay,
    RecordedCall,
    RecordedTrace,
    ReplayOptions,
    RequestNotRebuilt,
    UnsupportedProvider,
    build_request,
    recorded_call_from_attributes,
    replay_trace,
    select_calls,
)

RECORDINGS = Path(__file__).parents[2] / "instrumentation" / "recordings"
TOOL = {
    "name": "get_weather",
    "description": "Current weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


@pytest.fixture
def capture() -> Iterator[TelemetryCapture]:
    telemetry = TelemetryCapture()
    kwargs = {**telemetry.kwargs, "capture_content": True}
    OpenAIInstrumentor().instrument(**kwargs)
    AnthropicInstrumentor().instrument(**kwargs)
    try:
        yield telemetry
    finally:
        OpenAIInstrumentor().uninstrument()
        AnthropicInstrumentor().uninstrument()


def _recorded(
    capture: TelemetryCapture, recording: str, call: Callable[[ReplayServer], Any]
) -> tuple[RecordedCall, dict[str, Any]]:
    """Make ``call`` against the recording; the span's :class:`RecordedCall` and the body sent."""
    with ReplayServer(load_recording(RECORDINGS / recording)) as server:
        call(server)
        body = server.requests[0].body
    (span,) = [s for s in capture.spans() if "gen_ai.operation.name" in (s.attributes or {})]
    assert span.context is not None
    recorded = recorded_call_from_attributes(
        dict(span.attributes or {}),
        span_id=format(span.context.span_id, "016x"),
        name=span.name,
        start_ns=span.start_time or 0,
        duration_ns=(span.end_time or 0) - (span.start_time or 0),
        error=None,
    )
    return recorded, body


def _resent(recording: str, send: Callable[[ReplayServer], Any]) -> dict[str, Any]:
    """The body the SDK sends for ``send`` (not instrumented)."""
    with ReplayServer(load_recording(RECORDINGS / recording)) as server:
        send(server)
        body: dict[str, Any] = server.requests[0].body
    return body


def test_replay_requests_openai_chat_conversation_is_rebuilt_exactly(capture: TelemetryCapture) -> None:
    messages = [
        {"role": "system", "content": "You are a weather bot."},
        {"role": "user", "content": "Weather in Paris?", "name": "alice"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": '{"temp_c":21}'},
    ]
    params: dict[str, Any] = {
        "temperature": 0.3,
        "top_p": 0.9,
        "stop": ["END"],
        "seed": 7,
        "presence_penalty": 0.1,
        "frequency_penalty": 0.2,
        "max_tokens": 64,
        "n": 2,
        "response_format": {"type": "json_object"},
    }

    def original(server: ReplayServer) -> None:
        client = openai.OpenAI(base_url=server.url + "/v1", api_key="k", max_retries=0)
        client.chat.completions.create(
            model="gpt-4o",
            messages=messages,  # type: ignore[arg-type]
            tools=[{"type": "function", "function": TOOL}],  # type: ignore[list-item]
            **params,
        )

    call, sent = _recorded(capture, "openai/chat.json", original)
    request = build_request(call)
    assert (request.provider, request.api) == ("openai", "chat")
    OpenAIInstrumentor().uninstrument()
    resent = _resent(
        "openai/chat.json",
        lambda server: openai.OpenAI(
            base_url=server.url + "/v1", api_key="k", max_retries=0
        ).chat.completions.create(**request.kwargs),
    )
    assert resent == sent


def test_replay_requests_openai_responses_is_rebuilt_exactly(capture: TelemetryCapture) -> None:
    inputs = [
        {"role": "user", "content": "Weather in Paris?"},
        {"type": "function_call", "call_id": "c1", "name": "get_weather", "arguments": '{"city":"Paris"}'},
        {"type": "function_call_output", "call_id": "c1", "output": '{"temp_c":21}'},
    ]

    def original(server: ReplayServer) -> None:
        client = openai.OpenAI(base_url=server.url + "/v1", api_key="k", max_retries=0)
        client.responses.create(
            model="gpt-4o",
            input=inputs,  # type: ignore[arg-type]
            instructions="Be brief.",
            tools=[{"type": "function", **TOOL}],  # type: ignore[list-item]
            max_output_tokens=100,
            temperature=0.4,
        )

    call, sent = _recorded(capture, "openai/responses.json", original)
    request = build_request(call)
    assert request.api == "responses"
    OpenAIInstrumentor().uninstrument()
    resent = _resent(
        "openai/responses.json",
        lambda server: openai.OpenAI(
            base_url=server.url + "/v1", api_key="k", max_retries=0
        ).responses.create(**request.kwargs),
    )
    assert resent == sent


def test_replay_requests_anthropic_tool_use_is_rebuilt_exactly(capture: TelemetryCapture) -> None:
    messages = [
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
            ],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "21 C"}]},
    ]
    tools = [{"name": TOOL["name"], "description": TOOL["description"], "input_schema": TOOL["parameters"]}]

    def original(server: ReplayServer) -> None:
        client = anthropic.Anthropic(base_url=server.url, api_key="k", max_retries=0)
        client.messages.create(
            model="claude-haiku-4-5",
            system="You are a weather bot.",
            messages=messages,  # type: ignore[arg-type]
            tools=tools,  # type: ignore[arg-type]
            max_tokens=256,
            stop_sequences=["###"],
        )

    call, sent = _recorded(capture, "anthropic/messages_tool_use.json", original)
    request = build_request(call, model="claude-haiku-4-5")
    assert (request.provider, request.api) == ("anthropic", "messages")
    AnthropicInstrumentor().uninstrument()
    resent = _resent(
        "anthropic/messages_tool_use.json",
        lambda server: anthropic.Anthropic(base_url=server.url, api_key="k", max_retries=0).messages.create(
            **request.kwargs
        ),
    )
    assert resent == sent


def test_replay_requests_streamed_call_replays_streamed_and_links(capture: TelemetryCapture) -> None:
    def original(server: ReplayServer) -> None:
        client = openai.OpenAI(base_url=server.url + "/v1", api_key="k", max_retries=0)
        for _ in client.chat.completions.create(
            model="gpt-4o",
            messages=[{"role": "user", "content": "Capital of France?"}],
            stream=True,
        ):
            pass

    call, sent = _recorded(capture, "openai/chat_stream.json", original)
    assert call.stream and call.output_messages
    # The SDK stays instrumented by the application's own instrumentor during the replay.
    trace = RecordedTrace(
        trace_id="0af7651916cd43dd8448eb211c80319c",
        root_span_id="b7ad6b7169203331",
        root_name="ask",
        organization_id="acme",
        project_id="shop",
        team_id=None,
        calls=(call,),
    )
    routes = load_recording(RECORDINGS / "openai" / "chat_stream.json")
    collector_route = Route(
        "POST", "/v1/traces", body=b"", headers={"Content-Type": "application/x-protobuf"}
    )
    with ReplayServer(routes) as provider, ReplayServer([collector_route]) as collector:
        result = replay_trace(
            trace,
            ReplayOptions(
                model="gpt-4o-mini",
                base_urls={"openai": provider.url + "/v1"},
                api_keys={"openai": "k"},
                otlp_endpoint=collector.url,
            ),
        )
        (replayed,) = provider.requests
        exports = [ExportTraceServiceRequest.FromString(request.raw) for request in collector.requests]
    # The replay's span went to the replay's trace only: the application's provider saw nothing new.
    assert len(capture.spans()) == 1
    assert replayed.body == {**sent, "model": "gpt-4o-mini"}
    assert replayed.body["stream"] is True
    (diff,) = result.calls
    assert diff.replay is not None and diff.error is None
    assert diff.replay.output == "Paris is the capital of France."
    assert (diff.replay.input_tokens, diff.replay.output_tokens) == (24, 7)
    assert diff.output_changed is False
    assert result.exported
    spans = [
        (resource.resource, span)
        for export in exports
        for resource in export.resource_spans
        for scope in resource.scope_spans
        for span in scope.spans
    ]
    by_name = {span.name: (res, span) for res, span in spans}
    assert len(spans) == 2 and set(by_name) == {"replay ask", "chat gpt-4o-mini"}
    resource, llm = by_name["chat gpt-4o-mini"]
    _, root = by_name["replay ask"]
    assert llm.parent_span_id == root.span_id and llm.trace_id.hex() == result.replay_trace_id
    assert [(link.trace_id.hex(), link.span_id.hex()) for link in llm.links] == [
        (trace.trace_id, call.span_id)
    ]
    assert [(link.trace_id.hex(), link.span_id.hex()) for link in root.links] == [
        (trace.trace_id, trace.root_span_id)
    ]
    resource_attributes = {kv.key: kv.value.string_value for kv in resource.attributes}
    assert resource_attributes["llm_observer.organization.id"] == "acme"
    assert resource_attributes["llm_observer.project.id"] == "shop"
    assert resource_attributes["service.name"] == "llm-observer-replay"


def _call(span_id: str, provider: str = "openai", content: bool = True) -> RecordedCall:
    return RecordedCall(
        span_id=span_id,
        name=f"chat m-{span_id}",
        operation="chat",
        provider=provider,
        request_model="m",
        response_model=None,
        start_ns=1,
        duration_ns=1,
        input_messages=({"role": "user", "parts": [{"type": "text", "content": "hi"}]},) if content else None,
    )


def _trace(*calls: RecordedCall) -> RecordedTrace:
    return RecordedTrace("ab" * 16, "cd" * 8, "root", "org", "proj", None, calls)


def test_replay_requests_refuses_before_sending() -> None:
    with pytest.raises(UnsupportedProvider, match="does not support provider cohere yet"):
        select_calls(_trace(_call("01" * 8), _call("02" * 8, provider="cohere")))
    with pytest.raises(ContentNotCaptured) as missing:
        select_calls(_trace(_call("01" * 8), _call("02" * 8, content=False), _call("03" * 8, content=False)))
    assert missing.value.spans == (
        ("02" * 8, "chat m-0202020202020202"),
        ("03" * 8, "chat m-0303030303030303"),
    )
    with pytest.raises(NothingToReplay, match="no LLM call"):
        select_calls(_trace())
    # One span asked for: only that one needs content.
    assert select_calls(_trace(_call("01" * 8), _call("02" * 8, content=False)), "01" * 8) == (
        _call("01" * 8),
    )


def test_replay_requests_part_not_recorded_in_full() -> None:
    call = RecordedCall(
        span_id="01" * 8,
        name="chat m",
        operation="chat",
        provider="openai",
        request_model="m",
        response_model=None,
        start_ns=1,
        duration_ns=1,
        input_messages=(
            {
                "role": "user",
                "parts": [
                    {"type": "text", "content": "what is this?"},
                    {"type": "blob", "modality": "image", "content": "<data uri omitted>"},
                ],
            },
        ),
    )
    with pytest.raises(RequestNotRebuilt, match="blob part \\(image\\) was not recorded in full"):
        build_request(call)


def test_replay_requests_command_arguments() -> None:
    import argparse

    from llm_observer.query.insights.replay_cli import _pairs, add_replay_commands, run_replay

    parser = argparse.ArgumentParser(prog="llm-observer")
    add_replay_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(
        [
            "replay",
            "0af7651916cd43dd8448eb211c80319c",
            "--span",
            "b7ad6b7169203331",
            "--model",
            "gpt-4o-mini",
            "--base-url",
            "openai=http://127.0.0.1:9/v1",
            "--base-url",
            "http://127.0.0.1:8/",
            "--otlp-endpoint",
            "http://collector:4318",
        ]
    )
    assert args.func is run_replay
    assert (args.trace_id, args.span_id, args.model) == (
        "0af7651916cd43dd8448eb211c80319c",
        "b7ad6b7169203331",
        "gpt-4o-mini",
    )
    assert _pairs(args.base_url) == {"openai": "http://127.0.0.1:9/v1", "*": "http://127.0.0.1:8/"}
    assert args.otlp_endpoint == "http://collector:4318"


def test_replay_requests_provider_error_is_reported_per_call() -> None:
    trace = _trace(_call("01" * 8), _call("02" * 8))
    # The first call meets a server error (answered once), the second the recorded answer.
    routes = [
        Route("POST", "/v1/chat/completions", status=500, json={"error": {"message": "boom"}}, repeat=False),
        *load_recording(RECORDINGS / "openai" / "chat.json"),
    ]
    collector_route = Route("POST", "/v1/traces", body=b"")
    with ReplayServer(routes) as provider, ReplayServer([collector_route]) as collector:
        result = replay_trace(
            trace,
            ReplayOptions(
                base_urls={"*": provider.url + "/v1"}, api_keys={"openai": "k"}, otlp_endpoint=collector.url
            ),
        )
    failed, done = result.calls
    assert failed.replay is None and failed.error is not None and "InternalServerError" in failed.error
    assert failed.replay_span_id is not None  # the failed call's span is in the new trace, with its error
    assert (
        done.error is None
        and done.replay is not None
        and done.replay.output == "Paris is the capital of France."
    )
    assert result.totals.replay_output_tokens == 8 and result.exported
