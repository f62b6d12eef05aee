"""CohereInstrumentor: the real ``cohere`` SDK talking HTTP to a local replay server."""

from __future__ import annotations

import inspect
import json
import time
from collections.abc import Callable

import cohere
import pytest
from opentelemetry.trace import SpanKind, StatusCode

from llm_observer.instrumentation.cohere import CohereInstrumentor
from llm_observer.instrumentation.testing import ReplayServer, Route, TelemetryCapture

MODEL = "command-a-03-2025"
MESSAGES = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "What are LLMs?"},
]
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {"type": "object", "properties": {"location": {"type": "string"}}},
    },
}


@pytest.fixture
def instrument(
    instrument_with: Callable[[type[CohereInstrumentor]], Callable[[], CohereInstrumentor]],
) -> Callable[[], CohereInstrumentor]:
    return instrument_with(CohereInstrumentor)


# Older SDKs (5.13) take no max_retries: they retry through per-request options only.
NO_RETRIES = (
    {"max_retries": 0} if "max_retries" in inspect.signature(cohere.ClientV2.__init__).parameters else {}
)


def _client(replay: ReplayServer) -> cohere.ClientV2:
    return cohere.ClientV2(api_key="test-key", base_url=replay.url, **NO_RETRIES)


def _async_client(replay: ReplayServer) -> cohere.AsyncClientV2:
    return cohere.AsyncClientV2(api_key="test-key", base_url=replay.url, **NO_RETRIES)


def _v1_client(replay: ReplayServer) -> cohere.Client:
    return cohere.Client(api_key="test-key", base_url=replay.url, **NO_RETRIES)


def test_cohere_v2_chat_records_request_response_and_usage(
    telemetry: TelemetryCapture, replay: ReplayServer, recording: Callable[[str], list[Route]], instrument
) -> None:
    instrument()
    replay.set_routes(recording("cohere/v2_chat.json"))

    response = _client(replay).chat(
        model=MODEL,
        messages=MESSAGES,
        temperature=0.3,
        max_tokens=200,
        p=0.9,
        k=40,
        seed=7,
        stop_sequences=["\n\n"],
    )

    assert response.id == "5a50480a-cf52-46f0-af01-53d18539bd31"
    span = telemetry.only_span()
    assert span.name == f"chat {MODEL}"
    assert span.kind is SpanKind.CLIENT
    assert span.status.status_code is StatusCode.UNSET
    assert dict(span.attributes or {}) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "cohere",
        "gen_ai.request.model": MODEL,
        "server.address": "127.0.0.1",
        "server.port": replay.port,
        "gen_ai.request.temperature": 0.3,
        "gen_ai.request.max_tokens": 200,
        "gen_ai.request.top_p": 0.9,
        "gen_ai.request.top_k": 40,
        "gen_ai.request.seed": 7,
        "gen_ai.request.stop_sequences": ("\n\n",),
        "gen_ai.response.id": "5a50480a-cf52-46f0-af01-53d18539bd31",
        "gen_ai.response.finish_reasons": ("COMPLETE",),
        "gen_ai.usage.input_tokens": 14,
        "gen_ai.usage.output_tokens": 19,
        "gen_ai.usage.cache_read.input_tokens": 448,
    }
    assert replay.requests[0].path == "/v2/chat"


def test_cohere_v2_chat_content_absent_unless_opted_in(
    telemetry: TelemetryCapture, replay: ReplayServer, recording: Callable[[str], list[Route]], instrument
) -> None:
    instrument()
    replay.set_routes(recording("cohere/v2_chat_tool_call.json"))

    _client(replay).chat(model=MODEL, messages=MESSAGES, tools=[WEATHER_TOOL])

    attributes = dict(telemetry.only_span().attributes or {})
    assert not [key for key in attributes if key.startswith(("gen_ai.input", "gen_ai.output", "gen_ai.tool"))]
    assert attributes["gen_ai.response.finish_reasons"] == ("TOOL_CALL",)


