"""OllamaInstrumentor: the real ``ollama`` client talking HTTP (JSON and NDJSON streams) to a replay server."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable

import ollama
import pytest
from opentelemetry.trace import SpanKind, StatusCode

from llm_observer.instrumentation.ollama import OllamaInstrumentor
from llm_observer.instrumentation.testing import ReplayServer, Route, TelemetryCapture

MODEL = "llama3.2"
MESSAGES = [{"role": "system", "content": "Be concise."}, {"role": "user", "content": "Why is the sky blue?"}]


@pytest.fixture
def instrument(
    instrument_with: Callable[[type[OllamaInstrumentor]], Callable[[], OllamaInstrumentor]],
) -> Callable[[], OllamaInstrumentor]:
    return instrument_with(OllamaInstrumentor)


def test_ollama_chat_records_attributes(
    telemetry: TelemetryCapture, replay: ReplayServer, recording: Callable[[str], list[Route]], instrument
) -> None:
    instrument()
    replay.set_routes(recording("ollama/chat.json"))

    response = ollama.Client(host=replay.url).chat(
        MODEL,
        MESSAGES,
        options={
            "temperature": 0.1,
            "top_k": 20,
            "top_p": 0.8,
            "num_predict": 128,
            "seed": 5,
            "stop": ["<|eot|>"],
        },
    )

    assert response.message.content
    span = telemetry.only_span()
    assert span.name == f"chat {MODEL}"
    assert span.kind is SpanKind.CLIENT
    assert dict(span.attributes or {}) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "ollama",
        "gen_ai.request.model": MODEL,
        "server.address": "127.0.0.1",
        "server.port": replay.port,
        "gen_ai.request.temperature": 0.1,
        "gen_ai.request.top_k": 20,
        "gen_ai.request.top_p": 0.8,
        "gen_ai.request.max_tokens": 128,
        "gen_ai.request.seed": 5,
        "gen_ai.request.stop_sequences": ("<|eot|>",),
        "gen_ai.response.model": MODEL,
        "gen_ai.response.finish_reasons": ("stop",),
        "gen_ai.usage.input_tokens": 26,
        "gen_ai.usage.output_tokens": 21,
    }
    assert replay.requests[0].path == "/api/chat"


def test_ollama_chat_tool_call_captured_only_when_opted_in(
    telemetry: TelemetryCapture,
    replay: ReplayServer,
    recording: Callable[[str], list[Route]],
    instrument,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def get_current_weather(location: str, format: str) -> str:
        """Get the current weather for a location."""
        return "sunny"

    replay.set_routes(recording("ollama/chat_tool_call.json"))
    client = ollama.Client(host=replay.url)
    instrumentor = instrument()
    client.chat(model=MODEL, messages=MESSAGES, tools=[get_current_weather])
    without = dict(telemetry.only_span().attributes or {})
    instrumentor.uninstrument()
    telemetry.clear()
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "SPAN_AND_EVENT")
    instrumentor.instrument(**telemetry.kwargs)
    client.chat(model=MODEL, messages=MESSAGES, tools=[get_current_weather])
    with_content = dict(telemetry.only_span().attributes or {})

    assert not [key for key in without if key.startswith(("gen_ai.input", "gen_ai.output", "gen_ai.tool"))]
    assert json.loads(str(with_content["gen_ai.output.messages"])) == [
        {
            "role": "assistant",
            "parts": [
                {
                    "type": "tool_call",
                    "id": None,
                    "name": "get_current_weather",
                    "arguments": {"format": "celsius", "location": "Paris, FR"},
                }
            ],
            "finish_reason": "stop",
        }
    ]
    assert json.loads(str(with_content["gen_ai.tool.definitions"])) == [
        {
            "type": "function",
            "name": "get_current_weather",
            "description": "Get the current weather for a location.",
        }
    ]
    assert json.loads(str(with_content["gen_ai.input.messages"]))[0] == {
        "role": "system",
        "parts": [{"type": "text", "content": "Be concise."}],
    }
    (event,) = telemetry.log_records()
    assert event.attributes["gen_ai.output.messages"][0]["parts"][0]["name"] == "get_current_weather"


def test_ollama_chat_stream_usage_from_done_chunk(
    capture_content: None,
    telemetry: TelemetryCapture,
    replay: ReplayServer,
    recording: Callable[[str], list[Route]],
    instrument,
) -> None:
    instrument()
    replay.set_routes(recording("ollama/chat_stream.json"))

    started = time.perf_counter()
    parts = [
        chunk.message.content for chunk in ollama.Client(host=replay.url).chat(MODEL, MESSAGES, stream=True)
    ]
    elapsed = time.perf_counter() - started

    span = telemetry.only_span()
    attributes = dict(span.attributes or {})
    assert attributes["gen_ai.request.stream"] is True
    assert attributes["gen_ai.usage.input_tokens"] == 31
    assert attributes["gen_ai.usage.output_tokens"] == 5
    assert attributes["gen_ai.response.finish_reasons"] == ("stop",)
    assert 0 < float(attributes["gen_ai.response.time_to_first_chunk"]) <= elapsed  # one monotonic clock
    assert json.loads(str(attributes["gen_ai.output.messages"])) == [
        {"role": "assistant", "parts": [{"type": "text", "content": "".join(parts)}], "finish_reason": "stop"}
    ]


def test_ollama_stream_cut_short_still_ends_span(
    telemetry: TelemetryCapture, replay: ReplayServer, recording: Callable[[str], list[Route]], instrument
) -> None:
    instrument()
    replay.set_routes(recording("ollama/generate_stream.json"))

    for _chunk in ollama.Client(host=replay.url).generate(MODEL, "What is Ollama?", stream=True):
        break

    span = telemetry.only_span()
    attributes = dict(span.attributes or {})
    assert span.name == f"text_completion {MODEL}"
    assert span.status.status_code is StatusCode.UNSET
    assert "gen_ai.usage.output_tokens" not in attributes
    assert attributes["gen_ai.response.model"] == MODEL


def test_ollama_generate_and_embed(
    capture_content: None,
    telemetry: TelemetryCapture,
    replay: ReplayServer,
    recording: Callable[[str], list[Route]],
    instrument,
) -> None:
    instrument()
    client = ollama.Client(host=replay.url)
    replay.set_routes(recording("ollama/generate.json"))
    client.generate(model=MODEL, prompt="What is Ollama?", system="One sentence.")
    replay.set_routes(recording("ollama/embed.json"))
    client.embed(model="all-minilm", input=["first", "second"])

    generate, embed = telemetry.spans()
    generate_attributes = dict(generate.attributes or {})
    assert generate_attributes["gen_ai.usage.input_tokens"] == 12
    assert generate_attributes["gen_ai.usage.output_tokens"] == 8
    assert json.loads(str(generate_attributes["gen_ai.system_instructions"])) == [
        {"type": "text", "content": "One sentence."}
    ]
    assert json.loads(str(generate_attributes["gen_ai.output.messages"]))[0]["parts"] == [
        {"type": "text", "content": "Ollama runs large language models locally."}
    ]
    assert embed.name == "embeddings all-minilm"
    assert dict(embed.attributes or {}) == {
        "gen_ai.operation.name": "embeddings",
        "gen_ai.provider.name": "ollama",
        "gen_ai.request.model": "all-minilm",
        "server.address": "127.0.0.1",
        "server.port": replay.port,
        "gen_ai.response.model": "all-minilm",
        "gen_ai.usage.input_tokens": 8,
        "gen_ai.embeddings.dimension.count": 4,
    }


async def test_ollama_async_chat_and_stream(
    telemetry: TelemetryCapture, replay: ReplayServer, recording: Callable[[str], list[Route]], instrument
) -> None:
    instrument()
    client = ollama.AsyncClient(host=replay.url)
    replay.set_routes(recording("ollama/chat.json"))
    await client.chat(model=MODEL, messages=MESSAGES)
    replay.set_routes(recording("ollama/chat_stream.json"))
    chunks = [chunk async for chunk in await client.chat(model=MODEL, messages=MESSAGES, stream=True)]

    assert chunks[-1].done
    chat, stream = telemetry.spans()
    assert (chat.attributes or {})["gen_ai.usage.output_tokens"] == 21
    assert (stream.attributes or {})["gen_ai.usage.output_tokens"] == 5
    assert (stream.attributes or {})["gen_ai.request.stream"] is True


def test_ollama_errors_record_status_code(
    telemetry: TelemetryCapture, replay: ReplayServer, recording: Callable[[str], list[Route]], instrument
) -> None:
    instrument()
    client = ollama.Client(host=replay.url)
    replay.set_routes(recording("ollama/error_404.json"))
    with pytest.raises(ollama.ResponseError) as raised:
        client.chat(model="llama9", messages=MESSAGES)
    replay.set_routes(recording("ollama/error_500.json"))
    with pytest.raises(ollama.ResponseError):
        for _chunk in client.chat(model=MODEL, messages=MESSAGES, stream=True):
            pass

    assert raised.value.status_code == 404
    plain, stream = telemetry.spans()
    assert plain.status.status_code is StatusCode.ERROR
    assert (plain.attributes or {})["error.type"] == "404"
    assert stream.status.status_code is StatusCode.ERROR
    assert (stream.attributes or {})["error.type"] == "500"


def test_ollama_module_shortcuts_are_instrumented_and_restored(
    telemetry: TelemetryCapture, replay: ReplayServer, recording: Callable[[str], list[Route]], instrument
) -> None:
    originals = (ollama.chat, ollama.generate, ollama.embed)
    class_originals = (ollama.Client.chat, ollama.AsyncClient.generate)
    default_http = ollama._client._client  # type: ignore[attr-defined]
    previous_base = default_http.base_url
    default_http.base_url = replay.url
    try:
        instrument()
        replay.set_routes(recording("ollama/chat.json"))
        ollama.chat(model=MODEL, messages=MESSAGES)
        assert telemetry.only_span().name == f"chat {MODEL}"

        OllamaInstrumentor().uninstrument()
        telemetry.clear()
        ollama.chat(model=MODEL, messages=MESSAGES)
    finally:
        default_http.base_url = previous_base

    assert (ollama.chat, ollama.generate, ollama.embed) == originals
    assert (ollama.Client.chat, ollama.AsyncClient.generate) == class_originals
    assert telemetry.spans() == ()


async def test_ollama_spans_nest_under_caller_across_asyncio_tasks(
    telemetry: TelemetryCapture, replay: ReplayServer, recording: Callable[[str], list[Route]], instrument
) -> None:
    instrument()
    replay.set_routes([*recording("ollama/chat.json"), *recording("ollama/generate_stream.json")])
    client = ollama.AsyncClient(host=replay.url)
    tracer = telemetry.tracer_provider.get_tracer("agent")

    async def stream_generate() -> int:
        return len([chunk async for chunk in await client.generate(model=MODEL, prompt="hi", stream=True)])

    with tracer.start_as_current_span("invoke_agent planner") as agent:
        chat_task = asyncio.create_task(client.chat(model=MODEL, messages=MESSAGES))
        generate_task = asyncio.create_task(stream_generate())
        await asyncio.gather(chat_task, generate_task)

    spans = {span.name: span for span in telemetry.spans()}
    assert set(spans) == {"invoke_agent planner", f"chat {MODEL}", f"text_completion {MODEL}"}
    agent_id = agent.get_span_context().span_id
    for name in (f"chat {MODEL}", f"text_completion {MODEL}"):
        assert spans[name].parent is not None and spans[name].parent.span_id == agent_id
        assert spans[name].context.trace_id == agent.get_span_context().trace_id
