"""Everything the OpenAI instrumentation emits conforms to the semantic-conventions release it targets
(``llm_observer.semconv.registry``, pinned to that release's registry): every span, event and metric
attribute is a registry attribute of the registry type with a well-known or declared custom value, every
metric has the registry's name, instrument and unit and only its attributes, and the recommended
``openai.api.type`` is set. The calls cover chat (plain, tools, structured output, streamed), the Responses
API (plain, streamed), legacy completions, embeddings and errors, with content captured on spans and as
events."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import openai
import pytest
from opentelemetry.sdk.metrics.export import Histogram

from llm_observer.instrumentation.openai import OpenAIInstrumentor
from llm_observer.instrumentation.testing import ReplayServer, Route, TelemetryCapture
from llm_observer.semconv import registry

Recording = Callable[[str], list[Route]]

README = Path(__file__).resolve().parents[2] / "README.md"
MESSAGES = [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "Capital of France?"}]
TOOLS = [
    {
        "type": "function",
        "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {}}},
    }
]

_PYTHON_TYPES: Mapping[str, Callable[[Any], bool]] = {
    "string": lambda value: isinstance(value, str),
    "int": lambda value: isinstance(value, int) and not isinstance(value, bool),
    "double": lambda value: isinstance(value, float),
    "boolean": lambda value: isinstance(value, bool),
    "string[]": lambda value: (
        isinstance(value, Sequence)
        and not isinstance(value, str)
        and all(isinstance(item, str) for item in value)
    ),
    "any": lambda value: True,
}


def violations(attributes: Mapping[str, Any], allowed: frozenset[str] | None = None) -> list[str]:
    """What in ``attributes`` the pinned registry does not allow (empty: conformant)."""
    found = []
    for name, value in attributes.items():
        spec = registry.ATTRIBUTES.get(name)
        if spec is None:
            found.append(f"{name}: not in semconv v{registry.SEMCONV_VERSION}")
            continue
        if allowed is not None and name not in allowed:
            found.append(f"{name}: not an attribute of this signal")
        if not _PYTHON_TYPES[spec.type](value):
            found.append(f"{name}: {value!r} is not of type {spec.type}")
        if spec.members is not None and value not in spec.members:
            custom = registry.CUSTOM_VALUES.get(name, frozenset())
            if custom is not None and value not in custom:
                found.append(f"{name}: {value!r} is neither a well-known value nor a declared custom one")
    return found


@pytest.fixture
def emitted(
    monkeypatch: pytest.MonkeyPatch, telemetry: TelemetryCapture, replay: ReplayServer, recording: Recording
) -> Iterator[TelemetryCapture]:
    """Telemetry of one call of each kind the instrumentation reads."""
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "SPAN_AND_EVENT")
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(**telemetry.kwargs, providers={"127.0.0.1": "openai"})
    client = openai.OpenAI(base_url=replay.url + "/v1", api_key="k", max_retries=0)
    numbers = {"temperature": 1, "top_p": 1, "presence_penalty": 0, "frequency_penalty": 0, "seed": 3}

    def call(recorded: str, make: Callable[[], Any]) -> None:
        replay.set_routes(recording(recorded))
        try:
            result = make()
            if hasattr(result, "__next__"):
                list(result)
        except openai.APIError:
            pass

    try:
        call("openai/chat.json", lambda: client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES,
             max_tokens=50, stop=["\n"], n=2, service_tier="flex", **numbers))  # fmt: skip
        call("openai/chat_tool_call.json", lambda: client.chat.completions.create(model="gpt-4o", messages=MESSAGES,
             tools=TOOLS, response_format={"type": "json_object"}))  # fmt: skip
        call("openai/chat_stream.json", lambda: client.chat.completions.create(model="gpt-4o-mini",
             messages=MESSAGES, stream=True, **numbers))  # fmt: skip
        call("openai/chat_stream_tool_call.json", lambda: client.chat.completions.create(model="gpt-4o",
             messages=MESSAGES, tools=TOOLS, stream=True))  # fmt: skip
        call("openai/responses.json", lambda: client.responses.create(model="gpt-4o-mini", input="Capital?",
             instructions="Be terse.", max_output_tokens=50, conversation="conv_1"))  # fmt: skip
        call("openai/responses_stream.json", lambda: client.responses.create(model="gpt-4o-mini",
             input="Capital?", stream=True))  # fmt: skip
        call("openai/completions.json", lambda: client.completions.create(model="gpt-3.5-turbo-instruct",
             prompt="Capital?", max_tokens=5))  # fmt: skip
        call("openai/embeddings.json", lambda: client.embeddings.create(model="text-embedding-3-small",
             input="Paris", encoding_format="float", dimensions=4))  # fmt: skip
        call("openai/error_429.json", lambda: client.chat.completions.create(model="gpt-4o-mini",
             messages=MESSAGES))  # fmt: skip
        call("openai/error_500.json", lambda: client.chat.completions.create(model="gpt-4o-mini",
             messages=MESSAGES))  # fmt: skip
    finally:
        instrumentor.uninstrument()
    yield telemetry


def test_semconv_conformance_openai_span_attributes(emitted: TelemetryCapture) -> None:
    spans = emitted.spans()
    assert len(spans) == 10
    found = [f"{span.name}: {problem}" for span in spans for problem in violations(dict(span.attributes))]
    assert found == []
    assert {span.instrumentation_scope.schema_url for span in spans} == {registry.SCHEMA_URL}
    # Every kind of attribute the calls above can give was seen, so the check covered them.
    seen = {name for span in spans for name in span.attributes}
    assert {"gen_ai.request.stream", "gen_ai.response.time_to_first_chunk", "gen_ai.request.temperature",
            "gen_ai.output.type", "gen_ai.conversation.id", "gen_ai.embeddings.dimension.count",
            "openai.request.service_tier", "error.type", "gen_ai.tool.definitions"} <= seen  # fmt: skip


def test_semconv_conformance_openai_api_type_set(emitted: TelemetryCapture) -> None:
    api_types = [(span.attributes["gen_ai.operation.name"], span.attributes.get("openai.api.type"))
                 for span in emitted.spans()]  # fmt: skip
    assert sorted(set(api_types), key=str) == sorted(
        {
            ("chat", "chat_completions"),
            ("chat", "responses"),
            ("text_completion", None),
            ("embeddings", None),
        },
        key=str,
    )


def test_semconv_conformance_openai_metrics(emitted: TelemetryCapture) -> None:
    data = emitted.metric_reader.get_metrics_data()
    assert data is not None
    metrics = [
        (scope_metrics.scope, metric)
        for resource_metrics in data.resource_metrics
        for scope_metrics in resource_metrics.scope_metrics
        for metric in scope_metrics.metrics
    ]
    assert {metric.name for _, metric in metrics} == set(registry.METRICS)
    for scope, metric in metrics:
        spec = registry.METRICS[metric.name]
        assert scope.schema_url == registry.SCHEMA_URL
        assert metric.unit == spec.unit
        assert spec.instrument == "histogram" and isinstance(metric.data, Histogram)
        for point in metric.data.data_points:
            assert violations(dict(point.attributes or {}), spec.attributes) == [], metric.name


def test_semconv_conformance_openai_content_events(emitted: TelemetryCapture) -> None:
    records = emitted.log_records()
    assert len(records) == 10
    for record in records:
        assert record.event_name in registry.EVENTS
        assert violations(dict(record.attributes), registry.EVENTS[record.event_name]) == []


def test_semconv_conformance_checker_catches_violations() -> None:
    assert violations({"gen_ai.request.temperature": 1}) == [
        "gen_ai.request.temperature: 1 is not of type double"
    ]
    assert violations({"gen_ai.usage.prompt_tokens": 3}) == [
        f"gen_ai.usage.prompt_tokens: not in semconv v{registry.SEMCONV_VERSION}"
    ]
    assert violations({"openai.api.type": "assistants"}) == [
        "openai.api.type: 'assistants' is neither a well-known value nor a declared custom one"
    ]
    assert violations({"gen_ai.provider.name": "vllm", "error.type": "rate_limit_exceeded"}) == []
    assert violations({"gen_ai.token.type": "input"}, frozenset({"gen_ai.operation.name"})) == [
        "gen_ai.token.type: not an attribute of this signal"
    ]


def test_semconv_conformance_readme_names_the_targeted_version() -> None:
    text = README.read_text()
    section = text[text.index("## Instrumenting applications") :]
    section = section[: section.index("\n## ", 1)]
    major_minor = ".".join(registry.SEMCONV_VERSION.split(".")[:2])
    assert re.search(rf"semantic conventions v{re.escape(major_minor)}\b", section)
