"""Haystack instrumentation: one tree of spans per pipeline or agent run, from Haystack's tracer interface.

``HaystackInstrumentor().instrument()`` installs llm-observer's tracer as Haystack's tracer
(``haystack.tracing.enable_tracing``; the tracer that was active before is put back by ``uninstrument()``)
and wraps ``Pipeline.run``, ``Pipeline.run_async``, ``Agent.run`` and ``Agent.run_async`` only to
know which pipeline or agent a span belongs to (the model a chat generator calls is not among Haystack's
span tags). It is a :class:`~llm_observer.instrumentation._instrumentor.ProviderInstrumentor` whose targets
are those methods (the module's ``_TARGETS``).

What each Haystack span becomes (through :class:`~llm_observer.instrumentation._agents.AgentSpans`, parented
by Haystack's own span objects, so steps run in worker threads or asyncio tasks keep their parents):

- ``haystack.pipeline.run`` → ``invoke_workflow {name}`` (the pipeline metadata's ``name``, else the
  pipeline class, ``Pipeline``);
- ``haystack.component.run`` → by the component: an ``Agent`` → ``invoke_agent {component name}``; a
  retriever → ``retrieval {component name}``; a chat or text generator (a class named ``…Generator``, image
  generators excepted) → ONE LLM span (below); an embedder (``…Embedder``) → one ``embeddings`` span; any
  other component → a span named for the component with ``haystack.component.type``;
- ``haystack.agent.run`` → ``invoke_agent {agent class}`` for an agent run on its own (inside an ``Agent``
  component it adds nothing: the component's span is the agent's); ``haystack.agent.step`` adds no span;
- ``haystack.agent.step.llm`` and ``haystack.chat_generator.run`` → ONE LLM span;
- ``haystack.agent.step.tool`` → ``execute_tool {tool}`` with ``gen_ai.tool.call.id`` (matched with the
  model's tool call by name and arguments); a tool that failed (Haystack hands the error back to the model:
  the span is tagged ``haystack.tool.error``, or its output is ``{"error": message}``) gets status ERROR and
  ``error.type`` ``ToolInvocationError``;
- any other Haystack span (hooks…) → a span named for the operation.

A model call gives one LLM span: the provider SDK's span, nested under the right step, when llm-observer's
instrumentor for the generator's SDK is active (OpenAI generators → ``OpenAIInstrumentor``…); otherwise the
framework's own ``chat {model}`` span with model, server, usage (the replies' ``meta``) and, under content
capture, the messages and tool definitions (a generator whose instance the tracer cannot see — one called
by another component, or run by ``Pipeline.run_async_generator`` used directly — has no request model: its
span is named ``chat`` and carries the response model). Usage is summed up the tree as
``llm_observer.subtree.input_tokens`` / ``.output_tokens`` either way.

Content: Haystack hands its span inputs and outputs to ``set_content_tag``, which this tracer always reads
(whatever ``HAYSTACK_CONTENT_TRACING_ENABLED`` says) and records only under llm-observer's content capture
switch (``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` or ``instrument(capture_content=…)``): tool
arguments and results, retrieval query and documents, model messages.

Haystack's log correlation (``Span.get_correlation_data_for_logs``) gives the ``trace_id`` and ``span_id``
(hex) of the OpenTelemetry span a log line was written in.

``instrument()`` takes ``tracer_provider``, ``meter_provider``, ``logger_provider`` and ``capture_content``
as the provider instrumentors do. Haystack has one tracer at a time: a tracer set before ``instrument()``
is replaced while instrumented and restored by ``uninstrument()``.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from importlib import import_module
from typing import Any, ClassVar

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.util.types import AttributeValue

from llm_observer.instrumentation import __version__
from llm_observer.instrumentation._agents import (
    RETRIEVAL_DOCUMENTS,
    RETRIEVAL_QUERY_TEXT,
    AgentSpans,
    RunId,
)
from llm_observer.instrumentation._content import (
    Message,
    Part,
    json_able,
    message,
    text_part,
    to_json,
    tool_call_part,
    tool_response_part,
)
from llm_observer.instrumentation._instrumentor import ProviderInstrumentor, Target, WrapperFactory
from llm_observer.instrumentation._util import host_port, integer, put_number, put_strings
from llm_observer.instrumentation._wrappers import WraptWrapper
from llm_observer.instrumentation.handler import GenAIHandler, LLMCall
from llm_observer.semconv import attributes as attr
from llm_observer.semconv import genai_values as gv

__all__ = ["HaystackInstrumentor"]

_log = logging.getLogger(__name__)

_instruments = ("haystack-ai >= 3.0.0, < 4",)

#: The pipeline and the agent whose run is in progress (set by the wrappers of their run methods).
_PIPELINE: ContextVar[Any] = ContextVar("llm_observer_haystack_pipeline", default=None)
_AGENT: ContextVar[Any] = ContextVar("llm_observer_haystack_agent", default=None)

_AGENTS_MODULE = "haystack.components.agents.agent"
_TARGETS = (
    Target("haystack.core.pipeline.pipeline", "Pipeline.run", "pipeline"),
    Target("haystack.core.pipeline.pipeline", "Pipeline.run_async", "pipeline"),
    Target(_AGENTS_MODULE, "Agent.run", "agent"),
    Target(_AGENTS_MODULE, "Agent.run_async", "agent"),
)
_OWNERS: Mapping[str, ContextVar[Any]] = {"pipeline": _PIPELINE, "agent": _AGENT}

# Haystack's span names and tags.
_PIPELINE_RUN = "haystack.pipeline.run"
_COMPONENT_RUN = "haystack.component.run"
_AGENT_RUN = "haystack.agent.run"
_AGENT_STEP = "haystack.agent.step"
_AGENT_LLM = "haystack.agent.step.llm"
_AGENT_TOOL = "haystack.agent.step.tool"
_GENERATOR_RUN = "haystack.chat_generator.run"
_COMPONENT_NAME = "haystack.component.name"
_COMPONENT_TYPE = "haystack.component.type"
#: The content tags that carry a span's inputs and outputs.
_INPUTS = ("haystack.component.input", "haystack.agent.step.llm.input", "haystack.agent.step.tool.input")
_OUTPUTS = ("haystack.component.output", "haystack.agent.step.llm.output", "haystack.agent.step.tool.output")

# What a Haystack span became.
_WORKFLOW = "workflow"
_AGENT_KIND = "agent"
_STEP = "step"
_HIDDEN = "hidden"
_LLM = "llm"
_TOOL = "tool"
_RETRIEVAL = "retrieval"
_IGNORED = "ignored"

#: Class-name prefixes of generators and embedders → (``gen_ai.provider.name``, the llm-observer
#: instrumentor of the SDK they call: module, class). Matched over the class's MRO: the provider comes from
#: the first match, the SDK from the last (a Mistral generator built on the OpenAI one calls the OpenAI SDK).
_PROVIDERS: tuple[tuple[str, str, tuple[str, str] | None], ...] = (
    ("AzureOpenAI", gv.PROVIDER_AZURE_AI_OPENAI, ("openai", "OpenAIInstrumentor")),
    ("OpenAI", gv.PROVIDER_OPENAI, ("openai", "OpenAIInstrumentor")),
    ("HuggingFaceAPI", gv.PROVIDER_HUGGING_FACE, ("huggingface", "HuggingFaceInstrumentor")),
    ("HuggingFaceLocal", gv.PROVIDER_HUGGING_FACE, None),
    ("Anthropic", gv.PROVIDER_ANTHROPIC, ("anthropic", "AnthropicInstrumentor")),
    ("Cohere", gv.PROVIDER_COHERE, ("cohere", "CohereInstrumentor")),
    ("Mistral", gv.PROVIDER_MISTRAL_AI, ("mistral", "MistralInstrumentor")),
    ("Ollama", gv.PROVIDER_OLLAMA, ("ollama", "OllamaInstrumentor")),
    ("GoogleGenAI", gv.PROVIDER_GCP_GEN_AI, ("google_genai", "GoogleGenAIInstrumentor")),
    ("AmazonBedrock", gv.PROVIDER_AWS_BEDROCK, ("bedrock", "BedrockInstrumentor")),
)
_OTHER_PROVIDER = "haystack"

_GENERATION_NUMBERS = (
    ("temperature", attr.GEN_AI_REQUEST_TEMPERATURE),
    ("top_p", attr.GEN_AI_REQUEST_TOP_P),
    ("max_tokens", attr.GEN_AI_REQUEST_MAX_TOKENS),
    ("max_completion_tokens", attr.GEN_AI_REQUEST_MAX_TOKENS),
    ("seed", attr.GEN_AI_REQUEST_SEED),
    ("frequency_penalty", attr.GEN_AI_REQUEST_FREQUENCY_PENALTY),
    ("presence_penalty", attr.GEN_AI_REQUEST_PRESENCE_PENALTY),
    ("n", attr.GEN_AI_REQUEST_CHOICE_COUNT),
)


class _AgentSpans(AgentSpans):
    """:class:`AgentSpans` that also gives a step's span as a context, to make it current while the step
    runs (user spans and provider calls inside a tool or component then nest under it)."""

    def step_context(self, run_id: RunId) -> Context | None:
        run = self._runs.get(run_id)
        span = None if run is None else run.span
        return None if span is None else trace.set_span_in_context(span)


class _SpanState:
    """What llm-observer keeps of one Haystack span (the methods of ``haystack.tracing.Span``; the base
    class is mixed in when Haystack is imported, see :func:`_tracer_class`)."""

    def __init__(self, run_id: int, parent: _SpanState | None, operation: str, tags: dict[str, Any]) -> None:
        self.run_id = run_id
        self.parent = parent
        self.operation = operation
        self.tags = tags
        self.content: dict[str, Any] = {}
        self.kind = _IGNORED
        self.call: LLMCall | None = None
        self.operation_name = gv.OP_CHAT
        #: Tool calls a model asked for in this agent step, not yet matched with a tool span: (id, name, args).
        self.tool_calls: list[tuple[str | None, str, Any]] = []
        #: The OpenTelemetry context of the span this step became (None: it made none of its own).
        self.otel_context: Context | None = None

    def set_tag(self, key: str, value: Any) -> None:
        self.tags[key] = value

    def set_content_tag(self, key: str, value: Any) -> None:
        # Always kept (only a reference): usage and tool-call ids live there; recorded only under capture.
        self.content[key] = value

    def raw_span(self) -> Any:
        return self

    def get_correlation_data_for_logs(self) -> dict[str, Any]:
        """``trace_id`` / ``span_id`` (hex) of the OpenTelemetry span this step is in, for Haystack's logs."""
        state: _SpanState | None = self
        while state is not None and state.otel_context is None:
            state = state.parent
        if state is None:
            return {}
        context = trace.get_current_span(state.otel_context).get_span_context()
        if not context.is_valid:
            return {}
        return {"trace_id": format(context.trace_id, "032x"), "span_id": format(context.span_id, "016x")}


