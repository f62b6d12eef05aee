"""The programmatic tracing API, for applications that do not use auto-instrumentation::

    from llm_observer import LLMObserverTracer

    tracer = LLMObserverTracer(endpoint="http://127.0.0.1:4318", organization_id="acme", project_id="chatbot",
                               service_name="support-bot", api_key="…")
    tracer.trace(model="gpt-4o", provider="openai", prompt="Hi", response="Hello!", prompt_tokens=3,
                 completion_tokens=2, duration_ms=420.0, metadata={"user_id": "u1"})

    span_id = tracer.start_span(trace_id=run_id, name="plan", model="gpt-4o", provider="openai")
    …
    tracer.end_span(span_id=span_id, output="…", prompt_tokens=120, completion_tokens=40)
    tracer.shutdown()

Built on the OpenTelemetry SDK: the tracer owns a ``TracerProvider`` (not the global one) whose resource
carries ``service.name``, ``llm_observer.organization.id`` and ``llm_observer.project.id``, and a
``BatchSpanProcessor`` exporting OTLP to the collector in the background. The endpoint is OTLP/HTTP
(``/v1/traces`` is appended) unless it uses port 4317 or the ``grpc://`` scheme, which select OTLP/gRPC.
``api_key`` is sent as ``Authorization: Bearer <key>``. Spans follow the GenAI conventions
(``{operation} {model}``, usage, provider); prompts and outputs passed here are recorded as
``gen_ai.input.messages`` / ``gen_ai.output.messages`` (the caller handing them over is the opt-in), and
``metadata`` becomes ``llm_observer.metadata.<key>`` attributes (``user_id`` / ``session_id`` map to
``user.id`` / ``session.id``).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
import time
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Self

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.trace import NonRecordingSpan, Span, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.util.types import AttributeValue

from llm_observer.instrumentation import __version__
from llm_observer.instrumentation._content import message, text_part, to_json
from llm_observer.instrumentation.decorators import observe
from llm_observer.semconv import attributes as attr
from llm_observer.semconv import genai_values as gv

__all__ = ["LLMObserverTracer", "observe"]

_log = logging.getLogger(__name__)

_SCOPE = "llm_observer.tracer"
_HEX32 = re.compile(r"^[0-9a-f]{32}$")
_METADATA_PREFIX = "llm_observer.metadata."
_METADATA_KEYS = {
    "user_id": attr.USER_ID,
    "session_id": attr.SESSION_ID,
    "conversation_id": attr.GEN_AI_CONVERSATION_ID,
}


def trace_id_from(value: str | int) -> int:
    """A 128-bit trace id from an int, 32 hex digits, a UUID string, or (hashed) any other string."""
    if isinstance(value, int):
        return value & ((1 << 128) - 1)
    text = value.strip().lower().replace("-", "")
    if _HEX32.match(text) and int(text, 16):
        return int(text, 16)
    return int.from_bytes(hashlib.sha256(value.encode()).digest()[:16], "big") or 1


class _ChosenTraceIds(RandomIdGenerator):
    """Random ids, except that a root span started by ``start_span(trace_id=…)`` gets the chosen id."""

    def __init__(self) -> None:
        self._next = threading.local()

    def choose(self, trace_id: int | None) -> None:
        self._next.value = trace_id

    def generate_trace_id(self) -> int:
        chosen: int | None = getattr(self._next, "value", None)
        if chosen is not None:
            self._next.value = None
            return chosen
        return super().generate_trace_id()


def _exporter(endpoint: str, headers: Mapping[str, str], timeout_s: float) -> SpanExporter:
    grpc = endpoint.startswith("grpc://") or re.search(r":4317(/|$)", endpoint) is not None
    if grpc:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter

        target = endpoint.removeprefix("grpc://")
        insecure = not target.startswith("https://")
        return GrpcExporter(endpoint=target, insecure=insecure, headers=dict(headers), timeout=int(timeout_s))
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

    url = endpoint.rstrip("/")
    if not url.endswith("/v1/traces"):
        url += "/v1/traces"
    return HttpExporter(endpoint=url, headers=dict(headers), timeout=timeout_s)


class LLMObserverTracer:
    """Records LLM calls and steps as OpenTelemetry spans exported to an llm-observer collector.

    Thread-safe. ``endpoint`` defaults to ``OTEL_EXPORTER_OTLP_ENDPOINT`` or ``http://127.0.0.1:4318``.
    ``span_exporter`` replaces the OTLP exporter (tests, custom transports). Call :meth:`shutdown` (or use
    the tracer as a context manager) before exit so batched spans are sent.
    """

    def __init__(
        self,
        endpoint: str | None = None,
        organization_id: str = "default",
        project_id: str = "default",
        service_name: str = "llm-app",
        api_key: str | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        resource_attributes: Mapping[str, AttributeValue] | None = None,
        span_exporter: SpanExporter | None = None,
        export_timeout_s: float = 10.0,
    ) -> None:
        self.endpoint = endpoint or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or "http://127.0.0.1:4318"
        resource = Resource.create(
            {
                **(resource_attributes or {}),
                attr.SERVICE_NAME: service_name,
                attr.ORGANIZATION_ID: organization_id,
                attr.PROJECT_ID: project_id,
            }
        )
        all_headers = dict(headers or {})
        if api_key:
            all_headers["Authorization"] = f"Bearer {api_key}"
        self._ids = _ChosenTraceIds()
        self.tracer_provider = TracerProvider(resource=resource, id_generator=self._ids)
        exporter = span_exporter or _exporter(self.endpoint, all_headers, export_timeout_s)
        self.tracer_provider.add_span_processor(BatchSpanProcessor(exporter))
        self._tracer = self.tracer_provider.get_tracer(_SCOPE, __version__)
        self._open: dict[str, Span] = {}
        self._lock = threading.Lock()
        self._closed = False

    # --- one-shot --------------------------------------------------------------------------------------

    def trace(
        self,
        model: str,
        provider: str | None = None,
        prompt: Any = None,
        response: Any = None,
        prompt_tokens: int | None = None,
        completion_tokens: int | None = None,
        duration_ms: float | None = None,
        metadata: Mapping[str, Any] | None = None,
        *,
        operation: str = gv.OP_CHAT,
        error: BaseException | str | None = None,
        trace_id: str | int | None = None,
        parent_span_id: str | None = None,
    ) -> str:
        """Record one finished LLM call that took ``duration_ms`` and ended now; returns its trace id (hex)."""
        end_ns = time.time_ns()
        start_ns = end_ns - int((duration_ms or 0.0) * 1_000_000)
        span = self._start(
            f"{operation} {model}" if model else operation,
            trace_id,
            parent_span_id,
            self._llm_attributes(operation, model, provider, prompt, metadata),
            start_ns,
        )
        self._finish(span, response, prompt_tokens, completion_tokens, None, error, None, end_ns)
        return format(span.get_span_context().trace_id, "032x")

    # --- explicit spans -------------------------------------------------------------------------------

    def start_span(
        self,
        trace_id: str | int | None = None,
        name: str | None = None,
        parent_span_id: str | None = None,
        model: str | None = None,
        provider: str | None = None,
        *,
        operation: str | None = None,
        input: Any = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> str:
        """Start a span and return its span id (16 hex digits) for :meth:`end_span`.

        With ``model`` the span is an LLM call (operation ``chat`` unless given); without, a step named
        ``name``. ``parent_span_id`` nests it under an open span of this tracer (or, if unknown here, under
        that id in ``trace_id``); ``trace_id`` alone puts a root span into that trace (32 hex digits or a UUID
        are used as they are, other strings are hashed)."""
        if model is not None or operation is not None:
            attributes = self._llm_attributes(operation or gv.OP_CHAT, model, provider, input, metadata)
            span_name = name or (f"{operation or gv.OP_CHAT} {model}" if model else (operation or gv.OP_CHAT))
        else:
            attributes = _metadata_attributes(metadata)
            if input is not None:
                attributes[attr.GEN_AI_INPUT_MESSAGES] = to_json([message("user", [text_part(_text(input))])])
            span_name = name or "step"
        span = self._start(span_name, trace_id, parent_span_id, attributes, None)
        span_id = format(span.get_span_context().span_id, "016x")
        with self._lock:
            self._open[span_id] = span
        return span_id

    def end_span(
        self,
        span_id: str,
        output: Any = None,
        prompt_tokens: int | None = None,
        completion_tokens: int | None = None,
        *,
        response_model: str | None = None,
        error: BaseException | str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> bool:
        """End a span from :meth:`start_span`; False if it is unknown or already ended."""
        with self._lock:
            span = self._open.pop(span_id, None)
        if span is None:
            return False
        if metadata:
            span.set_attributes(_metadata_attributes(metadata))
        self._finish(span, output, prompt_tokens, completion_tokens, response_model, error, None, None)
        return True

    def observe(self, name: str | None = None, *, kind: str = "agent", **kwargs: Any) -> Any:
        """:func:`llm_observer.observe` bound to this tracer's provider."""
        return observe(name, kind=kind, tracer_provider=self.tracer_provider, **kwargs)

    # --- lifecycle ------------------------------------------------------------------------------------

    def flush(self, timeout_ms: int = 30_000) -> bool:
        """Export every finished span now; True when that succeeded within the timeout."""
        return bool(self.tracer_provider.force_flush(timeout_ms))

    def shutdown(self) -> None:
        """End spans still open (marked ``llm_observer.incomplete``), export everything, stop. Idempotent."""
        if self._closed:
            return
        self._closed = True
        with self._lock:
            still_open, self._open = list(self._open.values()), {}
        for span in still_open:
            span.set_attribute("llm_observer.incomplete", True)
            span.end()
        self.tracer_provider.shutdown()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.shutdown()

    # --- internals ------------------------------------------------------------------------------------

    def _start(
        self,
        name: str,
        trace_id: str | int | None,
        parent_span_id: str | None,
        attributes: dict[str, AttributeValue],
        start_ns: int | None,
    ) -> Span:
        context = None
        if parent_span_id:
            with self._lock:
                parent = self._open.get(parent_span_id.lower())
            if parent is not None:
                context = trace.set_span_in_context(parent)
            elif trace_id is not None and _is_hex(parent_span_id):
                remote = SpanContext(
                    trace_id_from(trace_id), int(parent_span_id, 16), is_remote=True,
                    trace_flags=TraceFlags(TraceFlags.SAMPLED),
                )  # fmt: skip
                context = trace.set_span_in_context(NonRecordingSpan(remote))
        elif trace_id is not None:
            # A root span in a chosen trace: an empty context (no current parent) and the chosen id.
            context = trace.set_span_in_context(trace.INVALID_SPAN)
            self._ids.choose(trace_id_from(trace_id))
        try:
            return self._tracer.start_span(
                name, context=context, kind=_kind(attributes), attributes=attributes, start_time=start_ns
            )
        finally:
            self._ids.choose(None)

    def _llm_attributes(
        self,
        operation: str,
        model: str | None,
        provider: str | None,
        prompt: Any,
        metadata: Mapping[str, Any] | None,
    ) -> dict[str, AttributeValue]:
        attributes = _metadata_attributes(metadata)
        attributes[attr.GEN_AI_OPERATION_NAME] = operation
        if provider:
            attributes[attr.GEN_AI_PROVIDER_NAME] = provider
        if model:
            attributes[attr.GEN_AI_REQUEST_MODEL] = model
        if prompt is not None:
            attributes[attr.GEN_AI_INPUT_MESSAGES] = to_json(_messages(prompt))
        return attributes

    def _finish(
        self,
        span: Span,
        output: Any,
        prompt_tokens: int | None,
        completion_tokens: int | None,
        response_model: str | None,
        error: BaseException | str | None,
        extra: dict[str, AttributeValue] | None,
        end_ns: int | None,
    ) -> None:
        attributes: dict[str, AttributeValue] = dict(extra or {})
        if output is not None:
            attributes[attr.GEN_AI_OUTPUT_MESSAGES] = to_json(
                [message("assistant", [text_part(_text(output))], finish_reason="stop")]
            )
        if prompt_tokens is not None:
            attributes[attr.GEN_AI_USAGE_INPUT_TOKENS] = int(prompt_tokens)
        if completion_tokens is not None:
            attributes[attr.GEN_AI_USAGE_OUTPUT_TOKENS] = int(completion_tokens)
        if response_model:
            attributes[attr.GEN_AI_RESPONSE_MODEL] = response_model
        if error is not None:
            attributes[attr.ERROR_TYPE] = error if isinstance(error, str) else type(error).__qualname__
            span.set_status(Status(StatusCode.ERROR, str(error)[:512]))
        span.set_attributes(attributes)
        span.end(end_time=end_ns)


