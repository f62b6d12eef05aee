"""The real anthropic SDK against the replay server, instrumented by AnthropicInstrumentor."""

from __future__ import annotations

import gc
import json
import os
from collections.abc import Callable, Iterator

import anthropic
import pytest
from opentelemetry.trace import SpanKind, StatusCode

from llm_observer.instrumentation.anthropic import AnthropicInstrumentor
from llm_observer.instrumentation.testing import ReplayServer, Route, TelemetryCapture

Recording = Callable[[str], list[Route]]

MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]
TOOLS = [
    {
        "name": "get_weather",
        "description": "Current weather for a city",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    }
]
MODEL = "claude-sonnet-4-6"


@pytest.fixture
def instrumented(telemetry: TelemetryCapture, monkeypatch: pytest.MonkeyPatch) -> Iterator[TelemetryCapture]:
    monkeypatch.delenv("ANTHROPIC_OPEN_TELEMETRY", raising=False)
    instrumentor = AnthropicInstrumentor()
    instrumentor.instrument(**telemetry.kwargs)
    yield telemetry
    instrumentor.uninstrument()


def _client(replay: ReplayServer) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=replay.url, api_key="sk-ant-test", max_retries=0)


def _async_client(replay: ReplayServer) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=replay.url, api_key="sk-ant-test", max_retries=0)


def test_anthropic_messages_prompt_caching_usage(
    instrumented: TelemetryCapture, replay: ReplayServer, recording: Recording
) -> None:
    replay.set_routes(recording("anthropic/messages.json"))
    result = _client(replay).messages.create(
        model=MODEL, max_tokens=256, messages=MESSAGES, stop_sequences=["\n\nHuman:"]
    )
    assert result.content[0].text == "Paris is the capital of France."
    span = instrumented.only_span()
    assert span.name == "chat claude-sonnet-4-6"
    assert span.kind is SpanKind.CLIENT
    assert dict(span.attributes) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "anthropic",
        "gen_ai.request.model": MODEL,
        "server.address": "127.0.0.1",
        "server.port": replay.port,
        "gen_ai.request.max_tokens": 256,
        "gen_ai.request.stop_sequences": ("\n\nHuman:",),
        "gen_ai.response.model": "claude-sonnet-4-6-20260217",
        "gen_ai.response.id": "msg_01XFDUDYJgAACzvnptvVoYEL",
        "gen_ai.response.finish_reasons": ("end_turn",),
        "gen_ai.usage.input_tokens": 12 + 2048 + 1500,
        "gen_ai.usage.output_tokens": 9,
        "gen_ai.usage.cache_read.input_tokens": 2048,
        "gen_ai.usage.cache_creation.input_tokens": 1500,
    }
    usage = {
        p.attributes["gen_ai.token.type"]: p.sum
        for p in instrumented.histogram_points("gen_ai.client.token.usage")
    }
    assert usage == {"input": 3560, "output": 9}


def test_anthropic_content_absent_unless_opted_in(
    instrumented: TelemetryCapture, replay: ReplayServer, recording: Recording
) -> None:
    replay.set_routes(recording("anthropic/messages_tool_use.json"))
    _client(replay).messages.create(
        model=MODEL, max_tokens=256, messages=MESSAGES, tools=TOOLS, system="Be brief."
    )
    attributes = instrumented.only_span().attributes
    assert not {
        key
        for key in attributes
        if key.startswith(("gen_ai.input", "gen_ai.output", "gen_ai.system_", "gen_ai.tool."))
    }


def test_anthropic_tool_use_content_when_captured(
    capture_content: None, instrumented: TelemetryCapture, replay: ReplayServer, recording: Recording
) -> None:
    replay.set_routes(recording("anthropic/messages_tool_use.json"))
    messages = [
        *MESSAGES,
        {
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Rome"}}
            ],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"}]},
    ]
    _client(replay).messages.create(
        model=MODEL, max_tokens=256, messages=messages, tools=TOOLS, system="Be brief."
    )
    attributes = instrumented.only_span().attributes
    assert attributes["gen_ai.response.finish_reasons"] == ("tool_use",)
    assert json.loads(attributes["gen_ai.system_instructions"]) == [{"type": "text", "content": "Be brief."}]
    assert json.loads(attributes["gen_ai.input.messages"])[1:] == [
        {
            "role": "assistant",
            "parts": [
                {"type": "tool_call", "id": "toolu_1", "name": "get_weather", "arguments": {"city": "Rome"}}
            ],
        },
        {"role": "tool", "parts": [{"type": "tool_call_response", "id": "toolu_1", "response": "sunny"}]},
    ]
    assert json.loads(attributes["gen_ai.output.messages"]) == [
        {
            "role": "assistant",
            "parts": [
                {"type": "text", "content": "I'll check the weather in Paris."},
                {
                    "type": "tool_call",
                    "id": "toolu_01A09q90qw90lq917835lq9",
                    "name": "get_weather",
                    "arguments": {"city": "Paris", "unit": "celsius"},
                },
            ],
            "finish_reason": "tool_use",
        }
    ]
    assert json.loads(attributes["gen_ai.tool.definitions"]) == [
        {"type": "function", "name": "get_weather", "description": "Current weather for a city",
         "parameters": TOOLS[0]["input_schema"]}
    ]  # fmt: skip


