"""Trace replay: re-issue the recorded LLM calls of a trace through the provider's SDK and compare.

A recorded call is rebuilt from what the instrumentation put on its span when content capture was on
(``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=SPAN_ONLY``): ``gen_ai.input.messages`` (the
conversation, tool calls and tool results included), ``gen_ai.system_instructions``,
``gen_ai.tool.definitions``, the request parameters (``gen_ai.request.temperature`` / ``top_p`` /
``top_k`` / ``max_tokens`` / ``stop_sequences`` / ``seed`` / ``frequency_penalty`` / ``presence_penalty``
/ ``choice.count`` / ``stream``), ``gen_ai.output.type`` (JSON answers) and ``openai.api.type`` (Chat
Completions or the Responses API). A span without ``gen_ai.input.messages`` cannot be replayed:
:class:`ContentNotCaptured` names every such span.

Providers (``gen_ai.provider.name``): ``openai`` (Chat Completions, Responses, legacy completions) and
``anthropic`` (Messages); any other is refused up front with :class:`UnsupportedProvider`.

The replay is a new trace: a root span ``replay {original root span name}`` carrying
``llm_observer.replay.original_trace_id`` (and ``…original_span_id`` / ``…model`` when the replay was
narrowed to one span or given another model), linked to the original root, and under it one LLM span per
call, each linked to the span it replays. The LLM spans are made by llm-observer's own instrumentation (the
instrumentor's wrapper around the SDK method, with its handler writing to a private ``TracerProvider``), so
they look exactly like the originals; content capture is on for them. The provider's ``instrument()`` is not
used because it patches the SDK classes for the whole process (a singleton): a query service serving
several replays at once, or an application that instruments the SDK itself, would see each other's spans.
The trace is sent over OTLP/HTTP to the collector with the original's ``llm_observer.organization.id`` /
``llm_observer.project.id`` / ``llm_observer.team.id`` resource attributes and service name
``llm-observer-replay``.

API keys come from :attr:`ReplayOptions.api_keys`, else the SDK's environment variable
(``OPENAI_API_KEY``, ``ANTHROPIC_API_KEY``); they are handed to the SDK client only, never logged or stored.

Rebuilding is faithful where the span says enough; where it cannot (the conventions do not record it),
the replay uses: ``max_tokens`` for Chat Completions (``max_completion_tokens`` for the o-series and
gpt-5 models, which refuse the former), ``{"type": "json_object"}`` for a JSON answer (the schema itself
is not recorded), ``max_tokens=4096`` for an Anthropic call that recorded none (the API requires it).
Images recorded only as ``<data uri omitted>`` and reasoning blocks are not sent back; a call whose input
needs them fails with a message saying so (:class:`RequestNotRebuilt`), the other calls still replay.
"""

from __future__ import annotations

import inspect
import logging
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from opentelemetry import trace as otel_trace
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import Link, SpanContext, SpanKind, TraceFlags

from llm_observer.processors.pricing import PriceBook
from llm_observer.query.insights.replay_diff import (
    CallDiff,
    CallSide,
    ReplayResult,
    cost_usd,
    diff_call,
    output_text,
    totals,
)
from llm_observer.query.insights.replay_record import (
    SUPPORTED_PROVIDERS,
    ContentNotCaptured,
    MissingApiKey,
    NothingToReplay,
    RecordedCall,
    RecordedTrace,
    ReplayError,
    RequestNotRebuilt,
    UnsupportedProvider,
    recorded_call_from_attributes,
    recorded_trace_from_document,
    recorded_trace_from_rows,
    select_calls,
)
from llm_observer.query.insights.replay_requests import ProviderRequest, build_request
from llm_observer.semconv import attributes as attr
from llm_observer.semconv import genai_values as gv

if TYPE_CHECKING:
    pass

__all__ = [
    "DEFAULT_OTLP_ENDPOINT",
    "REPLAY_SERVICE_NAME",
    "SUPPORTED_PROVIDERS",
    "ContentNotCaptured",
    "MissingApiKey",
    "NothingToReplay",
    "RecordedCall",
    "RecordedTrace",
    "ReplayError",
    "ReplayOptions",
    "RequestNotRebuilt",
    "UnsupportedProvider",
    "build_request",
    "recorded_trace_from_document",
    "recorded_trace_from_rows",
    "replay_trace",
    "select_calls",
]

_log = logging.getLogger(__name__)

DEFAULT_OTLP_ENDPOINT = "http://127.0.0.1:4318"
REPLAY_SERVICE_NAME = "llm-observer-replay"