def test_cohere_v2_chat_tool_call_captured_when_opted_in(
    capture_content: None,
    telemetry: TelemetryCapture,
    replay: ReplayServer,
    recording: Callable[[str], list[Route]],
    instrument,
) -> None:
    instrument()
    replay.set_routes(recording("cohere/v2_chat_tool_call.json"))

    _client(replay).chat(model=MODEL, messages=MESSAGES, tools=[WEATHER_TOOL])

    attributes = dict(telemetry.only_span().attributes or {})
    assert json.loads(str(attributes["gen_ai.input.messages"])) == [
        {"role": "system", "parts": [{"type": "text", "content": "You are terse."}]},
        {"role": "user", "parts": [{"type": "text", "content": "What are LLMs?"}]},
    ]
    assert json.loads(str(attributes["gen_ai.output.messages"])) == [
        {
            "role": "assistant",
            "parts": [
                {"type": "reasoning", "content": "I will look up the weather in Toronto."},
                {
                    "type": "tool_call",
                    "id": "get_weather_1byjy32y4hvq",
                    "name": "get_weather",
                    "arguments": {"location": "Toronto"},
                },
            ],
            "finish_reason": "tool_call",
        }
    ]
    assert json.loads(str(attributes["gen_ai.tool.definitions"])) == [
        {
            "type": "function",
            "name": "get_weather",
            "description": "Current weather for a city",
            "parameters": {"type": "object", "properties": {"location": {"type": "string"}}},
        }
    ]


def test_cohere_v2_chat_stream_reports_usage_from_final_event(
    capture_content: None,
    telemetry: TelemetryCapture,
    replay: ReplayServer,
    recording: Callable[[str], list[Route]],
    instrument,
) -> None:
    instrument()
    replay.set_routes(recording("cohere/v2_chat_stream.json"))

    started = time.perf_counter()
    events = list(_client(replay).chat_stream(model=MODEL, messages=MESSAGES))
    elapsed = time.perf_counter() - started

    assert events[-1].type == "message-end"
    span = telemetry.only_span()
    attributes = dict(span.attributes or {})
    assert attributes["gen_ai.request.stream"] is True
    assert attributes["gen_ai.response.id"] == "29f14a5a-11de-4cae-9800-25e4747408ea"
    assert attributes["gen_ai.response.finish_reasons"] == ("COMPLETE",)
    assert attributes["gen_ai.usage.input_tokens"] == 3
    assert attributes["gen_ai.usage.output_tokens"] == 9
    ttfc = attributes["gen_ai.response.time_to_first_chunk"]
    assert isinstance(ttfc, float)
    assert 0 < ttfc <= elapsed  # the same monotonic clock as the handler's
    assert json.loads(str(attributes["gen_ai.output.messages"])) == [
        {
            "role": "assistant",
            "parts": [{"type": "text", "content": "Hello! How can I help you today?"}],
            "finish_reason": "stop",
        }
    ]


def test_cohere_v2_chat_stream_tool_call_arguments_are_joined(
    capture_content: None,
    telemetry: TelemetryCapture,
    replay: ReplayServer,
    recording: Callable[[str], list[Route]],
    instrument,
) -> None:
    instrument()
    replay.set_routes(recording("cohere/v2_chat_stream_tool_call.json"))

    for _event in _client(replay).chat_stream(model=MODEL, messages=MESSAGES, tools=[WEATHER_TOOL]):
        pass

    attributes = dict(telemetry.only_span().attributes or {})
    assert json.loads(str(attributes["gen_ai.output.messages"]))[0]["parts"] == [
        {"type": "reasoning", "content": "I will check the weather."},
        {
            "type": "tool_call",
            "id": "get_weather_nsz5zm3w56q3",
            "name": "get_weather",
            "arguments": {"location": "Toronto"},
        },
    ]
    assert attributes["gen_ai.usage.output_tokens"] == 21


def test_cohere_v2_chat_stream_cut_short_still_ends_span(
    telemetry: TelemetryCapture, replay: ReplayServer, recording: Callable[[str], list[Route]], instrument
) -> None:
    instrument()
    replay.set_routes(recording("cohere/v2_chat_stream.json"))

    for event in _client(replay).chat_stream(model=MODEL, messages=MESSAGES):
        if event.type == "content-delta":
            break

    span = telemetry.only_span()
    attributes = dict(span.attributes or {})
    assert span.status.status_code is StatusCode.UNSET
    assert attributes["gen_ai.response.id"] == "29f14a5a-11de-4cae-9800-25e4747408ea"
    assert "gen_ai.usage.output_tokens" not in attributes
    assert "gen_ai.response.time_to_first_chunk" in attributes


