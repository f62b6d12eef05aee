"""LlamaIndex instrumentation: one tree of spans per run, from LlamaIndex's instrumentation dispatcher.

``LlamaIndexInstrumentor().instrument()`` adds one span handler and one event handler to LlamaIndex's root
dispatcher (every other dispatcher propagates to it); ``uninstrument()`` removes them. Nothing of LlamaIndex
is wrapped. It is a :class:`~llm_observer.instrumentation._instrumentor.ProviderInstrumentor` without
targets.

What each dispatcher span becomes (through :class:`~llm_observer.instrumentation._agents.AgentSpans`,
parented by LlamaIndex's own span ids, which follow a run across its asyncio tasks and executor threads):

- a workflow run → ``invoke_workflow {Workflow class}``; the run of a workflow agent (``FunctionAgent``,
  ``ReActAgent``, ``CodeActAgent``) → ``invoke_agent {agent name}``;
- a step of a user's workflow → a span named for the step (``llama_index.workflow.step``), promoted to
  ``invoke_agent`` when it calls a model itself; the workflow's internal steps (``_done``…) and the steps
  of the built-in agents and of ``AgentWorkflow`` → no span, except ``AgentWorkflow``'s agent turns
  (``run_agent_step``) → ``invoke_agent {current agent}``; a step that LlamaIndex runs without its context
  (sync steps in releases before llama-index-workflows 2 run in executor threads) still goes under the
  run of its workflow when that workflow has one run in flight;
- a tool call (``call``/``acall`` of any ``BaseTool``) → ``execute_tool {tool}`` (``gen_ai.tool.call.id``
  from the agent's tool call); an error, raised or returned as ``ToolOutput(is_error=True)``, sets ERROR;
- a retriever's ``retrieve``/``aretrieve`` → ``retrieval {retriever class}``; a query engine's
  ``query``/``aquery`` → a span named for the engine (``invoke_workflow`` when it is the root);
- a model call (``LLMChatStartEvent``, ``LLMCompletionStartEvent``) → ONE LLM span: the provider SDK's span
  when llm-observer's instrumentor for the SDK the LlamaIndex integration uses is active (told by the LLM
  class's package, e.g. ``llama_index.llms.openai``, or by ``llm_providers``), nested under the right step;
  otherwise the framework's own ``chat {model}`` span with model, tokens (the response's ``raw`` usage)
  and, under content capture, the messages; an embedding call (``EmbeddingStartEvent``) likewise →
  ``embeddings {model}``. Streamed calls end with the stream (``LLMChatEndEvent``), not with the method.
- everything else (prompt formatting, synthesizers, the LLM's own helper methods) → no span: its children
  go to its parent.

``instrument()`` takes ``tracer_provider``, ``meter_provider``, ``logger_provider`` and ``capture_content``
as the provider instrumentors do, and ``llm_providers``: a mapping from an LLM or embedding class name
(``type(llm).__name__`` or its LlamaIndex ``class_name()``) to a ``gen_ai.provider.name``, for LLM classes
of one's own that call a provider SDK (then that SDK's span is the call's LLM span when its instrumentor is
active).

Workflows started by a runtime that carries LlamaIndex's propagation context across processes keep their
caller's trace: the span handler puts the W3C ``traceparent`` of the caller's context into it.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from importlib import import_module
from typing import Any, ClassVar

from opentelemetry import context as otel_context
from opentelemetry.context import Context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from llm_observer.instrumentation import __version__
from llm_observer.instrumentation._agents import AgentSpans
from llm_observer.instrumentation._content import (
    Message,
    Part,
    json_able,
    message,
    text_part,
    tool_call_part,
    tool_call_parts,
    tool_response_part,
)
from llm_observer.instrumentation._instrumentor import ProviderInstrumentor, Target
from llm_observer.instrumentation._util import get, integer, put_number
from llm_observer.instrumentation.handler import GenAIHandler, LLMCall
from llm_observer.semconv import attributes as attr
from llm_observer.semconv import genai_values as gv

__all__ = ["LlamaIndexInstrumentor"]

_log = logging.getLogger(__name__)

_instruments = ("llama-index-core >= 0.12.43, < 1",)
# No SDK method is wrapped: LlamaIndex's root dispatcher takes the handlers.
_TARGETS: tuple[Target, ...] = ()

#: ``gen_ai.provider.name`` of a model call whose LLM class is not known.
_UNKNOWN_PROVIDER = "llama_index"

#: The package of a LlamaIndex LLM or embedding integration → (``gen_ai.provider.name``, the llm-observer
#: instrumentor of the SDK it calls: module, class). Matched against every class of the LLM's MRO, so an
#: OpenAI-compatible integration built on ``llama_index.llms.openai`` gets the OpenAI SDK's span.
_PACKAGES: Mapping[str, tuple[str, tuple[str, str] | None]] = {
    "llama_index.llms.openai": (gv.PROVIDER_OPENAI, ("openai", "OpenAIInstrumentor")),
    "llama_index.llms.openai_like": (gv.PROVIDER_OPENAI, ("openai", "OpenAIInstrumentor")),
    "llama_index.llms.azure_openai": (gv.PROVIDER_AZURE_AI_OPENAI, ("openai", "OpenAIInstrumentor")),
    "llama_index.llms.deepseek": (gv.PROVIDER_DEEPSEEK, ("openai", "OpenAIInstrumentor")),
    "llama_index.llms.groq": (gv.PROVIDER_GROQ, ("openai", "OpenAIInstrumentor")),
    "llama_index.llms.anthropic": (gv.PROVIDER_ANTHROPIC, ("anthropic", "AnthropicInstrumentor")),
    "llama_index.llms.cohere": (gv.PROVIDER_COHERE, ("cohere", "CohereInstrumentor")),
    "llama_index.llms.mistralai": (gv.PROVIDER_MISTRAL_AI, ("mistral", "MistralInstrumentor")),
    "llama_index.llms.ollama": (gv.PROVIDER_OLLAMA, ("ollama", "OllamaInstrumentor")),
    "llama_index.llms.google_genai": (gv.PROVIDER_GCP_GEN_AI, ("google_genai", "GoogleGenAIInstrumentor")),
    "llama_index.llms.bedrock_converse": (gv.PROVIDER_AWS_BEDROCK, ("bedrock", "BedrockInstrumentor")),
    "llama_index.llms.huggingface_api": (
        gv.PROVIDER_HUGGING_FACE,
        ("huggingface", "HuggingFaceInstrumentor"),
    ),
    "llama_index.embeddings.openai": (gv.PROVIDER_OPENAI, ("openai", "OpenAIInstrumentor")),
    "llama_index.embeddings.azure_openai": (gv.PROVIDER_AZURE_AI_OPENAI, ("openai", "OpenAIInstrumentor")),
    "llama_index.embeddings.cohere": (gv.PROVIDER_COHERE, ("cohere", "CohereInstrumentor")),
    "llama_index.embeddings.mistralai": (gv.PROVIDER_MISTRAL_AI, ("mistral", "MistralInstrumentor")),
    "llama_index.embeddings.ollama": (gv.PROVIDER_OLLAMA, ("ollama", "OllamaInstrumentor")),
    "llama_index.embeddings.google_genai": (
        gv.PROVIDER_GCP_GEN_AI,
        ("google_genai", "GoogleGenAIInstrumentor"),
    ),
}

#: ``gen_ai.provider.name`` → the llm-observer instrumentor whose span a call to that provider gets.
_INSTRUMENTORS: Mapping[str, tuple[str, str]] = {
    gv.PROVIDER_OPENAI: ("openai", "OpenAIInstrumentor"),
    gv.PROVIDER_AZURE_AI_OPENAI: ("openai", "OpenAIInstrumentor"),
    gv.PROVIDER_ANTHROPIC: ("anthropic", "AnthropicInstrumentor"),
    gv.PROVIDER_COHERE: ("cohere", "CohereInstrumentor"),
    gv.PROVIDER_MISTRAL_AI: ("mistral", "MistralInstrumentor"),
    gv.PROVIDER_OLLAMA: ("ollama", "OllamaInstrumentor"),
    gv.PROVIDER_GCP_GEN_AI: ("google_genai", "GoogleGenAIInstrumentor"),
    gv.PROVIDER_AWS_BEDROCK: ("bedrock", "BedrockInstrumentor"),
    gv.PROVIDER_HUGGING_FACE: ("huggingface", "HuggingFaceInstrumentor"),
}

_TOOL_METHODS = frozenset({"call", "acall", "__call__"})
_RETRIEVER_METHODS = frozenset({"retrieve", "aretrieve"})
_QUERY_METHODS = frozenset({"query", "aquery"})
_ROLES = {"user": "user", "assistant": "assistant", "system": "system", "developer": "system", "tool": "tool"}

# The caller's OpenTelemetry context, restored from LlamaIndex's propagation context in a workflow's task.
_REMOTE_PARENT: ContextVar[Context | None] = ContextVar("llm_observer_llama_index_parent", default=None)
_TRACEPARENT_KEY = "llm_observer.traceparent"


@dataclass(slots=True, eq=False)
class _Record:
    """One open LlamaIndex span: what the spans beneath it need to know about it."""

    kind: str
    parent: _Record | None
    #: The id of the nearest ancestor with a span (the run AgentSpans knows), None at the root.
    parent_id: str | None
    instance: Any = None
    tool_call_id: str | None = None
    #: A model call started here (a start event named this span) and has not ended yet.
    model_open: bool = False
    #: Streamed model calls end with their stream, after the method's span closed.
    streaming: bool = False
    #: The error of the last step of this workflow run that failed.
    failure: BaseException | None = None


# Record kinds.
_WORKFLOW, _AGENT, _AGENT_WORKFLOW, _STEP, _TOOL, _OTHER, _HIDDEN, _MODEL = (
    "workflow",
    "agent",
    "agent_workflow",
    "step",
    "tool",
    "other",
    "hidden",
    "model",
)


def _provider_instrumented(module_class: tuple[str, str] | None) -> bool:
    """Whether llm-observer's instrumentor ``(module, class)`` is active (then its span is the call's)."""
    if module_class is None:
        return False
    module, name = module_class
    try:
        instrumentor = getattr(import_module(f"llm_observer.instrumentation.{module}"), name)
    except (ImportError, AttributeError):
        return False
    instance = instrumentor._instance
    return instance is not None and bool(instance.is_instrumented_by_opentelemetry)


class _Tracker:
    """LlamaIndex's span and event notifications → :class:`AgentSpans` calls."""

    def __init__(self, agents: AgentSpans, llm_providers: Mapping[str, str] | None) -> None:
        from llama_index.core.agent.workflow import AgentWorkflow, BaseWorkflowAgent
        from llama_index.core.base.base_query_engine import BaseQueryEngine
        from llama_index.core.base.base_retriever import BaseRetriever
        from llama_index.core.base.embeddings.base import BaseEmbedding
        from llama_index.core.base.llms.base import BaseLLM
        from llama_index.core.tools.types import BaseTool
        from llama_index.core.workflow import Workflow

        self.agents = agents
        self.enabled = True
        self._llm_providers = dict(llm_providers or {})
        self._records: dict[str, _Record] = {}
        self._calls: dict[str, LLMCall] = {}
        self._agent_types: tuple[type[Any], ...] = (BaseWorkflowAgent,)
        self._agent_workflow_types: tuple[type[Any], ...] = (AgentWorkflow,)
        self._workflow_types: tuple[type[Any], ...] = (Workflow,)
        self._tool_types: tuple[type[Any], ...] = (BaseTool,)
        self._retriever_types: tuple[type[Any], ...] = (BaseRetriever,)
        self._query_types: tuple[type[Any], ...] = (BaseQueryEngine,)
        self._model_types: tuple[type[Any], ...] = (BaseLLM, BaseEmbedding)
        self._provider_cache: dict[type[Any], tuple[str, tuple[str, str] | None]] = {}
        #: id(workflow) → the ids of its runs in flight.
        self._open_runs: dict[int, list[str]] = {}

    # --- spans ----------------------------------------------------------------------------------------

    def enter(
        self, id_: str, bound_args: inspect.BoundArguments, instance: Any, parent_id: str | None
    ) -> None:
        if not self.enabled:
            return
        parent = self._records.get(parent_id) if parent_id is not None else None
        # Spans without a span of ours are not told to AgentSpans (cheaper): children skip past them.
        known = None if parent is None else parent_id if _has_span(parent) else parent.parent_id
        remote = _REMOTE_PARENT.get() if parent is None else None
        token = None
        if remote is not None and isinstance(instance, self._workflow_types):
            # A workflow run with no known parent continues the caller's trace restored from the propagation
            # context; used once, so nothing else started later in this context inherits it.
            _REMOTE_PARENT.set(None)
            token = otel_context.attach(remote)
        try:
            record = self._start(id_, bound_args, instance, parent, known)
        finally:
            if token is not None:
                otel_context.detach(token)
        self._records[id_] = record

    def _start(
        self,
        id_: str,
        bound_args: inspect.BoundArguments,
        instance: Any,
        parent: _Record | None,
        parent_id: str | None,
    ) -> _Record:
        agents = self.agents
        method = _method_name(id_)
        if isinstance(instance, self._workflow_types):
            if method == "run":
                return self._start_workflow(id_, instance, parent, parent_id)
            # Releases before llama-index-workflows 2 give steps their workflow as the instance, and run
            # sync steps in executor threads without LlamaIndex's context: such a step belongs to the run
            # of its workflow in flight.
            if parent is None and not method.startswith("_"):
                runs = self._open_runs.get(id(instance))
                if runs and len(runs) == 1:
                    parent_id = runs[0]
                    parent = self._records.get(parent_id)
            return self._start_step(id_, bound_args, parent, parent_id, method)
        if instance is None:
            return self._start_step(id_, bound_args, parent, parent_id, method)
        if isinstance(instance, self._tool_types) and method in _TOOL_METHODS:
            if _nearest_tool(parent) is not instance:  # acall → call of the same tool: one span
                record = _Record(_TOOL, parent, parent_id, instance, _nearest_call_id(parent))
                metadata = instance.metadata
                agents.start_tool(
                    id_,
                    parent_id,
                    str(metadata.get_name()),
                    call_id=record.tool_call_id,
                    description=_text(metadata.description),
                    arguments=_tool_arguments(bound_args) if agents.capture_content else None,
                )
                return record
        elif isinstance(instance, self._retriever_types) and method in _RETRIEVER_METHODS:
            query = bound_args.arguments.get("str_or_query_bundle")
            text = query if isinstance(query, str) else getattr(query, "query_str", None)
            agents.start_retrieval(id_, parent_id, type(instance).__name__, text)
            return _Record(_OTHER, parent, parent_id, instance)
        elif isinstance(instance, self._query_types) and method in _QUERY_METHODS:
            if parent is None:
                agents.start_workflow(id_, None, type(instance).__name__)
            else:
                agents.start_step(id_, parent_id, type(instance).__name__)
            return _Record(_OTHER, parent, parent_id, instance)
        kind = _MODEL if isinstance(instance, self._model_types) else _HIDDEN
        return _Record(kind, parent, parent_id, instance)

    def _start_workflow(
        self, id_: str, instance: Any, parent: _Record | None, parent_id: str | None
    ) -> _Record:
        self._open_runs.setdefault(id(instance), []).append(id_)
        if isinstance(instance, self._agent_types):
            self.agents.start_agent(
                id_,
                parent_id,
                str(getattr(instance, "name", None) or type(instance).__name__),
                description=_text(getattr(instance, "description", None)),
            )
            return _Record(_AGENT, parent, parent_id, instance)
        self.agents.start_workflow(id_, parent_id, type(instance).__name__)
        kind = _AGENT_WORKFLOW if isinstance(instance, self._agent_workflow_types) else _WORKFLOW
        return _Record(kind, parent, parent_id, instance)

    def _start_step(
        self,
        id_: str,
        bound_args: inspect.BoundArguments,
        parent: _Record | None,
        parent_id: str | None,
        method: str,
    ) -> _Record:
        event = bound_args.arguments.get("ev")
        call_id = getattr(event, "tool_id", None)
        record = _Record(
            _HIDDEN, parent, parent_id, tool_call_id=call_id if isinstance(call_id, str) else None
        )
        if parent is not None and parent.kind == _WORKFLOW and not method.startswith("_"):
            record.kind = _STEP
            self.agents.start_step(id_, parent_id, method, {"llama_index.workflow.step": method})
        elif (
            parent is not None
            and parent.kind == _AGENT_WORKFLOW
            and method == "run_agent_step"
            and event is not None
        ):
            # AgentWorkflow runs its agents' turns itself: each turn is that agent's invocation.
            agent_name = str(getattr(event, "current_agent_name", None) or "agent")
            agent = (getattr(parent.instance, "agents", None) or {}).get(agent_name)
            self.agents.start_agent(
                id_, parent_id, agent_name, description=_text(getattr(agent, "description", None))
            )
            record.kind = _AGENT
        return record

    def exit(self, id_: str, result: Any) -> None:
        record = self._pop(id_)
        if record is None:
            return
        if record.model_open:
            if _is_stream(result):
                record.streaming = True
                self._records[id_] = record  # ended by its end event
            else:
                self._end_model(id_, record, None, None)
        elif not _has_span(record):
            return
        elif record.kind == _TOOL:
            if getattr(result, "is_error", False):
                error = getattr(result, "exception", None) or _ToolError(str(getattr(result, "content", "")))
                self.agents.end_tool(id_, error=error)
            else:
                content = getattr(result, "content", result)
                self.agents.end_tool(id_, content if self.agents.capture_content else None)
        elif record.kind == _OTHER and isinstance(record.instance, self._retriever_types):
            documents = [_node(node) for node in result or ()] if self.agents.capture_content else None
            self.agents.end_retrieval(id_, documents)
        elif result is None and record.failure is not None:
            # Releases before llama-index-workflows 2 end a failed run's span without its error.
            self.agents.end(id_, error=record.failure)
        else:
            self.agents.end(id_)

    def drop(self, id_: str, error: BaseException | None) -> None:
        record = self._pop(id_)
        if record is None:
            return
        if record.model_open:
            self._end_model(id_, record, None, error)
        elif not _has_span(record):
            return
        elif record.kind == _TOOL:
            self.agents.end_tool(id_, error=error)
        else:
            self.agents.end(id_, error=error)
            if record.kind == _STEP and record.parent is not None:
                record.parent.failure = error

    def _pop(self, id_: str) -> _Record | None:
        record = self._records.pop(id_, None)
        if record is not None and record.kind in (_WORKFLOW, _AGENT, _AGENT_WORKFLOW):
            runs = self._open_runs.get(id(record.instance))
            if runs is not None and id_ in runs:
                runs.remove(id_)
                if not runs:
                    del self._open_runs[id(record.instance)]
        return record

    # --- model calls ----------------------------------------------------------------------------------

    def model_start(self, span_id: str | None, operation: str, event: Any) -> None:
        record = self._records.get(span_id) if span_id is not None else None
        if record is None or span_id is None or record.kind != _MODEL or record.model_open:
            return
        if _inside_model_call(record.parent):
            return  # e.g. CustomLLM's chat → complete: the outer call is the one model call
        model_dict: Mapping[str, Any] = getattr(event, "model_dict", None) or {}
        provider, instrumentor = self._provider(record.instance, model_dict)
        self._promote_step(record.parent, record.parent_id)
        call = None
        if not _provider_instrumented(instrumentor):
            call = _model_call(operation, provider, record.instance, model_dict)
            if self.agents.handler.capture_content and operation != gv.OP_EMBEDDINGS:
                call.input_messages, call.system_instructions = _event_messages(event)
            self._calls[span_id] = call
        record.model_open = True
        self.agents.start_llm(span_id, record.parent_id, call)

    def model_chunk(self, span_id: str | None) -> None:
        if span_id is not None:
            self.agents.first_chunk(span_id)

    def model_end(self, span_id: str | None, response: Any, error: BaseException | None = None) -> None:
        record = self._records.get(span_id) if span_id is not None else None
        if record is None or span_id is None or not record.model_open:
            return
        if record.streaming:
            del self._records[span_id]
        self._end_model(span_id, record, response, error)

    def _end_model(self, span_id: str, record: _Record, response: Any, error: BaseException | None) -> None:
        record.model_open = False
        call = self._calls.pop(span_id, None)
        usage = _usage(response) if response is not None else (None, None)
        if call is not None and response is not None:
            try:
                _read_response(call, response, usage, self.agents.handler.capture_content)
            except Exception:
                _log.debug("Could not read a LlamaIndex model response.", exc_info=True)
        if isinstance(error, GeneratorExit):  # the caller stopped reading a stream: not a failure
            error = None
        self.agents.end_llm(span_id, usage[0], usage[1], error)

    def _promote_step(self, record: _Record | None, record_id: str | None) -> None:
        """A step of a user's workflow that calls a model itself is an agent."""
        while record is not None and record.kind in (_HIDDEN, _MODEL):
            if record.kind == _HIDDEN and record.instance is None:
                return  # a built-in agent's own step: the agent is the invocation
            record_id = record.parent_id
            record = record.parent
        if record is not None and record.kind == _STEP and record_id is not None:
            self.agents.promote(record_id, gv.OP_INVOKE_AGENT)

    def _provider(self, instance: Any, model_dict: Mapping[str, Any]) -> tuple[str, tuple[str, str] | None]:
        """(``gen_ai.provider.name``, the instrumentor whose span a call gets) of an LLM or embedding."""
        cls = type(instance)
        for name in (cls.__name__, model_dict.get("class_name")):
            if isinstance(name, str) and name in self._llm_providers:
                provider = self._llm_providers[name]
                return provider, _INSTRUMENTORS.get(provider)
        found = self._provider_cache.get(cls)
        if found is None:
            found = (_UNKNOWN_PROVIDER, None)
            for klass in cls.__mro__:
                module = klass.__module__
                for package, entry in _PACKAGES.items():
                    if module == package or module.startswith(package + "."):
                        found = entry
                        break
                else:
                    continue
                break
            self._provider_cache[cls] = found
        return found


