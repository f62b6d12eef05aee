"""Real LangGraph graphs (ChatOpenAI against the replay server) under LangChainInstrumentor: the finished spans
form one tree — workflow → nodes/agents → execute_tool / retrieval / chat — with one LLM span per model call,
whether or not the OpenAI SDK is instrumented too, and token sums rolled up the tree."""

from __future__ import annotations

import asyncio
import operator
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated, Any, TypedDict

import pytest
from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.messages import AnyMessage, HumanMessage, SystemMessage
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.prebuilt import ToolNode, tools_condition
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan

from llm_observer.instrumentation._agents import SUBTREE_INPUT_TOKENS, SUBTREE_OUTPUT_TOKENS
from llm_observer.instrumentation.handler import llm_spans_suppressed
from llm_observer.instrumentation.langchain import LangChainInstrumentor
from llm_observer.instrumentation.openai import OpenAIInstrumentor
from llm_observer.instrumentation.testing import ReplayServer, Route, TelemetryCapture

Recording = Callable[[str], list[Route]]
LANGCHAIN_SCOPE = "llm_observer.instrumentation.langchain"
OPENAI_SCOPE = "llm_observer.instrumentation.openai"


@tool
def get_weather(city: str) -> str:
    """Current weather for a city."""
    return f"18°C, light rain in {city}"


@tool
def get_local_time(city: str) -> str:
    """Local time in a city."""
    return f"14:05 in {city}"


class NotesRetriever(BaseRetriever):
    """Travel notes whose text shares a word with the query."""

    notes: list[Document]

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        words = set(query.lower().replace("?", "").split())
        return [note for note in self.notes if words & set(note.page_content.lower().split())]


NOTES = NotesRetriever(
    notes=[
        Document(page_content="paris is rainy in spring", id="note-1", metadata={"source": "guide"}),
        Document(page_content="lisbon is sunny", id="note-2"),
    ]
)


class AgentState(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]
    context: str


def _model(replay: ReplayServer) -> ChatOpenAI:
    return ChatOpenAI(model="gpt-4o-mini", base_url=replay.url + "/v1", api_key="sk-test", max_retries=0)


def _agent_graph(replay: ReplayServer) -> Any:
    """retrieve → agent ⇄ tools (two tools), the usual tool-calling loop."""
    model = _model(replay).bind_tools([get_weather, get_local_time])

    def retrieve(state: AgentState) -> dict[str, Any]:
        documents = NOTES.invoke(str(state["messages"][-1].content))
        return {"context": "\n".join(document.page_content for document in documents)}

    def agent(state: AgentState) -> dict[str, Any]:
        prompt = [SystemMessage(f"Use these notes: {state['context']}"), *state["messages"]]
        return {"messages": [model.invoke(prompt)]}

    graph = StateGraph(AgentState)
    graph.add_node("retrieve", retrieve)
    graph.add_node("agent", agent)
    graph.add_node("tools", ToolNode([get_weather, get_local_time]))
    graph.add_edge(START, "retrieve")
    graph.add_edge("retrieve", "agent")
    graph.add_conditional_edges("agent", tools_condition)
    graph.add_edge("tools", "agent")
    return graph.compile()


@pytest.fixture(params=["provider", "framework"])
def mode(request: pytest.FixtureRequest, telemetry: TelemetryCapture) -> Iterator[str]:
    """Both ways to instrument: with the OpenAI SDK instrumented too (its spans are the LLM spans) and with
    LangChain alone (the framework's)."""
    instrumentors: list[Any] = [LangChainInstrumentor()]
    if request.param == "provider":
        instrumentors.append(OpenAIInstrumentor())
    for instrumentor in instrumentors:
        instrumentor.instrument(**telemetry.kwargs)
    yield request.param
    for instrumentor in instrumentors:
        instrumentor.uninstrument()


# --- reading the tree ---------------------------------------------------------------------------------


