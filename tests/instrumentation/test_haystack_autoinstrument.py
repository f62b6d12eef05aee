"""`opentelemetry-instrument python app.py` loads llm_observer_haystack from its entry point: an unchanged
Haystack app (a retriever, a prompt builder and an agent with two tools) sends one connected tree over
OTLP/HTTP, its LLM spans made by the OpenAI SDK's instrumentor loaded beside it."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from llm_observer.instrumentation.testing import ReplayServer, Route
from llm_observer.instrumentation.testing.autoinstrument import run_instrumented
from llm_observer.instrumentation.testing.otlp import ExportedSpan, otlp_trace_route, spans_from_requests

Recording = Callable[[str], list[Route]]

ENTRY_POINT = "llm_observer_haystack"
SLOW = os.environ.get("LLM_OBSERVER_SLOW_TESTS") != "1"
# Only Haystack's and the OpenAI SDK's instrumentors load (each other one imports its SDK at start-up).
OTHERS_OFF = ",".join(
    f"llm_observer_{name}"
    for name in (
        "anthropic",
        "bedrock",
        "cohere",
        "google_genai",
        "huggingface",
        "langchain",
        "mcp",
        "mistral",
        "ollama",
    )
)

APP = """
import os
from haystack import Document, Pipeline
from haystack.components.agents import Agent
from haystack.components.builders import ChatPromptBuilder
from haystack.components.generators.chat import OpenAIChatGenerator
from haystack.components.retrievers import InMemoryBM25Retriever
from haystack.dataclasses import ChatMessage
from haystack.document_stores.in_memory import InMemoryDocumentStore
from haystack.tools import tool
from haystack.utils import Secret


@tool
def get_weather(city: str) -> str:
    \"\"\"Current weather for a city.\"\"\"
    return f"18C, light rain in {city}"


@tool
def get_local_time(city: str) -> str:
    \"\"\"Local time in a city.\"\"\"
    return f"14:05 in {city}"


store = InMemoryDocumentStore()
store.write_documents([Document(content="paris is rainy in spring", id="note-1")])
model = OpenAIChatGenerator(model="gpt-4o-mini", api_base_url=os.environ["PROVIDER_URL"] + "/v1",
                            api_key=Secret.from_token("sk-test"), max_retries=0)
pipeline = Pipeline()
pipeline.add_component("retriever", InMemoryBM25Retriever(store))
pipeline.add_component("prompt", ChatPromptBuilder(
    template=[ChatMessage.from_system("Notes: {% for d in documents %}{{ d.content }}{% endfor %}"),
              ChatMessage.from_user("{{ question }}")], required_variables="*"))
pipeline.add_component("agent", Agent(chat_generator=model, tools=[get_weather, get_local_time]))
pipeline.connect("retriever.documents", "prompt.documents")
pipeline.connect("prompt.prompt", "agent.messages")
result = pipeline.run({"retriever": {"query": "paris"}, "prompt": {"question": "Weather and time in Paris?"}})
print(result["agent"]["last_message"].text)
"""


def _parent(spans: list[ExportedSpan], span: ExportedSpan) -> ExportedSpan | None:
    return next((found for found in spans if found.span_id == span.parent_span_id), None)


def test_haystack_autoinstrument_entry_point_exports_one_tree(
    tmp_path: Path, replay: ReplayServer, recording: Recording
) -> None:
    replay.set_routes(recording("haystack/agent.json"))
    with ReplayServer([otlp_trace_route()]) as collector:
        done = run_instrumented(
            APP,
            tmp_path,
            collector.url,
            {
                "PROVIDER_URL": replay.url,
                "OTEL_SERVICE_NAME": "haystack-app",
                "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": OTHERS_OFF,
            },
        )
        assert done.returncode == 0, done.stderr
        assert "umbrella" in done.stdout
        spans = spans_from_requests(collector.requests)
    names = sorted(span.name for span in spans)
    assert names == sorted(
        [
            "invoke_workflow Pipeline",
            "retrieval retriever",
            "prompt",
            "invoke_agent agent",
            "chat gpt-4o-mini",
            "chat gpt-4o-mini",
            "execute_tool get_weather",
            "execute_tool get_local_time",
        ]
    )
    assert len({span.trace_id for span in spans}) == 1
    by_name = {span.name: span for span in spans}
    workflow, agent = by_name["invoke_workflow Pipeline"], by_name["invoke_agent agent"]
    assert workflow.scope == "llm_observer.instrumentation.haystack"
    assert workflow.resource["service.name"] == "haystack-app"
    assert _parent(spans, agent) is workflow
    for span in spans:
        if span.name.startswith(("chat ", "execute_tool ")):
            assert _parent(spans, span) is agent, span.name
        if span.name.startswith("chat "):
            assert span.scope == "llm_observer.instrumentation.openai"
    assert workflow.attributes["llm_observer.subtree.input_tokens"] == 380
    assert workflow.attributes["llm_observer.subtree.output_tokens"] == 50


APP_WITH_TRACE_ID = APP.replace(
    'result = pipeline.run({"retriever": {"query": "paris"}, "prompt": {"question": "Weather and time in Paris?"}})',
    """from opentelemetry import trace

