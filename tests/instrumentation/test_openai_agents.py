"""Real OpenAI Agents SDK runs (OpenAIChatCompletionsModel and OpenAIResponsesModel against the replay server)
under OpenAIAgentsInstrumentor: the finished spans form one tree — workflow → agents → execute_tool /
handoff / retrieval / chat — with one LLM span per model call whether or not the OpenAI SDK is instrumented
too, token sums rolled up the tree, content only when captured, errors, and uninstrument.

The SDK's own processors (the export to OpenAI's trace backend) are taken out for the whole module."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Coroutine, Iterator, Sequence
from typing import Any, TypeVar

import pytest
from agents import (
    Agent,
    FileSearchTool,
    GuardrailFunctionOutput,
    OpenAIChatCompletionsModel,
    OpenAIResponsesModel,
    Runner,
    custom_span,
    function_tool,
    input_guardrail,
    trace,
)
from agents.tracing import get_trace_provider, set_trace_processors
from openai import AsyncOpenAI, OpenAI
from opentelemetry import trace as otel_trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode

from llm_observer.instrumentation._agents import SUBTREE_INPUT_TOKENS, SUBTREE_OUTPUT_TOKENS
from llm_observer.instrumentation.handler import llm_spans_suppressed
from llm_observer.instrumentation.openai import OpenAIInstrumentor
from llm_observer.instrumentation.openai_agents import OpenAIAgentsInstrumentor
from llm_observer.instrumentation.testing import ReplayServer, Route, TelemetryCapture
from tests.instrumentation.span_tree import SpanTree as Tree

Recording = Callable[[str], list[Route]]
AGENTS_SCOPE = "llm_observer.instrumentation.openai_agents"
OPENAI_SCOPE = "llm_observer.instrumentation.openai"
SECRET = "Zanzibar-7731"
T = TypeVar("T")


@pytest.fixture(autouse=True, scope="module")
def no_export_to_openai() -> Iterator[None]:
    """No SDK processor but ours: nothing is sent to OpenAI's trace backend."""
    multi: Any = getattr(get_trace_provider(), "_multi_processor", None)
    before = list(getattr(multi, "_processors", ()))
    set_trace_processors([])
    yield
    set_trace_processors(before)


@function_tool
def get_weather(city: str) -> str:
    """Current weather for a city."""
    return f"18°C, light rain in {city} near {SECRET}"


@function_tool
def get_local_time(city: str) -> str:
    """Local time in a city."""
    return f"14:05 in {city}"


_CLIENTS: list[AsyncOpenAI] = []


def _client(replay: ReplayServer, path: str = "/v1") -> AsyncOpenAI:
    """An async OpenAI client of the replay server, closed by the next :func:`_run`."""
    client = AsyncOpenAI(base_url=replay.url + path, api_key="sk-test", max_retries=0)
    _CLIENTS.append(client)
    return client


