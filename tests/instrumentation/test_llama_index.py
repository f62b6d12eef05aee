"""Real LlamaIndex workflows, agents, tools and a vector index (an LLM over the OpenAI SDK against the replay
server, a deterministic local embedding) under LlamaIndexInstrumentor: the finished spans form one tree —
workflow → steps → agent → execute_tool / retrieval / chat — with one LLM span per model call, whether or not
the OpenAI SDK is instrumented too, and token sums rolled up the tree."""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import json
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import openai
import pytest
from llama_index.core import Document, VectorStoreIndex
from llama_index.core.agent.workflow import AgentWorkflow, FunctionAgent
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    ChatResponseAsyncGen,
    ChatResponseGen,
    CompletionResponse,
    CompletionResponseAsyncGen,
    CompletionResponseGen,
    LLMMetadata,
    MessageRole,
)
from llama_index.core.bridge.pydantic import PrivateAttr
from llama_index.core.instrumentation import get_dispatcher  # type: ignore[attr-defined]
from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback
from llama_index.core.llms.function_calling import FunctionCallingLLM
from llama_index.core.llms.llm import ToolSelection
from llama_index.core.retrievers import BaseRetriever
from llama_index.core.tools import BaseTool, FunctionTool
from llama_index.core.workflow import Context, Event, StartEvent, StopEvent, Workflow, step
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode

from llm_observer.instrumentation._agents import SUBTREE_INPUT_TOKENS, SUBTREE_OUTPUT_TOKENS
from llm_observer.instrumentation.handler import llm_spans_suppressed
from llm_observer.instrumentation.llama_index import LlamaIndexInstrumentor
from llm_observer.instrumentation.openai import OpenAIInstrumentor
from llm_observer.instrumentation.testing import ReplayServer, Route, TelemetryCapture
from tests.instrumentation.span_tree import SpanTree as Tree

Recording = Callable[[str], list[Route]]
LLAMA_SCOPE = "llm_observer.instrumentation.llama_index"
OPENAI_SCOPE = "llm_observer.instrumentation.openai"
SECRET = "Zanzibar-7731"


# --- an LLM over the OpenAI SDK, and a local embedding ---------------------------------------------------


def _wire(item: ChatMessage) -> dict[str, Any]:
    wired: dict[str, Any] = {"role": item.role.value, "content": item.content or ""}
    if item.additional_kwargs.get("tool_calls"):
        wired["tool_calls"] = item.additional_kwargs["tool_calls"]
    if item.role == MessageRole.TOOL:
        wired["tool_call_id"] = item.additional_kwargs.get("tool_call_id")
    return wired