def _is_hex(value: str) -> bool:
    try:
        return int(value, 16) != 0
    except ValueError:
        return False


def _kind(attributes: Mapping[str, AttributeValue]) -> SpanKind:
    operation = attributes.get(attr.GEN_AI_OPERATION_NAME)
    if operation in (gv.OP_INVOKE_AGENT, gv.OP_EXECUTE_TOOL, gv.OP_INVOKE_WORKFLOW, None):
        return SpanKind.INTERNAL
    return SpanKind.CLIENT


def _text(value: Any) -> str:
    return value if isinstance(value, str) else to_json(value)


def _messages(prompt: Any) -> list[dict[str, Any]]:
    """A prompt as input messages: a string is one user message; a list of ``{"role", "content"}`` dicts is
    taken message by message."""
    if isinstance(prompt, list) and all(isinstance(item, Mapping) and "role" in item for item in prompt):
        return [message(str(item["role"]), [text_part(_text(item.get("content", "")))]) for item in prompt]
    return [message("user", [text_part(_text(prompt))])]


def _metadata_attributes(metadata: Mapping[str, Any] | None) -> dict[str, AttributeValue]:
    attributes: dict[str, AttributeValue] = {}
    for key, value in (metadata or {}).items():
        name = _METADATA_KEYS.get(key, _METADATA_PREFIX + key)
        if isinstance(value, str | bool | int | float):
            attributes[name] = value
        elif value is not None:
            attributes[name] = to_json(value)
    return attributes