class _ToolError(Exception):
    """A tool call that returned an error result instead of raising."""


def _method_name(id_: str) -> str:
    """The method of a dispatcher span id (``Class.method-<uuid4>`` or ``qualname-<uuid4>``)."""
    name = id_[:-37] if len(id_) > 37 and id_[-37] == "-" else id_
    return name.rpartition(".")[2]


def _is_stream(result: Any) -> bool:
    return inspect.isgenerator(result) or inspect.isasyncgen(result)


def _has_span(record: _Record) -> bool:
    return record.kind not in (_HIDDEN, _MODEL)


def _inside_model_call(record: _Record | None) -> bool:
    while record is not None and record.kind in (_HIDDEN, _MODEL):
        if record.model_open:
            return True
        record = record.parent
    return False


def _nearest_tool(record: _Record | None) -> Any:
    while record is not None and record.kind == _HIDDEN:
        record = record.parent
    return record.instance if record is not None and record.kind == _TOOL else None


def _nearest_call_id(record: _Record | None) -> str | None:
    """The tool call id of the agent step running this tool (``ToolCall.tool_id``)."""
    while record is not None and record.kind == _HIDDEN:
        if record.tool_call_id:
            return record.tool_call_id
        record = record.parent
    return None


def _text(text: Any) -> str | None:
    return text.strip() if isinstance(text, str) and text.strip() else None


