"""BedrockInstrumentor: real boto3 ``bedrock-runtime`` clients talking HTTP to a local replay server.

The ConverseStream recordings hold real AWS event-stream frames (prelude, headers, JSON payload, CRC32s),
which botocore's own decoder parses.
"""

from __future__ import annotations

import gc
import json
import time
from collections.abc import Callable
from typing import Any

import boto3
import botocore.session
import pytest
from botocore.client import BaseClient
from botocore.config import Config
from botocore.exceptions import ClientError
from opentelemetry.trace import SpanKind, StatusCode

from llm_observer.instrumentation.bedrock import BedrockInstrumentor
from llm_observer.instrumentation.testing import ReplayServer, Route, TelemetryCapture

CLAUDE = "anthropic.claude-3-5-sonnet-20240620-v1:0"
# botocore parses only the fields its service model knows: prompt-cache counts arrived in later releases.
HAS_CACHE_USAGE = "cacheReadInputTokens" in (
    botocore.session.get_session().get_service_model("bedrock-runtime").shape_for("TokenUsage").members
)
MESSAGES = [{"role": "user", "content": [{"text": "What is Amazon Bedrock?"}]}]
TOOL_CONFIG = {
    "tools": [
        {
            "toolSpec": {
                "name": "top_song",
                "description": "Get the most popular song played on a radio station.",
                "inputSchema": {"json": {"type": "object", "properties": {"sign": {"type": "string"}}}},
            }
        }
    ]
}


@pytest.fixture
def instrument(
    instrument_with: Callable[[type[BedrockInstrumentor]], Callable[[], BedrockInstrumentor]],
) -> Callable[[], BedrockInstrumentor]:
    return instrument_with(BedrockInstrumentor)


def _client(replay: ReplayServer, service: str = "bedrock-runtime") -> Any:
    return boto3.client(
        service,
        region_name="us-east-1",
        endpoint_url=replay.url,
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        config=Config(retries={"total_max_attempts": 1}),
    )


def test_bedrock_converse_records_attributes_with_cache_tokens(
    telemetry: TelemetryCapture, replay: ReplayServer, recording: Callable[[str], list[Route]], instrument
) -> None:
    instrument()
    replay.set_routes(recording("bedrock/converse.json"))

    response = _client(replay).converse(
        modelId=CLAUDE,
        messages=MESSAGES,
        inferenceConfig={"maxTokens": 512, "temperature": 0.5, "topP": 0.9, "stopSequences": ["Human:"]},
        additionalModelRequestFields={"top_k": 50},
    )

    assert response["stopReason"] == "end_turn"
    span = telemetry.only_span()
    assert span.name == f"chat {CLAUDE}"
    assert span.kind is SpanKind.CLIENT
    expected = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "aws.bedrock",
        "gen_ai.request.model": CLAUDE,
        "server.address": "127.0.0.1",
        "server.port": replay.port,
        "gen_ai.request.max_tokens": 512,
        "gen_ai.request.temperature": 0.5,
        "gen_ai.request.top_p": 0.9,
        "gen_ai.request.top_k": 50,
        "gen_ai.request.stop_sequences": ("Human:",),
        "gen_ai.response.finish_reasons": ("end_turn",),
        "gen_ai.usage.input_tokens": 23 + 2048,
        "gen_ai.usage.output_tokens": 19,
        "gen_ai.usage.cache_read.input_tokens": 2048,
        "gen_ai.usage.cache_creation.input_tokens": 0,
        "aws.request_id": "3f1a2b4c-5d6e-4f70-8192-a3b4c5d6e7f8",
    }
    if not HAS_CACHE_USAGE:
        expected["gen_ai.usage.input_tokens"] = 23
        del (
            expected["gen_ai.usage.cache_read.input_tokens"],
            expected["gen_ai.usage.cache_creation.input_tokens"],
        )
    assert dict(span.attributes or {}) == expected
    assert replay.requests[0].path == "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse"
    assert replay.requests[0].headers["authorization"].startswith("AWS4-HMAC-SHA256")