class ReplayChat(FunctionCallingLLM):
    """A function-calling LlamaIndex LLM that talks to an OpenAI-compatible server through the openai SDK
    (what ``llama-index-llms-openai`` does), here the replay server."""

    model: str = "gpt-4o-mini"
    base_url: str
    _client: openai.OpenAI = PrivateAttr()
    _aclient: openai.AsyncOpenAI = PrivateAttr()

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._client = openai.OpenAI(base_url=self.base_url, api_key="sk-test", max_retries=0)
        self._aclient = openai.AsyncOpenAI(base_url=self.base_url, api_key="sk-test", max_retries=0)

    @classmethod
    def class_name(cls) -> str:
        return "ReplayChat"

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(model_name=self.model, is_chat_model=True, is_function_calling_model=True)

    def _request(self, messages: Sequence[ChatMessage], kwargs: dict[str, Any]) -> dict[str, Any]:
        request: dict[str, Any] = {"model": self.model, "messages": [_wire(item) for item in messages]}
        if kwargs.get("tools"):
            request["tools"] = kwargs["tools"]
        return request

    @staticmethod
    def _response(completion: Any) -> ChatResponse:
        answer = completion.choices[0].message
        extra = {"tool_calls": [call.model_dump() for call in answer.tool_calls]} if answer.tool_calls else {}
        reply = ChatMessage(role="assistant", content=answer.content, additional_kwargs=extra)
        return ChatResponse(message=reply, raw=completion)

    @llm_chat_callback()
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        return self._response(self._client.chat.completions.create(**self._request(messages, kwargs)))

    @llm_chat_callback()
    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        return self._response(await self._aclient.chat.completions.create(**self._request(messages, kwargs)))

    @llm_chat_callback()
    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        request = self._request(messages, kwargs)

        def chunks() -> ChatResponseGen:
            text = ""
            stream = self._client.chat.completions.create(
                **request, stream=True, stream_options={"include_usage": True}
            )
            for chunk in stream:
                delta = chunk.choices[0].delta.content or "" if chunk.choices else ""
                text += delta
                yield ChatResponse(
                    message=ChatMessage(role="assistant", content=text), delta=delta, raw=chunk
                )

        return chunks()

    @llm_chat_callback()
    async def astream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseAsyncGen:
        request = self._request(messages, kwargs)

        async def chunks() -> ChatResponseAsyncGen:
            if "tools" in request:  # tool calls come whole (releases whose agents always stream)
                yield self._response(await self._aclient.chat.completions.create(**request))
                return
            text = ""
            stream = await self._aclient.chat.completions.create(
                **request, stream=True, stream_options={"include_usage": True}
            )
            async for chunk in stream:
                delta = chunk.choices[0].delta.content or "" if chunk.choices else ""
                text += delta
                yield ChatResponse(
                    message=ChatMessage(role="assistant", content=text), delta=delta, raw=chunk
                )

        return chunks()

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        return CompletionResponse(
            text=self.chat([ChatMessage(role="user", content=prompt)]).message.content or ""
        )

    @llm_completion_callback()
    async def acomplete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        answer = await self.achat([ChatMessage(role="user", content=prompt)])
        return CompletionResponse(text=answer.message.content or "")

    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponseGen:
        raise NotImplementedError("not used by these tests")

    async def astream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseAsyncGen:
        raise NotImplementedError("not used by these tests")

    def _prepare_chat_with_tools(
        self,
        tools: Sequence[BaseTool],
        user_msg: str | ChatMessage | None = None,
        chat_history: list[ChatMessage] | None = None,
        verbose: bool = False,
        allow_parallel_tool_calls: bool = False,
        tool_required: bool = False,
        **kwargs: Any,
    ) -> dict[str, Any]:
        messages = list(chat_history or [])
        if isinstance(user_msg, str):
            messages.append(ChatMessage(role="user", content=user_msg))
        elif user_msg is not None:
            messages.append(user_msg)
        return {"messages": messages, "tools": [tool.metadata.to_openai_tool() for tool in tools], **kwargs}

    def get_tool_calls_from_response(
        self, response: ChatResponse, error_on_no_tool_call: bool = True, **kwargs: Any
    ) -> list[ToolSelection]:
        return [
            ToolSelection(
                tool_id=call["id"],
                tool_name=call["function"]["name"],
                tool_kwargs=json.loads(call["function"]["arguments"]),
            )
            for call in response.message.additional_kwargs.get("tool_calls") or []
        ]


class WordHash(BaseEmbedding):
    """A deterministic local embedding: each word hashed into one of 64 buckets, then normalised (texts
    sharing words are close)."""

    model_name: str = "word-hash-64"

    @classmethod
    def class_name(cls) -> str:
        return "WordHash"

    def _vector(self, text: str) -> list[float]:
        vector = [0.0] * 64
        for word in text.lower().replace("?", " ").replace(".", " ").split():
            vector[hashlib.blake2b(word.encode(), digest_size=2).digest()[0] % 64] += 1.0
        norm = math.sqrt(sum(value * value for value in vector)) or 1.0
        return [value / norm for value in vector]

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._vector(query)

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._vector(query)

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._vector(text)


# --- tools, the index and the workflow ------------------------------------------------------------------


def get_weather(city: str) -> str:
    """Current weather for a city."""
    return f"18°C, light rain in {city}"


def get_local_time(city: str) -> str:
    """Local time in a city."""
    return f"14:05 in {city} ({SECRET})"


def cancel_trip(city: str) -> str:
    """Cancel a trip."""
    raise ValueError(f"the trip to {city} already started")


TOOLS = [FunctionTool.from_defaults(get_weather), FunctionTool.from_defaults(get_local_time)]


@pytest.fixture(scope="module")
def notes() -> BaseRetriever:
    """A vector index over two travel notes, built before any test instruments."""
    documents = [
        Document(text="paris is rainy in spring", doc_id="note-paris"),
        Document(text="lisbon is sunny and warm", doc_id="note-lisbon"),
    ]
    index = VectorStoreIndex.from_documents(documents, embed_model=WordHash())
    return index.as_retriever(similarity_top_k=1)