def test_anthropic_stream_create_usage_and_ttfc(
    capture_content: None, instrumented: TelemetryCapture, replay: ReplayServer, recording: Recording
) -> None:
    replay.set_routes(recording("anthropic/messages_stream.json"))
    stream = _client(replay).messages.create(model=MODEL, max_tokens=256, messages=MESSAGES, stream=True)
    kinds = [event.type for event in stream]
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    attributes = instrumented.only_span().attributes
    assert attributes["gen_ai.request.stream"] is True
    assert attributes["gen_ai.usage.input_tokens"] == 12 + 2048
    assert attributes["gen_ai.usage.cache_read.input_tokens"] == 2048
    assert attributes["gen_ai.usage.output_tokens"] == 9
    assert attributes["gen_ai.response.finish_reasons"] == ("end_turn",)
    assert attributes["gen_ai.response.time_to_first_chunk"] > 0
    assert json.loads(attributes["gen_ai.output.messages"])[0]["parts"] == [
        {"type": "text", "content": "Paris is the capital of France."}
    ]


def test_anthropic_stream_helper(
    capture_content: None, instrumented: TelemetryCapture, replay: ReplayServer, recording: Recording
) -> None:
    replay.set_routes(recording("anthropic/messages_stream_tool_use.json"))
    with _client(replay).messages.stream(
        model=MODEL, max_tokens=256, messages=MESSAGES, tools=TOOLS
    ) as stream:
        final = stream.get_final_message()
    assert final.content[0].input == {"city": "Paris"}
    attributes = instrumented.only_span().attributes
    assert attributes["gen_ai.usage.input_tokens"] == 412
    assert attributes["gen_ai.usage.output_tokens"] == 40
    assert attributes["gen_ai.response.finish_reasons"] == ("tool_use",)
    assert json.loads(attributes["gen_ai.output.messages"])[0]["parts"] == [
        {
            "type": "tool_call",
            "id": "toolu_01StreamTool",
            "name": "get_weather",
            "arguments": {"city": "Paris"},
        }
    ]


def test_anthropic_stream_helper_text_stream_break(
    instrumented: TelemetryCapture, replay: ReplayServer, recording: Recording
) -> None:
    replay.set_routes(recording("anthropic/messages_stream.json"))
    with _client(replay).messages.stream(model=MODEL, max_tokens=256, messages=MESSAGES) as stream:
        for _text in stream.text_stream:
            break
        assert instrumented.spans() == ()
    span = instrumented.only_span()
    assert span.attributes["gen_ai.response.id"] == "msg_01StreamK9x8y7z6"


def test_anthropic_stream_cut_short_ends_span(
    instrumented: TelemetryCapture, replay: ReplayServer, recording: Recording
) -> None:
    replay.set_routes(recording("anthropic/messages_stream.json"))
    stream = _client(replay).messages.create(model=MODEL, max_tokens=256, messages=MESSAGES, stream=True)
    for _event in stream:
        break
    span = instrumented.only_span()
    assert span.attributes["gen_ai.response.model"] == "claude-sonnet-4-6-20260217"
    assert span.attributes["gen_ai.usage.input_tokens"] == 12 + 2048
    stream.close()
    assert len(instrumented.spans()) == 1


def test_anthropic_stream_garbage_collected_ends_span(
    instrumented: TelemetryCapture, replay: ReplayServer, recording: Recording
) -> None:
    replay.set_routes(recording("anthropic/messages_stream.json"))
    stream = _client(replay).messages.create(model=MODEL, max_tokens=256, messages=MESSAGES, stream=True)
    next(stream)
    assert instrumented.spans() == ()
    del stream
    gc.collect()
    assert len(instrumented.spans()) == 1


