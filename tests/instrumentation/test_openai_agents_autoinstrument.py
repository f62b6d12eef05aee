"""An OpenAI Agents SDK app run under ``opentelemetry-instrument``: its run stored by a running collector is one
tree (workflow → agents → tools, handoff and the OpenAI SDK's LLM spans), and the ``llm_observer_openai_agents``
entry point instruments an unchanged app."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from llm_observer.instrumentation.testing import ReplayServer, Route
from llm_observer.instrumentation.testing.autoinstrument import run_instrumented
from llm_observer.instrumentation.testing.otlp import otlp_trace_route, spans_from_requests

Recording = Callable[[str], list[Route]]

ENTRY_POINT = "llm_observer_openai_agents"
SLOW = os.environ.get("LLM_OBSERVER_SLOW_TESTS") != "1"
# Only this instrumentor and the OpenAI SDK's load (each other one imports its SDK at start-up).
OTHERS_OFF = ",".join(
    f"llm_observer_{name}"
    for name in (
        "anthropic",
        "bedrock",
        "cohere",
        "crewai",
        "google_genai",
        "haystack",
        "huggingface",
        "langchain",
        "llama_index",
        "mcp",
        "mistral",
        "ollama",
    )
)

AGENTS = """
import asyncio
import os

from agents import Agent, OpenAIChatCompletionsModel, Runner, function_tool
from openai import AsyncOpenAI


@function_tool
def get_weather(city: str) -> str:
    \"\"\"Current weather for a city.\"\"\"
    return f"18C, light rain in {city}"


@function_tool
def get_local_time(city: str) -> str:
    \"\"\"Local time in a city.\"\"\"
    return f"14:05 in {city}"


async def run() -> str:
    client = AsyncOpenAI(base_url=os.environ["PROVIDER_URL"] + "/v1", api_key="sk-test", max_retries=0)
    model = OpenAIChatCompletionsModel(model="gpt-4o-mini", openai_client=client)
    planner = Agent(name="planner", instructions="Plan the day.", model=model)
    triage = Agent(name="triage", model=model, tools=[get_weather, get_local_time], handoffs=[planner])
    result = await Runner.run(triage, "Weather and time in Paris?")
    await client.close()
    return str(result.final_output)
"""

APP_STORED = (
    AGENTS
    + """
from opentelemetry import trace
from llm_observer.instrumentation.openai_agents import OpenAIAgentsInstrumentor

OpenAIAgentsInstrumentor().instrument(exclusive=True)
with trace.get_tracer("app").start_as_current_span("handle request") as root:
    asyncio.run(run())
    print(format(root.get_span_context().trace_id, "032x"))
"""
)

APP_UNCHANGED = (
    AGENTS
    + """
print(asyncio.run(run()))
"""
)


@pytest.mark.skipif(SLOW, reason="slow (starts a collector, ~30 s): set LLM_OBSERVER_SLOW_TESTS=1")
def test_openai_agents_run_is_stored_as_one_tree(
    tmp_path: Path, replay: ReplayServer, recording: Recording
) -> None:
    """Instrumented in code (the OpenAI SDK by its entry point): the collector stores one trace whose
    parents make the tree, with the provider's LLM spans under the agents and the token sums on them."""
    from llm_observer.instrumentation.testing.collector import CollectorProcess

    replay.set_routes(recording("openai_agents/handoff.json"))
    with CollectorProcess(tmp_path) as collector:
        done = run_instrumented(
            APP_STORED,
            tmp_path,
            collector.otlp_url,
            {
                "PROVIDER_URL": replay.url,
                "OTEL_SERVICE_NAME": "agents-app",
                "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": OTHERS_OFF,
            },
        )
        assert done.returncode == 0, done.stderr
        trace_id = done.stdout.strip()
        stored = collector.wait_for_trace(trace_id, spans=10)
    spans: list[dict[str, Any]] = stored["spans"]
    by_id = {span["span_id"]: span for span in spans}

    def one(name: str) -> dict[str, Any]:
        found = [span for span in spans if span["name"] == name]
        assert len(found) == 1, (name, sorted(span["name"] for span in spans))
        return found[0]

    def parent(span: dict[str, Any]) -> dict[str, Any]:
        return by_id[span["parent_span_id"]]

    workflow = one("invoke_workflow Agent workflow")
    assert parent(workflow) is one("handle request")
    assert workflow["operation"] == "invoke_workflow"
    triage, planner = one("invoke_agent triage"), one("invoke_agent planner")
    assert parent(triage) is workflow and parent(planner) is workflow
    for name in (
        "execute_tool get_weather",
        "execute_tool get_local_time",
        "execute_tool transfer_to_planner",
    ):
        assert parent(one(name)) is triage
        assert one(name)["operation"] == "execute_tool"
    llm_spans = [span for span in spans if span["operation"] == "chat"]
    assert len(llm_spans) == len(replay.requests) == 3
    assert [parent(span) for span in llm_spans].count(triage) == 2
    assert [parent(span) for span in llm_spans].count(planner) == 1
    assert {span["provider"] for span in llm_spans} == {"openai"}
    assert sorted((span["input_tokens"], span["output_tokens"]) for span in llm_spans) == [
        (120, 30),
        (150, 10),
        (200, 20),
    ]
    assert all(span["cost_usd"] > 0 for span in llm_spans)
    assert workflow["attributes"]["llm_observer.subtree.input_tokens"] in (470, "470")
    assert triage["attributes"]["llm_observer.subtree.output_tokens"] in (50, "50")
    assert len(spans) == 1 + 1 + 2 + 3 + 3


def test_openai_agents_autoinstrument_entry_point_exports_the_tree(
    tmp_path: Path, replay: ReplayServer, recording: Recording
) -> None:
    replay.set_routes(recording("openai_agents/handoff.json"))
    with ReplayServer([otlp_trace_route()]) as collector:
        done = run_instrumented(
            APP_UNCHANGED,
            tmp_path,
            collector.url,
            {
                "PROVIDER_URL": replay.url,
                "OTEL_SERVICE_NAME": "agents-app",
                "LLM_OBSERVER_OPENAI_AGENTS_EXCLUSIVE": "true",
                "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": OTHERS_OFF,
            },
        )
        assert done.returncode == 0, done.stderr
        assert "umbrella" in done.stdout
        spans = spans_from_requests(collector.requests)
    names = sorted(span.name for span in spans)
    assert names.count("invoke_workflow Agent workflow") == 1
    assert names.count("chat gpt-4o-mini") == 3
    assert {"invoke_agent triage", "invoke_agent planner", "execute_tool transfer_to_planner"} <= set(names)
    by_id = {span.span_id: span for span in spans}
    workflow = next(span for span in spans if span.name == "invoke_workflow Agent workflow")
    triage = next(span for span in spans if span.name == "invoke_agent triage")
    assert by_id[triage.parent_span_id] is workflow
    assert {span.scope for span in spans if span.name.startswith("invoke_")} == {
        "llm_observer.instrumentation.openai_agents"
    }
