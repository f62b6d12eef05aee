"""``observe``: spans for the application's own agent steps, tools and workflows.

As a decorator (plain or ``async def`` functions; a generator's work happens after the call returns, so
trace generators with the context manager inside them)::

    @observe                                   # invoke_agent <function name>
    def planner(task): ...

    @observe(kind="tool", name="web_search")   # execute_tool web_search
    async def search(query): ...

or as a context manager (``with`` / ``async with``)::

    with observe("researcher", kind="agent", agent_id="agent-7") as span:
        ...

Kinds: ``agent`` → ``invoke_agent {name}`` with ``gen_ai.agent.name`` (and ``gen_ai.agent.id`` /
``gen_ai.agent.description`` if given); ``tool`` → ``execute_tool {name}`` with ``gen_ai.tool.name`` and
``gen_ai.tool.type`` (``function``); ``workflow`` → ``invoke_workflow {name}`` with ``gen_ai.workflow.name``;
``step`` → a plain span named ``{name}``. Spans are INTERNAL, current while the body runs (so LLM calls and
nested steps made inside become children, across ``await`` and in ``asyncio`` tasks it starts), and end
with status ERROR and ``error.type`` if the body raises (the exception propagates unchanged).
Tool arguments and results are recorded (``gen_ai.tool.call.arguments`` / ``.result``) only when
``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` asks for span content.

Threads do not inherit the OpenTelemetry context: run work in other threads through :func:`bind_context`
(``executor.submit(bind_context(fn), …)``) to keep it in the tree. The spans go to the global tracer
provider unless ``tracer_provider`` is given (``LLMObserverTracer.observe`` passes its own).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any, ParamSpec, TypeVar, overload

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, TracerProvider
from opentelemetry.util.types import AttributeValue

from llm_observer.instrumentation import __version__
from llm_observer.instrumentation._content import content_capture_from_env, to_json
from llm_observer.semconv import attributes as attr
from llm_observer.semconv import genai_values as gv

__all__ = ["Observation", "bind_context", "observe"]

P = ParamSpec("P")
R = TypeVar("R")
_SCOPE = "llm_observer.observe"
_OPERATIONS = {"agent": gv.OP_INVOKE_AGENT, "tool": gv.OP_EXECUTE_TOOL, "workflow": gv.OP_INVOKE_WORKFLOW}


class Observation:
    """One ``observe(...)`` configuration: a decorator, or a context manager yielding the span.

    Use a fresh ``observe(...)`` per ``with`` block when blocks run concurrently; decorated functions make
    a new span per call and are safe to call from anywhere."""

    def __init__(
        self,
        name: str | None,
        kind: str,
        tracer_provider: TracerProvider | None,
        attributes: Mapping[str, AttributeValue] | None,
        agent_id: str | None,
        description: str | None,
    ) -> None:
        if kind not in (*_OPERATIONS, "step"):
            raise ValueError(f"observe kind must be agent, tool, workflow or step, not {kind!r}")
        self.name = name
        self.kind = kind
        self._tracer = trace.get_tracer(_SCOPE, __version__, tracer_provider)
        self._attributes = dict(attributes or {})
        self._agent_id = agent_id
        self._description = description
        self._active: list[tuple[Span, object]] = []

    def _start(self, name: str) -> Span:
        attributes: dict[str, AttributeValue] = {}
        operation = _OPERATIONS.get(self.kind)
        if operation is not None:
            attributes[attr.GEN_AI_OPERATION_NAME] = operation
        if self.kind == "agent":
            attributes[attr.GEN_AI_AGENT_NAME] = name
            if self._agent_id:
                attributes[attr.GEN_AI_AGENT_ID] = self._agent_id
            if self._description:
                attributes[gv.GEN_AI_AGENT_DESCRIPTION] = self._description
        elif self.kind == "tool":
            attributes[attr.GEN_AI_TOOL_NAME] = name
            attributes[attr.GEN_AI_TOOL_TYPE] = gv.TOOL_TYPE_FUNCTION
            if self._description:
                attributes[gv.GEN_AI_TOOL_DESCRIPTION] = self._description
        elif self.kind == "workflow":
            attributes[attr.GEN_AI_WORKFLOW_NAME] = name
        attributes.update(self._attributes)
        span_name = f"{operation} {name}" if operation else name
        return self._tracer.start_span(span_name, kind=SpanKind.INTERNAL, attributes=attributes)

    # --- decorator ------------------------------------------------------------------------------------

    def __call__(self, func: Callable[P, R]) -> Callable[P, R]:
        name = self.name or func.__name__
        capture_tool_content = self.kind == "tool" and content_capture_from_env().on_span

        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                span = self._start(name)
                if capture_tool_content:
                    span.set_attribute(gv.GEN_AI_TOOL_CALL_ARGUMENTS, _arguments(func, args, kwargs))
                with trace.use_span(
                    span, end_on_exit=False, record_exception=False, set_status_on_exception=False
                ):
                    try:
                        result = await func(*args, **kwargs)
                    except BaseException as exc:
                        _fail(span, exc)
                        raise
                if capture_tool_content:
                    span.set_attribute(gv.GEN_AI_TOOL_CALL_RESULT, to_json(result))
                span.end()
                return result

            return run_async  # type: ignore[return-value]

        @functools.wraps(func)
        def run(*args: P.args, **kwargs: P.kwargs) -> R:
            span = self._start(name)
            if capture_tool_content:
                span.set_attribute(gv.GEN_AI_TOOL_CALL_ARGUMENTS, _arguments(func, args, kwargs))
            with trace.use_span(
                span, end_on_exit=False, record_exception=False, set_status_on_exception=False
            ):
                try:
                    result = func(*args, **kwargs)
                except BaseException as exc:
                    _fail(span, exc)
                    raise
            if capture_tool_content:
                span.set_attribute(gv.GEN_AI_TOOL_CALL_RESULT, to_json(result))
            span.end()
            return result

        return run

    # --- context manager ------------------------------------------------------------------------------

    def __enter__(self) -> Span:
        span = self._start(self.name or self.kind)
        token = otel_context.attach(trace.set_span_in_context(span))
        self._active.append((span, token))
        return span

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        span, token = self._active.pop()
        otel_context.detach(token)  # type: ignore[arg-type]
        if exc is not None:
            _fail(span, exc)
        else:
            span.end()

    async def __aenter__(self) -> Span:
        return self.__enter__()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.__exit__(exc_type, exc, tb)


def _fail(span: Span, exc: BaseException) -> None:
    span.set_attribute(attr.ERROR_TYPE, type(exc).__qualname__)
    span.set_status(Status(StatusCode.ERROR, str(exc)[:512] or type(exc).__qualname__))
    span.end()


def _arguments(func: Callable[..., Any], args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> str:
    try:
        bound = inspect.signature(func).bind_partial(*args, **kwargs)
        return to_json(dict(bound.arguments))
    except (TypeError, ValueError):
        return to_json({"args": list(args), "kwargs": dict(kwargs)})


@overload
def observe(func: Callable[P, R], /) -> Callable[P, R]: ...


@overload
def observe(
    func: str | None = None,
    /,
    *,
    name: str | None = None,
    kind: str = "agent",
    tracer_provider: TracerProvider | None = None,
    attributes: Mapping[str, AttributeValue] | None = None,
    agent_id: str | None = None,
    description: str | None = None,
) -> Observation: ...


def observe(
    func: Callable[..., Any] | str | None = None,
    /,
    *,
    name: str | None = None,
    kind: str = "agent",
    tracer_provider: TracerProvider | None = None,
    attributes: Mapping[str, AttributeValue] | None = None,
    agent_id: str | None = None,
    description: str | None = None,
) -> Any:
    """Trace an agent step, tool or workflow (see module docstring). ``@observe`` bare decorates;
    ``observe("name", kind=…)`` / ``observe(name=…, kind=…)`` gives a decorator or context manager."""
    if callable(func):
        return Observation(None, kind, tracer_provider, attributes, agent_id, description)(func)
    return Observation(func or name, kind, tracer_provider, attributes, agent_id, description)


def bind_context(func: Callable[P, R]) -> Callable[P, R]:
    """``func`` bound to the caller's current OpenTelemetry context, for running in another thread."""
    captured = otel_context.get_current()

    @functools.wraps(func)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        token = otel_context.attach(captured)
        try:
            return func(*args, **kwargs)
        finally:
            otel_context.detach(token)

    return run
