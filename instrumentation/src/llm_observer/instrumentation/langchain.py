"""LangChain and LangGraph instrumentation: one tree of spans per run, from LangChain's callbacks.

``LangChainInstrumentor().instrument()`` adds one callback handler to every LangChain callback manager (by
wrapping ``BaseCallbackManager.__init__``, so it is inherited by every child run, sync or async, LangGraph
included); ``uninstrument()`` restores every wrapped method and silences the handler in managers already
made. It is a :class:`~llm_observer.instrumentation._instrumentor.ProviderInstrumentor` whose targets are
LangChain's methods (the module's ``_TARGETS``).

What each run becomes (through :class:`~llm_observer.instrumentation._agents.AgentSpans`, parented by
LangChain's run ids):

- the top-level chain (a LangGraph graph, an ``AgentExecutor``, a runnable sequence) → ``invoke_workflow
  {name}``;
- a LangGraph node, or another chain, that calls a model → ``invoke_agent {name}`` (the nearest node
  above the model call, else the nearest chain); other nodes and chains → a span named for the step;
  LangGraph's internal runs (tagged ``langsmith:hidden``) → no span;
- a tool → ``execute_tool {tool}`` (``gen_ai.tool.call.id`` from the model's tool call); a retriever →
  ``retrieval {retriever}``;
- a chat model or LLM call → ONE LLM span: the provider SDK's span when llm-observer's instrumentor for that
  provider (told by LangChain's ``ls_provider``) is active, nested under the right step; otherwise the
  framework's own ``chat {model}`` span with model, tokens (the result's usage) and, under content capture,
  the messages.

The context that makes a model call's parent step current is attached by the start callback and restored by
the end callback; ``generate``, ``agenerate`` and ``astream`` of chat models and LLMs are wrapped in
:meth:`~llm_observer.instrumentation._agents.AgentSpans.llm_scope`, because LangChain reports the end of an
async call from a task of its own (its async end callbacks are shielded tasks), and the chat model's
``_generate_with_cache``/``_agenerate_with_cache`` run the provider request in its call's context, because
older releases also start async callbacks in tasks of their own.

``instrument()`` takes ``tracer_provider``, ``meter_provider``, ``logger_provider`` and ``capture_content``
as the provider instrumentors do.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from importlib import import_module
from typing import Any, ClassVar
from uuid import UUID

from opentelemetry import context as otel_context

from llm_observer.instrumentation import __version__
from llm_observer.instrumentation._agents import AgentSpans
from llm_observer.instrumentation._content import (
    Message,
    Part,
    json_able,
    message,
    text_part,
    tool_call_part,
    tool_response_part,
)
from llm_observer.instrumentation._instrumentor import ProviderInstrumentor, Target, WrapperFactory
from llm_observer.instrumentation._util import integer, put_number, put_strings
from llm_observer.instrumentation._wrappers import WraptWrapper
from llm_observer.instrumentation.handler import GenAIHandler, LLMCall
from llm_observer.semconv import attributes as attr
from llm_observer.semconv import genai_values as gv

__all__ = ["LangChainInstrumentor"]

_log = logging.getLogger(__name__)

_instruments = ("langchain-core >= 0.3.0, < 2",)

#: LangGraph tags its internal runs (channel writes, routing) with this.
_HIDDEN_TAG = "langsmith:hidden"
#: Marker of a LangGraph node step (see AgentSpans.promote_nearest).
_NODE = "node"

_CHAT = "langchain_core.language_models.chat_models"
_LLMS = "langchain_core.language_models.llms"

# kind: "manager" adds the callback handler to each new callback manager; "scope" runs a whole model call,
# callbacks included, in AgentSpans.llm_scope (async async-generator methods: "stream_scope"); "one_call"
# runs one provider request in its call's context.
_TARGETS = (
    Target("langchain_core.callbacks.base", "BaseCallbackManager.__init__", "manager"),
    Target(_CHAT, "BaseChatModel.generate", "scope"),
    Target(_CHAT, "BaseChatModel.agenerate", "scope"),
    Target(_CHAT, "BaseChatModel.astream", "stream_scope"),
    Target(_LLMS, "BaseLLM.generate", "scope"),
    Target(_LLMS, "BaseLLM.agenerate", "scope"),
    Target(_LLMS, "BaseLLM.astream", "stream_scope"),
    Target(_CHAT, "BaseChatModel._generate_with_cache", "one_call"),
    Target(_CHAT, "BaseChatModel._agenerate_with_cache", "one_call"),
)

#: LangChain's ``ls_provider`` → (``gen_ai.provider.name``, the llm-observer instrumentor whose span a call
#: through that integration gets: module, class).
_PROVIDERS: Mapping[str, tuple[str, tuple[str, str] | None]] = {
    "openai": (gv.PROVIDER_OPENAI, ("openai", "OpenAIInstrumentor")),
    "azure": (gv.PROVIDER_AZURE_AI_OPENAI, ("openai", "OpenAIInstrumentor")),
    "deepseek": (gv.PROVIDER_DEEPSEEK, ("openai", "OpenAIInstrumentor")),
    "xai": (gv.PROVIDER_X_AI, ("openai", "OpenAIInstrumentor")),
    "anthropic": (gv.PROVIDER_ANTHROPIC, ("anthropic", "AnthropicInstrumentor")),
    "cohere": (gv.PROVIDER_COHERE, ("cohere", "CohereInstrumentor")),
    "mistralai": (gv.PROVIDER_MISTRAL_AI, ("mistral", "MistralInstrumentor")),
    "ollama": (gv.PROVIDER_OLLAMA, ("ollama", "OllamaInstrumentor")),
    "google_genai": (gv.PROVIDER_GCP_GEN_AI, ("google_genai", "GoogleGenAIInstrumentor")),
    "amazon_bedrock": (gv.PROVIDER_AWS_BEDROCK, ("bedrock", "BedrockInstrumentor")),
    "amazon_bedrock_converse": (gv.PROVIDER_AWS_BEDROCK, ("bedrock", "BedrockInstrumentor")),
    "huggingface": (gv.PROVIDER_HUGGING_FACE, ("huggingface", "HuggingFaceInstrumentor")),
    "groq": (gv.PROVIDER_GROQ, None),
}

_ROLES = {"human": "user", "ai": "assistant", "system": "system", "tool": "tool", "function": "tool"}


def _provider_instrumented(ls_provider: str | None) -> bool:
    """Whether llm-observer's instrumentor for this LangChain integration's SDK is active (then its span is
    the call's LLM span)."""
    entry = _PROVIDERS.get(ls_provider or "")
    if entry is None or entry[1] is None:
        return False
    module, name = entry[1]
    try:
        instrumentor = getattr(import_module(f"llm_observer.instrumentation.{module}"), name)
    except (ImportError, AttributeError):
        return False
    instance = instrumentor._instance
    return instance is not None and bool(instance.is_instrumented_by_opentelemetry)


class _Callbacks:
    """The callback handler (methods of ``BaseCallbackHandler``; the base class is mixed in when LangChain
    is imported, see :func:`_handler_class`)."""

    # Inline: async runs call it in the running task, so the context start_llm attaches is the one the
    # model call sees; never raise into the user's run.
    run_inline = True
    raise_error = False

    def __init__(self, agents: AgentSpans) -> None:
        super().__init__()
        self.agents = agents
        self.enabled = True
        self._calls: dict[UUID, LLMCall] = {}

    # --- chains (LangGraph graphs and nodes) ----------------------------------------------------------

    def on_chain_start(
        self,
        serialized: Mapping[str, Any] | None,
        inputs: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: Sequence[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if not self.enabled:
            return
        name = _run_name(serialized, kwargs, "chain")
        if tags and _HIDDEN_TAG in tags:
            self.agents.start_hidden(run_id, parent_run_id)
        elif parent_run_id is None:
            self.agents.start_workflow(run_id, None, name)
        elif metadata and metadata.get("langgraph_node") == name:
            self.agents.start_step(run_id, parent_run_id, name, _node_attributes(metadata), marker=_NODE)
        else:
            self.agents.start_step(run_id, parent_run_id, name)

    def on_chain_end(self, outputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self.agents.end(run_id)

    def on_chain_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self.agents.end(run_id, error=error)

    # --- tools and retrievers -------------------------------------------------------------------------

    def on_tool_start(
        self,
        serialized: Mapping[str, Any] | None,
        input_str: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        inputs: Any = None,
        **kwargs: Any,
    ) -> None:
        if not self.enabled:
            return
        self.agents.start_tool(
            run_id,
            parent_run_id,
            _run_name(serialized, kwargs, "tool"),
            call_id=kwargs.get("tool_call_id"),
            description=(serialized or {}).get("description"),
            arguments=input_str if inputs is None else inputs,
        )

    def on_tool_end(self, output: Any, *, run_id: UUID, **kwargs: Any) -> None:
        # Older langchain-core releases (0.3.0) pass no tool_call_id to on_tool_start; the ToolMessage has it.
        call_id = getattr(output, "tool_call_id", None)
        self.agents.end_tool(run_id, getattr(output, "content", output), call_id=call_id)

    def on_tool_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self.agents.end_tool(run_id, error=error)

    def on_retriever_start(
        self,
        serialized: Mapping[str, Any] | None,
        query: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        if not self.enabled:
            return
        self.agents.start_retrieval(run_id, parent_run_id, _run_name(serialized, kwargs, "retriever"), query)

    def on_retriever_end(self, documents: Sequence[Any], *, run_id: UUID, **kwargs: Any) -> None:
        self.agents.end_retrieval(run_id, [_document(document) for document in documents])

    def on_retriever_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self.agents.end_retrieval(run_id, error=error)

    # --- models ---------------------------------------------------------------------------------------

    def on_chat_model_start(
        self,
        serialized: Mapping[str, Any] | None,
        messages: list[list[Any]],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        metadata: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if not self.enabled:
            return
        inputs = messages[0] if messages else []
        self._start_model(gv.OP_CHAT, run_id, parent_run_id, metadata, kwargs, lambda: _messages(inputs))

    def on_llm_start(
        self,
        serialized: Mapping[str, Any] | None,
        prompts: list[str],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        metadata: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if not self.enabled:
            return
        prompt_messages = [message("user", [text_part(prompt)]) for prompt in prompts]
        self._start_model(
            gv.OP_TEXT_COMPLETION, run_id, parent_run_id, metadata, kwargs, lambda: (prompt_messages, [])
        )

    def on_llm_new_token(self, token: str, *, run_id: UUID, **kwargs: Any) -> None:
        self.agents.first_chunk(run_id)

    def on_llm_end(self, response: Any, *, run_id: UUID, **kwargs: Any) -> None:
        call = self._calls.pop(run_id, None)
        usage = _usage(response)
        if call is not None:
            try:
                _read_result(call, response, usage, self.agents.handler.capture_content)
            except Exception:
                _log.debug("Could not read a LangChain model result.", exc_info=True)
        self.agents.end_llm(run_id, usage[0], usage[1])

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._calls.pop(run_id, None)
        self.agents.end_llm(run_id, None, None, error)

    def _start_model(
        self,
        operation: str,
        run_id: UUID,
        parent_run_id: UUID | None,
        metadata: Mapping[str, Any] | None,
        kwargs: Mapping[str, Any],
        content: Callable[[], tuple[list[Message], list[Part]]],
    ) -> None:
        metadata = metadata or {}
        self.agents.promote_nearest(parent_run_id, gv.OP_INVOKE_AGENT, _NODE)
        ls_provider = metadata.get("ls_provider")
        call = None
        if not _provider_instrumented(ls_provider):
            call = _model_call(operation, ls_provider, metadata, kwargs.get("invocation_params") or {})
            if self.agents.handler.capture_content:
                call.input_messages, call.system_instructions = content()
            self._calls[run_id] = call
        self.agents.start_llm(run_id, parent_run_id, call)


def _handler_class() -> type[Any]:
    """``_Callbacks`` with LangChain's ``BaseCallbackHandler`` as its base (imported only on instrument)."""
    from langchain_core.callbacks import BaseCallbackHandler

    return type("LLMObserverCallbackHandler", (_Callbacks, BaseCallbackHandler), {})


class LangChainInstrumentor(ProviderInstrumentor):
    """Adds llm-observer's callback handler to every LangChain callback manager (see module docstring)."""

    instruments = _instruments
    targets = _TARGETS
    _callbacks: ClassVar[_Callbacks | None] = None

    def _wrapper_factory(self, handler: GenAIHandler, kwargs: Mapping[str, Any]) -> WrapperFactory:
        agents = AgentSpans(handler, __name__, __version__, tracer_provider=kwargs.get("tracer_provider"))
        callbacks: _Callbacks = _handler_class()(agents)
        type(self)._callbacks = callbacks
        wrappers = _wrappers(agents, callbacks)

        def make(target: Target, is_async: bool) -> WraptWrapper:
            return wrappers[target.kind, is_async]

        return make

    def _uninstrument(self, **kwargs: Any) -> None:
        super()._uninstrument(**kwargs)
        callbacks, type(self)._callbacks = type(self)._callbacks, None
        if callbacks is not None:
            callbacks.enabled = False


def _wrappers(agents: AgentSpans, callbacks: _Callbacks) -> dict[tuple[str, bool], WraptWrapper]:
    """The wrapper for each (target kind, is the method async)."""

    def manager(wrapped: Callable[..., None], instance: Any, args: Any, kw: Any) -> None:
        wrapped(*args, **kw)
        try:
            if not any(isinstance(existing, _Callbacks) for existing in instance.inheritable_handlers):
                instance.add_handler(callbacks, inherit=True)
        except Exception:
            _log.debug("Could not add the llm-observer callback handler.", exc_info=True)

    def scope(wrapped: Callable[..., Any], instance: Any, args: Any, kw: Any) -> Any:
        with agents.llm_scope():
            return wrapped(*args, **kw)

    async def scope_async(wrapped: Callable[..., Any], instance: Any, args: Any, kw: Any) -> Any:
        with agents.llm_scope():
            return await wrapped(*args, **kw)

    async def stream_scope(
        wrapped: Callable[..., Any], instance: Any, args: Any, kw: Any
    ) -> AsyncIterator[Any]:
        with agents.llm_scope():
            async for item in wrapped(*args, **kw):
                yield item

    # Older langchain-core runs async start callbacks in tasks of their own, so the context they attach
    # never reaches the provider request: the request is run in its call's context here.
    def one_call(wrapped: Callable[..., Any], instance: Any, args: Any, kw: Any) -> Any:
        context = _run_context(agents, kw)
        if context is None:
            return wrapped(*args, **kw)
        token = otel_context.attach(context)
        try:
            return wrapped(*args, **kw)
        finally:
            otel_context.detach(token)

    async def one_call_async(wrapped: Callable[..., Any], instance: Any, args: Any, kw: Any) -> Any:
        context = _run_context(agents, kw)
        if context is None:
            return await wrapped(*args, **kw)
        token = otel_context.attach(context)
        try:
            return await wrapped(*args, **kw)
        finally:
            otel_context.detach(token)

    return {
        ("manager", False): manager,
        ("scope", False): scope,
        ("scope", True): scope_async,
        ("stream_scope", False): stream_scope,
        ("one_call", False): one_call,
        ("one_call", True): one_call_async,
    }


def _run_context(agents: AgentSpans, kwargs: Mapping[str, Any]) -> otel_context.Context | None:
    run_manager = kwargs.get("run_manager")
    run_id = getattr(run_manager, "run_id", None)
    return None if run_id is None else agents.llm_context(run_id)


# --- reading LangChain objects ------------------------------------------------------------------------


def _run_name(serialized: Mapping[str, Any] | None, kwargs: Mapping[str, Any], default: str) -> str:
    name = kwargs.get("name")
    if isinstance(name, str) and name:
        return name
    if serialized:
        if isinstance(serialized.get("name"), str):
            return str(serialized["name"])
        ids = serialized.get("id")
        if isinstance(ids, list) and ids:
            return str(ids[-1])
    return default


def _node_attributes(metadata: Mapping[str, Any]) -> dict[str, Any]:
    attributes: dict[str, Any] = {"langgraph.node": str(metadata["langgraph_node"])}
    step = integer(metadata.get("langgraph_step"))
    if step is not None:
        attributes["langgraph.step"] = step
    return attributes


def _model_call(
    operation: str, ls_provider: str | None, metadata: Mapping[str, Any], params: Mapping[str, Any]
) -> LLMCall:
    provider = _PROVIDERS.get(ls_provider or "", (ls_provider or "langchain", None))[0]
    model = metadata.get("ls_model_name") or params.get("model") or params.get("model_name")
    call = LLMCall(operation, provider, str(model) if model else None)
    put_number(call.attributes, attr.GEN_AI_REQUEST_TEMPERATURE, metadata.get("ls_temperature"))
    put_number(call.attributes, attr.GEN_AI_REQUEST_MAX_TOKENS, metadata.get("ls_max_tokens"))
    put_strings(call.attributes, attr.GEN_AI_REQUEST_STOP_SEQUENCES, metadata.get("ls_stop"))
    put_number(call.attributes, attr.GEN_AI_REQUEST_TOP_P, params.get("top_p"))
    put_number(call.attributes, attr.GEN_AI_REQUEST_SEED, params.get("seed"))
    call.streaming = bool(params.get("stream"))
    return call


def _text_parts(content: Any) -> list[Part]:
    if isinstance(content, str):
        return [text_part(content)] if content else []
    parts: list[Part] = []
    for block in content or ():
        if isinstance(block, str):
            parts.append(text_part(block))
        elif isinstance(block, Mapping) and block.get("type") == "text":
            parts.append(text_part(str(block.get("text", ""))))
        elif isinstance(block, Mapping) and block.get("type") == "reasoning":
            parts.append({"type": "reasoning", "content": str(block.get("reasoning", ""))})
    return parts


def _message_parts(item: Any) -> list[Part]:
    kind = getattr(item, "type", "")
    if kind == "tool":
        return [tool_response_part(getattr(item, "tool_call_id", None), json_able(item.content))]
    parts = _text_parts(getattr(item, "content", ""))
    for tool_call in getattr(item, "tool_calls", None) or ():
        parts.append(tool_call_part(tool_call.get("id"), tool_call.get("name"), tool_call.get("args")))
    return parts


def _messages(items: Sequence[Any]) -> tuple[list[Message], list[Part]]:
    """LangChain messages → (input messages, system instructions) in the GenAI parts format."""
    messages: list[Message] = []
    system: list[Part] = []
    for item in items:
        role = _ROLES.get(getattr(item, "type", ""), str(getattr(item, "role", "user")))
        if role == "system":
            system.extend(_text_parts(item.content))
        else:
            messages.append(message(role, _message_parts(item)))
    return messages, system


def _generations(response: Any) -> list[Any]:
    generations = getattr(response, "generations", None) or []
    return list(generations[0]) if generations else []


def _usage(response: Any) -> tuple[int | None, int | None]:
    """(input, output) tokens of an ``LLMResult``: the messages' ``usage_metadata``, else ``llm_output``."""
    input_tokens = output_tokens = None
    for generation in _generations(response):
        usage = getattr(getattr(generation, "message", None), "usage_metadata", None)
        if usage:
            input_tokens = (input_tokens or 0) + int(usage.get("input_tokens", 0))
            output_tokens = (output_tokens or 0) + int(usage.get("output_tokens", 0))
    if input_tokens is None and output_tokens is None:
        token_usage = (getattr(response, "llm_output", None) or {}).get("token_usage") or {}
        input_tokens = integer(token_usage.get("prompt_tokens"))
        output_tokens = integer(token_usage.get("completion_tokens"))
    return input_tokens, output_tokens


def _read_result(
    call: LLMCall, response: Any, usage: tuple[int | None, int | None], capture_content: bool
) -> None:
    call.input_tokens, call.output_tokens = usage
    llm_output = getattr(response, "llm_output", None) or {}
    finish_reasons: list[str] = []
    outputs: list[Message] = []
    for generation in _generations(response):
        item = getattr(generation, "message", None)
        metadata = getattr(item, "response_metadata", None) or {}
        info = getattr(generation, "generation_info", None) or {}
        call.response_model = (
            call.response_model or metadata.get("model_name") or llm_output.get("model_name")
        )
        call.response_id = call.response_id or metadata.get("id") or llm_output.get("id")
        reason = str(metadata.get("finish_reason") or info.get("finish_reason") or "")
        if reason:
            finish_reasons.append(reason)
        if capture_content:
            parts = _message_parts(item) if item is not None else [text_part(str(generation.text))]
            outputs.append(message("assistant", parts, finish_reason=reason or None))
    call.finish_reasons = finish_reasons or None
    if capture_content:
        call.output_messages = outputs


def _document(document: Any) -> dict[str, Any]:
    found: dict[str, Any] = {"content": getattr(document, "page_content", str(document))}
    if getattr(document, "id", None):
        found["id"] = document.id
    if getattr(document, "metadata", None):
        found["metadata"] = json_able(document.metadata)
    return found
