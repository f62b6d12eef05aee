"""OpenAI Agents SDK instrumentation: one tree of spans per run, from the SDK's own tracing processor interface.

``OpenAIAgentsInstrumentor().instrument()`` registers one ``agents.tracing.TracingProcessor`` with the SDK
(``add_trace_processor``); ``uninstrument()`` takes it out again. With ``exclusive=True`` (or
``LLM_OBSERVER_OPENAI_AGENTS_EXCLUSIVE=true``) it replaces the SDK's processors instead, so nothing goes to
OpenAI's trace backend, and ``uninstrument()`` puts the previous processors back.

What each SDK trace and span becomes (through :class:`~llm_observer.instrumentation._agents.AgentSpans`,
parented by the SDK's own trace and span ids, so concurrent tool tasks and worker threads keep their
parents):

- a trace → ``invoke_workflow {trace name}`` (``gen_ai.workflow.name``; the trace's group id as
  ``gen_ai.conversation.id``);
- ``AgentSpanData`` → ``invoke_agent {agent}`` (``gen_ai.agent.name``; its tools and handoffs as
  ``openai_agents.agent.tools`` / ``openai_agents.agent.handoffs``);
- ``FunctionSpanData`` → ``execute_tool {tool}`` (type ``function``, ``extension`` for MCP tools); the tool
  call id is taken from the model's tool call of that name in the answer before it, when the SDK recorded
  that answer (its ``trace_include_sensitive_data``); arguments and result only under content capture.
  The tool's span is made current while the tool runs, so what the tool calls (the OpenAI SDK in a worker
  thread, for one) nests under it;
- ``HandoffSpanData`` → ``execute_tool {handoff tool}`` (the model's ``transfer_to_…`` call, type
  ``function``) with ``openai_agents.handoff.from`` / ``.to``; the next agent's span follows as a sibling;
- ``GenerationSpanData`` (Chat Completions, LiteLLM, any-llm) and ``ResponseSpanData`` (Responses API) →
  ONE LLM span: the OpenAI SDK's span when llm-observer's ``OpenAIInstrumentor`` is active and the model
  calls through the OpenAI SDK, nested under the agent; otherwise the framework's own ``chat {model}``
  span with model, usage (input tokens include cached ones), response id and, under content capture, the
  messages;
- hosted file searches in a Responses answer (``file_search_call`` items: the search ran on OpenAI's
  servers, inside the model call) → ``retrieval {vector store ids}`` spans under the agent, ended when the
  answer is read, with the queries and results only under content capture;
- ``GuardrailSpanData`` → a ``guardrail {name}`` step (``openai_agents.guardrail.triggered``);
  ``CustomSpanData`` → a step named as the span (its data only under content capture); MCP tool listings
  and speech spans → steps named for them; the SDK's ``task`` and ``turn`` spans (one Runner run, one
  loop iteration) make no span: their children go to the workflow and the agent.

An SDK span that ends with an exception in flight, or with an error the SDK recorded on it
(``span.error``), gets status ERROR and ``error.type``: the exception's class, else ``_OTHER`` (tool errors
the SDK turns into a message for the model leave no exception behind).

``instrument()`` takes ``tracer_provider``, ``meter_provider``, ``logger_provider``, ``capture_content``
as the provider instrumentors do, and ``exclusive``.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Mapping, Sequence
from importlib import import_module
from typing import Any, ClassVar

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.util.types import AttributeValue

from llm_observer.instrumentation import __version__
from llm_observer.instrumentation._agents import AgentSpans, RunId, _owner
from llm_observer.instrumentation._content import (
    Message,
    Part,
    json_able,
    to_json,
)
from llm_observer.instrumentation._instrumentor import ProviderInstrumentor, Target
from llm_observer.instrumentation._util import env_flag, get, host_port, integer, put_number
from llm_observer.instrumentation.handler import GenAIHandler, LLMCall
from llm_observer.instrumentation.openai import (
    _chat_message,
    _responses_finish_reason,
    _responses_input,
    _responses_output,
    provider_for_url,
)
from llm_observer.semconv import attributes as attr
from llm_observer.semconv import genai_values as gv

__all__ = ["EXCLUSIVE_ENV", "OpenAIAgentsInstrumentor"]

_log = logging.getLogger(__name__)

_instruments = ("openai-agents >= 0.18.1, < 1",)
# No SDK method is wrapped: the SDK's tracing interface takes the processor.
_TARGETS: tuple[Target, ...] = ()

#: ``true``: the instrumentor's processor replaces the SDK's (no export to OpenAI's trace backend).
EXCLUSIVE_ENV = "LLM_OBSERVER_OPENAI_AGENTS_EXCLUSIVE"

#: ``error.type`` of an SDK span error with no exception behind it (the conventions' fallback value).
_Other: type[Exception] = type("_OTHER", (Exception,), {"__module__": __name__})

AGENT_TOOLS = "openai_agents.agent.tools"
AGENT_HANDOFFS = "openai_agents.agent.handoffs"
HANDOFF_FROM = "openai_agents.handoff.from"
HANDOFF_TO = "openai_agents.handoff.to"
GUARDRAIL_TRIGGERED = "openai_agents.guardrail.triggered"
CUSTOM_DATA = "openai_agents.custom.data"

# Model implementations that do not call through the OpenAI SDK (``model_config["model_impl"]``).
_NOT_OPENAI_SDK = frozenset({"litellm", "any-llm"})
# The SDK's own grouping spans: no span of ours, their children go to the span above them.
_HIDDEN = frozenset({"task", "turn"})


def _openai_instrumented() -> bool:
    """Whether llm-observer's OpenAI SDK instrumentor is active (then its span is a call's LLM span)."""
    try:
        instrumentor = import_module("llm_observer.instrumentation.openai").OpenAIInstrumentor
    except (ImportError, AttributeError):
        return False
    instance = instrumentor._instance
    return instance is not None and bool(instance.is_instrumented_by_opentelemetry)


class _Spans(AgentSpans):
    """:class:`AgentSpans` with what tool steps of this SDK need: the step's span made current while it
    runs, and a name learnt only when the step ends (a handoff's target)."""

    def activate(self, run_id: RunId) -> tuple[object, Context, tuple[int, int]] | None:
        """Make a running step's span current; the token for :meth:`deactivate`."""
        run = self._runs.get(run_id)
        if run is None or run.span is None:
            return None
        context = trace.set_span_in_context(run.span)
        return otel_context.attach(context), context, _owner()

    @staticmethod
    def deactivate(active: tuple[object, Context, tuple[int, int]]) -> None:
        """Undo :meth:`activate` when this thread and task attached it and it is still current (else the
        context dies with its task)."""
        token, context, owner = active
        if owner == _owner() and otel_context.get_current() is context:
            otel_context.detach(token)  # type: ignore[arg-type]

    def set_attribute(self, run_id: RunId, key: str, value: AttributeValue) -> None:
        """Set an attribute on a running step's span."""
        run = self._runs.get(run_id)
        if run is not None and run.span is not None:
            run.span.set_attribute(key, value)

    def name_of(self, run_id: RunId) -> str | None:
        """A running step's name (None for an unknown step)."""
        run = self._runs.get(run_id)
        return None if run is None else run.name

    def rename(self, run_id: RunId, name: str) -> None:
        """The name a running step's span gets when it ends (``{operation} {name}``)."""
        run = self._runs.get(run_id)
        if run is not None:
            run.name = name


class _Processor:
    """The tracing processor (methods of ``agents.tracing.TracingProcessor``; the SDK's base class is mixed
    in when the SDK is imported, see :func:`_processor_class`)."""

    def __init__(self, spans: _Spans) -> None:
        super().__init__()
        self.spans = spans
        self.enabled = True
        self._lock = threading.Lock()
        # Per SDK span id: the model's LLM call; tool calls (name, call id) of a step's last answer.
        self._calls: dict[str, LLMCall | None] = {}
        self._pending: dict[str, list[tuple[str, str | None]]] = {}
        self._active: dict[str, tuple[object, Context, tuple[int, int]]] = {}

    # --- traces ---------------------------------------------------------------------------------------

    def on_trace_start(self, sdk_trace: Any) -> None:
        if not self.enabled:
            return
        try:
            self.spans.start_workflow(sdk_trace.trace_id, None, str(sdk_trace.name or "Agent workflow"))
            group_id = getattr(sdk_trace, "group_id", None)
            if group_id:
                self.spans.set_attribute(sdk_trace.trace_id, attr.GEN_AI_CONVERSATION_ID, str(group_id))
        except Exception:
            _log.debug("Could not start an OpenAI Agents workflow span.", exc_info=True)

    def on_trace_end(self, sdk_trace: Any) -> None:
        try:
            self.spans.end(sdk_trace.trace_id, error=_in_flight())
        except Exception:
            _log.debug("Could not end an OpenAI Agents workflow span.", exc_info=True)
        finally:
            with self._lock:
                self._pending.pop(sdk_trace.trace_id, None)

    # --- spans ----------------------------------------------------------------------------------------

    def on_span_start(self, span: Any) -> None:
        if not self.enabled:
            return
        try:
            self._start(span)
        except Exception:
            _log.debug("Could not start a span for an OpenAI Agents span.", exc_info=True)

    def on_span_end(self, span: Any) -> None:
        try:
            self._end(span)
        except Exception:
            _log.debug("Could not end a span for an OpenAI Agents span.", exc_info=True)
        finally:
            with self._lock:
                self._pending.pop(span.span_id, None)

    def shutdown(self) -> None:
        """Nothing to flush: spans go to the OpenTelemetry SDK as they end."""

    def force_flush(self) -> None:
        """Nothing to flush: spans go to the OpenTelemetry SDK as they end."""

    # --- internals ------------------------------------------------------------------------------------

    def _start(self, span: Any) -> None:
        data = span.span_data
        kind = _kind(data)
        run_id: str = span.span_id
        parent: str = span.parent_id or span.trace_id
        spans = self.spans
        if kind in _HIDDEN:
            spans.start_hidden(run_id, parent)
        elif kind == "agent":
            spans.start_agent(run_id, parent, str(data.name))
        elif kind == "function":
            mcp = getattr(data, "mcp_data", None)
            spans.start_tool(
                run_id,
                parent,
                str(data.name),
                call_id=self._tool_call_id(parent, str(data.name)),
                tool_type=gv.TOOL_TYPE_EXTENSION if mcp else gv.TOOL_TYPE_FUNCTION,
            )
            self._activate(run_id)
        elif kind == "handoff":
            name, call_id = self._handoff_call(parent)
            spans.start_tool(run_id, parent, name or "handoff", call_id=call_id)
        elif kind in ("generation", "response"):
            call = self._llm_call(kind, data)
            with self._lock:
                self._calls[run_id] = call
            spans.start_llm(run_id, parent, call)
        elif kind == "guardrail":
            spans.start_step(run_id, parent, f"guardrail {data.name}")
        elif kind == "custom":
            spans.start_step(run_id, parent, str(data.name))
        elif kind == "mcp_tools":
            server = getattr(data, "server", None)
            spans.start_step(run_id, parent, f"mcp list_tools {server}" if server else "mcp list_tools")
        else:
            spans.start_step(run_id, parent, kind)

    def _end(self, span: Any) -> None:
        data = span.span_data
        kind = _kind(data)
        run_id: str = span.span_id
        error = _error(span)
        spans = self.spans
        if kind in ("generation", "response"):
            with self._lock:
                call = self._calls.pop(run_id, None)
            self._end_llm(span, kind, data, call, error)
            return
        extra: dict[str, AttributeValue] = {}
        capture = spans.capture_content
        if kind == "function":
            active = self._active.pop(run_id, None)
            if active is not None:
                spans.deactivate(active)
            if capture and getattr(data, "input", None) is not None:
                extra[gv.GEN_AI_TOOL_CALL_ARGUMENTS] = _text(data.input)
            if capture and error is None and getattr(data, "output", None) is not None:
                extra[gv.GEN_AI_TOOL_CALL_RESULT] = _text(data.output)
        elif kind == "handoff":
            if data.from_agent:
                extra[HANDOFF_FROM] = str(data.from_agent)
            if data.to_agent:
                extra[HANDOFF_TO] = str(data.to_agent)
                if spans.name_of(run_id) == "handoff":
                    spans.rename(run_id, _handoff_tool_name(str(data.to_agent)))
        elif kind == "agent":
            if data.tools:
                extra[AGENT_TOOLS] = [str(name) for name in data.tools]
            if data.handoffs:
                extra[AGENT_HANDOFFS] = [str(name) for name in data.handoffs]
        elif kind == "guardrail":
            extra[GUARDRAIL_TRIGGERED] = bool(data.triggered)
        elif kind == "custom" and capture and data.data:
            extra[CUSTOM_DATA] = to_json(json_able(data.data))
        spans.end(run_id, error=error, attributes=extra)

    def _activate(self, run_id: str) -> None:
        active = self.spans.activate(run_id)
        if active is not None:
            self._active[run_id] = active

    def _tool_call_id(self, parent: str, name: str) -> str | None:
        """The id of the model's tool call of this name in its parent's last answer (first come first
        served: the SDK starts tool calls in the order the model gave them)."""
        with self._lock:
            pending = self._pending.get(parent) or []
            for index, (tool_name, call_id) in enumerate(pending):
                if tool_name == name:
                    del pending[index]
                    return call_id
        return None

    def _handoff_call(self, parent: str) -> tuple[str | None, str | None]:
        """The model's handoff call: the first tool call of the parent's last answer that no tool took
        (the SDK runs function tools before the handoff)."""
        with self._lock:
            pending = self._pending.get(parent)
            if pending:
                return pending.pop(0)
        return None, None

    def _llm_call(self, kind: str, data: Any) -> LLMCall | None:
        """The framework's LLM call for a generation/response span; None when the OpenAI SDK's span is the
        call's LLM span (its instrumentor is active and the model calls through it)."""
        config: Mapping[str, Any] = getattr(data, "model_config", None) or {}
        impl = config.get("model_impl")
        if impl not in _NOT_OPENAI_SDK and _openai_instrumented():
            return None
        model = getattr(data, "model", None)
        base_url = config.get("base_url")
        call = LLMCall(gv.OP_CHAT, _provider(model, config), str(model) if model else None)
        if isinstance(base_url, str) and base_url:
            call.server_address, call.server_port = host_port(base_url)
        put_number(call.attributes, attr.GEN_AI_REQUEST_TEMPERATURE, config.get("temperature"))
        put_number(call.attributes, attr.GEN_AI_REQUEST_TOP_P, config.get("top_p"))
        put_number(call.attributes, attr.GEN_AI_REQUEST_MAX_TOKENS, config.get("max_tokens"))
        put_number(call.attributes, attr.GEN_AI_REQUEST_FREQUENCY_PENALTY, config.get("frequency_penalty"))
        put_number(call.attributes, attr.GEN_AI_REQUEST_PRESENCE_PENALTY, config.get("presence_penalty"))
        return call

    def _end_llm(
        self, span: Any, kind: str, data: Any, call: LLMCall | None, error: BaseException | None
    ) -> None:
        usage = getattr(data, "usage", None) or {}
        response = getattr(data, "response", None) if kind == "response" else None
        if kind == "response" and response is not None and not usage:
            usage = _responses_usage(getattr(response, "usage", None))
        input_tokens = integer(usage.get("input_tokens"))
        output_tokens = integer(usage.get("output_tokens"))
        parent: str = span.parent_id or span.trace_id
        if kind == "generation":
            tool_calls = _chat_tool_calls(getattr(data, "output", None))
        else:
            tool_calls = _responses_tool_calls(response)
        if tool_calls:
            with self._lock:
                self._pending[parent] = tool_calls
        if call is not None:
            try:
                _fill(call, kind, data, response, usage, self.spans.handler.capture_content)
            except Exception:
                _log.debug("Could not read an OpenAI Agents model call.", exc_info=True)
        self.spans.end_llm(span.span_id, input_tokens, output_tokens, error)
        if response is not None:
            self._file_searches(parent, response)

    def _file_searches(self, parent: str, response: Any) -> None:
        """``retrieval`` spans for the hosted file searches of a Responses answer."""
        searches = [
            item
            for item in getattr(response, "output", None) or ()
            if get(item, "type") == "file_search_call"
        ]
        if not searches:
            return
        stores: list[str] = []
        for tool in getattr(response, "tools", None) or ():
            if get(tool, "type") == "file_search":
                stores.extend(str(store) for store in get(tool, "vector_store_ids") or ())
        data_source = ",".join(stores) or "file_search"
        for item in searches:
            run_id = f"{parent}/{get(item, 'id')}"
            queries = get(item, "queries") or []
            self.spans.start_retrieval(run_id, parent, data_source, "\n".join(str(q) for q in queries))
            results = get(item, "results")
            documents = None if results is None else [_search_result(result) for result in results]
            failed = get(item, "status") == "failed"
            self.spans.end_retrieval(run_id, documents, _Other("file search failed") if failed else None)


def _processor_class() -> type[Any]:
    """``_Processor`` with the SDK's ``TracingProcessor`` as its base (imported only on instrument)."""
    from agents.tracing import TracingProcessor

    return type("LLMObserverTracingProcessor", (_Processor, TracingProcessor), {})


class OpenAIAgentsInstrumentor(ProviderInstrumentor):
    """Registers llm-observer's tracing processor with the OpenAI Agents SDK (see module docstring)."""

    instruments = _instruments
    targets = _TARGETS
    _processor: ClassVar[_Processor | None] = None
    _replaced: ClassVar[list[Any] | None] = None

    def _instrument(self, **kwargs: Any) -> None:
        from agents.tracing import add_trace_processor, set_trace_processors

        handler = GenAIHandler.from_kwargs(kwargs, __name__, __version__)
        spans = _Spans(handler, __name__, __version__, tracer_provider=kwargs.get("tracer_provider"))
        processor: Any = _processor_class()(spans)
        cls = type(self)
        cls._processor = processor
        exclusive = kwargs.get("exclusive")
        if exclusive if isinstance(exclusive, bool) else env_flag(EXCLUSIVE_ENV):
            cls._replaced = _registered_processors()
            set_trace_processors([processor])
        else:
            cls._replaced = None
            add_trace_processor(processor)

    def _uninstrument(self, **kwargs: Any) -> None:
        from agents.tracing import set_trace_processors

        cls = type(self)
        processor, cls._processor = cls._processor, None
        replaced, cls._replaced = cls._replaced, None
        if processor is None:
            return
        processor.enabled = False
        if replaced is not None:
            set_trace_processors(replaced)
            return
        current = _registered_processors()
        if current is not None:
            set_trace_processors([item for item in current if item is not processor])


def _registered_processors() -> list[Any] | None:
    """The processors registered with the SDK's default trace provider (None when another provider is set
    or the SDK keeps them elsewhere: then a disabled processor stays registered)."""
    from agents.tracing import get_trace_provider

    multi = getattr(get_trace_provider(), "_multi_processor", None)
    processors = getattr(multi, "_processors", None)
    return list(processors) if isinstance(processors, tuple | list) else None


# --- reading SDK span data --------------------------------------------------------------------------


def _kind(data: Any) -> str:
    """The SDK span data's type (``agent``, ``function``, …; ``task``/``turn`` for the SDK's grouping spans,
    which report themselves as ``custom`` in their export)."""
    kind = getattr(data, "type", None)
    return str(kind) if kind else type(data).__name__


def _in_flight() -> BaseException | None:
    """The exception being handled where the SDK ends a span (its ``with`` block's exit), if any."""
    exc: BaseException | None = sys.exc_info()[1]
    return exc if isinstance(exc, Exception) else None


def _error(span: Any) -> BaseException | None:
    """The error of an SDK span: the exception its ``with`` block exits with (older releases record no
    error on a span that fails), else ``_OTHER`` with the message of the error the SDK recorded."""
    exc = _in_flight()
    if exc is not None:
        return exc
    error = getattr(span, "error", None)
    if not error:
        return None
    text = error.get("message") if isinstance(error, Mapping) else getattr(error, "message", None)
    return _Other(str(text or "error"))


def _provider(model: Any, config: Mapping[str, Any]) -> str:
    """``gen_ai.provider.name`` of a model call: any-llm's provider, LiteLLM's model prefix, the OpenAI
    client's base URL."""
    provider = config.get("provider")
    if isinstance(provider, str) and provider:
        return provider
    if config.get("model_impl") == "litellm" and isinstance(model, str) and "/" in model:
        return model.split("/", 1)[0]
    base_url = config.get("base_url")
    if isinstance(base_url, str) and base_url:
        return provider_for_url(base_url)
    return gv.PROVIDER_OPENAI


def _text(value: Any) -> str:
    return value if isinstance(value, str) else to_json(json_able(value))


def _handoff_tool_name(agent: str) -> str:
    """The SDK's default handoff tool name for an agent (``transfer_to_<agent in snake case>``)."""
    cleaned = "".join(char if char.isalnum() else "_" for char in agent.lower())
    return f"transfer_to_{cleaned}"


def _chat_tool_calls(output: Sequence[Any] | None) -> list[tuple[str, str | None]]:
    calls: list[tuple[str, str | None]] = []
    for item in output or ():
        for tool_call in get(item, "tool_calls") or ():
            function = get(tool_call, "function")
            calls.append((str(get(function, "name")), get(tool_call, "id")))
    return calls


def _responses_tool_calls(response: Any) -> list[tuple[str, str | None]]:
    return [
        (str(get(item, "name")), get(item, "call_id"))
        for item in getattr(response, "output", None) or ()
        if get(item, "type") == "function_call"
    ]


def _responses_usage(usage: Any) -> dict[str, Any]:
    if usage is None:
        return {}
    return {
        "input_tokens": get(usage, "input_tokens"),
        "output_tokens": get(usage, "output_tokens"),
        "input_tokens_details": {"cached_tokens": get(get(usage, "input_tokens_details"), "cached_tokens")},
        "output_tokens_details": {
            "reasoning_tokens": get(get(usage, "output_tokens_details"), "reasoning_tokens")
        },
    }


def _search_result(result: Any) -> dict[str, Any]:
    found: dict[str, Any] = {"content": get(result, "text")}
    for key in ("file_id", "filename", "score"):
        value = get(result, key)
        if value is not None:
            found[key] = value
    return found


def _fill(
    call: LLMCall, kind: str, data: Any, response: Any, usage: Mapping[str, Any], capture: bool
) -> None:
    """Copy what an ended generation/response span says into the framework's LLM call."""
    call.input_tokens = integer(usage.get("input_tokens"))
    call.output_tokens = integer(usage.get("output_tokens"))
    details = usage.get("input_tokens_details") or {}
    cached = integer(get(details, "cached_tokens"))
    if cached:
        call.cache_read_tokens = cached
    reasoning = integer(get(usage.get("output_tokens_details") or {}, "reasoning_tokens"))
    if reasoning:
        call.reasoning_tokens = reasoning
    if kind == "generation":
        if capture:
            call.input_messages, call.system_instructions = _chat_input(getattr(data, "input", None))
            output = getattr(data, "output", None)
            if output is not None:
                call.output_messages = [
                    {**_chat_message({"role": "assistant", **dict(item)}), "finish_reason": ""}
                    for item in output
                    if isinstance(item, Mapping)
                ]
        return
    if response is None:
        return
    call.response_id = getattr(response, "id", None)
    call.response_model = getattr(response, "model", None)
    status = getattr(response, "status", None)
    finish = _responses_finish_reason(response, status)
    if finish:
        call.finish_reasons = [finish]
    if capture:
        call.input_messages = _responses_input(getattr(data, "input", None))
        instructions = getattr(response, "instructions", None)
        if isinstance(instructions, str) and instructions:
            call.system_instructions = [{"type": "text", "content": instructions}]
        call.output_messages = [_responses_output(getattr(response, "output", None) or (), finish)]


def _chat_input(items: Any) -> tuple[list[Message], list[Part]]:
    """Chat Completions messages → (input messages, system instructions) in the GenAI parts format."""
    messages: list[Message] = []
    system: list[Part] = []
    for item in items or ():
        converted = _chat_message(item)
        if converted["role"] in ("system", "developer"):
            system.extend(converted["parts"])
        else:
            messages.append(converted)
    return messages, system