def _run(work: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(work)``, closing the clients made so far before the loop goes."""

    async def main() -> T:
        try:
            return await work
        finally:
            while _CLIENTS:
                await _CLIENTS.pop().close()

    return asyncio.run(main())


def _model(replay: ReplayServer) -> OpenAIChatCompletionsModel:
    client = _client(replay)
    return OpenAIChatCompletionsModel(model="gpt-4o-mini", openai_client=client)


def _triage(replay: ReplayServer) -> Agent[Any]:
    """triage (two tools) → handoff → planner, as ``openai_agents/handoff.json`` answers it."""
    model = _model(replay)
    planner: Agent[Any] = Agent(name="planner", instructions="Plan the day.", model=model)
    return Agent(
        name="triage",
        instructions="Use the tools, then hand off.",
        model=model,
        tools=[get_weather, get_local_time],
        handoffs=[planner],
    )


@pytest.fixture(params=["provider", "framework"])
def mode(request: pytest.FixtureRequest, telemetry: TelemetryCapture) -> Iterator[str]:
    """Both ways to instrument: with the OpenAI SDK instrumented too (its spans are the LLM spans) and with
    the Agents SDK alone (the framework's)."""
    instrumentors: list[Any] = [OpenAIAgentsInstrumentor()]
    if request.param == "provider":
        instrumentors.append(OpenAIInstrumentor())
    for instrumentor in instrumentors:
        instrumentor.instrument(**telemetry.kwargs)
    yield request.param
    for instrumentor in instrumentors:
        instrumentor.uninstrument()


@pytest.fixture
def instrumented(telemetry: TelemetryCapture) -> Iterator[OpenAIAgentsInstrumentor]:
    instrumentor = OpenAIAgentsInstrumentor()
    instrumentor.instrument(**telemetry.kwargs)
    yield instrumentor
    instrumentor.uninstrument()


# --- reading the tree ---------------------------------------------------------------------------------


def _trees(telemetry: TelemetryCapture) -> list[Tree]:
    by_trace: dict[int, list[ReadableSpan]] = {}
    for span in telemetry.spans():
        by_trace.setdefault(span.context.trace_id, []).append(span)
    return [Tree(spans) for spans in by_trace.values()]


def _attribute(span: ReadableSpan, key: str) -> Any:
    return (span.attributes or {}).get(key)


def _subtree(span: ReadableSpan) -> tuple[int, int]:
    return int(_attribute(span, SUBTREE_INPUT_TOKENS)), int(_attribute(span, SUBTREE_OUTPUT_TOKENS))


def _usage(spans: Sequence[ReadableSpan]) -> list[tuple[int, int]]:
    return sorted(
        (
            int(_attribute(span, "gen_ai.usage.input_tokens")),
            int(_attribute(span, "gen_ai.usage.output_tokens")),
        )
        for span in spans
    )


def _scope(span: ReadableSpan) -> str | None:
    return None if span.instrumentation_scope is None else span.instrumentation_scope.name


def _expected_llm_scope(mode: str) -> str:
    return OPENAI_SCOPE if mode == "provider" else AGENTS_SCOPE


def _all_attribute_text(telemetry: TelemetryCapture) -> str:
    return json.dumps([dict(span.attributes or {}) for span in telemetry.spans()], ensure_ascii=False)


# --- tests --------------------------------------------------------------------------------------------


def test_openai_agents_run_is_one_tree_with_one_llm_span_per_call(
    mode: str, telemetry: TelemetryCapture, replay: ReplayServer, recording: Recording
) -> None:
    replay.set_routes(recording("openai_agents/handoff.json"))
    result = _run(Runner.run(_triage(replay), "Weather and time in Paris?"))
    assert "umbrella" in str(result.final_output)

    (tree,) = _trees(telemetry)
    root = tree.one("invoke_workflow Agent workflow")
    assert root.parent is None
    assert _attribute(root, "gen_ai.operation.name") == "invoke_workflow"
    assert _attribute(root, "gen_ai.workflow.name") == "Agent workflow"

    triage, planner = tree.one("invoke_agent triage"), tree.one("invoke_agent planner")
    assert tree.parent(triage) is root and tree.parent(planner) is root
    assert _attribute(triage, "gen_ai.agent.name") == "triage"
    assert _attribute(triage, "gen_ai.operation.name") == "invoke_agent"
    assert _attribute(triage, "openai_agents.agent.tools") == ("get_weather", "get_local_time")
    assert _attribute(triage, "openai_agents.agent.handoffs") == ("planner",)

    llm_spans = tree.llm_spans()
    assert len(llm_spans) == len(replay.requests) == 3, tree.describe()
    assert {_scope(span) for span in llm_spans} == {_expected_llm_scope(mode)}
    assert {span.name for span in llm_spans} == {"chat gpt-4o-mini"}
    assert [tree.parent(span) for span in llm_spans].count(triage) == 2, tree.describe()
    assert [tree.parent(span) for span in llm_spans].count(planner) == 1, tree.describe()
    assert _usage(llm_spans) == [(120, 30), (150, 10), (200, 20)]
    for span in llm_spans:
        assert _attribute(span, "gen_ai.provider.name") == "openai"
        assert _attribute(span, "gen_ai.request.model") == "gpt-4o-mini"
        assert _attribute(span, "server.address") == "127.0.0.1"

    tools = [
        span for span in tree.children(triage) if _attribute(span, "gen_ai.operation.name") == "execute_tool"
    ]
    by_name = {_attribute(span, "gen_ai.tool.name"): span for span in tools}
    assert sorted(by_name) == ["get_local_time", "get_weather", "transfer_to_planner"], tree.describe()
    assert by_name["get_weather"].name == "execute_tool get_weather"
    assert _attribute(by_name["get_weather"], "gen_ai.tool.call.id") == "call_wx7Kp2Lm9Qa1"
    assert _attribute(by_name["get_local_time"], "gen_ai.tool.call.id") == "call_tm3Rz8Vb4Nc6"
    assert {_attribute(span, "gen_ai.tool.type") for span in tools} == {"function"}
    handoff = by_name["transfer_to_planner"]
    assert handoff.name == "execute_tool transfer_to_planner"
    assert _attribute(handoff, "gen_ai.tool.call.id") == "call_hf5Tq1Zr8Ks2"
    assert (
        _attribute(handoff, "openai_agents.handoff.from"),
        _attribute(handoff, "openai_agents.handoff.to"),
    ) == (
        "triage",
        "planner",
    )
    # The handoff comes after both tools; the planner starts after the handoff.
    assert handoff.start_time is not None and planner.start_time is not None
    assert (
        max(by_name["get_weather"].end_time or 0, by_name["get_local_time"].end_time or 0)
        <= handoff.start_time
    )
    assert (handoff.end_time or 0) <= planner.start_time

    assert _subtree(root) == (470, 60)
    assert _subtree(triage) == (320, 50)
    assert _subtree(planner) == (150, 10)
    assert all(SUBTREE_INPUT_TOKENS not in (span.attributes or {}) for span in tools)
    assert len(tree.spans) == 1 + 2 + 3 + 3, tree.describe()


def test_openai_agents_responses_file_search_gives_a_retrieval_span(
    mode: str, telemetry: TelemetryCapture, replay: ReplayServer, recording: Recording
) -> None:
    """A hosted file search (run on OpenAI's side, inside the model call) shows as a retrieval span under the
    agent, beside the call's one LLM span."""
    replay.set_routes(recording("openai_agents/file_search.json"))
    client = _client(replay)
    agent: Agent[Any] = Agent(
        name="librarian",
        instructions="Answer from the travel notes.",
        model=OpenAIResponsesModel(model="gpt-4.1-mini", openai_client=client),
        tools=[FileSearchTool(vector_store_ids=["vs_travel_notes"], include_search_results=True)],
    )
    result = _run(Runner.run(agent, "Weather in Paris in spring?"))
    assert "umbrella" in str(result.final_output)

    (tree,) = _trees(telemetry)
    root = tree.one("invoke_workflow Agent workflow")
    librarian = tree.one("invoke_agent librarian")
    assert tree.parent(librarian) is root
    (llm,) = tree.llm_spans()
    assert tree.parent(llm) is librarian
    assert _scope(llm) == _expected_llm_scope(mode)
    assert _attribute(llm, "gen_ai.response.model") == "gpt-4.1-mini-2025-04-14"
    assert _attribute(llm, "gen_ai.response.id") == "resp_0a9f8e7d6c5b4a39281706f5e4d3c2b1"
    assert (_attribute(llm, "gen_ai.usage.input_tokens"), _attribute(llm, "gen_ai.usage.output_tokens")) == (
        300,
        40,
    )
    assert _attribute(llm, "gen_ai.usage.cache_read.input_tokens") == 128
    if mode == "provider":
        assert llm.name == "chat gpt-4.1-mini"
    retrieval = tree.one("retrieval vs_travel_notes")
    assert tree.parent(retrieval) is librarian
    assert _attribute(retrieval, "gen_ai.operation.name") == "retrieval"
    assert _attribute(retrieval, "gen_ai.data_source.id") == "vs_travel_notes"
    assert "gen_ai.retrieval.query.text" not in (retrieval.attributes or {})
    assert "gen_ai.retrieval.documents" not in (retrieval.attributes or {})
    assert _subtree(librarian) == _subtree(root) == (300, 40)


def test_openai_agents_streamed_run_gives_one_llm_span_and_leaves_the_context_clean(
    mode: str, telemetry: TelemetryCapture, replay: ReplayServer, recording: Recording
) -> None:
    replay.set_routes(recording("openai/chat_stream.json"))
    agent: Agent[Any] = Agent(name="geographer", model=_model(replay))
    seen: list[tuple[bool, bool]] = []

    async def consume() -> str:
        result = Runner.run_streamed(agent, "Capital of France?")
        async for _ in result.stream_events():
            pass
        seen.append((otel_trace.get_current_span().get_span_context().is_valid, llm_spans_suppressed()))
        return str(result.final_output)

    assert _run(consume()) == "Paris is the capital of France."
    assert seen == [(False, False)]
    (tree,) = _trees(telemetry)
    agent_span = tree.one("invoke_agent geographer")
    assert tree.parent(agent_span) is tree.one("invoke_workflow Agent workflow")
    (llm,) = tree.llm_spans()
    assert tree.parent(llm) is agent_span and _scope(llm) == _expected_llm_scope(mode)
    assert (_attribute(llm, "gen_ai.usage.input_tokens"), _attribute(llm, "gen_ai.usage.output_tokens")) == (
        24,
        7,
    )
    assert _subtree(agent_span) == (24, 7)


def test_openai_agents_content_capture_off_records_no_message_argument_or_result(
    instrumented: OpenAIAgentsInstrumentor,
    telemetry: TelemetryCapture,
    replay: ReplayServer,
    recording: Recording,
) -> None:
    replay.set_routes(recording("openai_agents/handoff.json"))
    _run(Runner.run(_triage(replay), f"Weather and time in Paris? I am {SECRET}."))
    assert len(telemetry.spans()) == 9
    text = _all_attribute_text(telemetry)
    assert SECRET not in text
    assert "Paris" not in text
    assert "gen_ai.input.messages" not in text


def test_openai_agents_content_capture_on_records_messages_arguments_results_and_documents(
    capture_content: None, telemetry: TelemetryCapture, replay: ReplayServer, recording: Recording
) -> None:
    instrumentor = OpenAIAgentsInstrumentor()
    instrumentor.instrument(**telemetry.kwargs)
    try:
        replay.set_routes(recording("openai_agents/handoff.json"))
        _run(Runner.run(_triage(replay), "Weather and time in Paris?"))
    finally:
        instrumentor.uninstrument()

    (tree,) = _trees(telemetry)
    weather = tree.one("execute_tool get_weather")
    assert json.loads(str(_attribute(weather, "gen_ai.tool.call.arguments"))) == {"city": "Paris"}
    assert _attribute(weather, "gen_ai.tool.call.result") == f"18°C, light rain in Paris near {SECRET}"
    first = min(tree.llm_spans(), key=lambda span: span.start_time or 0)
    assert json.loads(str(_attribute(first, "gen_ai.system_instructions"))) == [
        {"type": "text", "content": "Use the tools, then hand off."}
    ]
    assert json.loads(str(_attribute(first, "gen_ai.input.messages"))) == [
        {"role": "user", "parts": [{"type": "text", "content": "Weather and time in Paris?"}]}
    ]
    (output,) = json.loads(str(_attribute(first, "gen_ai.output.messages")))
    assert output["role"] == "assistant"
    assert [(part["type"], part["id"], part["name"], part["arguments"]) for part in output["parts"]] == [
        ("tool_call", "call_wx7Kp2Lm9Qa1", "get_weather", {"city": "Paris"}),
        ("tool_call", "call_tm3Rz8Vb4Nc6", "get_local_time", {"city": "Paris"}),
    ]


def test_openai_agents_file_search_content_under_capture(
    capture_content: None, telemetry: TelemetryCapture, replay: ReplayServer, recording: Recording
) -> None:
    replay.set_routes(recording("openai_agents/file_search.json"))
    client = _client(replay)
    agent: Agent[Any] = Agent(
        name="librarian",
        instructions="Answer from the travel notes.",
        model=OpenAIResponsesModel(model="gpt-4.1-mini", openai_client=client),
        tools=[FileSearchTool(vector_store_ids=["vs_travel_notes"], include_search_results=True)],
    )
    instrumentor = OpenAIAgentsInstrumentor()
    instrumentor.instrument(**telemetry.kwargs)
    try:
        _run(Runner.run(agent, "Weather in Paris in spring?"))
    finally:
        instrumentor.uninstrument()
    (tree,) = _trees(telemetry)
    retrieval = tree.one("retrieval vs_travel_notes")
    assert _attribute(retrieval, "gen_ai.retrieval.query.text") == "paris weather spring"
    assert json.loads(str(_attribute(retrieval, "gen_ai.retrieval.documents"))) == [
        {
            "content": "Paris is rainy in spring; pack an umbrella.",
            "file_id": "file-7Hk2Notes",
            "filename": "paris.md",
            "score": 0.92,
        }
    ]
    (llm,) = tree.llm_spans()
    assert json.loads(str(_attribute(llm, "gen_ai.system_instructions"))) == [
        {"type": "text", "content": "Answer from the travel notes."}
    ]
    (output,) = json.loads(str(_attribute(llm, "gen_ai.output.messages")))
    assert output["finish_reason"] == "stop"
    assert {"type": "text", "content": "Expect spring rain in Paris; pack an umbrella."} in output["parts"]


def test_openai_agents_parallel_runs_and_tools_keep_their_parents(
    telemetry: TelemetryCapture, replay: ReplayServer, recording: Recording
) -> None:
    """Two runs at once on one event loop, and in one of them two tools that run concurrently (each waits
    for the other to start) and call the OpenAI SDK themselves: every span lands under its own run and
    tool, and the model calls' context is gone again once they end."""
    # The second run talks to its own path, so the two runs cannot take each other's answers.
    answer = recording("openai_agents/answer.json")[0]
    replay.set_routes(
        [
            *recording("openai_agents/parallel_tools.json"),
            Route("POST", "/other/v1/chat/completions", json=answer.json),
        ]
    )
    client = _client(replay)
    other = _client(replay, "/other/v1")
    started: dict[str, asyncio.Event] = {}
    context_after_call: list[tuple[bool, bool]] = []

    async def view(side: str, other: str, topic: str) -> str:
        started.setdefault(side, asyncio.Event()).set()
        await asyncio.wait_for(started.setdefault(other, asyncio.Event()).wait(), timeout=10)
        answer = await client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": f"{side} view of {topic}"}]
        )
        context_after_call.append(
            (otel_trace.get_current_span().get_span_context().is_valid, llm_spans_suppressed())
        )
        return str(answer.choices[0].message.content)

    @function_tool
    async def left_view(topic: str) -> str:
        """The left view of a topic."""
        return await view("left", "right", topic)

    @function_tool
    async def right_view(topic: str) -> str:
        """The right view of a topic."""
        return await view("right", "left", topic)

    model = OpenAIChatCompletionsModel(model="gpt-4o-mini", openai_client=client)
    viewer: Agent[Any] = Agent(name="viewer", model=model, tools=[left_view, right_view])
    chatter: Agent[Any] = Agent(
        name="chatter", model=OpenAIChatCompletionsModel(model="gpt-4o-mini", openai_client=other)
    )

    async def both() -> None:
        await asyncio.gather(
            Runner.run(viewer, "Views on Paris?"),
            Runner.run(chatter, "Hello?"),
        )

    instrumentors: list[Any] = [OpenAIAgentsInstrumentor(), OpenAIInstrumentor()]
    for instrumentor in instrumentors:
        instrumentor.instrument(**telemetry.kwargs)
    try:
        _run(both())
    finally:
        for instrumentor in instrumentors:
            instrumentor.uninstrument()
    # Inside a tool, the tool's span is current and no LLM span is: the tool's own call is not suppressed.
    assert context_after_call == [(True, False), (True, False)]

    trees = {tree.spans[0].context.trace_id: tree for tree in _trees(telemetry)}
    assert len(trees) == 2
    viewer_tree = next(tree for tree in trees.values() if tree.named("invoke_agent viewer"))
    chatter_tree = next(tree for tree in trees.values() if tree.named("invoke_agent chatter"))
    agent = viewer_tree.one("invoke_agent viewer")
    for name, call_id in (("left_view", "call_lf1Aa2Bb3Cc4"), ("right_view", "call_rt5Dd6Ee7Ff8")):
        tool = viewer_tree.one(f"execute_tool {name}")
        assert viewer_tree.parent(tool) is agent
        assert _attribute(tool, "gen_ai.tool.call.id") == call_id
        (inner,) = viewer_tree.children(tool)
        assert inner.name == "chat gpt-4o-mini" and _scope(inner) == OPENAI_SCOPE
    left, right = viewer_tree.one("execute_tool left_view"), viewer_tree.one("execute_tool right_view")
    assert (left.start_time or 0) < (right.end_time or 0) and (right.start_time or 0) < (left.end_time or 0)
    assert [viewer_tree.parent(span) for span in viewer_tree.llm_spans()].count(agent) == 2
    # The roll-up counts the Agents SDK's model calls; what a tool calls through the OpenAI SDK directly is
    # not one (the collector's server-side roll-up adds those).
    assert _subtree(agent) == (90 + 40, 25 + 7)
    chatter_agent = chatter_tree.one("invoke_agent chatter")
    (chatter_llm,) = chatter_tree.llm_spans()
    assert chatter_tree.parent(chatter_llm) is chatter_agent
    assert _subtree(chatter_tree.one("invoke_workflow Agent workflow")) == (40, 7)
    assert len(replay.requests) == 2 + 2 + 1


def test_openai_agents_sync_tool_in_a_worker_thread_keeps_its_parent(
    telemetry: TelemetryCapture, replay: ReplayServer, recording: Recording
) -> None:
    """The SDK runs a plain (sync) tool in a worker thread; the OpenAI call it makes there nests under its
    execute_tool span."""
    replay.set_routes(recording("openai_agents/parallel_tools.json"))
    sync_client = OpenAI(base_url=replay.url + "/v1", api_key="sk-test", max_retries=0)
    threads: list[int] = []

    def ask(side: str, topic: str) -> str:
        threads.append(threading.get_ident())
        answer = sync_client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": f"{side} view of {topic}"}]
        )
        return str(answer.choices[0].message.content)

    @function_tool
    def left_view(topic: str) -> str:
        """The left view of a topic."""
        return ask("left", topic)

    @function_tool
    def right_view(topic: str) -> str:
        """The right view of a topic."""
        return ask("right", topic)

    agent: Agent[Any] = Agent(name="viewer", model=_model(replay), tools=[left_view, right_view])
    instrumentors: list[Any] = [OpenAIAgentsInstrumentor(), OpenAIInstrumentor()]
    for instrumentor in instrumentors:
        instrumentor.instrument(**telemetry.kwargs)
    try:
        _run(Runner.run(agent, "Views on Paris?"))
    finally:
        for instrumentor in instrumentors:
            instrumentor.uninstrument()
    assert len(threads) == 2 and threading.get_ident() not in threads  # not the event loop's thread

    (tree,) = _trees(telemetry)
    for name in ("left_view", "right_view"):
        (inner,) = tree.children(tree.one(f"execute_tool {name}"))
        assert inner.name == "chat gpt-4o-mini" and _scope(inner) == OPENAI_SCOPE
    assert _subtree(tree.one("invoke_agent viewer")) == (90 + 40, 25 + 7)


