"""`opentelemetry-instrument python app.py` loads llm_observer_openai from its entry point: an unchanged
openai app sends GenAI spans over OTLP/HTTP to a local receiver."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from llm_observer.instrumentation.testing import ReplayServer, Route
from llm_observer.instrumentation.testing.autoinstrument import run_instrumented
from llm_observer.instrumentation.testing.otlp import otlp_trace_route, spans_from_requests

Recording = Callable[[str], list[Route]]

APP = """
import os
import openai

client = openai.OpenAI(base_url=os.environ["PROVIDER_URL"] + "/v1", api_key="sk-test", max_retries=0)
answer = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Capital?"}])
print(answer.choices[0].message.content)
for chunk in client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Capital?"}],
                                            stream=True):
    pass
"""


def test_openai_autoinstrument_entry_point_exports_spans(
    tmp_path: Path, replay: ReplayServer, recording: Recording
) -> None:
    replay.set_routes([Route("POST", "/v1/chat/completions", json=recording("openai/chat.json")[0].json, repeat=False),
                       *recording("openai/chat_stream.json")])  # fmt: skip
    with ReplayServer([otlp_trace_route()]) as collector:
        done = run_instrumented(
            APP,
            tmp_path,
            collector.url,
            {
                "PROVIDER_URL": replay.url,
                "OTEL_SERVICE_NAME": "openai-app",
                "OTEL_RESOURCE_ATTRIBUTES": "llm_observer.project.id=p1",
                "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "SPAN_ONLY",
                "LLM_OBSERVER_OPENAI_STREAM_USAGE": "true",
            },
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "Paris is the capital of France."
        spans = [span for span in spans_from_requests(collector.requests) if span.name.startswith("chat ")]
    assert [span.name for span in spans] == ["chat gpt-4o-mini", "chat gpt-4o-mini"]
    plain, streamed = spans
    assert plain.scope == "llm_observer.instrumentation.openai"
    assert plain.resource["service.name"] == "openai-app"
    assert plain.resource["llm_observer.project.id"] == "p1"
    assert plain.attributes["gen_ai.provider.name"] == "openai"
    assert plain.attributes["gen_ai.usage.input_tokens"] == 24
    assert '"content":"Capital?"' in plain.attributes["gen_ai.input.messages"]
    assert streamed.attributes["gen_ai.usage.output_tokens"] == 7
    assert replay.requests[1].body["stream_options"] == {"include_usage": True}


APP_WITH_TRACE_ID = """
import os
import openai
from opentelemetry import trace

client = openai.OpenAI(base_url=os.environ["PROVIDER_URL"] + "/v1", api_key="sk-test", max_retries=0)
with trace.get_tracer("app").start_as_current_span("handle request") as root:
    client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Capital?"}])
    print(format(root.get_span_context().trace_id, "032x"))
"""


def test_openai_autoinstrument_spans_stored_by_running_collector(
    tmp_path: Path, replay: ReplayServer, recording: Recording
) -> None:
    from llm_observer.instrumentation.testing.collector import CollectorProcess

    replay.set_routes(recording("openai/chat_tool_call.json"))
    with CollectorProcess(tmp_path) as collector:
        done = run_instrumented(
            APP_WITH_TRACE_ID,
            tmp_path,
            collector.otlp_url,
            {
                "PROVIDER_URL": replay.url,
                "OTEL_SERVICE_NAME": "openai-app",
                "OTEL_RESOURCE_ATTRIBUTES": "llm_observer.project.id=p1",
            },
        )
        assert done.returncode == 0, done.stderr
        trace_id = done.stdout.strip()
        stored = collector.wait_for_trace(trace_id, spans=2)
    spans = {span["name"]: span for span in stored["spans"]}
    llm = spans["chat gpt-4o-mini"]
    assert llm["parent_span_id"] == spans["handle request"]["span_id"]
    assert llm["service_name"] == "openai-app"
    assert llm["project_id"] == "p1"
    assert llm["operation"] == "chat"
    assert llm["provider"] == "openai"
    assert llm["request_model"] == "gpt-4o-mini"
    assert llm["response_model"] == "gpt-4o-2024-08-06"
    assert llm["input_tokens"] == 1180
    assert llm["output_tokens"] == 21
    assert llm["cache_read_tokens"] == 1024
    assert llm["cost_usd"] > 0
    assert llm["input"] in (None, "", [])  # content was not opted in