class _Tracing:
    """The Haystack tracer (the methods of ``haystack.tracing.Tracer``; see :func:`_tracer_class`)."""

    def __init__(self, agents: _AgentSpans, span_class: type[_SpanState]) -> None:
        super().__init__()
        self.agents = agents
        self.enabled = True
        self._span_class = span_class
        self._ids = itertools.count(1)
        self._current: ContextVar[_SpanState | None] = ContextVar("llm_observer_haystack_span", default=None)
        self._lock = threading.Lock()

    @contextmanager
    def trace(
        self, operation_name: str, tags: dict[str, Any] | None = None, parent_span: Any = None
    ) -> Iterator[_SpanState]:
        parent = parent_span if isinstance(parent_span, _SpanState) else self._current.get()
        span = self._span_class(next(self._ids), parent, operation_name, dict(tags or {}))
        if self.enabled:
            try:
                self._begin(span)
            except Exception:  # never raise into the user's run
                _log.debug("Could not start a span for Haystack's %s.", operation_name, exc_info=True)
                span.kind = _IGNORED
        token = self._current.set(span)
        attached = None
        if span.kind == _LLM:
            span.otel_context = self.agents.llm_context(span.run_id)
        elif span.kind != _IGNORED:
            attached = span.otel_context = self.agents.step_context(span.run_id)
        attach_token = None if attached is None else otel_context.attach(attached)
        error: BaseException | None = None
        try:
            yield span
        except BaseException as exc:
            error = exc
            raise
        finally:
            # Only undo what this thread and task did, and only while it is still current.
            if attach_token is not None and otel_context.get_current() is attached:
                otel_context.detach(attach_token)
            try:
                self._end(span, error)
            except Exception:
                _log.debug("Could not end the span for Haystack's %s.", operation_name, exc_info=True)
            with suppress(ValueError):  # ended in another context than it started in
                self._current.reset(token)

    def current_span(self) -> _SpanState | None:
        return self._current.get()

    # --- starting -------------------------------------------------------------------------------------

    def _begin(self, span: _SpanState) -> None:
        agents = self.agents
        parent_id = span.parent.run_id if span.parent is not None and span.parent.kind != _IGNORED else None
        operation, tags = span.operation, span.tags
        if operation == _PIPELINE_RUN:
            span.kind = _WORKFLOW
            agents.start_workflow(span.run_id, parent_id, _workflow_name(_PIPELINE.get(), tags))
        elif operation == _COMPONENT_RUN:
            self._begin_component(span, parent_id)
        elif operation == _AGENT_RUN:
            parent = span.parent
            if parent is not None and parent.kind == _AGENT_KIND and parent.operation == _COMPONENT_RUN:
                span.kind = _HIDDEN
                agents.start_hidden(span.run_id, parent_id)
            else:
                span.kind = _AGENT_KIND
                agent = _AGENT.get()
                agents.start_agent(span.run_id, parent_id, type(agent).__name__ if agent else "Agent")
        elif operation == _AGENT_STEP:
            span.kind = _HIDDEN
            agents.start_hidden(span.run_id, parent_id)
        elif operation == _AGENT_LLM:
            self._begin_llm(span, parent_id, getattr(_AGENT.get(), "chat_generator", None), None)
        elif operation == _GENERATOR_RUN:
            self._begin_llm(span, parent_id, None, str(tags.get(_COMPONENT_TYPE) or ""))
        elif operation == _AGENT_TOOL:
            span.kind = _TOOL
            agents.start_tool(
                span.run_id,
                parent_id,
                str(tags.get("haystack.tool.name") or "tool"),
                description=tags.get("haystack.tool.description") or None,
            )
        else:
            span.kind = _STEP
            agents.start_step(span.run_id, parent_id, operation)

    def _begin_component(self, span: _SpanState, parent_id: RunId | None) -> None:
        name = str(span.tags.get(_COMPONENT_NAME) or "component")
        type_name = str(span.tags.get(_COMPONENT_TYPE) or "")
        instance = _component(_PIPELINE.get(), name)
        names = _class_names(instance, type_name)
        if "Agent" in names:
            span.kind = _AGENT_KIND
            self.agents.start_agent(span.run_id, parent_id, name)
        elif any(_is_generator(class_name) for class_name in names):
            self._begin_llm(span, parent_id, instance, type_name)
        elif any(class_name.endswith("Embedder") for class_name in names):
            span.operation_name = gv.OP_EMBEDDINGS
            self._begin_llm(span, parent_id, instance, type_name)
        elif any("Retriever" in class_name for class_name in names):
            span.kind = _RETRIEVAL
            self.agents.start_retrieval(span.run_id, parent_id, name)
        else:
            span.kind = _STEP
            self.agents.start_step(span.run_id, parent_id, name, {_COMPONENT_TYPE: type_name})

    def _begin_llm(
        self, span: _SpanState, parent_id: RunId | None, instance: Any, type_name: str | None
    ) -> None:
        span.kind = _LLM
        names = _class_names(instance, type_name or "")
        chat = any("Chat" in class_name for class_name in names)
        # A text generator component (prompt in, replies out); an agent's model is always a chat generator.
        if span.operation_name == gv.OP_CHAT and not chat and span.operation == _COMPONENT_RUN:
            span.operation_name = gv.OP_TEXT_COMPLETION
        provider, sdk = _provider(names)
        if not _provider_instrumented(sdk):
            span.call = _model_call(span.operation_name, provider, instance)
        self.agents.start_llm(span.run_id, parent_id, span.call)

    # --- ending ---------------------------------------------------------------------------------------

    def _end(self, span: _SpanState, error: BaseException | None) -> None:
        kind = span.kind
        if kind == _IGNORED:
            return
        if kind == _LLM:
            self._end_llm(span, error)
        elif kind == _TOOL:
            self._end_tool(span, error)
        elif kind == _RETRIEVAL:
            self.agents.end(span.run_id, error=_cause(error), attributes=self._retrieval_content(span))
        elif kind == _WORKFLOW:
            self.agents.end(span.run_id, error=error)
        else:
            self.agents.end(span.run_id, error=_cause(error))

    def _end_llm(self, span: _SpanState, error: BaseException | None) -> None:
        output = _first(span.content, _OUTPUTS)
        usage: tuple[int | None, int | None] = (None, None)
        try:
            if span.operation_name == gv.OP_EMBEDDINGS:
                usage = _read_embeddings(span.call, output)
            else:
                replies = _replies(output)
                usage = _read_replies(span.call, replies, self.agents.handler.capture_content)
                self._note_tool_calls(span, replies)
                if span.call is not None and self.agents.handler.capture_content:
                    _read_inputs(span.call, _first(span.content, _INPUTS))
        except Exception:
            _log.debug("Could not read a Haystack model result.", exc_info=True)
        self.agents.end_llm(span.run_id, usage[0], usage[1], _cause(error))

    def _note_tool_calls(self, span: _SpanState, replies: Sequence[Any]) -> None:
        step = span.parent
        if step is None or span.operation != _AGENT_LLM:
            return
        calls = [
            (getattr(call, "id", None), str(getattr(call, "tool_name", "")), getattr(call, "arguments", None))
            for reply in replies
            for call in getattr(reply, "tool_calls", None) or ()
        ]
        with self._lock:
            step.tool_calls.extend(calls)

    def _end_tool(self, span: _SpanState, error: BaseException | None) -> None:
        arguments = _first(span.content, _INPUTS)
        result = _first(span.content, _OUTPUTS)
        name = str(span.tags.get("haystack.tool.name") or "")
        extra: dict[str, AttributeValue] = {}
        call_id = self._match_tool_call(span.parent, name, arguments)
        if call_id:
            extra[attr.GEN_AI_TOOL_CALL_ID] = call_id
        # Releases before 3.4 do not tag a failed tool; they all give ``{"error": message}`` as its output.
        failed = error is None and (
            bool(span.tags.get("haystack.tool.error"))
            or (isinstance(result, Mapping) and set(result) == {"error"})
        )
        if self.agents.capture_content:
            if arguments is not None:
                extra[gv.GEN_AI_TOOL_CALL_ARGUMENTS] = _text(arguments)
            if result is not None and error is None and not failed:
                extra[gv.GEN_AI_TOOL_CALL_RESULT] = _text(result)
        if failed:
            # Haystack hands a failed tool's error back to the model instead of raising it.
            from haystack.tools.errors import ToolInvocationError

            message_text = result.get("error") if isinstance(result, Mapping) else None
            error = ToolInvocationError(str(message_text or "tool invocation failed"), name)
        self.agents.end(span.run_id, error=error, attributes=extra)

    def _match_tool_call(self, step: _SpanState | None, name: str, arguments: Any) -> str | None:
        """The id of the model's tool call this tool span ran (same name and arguments), taken off the list."""
        if step is None:
            return None
        with self._lock:
            for index, (call_id, call_name, call_arguments) in enumerate(step.tool_calls):
                if call_name == name and call_arguments == arguments:
                    del step.tool_calls[index]
                    return call_id
        return None

    def _retrieval_content(self, span: _SpanState) -> dict[str, AttributeValue]:
        if not self.agents.capture_content:
            return {}
        extra: dict[str, AttributeValue] = {}
        inputs = _first(span.content, _INPUTS)
        query = inputs.get("query") if isinstance(inputs, Mapping) else None
        if isinstance(query, str):
            extra[RETRIEVAL_QUERY_TEXT] = query
        output = _first(span.content, _OUTPUTS)
        documents = output.get("documents") if isinstance(output, Mapping) else None
        if documents is not None:
            extra[RETRIEVAL_DOCUMENTS] = to_json([_document(document) for document in documents])
        return extra


