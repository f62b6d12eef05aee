"""CrewAI instrumentation: one tree of spans per crew (or flow) run, from CrewAI's own event bus.

``CrewAIInstrumentor().instrument()`` wraps ``CrewAIEventsBus.emit`` and ``aemit``: every event CrewAI
emits is read right after CrewAI has stamped it, in the thread (or task) that emitted it. CrewAI's bus
gives each event an ``event_id``, the ``parent_event_id`` of the scope it was emitted in and, on the
event that closes a scope, the ``started_event_id`` of the event that opened it; those ids are the run
ids handed to :class:`~llm_observer.instrumentation._agents.AgentSpans`, so parents come from CrewAI's
own scope tracking, which follows CrewAI's work into the threads it starts (async tasks, tools run in
parallel), not from the ambient OpenTelemetry context alone; an event CrewAI emits outside any scope of
its own (work handed to a thread without its context) goes under its agent's run in flight. Where CrewAI's
scope stack loses a pair (a release that emits no end for a retried agent, or two ends for a failed model
call), an ending event closes the latest open run of its kind started by the same object, and a run ends
together with whatever CrewAI left open beneath it, so every span ends. ``uninstrument()`` restores both
methods.

What each event pair becomes:

- a crew kickoff → ``invoke_workflow {crew}``; a flow → ``invoke_workflow {flow}`` with a span per
  flow method;
- a task → a span named for the task (``crewai.task.id`` / ``crewai.task.name``);
- an agent executing a task (or a ``LiteAgent`` run) → ``invoke_agent {role}`` with ``gen_ai.agent.id``
  and the agent's goal as ``gen_ai.agent.description``;
- a tool use → ``execute_tool {tool}``, arguments and result under content capture;
- a knowledge search → ``retrieval knowledge`` (the query the agent's model wrote for it, and what was
  found, under content capture; the model call that rewrites the query is inside it, in a
  ``knowledge_query`` step); a memory query → ``retrieval memory``; memory retrieval and saving → steps;
- a model call → ONE LLM span: the provider SDK's span, nested under the right step, when llm-observer's
  instrumentor for the SDK behind CrewAI's LLM class is active (the parent step's span is made current
  while the call runs); otherwise CrewAI's own ``chat {model}`` span built from the call's events (model,
  request parameters, usage, finish reason and, under content capture, the messages);
- any other CrewAI scope (guardrails, reasoning, A2A…) → no span; what runs inside it lands under the
  nearest step that has one.

Token usage reported with each model call is summed on every step above it (see ``AgentSpans``). A
failure event ends its span with status ERROR and ``error.type``: the class of the exception CrewAI was
handling when it emitted the event, else :class:`CrewAIError` (the event carries only a message).

``instrument()`` takes ``tracer_provider``, ``meter_provider``, ``logger_provider`` and ``capture_content``
as the provider instrumentors do. CrewAI is imported only by ``instrument()``; this module imports none of
it, so it can be imported (and type-checked) where CrewAI is not installed.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import import_module
from typing import Any, ClassVar

from opentelemetry.util.types import AttributeValue

from llm_observer.instrumentation import __version__
from llm_observer.instrumentation._agents import RETRIEVAL_DOCUMENTS, RETRIEVAL_QUERY_TEXT, AgentSpans
from llm_observer.instrumentation._content import (
    Message,
    Part,
    json_able,
    message,
    text_part,
    to_json,
    tool_call_parts,
    tool_response_part,
)
from llm_observer.instrumentation._instrumentor import ProviderInstrumentor, Target, WrapperFactory
from llm_observer.instrumentation._util import integer, put_number, put_strings
from llm_observer.instrumentation._wrappers import WraptWrapper
from llm_observer.instrumentation.handler import GenAIHandler, LLMCall
from llm_observer.semconv import attributes as attr
from llm_observer.semconv import genai_values as gv

__all__ = ["CrewAIError", "CrewAIInstrumentor"]

_log = logging.getLogger(__name__)

# The event bus stamps parent_event_id and started_event_id on every event since 1.10; 1.10-1.14 pin an
# OpenTelemetry line whose opentelemetry-instrumentation holds wrapt below 2, which this package needs.
_instruments = ("crewai >= 1.15.0, < 2",)

_BUS = "crewai.events.event_bus"
_TARGETS = (
    Target(_BUS, "CrewAIEventsBus.emit", "emit"),
    Target(_BUS, "CrewAIEventsBus.aemit", "emit"),
)

#: Attributes of task steps.
CREWAI_TASK_ID = "crewai.task.id"
CREWAI_TASK_NAME = "crewai.task.name"

#: CrewAI's provider name (the ``provider`` of its LLM classes) → (``gen_ai.provider.name``, the
#: llm-observer instrumentor whose span a call through that provider's SDK gets: module, class).
_PROVIDERS: Mapping[str, tuple[str, tuple[str, str] | None]] = {
    "openai": (gv.PROVIDER_OPENAI, ("openai", "OpenAIInstrumentor")),
    "anthropic": (gv.PROVIDER_ANTHROPIC, ("anthropic", "AnthropicInstrumentor")),
    "claude": (gv.PROVIDER_ANTHROPIC, ("anthropic", "AnthropicInstrumentor")),
    "gemini": (gv.PROVIDER_GCP_GEMINI, ("google_genai", "GoogleGenAIInstrumentor")),
    "google": (gv.PROVIDER_GCP_GEMINI, ("google_genai", "GoogleGenAIInstrumentor")),
    "bedrock": (gv.PROVIDER_AWS_BEDROCK, ("bedrock", "BedrockInstrumentor")),
    "azure": (gv.PROVIDER_AZURE_AI_INFERENCE, None),
    "deepseek": (gv.PROVIDER_DEEPSEEK, None),
    "groq": (gv.PROVIDER_GROQ, None),
    "mistral": (gv.PROVIDER_MISTRAL_AI, None),
    "ollama": (gv.PROVIDER_OLLAMA, None),
    "xai": (gv.PROVIDER_X_AI, None),
}


# LiteLLM (CrewAI's route to providers it has no class of its own for) calls the OpenAI SDK for these
# providers and its own HTTP client for the others.
_LITELLM_OPENAI_SDK = frozenset({"openai", "azure"})


class CrewAIError(Exception):
    """Stands for a CrewAI failure whose exception was not at hand when its event was read (CrewAI's
    failure events carry only the message); its class name is the span's ``error.type``."""


