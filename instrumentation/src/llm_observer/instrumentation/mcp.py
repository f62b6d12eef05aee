"""MCP (Model Context Protocol) client and server spans for the ``mcp`` Python SDK 1.x, per the
OpenTelemetry MCP conventions, with the trace carried across the transport.

What ``MCPInstrumentor().instrument()`` wraps:

- ``BaseSession.send_request`` (every request a session sends: a client's ``initialize``, ``tools/call``,
  ``resources/read`` …, and a server's own requests such as ``sampling/createMessage``): one CLIENT span per
  request, from sending until the answer arrives. The current context (that span) is injected into the
  request's ``params._meta`` with the global propagator (W3C ``traceparent``/``tracestate`` by default);
  the caller's request object is copied, never changed.
- ``Server._handle_request`` (the low-level server's dispatch, which FastMCP runs on) and, for ``initialize``
  (which the session answers itself), ``ServerSession._received_request``: one SERVER span per request, its parent extracted from ``params._meta`` (the ambient context when the request carries none),
  current while the handler runs so what the tool does (an LLM call, an HTTP call) nests under it.
- ``RequestResponder.respond``: reads the answer the server span's request gets (a JSON-RPC error, or a
  tool result with ``isError``).

A span is named ``{mcp.method.name} {target}`` (target: the tool or prompt name, else just the method) and
carries ``mcp.method.name``, ``jsonrpc.request.id``, ``gen_ai.operation.name`` = ``execute_tool`` and
``gen_ai.tool.name`` for ``tools/call``, ``gen_ai.prompt.name`` for ``prompts/get``, ``mcp.resource.uri``
for resource requests, ``mcp.protocol.version`` on ``initialize``; a server span reached over HTTP also
carries ``mcp.session.id`` (the ``Mcp-Session-Id`` header), ``network.transport`` = ``tcp`` and
``network.protocol.name`` = ``http``. Errors set status ERROR: a JSON-RPC error answer gives ``error.type``
and ``rpc.response.status_code`` = its code, a tool result with ``isError`` gives ``error.type`` =
``tool_error``, an exception its qualified class name. The two operation-duration histograms
(``mcp.client.operation.duration``, ``mcp.server.operation.duration``) are recorded per request.

Tool arguments (``gen_ai.tool.call.arguments``) and results (``gen_ai.tool.call.result``, the result without
its ``_meta``) go on the spans only when content capture puts content on spans: ``capture_content=`` of
``instrument()`` or ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` (SPAN_ONLY or SPAN_AND_EVENT), as
for the provider instrumentors.

mcp 2.x makes these spans itself (and propagates the context the same way), so this instrumentor declares
``mcp >= 1.23, < 2``: ``opentelemetry-instrument`` skips it on 2.x instead of doubling every span.

Telemetry never breaks a call: a failure to read a request or an answer is logged at DEBUG and the call
goes on unchanged; the user's exceptions propagate as they were.
"""

from __future__ import annotations

import contextvars
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.metrics import Histogram, get_meter
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.util.types import AttributeValue

from llm_observer.instrumentation import __version__
from llm_observer.instrumentation._content import (
    ContentCapture,
    content_capture,
    content_capture_from_env,
    json_able,
    to_json,
)
from llm_observer.instrumentation._instrumentor import ProviderInstrumentor, Target, WrapperFactory
from llm_observer.instrumentation._wrappers import WraptWrapper
from llm_observer.instrumentation.handler import GenAIHandler
from llm_observer.semconv import attributes as attr
from llm_observer.semconv import genai_values as gv
from llm_observer.semconv.registry import SCHEMA_URL

__all__ = ["MCPInstrumentor"]

_log = logging.getLogger(__name__)

_instruments = ("mcp >= 1.23, < 2",)