def _haystack_tracing() -> Any:
    """Haystack's tracing module (``haystack.tracing.tracer``; the package attribute of that name is the
    global proxy tracer), imported only on instrument."""
    return import_module("haystack.tracing.tracer")


def _tracer_class() -> tuple[type[Any], type[_SpanState]]:
    """``_Tracing`` and ``_SpanState`` with Haystack's ``Tracer`` and ``Span`` as their bases (imported only
    on instrument)."""
    tracing = _haystack_tracing()
    span_class = type("LLMObserverHaystackSpan", (_SpanState, tracing.Span), {})
    tracer_class = type("LLMObserverHaystackTracer", (_Tracing, tracing.Tracer), {})
    return tracer_class, span_class


class HaystackInstrumentor(ProviderInstrumentor):
    """Makes llm-observer's tracer Haystack's tracer (see module docstring)."""

    instruments = _instruments
    targets = _TARGETS
    _tracing: ClassVar[_Tracing | None] = None
    _previous: ClassVar[Any] = None

    def _wrapper_factory(self, handler: GenAIHandler, kwargs: Mapping[str, Any]) -> WrapperFactory:
        tracing = _haystack_tracing()
        agents = _AgentSpans(handler, __name__, __version__, tracer_provider=kwargs.get("tracer_provider"))
        tracer_class, span_class = _tracer_class()
        tracer: _Tracing = tracer_class(agents, span_class)
        cls = type(self)
        cls._previous, cls._tracing = tracing.tracer.actual_tracer, tracer
        tracing.enable_tracing(tracer)

        def make(target: Target, is_async: bool) -> WraptWrapper:
            return _owner_wrapper(_OWNERS[target.kind], is_async)

        return make

    def _uninstrument(self, **kwargs: Any) -> None:
        super()._uninstrument(**kwargs)
        tracing = _haystack_tracing()
        cls = type(self)
        tracer, cls._tracing = cls._tracing, None
        previous, cls._previous = cls._previous, None
        if tracer is None:
            return
        tracer.enabled = False
        if tracing.tracer.actual_tracer is tracer:
            if previous is None:
                tracing.disable_tracing()
            else:
                tracing.enable_tracing(previous)


