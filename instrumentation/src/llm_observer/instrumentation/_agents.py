"""Spans for agent frameworks, keyed by the framework's own run ids: the piece every framework instrumentor
(LangChain/LangGraph, LlamaIndex, Haystack, OpenAI Agents, CrewAI…) shares.

A framework reports the start and end of its steps with a run id and the run id of the step that started
it; :class:`AgentSpans` turns them into one tree of spans:

- ``invoke_workflow {name}`` (a whole graph/pipeline run), ``invoke_agent {name}``, ``create_agent {name}``,
  ``execute_tool {tool}``, ``retrieval {data source}`` with ``gen_ai.operation.name`` and the
  ``gen_ai.workflow.*``, ``gen_ai.agent.*``, ``gen_ai.tool.*`` and ``gen_ai.data_source.id`` attributes of the
  GenAI conventions; plain steps (a chain, a graph node that turns out to be neither agent nor tool) are
  spans named for the step, without an operation. A step's operation may change until it ends
  (:meth:`AgentSpans.promote`): a framework often learns only from a step's children that it was an agent.
- Parents come from the run ids (a run-id → span map), never from the ambient context alone, so steps run
  in other threads or tasks (async graphs, thread-pooled tools), where the OpenTelemetry context is lost,
  still land under the right parent. A run id with no known parent falls back to the current context.
- Model calls: :meth:`AgentSpans.start_llm` makes the parent step's span current around the call, so the
  provider SDK's span (when its instrumentor is active) nests under the right step; given an
  :class:`~llm_observer.instrumentation.handler.LLMCall` it makes the framework's own LLM span through the
  shared handler instead, which suppresses provider spans beneath it, so a model call gives one LLM span
  either way. The context is restored by ``end_llm`` when it runs in the thread and task ``start_llm`` ran
  in; a framework that reports a call's end elsewhere (LangChain's async ``agenerate`` ends each call in a
  task of its own) wraps the whole model call in :meth:`AgentSpans.llm_scope`, which restores it there.
- Tool arguments and results, the retrieval query and documents are recorded only under content capture
  (the switch the provider handler uses): ``gen_ai.tool.call.arguments``, ``gen_ai.tool.call.result``,
  ``gen_ai.retrieval.query.text``, ``gen_ai.retrieval.documents`` (JSON strings).
- Roll-up: the token usage of each model call is added to every step above it; each non-LLM span ends with
  the sums of its subtree as :data:`SUBTREE_INPUT_TOKENS` / :data:`SUBTREE_OUTPUT_TOKENS` (set only on steps
  whose subtree reported usage). These are the attributes the collector can also compute server-side for
  spans from other instrumentations.
- Errors set status ERROR and ``error.type`` (the exception's qualified class name).

Thread-safe: one instance serves every thread of the application. Runs are forgotten when they end.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, TracerProvider
from opentelemetry.util.types import AttributeValue

from llm_observer.instrumentation._content import json_able, to_json
from llm_observer.instrumentation.handler import GenAIHandler, LLMCall
from llm_observer.semconv import attributes as attr
from llm_observer.semconv import genai_values as gv
from llm_observer.semconv.registry import SCHEMA_URL

__all__ = [
    "RETRIEVAL_DOCUMENTS",
    "RETRIEVAL_QUERY_TEXT",
    "SUBTREE_INPUT_TOKENS",
    "SUBTREE_OUTPUT_TOKENS",
    "AgentSpans",
    "RunId",
]

_log = logging.getLogger(__name__)

#: Sum of ``gen_ai.usage.input_tokens`` over the model calls beneath a workflow/agent/step span.
SUBTREE_INPUT_TOKENS = attr.SUBTREE_INPUT_TOKENS
#: Sum of ``gen_ai.usage.output_tokens`` over the model calls beneath a workflow/agent/step span.
SUBTREE_OUTPUT_TOKENS = attr.SUBTREE_OUTPUT_TOKENS
#: Opt-in content of retrieval spans (GenAI conventions, genai repo spelling).
RETRIEVAL_QUERY_TEXT = "gen_ai.retrieval.query.text"
RETRIEVAL_DOCUMENTS = "gen_ai.retrieval.documents"

# The model calls whose context could not be restored where they ended, for the enclosing llm_scope.
_LEFT_OVER: ContextVar[list[_Run] | None] = ContextVar("llm_observer_agents_left_over", default=None)

#: A framework's run id: a UUID (LangChain), a string (most others) or any hashable key.
RunId = UUID | str | int


@dataclass(slots=True, eq=False)
class _Run:
    """One step in flight. ``span`` is None for a hidden step (its children go to its parent's span)."""

    span: Span | None
    parent: _Run | None
    name: str
    operation: str | None = None
    marker: str | None = None
    llm: bool = False
    input_tokens: int = 0
    output_tokens: int = 0
    usage_seen: bool = False
    call: LLMCall | None = None
    # The context start_llm attached (parent span current) and its token, detached by end_llm.
    attached: Context | None = None
    token: object | None = None
    owner: tuple[int, int] = (0, 0)
    extra: dict[str, AttributeValue] = field(default_factory=dict)


class AgentSpans:
    """Framework steps → spans, parented by run id (see the module docstring)."""

    def __init__(
        self,
        handler: GenAIHandler,
        scope: str,
        version: str = "",
        *,
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        self.handler = handler
        self._tracer = trace.get_tracer(scope, version, tracer_provider, schema_url=SCHEMA_URL)
        self._runs: dict[RunId, _Run] = {}
        self._lock = threading.Lock()

    @property
    def capture_content(self) -> bool:
        """Whether tool arguments/results and retrieval content go on spans."""
        return self.handler.capture.on_span

    # --- starting steps -------------------------------------------------------------------------------

    def start_workflow(self, run_id: RunId, parent_id: RunId | None, name: str) -> None:
        """An ``invoke_workflow`` span: one run of a graph, pipeline or crew."""
        self._start(run_id, parent_id, name, gv.OP_INVOKE_WORKFLOW, {attr.GEN_AI_WORKFLOW_NAME: name})

    def start_agent(
        self,
        run_id: RunId,
        parent_id: RunId | None,
        name: str,
        *,
        agent_id: str | None = None,
        description: str | None = None,
        create: bool = False,
    ) -> None:
        """An ``invoke_agent`` span (``create_agent`` when ``create``)."""
        attributes = _agent_attributes(name, agent_id, description)
        operation = gv.OP_CREATE_AGENT if create else gv.OP_INVOKE_AGENT
        self._start(run_id, parent_id, name, operation, attributes)

    def start_step(
        self,
        run_id: RunId,
        parent_id: RunId | None,
        name: str,
        attributes: Mapping[str, AttributeValue] | None = None,
        *,
        marker: str | None = None,
    ) -> None:
        """A plain step (chain, graph node) span named ``name``, without an operation until promoted;
        ``marker`` is the framework's label for it (see :meth:`promote_nearest`)."""
        self._start(run_id, parent_id, name, None, dict(attributes or {}), marker)

    def start_hidden(self, run_id: RunId, parent_id: RunId | None) -> None:
        """A step that gets no span: its children are parented to its parent's span."""
        with self._lock:
            self._runs[run_id] = _Run(None, self._runs.get(parent_id) if parent_id else None, "")

    def start_tool(
        self,
        run_id: RunId,
        parent_id: RunId | None,
        name: str,
        *,
        call_id: str | None = None,
        tool_type: str = gv.TOOL_TYPE_FUNCTION,
        description: str | None = None,
        arguments: Any = None,
    ) -> None:
        """An ``execute_tool {name}`` span; ``arguments`` are recorded only under content capture."""
        attributes: dict[str, AttributeValue] = {
            attr.GEN_AI_TOOL_NAME: name,
            attr.GEN_AI_TOOL_TYPE: tool_type,
        }
        if call_id:
            attributes[attr.GEN_AI_TOOL_CALL_ID] = call_id
        if description:
            attributes[gv.GEN_AI_TOOL_DESCRIPTION] = description
        if arguments is not None and self.capture_content:
            attributes[gv.GEN_AI_TOOL_CALL_ARGUMENTS] = _content_text(arguments)
        self._start(run_id, parent_id, name, gv.OP_EXECUTE_TOOL, attributes)

    def start_retrieval(
        self, run_id: RunId, parent_id: RunId | None, data_source: str, query: str | None = None
    ) -> None:
        """A ``retrieval {data_source}`` span; ``query`` is recorded only under content capture."""
        attributes: dict[str, AttributeValue] = {attr.GEN_AI_DATA_SOURCE_ID: data_source}
        if query is not None and self.capture_content:
            attributes[RETRIEVAL_QUERY_TEXT] = query
        self._start(run_id, parent_id, data_source, gv.OP_RETRIEVAL, attributes)

    def promote(self, run_id: RunId, operation: str) -> None:
        """Change a running step's operation (e.g. a graph node found to be an agent); its span is renamed
        and gets the operation's attributes when it ends."""
        run = self._runs.get(run_id)
        if run is not None:
            _promote(run, operation)

    def promote_nearest(self, run_id: RunId | None, operation: str, marker: str | None = None) -> None:
        """Promote the step nearest ``run_id`` (itself or an ancestor) that was started with ``marker``;
        without one (or when no step has it), the nearest plain step or agent (never a workflow, tool or
        retrieval)."""
        start = self._runs.get(run_id) if run_id is not None else None
        fallback: _Run | None = None
        run = start
        while run is not None:
            if run.span is not None and run.operation in (None, gv.OP_INVOKE_AGENT):
                if marker is not None and run.marker == marker:
                    _promote(run, operation)
                    return
                if fallback is None:
                    fallback = run
            run = run.parent
        if fallback is not None:
            _promote(fallback, operation)

    # --- model calls ----------------------------------------------------------------------------------

    def start_llm(self, run_id: RunId, parent_id: RunId | None, call: LLMCall | None) -> None:
        """A model call under ``parent_id``: the parent's span is made current until :meth:`end_llm`; with
        ``call``, the framework's LLM span is started through the handler (see the module docstring)."""
        with self._lock:
            parent = self._runs.get(parent_id) if parent_id is not None else None
            run = _Run(None, parent, "", llm=True, call=call)
            self._runs[run_id] = run
        span = _nearest_span(parent)
        context = otel_context.get_current() if span is None else trace.set_span_in_context(span)
        if call is not None:
            # The handler starts the span under ``context`` with LLM spans suppressed beneath it; that
            # context, not the handler's own attach, stays current until end_llm.
            token = otel_context.attach(context)
            try:
                self.handler.start(call)
                if call.span is not None:
                    context = otel_context.get_current()
                self.handler.detach(call)
            except Exception:  # never raise into the framework
                _log.debug("Could not start a framework LLM span.", exc_info=True)
                run.call = None
            finally:
                otel_context.detach(token)
        if span is not None or run.call is not None:
            run.attached = context
            run.token = otel_context.attach(context)
            run.owner = _owner()

    def llm_context(self, run_id: RunId) -> Context | None:
        """The context :meth:`start_llm` made current for a model call (its parent step's span, or the
        framework's LLM span with provider spans suppressed); None for an unknown run. For frameworks that
        run the call itself somewhere the start callback's context does not reach (another task)."""
        run = self._runs.get(run_id)
        return None if run is None else run.attached

    def first_chunk(self, run_id: RunId) -> None:
        """Note that a streamed model call's first chunk arrived."""
        run = self._runs.get(run_id)
        if run is not None and run.call is not None:
            self.handler.first_chunk(run.call)

    def end_llm(
        self,
        run_id: RunId,
        input_tokens: int | None,
        output_tokens: int | None,
        error: BaseException | None = None,
    ) -> None:
        """End a model call: its usage is added to every step above it; the framework's LLM span (its
        ``call`` filled in by the caller) ends with the result or ``error``; the context is restored."""
        with self._lock:
            run = self._runs.pop(run_id, None)
            if run is None:
                return
            if input_tokens is not None or output_tokens is not None:
                ancestor = run.parent
                while ancestor is not None:
                    ancestor.input_tokens += input_tokens or 0
                    ancestor.output_tokens += output_tokens or 0
                    ancestor.usage_seen = True
                    ancestor = ancestor.parent
        call = run.call
        if call is not None:
            if error is None:
                self.handler.finish(call)
            else:
                self.handler.fail(call, error)
        if run.token is not None and not _restore(run):
            left_over = _LEFT_OVER.get()
            if left_over is not None:
                left_over.append(run)

    @contextmanager
    def llm_scope(self) -> Iterator[None]:
        """Around a framework's whole model call (sync or async): restores, on the way out, the context of
        calls whose end was reported in another task or out of order."""
        left_over: list[_Run] = []
        token = _LEFT_OVER.set(left_over)
        try:
            yield
        finally:
            _LEFT_OVER.reset(token)
            for run in reversed(left_over):
                _restore(run)

    # --- ending steps ---------------------------------------------------------------------------------

    def end(
        self,
        run_id: RunId,
        *,
        error: BaseException | None = None,
        attributes: Mapping[str, AttributeValue] | None = None,
    ) -> None:
        """End a step's span: final name and operation, subtree sums, ``attributes``, error status."""
        with self._lock:
            run = self._runs.pop(run_id, None)
        if run is None or run.span is None or run.llm:
            return
        span = run.span
        try:
            final: dict[str, AttributeValue] = dict(run.extra)
            if run.operation is not None:
                final[attr.GEN_AI_OPERATION_NAME] = run.operation
                span.update_name(f"{run.operation} {run.name}")
            if run.usage_seen:
                final[SUBTREE_INPUT_TOKENS] = run.input_tokens
                final[SUBTREE_OUTPUT_TOKENS] = run.output_tokens
            if attributes:
                final.update(attributes)
            if error is not None:
                final[attr.ERROR_TYPE] = type(error).__qualname__
                span.set_status(Status(StatusCode.ERROR, str(error)[:512] or type(error).__qualname__))
            span.set_attributes(final)
        except Exception:
            _log.debug("Could not record an agent step's end.", exc_info=True)
        finally:
            span.end()

    def end_tool(
        self,
        run_id: RunId,
        result: Any = None,
        error: BaseException | None = None,
        call_id: str | None = None,
    ) -> None:
        """End an ``execute_tool`` span; ``result`` is recorded only under content capture; ``call_id``
        for frameworks that learn the tool call id only from the result."""
        extra: dict[str, AttributeValue] = {attr.GEN_AI_TOOL_CALL_ID: call_id} if call_id else {}
        if result is not None and error is None and self.capture_content:
            extra[gv.GEN_AI_TOOL_CALL_RESULT] = _content_text(result)
        self.end(run_id, error=error, attributes=extra)

    def end_retrieval(
        self, run_id: RunId, documents: list[Any] | None = None, error: BaseException | None = None
    ) -> None:
        """End a ``retrieval`` span; ``documents`` (JSON-able items) are recorded only under content
        capture."""
        extra: dict[str, AttributeValue] = {}
        if documents is not None and error is None and self.capture_content:
            extra[RETRIEVAL_DOCUMENTS] = to_json(json_able(documents))
        self.end(run_id, error=error, attributes=extra)

    # --- internals ------------------------------------------------------------------------------------

    def _start(
        self,
        run_id: RunId,
        parent_id: RunId | None,
        name: str,
        operation: str | None,
        extra: dict[str, AttributeValue],
        marker: str | None = None,
    ) -> None:
        with self._lock:
            parent = self._runs.get(parent_id) if parent_id is not None else None
        parent_span = _nearest_span(parent)
        context = trace.set_span_in_context(parent_span) if parent_span is not None else None
        attributes: dict[str, AttributeValue] = dict(extra)
        if operation is not None:
            attributes[attr.GEN_AI_OPERATION_NAME] = operation
        span_name = f"{operation} {name}" if operation is not None else name
        span = self._tracer.start_span(span_name, context, SpanKind.INTERNAL, attributes)
        run = _Run(span, parent, name, operation, marker=marker, extra=extra)
        with self._lock:
            self._runs[run_id] = run


def _promote(run: _Run, operation: str) -> None:
    if run.span is None or run.llm:
        return
    run.operation = operation
    if operation in (gv.OP_INVOKE_AGENT, gv.OP_CREATE_AGENT):
        run.extra.setdefault(attr.GEN_AI_AGENT_NAME, run.name)
    elif operation == gv.OP_INVOKE_WORKFLOW:
        run.extra.setdefault(attr.GEN_AI_WORKFLOW_NAME, run.name)


def _owner() -> tuple[int, int]:
    """The thread and asyncio task running now: an attach can only be undone by the same."""
    try:
        task = asyncio.current_task()
    except RuntimeError:  # no running loop in this thread
        task = None
    return threading.get_ident(), id(task)


def _restore(run: _Run) -> bool:
    """Detach the context ``start_llm`` attached when this thread and task attached it and it is still the
    current one (OpenTelemetry would log an error for any other token); whether it was detached."""
    if run.token is None or run.owner != _owner() or otel_context.get_current() is not run.attached:
        return False
    otel_context.detach(run.token)  # type: ignore[arg-type]
    run.token = None
    return True


def _nearest_span(run: _Run | None) -> Span | None:
    while run is not None and run.span is None:
        run = run.parent
    return None if run is None else run.span


def _agent_attributes(name: str, agent_id: str | None, description: str | None) -> dict[str, AttributeValue]:
    attributes: dict[str, AttributeValue] = {attr.GEN_AI_AGENT_NAME: name}
    if agent_id:
        attributes[attr.GEN_AI_AGENT_ID] = agent_id
    if description:
        attributes[gv.GEN_AI_AGENT_DESCRIPTION] = description
    return attributes


def _content_text(value: Any) -> str:
    """Tool arguments/results as the attribute text: strings as they are, anything else as JSON."""
    return value if isinstance(value, str) else to_json(json_able(value))