def _provider_instrumented(provider: str) -> bool:
    """Whether llm-observer's instrumentor for the SDK behind CrewAI's ``provider`` is active (then its
    span is the call's LLM span)."""
    entry = _PROVIDERS.get(provider)
    if entry is None or entry[1] is None:
        return False
    module, name = entry[1]
    try:
        instrumentor = getattr(import_module(f"llm_observer.instrumentation.{module}"), name)
    except (ImportError, AttributeError):
        return False
    instance = instrumentor._instance
    return instance is not None and bool(instance.is_instrumented_by_opentelemetry)


def _llm_provider(source: Any, model: str | None) -> str:
    """CrewAI's provider name for the LLM object that emitted a model call's events."""
    provider = getattr(source, "provider", None)
    if isinstance(provider, str) and provider:
        return provider.lower()
    if model and "/" in model:
        return model.split("/", 1)[0].lower()
    return "openai" if getattr(source, "is_litellm", False) else ""


@dataclass(slots=True)
class _Open:
    """A run in flight: the event type that opened it, its parent run, the object that emitted it."""

    kind: str
    parent: str | None
    key: int


class _Listener:
    """Reads CrewAI's events (see the module docstring); never raises into CrewAI."""

    def __init__(self, agents: AgentSpans, scope_events: frozenset[str], pairs: Mapping[str, str]) -> None:
        self.agents = agents
        self.enabled = True
        self._scope_events = scope_events
        self._calls: dict[str, LLMCall] = {}
        # Runs in flight by event id, to close what CrewAI's own scope stack leaves open.
        self._open: dict[str, _Open] = {}
        self._pairs = pairs
        # Agent id → its agent run in flight (for events emitted where CrewAI's scope was not carried).
        self._agent_runs: dict[str, str] = {}
        self._lock = threading.Lock()
        self._starts: dict[str, Callable[[str, str | None, Any, Any], None]] = {
            "crew_kickoff_started": self._crew_started,
            "flow_started": self._flow_started,
            "method_execution_started": self._method_started,
            "task_started": self._task_started,
            "agent_execution_started": self._agent_started,
            "lite_agent_execution_started": self._lite_agent_started,
            "tool_usage_started": self._tool_started,
            "llm_call_started": self._llm_started,
            "knowledge_search_query_started": self._knowledge_started,
            "knowledge_query_started": self._step("knowledge_query"),
            "memory_query_started": self._memory_query_started,
            "memory_retrieval_started": self._step("memory_retrieval"),
            "memory_save_started": self._step("memory_save"),
        }
        self._ends: dict[str, Callable[[str, Any], None]] = {
            "tool_usage_finished": self._tool_finished,
            "tool_usage_error": self._tool_failed,
            "llm_call_completed": self._llm_completed,
            "llm_call_failed": self._llm_failed,
            "knowledge_search_query_completed": self._knowledge_completed,
            "memory_query_completed": self._memory_query_completed,
        }

    def on_event(self, source: Any, event: Any) -> None:
        if not self.enabled:
            return
        try:
            self._dispatch(source, event)
        except Exception:
            _log.debug("Could not record a CrewAI event.", exc_info=True)

    def _dispatch(self, source: Any, event: Any) -> None:
        kind = getattr(event, "type", None)
        event_id = getattr(event, "event_id", None)
        if not isinstance(kind, str) or not isinstance(event_id, str):
            return
        if kind == "llm_stream_chunk":
            parent = getattr(event, "parent_event_id", None)
            if parent is not None:
                self.agents.first_chunk(parent)
            return
        start = self._starts.get(kind)
        if start is not None or kind in self._scope_events:
            parent = self._parent(event)
            with self._lock:
                self._open[event_id] = _Open(kind, parent, id(source))
            if start is not None:
                start(event_id, parent, source, event)
            else:
                # A scope without a span of its own: what runs inside lands under the nearest step above.
                self.agents.start_hidden(event_id, parent)
            return
        started = getattr(event, "started_event_id", None)
        if not isinstance(started, str):
            return
        target = self._resolve(kind, started, source)
        if target is None:
            return
        error = _failure(event)
        for inner in self._open_below(target):
            self._close(inner, error)
        with self._lock:
            opened = self._forget(target)
        end = self._ends.get(kind)
        if end is not None:
            end(target, event)
        elif opened is not None and opened.kind == "llm_call_started":
            self._llm_failed(target, event)
        else:
            self.agents.end(target, error=error)

    def _resolve(self, kind: str, started: str, source: Any) -> str | None:
        """The run an ending event closes. CrewAI's ``started_event_id`` names it, unless CrewAI's scope
        stack lost a pair (some releases emit no end for a retried agent, or two for a failed model
        call): then the latest open run of the matching kind started by the same object, or None (an
        end already recorded)."""
        expected = self._pairs.get(kind)
        with self._lock:
            found = self._open.get(started)
            if expected is None or (found is not None and found.kind == expected):
                return started
            key = id(source)
            for run_id in reversed(self._open):
                opened = self._open[run_id]
                if opened.kind == expected and opened.key == key:
                    return run_id
        return None

    def _open_below(self, target: str) -> list[str]:
        """Runs still open beneath ``target``, innermost first: CrewAI never closed them, and they cannot
        outlive it."""
        below: list[str] = []
        with self._lock:
            for run_id in reversed(self._open):
                parent = self._open[run_id].parent
                while parent is not None and parent != target:
                    opened = self._open.get(parent)
                    parent = None if opened is None else opened.parent
                if parent == target:
                    below.append(run_id)
        return below

    def _close(self, run_id: str, error: BaseException | None) -> None:
        with self._lock:
            opened = self._forget(run_id)
        if opened is not None and opened.kind == "llm_call_started":
            self._calls.pop(run_id, None)
            self.agents.end_llm(run_id, None, None, error)
        else:
            self.agents.end(run_id, error=error)

    def _forget(self, run_id: str) -> _Open | None:
        """Drop an open run (the caller holds the lock)."""
        opened = self._open.pop(run_id, None)
        if opened is not None and opened.kind == "agent_execution_started":
            for agent_id, agent_run in list(self._agent_runs.items()):
                if agent_run == run_id:
                    del self._agent_runs[agent_id]
        return opened

    def _parent(self, event: Any) -> str | None:
        """The run an event belongs under: the scope CrewAI emitted it in, else (work CrewAI handed to a
        thread without its context) the agent run in flight for the event's agent."""
        parent = getattr(event, "parent_event_id", None)
        if isinstance(parent, str):
            return parent
        agent_id = getattr(event, "agent_id", None)
        return None if agent_id is None else self._agent_runs.get(str(agent_id))

    # --- workflows, tasks, agents ---------------------------------------------------------------------

    def _crew_started(self, event_id: str, parent: str | None, source: Any, event: Any) -> None:
        name = getattr(event, "crew_name", None) or getattr(source, "name", None) or "crew"
        self.agents.start_workflow(event_id, parent, str(name))

    def _flow_started(self, event_id: str, parent: str | None, source: Any, event: Any) -> None:
        if _internal_flow(source):
            # Newer releases run an agent's own loop as a flow: part of the agent, not a workflow.
            self.agents.start_hidden(event_id, parent)
        else:
            self.agents.start_workflow(event_id, parent, str(getattr(event, "flow_name", None) or "flow"))

    def _method_started(self, event_id: str, parent: str | None, source: Any, event: Any) -> None:
        self.agents.start_step(event_id, parent, str(getattr(event, "method_name", None) or "method"))

    def _task_started(self, event_id: str, parent: str | None, source: Any, event: Any) -> None:
        task = getattr(event, "task", None) or source
        name = getattr(task, "name", None) or "task"
        attributes: dict[str, AttributeValue] = {CREWAI_TASK_NAME: str(name)}
        task_id = getattr(task, "id", None)
        if task_id is not None:
            attributes[CREWAI_TASK_ID] = str(task_id)
        self.agents.start_step(event_id, parent, str(name), attributes)

    def _agent_started(self, event_id: str, parent: str | None, source: Any, event: Any) -> None:
        agent = getattr(event, "agent", None) or source
        agent_id = getattr(agent, "id", None)
        if agent_id is not None:
            with self._lock:
                self._agent_runs[str(agent_id)] = event_id
        self.agents.start_agent(
            event_id,
            parent,
            str(getattr(agent, "role", None) or "agent"),
            agent_id=None if agent_id is None else str(agent_id),
            description=_text(getattr(agent, "goal", None)),
        )

    def _lite_agent_started(self, event_id: str, parent: str | None, source: Any, event: Any) -> None:
        info = getattr(event, "agent_info", None) or {}
        agent_id = info.get("id") or getattr(source, "id", None)
        self.agents.start_agent(
            event_id,
            parent,
            str(info.get("role") or getattr(source, "role", None) or "agent"),
            agent_id=None if agent_id is None else str(agent_id),
            description=_text(info.get("goal")),
        )

    def _step(self, name: str) -> Callable[[str, str | None, Any, Any], None]:
        def start(event_id: str, parent: str | None, source: Any, event: Any) -> None:
            self.agents.start_step(event_id, parent, name)

        return start

    # --- tools and retrieval --------------------------------------------------------------------------

    def _tool_started(self, event_id: str, parent: str | None, source: Any, event: Any) -> None:
        self.agents.start_tool(
            event_id,
            parent,
            str(getattr(event, "tool_name", None) or "tool"),
            arguments=getattr(event, "tool_args", None),
        )

    def _tool_finished(self, started: str, event: Any) -> None:
        self.agents.end_tool(started, getattr(event, "output", None))

    def _tool_failed(self, started: str, event: Any) -> None:
        self.agents.end_tool(started, error=_failure(event) or CrewAIError("tool failed"))

    def _knowledge_started(self, event_id: str, parent: str | None, source: Any, event: Any) -> None:
        self.agents.start_retrieval(event_id, parent, "knowledge")

    def _knowledge_completed(self, started: str, event: Any) -> None:
        extra: dict[str, AttributeValue] = {}
        if self.agents.capture_content:
            query = getattr(event, "query", None)
            if isinstance(query, str):
                extra[RETRIEVAL_QUERY_TEXT] = query
            found = getattr(event, "retrieved_knowledge", None)
            if isinstance(found, str) and found:
                extra[RETRIEVAL_DOCUMENTS] = to_json([{"content": found}])
        self.agents.end(started, attributes=extra)

    def _memory_query_started(self, event_id: str, parent: str | None, source: Any, event: Any) -> None:
        self.agents.start_retrieval(event_id, parent, "memory", _text(getattr(event, "query", None)))

    def _memory_query_completed(self, started: str, event: Any) -> None:
        results = getattr(event, "results", None)
        documents = [json_able(item) for item in results] if isinstance(results, list) else None
        self.agents.end_retrieval(started, documents)

    # --- model calls ----------------------------------------------------------------------------------

    def _llm_started(self, event_id: str, parent: str | None, source: Any, event: Any) -> None:
        model = _text(getattr(event, "model", None)) or _text(getattr(source, "model", None))
        provider = _llm_provider(source, model)
        sdk_provider = provider
        if getattr(source, "is_litellm", False):
            sdk_provider = "openai" if provider in _LITELLM_OPENAI_SDK else ""
        call = None
        if not _provider_instrumented(sdk_provider):
            call = _model_call(provider, model, event)
            if self.agents.handler.capture_content:
                call.input_messages, call.system_instructions = _messages(getattr(event, "messages", None))
                tools = getattr(event, "tools", None)
                if isinstance(tools, list) and tools:
                    call.tool_definitions = [json_able(tool) for tool in tools]
            self._calls[event_id] = call
        self.agents.start_llm(event_id, parent, call)

    def _llm_completed(self, started: str, event: Any) -> None:
        call = self._calls.pop(started, None)
        usage = getattr(event, "usage", None)
        usage = usage if isinstance(usage, Mapping) else {}
        input_tokens = integer(usage.get("prompt_tokens", usage.get("input_tokens")))
        output_tokens = integer(usage.get("completion_tokens", usage.get("output_tokens")))
        if call is not None:
            call.input_tokens, call.output_tokens = input_tokens, output_tokens
            call.cache_read_tokens = integer(usage.get("cached_prompt_tokens")) or None
            call.reasoning_tokens = integer(usage.get("reasoning_tokens")) or None
            call.response_id = _text(getattr(event, "response_id", None))
            reason = _text(getattr(event, "finish_reason", None))
            call.finish_reasons = [reason] if reason else None
            if self.agents.handler.capture_content:
                parts = _response_parts(getattr(event, "response", None))
                call.output_messages = [message("assistant", parts, finish_reason=reason or "stop")]
        self.agents.end_llm(started, input_tokens, output_tokens)

    def _llm_failed(self, started: str, event: Any) -> None:
        self._calls.pop(started, None)
        self.agents.end_llm(started, None, None, _failure(event) or CrewAIError("model call failed"))