def test_openai_agents_failing_tool_and_run_record_the_error(
    instrumented: OpenAIAgentsInstrumentor,
    telemetry: TelemetryCapture,
    replay: ReplayServer,
    recording: Recording,
) -> None:
    def broken(city: str) -> str:
        raise ValueError(f"no weather service for {city}")

    failing = function_tool(broken, name_override="get_weather", failure_error_function=None)
    agent: Agent[Any] = Agent(name="triage", model=_model(replay), tools=[failing, get_local_time])
    replay.set_routes(recording("openai_agents/handoff.json"))
    with pytest.raises(Exception, match="no weather service"):
        _run(Runner.run(agent, "Weather and time in Paris?"))

    (tree,) = _trees(telemetry)
    tool = tree.one("execute_tool get_weather")
    assert tool.status.status_code is StatusCode.ERROR
    assert _attribute(tool, "error.type") == "UserError"  # the SDK wraps the tool's exception
    assert "gen_ai.tool.call.result" not in (tool.attributes or {})
    root = tree.one("invoke_workflow Agent workflow")
    assert root.status.status_code is StatusCode.ERROR
    assert _attribute(root, "error.type") == "UserError"


def test_openai_agents_tool_error_told_to_the_model_is_recorded_without_an_exception(
    instrumented: OpenAIAgentsInstrumentor,
    telemetry: TelemetryCapture,
    replay: ReplayServer,
    recording: Recording,
) -> None:
    """With the SDK's default failure handler the model is told of the error and the run goes on: the
    tool's span is an error of type ``_OTHER`` (no exception left to name), the run's spans are fine."""

    def broken(city: str) -> str:
        raise ValueError(f"no weather service for {city}")

    failing = function_tool(broken, name_override="get_weather")
    agent: Agent[Any] = Agent(name="triage", model=_model(replay), tools=[failing, get_local_time])
    replay.set_routes([recording("openai_agents/handoff.json")[0], *recording("openai_agents/answer.json")])
    _run(Runner.run(agent, "Weather and time in Paris?"))

    (tree,) = _trees(telemetry)
    tool = tree.one("execute_tool get_weather")
    assert tool.status.status_code is StatusCode.ERROR
    assert _attribute(tool, "error.type") == "_OTHER"
    assert tree.one("execute_tool get_local_time").status.status_code is StatusCode.UNSET
    assert tree.one("invoke_workflow Agent workflow").status.status_code is StatusCode.UNSET


