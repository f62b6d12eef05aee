"""The real openai SDK against the replay server, instrumented by OpenAIInstrumentor."""

from __future__ import annotations

import asyncio
import gc
import json
from collections.abc import Callable, Iterator

import openai
import pytest
from opentelemetry.trace import SpanKind, StatusCode

from llm_observer.instrumentation.openai import OpenAIInstrumentor, provider_for_url
from llm_observer.instrumentation.testing import ReplayServer, Route, TelemetryCapture

Recording = Callable[[str], list[Route]]

MESSAGES = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "What is the capital of France?"},
]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather for a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]


@pytest.fixture
def instrumented(telemetry: TelemetryCapture) -> Iterator[TelemetryCapture]:
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(**telemetry.kwargs)
    yield telemetry
    instrumentor.uninstrument()


def _client(replay: ReplayServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=replay.url + "/v1", api_key="sk-test", max_retries=0)


def _async_client(replay: ReplayServer) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=replay.url + "/v1", api_key="sk-test", max_retries=0)


def test_openai_chat_records_request_response_and_usage(
    instrumented: TelemetryCapture, replay: ReplayServer, recording: Recording
) -> None:
    replay.set_routes(recording("openai/chat.json"))
    result = _client(replay).chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, temperature=0.2, max_tokens=100, top_p=0.9, seed=7, stop="END"
    )
    assert result.choices[0].message.content == "Paris is the capital of France."
    span = instrumented.only_span()
    assert span.name == "chat gpt-4o-mini"
    assert span.kind is SpanKind.CLIENT
    assert span.status.status_code is StatusCode.UNSET
    assert dict(span.attributes) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o-mini",
        "server.address": "127.0.0.1",
        "server.port": replay.port,
        "gen_ai.request.temperature": 0.2,
        "gen_ai.request.top_p": 0.9,
        "gen_ai.request.seed": 7,
        "gen_ai.request.stop_sequences": ("END",),
        "gen_ai.request.max_tokens": 100,
        "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
        "gen_ai.response.id": "chatcmpl-CXq7a1b2c3d4e5f6g7h8i9j0",
        "gen_ai.response.finish_reasons": ("stop",),
        "gen_ai.usage.input_tokens": 24,
        "gen_ai.usage.output_tokens": 8,
        "gen_ai.usage.cache_read.input_tokens": 0,
        "gen_ai.usage.reasoning.output_tokens": 0,
        "openai.response.service_tier": "default",
        "openai.response.system_fingerprint": "fp_560af6e559",
        "openai.api.type": "chat_completions",
    }


def test_openai_chat_with_raw_response_records_the_parsed_response(
    instrumented: TelemetryCapture, replay: ReplayServer, recording: Recording
) -> None:
    # The way langchain-openai calls the SDK: the raw response, parsed by the caller afterwards.
    replay.set_routes(recording("openai/chat.json"))
    raw = _client(replay).chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES)
    assert raw.parse().choices[0].message.content == "Paris is the capital of France."
    attributes = dict(instrumented.only_span().attributes)
    assert attributes["gen_ai.response.model"] == "gpt-4o-mini-2024-07-18"
    assert attributes["gen_ai.response.id"] == "chatcmpl-CXq7a1b2c3d4e5f6g7h8i9j0"
    assert attributes["gen_ai.usage.input_tokens"] == 24 and attributes["gen_ai.usage.output_tokens"] == 8
    assert attributes["gen_ai.response.finish_reasons"] == ("stop",)


async def test_openai_async_chat_with_raw_response_records_the_parsed_response(
    instrumented: TelemetryCapture, replay: ReplayServer, recording: Recording
) -> None:
    replay.set_routes(recording("openai/chat.json"))
    raw = await _async_client(replay).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=MESSAGES
    )
    assert raw.parse().choices[0].message.content == "Paris is the capital of France."
    attributes = dict(instrumented.only_span().attributes)
    assert attributes["gen_ai.usage.input_tokens"] == 24 and attributes["gen_ai.usage.output_tokens"] == 8