def _tool_arguments(bound_args: inspect.BoundArguments) -> Any:
    arguments = bound_args.arguments
    keywords = arguments.get("kwargs")
    positional = arguments.get("args")
    if isinstance(keywords, Mapping) and not positional:
        return dict(keywords)
    found = {key: value for key, value in arguments.items() if key not in ("self", "args", "kwargs")}
    if positional:
        found["args"] = list(positional)
    if isinstance(keywords, Mapping):
        found.update(keywords)
    return found.get("input", found) if set(found) == {"input"} else found


def _node(item: Any) -> dict[str, Any]:
    node = getattr(item, "node", item)
    found: dict[str, Any] = {}
    node_id = getattr(node, "node_id", None)
    if node_id:
        found["id"] = node_id
    get_content = getattr(node, "get_content", None)
    found["content"] = get_content() if callable(get_content) else str(node)
    score = getattr(item, "score", None)
    if isinstance(score, int | float):
        found["score"] = score
    return found


def _model_call(operation: str, provider: str, instance: Any, model_dict: Mapping[str, Any]) -> LLMCall:
    model = model_dict.get("model") or model_dict.get("model_name")
    if not model:
        metadata = getattr(instance, "metadata", None)
        model = getattr(metadata, "model_name", None) if metadata is not None else None
    call = LLMCall(operation, provider, str(model) if model and model != "unknown" else None)
    if operation != gv.OP_EMBEDDINGS:
        put_number(call.attributes, attr.GEN_AI_REQUEST_TEMPERATURE, model_dict.get("temperature"))
        put_number(call.attributes, attr.GEN_AI_REQUEST_MAX_TOKENS, model_dict.get("max_tokens"))
        put_number(call.attributes, attr.GEN_AI_REQUEST_TOP_P, model_dict.get("top_p"))
    return call