ORIGINAL_TRACE_ID = "llm_observer.replay.original_trace_id"
ORIGINAL_SPAN_ID = "llm_observer.replay.original_span_id"
REPLAY_MODEL = "llm_observer.replay.model"
LINK_KIND = "llm_observer.link.type"
LINK_REPLAY_OF = "replay_of"

_API_KEY_ENV = {gv.PROVIDER_OPENAI: "OPENAI_API_KEY", gv.PROVIDER_ANTHROPIC: "ANTHROPIC_API_KEY"}


# --- running a replay ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReplayOptions:
    """How to replay: ``span_id`` narrows to one call; ``model`` replaces every replayed call's model;
    ``base_urls`` maps a provider (or ``"*"``: any) to the SDK base URL; ``api_keys`` maps a provider to its
    key (else the SDK's environment variable); the new trace goes to ``otlp_endpoint`` (OTLP/HTTP base URL)
    with ``otlp_headers``. ``env_keys_with_base_url=False`` keeps the environment's keys from going to a
    base URL given here (the API's rule: the caller's own key only)."""

    span_id: str | None = None
    model: str | None = None
    base_urls: Mapping[str, str] = field(default_factory=dict)
    api_keys: Mapping[str, str] = field(default_factory=dict, repr=False)
    otlp_endpoint: str = DEFAULT_OTLP_ENDPOINT
    otlp_headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    timeout_seconds: float = 120.0
    env_keys_with_base_url: bool = True

    def base_url(self, provider: str) -> str | None:
        return self.base_urls.get(provider) or self.base_urls.get("*") or None

    def api_key(self, provider: str) -> str | None:
        """The key for ``provider``: given, else its environment variable (unless a base URL is set for it
        and ``env_keys_with_base_url`` is False)."""
        key = self.api_keys.get(provider)
        if key:
            return key
        if self.base_url(provider) and not self.env_keys_with_base_url:
            return None
        env = _API_KEY_ENV.get(provider)
        return (os.environ.get(env) or None) if env else None


class _ReplaySpans(SpanProcessor):
    """A span processor of the replay's private provider: links each new LLM span to the span it replays
    (``link_to``, set before each call) and keeps the finished spans, read back for the diff."""

    def __init__(self) -> None:
        self.link_to: tuple[int, int] | None = None
        self.finished: list[ReadableSpan] = []
        self._lock = threading.Lock()

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        target = self.link_to
        attributes = span.attributes or {}
        if target is not None and attr.GEN_AI_OPERATION_NAME in attributes:
            context = SpanContext(
                target[0], target[1], is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED)
            )
            span.add_link(context, {LINK_KIND: LINK_REPLAY_OF})

    def on_end(self, span: ReadableSpan) -> None:
        with self._lock:
            self.finished.append(span)

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


class _CheckedExporter(SpanExporter):
    """The OTLP/HTTP exporter of the new trace, remembering whether every export succeeded."""

    def __init__(self, options: ReplayOptions) -> None:
        endpoint = options.otlp_endpoint.rstrip("/")
        if not endpoint.endswith("/v1/traces"):
            endpoint += "/v1/traces"
        self.inner = OTLPSpanExporter(endpoint=endpoint, headers=dict(options.otlp_headers), timeout=30)
        self.ok = True
        self.exported = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        result = self.inner.export(spans)
        if result is SpanExportResult.SUCCESS:
            self.exported += len(spans)
        else:
            self.ok = False
        return result

    def shutdown(self) -> None:
        self.inner.shutdown()  # type: ignore[no-untyped-call]

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return bool(self.inner.force_flush(timeout_millis))


def _client(provider: str, options: ReplayOptions) -> Any:
    key = options.api_key(provider)
    if not key:
        if options.base_url(provider) and not options.env_keys_with_base_url:
            raise MissingApiKey(
                f"no API key for {provider}: a request that sets its base URL must give its key too"
            )
        raise MissingApiKey(
            f"no API key for {provider}: set {_API_KEY_ENV[provider]} or pass one with the request"
        )
    base_url = options.base_url(provider)
    try:
        if provider == gv.PROVIDER_OPENAI:
            import openai

            return openai.OpenAI(
                api_key=key, base_url=base_url, timeout=options.timeout_seconds, max_retries=0
            )
        import anthropic

        extra: dict[str, Any] = {}
        if "open_telemetry" in inspect.signature(anthropic.Anthropic).parameters:
            # Newer SDKs trace themselves; this replay's span is the instrumentation's, one per call.
            extra["open_telemetry"] = False
        return anthropic.Anthropic(
            api_key=key, base_url=base_url, timeout=options.timeout_seconds, max_retries=0, **extra
        )
    except ImportError as exc:
        raise UnsupportedProvider(
            f"replaying {provider} calls needs the {provider} package: pip install {provider}"
        ) from exc