# The MCP conventions' names (semconv-genai, mcp.md); kept here until the semconv package lists them.
MCP_METHOD_NAME = "mcp.method.name"
MCP_SESSION_ID = "mcp.session.id"
MCP_RESOURCE_URI = "mcp.resource.uri"
MCP_PROTOCOL_VERSION = "mcp.protocol.version"
JSONRPC_REQUEST_ID = "jsonrpc.request.id"
RPC_RESPONSE_STATUS_CODE = "rpc.response.status_code"
GEN_AI_PROMPT_NAME = "gen_ai.prompt.name"
NETWORK_TRANSPORT = "network.transport"
NETWORK_PROTOCOL_NAME = "network.protocol.name"
METRIC_CLIENT_DURATION = "mcp.client.operation.duration"
METRIC_SERVER_DURATION = "mcp.server.operation.duration"
TOOL_ERROR = "tool_error"
SESSION_HEADER = "mcp-session-id"

# Attributes the duration metrics keep (low cardinality: no request ids, session ids or URIs).
_METRIC_KEYS = frozenset(
    {
        MCP_METHOD_NAME,
        MCP_PROTOCOL_VERSION,
        attr.GEN_AI_OPERATION_NAME,
        attr.GEN_AI_TOOL_NAME,
        GEN_AI_PROMPT_NAME,
        NETWORK_TRANSPORT,
        NETWORK_PROTOCOL_NAME,
        attr.ERROR_TYPE,
        RPC_RESPONSE_STATUS_CODE,
    }
)
_RESOURCE_METHODS = frozenset({"resources/read", "resources/subscribe", "resources/unsubscribe"})
_DURATION_BUCKETS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


@dataclass(slots=True, eq=False)
class _Request:
    """One MCP request being traced: its span, what names it, and when it started."""

    kind: SpanKind
    span: Span
    attributes: dict[str, AttributeValue]
    start_s: float
    responder: object | None = None
    ended: bool = False
    extra: dict[str, AttributeValue] = field(default_factory=dict)


# The server request whose handler runs in this task: RequestResponder.respond reports to it.
_SERVING: contextvars.ContextVar[_Request | None] = contextvars.ContextVar(
    "llm_observer_mcp_serving", default=None
)