def test_openai_chat_metrics_use_spec_buckets(
    instrumented: TelemetryCapture, replay: ReplayServer, recording: Recording
) -> None:
    replay.set_routes(recording("openai/chat.json"))
    _client(replay).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    usage = {
        p.attributes["gen_ai.token.type"]: p
        for p in instrumented.histogram_points("gen_ai.client.token.usage")
    }
    assert usage["input"].sum == 24 and usage["output"].sum == 8
    assert usage["input"].explicit_bounds[0] == 1 and usage["input"].explicit_bounds[-1] == 67108864
    assert usage["input"].attributes["gen_ai.response.model"] == "gpt-4o-mini-2024-07-18"
    (duration,) = instrumented.histogram_points("gen_ai.client.operation.duration")
    assert duration.count == 1
    assert tuple(duration.explicit_bounds) == (
        0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
    )  # fmt: skip


def test_openai_content_absent_unless_opted_in(
    instrumented: TelemetryCapture, replay: ReplayServer, recording: Recording
) -> None:
    replay.set_routes(recording("openai/chat_tool_call.json"))
    _client(replay).chat.completions.create(model="gpt-4o", messages=MESSAGES, tools=TOOLS)
    attributes = instrumented.only_span().attributes
    for key in ("gen_ai.input.messages", "gen_ai.output.messages", "gen_ai.tool.definitions"):
        assert key not in attributes
    assert "Paris" not in json.dumps(dict(attributes), default=str)
    assert instrumented.log_records() == []


def test_openai_tool_call_content_when_captured(
    capture_content: None, instrumented: TelemetryCapture, replay: ReplayServer, recording: Recording
) -> None:
    replay.set_routes(recording("openai/chat_tool_call.json"))
    messages = [
        *MESSAGES,
        {
            "role": "assistant",
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
    ]
    _client(replay).chat.completions.create(model="gpt-4o", messages=messages, tools=TOOLS)
    attributes = instrumented.only_span().attributes
    assert attributes["gen_ai.usage.input_tokens"] == 1180
    assert attributes["gen_ai.usage.cache_read.input_tokens"] == 1024
    assert attributes["gen_ai.response.finish_reasons"] == ("tool_calls",)
    assert json.loads(attributes["gen_ai.input.messages"]) == [
        {"role": "system", "parts": [{"type": "text", "content": "You are terse."}]},
        {"role": "user", "parts": [{"type": "text", "content": "What is the capital of France?"}]},
        {
            "role": "assistant",
            "parts": [
                {"type": "tool_call", "id": "call_1", "name": "get_weather", "arguments": {"city": "Rome"}}
            ],
        },
        {"role": "tool", "parts": [{"type": "tool_call_response", "id": "call_1", "response": "sunny"}]},
    ]
    assert json.loads(attributes["gen_ai.output.messages"]) == [
        {
            "role": "assistant",
            "parts": [
                {
                    "type": "tool_call",
                    "id": "call_Qm3xT9vB2nK8sLp4",
                    "name": "get_weather",
                    "arguments": {"city": "Paris", "unit": "celsius"},
                }
            ],
            "finish_reason": "tool_calls",
        }
    ]
    assert json.loads(attributes["gen_ai.tool.definitions"]) == [
        {
            "type": "function",
            "name": "get_weather",
            "description": "Current weather for a city",
            "parameters": TOOLS[0]["function"]["parameters"],
        }
    ]


def test_openai_content_as_event_only(
    monkeypatch: pytest.MonkeyPatch, telemetry: TelemetryCapture, replay: ReplayServer, recording: Recording
) -> None:
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "event_only")
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(**telemetry.kwargs)
    try:
        replay.set_routes(recording("openai/chat.json"))
        _client(replay).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    finally:
        instrumentor.uninstrument()
    span = telemetry.only_span()
    assert "gen_ai.input.messages" not in span.attributes
    (record,) = telemetry.log_records()
    assert record.event_name == "gen_ai.client.inference.operation.details"
    assert record.span_id == span.context.span_id
    assert (
        record.attributes["gen_ai.output.messages"][0]["parts"][0]["content"]
        == "Paris is the capital of France."
    )