@pytest.mark.parametrize(
    ("name", "exc_type", "error_type"),
    [
        ("anthropic/error_429.json", anthropic.RateLimitError, "rate_limit_error"),
        ("anthropic/error_500.json", anthropic.InternalServerError, "api_error"),
        ("anthropic/error_529.json", anthropic.APIStatusError, "overloaded_error"),
    ],
)
def test_anthropic_errors_recorded(
    instrumented: TelemetryCapture,
    replay: ReplayServer,
    recording: Recording,
    name: str,
    exc_type: type[Exception],
    error_type: str,
) -> None:
    replay.set_routes(recording(name))
    with pytest.raises(exc_type):
        _client(replay).messages.create(model=MODEL, max_tokens=256, messages=MESSAGES)
    span = instrumented.only_span()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == error_type


async def test_anthropic_async_create_stream_and_helper(
    instrumented: TelemetryCapture, replay: ReplayServer, recording: Recording
) -> None:
    client = _async_client(replay)
    replay.set_routes(recording("anthropic/messages.json"))
    await client.messages.create(model=MODEL, max_tokens=256, messages=MESSAGES)
    replay.set_routes(recording("anthropic/messages_stream.json"))
    stream = await client.messages.create(model=MODEL, max_tokens=256, messages=MESSAGES, stream=True)
    assert len([event async for event in stream]) == 12  # the SDK drops the ping event
    async with client.messages.stream(model=MODEL, max_tokens=256, messages=MESSAGES) as helper:
        text = "".join([chunk async for chunk in helper.text_stream])
    assert text == "Paris is the capital of France."
    plain, streamed, helped = instrumented.spans()
    assert plain.attributes["gen_ai.usage.input_tokens"] == 3560
    assert streamed.attributes["gen_ai.usage.output_tokens"] == 9
    assert helped.attributes["gen_ai.usage.output_tokens"] == 9
    assert helped.attributes["gen_ai.request.stream"] is True


async def test_anthropic_async_error(
    instrumented: TelemetryCapture, replay: ReplayServer, recording: Recording
) -> None:
    replay.set_routes(recording("anthropic/error_429.json"))
    with pytest.raises(anthropic.RateLimitError):
        await _async_client(replay).messages.create(model=MODEL, max_tokens=256, messages=MESSAGES)
    assert instrumented.only_span().attributes["error.type"] == "rate_limit_error"


def test_anthropic_native_tracing_gives_way_one_span(
    telemetry: TelemetryCapture, monkeypatch: pytest.MonkeyPatch, replay: ReplayServer, recording: Recording
) -> None:
    monkeypatch.delenv("ANTHROPIC_OPEN_TELEMETRY", raising=False)
    replay.set_routes(recording("anthropic/messages.json"))
    instrumentor = AnthropicInstrumentor()
    instrumentor.instrument(**telemetry.kwargs)
    try:
        assert os.environ.get("ANTHROPIC_OPEN_TELEMETRY") == "false"
        _client(replay).messages.create(model=MODEL, max_tokens=256, messages=MESSAGES)
        assert len(telemetry.spans()) == 1
        native = anthropic.Anthropic(
            base_url=replay.url,
            api_key="k",
            max_retries=0,
            open_telemetry={"tracer_provider": telemetry.tracer_provider},  # type: ignore[typeddict-unknown-key]
        )
        telemetry.clear()
        native.messages.create(model=MODEL, max_tokens=256, messages=MESSAGES)
        # The SDK's own span is the only LLM span: ours stands aside.
        (span,) = telemetry.spans()
        assert span.instrumentation_scope.name != "llm_observer.instrumentation.anthropic"
    finally:
        instrumentor.uninstrument()
    assert "ANTHROPIC_OPEN_TELEMETRY" not in os.environ


def test_anthropic_uninstrument_restores_originals(telemetry: TelemetryCapture) -> None:
    from anthropic.resources.messages import AsyncMessages, Messages

    originals = (Messages.create, Messages.stream, AsyncMessages.create, AsyncMessages.stream)
    instrumentor = AnthropicInstrumentor()
    instrumentor.instrument(**telemetry.kwargs)
    assert Messages.create is not originals[0]
    instrumentor.uninstrument()
    assert (Messages.create, Messages.stream, AsyncMessages.create, AsyncMessages.stream) == originals