# (instrumentor module, class name), the SDK method (module, qualname) and the client attribute path per API.
_APIS: Mapping[str, tuple[str, str, str, str, tuple[str, ...]]] = {
    "chat": (
        "llm_observer.instrumentation.openai",
        "OpenAIInstrumentor",
        "openai.resources.chat.completions",
        "Completions.create",
        ("chat", "completions"),
    ),
    "responses": (
        "llm_observer.instrumentation.openai",
        "OpenAIInstrumentor",
        "openai.resources.responses",
        "Responses.create",
        ("responses",),
    ),
    "completions": (
        "llm_observer.instrumentation.openai",
        "OpenAIInstrumentor",
        "openai.resources.completions",
        "Completions.create",
        ("completions",),
    ),
    "messages": (
        "llm_observer.instrumentation.anthropic",
        "AnthropicInstrumentor",
        "anthropic.resources.messages",
        "Messages.create",
        ("messages",),
    ),
}


class _Instrumented:
    """The instrumentation's wrappers per API, bound to one private ``TracerProvider``."""

    def __init__(self, tracer_provider: Any) -> None:
        self._tracer_provider = tracer_provider
        self._made: dict[str, Callable[..., Any]] = {}

    def wrapper(self, api: str) -> Callable[..., Any]:
        found = self._made.get(api)
        if found is not None:
            return found
        from importlib import import_module

        from opentelemetry.metrics import NoOpMeterProvider

        from llm_observer.instrumentation import __version__
        from llm_observer.instrumentation.handler import ContentCapture, GenAIHandler

        module_name, class_name, sdk_module, qualname, _ = _APIS[api]
        instrumentor_cls = getattr(import_module(module_name), class_name)
        handler = GenAIHandler(
            module_name,
            __version__,
            tracer_provider=self._tracer_provider,
            meter_provider=NoOpMeterProvider(),
            capture=ContentCapture.SPAN_ONLY,
        )
        target = next(
            t for t in instrumentor_cls.targets if t.module == sdk_module and t.qualname == qualname
        )
        # The instrumentor's own wrapper for the method, applied per call instead of patched in.
        made: Callable[..., Any] = instrumentor_cls()._wrapper_factory(handler, {})(target, False)
        self._made[api] = made
        return made