def _internal_flow(source: Any) -> bool:
    """Whether a flow is CrewAI's own machinery (an agent's executor runs as a flow in newer releases)."""
    cls = type(source)
    if getattr(cls, "is_crewai_internal", False):
        return True
    return any(base.__name__ == "BaseAgentExecutor" for base in cls.__mro__)


def _failure(event: Any) -> BaseException | None:
    """The exception behind a failure event: the one CrewAI is handling as it emits the event (read in
    the emitting thread), else a :class:`CrewAIError` with the event's message; None for other events."""
    message_text = getattr(event, "error", None)
    kind = getattr(event, "type", "")
    if message_text is None and not kind.endswith(("_failed", "_error")):
        return None
    handled = sys.exc_info()[1]
    if handled is not None:
        return handled
    return CrewAIError(str(message_text or kind))


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _model_call(provider: str, model: str | None, event: Any) -> LLMCall:
    provider_name = _PROVIDERS.get(provider, (provider or "crewai", None))[0]
    call = LLMCall(gv.OP_CHAT, provider_name, model)
    put_number(call.attributes, attr.GEN_AI_REQUEST_TEMPERATURE, getattr(event, "temperature", None))
    put_number(call.attributes, attr.GEN_AI_REQUEST_TOP_P, getattr(event, "top_p", None))
    put_number(call.attributes, attr.GEN_AI_REQUEST_MAX_TOKENS, getattr(event, "max_tokens", None))
    put_number(call.attributes, attr.GEN_AI_REQUEST_SEED, getattr(event, "seed", None))
    put_number(
        call.attributes, attr.GEN_AI_REQUEST_FREQUENCY_PENALTY, getattr(event, "frequency_penalty", None)
    )
    put_number(
        call.attributes, attr.GEN_AI_REQUEST_PRESENCE_PENALTY, getattr(event, "presence_penalty", None)
    )
    put_strings(call.attributes, attr.GEN_AI_REQUEST_STOP_SEQUENCES, getattr(event, "stop_sequences", None))
    choices = integer(getattr(event, "n", None))
    if choices is not None and choices != 1:
        call.attributes[attr.GEN_AI_REQUEST_CHOICE_COUNT] = choices
    call.streaming = bool(getattr(event, "stream", False))
    return call


