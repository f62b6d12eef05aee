"""observe(): agent → tool → LLM span trees across threads and asyncio tasks, with the real openai SDK."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import openai
import pytest
from opentelemetry.trace import SpanKind, StatusCode

from llm_observer import observe
from llm_observer.instrumentation.decorators import bind_context
from llm_observer.instrumentation.openai import OpenAIInstrumentor
from llm_observer.instrumentation.testing import ReplayServer, Route, TelemetryCapture

Recording = Callable[[str], list[Route]]
MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.fixture
def instrumented(
    telemetry: TelemetryCapture, replay: ReplayServer, recording: Recording
) -> Iterator[TelemetryCapture]:
    replay.set_routes(recording("openai/chat.json"))
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(**telemetry.kwargs)
    yield telemetry
    instrumentor.uninstrument()


def _tree(telemetry: TelemetryCapture) -> dict[str, Any]:
    """name → (span, parent name) for spans with unique names."""
    spans = telemetry.spans()
    by_id = {span.context.span_id: span for span in spans}
    return {
        span.name: (
            span,
            by_id[span.parent.span_id].name if span.parent and span.parent.span_id in by_id else None,
        )
        for span in spans
    }


def test_decorators_agent_tool_llm_tree_sync(instrumented: TelemetryCapture, replay: ReplayServer) -> None:
    provider = instrumented.tracer_provider
    client = openai.OpenAI(base_url=replay.url + "/v1", api_key="k", max_retries=0)

    @observe(kind="tool", name="lookup", tracer_provider=provider)
    def lookup(city: str) -> str:
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        return f"weather in {city}"

    @observe(tracer_provider=provider, agent_id="a-1")
    def planner() -> str:
        return lookup("Paris")

    assert planner() == "weather in Paris"
    tree = _tree(instrumented)
    assert tree["invoke_agent planner"][1] is None
    assert tree["execute_tool lookup"][1] == "invoke_agent planner"
    assert tree["chat gpt-4o-mini"][1] == "execute_tool lookup"
    agent = tree["invoke_agent planner"][0]
    assert agent.kind is SpanKind.INTERNAL
    assert dict(agent.attributes) == {
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.agent.name": "planner",
        "gen_ai.agent.id": "a-1",
    }
    tool = tree["execute_tool lookup"][0]
    assert tool.attributes["gen_ai.tool.name"] == "lookup"
    assert "gen_ai.tool.call.arguments" not in tool.attributes


def test_decorators_tree_across_asyncio_tasks(instrumented: TelemetryCapture, replay: ReplayServer) -> None:
    provider = instrumented.tracer_provider
    client = openai.AsyncOpenAI(base_url=replay.url + "/v1", api_key="k", max_retries=0)

    @observe(kind="tool", tracer_provider=provider)
    async def search(query: str) -> str:
        await asyncio.sleep(0)
        await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        return query

    @observe(kind="agent", tracer_provider=provider)
    async def researcher(topic: str) -> list[str]:
        return list(await asyncio.gather(*(asyncio.create_task(search(f"{topic} {i}")) for i in range(3))))

    @observe(kind="workflow", name="research", tracer_provider=provider)
    async def workflow() -> list[str]:
        return await researcher("otel")

    assert asyncio.run(workflow()) == ["otel 0", "otel 1", "otel 2"]
    spans = instrumented.spans()
    by_id = {span.context.span_id: span for span in spans}
    llm = [span for span in spans if span.name == "chat gpt-4o-mini"]
    tools = [span for span in spans if span.name == "execute_tool search"]
    assert len(llm) == 3 and len(tools) == 3
    assert {by_id[span.parent.span_id].name for span in llm} == {"execute_tool search"}
    assert {by_id[span.parent.span_id].name for span in tools} == {"invoke_agent researcher"}
    assert len({span.context.trace_id for span in spans}) == 1
    (flow,) = [span for span in spans if span.name == "invoke_workflow research"]
    assert flow.attributes["gen_ai.workflow.name"] == "research"


def test_decorators_tree_across_threads_with_bind_context(
    instrumented: TelemetryCapture, replay: ReplayServer
) -> None:
    provider = instrumented.tracer_provider
    client = openai.OpenAI(base_url=replay.url + "/v1", api_key="k", max_retries=0)

    @observe(kind="tool", tracer_provider=provider)
    def fetch(n: int) -> int:
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        return n

    with ThreadPoolExecutor(max_workers=4) as pool, observe("coordinator", tracer_provider=provider):
        results = list(pool.map(bind_context(fetch), range(4)))
    assert results == [0, 1, 2, 3]
    spans = instrumented.spans()
    by_id = {span.context.span_id: span for span in spans}
    for span in spans:
        if span.name == "chat gpt-4o-mini":
            assert by_id[span.parent.span_id].name == "execute_tool fetch"
        elif span.name == "execute_tool fetch":
            assert by_id[span.parent.span_id].name == "invoke_agent coordinator"
    assert len([s for s in spans if s.name == "chat gpt-4o-mini"]) == 4


def test_decorators_error_recorded_and_reraised(telemetry: TelemetryCapture) -> None:
    @observe(kind="tool", tracer_provider=telemetry.tracer_provider)
    def broken() -> None:
        raise KeyError("missing")

    with pytest.raises(KeyError):
        broken()
    (span,) = telemetry.spans()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "KeyError"


async def test_decorators_async_context_manager_and_error(telemetry: TelemetryCapture) -> None:
    with pytest.raises(ValueError):
        async with observe("step-a", kind="step", tracer_provider=telemetry.tracer_provider):
            raise ValueError("bad")
    (span,) = telemetry.spans()
    assert span.name == "step-a"
    assert span.attributes["error.type"] == "ValueError"


def test_decorators_tool_content_only_when_captured(
    telemetry: TelemetryCapture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "span_and_event")

    @observe(kind="tool", tracer_provider=telemetry.tracer_provider)
    def add(a: int, b: int = 0) -> dict[str, int]:
        return {"sum": a + b}

    add(2, b=3)
    (span,) = telemetry.spans()
    assert json.loads(span.attributes["gen_ai.tool.call.arguments"]) == {"a": 2, "b": 3}
    assert json.loads(span.attributes["gen_ai.tool.call.result"]) == {"sum": 5}


def test_decorators_bare_and_kind_validation(telemetry: TelemetryCapture) -> None:
    @observe
    def plain() -> int:
        return 1

    assert plain() == 1
    assert plain.__name__ == "plain"
    with pytest.raises(ValueError):
        observe("x", kind="bogus")