class _Telemetry:
    """The tracer, the two histograms and the content switch of one ``instrument()`` call."""

    def __init__(self, kwargs: Mapping[str, Any]) -> None:
        capture = content_capture(kwargs.get("capture_content"))
        self.capture: ContentCapture = content_capture_from_env() if capture is None else capture
        scope = __name__
        self.tracer = trace.get_tracer(
            scope, __version__, kwargs.get("tracer_provider"), schema_url=SCHEMA_URL
        )
        meter = get_meter(scope, __version__, kwargs.get("meter_provider"), schema_url=SCHEMA_URL)
        self.durations: dict[SpanKind, Histogram] = {
            SpanKind.CLIENT: meter.create_histogram(
                METRIC_CLIENT_DURATION,
                unit="s",
                description="Duration of an MCP request as the sender sees it, until the answer arrives.",
                explicit_bucket_boundaries_advisory=list(_DURATION_BUCKETS),
            ),
            SpanKind.SERVER: meter.create_histogram(
                METRIC_SERVER_DURATION,
                unit="s",
                description="Duration of an MCP request as the receiver sees it, until the answer is sent.",
                explicit_bucket_boundaries_advisory=list(_DURATION_BUCKETS),
            ),
        }

    def start(
        self, kind: SpanKind, method: str, params: Any, parent: otel_context.Context | None
    ) -> _Request:
        """Start the span of a request (not made current)."""
        attributes, target = _request_attributes(method, params)
        if self.capture.on_span and method == "tools/call":
            arguments = getattr(params, "arguments", None)
            if arguments is not None:
                attributes[gv.GEN_AI_TOOL_CALL_ARGUMENTS] = to_json(json_able(arguments))
        name = f"{method} {target}" if target else method
        span = self.tracer.start_span(name, context=parent, kind=kind, attributes=attributes)
        return _Request(kind, span, attributes, time.perf_counter())

    def answer(self, request: _Request, method: str, result: Any) -> None:
        """Record an answer: a JSON-RPC error, a tool result (``isError`` marks the span), content."""
        code = getattr(result, "code", None)
        if isinstance(code, int) and hasattr(result, "message"):  # ErrorData
            self._error(request, str(code), str(getattr(result, "message", "")), code=str(code))
            return
        if method != "tools/call":
            return
        if getattr(result, "isError", False) is True:
            self._error(request, TOOL_ERROR, _tool_error_text(result))
        if self.capture.on_span:
            dumped = result.model_dump(mode="json", by_alias=True, exclude_none=True)
            dumped.pop("_meta", None)
            request.span.set_attribute(gv.GEN_AI_TOOL_CALL_RESULT, to_json(dumped))

    def fail(self, request: _Request, exc: BaseException) -> None:
        """Record an exception: a JSON-RPC error the SDK raised (``McpError``) or anything else."""
        error = getattr(exc, "error", None)
        code = getattr(error, "code", None)
        if isinstance(code, int):
            self._error(request, str(code), str(getattr(error, "message", "")), code=str(code))
        else:
            self._error(request, f"{type(exc).__module__}.{type(exc).__qualname__}", str(exc))

    def end(self, request: _Request) -> None:
        """End the span and record the duration; exactly once."""
        if request.ended:
            return
        request.ended = True
        try:
            duration_s = time.perf_counter() - request.start_s
            if request.extra:
                request.span.set_attributes(request.extra)
            labels = {
                key: value
                for key, value in (*request.attributes.items(), *request.extra.items())
                if key in _METRIC_KEYS
            }
            self.durations[request.kind].record(duration_s, labels)
        except Exception:  # never raise into the caller
            _log.debug("Could not record an MCP request's duration.", exc_info=True)
        finally:
            request.span.end()

    @staticmethod
    def _error(request: _Request, error_type: str, description: str, code: str | None = None) -> None:
        request.extra[attr.ERROR_TYPE] = error_type
        if code is not None:
            request.extra[RPC_RESPONSE_STATUS_CODE] = code
        request.span.set_status(Status(StatusCode.ERROR, description or None))


def _request_attributes(method: str, params: Any) -> tuple[dict[str, AttributeValue], str | None]:
    """The attributes a request's method and params give, and the span name's target (tool or prompt)."""
    attributes: dict[str, AttributeValue] = {MCP_METHOD_NAME: method}
    target: str | None = None
    name = getattr(params, "name", None)
    if method == "tools/call":
        attributes[attr.GEN_AI_OPERATION_NAME] = gv.OP_EXECUTE_TOOL
        if isinstance(name, str):
            attributes[attr.GEN_AI_TOOL_NAME] = target = name
    elif method == "prompts/get" and isinstance(name, str):
        attributes[GEN_AI_PROMPT_NAME] = target = name
    elif method in _RESOURCE_METHODS:
        uri = getattr(params, "uri", None)
        if uri is not None:
            attributes[MCP_RESOURCE_URI] = str(uri)
    elif method == "initialize":
        version = getattr(params, "protocolVersion", None)
        if isinstance(version, str | int):
            attributes[MCP_PROTOCOL_VERSION] = str(version)
    return attributes, target


def _tool_error_text(result: Any) -> str:
    """The text of a failed tool result (its text blocks), for the span status description."""
    texts = [getattr(block, "text", None) for block in getattr(result, "content", None) or ()]
    return " ".join(text for text in texts if isinstance(text, str))


# --- client ----------------------------------------------------------------------------------------


