"""Capture real spans (and GenAI log events) from a third-party instrumentation package.

Run with the interpreter of a venv that holds the scheme's packages (never the project's venv):

    /tmp/cv/oi/bin/python tests/processors/corpus/_capture/capture.py openinference OUT_DIR

Each scenario drives the real OpenAI / Anthropic SDK against ``fake_provider`` with the instrumentation
active, collects what the SDK's in-memory exporters got, and writes
``OUT_DIR/<scheme>__<scenario>.input.json`` holding ``{"traces": <ExportTraceServiceRequest JSON, hex ids>,
"logs": <ExportLogsServiceRequest JSON> | null, "captured_with": {package: version}}``. The expected results beside them are written by hand from the
scenario's ground truth (the fake provider's responses), never from the normaliser's output.
"""

from __future__ import annotations

import base64
import importlib.metadata
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import contextlib

import fake_provider

SCHEMES: dict[str, dict[str, Any]] = {
    "openllmetry": {
        "env": {"TRACELOOP_TRACE_CONTENT": "true"},
        "instrumentors": [
            ("opentelemetry.instrumentation.openai", "OpenAIInstrumentor"),
            ("opentelemetry.instrumentation.anthropic", "AnthropicInstrumentor"),
        ],
        "packages": ["opentelemetry-instrumentation-openai", "opentelemetry-instrumentation-anthropic"],
    },
    "openinference": {
        "env": {},
        "instrumentors": [
            ("openinference.instrumentation.openai", "OpenAIInstrumentor"),
            ("openinference.instrumentation.anthropic", "AnthropicInstrumentor"),
        ],
        "packages": ["openinference-instrumentation-openai", "openinference-instrumentation-anthropic"],
    },
    "otel_events": {
        "env": {"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "true"},
        "instrumentors": [("opentelemetry.instrumentation.openai_v2", "OpenAIInstrumentor")],
        "packages": ["opentelemetry-instrumentation-openai-v2"],
    },
    "otel_latest": {
        "env": {
            "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "SPAN_ONLY",
            "OTEL_SEMCONV_STABILITY_OPT_IN": "gen_ai_latest_experimental",
        },
        "instrumentors": [("opentelemetry.instrumentation.openai_v2", "OpenAIInstrumentor")],
        "packages": ["opentelemetry-instrumentation-openai-v2"],
    },
    "otel_latest_events": {
        "env": {
            "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "EVENT_ONLY",
            "OTEL_SEMCONV_STABILITY_OPT_IN": "gen_ai_latest_experimental",
        },
        "instrumentors": [("opentelemetry.instrumentation.openai_v2", "OpenAIInstrumentor")],
        "packages": ["opentelemetry-instrumentation-openai-v2"],
    },
    "openlit": {"env": {}, "instrumentors": [], "packages": ["openlit"]},
}

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
SYSTEM = "You are a weather assistant."
USER = "What is the weather in Paris?"


def scenario_openai_chat_tool_call(base: str) -> None:
    import openai

    client = openai.OpenAI(api_key="sk-corpus", base_url=base + "/v1")
    client.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": USER}],
        tools=[WEATHER_TOOL],
        temperature=0.2,
        max_tokens=256,
    )


def scenario_openai_chat_tool_result(base: str) -> None:
    import openai

    client = openai.OpenAI(api_key="sk-corpus", base_url=base + "/v1")
    client.chat.completions.create(
        model="gpt-4o",
        messages=[
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": USER},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_weather_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_weather_1", "content": '{"temp_c": 18, "sky": "sunny"}'},
        ],
        tools=[WEATHER_TOOL],
    )


def scenario_openai_chat_stream(base: str) -> None:
    import openai

    client = openai.OpenAI(api_key="sk-corpus", base_url=base + "/v1")
    stream = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "Say hello."}],
        stream=True,
        stream_options={"include_usage": True},
    )
    for _ in stream:
        pass