class Notes(Event):
    question: str
    notes: str


class TravelDesk(Workflow):
    """retrieve (the notes index) → answer (a FunctionAgent with two tools)."""

    def __init__(self, retriever: BaseRetriever, agent: FunctionAgent) -> None:
        super().__init__(timeout=30)
        self.retriever = retriever
        self.agent = agent

    @step
    async def retrieve(self, ev: StartEvent) -> Notes:
        found = await self.retriever.aretrieve(ev.question)
        return Notes(question=ev.question, notes="\n".join(item.get_content() for item in found))

    @step
    async def answer(self, ev: Notes) -> StopEvent:
        result = await self.agent.run(f"{ev.question}\nNotes: {ev.notes}")
        return StopEvent(result=str(result))


def _agent(replay: ReplayServer, tools: Sequence[BaseTool] = TOOLS) -> FunctionAgent:
    return FunctionAgent(
        name="travel",
        description="Plans trips.",
        tools=list(tools),
        llm=_llm(replay),
        streaming=False,
    )


def _llm(replay: ReplayServer) -> ReplayChat:
    return ReplayChat(base_url=replay.url + "/v1")


@pytest.fixture(params=["provider", "framework"])
def mode(request: pytest.FixtureRequest, telemetry: TelemetryCapture) -> Iterator[str]:
    """Both ways to instrument: with the OpenAI SDK instrumented too (its spans are the LLM spans; the
    instrumentor is told that ReplayChat calls OpenAI) and with LlamaIndex alone (the framework's)."""
    instrumentors: list[Any] = [LlamaIndexInstrumentor()]
    if request.param == "provider":
        instrumentors.append(OpenAIInstrumentor())
    for instrumentor in instrumentors:
        instrumentor.instrument(**telemetry.kwargs, llm_providers={"ReplayChat": "openai"})
    yield request.param
    for instrumentor in instrumentors:
        instrumentor.uninstrument()


@pytest.fixture
def instrumented(telemetry: TelemetryCapture) -> Iterator[LlamaIndexInstrumentor]:
    instrumentor = LlamaIndexInstrumentor()
    instrumentor.instrument(**telemetry.kwargs)
    yield instrumentor
    instrumentor.uninstrument()


# --- reading the tree ---------------------------------------------------------------------------------


def _attribute(span: ReadableSpan, key: str) -> Any:
    return (span.attributes or {}).get(key)


def _subtree(span: ReadableSpan) -> tuple[int, int]:
    return int(_attribute(span, SUBTREE_INPUT_TOKENS)), int(_attribute(span, SUBTREE_OUTPUT_TOKENS))


def _tokens(spans: Sequence[ReadableSpan]) -> tuple[int, int]:
    return (
        sum(int(_attribute(span, "gen_ai.usage.input_tokens")) for span in spans),
        sum(int(_attribute(span, "gen_ai.usage.output_tokens")) for span in spans),
    )


def _all_attribute_text(telemetry: TelemetryCapture) -> str:
    return json.dumps([dict(span.attributes or {}) for span in telemetry.spans()], ensure_ascii=False)


def _run_travel_desk(replay: ReplayServer, notes: BaseRetriever, recording: Recording) -> str:
    replay.set_routes(recording("llama_index/agent.json"))
    desk = TravelDesk(notes, _agent(replay))
    return str(asyncio.run(_run(desk, question=f"Weather and time in Paris for {SECRET}?")))


async def _run(workflow: Workflow, **kwargs: Any) -> Any:
    return await workflow.run(**kwargs)


# --- tests --------------------------------------------------------------------------------------------