async def test_cohere_async_v2_chat_and_stream(
    telemetry: TelemetryCapture, replay: ReplayServer, recording: Callable[[str], list[Route]], instrument
) -> None:
    instrument()
    client = _async_client(replay)
    replay.set_routes(recording("cohere/v2_chat.json"))
    await client.chat(model=MODEL, messages=MESSAGES)
    replay.set_routes(recording("cohere/v2_chat_stream.json"))
    chunks = [event async for event in client.chat_stream(model=MODEL, messages=MESSAGES)]

    assert chunks[-1].type == "message-end"
    chat, stream = telemetry.spans()
    assert chat.name == stream.name == f"chat {MODEL}"
    assert (chat.attributes or {})["gen_ai.usage.output_tokens"] == 19
    assert (stream.attributes or {})["gen_ai.usage.output_tokens"] == 9
    assert (stream.attributes or {})["gen_ai.request.stream"] is True


def test_cohere_v1_chat_and_stream(
    capture_content: None,
    telemetry: TelemetryCapture,
    replay: ReplayServer,
    recording: Callable[[str], list[Route]],
    instrument,
) -> None:
    instrument()
    client = _v1_client(replay)
    replay.set_routes(recording("cohere/v1_chat.json"))
    client.chat(model="command-r", message="What is the capital of France?", preamble="Answer briefly.")
    replay.set_routes(recording("cohere/v1_chat_stream.json"))
    events = list(client.chat_stream(model="command-r", message="What is the capital of France?"))

    assert events[-1].event_type == "stream-end"
    chat, stream = telemetry.spans()
    chat_attributes = dict(chat.attributes or {})
    assert chat.name == "chat command-r"
    assert chat_attributes["gen_ai.response.id"] == "b0a4a8f6-6d2c-4e5e-a1d2-8b7c5f3e2a10"
    assert chat_attributes["gen_ai.usage.input_tokens"] == 7
    assert json.loads(str(chat_attributes["gen_ai.system_instructions"])) == [
        {"type": "text", "content": "Answer briefly."}
    ]
    assert json.loads(str(chat_attributes["gen_ai.input.messages"])) == [
        {"role": "user", "parts": [{"type": "text", "content": "What is the capital of France?"}]}
    ]
    stream_attributes = dict(stream.attributes or {})
    assert stream_attributes["gen_ai.response.id"] == "d6b2c1f4-1a7e-4d35-9f61-6a3e0c2b8d77"
    assert stream_attributes["gen_ai.usage.output_tokens"] == 7
    assert json.loads(str(stream_attributes["gen_ai.output.messages"])) == [
        {
            "role": "assistant",
            "parts": [{"type": "text", "content": "The capital of France is Paris."}],
            "finish_reason": "stop",
        }
    ]


def test_cohere_v1_chat_tool_calls_recorded(
    capture_content: None,
    telemetry: TelemetryCapture,
    replay: ReplayServer,
    recording: Callable[[str], list[Route]],
    instrument,
) -> None:
    instrument()
    client = _v1_client(replay)
    replay.set_routes(recording("cohere/v1_chat_tool_call.json"))
    client.chat(
        model="command-r",
        message="Can you provide a sales summary for 29th September 2023?",
        tools=[
            cohere.Tool(
                name="query_daily_sales_report",
                description="Sales for a day",
                parameter_definitions={
                    "day": cohere.ToolParameterDefinitionsValue(
                        description="YYYY-MM-DD", type="str", required=True
                    )
                },
            )
        ],
    )

    attributes = dict(telemetry.only_span().attributes or {})
    output = json.loads(str(attributes["gen_ai.output.messages"]))
    assert output[0]["parts"][1] == {
        "type": "tool_call",
        "id": None,
        "name": "query_daily_sales_report",
        "arguments": {"day": "2023-09-29"},
    }
    assert json.loads(str(attributes["gen_ai.tool.definitions"]))[0]["name"] == "query_daily_sales_report"