# --- reading LlamaIndex messages and responses --------------------------------------------------------


def _role(item: Any) -> str:
    role = getattr(item, "role", "user")
    value = str(getattr(role, "value", role))
    return _ROLES.get(value, value)


def _message_parts(item: Any) -> list[Part]:
    extra = getattr(item, "additional_kwargs", None) or {}
    content = getattr(item, "content", None)
    if _role(item) == "tool":
        return [tool_response_part(extra.get("tool_call_id"), json_able(content))]
    parts: list[Part] = [text_part(content)] if isinstance(content, str) and content else []
    parts.extend(tool_call_parts(extra.get("tool_calls")))
    for block in getattr(item, "blocks", None) or ():
        if getattr(block, "block_type", None) == "tool_call":
            parts.append(
                tool_call_part(
                    getattr(block, "tool_call_id", None),
                    getattr(block, "tool_name", None),
                    json_able(getattr(block, "tool_kwargs", None)),
                )
            )
    return parts


def _event_messages(event: Any) -> tuple[list[Message], list[Part]]:
    """A start event's messages (or prompt) → (input messages, system instructions)."""
    prompt = getattr(event, "prompt", None)
    if isinstance(prompt, str):
        return [message("user", [text_part(prompt)])], []
    messages: list[Message] = []
    system: list[Part] = []
    for item in getattr(event, "messages", None) or ():
        if _role(item) == "system":
            content = getattr(item, "content", None)
            if content:
                system.append(text_part(str(content)))
        else:
            messages.append(message(_role(item), _message_parts(item)))
    return messages, system


