"""MistralInstrumentor: the real ``mistralai`` SDK talking HTTP (JSON and SSE) to a local replay server."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import pytest
from opentelemetry.trace import SpanKind, StatusCode

from llm_observer.instrumentation.mistral import MistralInstrumentor
from llm_observer.instrumentation.testing import ReplayServer, Route, TelemetryCapture

try:
    from mistralai.client import Mistral
    from mistralai.client.chat import Chat
    from mistralai.client.embeddings import Embeddings
    from mistralai.client.errors import SDKError
except ImportError:  # mistralai 1.x keeps everything at the top level
    from mistralai import Mistral  # type: ignore[attr-defined,no-redef]
    from mistralai.chat import Chat  # type: ignore[no-redef]
    from mistralai.embeddings import Embeddings  # type: ignore[no-redef]
    from mistralai.models import SDKError  # type: ignore[no-redef]

MODEL = "mistral-large-latest"
MESSAGES = [{"role": "user", "content": "What is the best French cheese?"}]
PAYMENT_TOOL = {
    "type": "function",
    "function": {
        "name": "retrieve_payment_status",
        "description": "Get payment status of a transaction",
        "parameters": {"type": "object", "properties": {"transaction_id": {"type": "string"}}},
    },
}


@pytest.fixture
def instrument(
    instrument_with: Callable[[type[MistralInstrumentor]], Callable[[], MistralInstrumentor]],
) -> Callable[[], MistralInstrumentor]:
    return instrument_with(MistralInstrumentor)


def _client(replay: ReplayServer) -> Mistral:
    return Mistral(api_key="test-key", server_url=replay.url)


def test_mistral_chat_complete_records_attributes(
    telemetry: TelemetryCapture, replay: ReplayServer, recording: Callable[[str], list[Route]], instrument
) -> None:
    instrument()
    replay.set_routes(recording("mistral/chat.json"))

    response = _client(replay).chat.complete(
        model=MODEL,
        messages=MESSAGES,
        temperature=0.7,
        top_p=1.0,
        max_tokens=64,
        random_seed=11,
        stop=["\n\n"],
    )

    assert response.id == "cf79f7daaee244b1a0ae5c7b1444424a"
    span = telemetry.only_span()
    assert span.name == f"chat {MODEL}"
    assert span.kind is SpanKind.CLIENT
    assert dict(span.attributes or {}) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "mistral_ai",
        "gen_ai.request.model": MODEL,
        "server.address": "127.0.0.1",
        "server.port": replay.port,
        "gen_ai.request.temperature": 0.7,
        "gen_ai.request.top_p": 1.0,
        "gen_ai.request.max_tokens": 64,
        "gen_ai.request.seed": 11,
        "gen_ai.request.stop_sequences": ("\n\n",),
        "gen_ai.response.id": "cf79f7daaee244b1a0ae5c7b1444424a",
        "gen_ai.response.model": "mistral-large-2411",
        "gen_ai.response.finish_reasons": ("stop",),
        "gen_ai.usage.input_tokens": 16,
        "gen_ai.usage.output_tokens": 34,
    }
    assert replay.requests[0].path == "/v1/chat/completions"


def test_mistral_tool_call_captured_only_when_opted_in(
    telemetry: TelemetryCapture,
    replay: ReplayServer,
    recording: Callable[[str], list[Route]],
    instrument,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    replay.set_routes(recording("mistral/chat_tool_call.json"))
    client = _client(replay)
    instrumentor = instrument()
    client.chat.complete(model=MODEL, messages=MESSAGES, tools=[PAYMENT_TOOL])
    without = dict(telemetry.only_span().attributes or {})
    instrumentor.uninstrument()
    telemetry.clear()
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "SPAN_ONLY")
    instrumentor.instrument(**telemetry.kwargs)
    client.chat.complete(model=MODEL, messages=MESSAGES, tools=[PAYMENT_TOOL])
    with_content = dict(telemetry.only_span().attributes or {})

    assert not [key for key in without if key.startswith(("gen_ai.input", "gen_ai.output", "gen_ai.tool"))]
    assert without["gen_ai.response.finish_reasons"] == ("tool_calls",)
    assert json.loads(str(with_content["gen_ai.output.messages"])) == [
        {
            "role": "assistant",
            "parts": [
                {
                    "type": "tool_call",
                    "id": "D681PevKs",
                    "name": "retrieve_payment_status",
                    "arguments": {"transaction_id": "T1001"},
                }
            ],
            "finish_reason": "tool_call",
        }
    ]
    assert json.loads(str(with_content["gen_ai.tool.definitions"])) == [
        {
            "type": "function",
            "name": "retrieve_payment_status",
            "description": "Get payment status of a transaction",
            "parameters": {"type": "object", "properties": {"transaction_id": {"type": "string"}}},
        }
    ]


def test_mistral_stream_usage_from_final_chunk(
    capture_content: None,
    telemetry: TelemetryCapture,
    replay: ReplayServer,
    recording: Callable[[str], list[Route]],
    instrument,
) -> None:
    instrument()
    replay.set_routes(recording("mistral/chat_stream.json"))

    started = time.perf_counter()
    stream = _client(replay).chat.stream(model=MODEL, messages=MESSAGES)
    text = "".join(str(event.data.choices[0].delta.content or "") for event in stream)
    elapsed = time.perf_counter() - started

    span = telemetry.only_span()
    attributes = dict(span.attributes or {})
    assert text == "Paris is the capital of France."
    assert attributes["gen_ai.request.stream"] is True
    assert attributes["gen_ai.response.id"] == "e2b1f0c9d8a74b6e8f7a6b5c4d3e2f10"
    assert attributes["gen_ai.response.model"] == "mistral-large-2411"
    assert attributes["gen_ai.usage.input_tokens"] == 10
    assert attributes["gen_ai.usage.output_tokens"] == 7
    assert attributes["gen_ai.response.finish_reasons"] == ("stop",)
    assert 0 < float(attributes["gen_ai.response.time_to_first_chunk"]) <= elapsed  # one monotonic clock
    assert json.loads(str(attributes["gen_ai.output.messages"])) == [
        {"role": "assistant", "parts": [{"type": "text", "content": text}], "finish_reason": "stop"}
    ]


def test_mistral_stream_tool_call(
    capture_content: None,
    telemetry: TelemetryCapture,
    replay: ReplayServer,
    recording: Callable[[str], list[Route]],
    instrument,
) -> None:
    instrument()
    replay.set_routes(recording("mistral/chat_stream_tool_call.json"))

    for _event in _client(replay).chat.stream(model=MODEL, messages=MESSAGES, tools=[PAYMENT_TOOL]):
        pass

    attributes = dict(telemetry.only_span().attributes or {})
    assert json.loads(str(attributes["gen_ai.output.messages"]))[0]["parts"] == [
        {
            "type": "tool_call",
            "id": "qB3r9vXz1",
            "name": "retrieve_payment_status",
            "arguments": {"transaction_id": "T1001"},
        }
    ]
    assert attributes["gen_ai.usage.input_tokens"] == 92


def test_mistral_stream_closed_early_still_ends_span(
    telemetry: TelemetryCapture, replay: ReplayServer, recording: Callable[[str], list[Route]], instrument
) -> None:
    instrument()
    replay.set_routes(recording("mistral/chat_stream.json"))

    stream = _client(replay).chat.stream(model=MODEL, messages=MESSAGES)
    next(stream)
    stream.close()

    span = telemetry.only_span()
    attributes = dict(span.attributes or {})
    assert span.status.status_code is StatusCode.UNSET
    assert attributes["gen_ai.response.id"] == "e2b1f0c9d8a74b6e8f7a6b5c4d3e2f10"
    assert "gen_ai.usage.output_tokens" not in attributes


def test_mistral_stream_used_as_context_manager_ends_span_on_exit(
    telemetry: TelemetryCapture, replay: ReplayServer, recording: Callable[[str], list[Route]], instrument
) -> None:
    instrument()
    replay.set_routes(recording("mistral/chat_stream.json"))
    stream = _client(replay).chat.stream(model=MODEL, messages=MESSAGES)
    if not hasattr(type(stream.__wrapped__), "__enter__"):
        stream.close()
        pytest.skip("this mistralai streams with a plain generator, not a context manager")

    with stream:
        next(stream)
        assert telemetry.spans() == ()

    span = telemetry.only_span()
    assert span.status.status_code is StatusCode.UNSET
    assert "gen_ai.usage.output_tokens" not in (span.attributes or {})


async def test_mistral_async_complete_stream_and_embeddings(
    telemetry: TelemetryCapture, replay: ReplayServer, recording: Callable[[str], list[Route]], instrument
) -> None:
    instrument()
    client = _client(replay)
    replay.set_routes(recording("mistral/chat.json"))
    await client.chat.complete_async(model=MODEL, messages=MESSAGES)
    replay.set_routes(recording("mistral/chat_stream.json"))
    stream = await client.chat.stream_async(model=MODEL, messages=MESSAGES)
    events = [event async for event in stream]
    replay.set_routes(recording("mistral/embeddings.json"))
    await client.embeddings.create_async(model="mistral-embed", inputs=["a", "b"])

    assert len(events) == 9
    chat, streamed, embed = telemetry.spans()
    assert (chat.attributes or {})["gen_ai.usage.output_tokens"] == 34
    assert (streamed.attributes or {})["gen_ai.usage.output_tokens"] == 7
    assert embed.name == "embeddings mistral-embed"


def test_mistral_embeddings(
    telemetry: TelemetryCapture, replay: ReplayServer, recording: Callable[[str], list[Route]], instrument
) -> None:
    instrument()
    replay.set_routes(recording("mistral/embeddings.json"))

    _client(replay).embeddings.create(
        model="mistral-embed", inputs=["Embed this sentence.", "As well as this one."]
    )

    assert dict(telemetry.only_span().attributes or {}) == {
        "gen_ai.operation.name": "embeddings",
        "gen_ai.provider.name": "mistral_ai",
        "gen_ai.request.model": "mistral-embed",
        "server.address": "127.0.0.1",
        "server.port": replay.port,
        "gen_ai.response.id": "b3c2d1e0f9a84b7c8d6e5f4a3b2c1d0e",
        "gen_ai.response.model": "mistral-embed",
        "gen_ai.usage.input_tokens": 15,
        "gen_ai.embeddings.dimension.count": 4,
    }


def test_mistral_http_errors_record_status_code(
    telemetry: TelemetryCapture, replay: ReplayServer, recording: Callable[[str], list[Route]], instrument
) -> None:
    instrument()
    client = _client(replay)
    replay.set_routes(recording("mistral/error_429.json"))
    with pytest.raises(SDKError) as raised:
        client.chat.complete(model=MODEL, messages=MESSAGES)
    replay.set_routes(recording("mistral/error_500.json"))
    with pytest.raises(SDKError):
        client.chat.stream(model=MODEL, messages=MESSAGES)

    assert raised.value.status_code == 429
    rate_limited, failed = telemetry.spans()
    assert rate_limited.status.status_code is StatusCode.ERROR
    assert (rate_limited.attributes or {})["error.type"] == "429"
    assert (failed.attributes or {})["error.type"] == "500"
    assert (failed.attributes or {})["gen_ai.request.stream"] is True


def test_mistral_uninstrument_restores_originals(
    telemetry: TelemetryCapture, replay: ReplayServer, recording: Callable[[str], list[Route]], instrument
) -> None:
    originals = (Chat.complete, Chat.stream_async, Embeddings.create)
    instrument()
    assert hasattr(Chat.complete, "__wrapped__")
    MistralInstrumentor().uninstrument()

    assert (Chat.complete, Chat.stream_async, Embeddings.create) == originals
    replay.set_routes(recording("mistral/chat.json"))
    _client(replay).chat.complete(model=MODEL, messages=MESSAGES)
    assert telemetry.spans() == ()
