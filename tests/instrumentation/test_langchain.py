"""Real LangChain runnables, tools and retrievers (ChatOpenAI against the replay server) under
LangChainInstrumentor: span attributes, content capture, errors, and uninstrument."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from langchain_core.callbacks import BaseCallbackManager, CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.language_models import BaseChatModel, BaseLLM
from langchain_core.messages import HumanMessage, SystemMessage
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import RunnableLambda
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode

from llm_observer.instrumentation._agents import SUBTREE_INPUT_TOKENS, SUBTREE_OUTPUT_TOKENS
from llm_observer.instrumentation.handler import llm_spans_suppressed
from llm_observer.instrumentation.langchain import LangChainInstrumentor
from llm_observer.instrumentation.testing import ReplayServer, Route, TelemetryCapture

Recording = Callable[[str], list[Route]]
SECRET = "Zanzibar-7731"


@tool
def lookup_order(order_id: str) -> str:
    """Status of an order."""
    return f"order {order_id} ships tomorrow to {SECRET}"


@tool
def cancel_order(order_id: str) -> str:
    """Cancel an order."""
    raise ValueError(f"order {order_id} already shipped")


class Shelf(BaseRetriever):
    """Every document, whatever the query."""

    documents: list[Document]

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        return self.documents


@pytest.fixture
def instrumented(telemetry: TelemetryCapture) -> Iterator[LangChainInstrumentor]:
    instrumentor = LangChainInstrumentor()
    instrumentor.instrument(**telemetry.kwargs)
    yield instrumentor
    instrumentor.uninstrument()


def _model(replay: ReplayServer) -> ChatOpenAI:
    return ChatOpenAI(model="gpt-4o-mini", base_url=replay.url + "/v1", api_key="sk-test", max_retries=0)


def _span(telemetry: TelemetryCapture, name: str) -> ReadableSpan:
    found = [span for span in telemetry.spans() if span.name == name]
    assert len(found) == 1, [span.name for span in telemetry.spans()]
    return found[0]


def _run_everything(replay: ReplayServer, recording: Recording) -> None:
    """A prompt → model chain (answered by ``langchain/answer.json``), a tool and a retriever, each carrying
    the secret in what it gets or gives."""
    replay.set_routes(recording("langchain/answer.json"))
    chain = ChatPromptTemplate.from_messages(
        [("system", "You are terse."), ("human", "{question}")]
    ) | _model(replay)
    chain.invoke({"question": f"Where does {SECRET} ship?"})
    lookup_order.invoke({"order_id": "A-17"})
    Shelf(documents=[Document(page_content=f"{SECRET} is a depot", id="doc-9")]).invoke(f"about {SECRET}")


def _all_attribute_text(telemetry: TelemetryCapture) -> str:
    return json.dumps([dict(span.attributes or {}) for span in telemetry.spans()], ensure_ascii=False)


def test_langchain_chain_without_provider_instrumentation_gets_the_framework_llm_span(
    instrumented: LangChainInstrumentor,
    telemetry: TelemetryCapture,
    replay: ReplayServer,
    recording: Recording,
) -> None:
    _run_everything(replay, recording)

    workflow = _span(telemetry, "invoke_workflow RunnableSequence")
    chat = _span(telemetry, "chat gpt-4o-mini")
    assert chat.parent is not None and chat.parent.span_id == workflow.context.span_id
    attributes = dict(chat.attributes or {})
    assert attributes["gen_ai.operation.name"] == "chat"
    assert attributes["gen_ai.provider.name"] == "openai"
    assert attributes["gen_ai.request.model"] == "gpt-4o-mini"
    assert attributes["gen_ai.response.model"] == "gpt-4o-mini-2024-07-18"
    # Older langchain-openai releases report no response id.
    assert attributes.get("gen_ai.response.id") in (None, "chatcmpl-LgB1answer")
    assert attributes["gen_ai.response.finish_reasons"] == ("stop",)
    assert (attributes["gen_ai.usage.input_tokens"], attributes["gen_ai.usage.output_tokens"]) == (40, 7)
    workflow_attributes = dict(workflow.attributes or {})
    assert (workflow_attributes[SUBTREE_INPUT_TOKENS], workflow_attributes[SUBTREE_OUTPUT_TOKENS]) == (40, 7)
    # The prompt template is a plain step of the chain, and carries no usage.
    prompt = _span(telemetry, "ChatPromptTemplate")
    assert prompt.parent is not None and prompt.parent.span_id == workflow.context.span_id
    assert SUBTREE_INPUT_TOKENS not in (prompt.attributes or {})

    tool_span = _span(telemetry, "execute_tool lookup_order")
    assert tool_span.parent is None  # invoked on its own: a root of its own trace
    assert dict(tool_span.attributes or {})["gen_ai.operation.name"] == "execute_tool"
    retrieval = _span(telemetry, "retrieval Shelf")
    assert dict(retrieval.attributes or {})["gen_ai.data_source.id"] == "Shelf"


def test_langchain_content_capture_off_records_no_prompt_argument_result_or_document(
    instrumented: LangChainInstrumentor,
    telemetry: TelemetryCapture,
    replay: ReplayServer,
    recording: Recording,
) -> None:
    _run_everything(replay, recording)
    assert len(telemetry.spans()) == 5
    assert SECRET not in _all_attribute_text(telemetry)
    assert "A-17" not in _all_attribute_text(telemetry)


def test_langchain_content_capture_on_records_messages_arguments_results_and_documents(
    capture_content: None, telemetry: TelemetryCapture, replay: ReplayServer, recording: Recording
) -> None:
    instrumentor = LangChainInstrumentor()
    instrumentor.instrument(**telemetry.kwargs)
    try:
        _run_everything(replay, recording)
    finally:
        instrumentor.uninstrument()

    chat = dict(_span(telemetry, "chat gpt-4o-mini").attributes or {})
    assert json.loads(str(chat["gen_ai.system_instructions"])) == [
        {"type": "text", "content": "You are terse."}
    ]
    assert json.loads(str(chat["gen_ai.input.messages"])) == [
        {"role": "user", "parts": [{"type": "text", "content": f"Where does {SECRET} ship?"}]}
    ]
    assert json.loads(str(chat["gen_ai.output.messages"])) == [
        {"role": "assistant", "parts": [{"type": "text", "content": "Noted."}], "finish_reason": "stop"}
    ]
    tool_span = dict(_span(telemetry, "execute_tool lookup_order").attributes or {})
    assert json.loads(str(tool_span["gen_ai.tool.call.arguments"])) == {"order_id": "A-17"}
    assert tool_span["gen_ai.tool.call.result"] == f"order A-17 ships tomorrow to {SECRET}"
    retrieval = dict(_span(telemetry, "retrieval Shelf").attributes or {})
    assert retrieval["gen_ai.retrieval.query.text"] == f"about {SECRET}"
    assert json.loads(str(retrieval["gen_ai.retrieval.documents"])) == [
        {"content": f"{SECRET} is a depot", "id": "doc-9"}
    ]


def test_langchain_failing_tool_and_chain_record_the_error(
    instrumented: LangChainInstrumentor, telemetry: TelemetryCapture
) -> None:
    def run_tool(order_id: str) -> str:
        return str(cancel_order.invoke({"order_id": order_id}))

    with pytest.raises(ValueError, match="already shipped"):
        RunnableLambda(run_tool, name="cancel").invoke("A-17")

    tool_span = _span(telemetry, "execute_tool cancel_order")
    workflow = _span(telemetry, "invoke_workflow cancel")
    for span in (tool_span, workflow):
        assert span.status.status_code is StatusCode.ERROR
        assert dict(span.attributes or {})["error.type"] == "ValueError"
    assert tool_span.parent is not None and tool_span.parent.span_id == workflow.context.span_id
    assert "gen_ai.tool.call.result" not in (tool_span.attributes or {})


def test_langchain_model_error_ends_the_framework_llm_span_with_the_error(
    instrumented: LangChainInstrumentor,
    telemetry: TelemetryCapture,
    replay: ReplayServer,
    recording: Recording,
) -> None:
    replay.set_routes(recording("openai/error_500.json"))
    with pytest.raises(Exception):  # noqa: B017 - whichever openai error class this SDK release raises
        _model(replay).invoke([SystemMessage("be brief"), HumanMessage("hi")])
    chat = _span(telemetry, "chat gpt-4o-mini")
    assert chat.status.status_code is StatusCode.ERROR
    assert "error.type" in (chat.attributes or {})


def test_langchain_streams_sync_and_async_give_one_span_each_and_leave_the_context_clean(
    instrumented: LangChainInstrumentor,
    telemetry: TelemetryCapture,
    replay: ReplayServer,
    recording: Recording,
) -> None:
    replay.set_routes(recording("openai/chat_stream.json"))
    model = ChatOpenAI(
        model="gpt-4o-mini", base_url=replay.url + "/v1", api_key="sk-test", max_retries=0, stream_usage=True
    )
    seen: list[tuple[bool, bool]] = []

    def context_now() -> tuple[bool, bool]:
        return trace.get_current_span().get_span_context().is_valid, llm_spans_suppressed()

    text = "".join(str(chunk.content) for chunk in model.stream("capital of France?"))
    seen.append(context_now())

    async def consume() -> str:
        chunks = [chunk async for chunk in model.astream("capital of France?")]
        seen.append(context_now())
        return "".join(str(chunk.content) for chunk in chunks)

    assert asyncio.run(consume()) == text == "Paris is the capital of France."
    assert seen == [(False, False), (False, False)]
    spans = telemetry.spans()
    assert [span.name for span in spans] == ["chat gpt-4o-mini", "chat gpt-4o-mini"]
    for span in spans:
        attributes = dict(span.attributes or {})
        assert (attributes["gen_ai.usage.input_tokens"], attributes["gen_ai.usage.output_tokens"]) == (24, 7)
        assert float(attributes["gen_ai.response.time_to_first_chunk"]) > 0  # type: ignore[arg-type]


def test_langchain_uninstrument_restores_the_callback_manager(
    telemetry: TelemetryCapture, replay: ReplayServer, recording: Recording
) -> None:
    original = BaseCallbackManager.__init__
    methods = ("generate", "agenerate", "astream")
    originals = [getattr(cls, name) for cls in (BaseChatModel, BaseLLM) for name in methods]
    one_call = (BaseChatModel._generate_with_cache, BaseChatModel._agenerate_with_cache)
    instrumentor = LangChainInstrumentor()
    instrumentor.instrument(**telemetry.kwargs)
    assert BaseCallbackManager.__init__ is not original
    made_while_instrumented = BaseCallbackManager(handlers=[])
    assert made_while_instrumented.handlers
    instrumentor.uninstrument()

    assert BaseCallbackManager.__init__ is original
    assert [getattr(cls, name) for cls in (BaseChatModel, BaseLLM) for name in methods] == originals
    assert (BaseChatModel._generate_with_cache, BaseChatModel._agenerate_with_cache) == one_call
    assert BaseCallbackManager(handlers=[]).handlers == []
    _run_everything(replay, recording)
    lookup_order.invoke({"order_id": "A-18"}, {"callbacks": made_while_instrumented})
    assert telemetry.spans() == ()


def test_langchain_instrumentor_names_langchain_core() -> None:
    dependencies: Any = LangChainInstrumentor().instrumentation_dependencies()
    assert [dependency.split()[0] for dependency in dependencies] == ["langchain-core"]