def test_bedrock_converse_tool_use_content_only_when_opted_in(
    telemetry: TelemetryCapture,
    replay: ReplayServer,
    recording: Callable[[str], list[Route]],
    instrument,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    replay.set_routes(recording("bedrock/converse_tool_use.json"))
    client = _client(replay)
    instrumentor = instrument()
    client.converse(modelId=CLAUDE, messages=MESSAGES, toolConfig=TOOL_CONFIG)
    without = dict(telemetry.only_span().attributes or {})
    instrumentor.uninstrument()
    telemetry.clear()
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "SPAN_ONLY")
    instrumentor.instrument(**telemetry.kwargs)
    client.converse(
        modelId=CLAUDE, messages=MESSAGES, toolConfig=TOOL_CONFIG, system=[{"text": "You are a radio DJ."}]
    )
    with_content = dict(telemetry.only_span().attributes or {})

    assert not [key for key in without if key.startswith(("gen_ai.input", "gen_ai.output", "gen_ai.tool"))]
    assert without["gen_ai.response.finish_reasons"] == ("tool_use",)
    assert json.loads(str(with_content["gen_ai.output.messages"])) == [
        {
            "role": "assistant",
            "parts": [
                {"type": "text", "content": "I'll look up the most popular song on WZPZ."},
                {
                    "type": "tool_call",
                    "id": "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q",
                    "name": "top_song",
                    "arguments": {"sign": "WZPZ"},
                },
            ],
            "finish_reason": "tool_call",
        }
    ]
    assert json.loads(str(with_content["gen_ai.system_instructions"])) == [
        {"type": "text", "content": "You are a radio DJ."}
    ]
    assert json.loads(str(with_content["gen_ai.tool.definitions"]))[0]["name"] == "top_song"
    assert json.loads(str(with_content["gen_ai.input.messages"])) == [
        {"role": "user", "parts": [{"type": "text", "content": "What is Amazon Bedrock?"}]}
    ]


def test_bedrock_converse_stream_decodes_event_stream_and_reports_usage(
    capture_content: None,
    telemetry: TelemetryCapture,
    replay: ReplayServer,
    recording: Callable[[str], list[Route]],
    instrument,
) -> None:
    instrument()
    replay.set_routes(recording("bedrock/converse_stream.json"))

    started = time.perf_counter()
    response = _client(replay).converse_stream(modelId=CLAUDE, messages=MESSAGES)
    events = list(response["stream"])
    elapsed = time.perf_counter() - started

    text = "".join(
        event["contentBlockDelta"]["delta"]["text"] for event in events if "contentBlockDelta" in event
    )
    assert text == "Bedrock streams tokens as events."
    span = telemetry.only_span()
    attributes = dict(span.attributes or {})
    assert attributes["gen_ai.request.stream"] is True
    assert attributes["gen_ai.response.finish_reasons"] == ("end_turn",)
    assert attributes["gen_ai.usage.input_tokens"] == 21
    assert attributes["gen_ai.usage.output_tokens"] == 6
    assert 0 < float(attributes["gen_ai.response.time_to_first_chunk"]) <= elapsed  # one monotonic clock
    assert json.loads(str(attributes["gen_ai.output.messages"])) == [
        {"role": "assistant", "parts": [{"type": "text", "content": text}], "finish_reason": "stop"}
    ]
    assert replay.requests[0].path.endswith("/converse-stream")


def test_bedrock_converse_stream_tool_use(
    capture_content: None,
    telemetry: TelemetryCapture,
    replay: ReplayServer,
    recording: Callable[[str], list[Route]],
    instrument,
) -> None:
    instrument()
    replay.set_routes(recording("bedrock/converse_stream_tool_use.json"))

    for _event in _client(replay).converse_stream(modelId=CLAUDE, messages=MESSAGES, toolConfig=TOOL_CONFIG)[
        "stream"
    ]:
        pass

    attributes = dict(telemetry.only_span().attributes or {})
    assert json.loads(str(attributes["gen_ai.output.messages"])) == [
        {
            "role": "assistant",
            "parts": [
                {"type": "text", "content": "Let me check."},
                {
                    "type": "tool_call",
                    "id": "tooluse_3kQ0sZsQRgq7pPq1rM1D2w",
                    "name": "top_song",
                    "arguments": {"sign": "WZPZ"},
                },
            ],
            "finish_reason": "tool_call",
        }
    ]
    assert attributes["gen_ai.usage.output_tokens"] == 52