def test_openai_stream_usage_from_final_chunk(
    capture_content: None, instrumented: TelemetryCapture, replay: ReplayServer, recording: Recording
) -> None:
    replay.set_routes(recording("openai/chat_stream.json"))
    stream = _client(replay).chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert text == "Paris is the capital of France."
    attributes = instrumented.only_span().attributes
    assert attributes["gen_ai.request.stream"] is True
    assert attributes["gen_ai.usage.input_tokens"] == 24
    assert attributes["gen_ai.usage.output_tokens"] == 7
    assert attributes["gen_ai.response.finish_reasons"] == ("stop",)
    assert attributes["gen_ai.response.id"] == "chatcmpl-CXq9z8y7x6w5v4u3t2s1r0q9"
    assert attributes["gen_ai.response.time_to_first_chunk"] > 0
    assert json.loads(attributes["gen_ai.output.messages"])[0]["parts"] == [
        {"type": "text", "content": "Paris is the capital of France."}
    ]
    (ttfc,) = instrumented.histogram_points("gen_ai.client.operation.time_to_first_chunk")
    assert ttfc.count == 1


def test_openai_stream_usage_opt_in_adds_include_usage(
    monkeypatch: pytest.MonkeyPatch, telemetry: TelemetryCapture, replay: ReplayServer, recording: Recording
) -> None:
    replay.set_routes(recording("openai/chat_stream.json"))
    instrumentor = OpenAIInstrumentor()
    monkeypatch.setenv("LLM_OBSERVER_OPENAI_STREAM_USAGE", "true")
    instrumentor.instrument(**telemetry.kwargs)
    try:
        for _ in _client(replay).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True):
            pass
    finally:
        instrumentor.uninstrument()
    assert replay.requests[0].body["stream_options"] == {"include_usage": True}
    assert telemetry.only_span().attributes["gen_ai.usage.output_tokens"] == 7


def test_openai_stream_without_opt_in_leaves_request_alone(
    instrumented: TelemetryCapture, replay: ReplayServer, recording: Recording
) -> None:
    replay.set_routes(recording("openai/chat_stream_no_usage.json"))
    for _ in _client(replay).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True):
        pass
    assert "stream_options" not in replay.requests[0].body
    attributes = instrumented.only_span().attributes
    assert "gen_ai.usage.input_tokens" not in attributes
    assert attributes["gen_ai.response.finish_reasons"] == ("stop",)


def test_openai_stream_tool_call_fragments_joined(
    capture_content: None, instrumented: TelemetryCapture, replay: ReplayServer, recording: Recording
) -> None:
    replay.set_routes(recording("openai/chat_stream_tool_call.json"))
    with _client(replay).chat.completions.create(
        model="gpt-4o", messages=MESSAGES, tools=TOOLS, stream=True
    ) as s:
        for _ in s:
            pass
    attributes = instrumented.only_span().attributes
    assert attributes["gen_ai.usage.input_tokens"] == 85
    assert json.loads(attributes["gen_ai.output.messages"]) == [
        {
            "role": "assistant",
            "parts": [
                {
                    "type": "tool_call",
                    "id": "call_Zr8pW2",
                    "name": "get_weather",
                    "arguments": {"city": "Paris"},
                }
            ],
            "finish_reason": "tool_calls",
        }
    ]


def test_openai_stream_break_ends_span_at_once(
    instrumented: TelemetryCapture, replay: ReplayServer, recording: Recording
) -> None:
    replay.set_routes(recording("openai/chat_stream.json"))
    stream = _client(replay).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    for _chunk in stream:
        break
    # The loop's generator is finalised on `break`: the span is already ended, with what arrived.
    span = instrumented.only_span()
    assert span.attributes["gen_ai.response.id"] == "chatcmpl-CXq9z8y7x6w5v4u3t2s1r0q9"
    assert "gen_ai.usage.output_tokens" not in span.attributes
    stream.close()
    assert len(instrumented.spans()) == 1


def test_openai_stream_close_and_next_end_span_once(
    instrumented: TelemetryCapture, replay: ReplayServer, recording: Recording
) -> None:
    replay.set_routes(recording("openai/chat_stream.json"))
    stream = _client(replay).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    next(stream)
    next(stream)
    assert instrumented.spans() == ()
    stream.close()
    stream.close()
    assert len(instrumented.spans()) == 1


