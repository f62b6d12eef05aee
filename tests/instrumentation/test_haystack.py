"""Real Haystack pipelines and agents (OpenAIChatGenerator against the replay server, a BM25 retriever over
an InMemoryDocumentStore, two tools) under HaystackInstrumentor: the finished spans form one tree —
workflow → retrieval / components / agent → chat / execute_tool — with one LLM span per model call, whether
or not the OpenAI SDK is instrumented too, token sums rolled up the tree, content only when opted in, errors
recorded, and nothing left behind by uninstrument."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest
from haystack import Document, Pipeline
from haystack.components.agents import Agent
from haystack.components.builders import ChatPromptBuilder
from haystack.components.embedders import OpenAITextEmbedder
from haystack.components.generators.chat import OpenAIChatGenerator
from haystack.components.retrievers import InMemoryBM25Retriever
from haystack.core.errors import PipelineRuntimeError
from haystack.dataclasses import ChatMessage
from haystack.document_stores.in_memory import InMemoryDocumentStore
from haystack.tools.from_function import tool
from haystack.tools.tool import Tool
from haystack.tracing.tracer import is_tracing_enabled
from haystack.tracing.tracer import tracer as haystack_tracer
from haystack.utils import Secret
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode

from llm_observer.instrumentation._agents import SUBTREE_INPUT_TOKENS, SUBTREE_OUTPUT_TOKENS
from llm_observer.instrumentation.haystack import HaystackInstrumentor
from llm_observer.instrumentation.openai import OpenAIInstrumentor
from llm_observer.instrumentation.testing import ReplayServer, Route, TelemetryCapture
from tests.instrumentation.span_tree import SpanTree as Tree

Recording = Callable[[str], list[Route]]
HAYSTACK_SCOPE = "llm_observer.instrumentation.haystack"
OPENAI_SCOPE = "llm_observer.instrumentation.openai"
SECRET = "Zanzibar-7731"


@tool
def get_weather(city: str) -> str:
    """Current weather for a city."""
    return f"18°C, light rain in {city}"


@tool
def get_local_time(city: str) -> str:
    """Local time in a city."""
    return f"14:05 in {city}"


def _store() -> InMemoryDocumentStore:
    store = InMemoryDocumentStore()
    store.write_documents(
        [
            Document(content=f"paris is rainy in spring, ask {SECRET}", id="note-1"),
            Document(content="lisbon is sunny", id="note-2"),
        ]
    )
    return store


def _generator(server: ReplayServer) -> OpenAIChatGenerator:
    return OpenAIChatGenerator(
        model="gpt-4o-mini",
        api_base_url=server.url + "/v1",
        api_key=Secret.from_token("sk-test"),
        max_retries=0,
        timeout=10,
    )


PROMPT = [
    ChatMessage.from_system("Use these notes: {% for d in documents %}{{ d.content }}{% endfor %}"),
    ChatMessage.from_user("{{ question }}"),
]


def _agent_pipeline(server: ReplayServer, tools: Sequence[Tool] = (get_weather, get_local_time)) -> Pipeline:
    """retriever → prompt → agent (a chat generator and two tools)."""
    pipeline = Pipeline()
    pipeline.add_component("retriever", InMemoryBM25Retriever(_store(), top_k=1))
    pipeline.add_component("prompt", ChatPromptBuilder(template=PROMPT, required_variables="*"))
    pipeline.add_component("agent", Agent(chat_generator=_generator(server), tools=list(tools)))
    pipeline.connect("retriever.documents", "prompt.documents")
    pipeline.connect("prompt.prompt", "agent.messages")
    return pipeline


def _inputs(question: str = "Weather and time in Paris?") -> dict[str, Any]:
    return {"retriever": {"query": "paris weather"}, "prompt": {"question": question}}


@pytest.fixture(params=["provider", "framework"])
def mode(request: pytest.FixtureRequest, telemetry: TelemetryCapture) -> Iterator[str]:
    """Both ways to instrument: with the OpenAI SDK instrumented too (its spans are the LLM spans) and with
    Haystack alone (the framework's)."""
    instrumentors: list[Any] = [HaystackInstrumentor()]
    if request.param == "provider":
        instrumentors.append(OpenAIInstrumentor())
    for instrumentor in instrumentors:
        instrumentor.instrument(**telemetry.kwargs)
    yield request.param
    for instrumentor in instrumentors:
        instrumentor.uninstrument()


@pytest.fixture
def instrumented(telemetry: TelemetryCapture) -> Iterator[HaystackInstrumentor]:
    instrumentor = HaystackInstrumentor()
    instrumentor.instrument(**telemetry.kwargs)
    yield instrumentor
    instrumentor.uninstrument()


# --- reading the tree ---------------------------------------------------------------------------------


def _attribute(span: ReadableSpan, key: str) -> Any:
    return (span.attributes or {}).get(key)


def _usage(span: ReadableSpan) -> tuple[int, int]:
    return int(_attribute(span, "gen_ai.usage.input_tokens")), int(
        _attribute(span, "gen_ai.usage.output_tokens")
    )


def _subtree(span: ReadableSpan) -> tuple[int, int]:
    return int(_attribute(span, SUBTREE_INPUT_TOKENS)), int(_attribute(span, SUBTREE_OUTPUT_TOKENS))


def _scope(span: ReadableSpan) -> str:
    assert span.instrumentation_scope is not None
    return span.instrumentation_scope.name


def _expected_llm_scope(mode: str) -> str:
    return OPENAI_SCOPE if mode == "provider" else HAYSTACK_SCOPE


def _all_attribute_text(spans: Sequence[ReadableSpan]) -> str:
    return json.dumps([dict(span.attributes or {}) for span in spans], ensure_ascii=False)


# --- tests --------------------------------------------------------------------------------------------


def test_haystack_pipeline_agent_run_is_one_tree_with_one_llm_span_per_call(
    mode: str, telemetry: TelemetryCapture, replay: ReplayServer, recording: Recording
) -> None:
    replay.set_routes(recording("haystack/agent.json"))
    result = _agent_pipeline(replay).run(_inputs())
    assert "umbrella" in result["agent"]["last_message"].text

    tree = Tree(telemetry.spans())
    root = tree.one("invoke_workflow Pipeline")
    assert root.parent is None
    assert _attribute(root, "gen_ai.operation.name") == "invoke_workflow"
    assert _attribute(root, "gen_ai.workflow.name") == "Pipeline"

    retrieval = tree.one("retrieval retriever")
    assert tree.parent(retrieval) is root
    assert _attribute(retrieval, "gen_ai.operation.name") == "retrieval"
    assert _attribute(retrieval, "gen_ai.data_source.id") == "retriever"
    prompt = tree.one("prompt")
    assert tree.parent(prompt) is root
    assert _attribute(prompt, "gen_ai.operation.name") is None
    assert _attribute(prompt, "haystack.component.type") == "ChatPromptBuilder"
    assert SUBTREE_INPUT_TOKENS not in (prompt.attributes or {})

    agent = tree.one("invoke_agent agent")
    assert tree.parent(agent) is root
    assert _attribute(agent, "gen_ai.agent.name") == "agent"
    # The agent's span holds, in order: model call, the two tools it asked for, model call.
    steps = tree.children(agent)
    llm_spans = tree.llm_spans()
    assert len(llm_spans) == len(replay.requests) == 2, tree.describe()
    assert steps[0] is llm_spans[0] and steps[3] is llm_spans[1], tree.describe()
    assert {span.name for span in steps[1:3]} == {"execute_tool get_weather", "execute_tool get_local_time"}
    for llm in llm_spans:
        assert llm.name == "chat gpt-4o-mini"
        assert _scope(llm) == _expected_llm_scope(mode)
        assert _attribute(llm, "gen_ai.provider.name") == "openai"
        assert _attribute(llm, "gen_ai.request.model") == "gpt-4o-mini"
        assert _attribute(llm, "gen_ai.response.model") == "gpt-4o-mini-2024-07-18"
    assert [_usage(llm) for llm in llm_spans] == [(150, 20), (230, 30)]

    weather, local_time = tree.one("execute_tool get_weather"), tree.one("execute_tool get_local_time")
    assert _attribute(weather, "gen_ai.tool.call.id") == "call_hsWeather01"
    assert _attribute(local_time, "gen_ai.tool.call.id") == "call_hsTime02"
    assert _attribute(weather, "gen_ai.tool.name") == "get_weather"
    assert _attribute(weather, "gen_ai.tool.type") == "function"
    assert _attribute(weather, "gen_ai.tool.description") == "Current weather for a city."

    assert _subtree(root) == _subtree(agent) == (380, 50)
    assert len(tree.spans) == 1 + 2 + 1 + 4, tree.describe()


def test_haystack_user_span_around_a_run_is_the_workflow_parent(
    instrumented: HaystackInstrumentor,
    telemetry: TelemetryCapture,
    replay: ReplayServer,
    recording: Recording,
) -> None:
    replay.set_routes(recording("haystack/agent.json"))
    with telemetry.tracer_provider.get_tracer("app").start_as_current_span("handle request") as outer:
        _agent_pipeline(replay).run(_inputs())
    tree = Tree(telemetry.spans())
    assert tree.parent(tree.one("invoke_workflow Pipeline")) is tree.one("handle request")
    assert not trace.get_current_span().get_span_context().is_valid
    assert outer.get_span_context().trace_id == tree.spans[0].context.trace_id


def test_haystack_content_capture_off_records_no_prompt_argument_result_or_document(
    instrumented: HaystackInstrumentor,
    telemetry: TelemetryCapture,
    replay: ReplayServer,
    recording: Recording,
) -> None:
    replay.set_routes(recording("haystack/agent.json"))
    _agent_pipeline(replay).run(_inputs(f"Weather for {SECRET}?"))
    text = _all_attribute_text(telemetry.spans())
    assert len(telemetry.spans()) == 8
    assert SECRET not in text
    assert "Paris" not in text  # the tools' arguments and results
    assert "gen_ai.input.messages" not in text


def test_haystack_content_capture_on_records_messages_arguments_results_and_documents(
    capture_content: None, telemetry: TelemetryCapture, replay: ReplayServer, recording: Recording
) -> None:
    replay.set_routes(recording("haystack/agent.json"))
    instrumentor = HaystackInstrumentor()
    instrumentor.instrument(**telemetry.kwargs)
    try:
        _agent_pipeline(replay).run(_inputs(f"Weather for {SECRET}?"))
    finally:
        instrumentor.uninstrument()

    tree = Tree(telemetry.spans())
    first, second = tree.llm_spans()
    assert json.loads(str(_attribute(first, "gen_ai.system_instructions"))) == [
        {"type": "text", "content": f"Use these notes: paris is rainy in spring, ask {SECRET}"}
    ]
    assert json.loads(str(_attribute(first, "gen_ai.input.messages"))) == [
        {"role": "user", "parts": [{"type": "text", "content": f"Weather for {SECRET}?"}]}
    ]
    assert json.loads(str(_attribute(first, "gen_ai.output.messages"))) == [
        {
            "role": "assistant",
            "parts": [
                {
                    "type": "tool_call",
                    "id": "call_hsWeather01",
                    "name": "get_weather",
                    "arguments": {"city": "Paris"},
                },
                {
                    "type": "tool_call",
                    "id": "call_hsTime02",
                    "name": "get_local_time",
                    "arguments": {"city": "Paris"},
                },
            ],
            "finish_reason": "tool_calls",
        }
    ]
    definitions = json.loads(str(_attribute(first, "gen_ai.tool.definitions")))
    assert [definition["name"] for definition in definitions] == ["get_weather", "get_local_time"]
    answer_input = json.loads(str(_attribute(second, "gen_ai.input.messages")))
    assert answer_input[-1] == {
        "role": "tool",
        "parts": [{"type": "tool_call_response", "id": "call_hsTime02", "response": "14:05 in Paris"}],
    }

    weather = tree.one("execute_tool get_weather")
    assert json.loads(str(_attribute(weather, "gen_ai.tool.call.arguments"))) == {"city": "Paris"}
    assert _attribute(weather, "gen_ai.tool.call.result") == "18°C, light rain in Paris"
    retrieval = tree.one("retrieval retriever")
    assert _attribute(retrieval, "gen_ai.retrieval.query.text") == "paris weather"
    (document,) = json.loads(str(_attribute(retrieval, "gen_ai.retrieval.documents")))
    assert document["id"] == "note-1"
    assert document["content"] == f"paris is rainy in spring, ask {SECRET}"


def test_haystack_agent_alone_runs_tools_in_threads_under_their_execute_tool_spans(
    mode: str, telemetry: TelemetryCapture, replay: ReplayServer, recording: Recording
) -> None:
    """Haystack runs a step's tool calls in a thread pool: each tool sees its own execute_tool span as the
    current span there (a span the tool starts nests under it), and the spans are siblings under the agent."""
    replay.set_routes(recording("haystack/agent.json"))
    seen: dict[str, tuple[int, int]] = {}
    app_tracer = telemetry.tracer_provider.get_tracer("app")

    def weather(city: str) -> str:
        seen["get_weather"] = (threading.get_ident(), trace.get_current_span().get_span_context().span_id)
        with app_tracer.start_as_current_span("read sensor"):
            return f"18°C in {city}"

    logged: list[dict[str, Any]] = []

    def local_time(city: str) -> str:
        seen["get_local_time"] = (threading.get_ident(), trace.get_current_span().get_span_context().span_id)
        current = haystack_tracer.current_span()
        logged.append(current.get_correlation_data_for_logs() if current is not None else {})
        return f"14:05 in {city}"

    parameters = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    tools = [
        Tool("get_weather", "Current weather for a city.", parameters, weather),
        Tool("get_local_time", "Local time in a city.", parameters, local_time),
    ]
    agent = Agent(chat_generator=_generator(replay), tools=tools)
    result = agent.run([ChatMessage.from_user("Weather and time in Paris?")])
    assert result["step_count"] == 2

    tree = Tree(telemetry.spans())
    root = tree.one("invoke_agent Agent")
    assert root.parent is None
    assert _attribute(root, "gen_ai.agent.name") == "Agent"
    assert {threading.get_ident()} & {ident for ident, _ in seen.values()} == set()
    for name in ("get_weather", "get_local_time"):
        span = tree.one(f"execute_tool {name}")
        assert tree.parent(span) is root
        assert seen[name][1] == span.context.span_id
    assert tree.parent(tree.one("read sensor")) is tree.one("execute_tool get_weather")
    # Haystack's log correlation names the tool's span.
    local_time_span = tree.one("execute_tool get_local_time").context
    assert logged == [
        {
            "trace_id": format(local_time_span.trace_id, "032x"),
            "span_id": format(local_time_span.span_id, "016x"),
        }
    ]
    llm_spans = tree.llm_spans()
    assert len(llm_spans) == 2 and all(tree.parent(span) is root for span in llm_spans)
    assert {_scope(span) for span in llm_spans} == {_expected_llm_scope(mode)}
    assert _subtree(root) == (380, 50)


def _async_pipeline(agent_server: ReplayServer, summary_server: ReplayServer) -> Pipeline:
    """retriever → prompt → (agent ‖ summary): the agent and a plain chat generator run concurrently."""
    pipeline = Pipeline()
    pipeline.add_component("retriever", InMemoryBM25Retriever(_store(), top_k=1))
    pipeline.add_component("prompt", ChatPromptBuilder(template=PROMPT, required_variables="*"))
    pipeline.add_component(
        "agent", Agent(chat_generator=_generator(agent_server), tools=[get_weather, get_local_time])
    )
    pipeline.add_component("summary", _generator(summary_server))
    pipeline.connect("retriever.documents", "prompt.documents")
    pipeline.connect("prompt.prompt", "agent.messages")
    pipeline.connect("prompt.prompt", "summary.messages")
    return pipeline


def test_haystack_async_pipeline_parallel_branches_keep_their_parents(
    mode: str, telemetry: TelemetryCapture, replay: ReplayServer, recording: Recording
) -> None:
    """Pipeline.run_async runs the agent and the summary generator as concurrent tasks (and the agent's tools in
    worker threads): every span still lands under its own branch."""
    replay.set_routes(recording("haystack/agent.json"))
    with ReplayServer(recording("openai/chat.json")) as summary_server:
        summary_port = summary_server.port
        pipeline = _async_pipeline(replay, summary_server)

        async def run() -> dict[str, Any]:
            try:
                return await pipeline.run_async(_inputs())
            finally:
                await pipeline.close_async()

        result = asyncio.run(run())
        assert len(summary_server.requests) == 1
    assert result["summary"]["replies"][0].text == "Paris is the capital of France."
    assert "umbrella" in result["agent"]["last_message"].text

    tree = Tree(telemetry.spans())
    root = tree.one("invoke_workflow Pipeline")
    agent = tree.one("invoke_agent agent")
    assert tree.parent(agent) is root
    assert tree.parent(tree.one("retrieval retriever")) is root
    llm_spans = tree.llm_spans()
    assert len(llm_spans) == 3, tree.describe()
    assert {_scope(span) for span in llm_spans} == {_expected_llm_scope(mode)}
    under_agent = [span for span in llm_spans if tree.parent(span) is agent]
    (summary,) = [span for span in llm_spans if tree.parent(span) is root]
    assert sorted(_usage(span) for span in under_agent) == [(150, 20), (230, 30)]
    assert _usage(summary) == (24, 8)
    for name in ("execute_tool get_weather", "execute_tool get_local_time"):
        assert tree.parent(tree.one(name)) is agent
    assert _subtree(agent) == (380, 50)
    assert _subtree(root) == (404, 58)
    if mode == "framework":
        assert _attribute(summary, "gen_ai.operation.name") == "chat"
        assert _attribute(summary, "server.port") == summary_port
    assert not trace.get_current_span().get_span_context().is_valid


def test_haystack_embedder_component_gives_one_embeddings_span(
    mode: str, telemetry: TelemetryCapture, replay: ReplayServer, recording: Recording
) -> None:
    replay.set_routes(recording("openai/embeddings.json"))
    pipeline = Pipeline()
    embedder = OpenAITextEmbedder(
        model="text-embedding-3-small", api_base_url=replay.url + "/v1", api_key=Secret.from_token("sk-test")
    )
    pipeline.add_component("embed", embedder)
    result = pipeline.run({"embed": {"text": "hello"}})
    assert len(result["embed"]["embedding"]) > 0

    tree = Tree(telemetry.spans())
    root = tree.one("invoke_workflow Pipeline")
    (embeddings,) = [span for span in tree.spans if _attribute(span, "gen_ai.operation.name") == "embeddings"]
    assert embeddings.name == "embeddings text-embedding-3-small"
    assert tree.parent(embeddings) is root
    assert _scope(embeddings) == _expected_llm_scope(mode)
    assert _attribute(embeddings, "gen_ai.usage.input_tokens") == 9
    assert _subtree(root) == (9, 0)
    assert len(tree.spans) == 2, tree.describe()


def test_haystack_failing_tool_is_an_error_span_and_the_agent_goes_on(
    instrumented: HaystackInstrumentor,
    telemetry: TelemetryCapture,
    replay: ReplayServer,
    recording: Recording,
) -> None:
    replay.set_routes(recording("haystack/agent.json"))

    def broken(city: str) -> str:
        raise ConnectionError(f"weather service down for {city}")

    parameters = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    failing = Tool("get_weather", "Current weather for a city.", parameters, broken)
    result = _agent_pipeline(replay, (failing, get_local_time)).run(_inputs())
    assert "umbrella" in result["agent"]["last_message"].text

    tree = Tree(telemetry.spans())
    weather = tree.one("execute_tool get_weather")
    assert weather.status.status_code is StatusCode.ERROR
    assert _attribute(weather, "error.type") == "ToolInvocationError"
    assert "gen_ai.tool.call.result" not in (weather.attributes or {})
    assert tree.one("execute_tool get_local_time").status.status_code is StatusCode.UNSET
    for name in ("invoke_agent agent", "invoke_workflow Pipeline"):
        assert tree.one(name).status.status_code is StatusCode.UNSET


def test_haystack_model_error_ends_every_open_span_with_the_error(
    instrumented: HaystackInstrumentor,
    telemetry: TelemetryCapture,
    replay: ReplayServer,
    recording: Recording,
) -> None:
    replay.set_routes(recording("openai/error_500.json"))
    with pytest.raises(PipelineRuntimeError):
        _agent_pipeline(replay).run(_inputs())

    tree = Tree(telemetry.spans())
    chat = tree.one("chat gpt-4o-mini")
    agent = tree.one("invoke_agent agent")
    workflow = tree.one("invoke_workflow Pipeline")
    assert tree.parent(chat) is agent and tree.parent(agent) is workflow
    for span in (chat, agent, workflow):
        assert span.status.status_code is StatusCode.ERROR, span.name
    # The model's own error on the model call and the agent; Haystack's wrapper on the workflow.
    assert _attribute(chat, "error.type") == _attribute(agent, "error.type") == "InternalServerError"
    assert _attribute(workflow, "error.type") == "PipelineRuntimeError"
    assert tree.one("retrieval retriever").status.status_code is StatusCode.UNSET


def test_haystack_uninstrument_restores_the_tracer_and_the_run_methods(
    telemetry: TelemetryCapture, replay: ReplayServer, recording: Recording
) -> None:
    methods = (Pipeline.run, Pipeline.run_async, Agent.run, Agent.run_async)
    before = haystack_tracer.actual_tracer
    instrumentor = HaystackInstrumentor()
    instrumentor.instrument(**telemetry.kwargs)
    assert is_tracing_enabled()
    assert Pipeline.run is not methods[0]
    instrumentor.uninstrument()

    assert haystack_tracer.actual_tracer is before
    assert (Pipeline.run, Pipeline.run_async, Agent.run, Agent.run_async) == methods
    replay.set_routes(recording("haystack/agent.json"))
    _agent_pipeline(replay).run(_inputs())
    assert telemetry.spans() == ()
    instrumentor.instrument(**telemetry.kwargs)  # and again: instrument after uninstrument works
    try:
        replay.set_routes(recording("haystack/agent.json"))
        _agent_pipeline(replay).run(_inputs())
    finally:
        instrumentor.uninstrument()
    assert len(telemetry.spans()) == 8


def test_haystack_instrumentor_names_haystack_ai() -> None:
    dependencies: Any = HaystackInstrumentor().instrumentation_dependencies()
    assert [dependency.split()[0] for dependency in dependencies] == ["haystack-ai"]