def _owner_wrapper(owner: ContextVar[Any], is_async: bool) -> WraptWrapper:
    """A wrapper that makes the instance the run in progress of ``owner`` for the call."""

    def sync(wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
        token = owner.set(instance)
        try:
            return wrapped(*args, **kwargs)
        finally:
            owner.reset(token)

    async def run_async(wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
        token = owner.set(instance)
        try:
            return await wrapped(*args, **kwargs)
        finally:
            owner.reset(token)

    return run_async if is_async else sync


# --- reading Haystack objects ---------------------------------------------------------------------------


def _workflow_name(pipeline: Any, tags: Mapping[str, Any]) -> str:
    metadata = tags.get("haystack.pipeline.metadata")
    if isinstance(metadata, Mapping) and metadata.get("name"):
        return str(metadata["name"])
    return type(pipeline).__name__ if pipeline is not None else "Pipeline"


def _component(pipeline: Any, name: str) -> Any:
    """The component instance named ``name`` in the running pipeline, if known."""
    graph = getattr(pipeline, "graph", None)
    if graph is None:
        return None
    try:
        return graph.nodes[name]["instance"]
    except (KeyError, TypeError, AttributeError):
        return None


def _class_names(instance: Any, type_name: str) -> list[str]:
    """The names of the instance's classes (its MRO), else just ``type_name``."""
    if instance is None:
        return [type_name] if type_name else []
    return [cls.__name__ for cls in type(instance).__mro__]


def _is_generator(class_name: str) -> bool:
    """A chat or text generator's class (image generators make no model-call span)."""
    return class_name.endswith("Generator") and "Image" not in class_name


def _provider(names: Sequence[str]) -> tuple[str, tuple[str, str] | None]:
    provider: str | None = None
    sdk: tuple[str, str] | None = None
    for class_name in names:
        for prefix, name, instrumentor in _PROVIDERS:
            if class_name.startswith(prefix):
                provider = provider or name
                sdk = instrumentor or sdk
                break
    return provider or _OTHER_PROVIDER, sdk


def _provider_instrumented(sdk: tuple[str, str] | None) -> bool:
    """Whether llm-observer's instrumentor for the generator's SDK is active (then its span is the LLM
    span)."""
    if sdk is None:
        return False
    module, name = sdk
    try:
        instrumentor = getattr(import_module(f"llm_observer.instrumentation.{module}"), name)
    except (ImportError, AttributeError):
        return False
    instance = instrumentor._instance
    return instance is not None and bool(instance.is_instrumented_by_opentelemetry)


def _model_call(operation: str, provider: str, instance: Any) -> LLMCall:
    """The framework's LLM call for a generator (``instance`` None when Haystack did not say which)."""
    api_params = getattr(instance, "api_params", None)
    model = (
        getattr(instance, "model", None)
        or getattr(instance, "azure_deployment", None)
        or getattr(instance, "model_name", None)
        or (api_params.get("model") if isinstance(api_params, Mapping) else None)
    )
    call = LLMCall(operation, provider, str(model) if model else None)
    base_url = getattr(instance, "api_base_url", None) or getattr(instance, "azure_endpoint", None)
    if isinstance(base_url, str) and base_url:
        call.server_address, call.server_port = host_port(base_url)
    generation = getattr(instance, "generation_kwargs", None)
    if isinstance(generation, Mapping):
        for key, attribute in _GENERATION_NUMBERS:
            put_number(call.attributes, attribute, generation.get(key))
        put_strings(call.attributes, attr.GEN_AI_REQUEST_STOP_SEQUENCES, generation.get("stop"))
    call.streaming = getattr(instance, "streaming_callback", None) is not None
    return call


def _first(content: Mapping[str, Any], keys: Sequence[str]) -> Any:
    for key in keys:
        if key in content:
            return content[key]
    return None


def _replies(output: Any) -> list[Any]:
    replies = output.get("replies") if isinstance(output, Mapping) else None
    return list(replies) if isinstance(replies, list | tuple) else []


def _read_replies(
    call: LLMCall | None, replies: Sequence[Any], capture_content: bool
) -> tuple[int | None, int | None]:
    """Usage of a generator's replies (their ``meta``), and, for the framework's LLM span, the response."""
    input_tokens = output_tokens = None
    finish_reasons: list[str] = []
    outputs: list[Message] = []
    for reply in replies:
        meta = _meta(reply)
        usage = meta.get("usage")
        if isinstance(usage, Mapping):
            found_in = integer(usage.get("prompt_tokens", usage.get("input_tokens")))
            found_out = integer(usage.get("completion_tokens", usage.get("output_tokens")))
            if found_in is not None:
                input_tokens = (input_tokens or 0) + found_in
            if found_out is not None:
                output_tokens = (output_tokens or 0) + found_out
            if call is not None:
                _read_usage_details(call, usage)
        reason = str(meta.get("finish_reason") or "")
        if reason:
            finish_reasons.append(reason)
        if call is not None:
            call.response_model = call.response_model or _string(meta.get("model"))
            call.response_id = call.response_id or _string(meta.get("id"))
            if capture_content:
                outputs.append(message("assistant", _message_parts(reply), finish_reason=reason or None))
    if call is not None:
        call.input_tokens, call.output_tokens = input_tokens, output_tokens
        call.finish_reasons = finish_reasons or None
        if capture_content:
            call.output_messages = outputs
    return input_tokens, output_tokens


def _read_usage_details(call: LLMCall, usage: Mapping[str, Any]) -> None:
    prompt_details = usage.get("prompt_tokens_details")
    if isinstance(prompt_details, Mapping):
        call.cache_read_tokens = integer(prompt_details.get("cached_tokens"))
    completion_details = usage.get("completion_tokens_details")
    if isinstance(completion_details, Mapping):
        call.reasoning_tokens = integer(completion_details.get("reasoning_tokens"))


def _read_embeddings(call: LLMCall | None, output: Any) -> tuple[int | None, int | None]:
    meta = output.get("meta") if isinstance(output, Mapping) else None
    if not isinstance(meta, Mapping):
        return None, None
    usage = meta.get("usage")
    input_tokens = integer(usage.get("prompt_tokens")) if isinstance(usage, Mapping) else None
    if call is not None:
        call.response_model = _string(meta.get("model"))
        call.input_tokens = input_tokens
    return input_tokens, None


def _read_inputs(call: LLMCall, inputs: Any) -> None:
    """Input messages, system instructions and tool definitions of a generator call (content capture)."""
    if not isinstance(inputs, Mapping):
        return
    messages: list[Message] = []
    system: list[Part] = []
    items = inputs.get("messages")
    if items is None and isinstance(inputs.get("prompt"), str):
        messages.append(message("user", [text_part(inputs["prompt"])]))
    for item in items or ():
        role = _role(item)
        if role == "system":
            system.extend(_message_parts(item))
        else:
            messages.append(message(role, _message_parts(item)))
    call.input_messages, call.system_instructions = messages, system
    definitions = [
        {
            "type": "function",
            "name": getattr(tool, "name", None),
            "description": getattr(tool, "description", None),
            "parameters": json_able(getattr(tool, "parameters", None)),
        }
        for tool in inputs.get("tools") or ()
    ]
    call.tool_definitions = definitions or None


def _role(item: Any) -> str:
    role = getattr(item, "role", "user")
    return str(getattr(role, "value", role))


def _message_parts(item: Any) -> list[Part]:
    """A Haystack ``ChatMessage`` as GenAI parts: reasoning, texts, tool calls, tool results."""
    parts: list[Part] = []
    reasoning = getattr(item, "reasoning", None)
    if reasoning is not None:
        parts.append({"type": "reasoning", "content": str(getattr(reasoning, "reasoning_text", reasoning))})
    parts.extend(text_part(text) for text in getattr(item, "texts", None) or () if text)
    for call in getattr(item, "tool_calls", None) or ():
        parts.append(
            tool_call_part(getattr(call, "id", None), getattr(call, "tool_name", None), call.arguments)
        )
    for result in getattr(item, "tool_call_results", None) or ():
        origin = getattr(result, "origin", None)
        parts.append(
            tool_response_part(getattr(origin, "id", None), json_able(getattr(result, "result", None)))
        )
    return parts


def _meta(item: Any) -> Mapping[str, Any]:
    meta = getattr(item, "meta", None)
    return meta if isinstance(meta, Mapping) else {}


def _document(document: Any) -> dict[str, Any]:
    found: dict[str, Any] = {"content": getattr(document, "content", None)}
    for key in ("id", "score"):
        value = getattr(document, key, None)
        if value is not None:
            found[key] = value
    if getattr(document, "meta", None):
        found["metadata"] = json_able(document.meta)
    return found


def _string(value: Any) -> str | None:
    return str(value) if value else None


def _text(value: Any) -> str:
    """Tool arguments/results as attribute text: strings as they are, anything else as JSON."""
    return value if isinstance(value, str) else to_json(json_able(value))


def _cause(error: BaseException | None) -> BaseException | None:
    """The component's own error for one Haystack wrapped in ``PipelineRuntimeError``."""
    if error is not None and type(error).__name__ == "PipelineRuntimeError" and error.__cause__ is not None:
        return error.__cause__
    return error