def test_openai_stream_garbage_collected_ends_span(
    instrumented: TelemetryCapture, replay: ReplayServer, recording: Recording
) -> None:
    replay.set_routes(recording("openai/chat_stream.json"))
    stream = _client(replay).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    next(stream)
    del stream
    gc.collect()
    assert len(instrumented.spans()) == 1


def test_openai_stream_helper_goes_through_create(
    instrumented: TelemetryCapture, replay: ReplayServer, recording: Recording
) -> None:
    replay.set_routes(recording("openai/chat_stream.json"))
    with _client(replay).chat.completions.stream(model="gpt-4o-mini", messages=MESSAGES) as stream:
        final = stream.get_final_completion()
    assert final.choices[0].message.content == "Paris is the capital of France."
    span = instrumented.only_span()
    assert span.attributes["gen_ai.usage.output_tokens"] == 7


def test_openai_rate_limit_error_recorded(
    instrumented: TelemetryCapture, replay: ReplayServer, recording: Recording
) -> None:
    replay.set_routes(recording("openai/error_429.json"))
    with pytest.raises(openai.RateLimitError):
        _client(replay).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    span = instrumented.only_span()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "rate_limit_exceeded"
    (duration,) = instrumented.histogram_points("gen_ai.client.operation.duration")
    assert duration.attributes["error.type"] == "rate_limit_exceeded"
    assert instrumented.histogram_points("gen_ai.client.token.usage") == []


def test_openai_server_error_uses_exception_name(
    instrumented: TelemetryCapture, replay: ReplayServer, recording: Recording
) -> None:
    replay.set_routes(recording("openai/error_500.json"))
    with pytest.raises(openai.InternalServerError):
        _client(replay).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    span = instrumented.only_span()
    assert span.attributes["error.type"] == "InternalServerError"
    assert span.status.status_code is StatusCode.ERROR


def test_openai_connection_error_recorded(instrumented: TelemetryCapture) -> None:
    server = ReplayServer()
    server.start()
    url = server.url
    server.stop()
    client = openai.OpenAI(base_url=url + "/v1", api_key="sk-test", max_retries=0)
    with pytest.raises(openai.APIConnectionError):
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert instrumented.only_span().attributes["error.type"] == "APIConnectionError"


def test_openai_responses_api(
    capture_content: None, instrumented: TelemetryCapture, replay: ReplayServer, recording: Recording
) -> None:
    replay.set_routes(recording("openai/responses.json"))
    result = _client(replay).responses.create(
        model="gpt-4.1", input="What is the capital of France?", instructions="Answer in one sentence.",
        max_output_tokens=200, temperature=0.2,
    )  # fmt: skip
    assert result.output_text == "Paris is the capital of France."
    attributes = instrumented.only_span().attributes
    assert attributes["gen_ai.operation.name"] == "chat"
    assert attributes["gen_ai.request.max_tokens"] == 200
    assert attributes["gen_ai.response.model"] == "gpt-4.1-2025-04-14"
    assert attributes["gen_ai.usage.input_tokens"] == 31
    assert attributes["gen_ai.usage.output_tokens"] == 9
    assert attributes["gen_ai.response.finish_reasons"] == ("stop",)
    assert json.loads(attributes["gen_ai.system_instructions"]) == [
        {"type": "text", "content": "Answer in one sentence."}
    ]
    assert json.loads(attributes["gen_ai.output.messages"])[0]["parts"] == [
        {"type": "text", "content": "Paris is the capital of France."}
    ]


def test_openai_responses_stream(
    instrumented: TelemetryCapture, replay: ReplayServer, recording: Recording
) -> None:
    replay.set_routes(recording("openai/responses_stream.json"))
    events = list(_client(replay).responses.create(model="gpt-4.1", input="Capital of France?", stream=True))
    assert events[-1].type == "response.completed"
    attributes = instrumented.only_span().attributes
    assert attributes["gen_ai.request.stream"] is True
    assert attributes["gen_ai.usage.input_tokens"] == 31
    assert attributes["gen_ai.response.id"] == "resp_68a1b2c3d4e5f60718293a4b5c6d7e8f"