def _usage(response: Any) -> tuple[int | None, int | None]:
    """(input, output) tokens of a ChatResponse/CompletionResponse: the raw provider response's usage
    (OpenAI's or Anthropic's names), else the ``additional_kwargs`` LlamaIndex integrations fill in."""
    raw = getattr(response, "raw", None)
    usage = get(raw, "usage") if raw is not None else None
    input_tokens = output_tokens = None
    if usage is not None:
        input_tokens = integer(get(usage, "prompt_tokens")) or integer(get(usage, "input_tokens"))
        output_tokens = integer(get(usage, "completion_tokens")) or integer(get(usage, "output_tokens"))
    if input_tokens is None and output_tokens is None:
        extra = getattr(response, "additional_kwargs", None) or {}
        input_tokens = integer(extra.get("prompt_tokens"))
        output_tokens = integer(extra.get("completion_tokens"))
    return input_tokens, output_tokens


def _read_response(
    call: LLMCall, response: Any, usage: tuple[int | None, int | None], capture_content: bool
) -> None:
    call.input_tokens, call.output_tokens = usage
    raw = getattr(response, "raw", None)
    if raw is not None:
        model = get(raw, "model")
        call.response_model = model if isinstance(model, str) else None
        response_id = get(raw, "id")
        call.response_id = response_id if isinstance(response_id, str) else None
        reasons: list[str] = []
        for choice in get(raw, "choices") or ():
            reason = get(choice, "finish_reason")
            if isinstance(reason, str):
                reasons.append(reason)
        stop_reason = get(raw, "stop_reason")
        if isinstance(stop_reason, str):
            reasons.append(stop_reason)
        call.finish_reasons = reasons or None
    if capture_content:
        item = getattr(response, "message", None)
        if item is not None:
            parts = _message_parts(item)
        else:
            parts = [text_part(str(getattr(response, "text", "") or ""))]
        reason = call.finish_reasons[0] if call.finish_reasons else None
        call.output_messages = [message("assistant", parts, finish_reason=reason)]