def test_openai_agents_model_error_ends_the_framework_llm_span_with_the_error(
    instrumented: OpenAIAgentsInstrumentor,
    telemetry: TelemetryCapture,
    replay: ReplayServer,
    recording: Recording,
) -> None:
    replay.set_routes(recording("openai/error_500.json"))
    agent: Agent[Any] = Agent(name="triage", model=_model(replay))
    with pytest.raises(Exception):  # noqa: B017 - whichever openai error class this SDK release raises
        _run(Runner.run(agent, "hi"))
    (tree,) = _trees(telemetry)
    (llm,) = tree.llm_spans()
    assert llm.status.status_code is StatusCode.ERROR
    assert _attribute(llm, "error.type") == "InternalServerError"
    assert tree.parent(llm) is tree.one("invoke_agent triage")


def test_openai_agents_trace_groups_runs_under_one_workflow(
    instrumented: OpenAIAgentsInstrumentor,
    telemetry: TelemetryCapture,
    replay: ReplayServer,
    recording: Recording,
) -> None:
    """A user's ``trace(...)`` around two runs is one workflow named after it, its group id the
    conversation id."""
    replay.set_routes(recording("openai_agents/answer.json"))
    agent: Agent[Any] = Agent(name="chatter", model=_model(replay))

    async def two_turns() -> None:
        with trace("Support chat", group_id="thread-42"):
            await Runner.run(agent, "Hello?")
            await Runner.run(agent, "Still there?")

    _run(two_turns())
    (tree,) = _trees(telemetry)
    root = tree.one("invoke_workflow Support chat")
    assert _attribute(root, "gen_ai.conversation.id") == "thread-42"
    agents = tree.named("invoke_agent chatter")
    assert len(agents) == 2 and all(tree.parent(agent) is root for agent in agents)
    assert _subtree(root) == (80, 14)


