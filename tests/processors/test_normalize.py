"""The normalize processor's rules one by one, and the log-event path (the corpus tests cover whole spans)."""

from __future__ import annotations

import copy
import json
import logging
from importlib.metadata import entry_points

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from pydantic import ValidationError

from llm_observer.kernel.batch import Event, SpanBatch
from llm_observer.kernel.component import CreateContext
from llm_observer.kernel.telemetry import Telemetry
from llm_observer.processors.logjoin import content_events_by_span
from llm_observer.processors.normalize import NormalizeConfig, factory, normalize_batch, normalize_rows
from tests.support import add_span

TRACE = bytes(range(1, 17))
SPAN = bytes(range(1, 9))


def _batch(
    *spans: tuple[str, dict], scope: str = "app", events: list[list[Event]] | None = None
) -> SpanBatch:
    batch = SpanBatch()
    resource = {"service.name": "svc"}
    for i, (name, attrs) in enumerate(spans):
        add_span(
            batch,
            dict(attrs),
            resource=resource,
            trace_id=TRACE,
            span_id=bytes([i + 1]) * 8,
            name=name,
            start=1,
            end=2,
            scope_name=scope,
            events=events[i] if events else None,
        )
    return batch


def _one(attrs: dict, name: str = "span", **kwargs) -> dict:
    return normalize_batch(_batch((name, attrs), **kwargs)).attributes[0]


def test_normalize_factory_is_registered_and_creates_a_processor(tmp_path):
    (ep,) = [ep for ep in entry_points(group="llm_observer.processors") if ep.name == "normalize"]
    assert ep.load() is factory
    ctx = CreateContext("normalize", tmp_path, Telemetry(), logging.getLogger("test"))
    processor = factory.create(ctx, NormalizeConfig(keep_original=False))
    batch = processor(_batch(("openai.chat", {"gen_ai.system": "OpenAI", "llm.request.type": "chat"})))
    assert batch.attributes[0] == {"gen_ai.provider.name": "openai", "gen_ai.operation.name": "chat"}


def test_normalize_config_rejects_unknown_keys():
    with pytest.raises(ValidationError):
        NormalizeConfig.model_validate({"keep_originals": True})


@pytest.mark.parametrize(
    ("system", "provider"),
    [
        ("az.ai.openai", "azure.ai.openai"),
        ("az.ai.inference", "azure.ai.inference"),
        ("gemini", "gcp.gemini"),
        ("vertex_ai", "gcp.vertex_ai"),
        ("VertexAI", "gcp.vertex_ai"),
        ("OpenAI", "openai"),
        ("Anthropic", "anthropic"),
        ("MistralAI", "mistral_ai"),
        ("xai", "x_ai"),
        ("ibm.watson.ai", "ibm.watsonx.ai"),
        ("vLLM", "vllm"),
        ("my-own-gateway", "my-own-gateway"),
    ],
)
def test_normalize_provider_aliases(system, provider):
    assert _one({"gen_ai.system": system})["gen_ai.provider.name"] == provider


def test_normalize_current_provider_wins_over_system():
    attrs = _one({"gen_ai.provider.name": "azure.ai.openai", "gen_ai.system": "openai"})
    assert attrs["gen_ai.provider.name"] == "azure.ai.openai"


@pytest.mark.parametrize(
    ("attrs", "name", "operation"),
    [
        (
            {"llm.request.type": "completion", "gen_ai.system": "OpenAI"},
            "openai.completion",
            "text_completion",
        ),
        ({"llm.request.type": "embedding"}, "custom", "embeddings"),
        ({"llm.request.type": "rerank"}, "cohere.rerank", "rerank"),
        ({"openinference.span.kind": "RETRIEVER"}, "retrieve", "retrieval"),
        ({"openinference.span.kind": "AGENT"}, "agent", "invoke_agent"),
        ({"openinference.span.kind": "TOOL"}, "get_weather", "execute_tool"),
        ({"openinference.span.kind": "LLM"}, "Completion", "text_completion"),
        ({"traceloop.span.kind": "workflow", "gen_ai.system": "x"}, "my_flow.workflow", "invoke_workflow"),
        ({"gen_ai.system": "openai"}, "embeddings text-embedding-3-small", "embeddings"),
        ({"gen_ai.operation.name": "embedding"}, "x", "embeddings"),
        ({"gen_ai.operation.name": "agent"}, "x", "invoke_agent"),
    ],
)
def test_normalize_operation(attrs, name, operation):
    assert _one(attrs, name)["gen_ai.operation.name"] == operation