def test_bedrock_converse_stream_cut_short_still_ends_span(
    telemetry: TelemetryCapture, replay: ReplayServer, recording: Callable[[str], list[Route]], instrument
) -> None:
    instrument()
    replay.set_routes(recording("bedrock/converse_stream.json"))

    stream = _client(replay).converse_stream(modelId=CLAUDE, messages=MESSAGES)["stream"]
    for event in stream:
        if "contentBlockDelta" in event:
            break
    assert len(telemetry.spans()) == 1
    stream.close()

    span = telemetry.only_span()
    assert span.status.status_code is StatusCode.UNSET
    assert "gen_ai.usage.output_tokens" not in (span.attributes or {})


def test_bedrock_converse_stream_never_read_ends_span_when_collected(
    telemetry: TelemetryCapture, replay: ReplayServer, recording: Callable[[str], list[Route]], instrument
) -> None:
    instrument()
    replay.set_routes(recording("bedrock/converse_stream.json"))

    response = _client(replay).converse_stream(modelId=CLAUDE, messages=MESSAGES)
    assert telemetry.spans() == ()
    del response  # dropped unread: the wrapper ends the span when it is collected
    gc.collect()

    span = telemetry.only_span()
    assert span.status.status_code is StatusCode.UNSET
    assert "gen_ai.response.time_to_first_chunk" not in (span.attributes or {})


@pytest.mark.parametrize(
    ("recording_name", "model", "body", "expected"),
    [
        (
            "bedrock/invoke_model_anthropic.json",
            CLAUDE,
            {
                "anthropic_version": "bedrock-2023-05-31",
                "max_tokens": 256,
                "temperature": 0.2,
                "messages": [{"role": "user", "content": "Hello"}],
            },
            {
                "gen_ai.operation.name": "chat",
                "gen_ai.request.max_tokens": 256,
                "gen_ai.request.temperature": 0.2,
                "gen_ai.response.id": "msg_bdrk_01JbKq1yZ6eR8Qm5xVj3aT2c",
                "gen_ai.response.model": "claude-3-5-sonnet-20240620",
                "gen_ai.response.finish_reasons": ("end_turn",),
                "gen_ai.usage.input_tokens": 12,
                "gen_ai.usage.output_tokens": 12,
                "gen_ai.usage.cache_read.input_tokens": 0,
                "gen_ai.usage.cache_creation.input_tokens": 0,
            },
        ),
        (
            "bedrock/invoke_model_titan.json",
            "amazon.titan-text-express-v1",
            {"inputText": "What is Bedrock?", "textGenerationConfig": {"maxTokenCount": 100, "topP": 0.9}},
            {
                "gen_ai.operation.name": "text_completion",
                "gen_ai.request.max_tokens": 100,
                "gen_ai.request.top_p": 0.9,
                "gen_ai.response.finish_reasons": ("FINISH",),
                "gen_ai.usage.input_tokens": 5,
                "gen_ai.usage.output_tokens": 11,
            },
        ),
        (
            "bedrock/invoke_model_llama.json",
            "meta.llama3-1-8b-instruct-v1:0",
            {"prompt": "What are llamas?", "max_gen_len": 64, "temperature": 0.3},
            {
                "gen_ai.operation.name": "text_completion",
                "gen_ai.request.max_tokens": 64,
                "gen_ai.request.temperature": 0.3,
                "gen_ai.response.finish_reasons": ("stop",),
                "gen_ai.usage.input_tokens": 18,
                "gen_ai.usage.output_tokens": 10,
            },
        ),
    ],
)
def test_bedrock_invoke_model_reads_family_bodies_and_keeps_body_readable(
    telemetry: TelemetryCapture,
    replay: ReplayServer,
    recording: Callable[[str], list[Route]],
    instrument,
    recording_name: str,
    model: str,
    body: dict[str, Any],
    expected: dict[str, Any],
) -> None:
    instrument()
    routes = recording(recording_name)
    replay.set_routes(routes)

    response = _client(replay).invoke_model(modelId=model, body=json.dumps(body))

    assert json.loads(response["body"].read()) == routes[0].json  # the caller still gets the whole body
    span = telemetry.only_span()
    attributes = dict(span.attributes or {})
    assert span.name == f"{expected['gen_ai.operation.name']} {model}"
    assert {key: attributes.get(key) for key in expected} == expected
    assert attributes["gen_ai.provider.name"] == "aws.bedrock"