def test_llama_index_workflow_with_agent_is_one_tree_with_one_llm_span_per_call(
    mode: str, telemetry: TelemetryCapture, replay: ReplayServer, notes: BaseRetriever, recording: Recording
) -> None:
    assert "umbrella" in _run_travel_desk(replay, notes, recording)

    tree = Tree(telemetry.spans())
    root = tree.one("invoke_workflow TravelDesk")
    assert tree.parent(root) is None
    assert _attribute(root, "gen_ai.workflow.name") == "TravelDesk"

    retrieve = tree.one("retrieve")
    assert tree.parent(retrieve) is root
    assert _attribute(retrieve, "gen_ai.operation.name") is None
    retrieval = tree.one("retrieval VectorIndexRetriever")
    assert tree.parent(retrieval) is retrieve
    assert _attribute(retrieval, "gen_ai.operation.name") == "retrieval"
    assert _attribute(retrieval, "gen_ai.data_source.id") == "VectorIndexRetriever"
    # The query's embedding: the local model is no provider SDK, so it is always the framework's span.
    embedding = tree.one("embeddings word-hash-64")
    assert tree.parent(embedding) is retrieval
    assert embedding.instrumentation_scope is not None and embedding.instrumentation_scope.name == LLAMA_SCOPE
    assert _attribute(embedding, "gen_ai.provider.name") == "llama_index"

    answer = tree.one("answer")
    assert tree.parent(answer) is root
    agent = tree.one("invoke_agent travel")
    assert tree.parent(agent) is answer
    assert _attribute(agent, "gen_ai.agent.name") == "travel"
    assert _attribute(agent, "gen_ai.agent.description") == "Plans trips."

    llm_spans = tree.operation("chat")
    assert len(llm_spans) == len(replay.requests) == 2, tree.describe()
    expected_scope = OPENAI_SCOPE if mode == "provider" else LLAMA_SCOPE
    for llm in llm_spans:
        assert tree.parent(llm) is agent
        assert llm.name == "chat gpt-4o-mini"
        assert llm.instrumentation_scope is not None and llm.instrumentation_scope.name == expected_scope
        assert _attribute(llm, "gen_ai.provider.name") == "openai"
        assert _attribute(llm, "gen_ai.response.model") == "gpt-4o-mini-2024-07-18"
    assert sorted(
        (_attribute(span, "gen_ai.usage.input_tokens"), _attribute(span, "gen_ai.usage.output_tokens"))
        for span in llm_spans
    ) == [(150, 32), (230, 21)]

    executed = sorted(tree.operation("execute_tool"), key=lambda span: span.name)
    assert [span.name for span in executed] == ["execute_tool get_local_time", "execute_tool get_weather"]
    assert all(tree.parent(span) is agent for span in executed)
    assert [_attribute(span, "gen_ai.tool.call.id") for span in executed] == [
        "call_Li7Tme3Rk9",
        "call_Li4Wth8Pq2",
    ]
    assert {_attribute(span, "gen_ai.tool.type") for span in executed} == {"function"}
    assert str(_attribute(executed[1], "gen_ai.tool.description")).endswith("Current weather for a city.")

    # The recording's usage, summed up the tree: 150 + 230 in, 32 + 21 out.
    assert _subtree(root) == _subtree(answer) == _subtree(agent) == (380, 53)
    assert SUBTREE_INPUT_TOKENS not in (retrieve.attributes or {})
    assert len(tree.spans) == 10, tree.describe()


def test_llama_index_content_capture_off_records_no_prompt_argument_result_or_document(
    instrumented: LlamaIndexInstrumentor, telemetry: TelemetryCapture, replay: ReplayServer, notes: BaseRetriever,
    recording: Recording,
) -> None:  # fmt: skip
    _run_travel_desk(replay, notes, recording)
    assert len(telemetry.spans()) == 10
    text = _all_attribute_text(telemetry)
    assert SECRET not in text and "paris is rainy" not in text and "Paris" not in text