def test_openai_legacy_completions(
    instrumented: TelemetryCapture, replay: ReplayServer, recording: Recording
) -> None:
    replay.set_routes(recording("openai/completions.json"))
    _client(replay).completions.create(
        model="gpt-3.5-turbo-instruct", prompt="Say this is a test", max_tokens=7
    )
    span = instrumented.only_span()
    assert span.name == "text_completion gpt-3.5-turbo-instruct"
    assert span.attributes["gen_ai.response.finish_reasons"] == ("length",)
    assert span.attributes["gen_ai.usage.output_tokens"] == 7


def test_openai_embeddings(
    instrumented: TelemetryCapture, replay: ReplayServer, recording: Recording
) -> None:
    replay.set_routes(recording("openai/embeddings.json"))
    _client(replay).embeddings.create(
        model="text-embedding-3-small", input=["hello", "world"], encoding_format="float"
    )
    span = instrumented.only_span()
    assert span.name == "embeddings text-embedding-3-small"
    assert span.attributes["gen_ai.usage.input_tokens"] == 9
    assert "gen_ai.usage.output_tokens" not in span.attributes
    assert span.attributes["gen_ai.request.encoding_formats"] == ("float",)
    assert span.attributes["gen_ai.embeddings.dimension.count"] == 4


async def test_openai_async_chat_and_stream(
    instrumented: TelemetryCapture, replay: ReplayServer, recording: Recording
) -> None:
    replay.set_routes([*recording("openai/chat.json"), *recording("openai/chat_stream.json")])
    client = _async_client(replay)
    await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    replay.set_routes(recording("openai/chat_stream.json"))
    stream = await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    chunks = [chunk async for chunk in stream]
    assert len(chunks) == 10
    first, second = instrumented.spans()
    assert first.attributes["gen_ai.usage.input_tokens"] == 24
    assert second.attributes["gen_ai.usage.output_tokens"] == 7
    assert second.attributes["gen_ai.response.time_to_first_chunk"] > 0


async def test_openai_async_stream_break_ends_span(
    instrumented: TelemetryCapture, replay: ReplayServer, recording: Recording
) -> None:
    replay.set_routes(recording("openai/chat_stream.json"))
    stream = await _async_client(replay).chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True
    )
    async for _chunk in stream:
        break
    await stream.close()
    assert len(instrumented.spans()) == 1


async def test_openai_async_error(
    instrumented: TelemetryCapture, replay: ReplayServer, recording: Recording
) -> None:
    replay.set_routes(recording("openai/error_429.json"))
    with pytest.raises(openai.RateLimitError):
        await _async_client(replay).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert instrumented.only_span().attributes["error.type"] == "rate_limit_exceeded"


def test_openai_azure_client_provider(
    instrumented: TelemetryCapture, replay: ReplayServer, recording: Recording
) -> None:
    replay.set_routes([Route("POST", "/openai/deployments/*", json=recording("openai/chat.json")[0].json)])
    client = openai.AzureOpenAI(
        azure_endpoint=replay.url, api_key="azure-key", api_version="2024-10-21", max_retries=0
    )
    client.chat.completions.create(model="my-gpt4o-deployment", messages=MESSAGES)
    assert replay.requests[0].path == "/openai/deployments/my-gpt4o-deployment/chat/completions"
    span = instrumented.only_span()
    assert span.attributes["gen_ai.provider.name"] == "azure.ai.openai"
    assert span.name == "chat my-gpt4o-deployment"


@pytest.mark.parametrize(
    ("url", "provider"),
    [
        ("https://api.openai.com/v1", "openai"),
        ("https://my-resource.openai.azure.com/openai", "azure.ai.openai"),
        ("https://my-hub.services.ai.azure.com/models", "azure.ai.inference"),
        ("https://api.groq.com/openai/v1", "groq"),
        ("https://api.deepseek.com", "deepseek"),
        ("http://localhost:11434/v1", "ollama"),
        ("http://vllm.internal:8000/v1", "vllm"),
        ("http://localai:8080/v1", "localai"),
        ("https://generativelanguage.googleapis.com/v1beta/openai/", "gcp.gemini"),
        ("http://10.1.2.3:9000/v1", "openai"),
    ],
)
def test_openai_provider_told_apart_by_base_url(url: str, provider: str) -> None:
    assert provider_for_url(url) == provider