def test_openai_agents_guardrail_and_custom_spans_are_steps(
    capture_content: None, telemetry: TelemetryCapture, replay: ReplayServer, recording: Recording
) -> None:
    @input_guardrail
    def polite(context: Any, agent: Any, text: Any) -> GuardrailFunctionOutput:
        return GuardrailFunctionOutput(output_info=None, tripwire_triggered=False)

    @function_tool
    def lookup(city: str) -> str:
        """Look a city up."""
        with custom_span("cache lookup", {"key": city}):
            return f"{city}: cached"

    agent: Agent[Any] = Agent(name="triage", model=_model(replay), tools=[lookup], input_guardrails=[polite])
    replay.set_routes(
        [
            Route(
                "POST",
                "/v1/chat/completions",
                json={
                    **recording("openai_agents/parallel_tools.json")[0].json,
                    "choices": [
                        {
                            "index": 0,
                            "message": {
                                "role": "assistant",
                                "content": None,
                                "tool_calls": [
                                    {
                                        "id": "call_lk1",
                                        "type": "function",
                                        "function": {"name": "lookup", "arguments": '{"city":"Paris"}'},
                                    }
                                ],
                            },
                            "finish_reason": "tool_calls",
                        }
                    ],
                },
                repeat=False,
            ),
            *recording("openai_agents/answer.json"),
        ]
    )
    instrumentor = OpenAIAgentsInstrumentor()
    instrumentor.instrument(**telemetry.kwargs)
    try:
        _run(Runner.run(agent, "Paris?"))
    finally:
        instrumentor.uninstrument()

    (tree,) = _trees(telemetry)
    guardrail = tree.one("guardrail polite")
    assert tree.parent(guardrail) is tree.one("invoke_agent triage")
    assert _attribute(guardrail, "openai_agents.guardrail.triggered") is False
    assert _attribute(guardrail, "gen_ai.operation.name") is None
    custom = tree.one("cache lookup")
    tool = tree.one("execute_tool lookup")
    assert tree.parent(custom) is tool
    assert _attribute(tool, "gen_ai.tool.call.id") == "call_lk1"
    assert json.loads(str(_attribute(custom, "openai_agents.custom.data"))) == {"key": "Paris"}


def test_openai_agents_uninstrument_removes_the_processor(
    telemetry: TelemetryCapture, replay: ReplayServer, recording: Recording
) -> None:
    multi: Any = getattr(get_trace_provider(), "_multi_processor", None)
    before = tuple(multi._processors)
    instrumentor = OpenAIAgentsInstrumentor()
    instrumentor.instrument(**telemetry.kwargs)
    assert len(multi._processors) == len(before) + 1
    instrumentor.uninstrument()
    assert tuple(multi._processors) == before
    instrumentor.instrument(**telemetry.kwargs, exclusive=True)
    assert len(multi._processors) == 1
    instrumentor.uninstrument()
    assert tuple(multi._processors) == before

    replay.set_routes(recording("openai_agents/handoff.json"))
    _run(Runner.run(_triage(replay), "Weather and time in Paris?"))
    assert telemetry.spans() == ()


def test_openai_agents_instrumentor_names_openai_agents() -> None:
    dependencies: Any = OpenAIAgentsInstrumentor().instrumentation_dependencies()
    assert [dependency.split()[0] for dependency in dependencies] == ["openai-agents"]