def test_llama_index_content_capture_on_records_messages_arguments_results_and_documents(
    capture_content: None, telemetry: TelemetryCapture, replay: ReplayServer, notes: BaseRetriever,
    recording: Recording,
) -> None:  # fmt: skip
    instrumentor = LlamaIndexInstrumentor()
    instrumentor.instrument(**telemetry.kwargs)
    try:
        _run_travel_desk(replay, notes, recording)
    finally:
        instrumentor.uninstrument()

    tree = Tree(telemetry.spans())
    retrieval = tree.one("retrieval VectorIndexRetriever")
    assert _attribute(retrieval, "gen_ai.retrieval.query.text") == f"Weather and time in Paris for {SECRET}?"
    (document,) = json.loads(_attribute(retrieval, "gen_ai.retrieval.documents"))
    assert document["content"] == "paris is rainy in spring"
    assert document["id"] and isinstance(document["score"], float)

    local_time = tree.one("execute_tool get_local_time")
    assert json.loads(_attribute(local_time, "gen_ai.tool.call.arguments")) == {"city": "Paris"}
    assert _attribute(local_time, "gen_ai.tool.call.result") == f"14:05 in Paris ({SECRET})"

    first, second = sorted(tree.operation("chat"), key=lambda span: span.start_time or 0)
    asked = json.loads(_attribute(first, "gen_ai.input.messages"))
    assert asked[-1]["role"] == "user"
    assert SECRET in asked[-1]["parts"][0]["content"]
    assert json.loads(_attribute(first, "gen_ai.output.messages")) == [
        {
            "role": "assistant",
            "parts": [
                {"type": "tool_call", "id": "call_Li4Wth8Pq2", "name": "get_weather", "arguments": {"city": "Paris"}},
                {"type": "tool_call", "id": "call_Li7Tme3Rk9", "name": "get_local_time", "arguments": {"city": "Paris"}},
            ],
            "finish_reason": "tool_calls",
        }
    ]  # fmt: skip
    responses = [
        part
        for item in json.loads(_attribute(second, "gen_ai.input.messages"))
        for part in item["parts"]
        if part["type"] == "tool_call_response"
    ]
    assert sorted(part["id"] for part in responses) == ["call_Li4Wth8Pq2", "call_Li7Tme3Rk9"]


class Left(Event):
    topic: str


class Right(Event):
    topic: str


class Said(Event):
    text: str


class FanOut(Workflow):
    """start → (left: async model call) ∥ (right: a sync step, so run in an executor thread, calling a tool
    and the model) → join."""

    def __init__(self, llm: ReplayChat) -> None:
        super().__init__(timeout=30)
        self.llm = llm
        self.seen_after_call: list[tuple[bool, bool]] = []

    @step
    async def start(self, ctx: Context, ev: StartEvent) -> Left | Right | None:
        ctx.send_event(Left(topic=ev.topic))
        ctx.send_event(Right(topic=ev.topic))
        return None

    @step
    async def left(self, ev: Left) -> Said:
        answer = await self.llm.achat([ChatMessage(role="user", content=f"left on {ev.topic}")])
        # The model call's context is gone again.
        self.seen_after_call.append(
            (trace.get_current_span().get_span_context().is_valid, llm_spans_suppressed())
        )
        return Said(text=str(answer.message.content))

    @step
    def right(self, ev: Right) -> Said:
        weather = TOOLS[0].call(city=ev.topic)
        answer = self.llm.chat([ChatMessage(role="user", content=f"right on {weather}")])
        return Said(text=f"{weather} {answer.message.content}")

    @step
    async def join(self, ctx: Context, ev: Said) -> StopEvent | None:
        both = ctx.collect_events(ev, [Said, Said])
        return None if both is None else StopEvent(result=[item.text for item in both])


def test_llama_index_parallel_steps_and_threaded_step_keep_their_parents(
    mode: str, telemetry: TelemetryCapture, replay: ReplayServer, recording: Recording
) -> None:
    """Two steps run at once, one as an asyncio task and one in an executor thread: parents follow
    LlamaIndex's span ids; the steps that call the model are agents; the caller's span is the root."""
    replay.set_routes(recording("llama_index/answer.json"))
    workflow = FanOut(_llm(replay))

    async def main() -> list[str]:
        with telemetry.tracer_provider.get_tracer("app").start_as_current_span("handle request"):
            return list(await workflow.run(topic="Paris"))

    assert len(asyncio.run(main())) == 2
    assert workflow.seen_after_call == [(True, False)]  # the app's own span, nothing of the model call

    tree = Tree(telemetry.spans())
    request = tree.one("handle request")
    root = tree.one("invoke_workflow FanOut")
    assert tree.parent(root) is request
    left, right = tree.one("invoke_agent left"), tree.one("invoke_agent right")
    assert tree.parent(left) is root and tree.parent(right) is root
    assert _attribute(right, "llama_index.workflow.step") == "right"
    llm_spans = tree.operation("chat")
    assert len(llm_spans) == len(replay.requests) == 2, tree.describe()
    assert sorted(tree.parent(span) is left for span in llm_spans) == [False, True], tree.describe()
    assert sorted(tree.parent(span) is right for span in llm_spans) == [False, True], tree.describe()
    assert tree.parent(tree.one("execute_tool get_weather")) is right
    assert _subtree(left) == _subtree(right) == (45, 6)
    assert _subtree(root) == (90, 12)
    if mode == "framework":
        assert _tokens(llm_spans) == (90, 12)
    for name in ("start", "join"):
        assert all(tree.parent(span) is root for span in tree.named(name)), tree.describe()