def test_normalize_chain_span_gets_no_invented_operation():
    attrs = _one({"openinference.span.kind": "CHAIN", "input.value": "hi", "llm.system": "openai"})
    assert "gen_ai.operation.name" not in attrs
    assert "gen_ai.input.messages" not in attrs  # input.value is a message only on LLM spans


def test_normalize_non_genai_span_untouched_even_with_session_id():
    attrs = {"http.request.method": "GET", "session.id": "s-1", "input.value": "x"}
    assert _one(attrs) == attrs


def test_normalize_anthropic_fold_for_openlit_once():
    raw = {
        "gen_ai.provider.name": "anthropic",
        "gen_ai.usage.input_tokens": 100,
        "gen_ai.usage.cache_read.input_tokens": 50,
        "gen_ai.usage.cache_creation.input_tokens": 10,
    }
    batch = normalize_batch(_batch(("chat claude", raw), scope="openlit.instrumentation.anthropic"))
    assert batch.attributes[0]["gen_ai.usage.input_tokens"] == 160
    assert batch.attributes[0]["llm_observer.usage.uncached_input_tokens"] == 100
    normalize_batch(batch)
    normalize_batch(batch, keep_original=False)
    assert batch.attributes[0]["gen_ai.usage.input_tokens"] == 160


def test_normalize_anthropic_inclusive_counts_are_not_folded():
    attrs = _one(
        {
            "gen_ai.system": "anthropic",
            "gen_ai.usage.prompt_tokens": 1212,
            "gen_ai.usage.cache_read_input_tokens": 1000,
            "gen_ai.usage.cache_creation_input_tokens": 200,
        }
    )
    assert attrs["gen_ai.usage.input_tokens"] == 1212
    assert "llm_observer.usage.uncached_input_tokens" not in attrs


def test_normalize_non_anthropic_cache_is_never_folded():
    attrs = _one(
        {
            "gen_ai.system": "openai",
            "gen_ai.usage.input_tokens": 10,
            "gen_ai.usage.cache_read.input_tokens": 900,
        }
    )
    assert attrs["gen_ai.usage.input_tokens"] == 10


def test_normalize_token_spellings_and_types():
    attrs = _one(
        {
            "llm.system": "openai",
            "llm.token_count.prompt": "120",
            "llm.token_count.completion": 30.0,
            "llm.token_count.prompt_details.cache_read": 100,
            "llm.token_count.prompt_details.cache_write": 5,
            "llm.token_count.completion_details.reasoning": 7,
        }
    )
    assert attrs["gen_ai.usage.input_tokens"] == 120
    assert attrs["gen_ai.usage.output_tokens"] == 30
    assert attrs["gen_ai.usage.cache_read.input_tokens"] == 100
    assert attrs["gen_ai.usage.cache_creation.input_tokens"] == 5
    assert attrs["gen_ai.usage.reasoning.output_tokens"] == 7
    attrs = _one(
        {
            "gen_ai.system": "openai",
            "llm.usage.reasoning_tokens": 3,
            "gen_ai.usage.cache_write.input_tokens": 4,
        }
    )
    assert attrs["gen_ai.usage.reasoning.output_tokens"] == 3
    assert attrs["gen_ai.usage.cache_creation.input_tokens"] == 4


def test_normalize_request_parameters_and_stream():
    attrs = _one(
        {
            "gen_ai.system": "openai",
            "llm.top_k": 5,
            "llm.frequency_penalty": 0.5,
            "llm.chat.stop_sequences": ["\n"],
            "llm.is_streaming": True,
        }
    )
    assert attrs["gen_ai.request.top_k"] == 5
    assert attrs["gen_ai.request.frequency_penalty"] == 0.5
    assert attrs["gen_ai.request.stop_sequences"] == ["\n"]
    assert attrs["gen_ai.request.stream"] is True
    not_streaming = _one(
        {"gen_ai.system": "openai", "llm.is_streaming": False, "gen_ai.request.stream": False}
    )
    assert "gen_ai.request.stream" not in not_streaming