def _content_parts(content: Any) -> list[Part]:
    if isinstance(content, str):
        return [text_part(content)] if content else []
    parts: list[Part] = []
    for block in content or ():
        if isinstance(block, Mapping) and block.get("type") == "text":
            parts.append(text_part(str(block.get("text", ""))))
        elif isinstance(block, str):
            parts.append(text_part(block))
    return parts


def _messages(messages: Any) -> tuple[list[Message], list[Part]]:
    """CrewAI's (OpenAI-shaped) messages → (input messages, system instructions) in the GenAI format."""
    if isinstance(messages, str):
        return [message("user", [text_part(messages)])], []
    inputs: list[Message] = []
    system: list[Part] = []
    for item in messages or ():
        if not isinstance(item, Mapping):
            continue
        role = str(item.get("role") or "user")
        if role == "system":
            system.extend(_content_parts(item.get("content")))
        elif role == "tool":
            inputs.append(
                message("tool", [tool_response_part(item.get("tool_call_id"), item.get("content"))])
            )
        else:
            parts = _content_parts(item.get("content")) + tool_call_parts(item.get("tool_calls"))
            inputs.append(message(role, parts))
    return inputs, system


def _response_parts(response: Any) -> list[Part]:
    """A model call's answer as CrewAI reports it: the text, or the tool calls it asked for."""
    if isinstance(response, str):
        return [text_part(response)]
    if isinstance(response, list):
        return tool_call_parts(response)
    return [] if response is None else [text_part(to_json(json_able(response)))]