# --- the handlers LlamaIndex calls ----------------------------------------------------------------------


def _handler_classes(tracker: _Tracker) -> tuple[Any, Any]:
    """A span handler and an event handler (LlamaIndex's pydantic base classes, imported on instrument)."""
    from llama_index.core.instrumentation.event_handlers import BaseEventHandler
    from llama_index.core.instrumentation.events.embedding import EmbeddingEndEvent, EmbeddingStartEvent
    from llama_index.core.instrumentation.events.exception import ExceptionEvent
    from llama_index.core.instrumentation.events.llm import (
        LLMChatEndEvent,
        LLMChatInProgressEvent,
        LLMChatStartEvent,
        LLMCompletionEndEvent,
        LLMCompletionInProgressEvent,
        LLMCompletionStartEvent,
    )
    from llama_index.core.instrumentation.span_handlers import BaseSpanHandler

    def chat_start(event: Any) -> None:
        tracker.model_start(event.span_id, gv.OP_CHAT, event)

    def completion_start(event: Any) -> None:
        tracker.model_start(event.span_id, gv.OP_TEXT_COMPLETION, event)

    def embedding_start(event: Any) -> None:
        tracker.model_start(event.span_id, gv.OP_EMBEDDINGS, event)

    def chunk(event: Any) -> None:
        tracker.model_chunk(event.span_id)

    def end(event: Any) -> None:
        tracker.model_end(event.span_id, getattr(event, "response", None))

    def embedding_end(event: Any) -> None:
        tracker.model_end(event.span_id, None)

    def exception(event: Any) -> None:
        tracker.model_end(event.span_id, None, event.exception)

    routes: dict[type[Any], Callable[[Any], None]] = {
        LLMChatStartEvent: chat_start,
        LLMCompletionStartEvent: completion_start,
        EmbeddingStartEvent: embedding_start,
        LLMChatInProgressEvent: chunk,
        LLMCompletionInProgressEvent: chunk,
        LLMChatEndEvent: end,
        LLMCompletionEndEvent: end,
        EmbeddingEndEvent: embedding_end,
        ExceptionEvent: exception,
    }

    class LLMObserverEventHandler(BaseEventHandler):
        """Model calls: start, first chunk, end, failure of a stream."""

        @classmethod
        def class_name(cls) -> str:
            return "LLMObserverEventHandler"

        def handle(self, event: Any, **kwargs: Any) -> None:
            route = routes.get(type(event))
            if route is None or not tracker.enabled:
                return
            try:
                route(event)
            except Exception:  # never raise into the application
                _log.debug("Could not record a LlamaIndex event.", exc_info=True)

    class LLMObserverSpanHandler(BaseSpanHandler[Any]):
        """Every dispatcher span, straight to the tracker (no bookkeeping of LlamaIndex's own)."""

        @classmethod
        def class_name(cls) -> str:
            return "LLMObserverSpanHandler"

        def span_enter(
            self,
            id_: str,
            bound_args: inspect.BoundArguments,
            instance: Any = None,
            parent_id: str | None = None,
            tags: dict[str, Any] | None = None,
            **kwargs: Any,
        ) -> None:
            try:
                tracker.enter(id_, bound_args, instance, parent_id)
            except Exception:
                _log.debug("Could not start a span for a LlamaIndex step.", exc_info=True)

        def span_exit(
            self,
            id_: str,
            bound_args: inspect.BoundArguments,
            instance: Any = None,
            result: Any = None,
            **kwargs: Any,
        ) -> None:
            try:
                tracker.exit(id_, result)
            except Exception:
                _log.debug("Could not end a span for a LlamaIndex step.", exc_info=True)

        def span_drop(
            self,
            id_: str,
            bound_args: inspect.BoundArguments,
            instance: Any = None,
            err: BaseException | None = None,
            **kwargs: Any,
        ) -> None:
            try:
                tracker.drop(id_, err)
            except Exception:
                _log.debug("Could not end a span for a failed LlamaIndex step.", exc_info=True)

        def capture_propagation_context(self) -> dict[str, Any]:
            carrier: dict[str, str] = {}
            if tracker.enabled:
                TraceContextTextMapPropagator().inject(carrier)
            return {_TRACEPARENT_KEY: carrier["traceparent"]} if "traceparent" in carrier else {}

        def restore_propagation_context(self, context: dict[str, Any]) -> None:
            traceparent = context.get(_TRACEPARENT_KEY)
            if isinstance(traceparent, str):
                _REMOTE_PARENT.set(TraceContextTextMapPropagator().extract({"traceparent": traceparent}))

        def new_span(self, *args: Any, **kwargs: Any) -> None:
            return None

        def prepare_to_exit_span(self, *args: Any, **kwargs: Any) -> None:
            return None

        def prepare_to_drop_span(self, *args: Any, **kwargs: Any) -> None:
            return None

    return LLMObserverSpanHandler(), LLMObserverEventHandler()