def test_cohere_embed_and_rerank(
    telemetry: TelemetryCapture, replay: ReplayServer, recording: Callable[[str], list[Route]], instrument
) -> None:
    instrument()
    client = _client(replay)
    replay.set_routes(recording("cohere/v2_embed.json"))
    client.embed(
        model="embed-v4.0",
        texts=["hello", "goodbye"],
        input_type="search_document",
        embedding_types=["float"],
    )
    replay.set_routes(recording("cohere/v1_embed.json"))
    _v1_client(replay).embed(
        model="embed-english-v3.0", texts=["hello", "goodbye"], input_type="search_document"
    )
    replay.set_routes(recording("cohere/v2_rerank.json"))
    client.rerank(model="rerank-v3.5", query="capital of the US", documents=list("abcde"), top_n=3)

    embed_v2, embed_v1, rerank = telemetry.spans()
    assert embed_v2.name == "embeddings embed-v4.0"
    assert dict(embed_v2.attributes or {}) == {
        "gen_ai.operation.name": "embeddings",
        "gen_ai.provider.name": "cohere",
        "gen_ai.request.model": "embed-v4.0",
        "server.address": "127.0.0.1",
        "server.port": replay.port,
        "gen_ai.request.encoding_formats": ("float",),
        "gen_ai.response.id": "da6e531f-54c6-4a73-bf92-f60566d8d753",
        "gen_ai.usage.input_tokens": 2,
        "gen_ai.embeddings.dimension.count": 6,
    }
    assert embed_v1.name == "embeddings embed-english-v3.0"
    assert (embed_v1.attributes or {})["gen_ai.embeddings.dimension.count"] == 4
    assert rerank.name == "rerank rerank-v3.5"
    assert (rerank.attributes or {})["cohere.usage.search_units"] == 1
    assert (rerank.attributes or {})["cohere.request.top_n"] == 3
    assert len(replay.requests) == 3


def test_cohere_error_is_recorded_and_reraised_unchanged(
    telemetry: TelemetryCapture, replay: ReplayServer, recording: Callable[[str], list[Route]], instrument
) -> None:
    instrument()
    replay.set_routes(recording("cohere/error_429.json"))

    with pytest.raises(cohere.errors.TooManyRequestsError) as raised:
        _client(replay).chat(model=MODEL, messages=MESSAGES)

    assert raised.value.status_code == 429
    span = telemetry.only_span()
    assert span.status.status_code is StatusCode.ERROR
    assert (span.attributes or {})["error.type"] == "TooManyRequestsError"
    points = telemetry.histogram_points("gen_ai.client.operation.duration")
    assert [dict(point.attributes)["error.type"] for point in points] == ["TooManyRequestsError"]


def test_cohere_stream_error_ends_span_with_error(
    telemetry: TelemetryCapture, replay: ReplayServer, recording: Callable[[str], list[Route]], instrument
) -> None:
    instrument()
    replay.set_routes(recording("cohere/error_500.json"))

    with pytest.raises(cohere.core.api_error.ApiError):
        list(_client(replay).chat_stream(model=MODEL, messages=MESSAGES))

    span = telemetry.only_span()
    assert span.status.status_code is StatusCode.ERROR
    assert (span.attributes or {})["error.type"] == "InternalServerError"


def test_cohere_metrics_record_tokens_and_duration(
    telemetry: TelemetryCapture, replay: ReplayServer, recording: Callable[[str], list[Route]], instrument
) -> None:
    instrument()
    replay.set_routes(recording("cohere/v2_chat.json"))
    _client(replay).chat(model=MODEL, messages=MESSAGES)

    tokens = {
        dict(point.attributes)["gen_ai.token.type"]: point.sum
        for point in telemetry.histogram_points("gen_ai.client.token.usage")
    }
    assert tokens == {"input": 14, "output": 19}
    (duration,) = telemetry.histogram_points("gen_ai.client.operation.duration")
    assert duration.count == 1
    assert dict(duration.attributes)["gen_ai.provider.name"] == "cohere"


def test_cohere_uninstrument_restores_originals(
    telemetry: TelemetryCapture, replay: ReplayServer, recording: Callable[[str], list[Route]], instrument
) -> None:
    from cohere.base_client import BaseCohere
    from cohere.v2.client import V2Client

    originals = (V2Client.chat, V2Client.chat_stream, BaseCohere.chat, cohere.Client.embed)
    instrumentor = instrument()
    assert hasattr(V2Client.chat, "__wrapped__")
    made_while_instrumented = _client(replay)

    CohereInstrumentor().uninstrument()  # a fresh handle on the singleton must work

    assert (V2Client.chat, V2Client.chat_stream, BaseCohere.chat, cohere.Client.embed) == originals
    replay.set_routes(recording("cohere/v2_chat.json"))
    _client(replay).chat(model=MODEL, messages=MESSAGES)
    made_while_instrumented.chat(model=MODEL, messages=MESSAGES)
    assert telemetry.spans() == ()
    assert instrumentor.is_instrumented_by_opentelemetry is False