class Tree:
    """The finished spans by id, with lookups by name and parent."""

    def __init__(self, spans: Sequence[ReadableSpan]) -> None:
        self.spans = list(spans)
        self.by_id = {span.context.span_id: span for span in spans}
        assert len({span.context.trace_id for span in spans}) == 1, self.describe()

    def named(self, name: str) -> list[ReadableSpan]:
        return [span for span in self.spans if span.name == name]

    def one(self, name: str) -> ReadableSpan:
        found = self.named(name)
        assert len(found) == 1, (name, self.describe())
        return found[0]

    def parent(self, span: ReadableSpan) -> ReadableSpan | None:
        return None if span.parent is None else self.by_id[span.parent.span_id]

    def children(self, span: ReadableSpan) -> list[ReadableSpan]:
        return [child for child in self.spans if self.parent(child) is span]

    def llm_spans(self) -> list[ReadableSpan]:
        return [span for span in self.spans if (span.attributes or {}).get("gen_ai.operation.name") == "chat"]

    def describe(self) -> str:
        lines: list[str] = []

        def walk(span: ReadableSpan, depth: int) -> None:
            lines.append("  " * depth + span.name)
            for child in sorted(self.children(span), key=lambda item: item.start_time or 0):
                walk(child, depth + 1)

        for root in (
            span for span in self.spans if span.parent is None or span.parent.span_id not in self.by_id
        ):
            walk(root, 0)
        return "\n".join(lines)


def _attribute(span: ReadableSpan, key: str) -> Any:
    return (span.attributes or {}).get(key)


def _tokens(spans: Sequence[ReadableSpan]) -> tuple[int, int]:
    return (
        sum(int(_attribute(span, "gen_ai.usage.input_tokens")) for span in spans),
        sum(int(_attribute(span, "gen_ai.usage.output_tokens")) for span in spans),
    )


def _subtree(span: ReadableSpan) -> tuple[int, int]:
    return int(_attribute(span, SUBTREE_INPUT_TOKENS)), int(_attribute(span, SUBTREE_OUTPUT_TOKENS))


def _expected_llm_scope(mode: str) -> str:
    return OPENAI_SCOPE if mode == "provider" else LANGCHAIN_SCOPE


# --- tests --------------------------------------------------------------------------------------------


def test_langgraph_agent_run_is_one_tree_with_one_llm_span_per_call(
    mode: str, telemetry: TelemetryCapture, replay: ReplayServer, recording: Recording
) -> None:
    replay.set_routes(recording("langchain/agent.json"))
    result = _agent_graph(replay).invoke({"messages": [HumanMessage("Weather and time in Paris?")]})
    assert "umbrella" in result["messages"][-1].content

    tree = Tree(telemetry.spans())
    root = tree.one("invoke_workflow LangGraph")
    assert root.parent is None
    assert _attribute(root, "gen_ai.operation.name") == "invoke_workflow"
    assert _attribute(root, "gen_ai.workflow.name") == "LangGraph"

    retrieve = tree.one("retrieve")
    assert tree.parent(retrieve) is root
    retrieval = tree.one("retrieval NotesRetriever")
    assert tree.parent(retrieval) is retrieve
    assert _attribute(retrieval, "gen_ai.operation.name") == "retrieval"
    assert _attribute(retrieval, "gen_ai.data_source.id") == "NotesRetriever"

    agents = tree.named("invoke_agent agent")
    assert len(agents) == 2, tree.describe()  # the agent node ran before and after the tools
    llm_spans = tree.llm_spans()
    assert len(llm_spans) == len(replay.requests) == 2, tree.describe()
    for agent in agents:
        assert tree.parent(agent) is root
        assert _attribute(agent, "gen_ai.agent.name") == "agent"
        (llm,) = [child for child in tree.children(agent) if child in llm_spans]
        assert llm.instrumentation_scope is not None
        assert llm.instrumentation_scope.name == _expected_llm_scope(mode)
        assert llm.name == "chat gpt-4o-mini"
        if mode == "framework":
            assert _subtree(agent) == _tokens([llm])

    tools = tree.one("tools")
    assert tree.parent(tools) is root
    executed = sorted(tree.children(tools), key=lambda span: span.name)
    assert [span.name for span in executed] == ["execute_tool get_local_time", "execute_tool get_weather"]
    assert [_attribute(span, "gen_ai.tool.call.id") for span in executed] == [
        "call_tm3Rz8Vb4Nc6",
        "call_wx7Kp2Lm9Qa1",
    ]
    assert {_attribute(span, "gen_ai.tool.type") for span in executed} == {"function"}
    assert _attribute(executed[1], "gen_ai.tool.description") == "Current weather for a city."

    assert _subtree(root) == (320, 55)  # the recording's usage: 120 + 200 in, 30 + 25 out
    assert sorted(_subtree(agent) for agent in agents) == [(120, 30), (200, 25)]
    if mode == "framework":
        assert _tokens(llm_spans) == (320, 55)
    # The routing function is a plain step of the node it routes; LangGraph's internal runs make no span.
    routes = tree.named("tools_condition")
    assert [tree.parent(span) for span in routes] == agents or [
        tree.parent(span) for span in routes
    ] == agents[::-1]
    assert all(_attribute(span, "gen_ai.operation.name") is None for span in routes)
    assert len(tree.spans) == 1 + 2 + 2 * 3 + 3, tree.describe()