def test_llama_index_streamed_calls_give_one_span_each_and_leave_the_context_clean(
    instrumented: LlamaIndexInstrumentor,
    telemetry: TelemetryCapture,
    replay: ReplayServer,
    recording: Recording,
) -> None:
    replay.set_routes(recording("openai/chat_stream.json"))
    llm = _llm(replay)
    seen: list[tuple[bool, bool]] = []

    def context_now() -> tuple[bool, bool]:
        return trace.get_current_span().get_span_context().is_valid, llm_spans_suppressed()

    question = [ChatMessage(role="user", content="capital of France?")]
    text = [chunk.message.content for chunk in llm.stream_chat(question)][-1]
    seen.append(context_now())

    async def consume() -> str:
        chunks = [chunk async for chunk in await llm.astream_chat(question)]
        seen.append(context_now())
        return str(chunks[-1].message.content)

    assert asyncio.run(consume()) == text == "Paris is the capital of France."
    assert seen == [(False, False), (False, False)]
    spans = telemetry.spans()
    assert [span.name for span in spans] == ["chat gpt-4o-mini", "chat gpt-4o-mini"]
    for span in spans:
        assert (
            _attribute(span, "gen_ai.usage.input_tokens"),
            _attribute(span, "gen_ai.usage.output_tokens"),
        ) == (
            24,
            7,
        )
        assert float(_attribute(span, "gen_ai.response.time_to_first_chunk")) > 0


def test_llama_index_failing_tool_marks_its_span_and_the_agent_carries_on(
    instrumented: LlamaIndexInstrumentor,
    telemetry: TelemetryCapture,
    replay: ReplayServer,
    recording: Recording,
) -> None:
    replay.set_routes(recording("llama_index/agent.json"))
    # The model asks for get_weather and get_local_time; get_weather is a tool that fails here.
    failing = FunctionTool.from_defaults(cancel_trip, name="get_weather", description="Current weather.")
    agent = _agent(replay, [failing, TOOLS[1]])
    assert "umbrella" in str(asyncio.run(_run(agent, user_msg="Weather and time in Paris?")))

    tree = Tree(telemetry.spans())
    agent_span = tree.one("invoke_agent travel")
    assert agent_span.status.status_code is StatusCode.UNSET
    failed = tree.one("execute_tool get_weather")
    assert tree.parent(failed) is agent_span
    assert failed.status.status_code is StatusCode.ERROR
    assert _attribute(failed, "error.type") == "ValueError"
    assert "gen_ai.tool.call.result" not in (failed.attributes or {})
    assert tree.one("execute_tool get_local_time").status.status_code is StatusCode.UNSET


def test_llama_index_agent_workflow_turns_are_agent_invocations(
    instrumented: LlamaIndexInstrumentor,
    telemetry: TelemetryCapture,
    replay: ReplayServer,
    recording: Recording,
) -> None:
    """AgentWorkflow runs its agents' turns itself: each turn is an invoke_agent span under the workflow,
    with the turn's model call beneath it; the tools it runs between turns are the workflow's."""
    replay.set_routes(recording("llama_index/agent.json"))
    workflow = AgentWorkflow(agents=[_agent(replay)], root_agent="travel")
    assert "umbrella" in str(asyncio.run(_run(workflow, user_msg="Weather and time in Paris?")))

    tree = Tree(telemetry.spans())
    root = tree.one("invoke_workflow AgentWorkflow")
    turns = sorted(tree.named("invoke_agent travel"), key=lambda span: span.start_time or 0)
    assert len(turns) == 2 and all(tree.parent(turn) is root for turn in turns), tree.describe()
    assert [_attribute(turn, "gen_ai.agent.description") for turn in turns] == ["Plans trips."] * 2
    assert [[child.name for child in tree.children(turn)] for turn in turns] == [["chat gpt-4o-mini"]] * 2
    assert [_subtree(turn) for turn in turns] == [(150, 32), (230, 21)]
    tools = tree.operation("execute_tool")
    assert sorted(str(_attribute(span, "gen_ai.tool.call.id")) for span in tools) == [
        "call_Li4Wth8Pq2",
        "call_Li7Tme3Rk9",
    ]
    assert all(tree.parent(span) is root for span in tools)
    assert _subtree(root) == (380, 53)
    assert len(tree.spans) == 7, tree.describe()