def test_bedrock_invoke_model_anthropic_content_when_opted_in(
    capture_content: None,
    telemetry: TelemetryCapture,
    replay: ReplayServer,
    recording: Callable[[str], list[Route]],
    instrument,
) -> None:
    instrument()
    replay.set_routes(recording("bedrock/invoke_model_anthropic.json"))

    _client(replay).invoke_model(
        modelId=CLAUDE,
        body=json.dumps(
            {
                "anthropic_version": "bedrock-2023-05-31",
                "max_tokens": 256,
                "system": "Be friendly.",
                "messages": [{"role": "user", "content": [{"type": "text", "text": "Hello"}]}],
            }
        ),
    )

    attributes = dict(telemetry.only_span().attributes or {})
    assert json.loads(str(attributes["gen_ai.input.messages"])) == [
        {"role": "user", "parts": [{"type": "text", "content": "Hello"}]}
    ]
    assert json.loads(str(attributes["gen_ai.system_instructions"])) == [
        {"type": "text", "content": "Be friendly."}
    ]
    assert json.loads(str(attributes["gen_ai.output.messages"])) == [
        {
            "role": "assistant",
            "parts": [{"type": "text", "content": "Hello! How can I help you today?"}],
            "finish_reason": "stop",
        }
    ]


def test_bedrock_error_type_is_aws_error_code(
    telemetry: TelemetryCapture, replay: ReplayServer, recording: Callable[[str], list[Route]], instrument
) -> None:
    instrument()
    client = _client(replay)
    replay.set_routes(recording("bedrock/error_throttling.json"))
    with pytest.raises(ClientError) as raised:
        client.converse(modelId=CLAUDE, messages=MESSAGES)
    replay.set_routes(recording("bedrock/error_validation.json"))
    with pytest.raises(ClientError):
        client.converse_stream(modelId=CLAUDE, messages=MESSAGES)

    assert raised.value.response["Error"]["Code"] == "ThrottlingException"
    throttled, invalid = telemetry.spans()
    assert throttled.status.status_code is StatusCode.ERROR
    assert (throttled.attributes or {})["error.type"] == "ThrottlingException"
    assert (invalid.attributes or {})["error.type"] == "ValidationException"
    (point,) = [
        point
        for point in telemetry.histogram_points("gen_ai.client.operation.duration")
        if dict(point.attributes).get("error.type") == "ThrottlingException"
    ]
    assert point.count == 1


def test_bedrock_other_services_pass_through(
    telemetry: TelemetryCapture, replay: ReplayServer, recording: Callable[[str], list[Route]], instrument
) -> None:
    instrument()
    replay.set_routes([Route("GET", "/foundation-models", json={"modelSummaries": []})])

    assert _client(replay, "bedrock").list_foundation_models()["modelSummaries"] == []
    assert telemetry.spans() == ()


def test_bedrock_uninstrument_restores_original(
    telemetry: TelemetryCapture, replay: ReplayServer, recording: Callable[[str], list[Route]], instrument
) -> None:
    original = BaseClient._make_api_call
    instrument()
    assert hasattr(BaseClient._make_api_call, "__wrapped__")
    BedrockInstrumentor().uninstrument()

    assert BaseClient._make_api_call is original
    replay.set_routes(recording("bedrock/converse.json"))
    _client(replay).converse(modelId=CLAUDE, messages=MESSAGES)
    assert telemetry.spans() == ()