def test_normalize_openinference_invocation_parameters():
    attrs = _one(
        {
            "llm.system": "openai",
            "llm.model_name": "gpt-4o-2024-08-06",
            "llm.invocation_parameters": json.dumps(
                {
                    "model": "gpt-4o",
                    "temperature": 0.1,
                    "top_p": 0.9,
                    "max_tokens": 50,
                    "seed": 3,
                    "n": 2,
                    "stream": True,
                }
            ),
        }
    )
    assert attrs["gen_ai.request.model"] == "gpt-4o"
    assert attrs["gen_ai.response.model"] == "gpt-4o-2024-08-06"
    assert attrs["gen_ai.request.temperature"] == 0.1
    assert attrs["gen_ai.request.top_p"] == 0.9
    assert attrs["gen_ai.request.max_tokens"] == 50
    assert attrs["gen_ai.request.seed"] == 3
    assert attrs["gen_ai.request.choice.count"] == 2
    assert attrs["gen_ai.request.stream"] is True


def test_normalize_invalid_invocation_parameters_are_ignored():
    attrs = _one({"llm.system": "openai", "llm.model_name": "m", "llm.invocation_parameters": "{not json"})
    assert attrs["gen_ai.request.model"] == "m"


def test_normalize_user_and_session():
    attrs = _one(
        {
            "gen_ai.system": "openai",
            "traceloop.association.properties.user_id": "u1",
            "traceloop.association.properties.session_id": "s1",
        }
    )
    assert attrs["user.id"] == "u1"
    assert attrs["gen_ai.conversation.id"] == "s1"
    attrs = _one({"llm.system": "openai", "user.id": "u2", "session.id": "s2", "llm.user": "other"})
    assert attrs["user.id"] == "u2"
    assert attrs["gen_ai.conversation.id"] == "s2"


def test_normalize_openllmetry_multimodal_content_and_function_call():
    content = json.dumps(
        [
            {"type": "text", "text": "What is this?"},
            {"type": "image_url", "image_url": {"url": "https://x/cat.png"}},
        ]
    )
    attrs = _one(
        {
            "gen_ai.system": "OpenAI",
            "gen_ai.prompt.0.role": "user",
            "gen_ai.prompt.0.content": content,
            "gen_ai.completion.0.role": "assistant",
            "gen_ai.completion.0.function_call.name": "lookup",
            "gen_ai.completion.0.function_call.arguments": '{"q": 1}',
            "gen_ai.completion.0.finish_reason": "function_call",
        }
    )
    assert json.loads(attrs["gen_ai.input.messages"]) == [
        {
            "role": "user",
            "parts": [
                {"type": "text", "content": "What is this?"},
                {"type": "uri", "modality": "image", "uri": "https://x/cat.png"},
            ],
        }
    ]
    assert json.loads(attrs["gen_ai.output.messages"]) == [
        {
            "role": "assistant",
            "parts": [{"type": "tool_call", "id": None, "name": "lookup", "arguments": {"q": 1}}],
            "finish_reason": "function_call",
        }
    ]
    assert attrs["gen_ai.response.finish_reasons"] == ["function_call"]


def test_normalize_openinference_input_value_with_anthropic_system():
    request = {"model": "claude", "system": "Be terse.", "messages": [{"role": "user", "content": "Hi"}]}
    attrs = _one(
        {"openinference.span.kind": "LLM", "llm.system": "anthropic", "input.value": json.dumps(request)}
    )
    assert json.loads(attrs["gen_ai.system_instructions"]) == [{"type": "text", "content": "Be terse."}]
    assert json.loads(attrs["gen_ai.input.messages"]) == [
        {"role": "user", "parts": [{"type": "text", "content": "Hi"}]}
    ]


