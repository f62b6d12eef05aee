"""GoogleGenAIInstrumentor: the real ``google-genai`` SDK talking HTTP to a local replay server."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import pytest
from google import genai
from google.genai import errors, types
from opentelemetry.trace import SpanKind, StatusCode

from llm_observer.instrumentation.google_genai import GoogleGenAIInstrumentor
from llm_observer.instrumentation.testing import ReplayServer, Route, TelemetryCapture

MODEL = "gemini-2.5-flash"
# Fields older SDKs (1.0) drop from the parsed response: the instrumentation can only report what the SDK keeps.
HAS_THOUGHTS = "thoughts_token_count" in types.GenerateContentResponseUsageMetadata.model_fields
HAS_RESPONSE_ID = "response_id" in types.GenerateContentResponse.model_fields
STREAM_OUTPUT = 24 + 28 if HAS_THOUGHTS else 24
WEATHER = types.FunctionDeclaration(
    name="get_current_weather",
    description="Current weather in a city",
    parameters={"type": "OBJECT", "properties": {"location": {"type": "STRING"}}},
)


@pytest.fixture
def instrument(
    instrument_with: Callable[[type[GoogleGenAIInstrumentor]], Callable[[], GoogleGenAIInstrumentor]],
) -> Callable[[], GoogleGenAIInstrumentor]:
    return instrument_with(GoogleGenAIInstrumentor)


def _client(replay: ReplayServer) -> genai.Client:
    options: dict[str, object] = {"base_url": replay.url, "api_version": "v1beta"}
    if hasattr(types, "HttpRetryOptions"):  # retries are configurable (and on by default) in newer SDKs
        options["retry_options"] = types.HttpRetryOptions(attempts=1)
    return genai.Client(api_key="test-key", http_options=types.HttpOptions(**options))


def test_google_genai_generate_content_records_attributes(
    telemetry: TelemetryCapture, replay: ReplayServer, recording: Callable[[str], list[Route]], instrument
) -> None:
    instrument()
    client = _client(replay)
    replay.set_routes(recording("google_genai/generate_content.json"))

    response = client.models.generate_content(
        model=MODEL,
        contents="Explain how AI works in a few words",
        config=types.GenerateContentConfig(
            temperature=0.2,
            top_p=0.95,
            top_k=40,
            max_output_tokens=256,
            candidate_count=1,
            seed=42,
            stop_sequences=["END"],
            system_instruction="Be brief.",
        ),
    )

    assert response.text.startswith("AI learns")
    span = telemetry.only_span()
    assert span.name == f"generate_content {MODEL}"
    assert span.kind is SpanKind.CLIENT
    expected = {
        "gen_ai.operation.name": "generate_content",
        "gen_ai.provider.name": "gcp.gemini",
        "gen_ai.request.model": MODEL,
        "server.address": "127.0.0.1",
        "server.port": replay.port,
        "gen_ai.request.temperature": 0.2,
        "gen_ai.request.top_p": 0.95,
        "gen_ai.request.top_k": 40,
        "gen_ai.request.max_tokens": 256,
        "gen_ai.request.choice.count": 1,
        "gen_ai.request.seed": 42,
        "gen_ai.request.stop_sequences": ("END",),
        "gen_ai.response.id": "Wk5HaP6cLvLXz7IPm6mH2Ao",
        "gen_ai.response.model": "gemini-2.5-flash",
        "gen_ai.response.finish_reasons": ("STOP",),
        "gen_ai.usage.input_tokens": 1032,
        "gen_ai.usage.output_tokens": 16 + 45,
        "gen_ai.usage.reasoning.output_tokens": 45,
        "gen_ai.usage.cache_read.input_tokens": 1024,
    }
    if not HAS_THOUGHTS:
        expected["gen_ai.usage.output_tokens"] = 16
        del expected["gen_ai.usage.reasoning.output_tokens"]
    if not HAS_RESPONSE_ID:
        del expected["gen_ai.response.id"]
    assert dict(span.attributes or {}) == expected
    assert replay.requests[0].path == f"/v1beta/models/{MODEL}:generateContent"


def test_google_genai_function_call_captured_when_opted_in(
    capture_content: None,
    telemetry: TelemetryCapture,
    replay: ReplayServer,
    recording: Callable[[str], list[Route]],
    instrument,
) -> None:
    instrument()
    client = _client(replay)
    replay.set_routes(recording("google_genai/generate_content_function_call.json"))

    response = client.models.generate_content(
        model=MODEL,
        contents="What's the weather in Boston?",
        config=types.GenerateContentConfig(
            system_instruction="You are a weather bot.", tools=[types.Tool(function_declarations=[WEATHER])]
        ),
    )

    assert response.function_calls
    attributes = dict(telemetry.only_span().attributes or {})
    assert json.loads(str(attributes["gen_ai.input.messages"])) == [
        {"role": "user", "parts": [{"type": "text", "content": "What's the weather in Boston?"}]}
    ]
    assert json.loads(str(attributes["gen_ai.system_instructions"])) == [
        {"type": "text", "content": "You are a weather bot."}
    ]
    assert json.loads(str(attributes["gen_ai.output.messages"])) == [
        {
            "role": "assistant",
            "parts": [
                {
                    "type": "tool_call",
                    "id": "call_8f1d2c",
                    "name": "get_current_weather",
                    "arguments": {"location": "Boston, MA"},
                }
            ],
            "finish_reason": "stop",
        }
    ]
    assert json.loads(str(attributes["gen_ai.tool.definitions"])) == [
        {
            "type": "function",
            "name": "get_current_weather",
            "description": "Current weather in a city",
            "parameters": {"type": "OBJECT", "properties": {"location": {"type": "STRING"}}},
        }
    ]


def test_google_genai_content_absent_unless_opted_in(
    telemetry: TelemetryCapture, replay: ReplayServer, recording: Callable[[str], list[Route]], instrument
) -> None:
    instrument()
    client = _client(replay)
    replay.set_routes(recording("google_genai/generate_content_function_call.json"))

    client.models.generate_content(
        model=MODEL,
        contents=[types.Content(role="user", parts=[types.Part(text="Weather in Boston?")])],
        config=types.GenerateContentConfig(
            system_instruction="x", tools=[types.Tool(function_declarations=[WEATHER])]
        ),
    )

    keys = set((telemetry.only_span().attributes or {}).keys())
    assert not {
        key
        for key in keys
        if key.startswith(("gen_ai.input", "gen_ai.output", "gen_ai.system", "gen_ai.tool"))
    }


def test_google_genai_stream_usage_from_final_chunk(
    capture_content: None,
    telemetry: TelemetryCapture,
    replay: ReplayServer,
    recording: Callable[[str], list[Route]],
    instrument,
) -> None:
    instrument()
    client = _client(replay)
    replay.set_routes(recording("google_genai/generate_content_stream.json"))

    started = time.perf_counter()
    text = "".join(
        chunk.text or "" for chunk in client.models.generate_content_stream(model=MODEL, contents="A story")
    )
    elapsed = time.perf_counter() - started

    span = telemetry.only_span()
    attributes = dict(span.attributes or {})
    assert attributes["gen_ai.request.stream"] is True
    assert attributes["gen_ai.usage.input_tokens"] == 9
    assert attributes["gen_ai.usage.output_tokens"] == STREAM_OUTPUT
    assert attributes["gen_ai.response.finish_reasons"] == ("STOP",)
    assert attributes.get("gen_ai.response.id") == ("m1FHaKa6Ceq_1e8P7-Kx8Q0" if HAS_RESPONSE_ID else None)
    assert 0 < float(attributes["gen_ai.response.time_to_first_chunk"]) <= elapsed  # one monotonic clock
    assert json.loads(str(attributes["gen_ai.output.messages"])) == [
        {"role": "assistant", "parts": [{"type": "text", "content": text}], "finish_reason": "stop"}
    ]
    assert replay.requests[0].query == "alt=sse"


def test_google_genai_stream_cut_short_still_ends_span(
    telemetry: TelemetryCapture, replay: ReplayServer, recording: Callable[[str], list[Route]], instrument
) -> None:
    instrument()
    client = _client(replay)
    replay.set_routes(recording("google_genai/generate_content_stream.json"))

    stream = client.models.generate_content_stream(model=MODEL, contents="A story")
    first = next(iter(stream))
    stream.close()

    assert first.text == "Once upon a time"
    attributes = dict(telemetry.only_span().attributes or {})
    assert attributes["gen_ai.usage.input_tokens"] == 9
    assert "gen_ai.usage.output_tokens" not in attributes
    assert "gen_ai.response.finish_reasons" not in attributes


async def test_google_genai_aio_generate_stream_and_embed(
    telemetry: TelemetryCapture, replay: ReplayServer, recording: Callable[[str], list[Route]], instrument
) -> None:
    instrument()
    root = _client(replay)
    client = root.aio
    replay.set_routes(recording("google_genai/generate_content.json"))
    await client.models.generate_content(model=MODEL, contents="hi")
    replay.set_routes(recording("google_genai/generate_content_stream.json"))
    chunks = [
        chunk async for chunk in await client.models.generate_content_stream(model=MODEL, contents="hi")
    ]
    replay.set_routes(recording("google_genai/embed_content.json"))
    await client.models.embed_content(model="gemini-embedding-001", contents=["a", "b"])

    assert len(chunks) == 4
    generate, stream, embed = telemetry.spans()
    assert (generate.attributes or {})["gen_ai.usage.input_tokens"] == 1032
    assert (stream.attributes or {})["gen_ai.usage.output_tokens"] == STREAM_OUTPUT
    assert (stream.attributes or {})["gen_ai.request.stream"] is True
    assert embed.name == "embeddings gemini-embedding-001"


def test_google_genai_embed_content(
    telemetry: TelemetryCapture, replay: ReplayServer, recording: Callable[[str], list[Route]], instrument
) -> None:
    instrument()
    client = _client(replay)
    replay.set_routes(recording("google_genai/embed_content.json"))

    result = client.models.embed_content(
        model="gemini-embedding-001", contents=["What is your name?", "What is your favorite color?"]
    )

    assert result.embeddings is not None and len(result.embeddings) == 2
    assert dict(telemetry.only_span().attributes or {}) == {
        "gen_ai.operation.name": "embeddings",
        "gen_ai.provider.name": "gcp.gemini",
        "gen_ai.request.model": "gemini-embedding-001",
        "server.address": "127.0.0.1",
        "server.port": replay.port,
        "gen_ai.embeddings.dimension.count": 6,
    }


def test_google_genai_error_type_is_rpc_status(
    telemetry: TelemetryCapture, replay: ReplayServer, recording: Callable[[str], list[Route]], instrument
) -> None:
    instrument()
    client = _client(replay)
    replay.set_routes(recording("google_genai/error_429.json"))

    with pytest.raises(errors.ClientError) as raised:
        client.models.generate_content(model=MODEL, contents="hi")

    assert raised.value.code == 429
    span = telemetry.only_span()
    assert span.status.status_code is StatusCode.ERROR
    assert (span.attributes or {})["error.type"] == "RESOURCE_EXHAUSTED"


def test_google_genai_stream_error_ends_span_with_error(
    telemetry: TelemetryCapture, replay: ReplayServer, recording: Callable[[str], list[Route]], instrument
) -> None:
    instrument()
    client = _client(replay)
    replay.set_routes(recording("google_genai/error_500.json"))

    with pytest.raises(errors.ServerError):
        for _chunk in client.models.generate_content_stream(model=MODEL, contents="hi"):
            pass

    span = telemetry.only_span()
    assert span.status.status_code is StatusCode.ERROR
    assert (span.attributes or {})["error.type"] == "INTERNAL"


def test_google_genai_uninstrument_restores_originals(
    telemetry: TelemetryCapture, replay: ReplayServer, recording: Callable[[str], list[Route]], instrument
) -> None:
    from google.genai.models import AsyncModels, Models

    originals = [
        getattr(cls, name)
        for cls in (Models, AsyncModels)
        for name in ("generate_content", "generate_content_stream", "embed_content")
    ]
    instrument()
    client = _client(replay)
    assert hasattr(Models.generate_content, "__wrapped__")
    GoogleGenAIInstrumentor().uninstrument()

    assert [
        getattr(cls, name)
        for cls in (Models, AsyncModels)
        for name in ("generate_content", "generate_content_stream", "embed_content")
    ] == originals
    replay.set_routes(recording("google_genai/generate_content.json"))
    client.models.generate_content(model=MODEL, contents="hi")
    assert telemetry.spans() == ()
