"""HuggingFaceInstrumentor: the real ``huggingface_hub`` inference clients talking HTTP to a replay server."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from huggingface_hub import AsyncInferenceClient, InferenceClient
from huggingface_hub.utils import HfHubHTTPError  # importable here in every supported version
from opentelemetry.trace import SpanKind, StatusCode

from llm_observer.instrumentation.huggingface import HuggingFaceInstrumentor
from llm_observer.instrumentation.testing import ReplayServer, Route, TelemetryCapture

MODEL = "meta-llama/Llama-3.1-8B-Instruct"
MESSAGES = [{"role": "user", "content": "What is deep learning?"}]
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_current_weather",
        "description": "Get the current weather",
        "parameters": {"type": "object", "properties": {"location": {"type": "string"}}},
    },
}


@pytest.fixture
def instrument(
    instrument_with: Callable[[type[HuggingFaceInstrumentor]], Callable[[], HuggingFaceInstrumentor]],
) -> Callable[[], HuggingFaceInstrumentor]:
    return instrument_with(HuggingFaceInstrumentor)


def test_huggingface_chat_completion_records_attributes(
    telemetry: TelemetryCapture, replay: ReplayServer, recording: Callable[[str], list[Route]], instrument
) -> None:
    instrument()
    replay.set_routes(recording("huggingface/chat_completion.json"))

    response = InferenceClient(base_url=replay.url, api_key="hf_test").chat_completion(
        MESSAGES, model=MODEL, max_tokens=100, temperature=0.5, top_p=0.9, seed=3, stop=["###"]
    )

    assert response.choices[0].message.content
    span = telemetry.only_span()
    assert span.name == f"chat {MODEL}"
    assert span.kind is SpanKind.CLIENT
    assert dict(span.attributes or {}) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "hugging_face",
        "gen_ai.request.model": MODEL,
        "server.address": "127.0.0.1",
        "server.port": replay.port,
        "gen_ai.request.temperature": 0.5,
        "gen_ai.request.top_p": 0.9,
        "gen_ai.request.max_tokens": 100,
        "gen_ai.request.seed": 3,
        "gen_ai.request.stop_sequences": ("###",),
        "gen_ai.response.id": "chatcmpl-9d0f7e5c2b1a4c3d",
        "gen_ai.response.model": MODEL,
        "gen_ai.response.finish_reasons": ("stop",),
        "gen_ai.usage.input_tokens": 46,
        "gen_ai.usage.output_tokens": 17,
    }
    assert replay.requests[0].path == "/v1/chat/completions"


def test_huggingface_chat_tool_call_content_only_when_opted_in(
    telemetry: TelemetryCapture,
    replay: ReplayServer,
    recording: Callable[[str], list[Route]],
    instrument,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    replay.set_routes(recording("huggingface/chat_completion_tool_call.json"))
    instrumentor = instrument()
    client = InferenceClient(base_url=replay.url, api_key="hf_test")
    client.chat.completions.create(messages=MESSAGES, model=MODEL, tools=[WEATHER_TOOL])
    without = dict(telemetry.only_span().attributes or {})
    instrumentor.uninstrument()
    telemetry.clear()
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "span_only")
    instrumentor.instrument(**telemetry.kwargs)
    client.chat_completion(MESSAGES, model=MODEL, tools=[WEATHER_TOOL])
    with_content = dict(telemetry.only_span().attributes or {})

    assert not [key for key in without if key.startswith(("gen_ai.input", "gen_ai.output", "gen_ai.tool"))]
    assert without["gen_ai.response.finish_reasons"] == ("tool_calls",)
    assert json.loads(str(with_content["gen_ai.output.messages"])) == [
        {
            "role": "assistant",
            "parts": [
                {
                    "type": "tool_call",
                    "id": "call_0",
                    "name": "get_current_weather",
                    "arguments": {"location": "San Francisco, CA", "format": "fahrenheit"},
                }
            ],
            "finish_reason": "tool_call",
        }
    ]
    assert json.loads(str(with_content["gen_ai.input.messages"])) == [
        {"role": "user", "parts": [{"type": "text", "content": "What is deep learning?"}]}
    ]
    assert json.loads(str(with_content["gen_ai.tool.definitions"]))[0]["name"] == "get_current_weather"


def test_huggingface_chat_stream_usage_from_final_chunk(
    capture_content: None,
    telemetry: TelemetryCapture,
    replay: ReplayServer,
    recording: Callable[[str], list[Route]],
    instrument,
) -> None:
    instrument()
    replay.set_routes(recording("huggingface/chat_completion_stream.json"))

    client = InferenceClient(base_url=replay.url, api_key="hf_test")  # held: the client closes on collection
    chunks = list(
        client.chat_completion(MESSAGES, model=MODEL, stream=True, stream_options={"include_usage": True})
    )

    assert chunks[-1].usage is not None
    attributes = dict(telemetry.only_span().attributes or {})
    assert attributes["gen_ai.request.stream"] is True
    assert attributes["gen_ai.usage.input_tokens"] == 41
    assert attributes["gen_ai.usage.output_tokens"] == 7
    assert attributes["gen_ai.response.finish_reasons"] == ("stop",)
    assert attributes["gen_ai.response.model"] == MODEL
    assert "gen_ai.response.id" not in attributes  # TGI streams an empty id
    assert float(attributes["gen_ai.response.time_to_first_chunk"]) > 0  # type: ignore[arg-type]
    assert json.loads(str(attributes["gen_ai.output.messages"])) == [
        {
            "role": "assistant",
            "parts": [{"type": "text", "content": "Deep learning uses neural networks."}],
            "finish_reason": "stop",
        }
    ]


def test_huggingface_chat_stream_cut_short_still_ends_span(
    telemetry: TelemetryCapture, replay: ReplayServer, recording: Callable[[str], list[Route]], instrument
) -> None:
    instrument()
    replay.set_routes(recording("huggingface/chat_completion_stream.json"))

    client = InferenceClient(base_url=replay.url, api_key="hf_test")
    for _chunk in client.chat_completion(MESSAGES, model=MODEL, stream=True):
        break

    attributes = dict(telemetry.only_span().attributes or {})
    assert "gen_ai.usage.output_tokens" not in attributes
    assert "gen_ai.response.time_to_first_chunk" in attributes


def test_huggingface_text_generation_with_details(
    capture_content: None,
    telemetry: TelemetryCapture,
    replay: ReplayServer,
    recording: Callable[[str], list[Route]],
    instrument,
) -> None:
    instrument()
    client = InferenceClient(model=replay.url, api_key="hf_test")
    replay.set_routes(recording("huggingface/text_generation.json"))
    client.text_generation("Paris is", max_new_tokens=10, temperature=0.7, details=True)
    replay.set_routes(recording("huggingface/text_generation_stream.json"))
    tokens = [
        chunk.token.text
        for chunk in client.text_generation("Paris is", max_new_tokens=5, stream=True, details=True)
    ]

    plain, stream = telemetry.spans()
    assert plain.name == "text_completion"  # the client points at a URL and names no model
    assert dict(plain.attributes or {}) | {"gen_ai.input.messages": "", "gen_ai.output.messages": ""} == {
        "gen_ai.operation.name": "text_completion",
        "gen_ai.provider.name": "hugging_face",
        "server.address": "127.0.0.1",
        "server.port": replay.port,
        "gen_ai.request.max_tokens": 10,
        "gen_ai.request.temperature": 0.7,
        "gen_ai.response.finish_reasons": ("eos_token",),
        "gen_ai.usage.output_tokens": 10,
        "gen_ai.input.messages": "",
        "gen_ai.output.messages": "",
    }
    assert json.loads(str((plain.attributes or {})["gen_ai.output.messages"])) == [
        {
            "role": "assistant",
            "parts": [{"type": "text", "content": " a city of light, art and cafes."}],
            "finish_reason": "stop",
        }
    ]
    stream_attributes = dict(stream.attributes or {})
    assert stream_attributes["gen_ai.usage.input_tokens"] == 6
    assert stream_attributes["gen_ai.usage.output_tokens"] == 5
    assert stream_attributes["gen_ai.response.finish_reasons"] == ("length",)
    assert json.loads(str(stream_attributes["gen_ai.output.messages"]))[0]["parts"] == [
        {"type": "text", "content": "".join(tokens)}
    ]


async def test_huggingface_async_chat_and_stream(
    telemetry: TelemetryCapture, replay: ReplayServer, recording: Callable[[str], list[Route]], instrument
) -> None:
    instrument()
    client = AsyncInferenceClient(base_url=replay.url, api_key="hf_test")
    replay.set_routes(recording("huggingface/chat_completion.json"))
    await client.chat_completion(MESSAGES, model=MODEL)
    replay.set_routes(recording("huggingface/chat_completion_stream.json"))
    chunks = [chunk async for chunk in await client.chat_completion(MESSAGES, model=MODEL, stream=True)]
    await client.close()

    assert len(chunks) == 9
    chat, stream = telemetry.spans()
    assert (chat.attributes or {})["gen_ai.usage.output_tokens"] == 17
    assert (stream.attributes or {})["gen_ai.usage.output_tokens"] == 7
    assert (stream.attributes or {})["gen_ai.request.stream"] is True


def test_huggingface_http_error_type_is_status_code(
    telemetry: TelemetryCapture, replay: ReplayServer, recording: Callable[[str], list[Route]], instrument
) -> None:
    instrument()
    replay.set_routes(recording("huggingface/error_500.json"))

    with pytest.raises(HfHubHTTPError):
        InferenceClient(base_url=replay.url, api_key="hf_test").chat_completion(MESSAGES, model=MODEL)

    span = telemetry.only_span()
    assert span.status.status_code is StatusCode.ERROR
    assert (span.attributes or {})["error.type"] == "500"


def test_huggingface_uninstrument_restores_originals(
    telemetry: TelemetryCapture, replay: ReplayServer, recording: Callable[[str], list[Route]], instrument
) -> None:
    originals = (InferenceClient.chat_completion, AsyncInferenceClient.text_generation)
    instrument()
    assert hasattr(InferenceClient.chat_completion, "__wrapped__")
    HuggingFaceInstrumentor().uninstrument()

    assert (InferenceClient.chat_completion, AsyncInferenceClient.text_generation) == originals
    replay.set_routes(recording("huggingface/chat_completion.json"))
    InferenceClient(base_url=replay.url, api_key="hf_test").chat_completion(MESSAGES, model=MODEL)
    assert telemetry.spans() == ()