def _with_trace_context(request: Any) -> Any:
    """A copy of an SDK request (``ClientRequest``/``ServerRequest``) whose ``params._meta`` also holds the
    current context; the caller's request stays as it was. Validated again, so the params get the type the
    request declares even when the caller gave none."""
    root = request.root
    data = root.model_dump(by_alias=True, exclude_none=True)
    params = data.setdefault("params", {})
    carrier = params.setdefault("_meta", {})
    propagate.inject(carrier)
    return type(request)(type(root).model_validate(data))


def _client_wrapper(
    telemetry: _Telemetry,
) -> Callable[[Callable[..., Awaitable[Any]], Any, tuple[Any, ...], dict[str, Any]], Awaitable[Any]]:
    async def wrapper(
        wrapped: Callable[..., Awaitable[Any]], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        try:
            request = args[0] if args else kwargs["request"]
            method = str(request.root.method)
            traced = telemetry.start(SpanKind.CLIENT, method, request.root.params, None)
        except Exception:
            _log.debug("Could not read an MCP request.", exc_info=True)
            return await wrapped(*args, **kwargs)
        token = otel_context.attach(trace.set_span_in_context(traced.span))
        try:
            try:
                request_id = getattr(instance, "_request_id", None)  # the id send_request is about to use
                if isinstance(request_id, int | str):
                    traced.attributes[JSONRPC_REQUEST_ID] = str(request_id)
                    traced.span.set_attribute(JSONRPC_REQUEST_ID, str(request_id))
                carried = _with_trace_context(request)  # injects the context made current above
                if args:
                    args = (carried, *args[1:])
                else:
                    kwargs = {**kwargs, "request": carried}
            except Exception:
                _log.debug("Could not carry the trace context in an MCP request.", exc_info=True)
            result = await wrapped(*args, **kwargs)
        except BaseException as exc:
            _safely(telemetry.fail, traced, exc)
            telemetry.end(traced)
            raise
        finally:
            otel_context.detach(token)
        _safely(telemetry.answer, traced, method, result)
        telemetry.end(traced)
        return result

    return wrapper


# --- server ----------------------------------------------------------------------------------------


def _parent(meta: Any) -> otel_context.Context | None:
    """The context a request's ``_meta`` carries; None (the ambient context) when it carries no valid one."""
    if meta is None:
        return None
    carrier = meta if isinstance(meta, Mapping) else meta.model_dump(exclude_none=True)
    context = propagate.extract(carrier)
    if not trace.get_current_span(context).get_span_context().is_valid:
        return None
    return context


def _http_attributes(message: Any) -> dict[str, AttributeValue]:
    """Session id and transport of a request that came over HTTP (its metadata holds the HTTP request)."""
    metadata = getattr(message, "message_metadata", None)
    http_request = getattr(metadata, "request_context", None)
    headers = getattr(http_request, "headers", None)
    if headers is None:
        return {}
    attributes: dict[str, AttributeValue] = {NETWORK_TRANSPORT: "tcp", NETWORK_PROTOCOL_NAME: "http"}
    session_id = headers.get(SESSION_HEADER)
    if isinstance(session_id, str) and session_id:
        attributes[MCP_SESSION_ID] = session_id
    return attributes


async def _serve(telemetry: _Telemetry, message: Any, req: Any, call: Callable[[], Awaitable[Any]]) -> Any:
    """Run ``call`` (the SDK handling ``req``, which ``message`` answers) inside a SERVER span."""
    try:
        method = str(req.method)
        parent = _parent(getattr(message, "request_meta", None))
        traced = telemetry.start(SpanKind.SERVER, method, getattr(req, "params", None), parent)
        traced.responder = message
        traced.attributes[JSONRPC_REQUEST_ID] = str(message.request_id)
        traced.attributes.update(_http_attributes(message))
        traced.span.set_attributes(traced.attributes)
    except Exception:
        _log.debug("Could not read an MCP request.", exc_info=True)
        return await call()
    token = otel_context.attach(trace.set_span_in_context(traced.span))
    serving = _SERVING.set(traced)
    try:
        return await call()
    except BaseException as exc:
        _safely(telemetry.fail, traced, exc)
        raise
    finally:
        _SERVING.reset(serving)
        otel_context.detach(token)
        telemetry.end(traced)


def _server_wrapper(
    telemetry: _Telemetry,
) -> Callable[[Callable[..., Awaitable[Any]], Any, tuple[Any, ...], dict[str, Any]], Awaitable[Any]]:
    """For ``Server._handle_request(message, req, …)``: every request but ``initialize``."""

    async def wrapper(
        wrapped: Callable[..., Awaitable[Any]], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        message = args[0] if args else kwargs.get("message")
        req = args[1] if len(args) > 1 else kwargs.get("req")
        return await _serve(telemetry, message, req, lambda: wrapped(*args, **kwargs))

    return wrapper


def _initialize_wrapper(
    telemetry: _Telemetry,
) -> Callable[[Callable[..., Awaitable[Any]], Any, tuple[Any, ...], dict[str, Any]], Awaitable[Any]]:
    """For ``ServerSession._received_request(responder)``, which answers ``initialize`` itself (and passes
    every other request on to ``Server._handle_request``)."""

    async def wrapper(
        wrapped: Callable[..., Awaitable[Any]], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        responder = args[0] if args else kwargs.get("responder")
        req = getattr(getattr(responder, "request", None), "root", None)
        if getattr(req, "method", None) != "initialize":
            return await wrapped(*args, **kwargs)
        return await _serve(telemetry, responder, req, lambda: wrapped(*args, **kwargs))

    return wrapper


def _respond_wrapper(
    telemetry: _Telemetry,
) -> Callable[[Callable[..., Awaitable[Any]], Any, tuple[Any, ...], dict[str, Any]], Awaitable[Any]]:
    async def wrapper(
        wrapped: Callable[..., Awaitable[Any]], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        traced = _SERVING.get()
        if traced is not None and traced.responder is instance:
            response = args[0] if args else kwargs.get("response")
            answer = getattr(response, "root", response)  # ServerResult wraps the result; ErrorData is bare
            _safely(telemetry.answer, traced, str(traced.attributes.get(MCP_METHOD_NAME, "")), answer)
        return await wrapped(*args, **kwargs)

    return wrapper


def _safely(record: Callable[..., None], *args: Any) -> None:
    try:
        record(*args)
    except Exception:
        _log.debug("Could not record an MCP answer.", exc_info=True)


# --- instrumentor ----------------------------------------------------------------------------------


#: What is wrapped: every request a session sends (client side, and a server's own requests), the low-level
#: server's request dispatch and the session's ``initialize`` handling (server side), and the answer sent.
_TARGETS = (
    Target("mcp.shared.session", "BaseSession.send_request", "client"),
    Target("mcp.server.lowlevel.server", "Server._handle_request", "server"),
    Target("mcp.server.session", "ServerSession._received_request", "initialize"),
    Target("mcp.shared.session", "RequestResponder.respond", "respond"),
)


class MCPInstrumentor(ProviderInstrumentor):
    """Client and server spans for the ``mcp`` SDK 1.x, context carried in ``params._meta`` (see the module
    docstring).

    ``instrument()`` accepts ``tracer_provider``, ``meter_provider`` and ``capture_content`` (a
    :class:`~llm_observer.instrumentation.handler.ContentCapture`, its name, or a bool; default: the
    ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` environment variable).
    """

    instruments = _instruments
    targets = _TARGETS

    def _wrapper_factory(self, handler: GenAIHandler, kwargs: Mapping[str, Any]) -> WrapperFactory:
        telemetry = _Telemetry(kwargs)
        wrappers = {
            "client": _client_wrapper(telemetry),
            "server": _server_wrapper(telemetry),
            "initialize": _initialize_wrapper(telemetry),
            "respond": _respond_wrapper(telemetry),
        }

        def make(target: Target, is_async: bool) -> WraptWrapper:
            return wrappers[target.kind]

        return make