def _fit_signature(method: Callable[..., Any], kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """``kwargs`` for ``method``: parameters this SDK release does not name (newer Anthropic SDKs dropped
    ``temperature``/``top_p``/``top_k``) go in ``extra_body``, so the request on the wire stays the same."""
    try:
        parameters = inspect.signature(method).parameters
    except (TypeError, ValueError):
        return dict(kwargs)
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return dict(kwargs)
    fitted: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for key, value in kwargs.items():
        (fitted if key in parameters else extra)[key] = value
    if extra:
        fitted["extra_body"] = extra
    return fitted


def _call_sdk(instrumented: _Instrumented, client: Any, request: ProviderRequest) -> None:
    resource = client
    for name in _APIS[request.api][4]:
        resource = getattr(resource, name)
    wrapper = instrumented.wrapper(request.api)
    result = wrapper(resource.create, resource, (), _fit_signature(resource.create, request.kwargs))
    if request.stream:
        # The span ends when the stream does: read it to the end.
        try:
            for _ in result:
                pass
        finally:
            close = getattr(result, "close", None)
            if callable(close):
                close()


def _side(call: RecordedCall, book: PriceBook, latency_ms: float | None) -> CallSide:
    return CallSide(
        model=call.request_model,
        response_model=call.response_model,
        output=output_text(call.output_messages),
        finish_reasons=call.finish_reasons,
        input_tokens=call.input_tokens,
        output_tokens=call.output_tokens,
        cache_read_tokens=call.cache_read_tokens,
        cache_write_tokens=call.cache_write_tokens,
        reasoning_tokens=call.reasoning_tokens,
        cost_usd=cost_usd(
            book,
            call.provider,
            (call.response_model, call.request_model),
            call.start_ns,
            call.input_tokens,
            call.output_tokens,
            call.cache_read_tokens,
            call.cache_write_tokens,
            call.reasoning_tokens,
        ),
        latency_ms=latency_ms,
    )


def _hex_id(value: int, size: int) -> str:
    return format(value, f"0{size * 2}x")


def replay_trace(
    trace: RecordedTrace, options: ReplayOptions, prices: PriceBook | None = None
) -> ReplayResult:
    """Re-issue the trace's recorded LLM calls (see the module docstring), send the new trace to the
    collector and compare. Blocking: call it from a worker thread in async code.

    Raises :class:`ReplayError` subclasses before any call is sent (nothing to replay, content not
    captured, provider not supported, no API key); a call that fails is reported in its :class:`CallDiff`
    (``error``) and the others still run."""
    calls = select_calls(trace, options.span_id)
    clients = {provider: _client(provider, options) for provider in sorted({call.provider for call in calls})}
    book = prices if prices is not None else PriceBook()

    resource_attributes: dict[str, str] = {
        attr.SERVICE_NAME: REPLAY_SERVICE_NAME,
        attr.ORGANIZATION_ID: trace.organization_id,
        attr.PROJECT_ID: trace.project_id,
    }
    if trace.team_id:
        resource_attributes["llm_observer.team.id"] = trace.team_id
    spans = _ReplaySpans()
    exporter = _CheckedExporter(options)
    provider = TracerProvider(resource=Resource.create(resource_attributes))
    provider.add_span_processor(spans)
    provider.add_span_processor(BatchSpanProcessor(exporter))
    instrumented = _Instrumented(provider)
    tracer = provider.get_tracer(__name__)

    root_attributes: dict[str, str] = {ORIGINAL_TRACE_ID: trace.trace_id}
    if options.span_id:
        root_attributes[ORIGINAL_SPAN_ID] = options.span_id.lower()
    if options.model:
        root_attributes[REPLAY_MODEL] = options.model
    original_root = SpanContext(
        int(trace.trace_id, 16), int(trace.root_span_id, 16), is_remote=True, trace_flags=TraceFlags(1)
    )
    diffs: list[tuple[RecordedCall, int | None, str | None]] = []
    try:
        root = tracer.start_span(
            f"replay {trace.root_name}",
            kind=SpanKind.INTERNAL,
            attributes=root_attributes,
            links=[Link(original_root, {LINK_KIND: LINK_REPLAY_OF})],
        )
        with otel_trace.use_span(root, end_on_exit=True):
            for call in calls:
                before = len(spans.finished)
                spans.link_to = (int(trace.trace_id, 16), int(call.span_id, 16))
                error: str | None = None
                try:
                    request = build_request(call, options.model)
                    _call_sdk(instrumented, clients[call.provider], request)
                except RequestNotRebuilt as exc:
                    error = str(exc)
                except Exception as exc:  # the provider's answer: reported in the diff, the rest go on
                    error = f"{type(exc).__name__}: {exc}"
                finally:
                    spans.link_to = None
                made = next(
                    (
                        span
                        for span in spans.finished[before:]
                        if (span.attributes or {}).get(attr.GEN_AI_OPERATION_NAME) is not None
                    ),
                    None,
                )
                diffs.append(
                    (call, made.context.span_id if made is not None and made.context else None, error)
                )
        root_context = root.get_span_context()
    finally:
        provider.force_flush(int(options.timeout_seconds * 1000))
        provider.shutdown()

    by_id = {span.context.span_id: span for span in spans.finished if span.context is not None}
    results: list[CallDiff] = []
    for call, made_id, error in diffs:
        original = _side(call, book, call.duration_ns / 1e6)
        made = by_id.get(made_id) if made_id is not None else None
        if made is None:
            results.append(
                diff_call(
                    call.span_id, None, call.name, call.provider, original, None, error or "no span was made"
                )
            )
            continue
        replayed = recorded_call_from_attributes(
            dict(made.attributes or {}),
            span_id=_hex_id(made_id or 0, 8),
            name=made.name,
            start_ns=made.start_time or 0,
            duration_ns=(made.end_time or 0) - (made.start_time or 0),
            error=error,
        )
        side = _side(replayed, book, replayed.duration_ns / 1e6)
        if error is not None:
            results.append(
                diff_call(call.span_id, replayed.span_id, call.name, call.provider, original, None, error)
            )
        else:
            results.append(
                diff_call(call.span_id, replayed.span_id, call.name, call.provider, original, side)
            )
    if not exporter.ok:
        _log.warning(
            "The collector at %s did not accept the replay of trace %s; the new trace is not stored.",
            options.otlp_endpoint,
            trace.trace_id,
        )
    return ReplayResult(
        original_trace_id=trace.trace_id,
        replay_trace_id=_hex_id(root_context.trace_id, 16),
        replay_root_span_id=_hex_id(root_context.span_id, 8),
        exported=bool(exporter.ok and exporter.exported > 0),
        calls=tuple(results),
        totals=totals(results),
    )