def scenario_openai_reasoning(base: str) -> None:
    import openai

    client = openai.OpenAI(api_key="sk-corpus", base_url=base + "/v1")
    client.chat.completions.create(
        model="o3-mini", messages=[{"role": "user", "content": "What is 17 * 23?"}], seed=7
    )


def scenario_openai_embeddings(base: str) -> None:
    import openai

    client = openai.OpenAI(api_key="sk-corpus", base_url=base + "/v1")
    client.embeddings.create(model="text-embedding-3-small", input="The quick brown fox")


def scenario_anthropic_cache(base: str) -> None:
    import anthropic

    client = anthropic.Anthropic(api_key="sk-ant-corpus", base_url=base)
    client.messages.create(
        model="claude-3-5-sonnet-20241022",
        max_tokens=100,
        system="You are a geography tutor.",
        messages=[{"role": "user", "content": "What is the capital of France?"}],
    )


SCENARIOS: dict[str, Callable[[str], None]] = {
    name.removeprefix("scenario_"): fn for name, fn in globals().items() if name.startswith("scenario_")
}


def _hex_ids(node: Any) -> Any:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("traceId", "spanId", "parentSpanId") and isinstance(value, str):
                node[key] = base64.b64decode(value).hex()
            else:
                _hex_ids(value)
    elif isinstance(node, list):
        for item in node:
            _hex_ids(item)
    return node


def main() -> None:
    scheme, out_dir = sys.argv[1], Path(sys.argv[2])
    only = set(sys.argv[3:])
    config = SCHEMES[scheme]
    os.environ.update(config["env"])

    from google.protobuf.json_format import MessageToDict
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import InMemoryLogExporter, SimpleLogRecordProcessor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    resource = Resource.create({"service.name": f"corpus-{scheme}"})
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    trace.set_tracer_provider(tracer_provider)
    logs = InMemoryLogExporter()
    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(logs))
    from opentelemetry import _logs

    _logs.set_logger_provider(logger_provider)
    try:
        from opentelemetry import _events
        from opentelemetry.sdk._events import EventLoggerProvider

        _events.set_event_logger_provider(EventLoggerProvider(logger_provider))
    except ImportError:
        pass

    if scheme == "openlit":
        import inspect

        import openlit

        content_flag = (
            "capture_message_content"
            if "capture_message_content" in inspect.signature(openlit.init).parameters
            else "trace_content"
        )
        openlit.init(disable_metrics=True, application_name="corpus", **{content_flag: True})
    for module, cls in config["instrumentors"]:
        getattr(__import__(module, fromlist=[cls]), cls)().instrument(
            tracer_provider=tracer_provider, logger_provider=logger_provider
        )

    server, base = fake_provider.serve()
    versions = {}
    for package in [*config["packages"], "openai", "anthropic"]:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[package] = importlib.metadata.version(package)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, run in SCENARIOS.items():
        if only and name not in only:
            continue
        if name.startswith("anthropic") and "anthropic" not in versions:
            continue
        spans.clear()
        logs.clear()
        try:
            run(base)
        except Exception as exc:  # a scenario the package cannot instrument is skipped, and said so
            print(f"{scheme} {name}: {type(exc).__name__}: {exc}")
            continue
        finished = spans.get_finished_spans()
        llm_spans = [s for s in finished if s.attributes]
        if not llm_spans:
            print(f"{scheme} {name}: no span")
            continue
        traces = _hex_ids(MessageToDict(encode_spans(llm_spans)))
        records = logs.get_finished_logs()
        log_json = _hex_ids(MessageToDict(encode_logs(records))) if records else None
        case = {"captured_with": versions, "traces": traces, "logs": log_json}
        path = out_dir / f"{scheme}__{name}.input.json"
        path.write_text(json.dumps(case, indent=1, sort_keys=False) + "\n")
        print(f"{scheme} {name}: {len(llm_spans)} spans, {len(records)} log records -> {path.name}")
    server.shutdown()


if __name__ == "__main__":
    main()