class CrewAIInstrumentor(ProviderInstrumentor):
    """Reads CrewAI's event bus into spans (see the module docstring)."""

    instruments = _instruments
    targets = _TARGETS
    _listener: ClassVar[_Listener | None] = None

    def _wrapper_factory(self, handler: GenAIHandler, kwargs: Mapping[str, Any]) -> WrapperFactory:
        agents = AgentSpans(handler, __name__, __version__, tracer_provider=kwargs.get("tracer_provider"))
        listener = _Listener(agents, *_scopes())
        type(self)._listener = listener

        def emit(wrapped: Callable[..., Any], instance: Any, args: Any, kw: Any) -> Any:
            result = wrapped(*args, **kw)
            listener.on_event(*_source_and_event(args, kw))
            return result

        async def aemit(wrapped: Callable[..., Any], instance: Any, args: Any, kw: Any) -> Any:
            result = await wrapped(*args, **kw)
            listener.on_event(*_source_and_event(args, kw))
            return result

        def make(target: Target, is_async: bool) -> WraptWrapper:
            return aemit if is_async else emit

        return make

    def _uninstrument(self, **kwargs: Any) -> None:
        super()._uninstrument(**kwargs)
        listener, type(self)._listener = type(self)._listener, None
        if listener is not None:
            listener.enabled = False


def _source_and_event(args: Any, kwargs: Mapping[str, Any]) -> tuple[Any, Any]:
    source = args[0] if args else kwargs.get("source")
    event = args[1] if len(args) > 1 else kwargs.get("event")
    return source, event


def _scopes() -> tuple[frozenset[str], dict[str, str]]:
    """The event types that open a scope on CrewAI's bus, and each closing type's opening type (CrewAI's
    own tables)."""
    try:
        module = import_module("crewai.events.event_context")
        starts = frozenset(str(kind) for kind in module.SCOPE_STARTING_EVENTS)
        pairs = {str(end): str(start) for end, start in module.VALID_EVENT_PAIRS.items()}
    except (ImportError, AttributeError):
        return frozenset(), {}
    return starts, pairs