class FanOut(TypedDict):
    topic: str
    notes: Annotated[list[str], operator.add]


def test_langgraph_async_parallel_branches_and_threaded_calls_keep_their_parents(
    mode: str, telemetry: TelemetryCapture, replay: ReplayServer, recording: Recording
) -> None:
    """Two branches run concurrently as asyncio tasks; one of them calls the model and a tool from a
    ThreadPoolExecutor thread, where the OpenTelemetry context is empty: parents still follow the runs."""
    replay.set_routes(recording("langchain/answer.json"))
    model = _model(replay)
    pool = ThreadPoolExecutor(max_workers=2)

    context_after_call: list[tuple[bool, bool]] = []

    async def left(state: FanOut, config: RunnableConfig) -> dict[str, Any]:
        answer = await model.ainvoke([HumanMessage(f"left on {state['topic']}")], config)
        # The model call's context is gone again (async agenerate ends the call in another task).
        context_after_call.append(
            (trace.get_current_span().get_span_context().is_valid, llm_spans_suppressed())
        )
        return {"notes": [str(answer.content)]}

    async def right(state: FanOut, config: RunnableConfig) -> dict[str, Any]:
        def in_thread() -> list[str]:
            weather = get_weather.invoke({"city": state["topic"]}, config)
            answer = model.invoke([HumanMessage(f"right on {weather}")], config)
            return [weather, str(answer.content)]

        return {"notes": await asyncio.get_running_loop().run_in_executor(pool, in_thread)}

    graph = StateGraph(FanOut)
    graph.add_node("left", left)
    graph.add_node("right", right)
    graph.add_edge(START, "left")
    graph.add_edge(START, "right")
    graph.add_edge("left", END)
    graph.add_edge("right", END)
    try:
        result = asyncio.run(graph.compile().ainvoke({"topic": "Paris", "notes": []}))
    finally:
        pool.shutdown()
    assert len(result["notes"]) == 3
    assert context_after_call == [(False, False)]

    tree = Tree(telemetry.spans())
    root = tree.one("invoke_workflow LangGraph")
    left_span, right_span = tree.one("invoke_agent left"), tree.one("invoke_agent right")
    assert tree.parent(left_span) is root and tree.parent(right_span) is root
    llm_spans = tree.llm_spans()
    assert len(llm_spans) == len(replay.requests) == 2, tree.describe()
    assert {span.instrumentation_scope.name for span in llm_spans if span.instrumentation_scope} == {
        _expected_llm_scope(mode)
    }
    assert [tree.parent(span) for span in llm_spans].count(left_span) == 1, tree.describe()
    assert [tree.parent(span) for span in llm_spans].count(right_span) == 1, tree.describe()
    assert tree.parent(tree.one("execute_tool get_weather")) is right_span
    assert _subtree(left_span) == _subtree(right_span) == (40, 7)
    assert _subtree(root) == (80, 14)
    if mode == "framework":
        assert _tokens(llm_spans) == (80, 14)


def test_langgraph_provider_llm_spans_carry_the_usage_the_roll_up_sums(
    telemetry: TelemetryCapture, replay: ReplayServer, recording: Recording
) -> None:
    """With the OpenAI SDK instrumented, its spans' usage adds up to the workflow's subtree sums (newer
    ChatOpenAI releases call the SDK through with_raw_response: the provider spans read those too)."""
    replay.set_routes(recording("langchain/agent.json"))
    instrumentors: list[Any] = [LangChainInstrumentor(), OpenAIInstrumentor()]
    for instrumentor in instrumentors:
        instrumentor.instrument(**telemetry.kwargs)
    try:
        _agent_graph(replay).invoke({"messages": [HumanMessage("Weather and time in Paris?")]})
    finally:
        for instrumentor in instrumentors:
            instrumentor.uninstrument()
    tree = Tree(telemetry.spans())
    usage = [
        (_attribute(span, "gen_ai.usage.input_tokens"), _attribute(span, "gen_ai.usage.output_tokens"))
        for span in tree.llm_spans()
    ]
    assert _subtree(tree.one("invoke_workflow LangGraph")) == (320, 55)
    assert sorted(usage) == [(120, 30), (200, 25)]
