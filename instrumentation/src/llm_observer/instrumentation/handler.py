"""The one GenAI telemetry handler every llm-observer instrumentor shares.

An instrumentor only translates its SDK's request and response objects into an :class:`LLMCall` (see
:mod:`llm_observer.instrumentation._instrumentor`); this module owns everything else: span naming
(``{operation} {model}``, kind CLIENT), the request / response / usage attributes of the GenAI conventions,
error recording, opt-in content capture, the two client metrics, time to first chunk, and suppression of
duplicate LLM spans. It is the bottom of the instrumentation: the wrappers, stream wrappers and
instrumentors build on it, and it imports none of them.

A call goes ``start`` (span made current) → ``detach`` (once the SDK method returned) → ``first_chunk``
(streams) → ``finish`` or ``fail``, each ending the call exactly once.

Client metrics (``client_metrics``, else ``LLM_OBSERVER_GENAI_CLIENT_METRICS``): ``all`` (the default:
``gen_ai.client.operation.duration``, ``gen_ai.client.token.usage`` and time to first chunk), ``duration``
(the two time histograms, no token histogram) or ``none``. Each histogram record costs about as much as a
third of the span itself; llm-observer's collector derives the same metrics from the spans, so applications
that send their spans to it can record fewer (see :func:`client_metrics`).

``error.type`` is the provider error code an instrumentor passes to :meth:`GenAIHandler.fail`, falling back to
the exception's qualified class name.

The tracer, meter and logger carry the schema URL of the semantic-conventions release the instrumentation
targets (:data:`llm_observer.semconv.registry.SCHEMA_URL`).

Suppression: while an LLM span made here is active, or inside :func:`suppress_llm_spans`, other llm-observer
instrumentors make no LLM span, so one call gives one span. A framework instrumentation (LangChain,
LlamaIndex…) that makes its own LLM span for a model call wraps the provider call in
``with suppress_llm_spans():``; one that wants the provider's span instead makes its step a non-LLM span
(``chain``/``invoke_agent``) and lets the provider span nest under it. OpenTelemetry's generic
``suppress_instrumentation`` context key is honoured too.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry._logs import LoggerProvider, get_logger
from opentelemetry.instrumentation.utils import is_instrumentation_enabled
from opentelemetry.metrics import MeterProvider, get_meter
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, TracerProvider
from opentelemetry.util.types import AttributeValue

from llm_observer.instrumentation._content import (
    ContentCapture,
    Message,
    Part,
    content_capture,
    content_capture_from_env,
    message,
    text_part,
    to_json,
    tool_call_part,
    tool_response_part,
)
from llm_observer.semconv import attributes as attr
from llm_observer.semconv import genai_values as gv
from llm_observer.semconv.registry import SCHEMA_URL

__all__ = [
    "CLIENT_METRICS_ENV",
    "ClientMetrics",
    "ContentCapture",
    "GenAIHandler",
    "LLMCall",
    "Message",
    "Part",
    "client_metrics",
    "content_capture",
    "content_capture_from_env",
    "llm_spans_suppressed",
    "message",
    "suppress_llm_spans",
    "text_part",
    "tool_call_part",
    "tool_response_part",
]

_log = logging.getLogger(__name__)

_SUPPRESS_LLM_KEY = otel_context.create_key("llm_observer.suppress_llm_span")

#: Which client metrics a handler records per call when ``client_metrics`` is not given.
CLIENT_METRICS_ENV = "LLM_OBSERVER_GENAI_CLIENT_METRICS"
ClientMetrics = Literal["all", "duration", "none"]
_CLIENT_METRICS: tuple[ClientMetrics, ...] = ("all", "duration", "none")


def client_metrics(value: object = None, environ: Mapping[str, str] | None = None) -> ClientMetrics:
    """The client-metrics level: ``value`` (a name in any case; anything else is a ValueError), else the
    environment's ``LLM_OBSERVER_GENAI_CLIENT_METRICS`` (an unknown name there is logged and means ``all``),
    else ``all``."""
    if value is not None:
        name = str(value).strip().lower()
        for level in _CLIENT_METRICS:
            if name == level:
                return level
        raise ValueError(f"client_metrics must be one of {', '.join(_CLIENT_METRICS)}, not {value!r}")
    raw = (os.environ if environ is None else environ).get(CLIENT_METRICS_ENV, "").strip().lower()
    for level in _CLIENT_METRICS:
        if raw == level:
            return level
    if raw:
        _log.warning(
            "%s=%r is not one of %s: recording all client metrics", CLIENT_METRICS_ENV, raw, _CLIENT_METRICS
        )
    return "all"


@contextmanager
def suppress_llm_spans() -> Iterator[None]:
    """Inside this block llm-observer provider instrumentors make no LLM spans (see module docstring)."""
    token = otel_context.attach(otel_context.set_value(_SUPPRESS_LLM_KEY, True))
    try:
        yield
    finally:
        otel_context.detach(token)


def llm_spans_suppressed() -> bool:
    """Whether an LLM span is already active or LLM spans are suppressed in the current context."""
    return bool(otel_context.get_value(_SUPPRESS_LLM_KEY)) or not is_instrumentation_enabled()


@dataclass(slots=True, eq=False)
class LLMCall:
    """One model call: what the instrumentor knows about the request, then the response.

    ``attributes`` holds further request attributes (only those the caller actually set); content fields
    (``input_messages``, ``system_instructions``, ``tool_definitions``, ``output_messages``) are filled only
    when ``handler.capture_content`` is true. Token counts follow the conventions: ``input_tokens`` includes
    cached tokens. ``private_usage_chunk`` says the instrumentation itself asked the server for a final
    usage-only chunk of a stream (the caller did not): stream wrappers read that chunk and keep it from the
    caller. The fields after ``response_attributes`` are the handler's own.
    """

    operation: str
    provider: str
    request_model: str | None = None
    attributes: dict[str, AttributeValue] = field(default_factory=dict)
    server_address: str | None = None
    server_port: int | None = None
    streaming: bool = False
    private_usage_chunk: bool = False
    input_messages: list[Message] | None = None
    system_instructions: list[Part] | None = None
    tool_definitions: list[dict[str, Any]] | None = None
    response_model: str | None = None
    response_id: str | None = None
    finish_reasons: list[str] | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_tokens: int | None = None
    cache_creation_tokens: int | None = None
    reasoning_tokens: int | None = None
    output_messages: list[Message] | None = None
    response_attributes: dict[str, AttributeValue] | None = None
    span: Span | None = None
    start_ns: int = 0
    first_chunk_ns: int | None = None
    ended: bool = False
    _token: object | None = None

    @property
    def span_name(self) -> str:
        return f"{self.operation} {self.request_model}" if self.request_model else self.operation


class GenAIHandler:
    """Turns :class:`LLMCall` objects into spans, metrics and content events (see module docstring).

    One handler per instrumentor instance; thread-safe (it keeps no per-call state of its own).
    The content-capture mode is read from the environment when the handler is made, unless given.
    """

    def __init__(
        self,
        scope: str,
        version: str = "",
        *,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
        logger_provider: LoggerProvider | None = None,
        capture: ContentCapture | None = None,
        metrics: ClientMetrics | None = None,
    ) -> None:
        self.capture = content_capture_from_env() if capture is None else capture
        #: Which client metrics are recorded per call (see :func:`client_metrics`).
        self.metrics: ClientMetrics = client_metrics() if metrics is None else metrics
        #: Whether instrumentors should build content (messages, instructions, tool definitions).
        self.capture_content = self.capture.enabled
        self._tracer = trace.get_tracer(scope, version, tracer_provider, schema_url=SCHEMA_URL)
        meter = get_meter(scope, version, meter_provider, schema_url=SCHEMA_URL)
        self._token_usage = meter.create_histogram(
            gv.METRIC_TOKEN_USAGE,
            unit="{token}",
            description="Number of input and output tokens used.",
            explicit_bucket_boundaries_advisory=list(gv.TOKEN_USAGE_BUCKETS),
        )
        self._duration = meter.create_histogram(
            gv.METRIC_OPERATION_DURATION,
            unit="s",
            description="GenAI operation duration.",
            explicit_bucket_boundaries_advisory=list(gv.DURATION_BUCKETS),
        )
        self._ttfc = meter.create_histogram(
            gv.METRIC_TIME_TO_FIRST_CHUNK,
            unit="s",
            description="Time from the request to the first chunk of a streamed response.",
            explicit_bucket_boundaries_advisory=list(gv.DURATION_BUCKETS),
        )
        self._logger = (
            get_logger(scope, version, logger_provider, schema_url=SCHEMA_URL)
            if self.capture.as_event
            else None
        )

    @classmethod
    def from_kwargs(cls, kwargs: Mapping[str, Any], scope: str, version: str = "") -> GenAIHandler:
        """Make a handler from ``BaseInstrumentor._instrument(**kwargs)`` (``tracer_provider``,
        ``meter_provider``, ``logger_provider``; ``capture_content`` overrides the environment variable:
        ``True``/``False``, a :class:`ContentCapture` or its name in any case, else ValueError;
        ``client_metrics`` likewise: ``all``, ``duration`` or ``none``)."""
        return cls(
            scope,
            version,
            tracer_provider=kwargs.get("tracer_provider"),
            meter_provider=kwargs.get("meter_provider"),
            logger_provider=kwargs.get("logger_provider"),
            capture=content_capture(kwargs.get("capture_content")),
            metrics=client_metrics(kwargs.get("client_metrics")),
        )

    # --- lifecycle ----------------------------------------------------------------------------------

    def start(self, call: LLMCall) -> LLMCall:
        """Start the span and make it current (with LLM spans suppressed beneath it) until :meth:`detach`.

        When LLM spans are suppressed here the call stays inert: no span, no metrics, every later method
        is a no-op.
        """
        call.start_ns = time.perf_counter_ns()
        if llm_spans_suppressed():
            call.ended = True
            return call
        attributes = _naming_attributes(call, False, True)
        if call.streaming:
            attributes[attr.GEN_AI_REQUEST_STREAM] = True
        attributes.update(call.attributes)
        span = self._tracer.start_span(call.span_name, kind=SpanKind.CLIENT, attributes=attributes)
        call.span = span
        ctx = otel_context.set_value(_SUPPRESS_LLM_KEY, True, trace.set_span_in_context(span))
        call._token = otel_context.attach(ctx)
        return call

    def detach(self, call: LLMCall) -> None:
        """Restore the context :meth:`start` replaced (call in the same thread/task, once)."""
        token, call._token = call._token, None
        if token is not None:
            try:
                otel_context.detach(token)  # type: ignore[arg-type]
            except Exception:  # a context mismatch must not reach the user
                _log.debug("Could not detach the GenAI span context.", exc_info=True)

    def first_chunk(self, call: LLMCall) -> None:
        """Note that the first chunk of a stream arrived now."""
        if call.first_chunk_ns is None:
            call.first_chunk_ns = time.perf_counter_ns()

    def finish(self, call: LLMCall) -> None:
        """End the call successfully: response attributes, content, metrics; exactly once."""
        self._end(call, None, None)

    def fail(self, call: LLMCall, exc: BaseException, error_type: str | None = None) -> None:
        """End the call with an error: ``error.type`` (given, else the exception's qualified name), status
        ERROR, whatever response data was already gathered; exactly once."""
        self._end(call, exc, error_type or _qualified_name(exc))

    # --- internals ----------------------------------------------------------------------------------

    def _end(self, call: LLMCall, exc: BaseException | None, error_type: str | None) -> None:
        if call.ended:
            return
        call.ended = True
        span = call.span
        if span is None:
            return
        try:
            duration_s = (time.perf_counter_ns() - call.start_ns) / 1e9
            attributes = self._response_attributes(call)
            if error_type is not None:
                attributes[attr.ERROR_TYPE] = error_type
                span.set_status(Status(StatusCode.ERROR, _describe(exc)))
            if self.capture.on_span:
                attributes.update(self._content_attributes(call))
            span.set_attributes(attributes)
            self._record_metrics(call, duration_s, error_type)
            if self._logger is not None:
                self._emit_event(call, span)
        except Exception:  # never raise into user code
            _log.debug("Could not record the GenAI response.", exc_info=True)
        finally:
            span.end()

    def _response_attributes(self, call: LLMCall) -> dict[str, AttributeValue]:
        attributes: dict[str, AttributeValue] = {}
        if call.response_model:
            attributes[attr.GEN_AI_RESPONSE_MODEL] = call.response_model
        if call.response_id:
            attributes[attr.GEN_AI_RESPONSE_ID] = call.response_id
        if call.finish_reasons:
            attributes[attr.GEN_AI_RESPONSE_FINISH_REASONS] = call.finish_reasons
        if call.input_tokens is not None:
            attributes[attr.GEN_AI_USAGE_INPUT_TOKENS] = call.input_tokens
        if call.output_tokens is not None:
            attributes[attr.GEN_AI_USAGE_OUTPUT_TOKENS] = call.output_tokens
        if call.cache_read_tokens is not None:
            attributes[attr.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] = call.cache_read_tokens
        if call.cache_creation_tokens is not None:
            attributes[attr.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS] = call.cache_creation_tokens
        if call.reasoning_tokens is not None:
            attributes[attr.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS] = call.reasoning_tokens
        if call.first_chunk_ns is not None:
            attributes[attr.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] = (call.first_chunk_ns - call.start_ns) / 1e9
        if call.response_attributes:
            attributes.update(call.response_attributes)
        return attributes

    def _content_attributes(self, call: LLMCall) -> dict[str, AttributeValue]:
        return {key: to_json(value) for key, value in _content(call).items()}

    def _record_metrics(self, call: LLMCall, duration_s: float, error_type: str | None) -> None:
        if self.metrics == "none":
            return
        labels = _naming_attributes(call, True, True)
        if call.first_chunk_ns is not None:
            self._ttfc.record((call.first_chunk_ns - call.start_ns) / 1e9, labels)
        if error_type is not None:
            self._duration.record(duration_s, {**labels, attr.ERROR_TYPE: error_type})
            return
        self._duration.record(duration_s, labels)
        if self.metrics == "duration":
            return
        if call.input_tokens is not None:
            self._token_usage.record(
                call.input_tokens, {**labels, attr.GEN_AI_TOKEN_TYPE: gv.TOKEN_TYPE_INPUT}
            )
        if call.output_tokens is not None:
            self._token_usage.record(
                call.output_tokens, {**labels, attr.GEN_AI_TOKEN_TYPE: gv.TOKEN_TYPE_OUTPUT}
            )

    def _emit_event(self, call: LLMCall, span: Span) -> None:
        assert self._logger is not None
        attributes: dict[str, Any] = _naming_attributes(call, True, False)
        attributes.update(_content(call))
        self._logger.emit(
            event_name=gv.EVENT_INFERENCE_OPERATION_DETAILS,
            attributes=attributes,
            context=trace.set_span_in_context(span),
        )


def _naming_attributes(call: LLMCall, response_model: bool, server: bool) -> dict[str, AttributeValue]:
    """What names a call on its span, metrics and event: operation, provider, request model, and as asked
    the response model and the server (positional: it runs twice on every call)."""
    attributes: dict[str, AttributeValue] = {
        attr.GEN_AI_OPERATION_NAME: call.operation,
        attr.GEN_AI_PROVIDER_NAME: call.provider,
    }
    if call.request_model:
        attributes[attr.GEN_AI_REQUEST_MODEL] = call.request_model
    if response_model and call.response_model:
        attributes[attr.GEN_AI_RESPONSE_MODEL] = call.response_model
    if server and call.server_address:
        attributes[gv.SERVER_ADDRESS] = call.server_address
        if call.server_port:
            attributes[gv.SERVER_PORT] = call.server_port
    return attributes


def _content(call: LLMCall) -> dict[str, Any]:
    """The captured content of a call by attribute name, as gathered (not yet encoded)."""
    content: dict[str, Any] = {}
    if call.input_messages is not None:
        content[attr.GEN_AI_INPUT_MESSAGES] = call.input_messages
    if call.output_messages is not None:
        content[attr.GEN_AI_OUTPUT_MESSAGES] = call.output_messages
    if call.system_instructions:
        content[attr.GEN_AI_SYSTEM_INSTRUCTIONS] = call.system_instructions
    if call.tool_definitions:
        content[attr.GEN_AI_TOOL_DEFINITIONS] = call.tool_definitions
    return content


def _qualified_name(exc: BaseException) -> str:
    return type(exc).__qualname__


def _describe(exc: BaseException | None) -> str | None:
    if exc is None:
        return None
    text = str(exc)
    return text[:512] if text else type(exc).__qualname__