with trace.get_tracer("app").start_as_current_span("handle request") as root:
    result = pipeline.run({"retriever": {"query": "paris"}, "prompt": {"question": "Weather and time in Paris?"}})
print(format(root.get_span_context().trace_id, "032x"))""",
)


@pytest.mark.skipif(SLOW, reason="slow (starts a collector, ~30 s): set LLM_OBSERVER_SLOW_TESTS=1")
def test_haystack_autoinstrument_tree_stored_by_running_collector(
    tmp_path: Path, replay: ReplayServer, recording: Recording
) -> None:
    from llm_observer.instrumentation.testing.collector import CollectorProcess

    replay.set_routes(recording("haystack/agent.json"))
    with CollectorProcess(tmp_path) as collector:
        done = run_instrumented(
            APP_WITH_TRACE_ID,
            tmp_path,
            collector.otlp_url,
            {
                "PROVIDER_URL": replay.url,
                "OTEL_SERVICE_NAME": "haystack-app",
                "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": OTHERS_OFF,
            },
        )
        assert done.returncode == 0, done.stderr
        (trace_id,) = re.findall(r"^[0-9a-f]{32}$", done.stdout, re.MULTILINE)
        stored = collector.wait_for_trace(trace_id, spans=9)
    spans = stored["spans"]
    by_id = {span["span_id"]: span for span in spans}

    def parent_name(span: dict[str, object]) -> str | None:
        parent = by_id.get(str(span["parent_span_id"] or ""))
        return None if parent is None else str(parent["name"])

    tree = sorted((str(span["name"]), parent_name(span)) for span in spans)
    assert tree == sorted(
        [
            ("handle request", None),
            ("invoke_workflow Pipeline", "handle request"),
            ("retrieval retriever", "invoke_workflow Pipeline"),
            ("prompt", "invoke_workflow Pipeline"),
            ("invoke_agent agent", "invoke_workflow Pipeline"),
            ("chat gpt-4o-mini", "invoke_agent agent"),
            ("chat gpt-4o-mini", "invoke_agent agent"),
            ("execute_tool get_weather", "invoke_agent agent"),
            ("execute_tool get_local_time", "invoke_agent agent"),
        ]
    )
    operations = {str(span["name"]): span["operation"] for span in spans}
    assert operations["invoke_agent agent"] == "invoke_agent"
    assert operations["execute_tool get_weather"] == "execute_tool"
    assert operations["retrieval retriever"] == "retrieval"
    chats = [span for span in spans if span["name"] == "chat gpt-4o-mini"]
    assert sorted((span["input_tokens"], span["output_tokens"]) for span in chats) == [(150, 20), (230, 30)]
    assert all(span["cost_usd"] > 0 for span in chats)
    workflow = next(span for span in spans if span["name"] == "invoke_workflow Pipeline")
    assert int(workflow["attributes"]["llm_observer.subtree.input_tokens"]) == 380
    assert int(workflow["attributes"]["llm_observer.subtree.output_tokens"]) == 50