class Broken(Workflow):
    @step
    async def explode(self, ev: StartEvent) -> StopEvent:
        raise RuntimeError("no route to Paris")


def test_llama_index_failing_step_and_model_record_the_error(
    instrumented: LlamaIndexInstrumentor,
    telemetry: TelemetryCapture,
    replay: ReplayServer,
    recording: Recording,
) -> None:
    # Older releases wrap the step's error in an error of their own.
    with pytest.raises(Exception, match="no route"):
        asyncio.run(_run(Broken(timeout=10)))
    tree = Tree(telemetry.spans())
    workflow, explode = tree.one("invoke_workflow Broken"), tree.one("explode")
    assert tree.parent(explode) is workflow
    for span in (workflow, explode):
        assert span.status.status_code is StatusCode.ERROR
    assert _attribute(explode, "error.type") == "RuntimeError"
    assert _attribute(workflow, "error.type") in ("RuntimeError", "WorkflowRuntimeError")

    telemetry.clear()
    replay.set_routes(recording("openai/error_500.json"))
    with pytest.raises(openai.InternalServerError):
        _llm(replay).chat([ChatMessage(role="user", content="hi")])
    chat = telemetry.only_span()
    assert chat.name == "chat gpt-4o-mini"
    assert chat.status.status_code is StatusCode.ERROR
    assert _attribute(chat, "error.type") == "InternalServerError"
    assert not trace.get_current_span().get_span_context().is_valid and not llm_spans_suppressed()


class Echo(Workflow):
    @step
    async def echo(self, ev: StartEvent) -> StopEvent:
        return StopEvent(result=ev.text)


@pytest.mark.skipif(
    not hasattr(get_dispatcher(), "capture_propagation_context"),
    reason="this LlamaIndex release has no propagation context",
)
def test_llama_index_propagation_context_carries_the_callers_trace(
    instrumented: LlamaIndexInstrumentor, telemetry: TelemetryCapture
) -> None:
    """A runtime that starts the workflow elsewhere (here: a fresh context, with no span of the caller's)
    restores LlamaIndex's propagation context first: the run joins the caller's trace."""
    dispatcher = get_dispatcher()
    with telemetry.tracer_provider.get_tracer("app").start_as_current_span("caller"):
        carried = dispatcher.capture_propagation_context()

    async def elsewhere() -> Any:
        dispatcher.restore_propagation_context(carried)
        return await Echo(timeout=10).run(text="hi")

    assert contextvars.Context().run(asyncio.run, elsewhere()) == "hi"
    tree = Tree(telemetry.spans())
    assert tree.parent(tree.one("invoke_workflow Echo")) is tree.one("caller")
    assert tree.parent(tree.one("echo")) is tree.one("invoke_workflow Echo")


def test_llama_index_uninstrument_removes_the_handlers(
    telemetry: TelemetryCapture, replay: ReplayServer, notes: BaseRetriever, recording: Recording
) -> None:
    dispatcher = get_dispatcher()
    before = (list(dispatcher.span_handlers), list(dispatcher.event_handlers))
    instrumentor = LlamaIndexInstrumentor()
    instrumentor.instrument(**telemetry.kwargs)
    instrumentor.instrument(**telemetry.kwargs)  # idempotent: one handler of each
    assert len(dispatcher.span_handlers) == len(before[0]) + 1
    assert len(dispatcher.event_handlers) == len(before[1]) + 1
    instrumentor.uninstrument()
    instrumentor.uninstrument()
    assert (dispatcher.span_handlers, dispatcher.event_handlers) == before
    _run_travel_desk(replay, notes, recording)
    assert telemetry.spans() == ()


def test_llama_index_instrumentor_names_llama_index_core() -> None:
    dependencies: Any = LlamaIndexInstrumentor().instrumentation_dependencies()
    assert [dependency.split()[0] for dependency in dependencies] == ["llama-index-core"]