def test_normalize_keep_original_false_removes_mapped_legacy_keys_only():
    raw = {
        "gen_ai.system": "OpenAI",
        "llm.request.type": "chat",
        "gen_ai.usage.prompt_tokens": 5,
        "gen_ai.prompt.0.role": "user",
        "gen_ai.prompt.0.content": "hi",
        "llm.is_streaming": False,
        "gen_ai.openai.api_base": "https://api.openai.com/v1",
    }
    attrs = normalize_batch(_batch(("openai.chat", raw)), keep_original=False).attributes[0]
    assert attrs == {
        "gen_ai.provider.name": "openai",
        "gen_ai.operation.name": "chat",
        "gen_ai.usage.input_tokens": 5,
        "gen_ai.input.messages": json.dumps(
            [{"role": "user", "parts": [{"type": "text", "content": "hi"}]}], separators=(",", ":")
        ),
        "gen_ai.openai.api_base": "https://api.openai.com/v1",
    }


def test_normalize_span_events_v128_become_messages():
    events = [
        Event(1, "gen_ai.user.message", {"gen_ai.system": "openai", "content": "Hello"}),
        Event(2, "gen_ai.tool.message", {"content": "42", "id": "call_1"}),
        Event(3, "gen_ai.choice", {"index": 0, "finish_reason": "stop", "message": {"content": "Hi!"}}),
        Event(4, "exception", {"exception.type": "ValueError"}),
    ]
    batch = normalize_batch(_batch(("chat m", {"http.request.method": "POST"}), events=[events]))
    attrs = batch.attributes[0]
    assert json.loads(attrs["gen_ai.input.messages"]) == [
        {"role": "user", "parts": [{"type": "text", "content": "Hello"}]},
        {"role": "tool", "parts": [{"type": "tool_call_response", "id": "call_1", "response": "42"}]},
    ]
    assert json.loads(attrs["gen_ai.output.messages"]) == [
        {"role": "assistant", "parts": [{"type": "text", "content": "Hi!"}], "finish_reason": "stop"}
    ]
    assert batch.events[0] == events  # events are kept


def _log_request() -> ExportLogsServiceRequest:
    request = ExportLogsServiceRequest()
    scope_logs = request.resource_logs.add().scope_logs.add()
    # newer SDKs: the LogRecord event_name field; body is an AnyValue map
    record = scope_logs.log_records.add(
        trace_id=TRACE, span_id=SPAN, time_unix_nano=10, event_name="gen_ai.user.message"
    )
    kv = record.body.kvlist_value.values.add(key="content")
    kv.value.string_value = "Bonjour"
    record.attributes.add(key="gen_ai.system").value.string_value = "openai"
    # older SDKs: the event.name attribute
    record = scope_logs.log_records.add(trace_id=TRACE, span_id=SPAN, time_unix_nano=11)
    record.attributes.add(key="event.name").value.string_value = "gen_ai.choice"
    body = record.body.kvlist_value
    body.values.add(key="finish_reason").value.string_value = "stop"
    message = body.values.add(key="message").value.kvlist_value
    message.values.add(key="content").value.string_value = "Salut"
    # not GenAI content, or not tied to a span: left out
    scope_logs.log_records.add(trace_id=TRACE, span_id=SPAN, event_name="app.audit").body.string_value = "x"
    scope_logs.log_records.add(trace_id=TRACE, event_name="gen_ai.user.message").body.string_value = "orphan"
    # OpenLIT's content event with a plain attribute
    record = scope_logs.log_records.add(
        trace_id=TRACE, span_id=b"\x09" * 8, observed_time_unix_nano=12, event_name="gen_ai.content.prompt"
    )
    record.attributes.add(key="gen_ai.prompt").value.string_value = "user: hi"
    return request


def test_normalize_logs_content_events_by_span():
    events = content_events_by_span(_log_request())
    assert set(events) == {(TRACE, SPAN), (TRACE, b"\x09" * 8)}
    first, second = events[(TRACE, SPAN)]
    assert first.name == "gen_ai.user.message" and first.time_unix_nano == 10
    assert first.attributes["gen_ai.system"] == "openai"
    assert json.loads(first.attributes["gen_ai.event.content"]) == {"content": "Bonjour"}
    assert second.name == "gen_ai.choice" and "event.name" not in second.attributes
    (openlit,) = events[(TRACE, b"\x09" * 8)]
    assert openlit.time_unix_nano == 12 and openlit.attributes == {"gen_ai.prompt": "user: hi"}