class LlamaIndexInstrumentor(ProviderInstrumentor):
    """Adds llm-observer's span and event handlers to LlamaIndex's root dispatcher (see module docstring)."""

    instruments = _instruments
    targets = _TARGETS
    _installed: ClassVar[tuple[_Tracker, Any, Any] | None] = None

    def _instrument(self, **kwargs: Any) -> None:
        from llama_index.core.instrumentation import get_dispatcher  # type: ignore[attr-defined]

        handler = GenAIHandler.from_kwargs(kwargs, __name__, __version__)
        agents = AgentSpans(handler, __name__, __version__, tracer_provider=kwargs.get("tracer_provider"))
        tracker = _Tracker(agents, kwargs.get("llm_providers"))
        span_handler, event_handler = _handler_classes(tracker)
        dispatcher = get_dispatcher()
        dispatcher.add_span_handler(span_handler)
        dispatcher.add_event_handler(event_handler)
        type(self)._installed = (tracker, span_handler, event_handler)

    def _uninstrument(self, **kwargs: Any) -> None:
        installed, type(self)._installed = type(self)._installed, None
        if installed is None:
            return
        from llama_index.core.instrumentation import get_dispatcher  # type: ignore[attr-defined]

        tracker, span_handler, event_handler = installed
        tracker.enabled = False
        dispatcher = get_dispatcher()
        # New lists rather than in-place removal: the dispatcher may be iterating the old ones right now.
        dispatcher.span_handlers = [item for item in dispatcher.span_handlers if item is not span_handler]
        dispatcher.event_handlers = [item for item in dispatcher.event_handlers if item is not event_handler]