def test_openai_provider_overrides_by_host_port() -> None:
    assert provider_for_url("http://10.1.2.3:9000/v1", overrides={"10.1.2.3:9000": "vllm"}) == "vllm"


def test_openai_compatible_server_on_ollama_port(
    instrumented: TelemetryCapture, recording: Recording
) -> None:
    try:
        server = ReplayServer(recording("openai/chat.json"), port=11434)
        server.start()
    except OSError:
        pytest.skip("port 11434 is taken on this machine")
    with server:
        client = openai.OpenAI(base_url="http://127.0.0.1:11434/v1", api_key="ollama", max_retries=0)
        client.chat.completions.create(model="llama3.2", messages=MESSAGES)
    assert instrumented.only_span().attributes["gen_ai.provider.name"] == "ollama"


def test_openai_uninstrument_restores_originals(telemetry: TelemetryCapture, replay: ReplayServer) -> None:
    from openai.resources.chat.completions import AsyncCompletions, Completions

    original, original_async = Completions.create, AsyncCompletions.create
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(**telemetry.kwargs)
    assert Completions.create is not original
    instrumentor.uninstrument()
    assert Completions.create is original
    assert AsyncCompletions.create is original_async
    replay.set_routes([Route("POST", "/v1/chat/completions", json={"id": "x", "object": "chat.completion",
                      "created": 0, "model": "m", "choices": []})])  # fmt: skip
    _client(replay).chat.completions.create(model="m", messages=MESSAGES)
    assert telemetry.spans() == ()


def test_openai_instrumentation_never_raises_into_user_code(
    instrumented: TelemetryCapture, replay: ReplayServer
) -> None:
    # A response with fields of unexpected types: the user gets the SDK's result, the span still ends.
    replay.set_routes([Route("POST", "/v1/chat/completions", json={"id": 5, "object": "chat.completion",
                      "created": 0, "model": None, "choices": [{"index": 0, "finish_reason": None,
                      "message": {"role": "assistant", "content": None}}], "usage": {"prompt_tokens": "x"}})])  # fmt: skip
    result = _client(replay).chat.completions.create(model="m", messages=MESSAGES)
    assert result.id == 5
    assert instrumented.only_span().name == "chat m"


def test_openai_spans_nest_under_caller_across_asyncio_tasks(
    instrumented: TelemetryCapture, replay: ReplayServer, recording: Recording
) -> None:
    replay.set_routes(recording("openai/chat.json"))
    tracer = instrumented.tracer_provider.get_tracer("test")
    client = _async_client(replay)

    async def agent(name: str) -> None:
        with tracer.start_as_current_span(f"invoke_agent {name}"):
            await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)

    async def main() -> None:
        await asyncio.gather(agent("a"), agent("b"))

    asyncio.run(main())
    spans = {span.name: span for span in instrumented.spans() if span.name.startswith("invoke_agent")}
    llm = [span for span in instrumented.spans() if span.name == "chat gpt-4o-mini"]
    assert len(llm) == 2
    assert {span.parent.span_id for span in llm} == {spans["invoke_agent a"].context.span_id,
                                                     spans["invoke_agent b"].context.span_id}  # fmt: skip


async def test_openai_async_stream_break_without_close_ends_span(
    instrumented: TelemetryCapture, replay: ReplayServer, recording: Recording
) -> None:
    replay.set_routes(recording("openai/chat_stream.json"))
    stream = await _async_client(replay).chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True
    )
    async for _chunk in stream:
        break
    del stream, _chunk
    # The abandoned async generator is finalised by the event loop (or the wrapper by the collector).
    deadline = asyncio.get_running_loop().time() + 5
    while not instrumented.spans() and asyncio.get_running_loop().time() < deadline:
        gc.collect()
        await asyncio.sleep(0.01)
    assert len(instrumented.spans()) == 1