def test_normalize_logs_events_become_messages_on_their_span():
    events = content_events_by_span(_log_request())
    batch = _batch(("chat gpt-4o", {"gen_ai.system": "openai", "gen_ai.operation.name": "chat"}))
    batch.span_id[0] = SPAN
    batch.events[0].extend(events[(TRACE, SPAN)])
    attrs = normalize_batch(batch).attributes[0]
    assert json.loads(attrs["gen_ai.input.messages"]) == [
        {"role": "user", "parts": [{"type": "text", "content": "Bonjour"}]}
    ]
    assert json.loads(attrs["gen_ai.output.messages"]) == [
        {"role": "assistant", "parts": [{"type": "text", "content": "Salut"}], "finish_reason": "stop"}
    ]
    assert attrs["gen_ai.response.finish_reasons"] == ["stop"]
    snapshot = copy.deepcopy(attrs)
    assert normalize_batch(batch).attributes[0] == snapshot


@pytest.mark.parametrize(
    "attrs",
    [
        {
            "gen_ai.system": "anthropic",
            "gen_ai.usage.input_tokens": "n/a",
            "gen_ai.usage.cache_read.input_tokens": "x",
        },
        {"gen_ai.system": 7, "gen_ai.operation.name": 3, "gen_ai.request.model": ["a"]},
        {"llm.system": "openai", "llm.invocation_parameters": "[1, 2]", "llm.model_name": ""},
        {"gen_ai.system": "openai", "gen_ai.prompt.0.content": b"\x00\xff", "gen_ai.prompt.x.role": "user"},
        {
            "gen_ai.system": "openai",
            "gen_ai.prompt.0.content": "[not json",
            "gen_ai.completion.0.tool_calls.0.name": "f",
        },
        {
            "openinference.span.kind": "LLM",
            "llm.input_messages.0.message.content": {"nested": [1, 2]},
            "llm.output_messages.0.message.tool_calls.0.tool_call.function.arguments": "{bad",
            "input.value": "[]",
            "output.value": '{"choices": [1, {"message": "x"}]}',
        },
        {
            "gen_ai.system": "openai",
            "gen_ai.prompt": '[{"role": "user", "content": [{"type": "image_url"}]}]',
        },
        {"gen_ai.system": "openai", "gen_ai.completion": "[1, 2, 3]", "llm.is_streaming": "TRUE"},
    ],
)
def test_normalize_malformed_attributes_do_not_fail(attrs):
    batch = _batch(
        ("chat x", attrs), events=[[Event(1, "gen_ai.choice", {"message": "not a map", "index": "0"})]]
    )
    assert normalize_rows(batch) == 0
    snapshot = copy.deepcopy(batch.attributes)
    assert normalize_rows(batch) == 0
    assert batch.attributes == snapshot


def test_normalize_convert_messages_false_keeps_legacy_content():
    raw = {
        "gen_ai.system": "OpenAI",
        "gen_ai.usage.prompt_tokens": 5,
        "gen_ai.prompt.0.role": "user",
        "gen_ai.prompt.0.content": "hi",
        "gen_ai.completion": "hello",
    }
    attrs = normalize_batch(
        _batch(("openai.chat", raw)), keep_original=False, convert_messages=False
    ).attributes[0]
    assert attrs == {
        "gen_ai.provider.name": "openai",
        "gen_ai.operation.name": "chat",
        "gen_ai.usage.input_tokens": 5,
        "gen_ai.prompt.0.role": "user",
        "gen_ai.prompt.0.content": "hi",
        "gen_ai.completion": "hello",
    }


def test_normalize_keep_original_false_keeps_the_prompt_version():
    raw = {
        "gen_ai.system": "OpenAI",
        "gen_ai.prompt.0.role": "user",
        "gen_ai.prompt.0.content": "hi",
        "gen_ai.prompt.name": "greeting",
        "gen_ai.prompt.version": "2",
    }
    attrs = normalize_batch(_batch(("openai.chat", raw)), keep_original=False).attributes[0]
    assert "gen_ai.prompt.0.content" not in attrs
    assert attrs["gen_ai.prompt.name"] == "greeting"
    assert attrs["gen_ai.prompt.version"] == "2"
