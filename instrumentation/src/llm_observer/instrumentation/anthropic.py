"""OpenTelemetry instrumentation for the ``anthropic`` SDK: ``messages.create`` (plain and ``stream=True``)
and the ``messages.stream()`` helper, sync and async, with tool use, errors and prompt-caching usage.

Usage follows the conventions: ``gen_ai.usage.input_tokens`` = input + cache read + cache creation (the
Messages API reports the three apart), with ``gen_ai.usage.cache_read.input_tokens`` and
``gen_ai.usage.cache_creation.input_tokens`` beside it. ``error.type`` is the API's error type
(``rate_limit_error``, ``overloaded_error``…) when the response says it.

Newer ``anthropic`` releases trace their own API calls with OpenTelemetry. To keep one LLM span per call,
``instrument()`` turns that off for clients made afterwards (``ANTHROPIC_OPEN_TELEMETRY=false``, unless the
variable is already set; ``uninstrument()`` removes it again), and for a client whose own tracing is on
anyway this instrumentation makes no span. ``instrument(prefer_native=True)`` leaves the SDK's tracing on.
The provider name is the client's own (``aws.bedrock`` for Bedrock clients, ``gcp.vertex_ai`` for Vertex).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any

from llm_observer.instrumentation._instrumentor import (
    Operation,
    ProviderInstrumentor,
    Target,
    WrapperFactory,
    stream_wrappers,
)
from llm_observer.instrumentation._streams import AsyncStreamWrapper, Proxy, SyncStreamWrapper
from llm_observer.instrumentation._util import get, given, host_port, integer, put_number, strings
from llm_observer.instrumentation._wrappers import RequestFn, WraptWrapper, read_request
from llm_observer.instrumentation.handler import (
    GenAIHandler,
    LLMCall,
    Message,
    Part,
    message,
    text_part,
    tool_call_part,
    tool_response_part,
)
from llm_observer.semconv import attributes as attr
from llm_observer.semconv import genai_values as gv

__all__ = ["AnthropicInstrumentor"]

_log = logging.getLogger(__name__)

_instruments = ("anthropic >= 0.30.0, < 3",)
_NATIVE_SWITCH = "ANTHROPIC_OPEN_TELEMETRY"
_MODULE = "anthropic.resources.messages"
# ``stream()`` is a plain method in both clients (it returns a manager): its kind says which one it is.
_TARGETS = (
    Target(_MODULE, "Messages.create", "create"),
    Target(_MODULE, "AsyncMessages.create", "create"),
    Target(_MODULE, "Messages.stream", "stream"),
    Target(_MODULE, "AsyncMessages.stream", "async_stream"),
)

_PROVIDERS_BY_CLASS = {
    "AnthropicBedrock": gv.PROVIDER_AWS_BEDROCK,
    "AsyncAnthropicBedrock": gv.PROVIDER_AWS_BEDROCK,
    "AnthropicVertex": gv.PROVIDER_GCP_VERTEX_AI,
    "AsyncAnthropicVertex": gv.PROVIDER_GCP_VERTEX_AI,
}


def _error_type(exc: BaseException) -> str | None:
    kind = getattr(exc, "type", None)
    if isinstance(kind, str) and kind:
        return kind
    body = getattr(exc, "body", None)
    error = get(body, "error", body) if isinstance(body, dict) else None
    kind = get(error, "type") if isinstance(error, dict) else None
    return kind if isinstance(kind, str) and kind != "error" else None


def _native_tracing(client: Any) -> bool:
    # The SDK's own tracer (anthropic >= 2.x): None when its tracing is off for this client.
    if not hasattr(type(client), "_tracer"):
        return False
    try:
        return getattr(client, "_tracer", None) is not None
    except Exception:
        return False


def _request(handler: GenAIHandler) -> RequestFn:
    def request(instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> LLMCall | None:
        client = getattr(instance, "_client", None)
        if _native_tracing(client):
            return None
        provider = getattr(client, "_gen_ai_provider_name", None)
        if not isinstance(provider, str):
            provider = _PROVIDERS_BY_CLASS.get(type(client).__name__, gv.PROVIDER_ANTHROPIC)
        model = kwargs.get("model")
        call = LLMCall(gv.OP_CHAT, provider, model if isinstance(model, str) else None)
        url = str(getattr(client, "base_url", "") or "")
        if url:
            call.server_address, call.server_port = host_port(url)
        call.streaming = kwargs.get("stream") is True
        attributes = call.attributes
        put_number(attributes, attr.GEN_AI_REQUEST_MAX_TOKENS, kwargs.get("max_tokens"))
        put_number(attributes, attr.GEN_AI_REQUEST_TEMPERATURE, kwargs.get("temperature"))
        put_number(attributes, attr.GEN_AI_REQUEST_TOP_P, kwargs.get("top_p"))
        put_number(attributes, attr.GEN_AI_REQUEST_TOP_K, kwargs.get("top_k"))
        stop = strings(kwargs.get("stop_sequences"))
        if stop:
            attributes[attr.GEN_AI_REQUEST_STOP_SEQUENCES] = stop
        if handler.capture_content:
            call.input_messages = [_input_message(item) for item in kwargs.get("messages") or ()]
            system = kwargs.get("system")
            if isinstance(system, str):
                call.system_instructions = [text_part(system)]
            elif given(system):
                call.system_instructions = _blocks_to_parts(system)
            call.tool_definitions = _tool_definitions(kwargs.get("tools"))
        return call

    return request


def _response(call: LLMCall, result: Any) -> None:
    # The request kept the input messages exactly when content is captured.
    _fill_from_message(call, result, call.input_messages is not None)


def _stream_helper(handler: GenAIHandler, is_async: bool) -> WraptWrapper:
    """Wrapper of ``messages.stream()``: the request is sent when its manager is entered."""
    request = _request(handler)
    manager_cls = _AsyncManager if is_async else _SyncManager

    def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        manager = wrapped(*args, **kwargs)
        call = read_request(request, instance, args, kwargs)
        if call is None:
            return manager
        call.streaming = True
        return manager_cls(manager, handler, call)

    return wrapper


def _fill_from_message(call: LLMCall, result: Any, capture: bool) -> None:
    model = getattr(result, "model", None)
    if isinstance(model, str):
        call.response_model = model
    message_id = getattr(result, "id", None)
    if isinstance(message_id, str):
        call.response_id = message_id
    stop_reason = getattr(result, "stop_reason", None)
    if isinstance(stop_reason, str):
        call.finish_reasons = [stop_reason]
    _usage(call, getattr(result, "usage", None), None)
    if capture:
        parts = _blocks_to_parts(getattr(result, "content", None) or ())
        call.output_messages = [message("assistant", parts, finish_reason=stop_reason or "")]


def _usage(call: LLMCall, start: Any, final: Any) -> None:
    """Usage from the message (``start``) and, on streams, the last ``message_delta`` (``final``), whose
    counts win where present."""

    def pick(name: str) -> int | None:
        value = integer(get(final, name)) if final is not None else None
        if value is None and start is not None:
            value = integer(get(start, name))
        return value

    fresh = pick("input_tokens")
    cache_read = pick("cache_read_input_tokens")
    cache_creation = pick("cache_creation_input_tokens")
    if fresh is not None or cache_read is not None or cache_creation is not None:
        call.input_tokens = (fresh or 0) + (cache_read or 0) + (cache_creation or 0)
    call.output_tokens = pick("output_tokens")
    if cache_read is not None:
        call.cache_read_tokens = cache_read
    if cache_creation is not None:
        call.cache_creation_tokens = cache_creation


def _blocks_to_parts(blocks: Any) -> list[Part]:
    parts: list[Part] = []
    for block in blocks:
        kind = get(block, "type")
        if kind == "text":
            parts.append(text_part(get(block, "text") or ""))
        elif kind in ("tool_use", "server_tool_use"):
            parts.append(tool_call_part(get(block, "id"), get(block, "name"), get(block, "input")))
        elif kind == "tool_result":
            content = get(block, "content")
            if not isinstance(content, str) and content is not None:
                content = [
                    get(item, "text") if get(item, "type") == "text" else get(item, "type")
                    for item in content
                ]
            parts.append(tool_response_part(get(block, "tool_use_id"), content))
        elif kind in ("thinking", "redacted_thinking"):
            parts.append({"type": "reasoning", "content": get(block, "thinking") or ""})
        elif kind in ("image", "document"):
            source = get(block, "source")
            if get(source, "type") == "url":
                parts.append({"type": "uri", "modality": kind, "uri": get(source, "url")})
            else:
                parts.append({"type": "blob", "modality": kind, "mime_type": get(source, "media_type")})
        else:
            parts.append({"type": str(kind)})
    return parts


def _input_message(item: Any) -> Message:
    role = get(item, "role") or "user"
    content = get(item, "content")
    parts = [text_part(content)] if isinstance(content, str) else _blocks_to_parts(content or ())
    if role == "user" and parts and all(part["type"] == "tool_call_response" for part in parts):
        role = "tool"
    return message(role, parts)


def _tool_definitions(tools: Any) -> list[dict[str, Any]] | None:
    if not given(tools):
        return None
    definitions: list[dict[str, Any]] = []
    for tool in tools:
        definition: dict[str, Any] = {"type": get(tool, "type") or "function", "name": get(tool, "name")}
        if definition["type"] == "custom":
            definition["type"] = "function"
        description = get(tool, "description")
        if description:
            definition["description"] = description
        schema = get(tool, "input_schema")
        if schema is not None:
            definition["parameters"] = schema
        definitions.append(definition)
    return definitions or None


class _EventsState:
    """Raw ``RawMessageStreamEvent`` streams: keeps the ``message_start`` message and the last
    ``message_delta`` (references only); content blocks are accumulated only when content is captured."""

    _self_start: Any
    _self_delta: Any
    _self_blocks: list[list[Any]] | None
    _self_handler: GenAIHandler
    _self_call: LLMCall

    def _llmo_init(self) -> None:
        self._self_start = None
        self._self_delta = None
        self._self_blocks = [] if self._self_handler.capture_content else None

    def _llmo_on_chunk(self, event: Any) -> None:
        kind = event.type
        if kind == "message_start":
            self._self_start = event.message
        elif kind == "message_delta":
            self._self_delta = event
        elif self._self_blocks is not None:
            if kind == "content_block_start":
                self._self_blocks.append([event.content_block, []])
            elif kind == "content_block_delta" and self._self_blocks:
                delta = event.delta
                fragment = (
                    getattr(delta, "text", None)
                    or getattr(delta, "partial_json", None)
                    or getattr(delta, "thinking", None)
                )
                if fragment:
                    self._self_blocks[-1][1].append(fragment)

    def _llmo_on_end(self) -> None:
        call = self._self_call
        start = self._self_start
        delta = self._self_delta
        if start is not None:
            if isinstance(start.model, str):
                call.response_model = start.model
            if isinstance(start.id, str):
                call.response_id = start.id
        stop_reason = getattr(delta.delta, "stop_reason", None) if delta is not None else None
        if isinstance(stop_reason, str):
            call.finish_reasons = [stop_reason]
        _usage(call, getattr(start, "usage", None), getattr(delta, "usage", None))
        if self._self_blocks is not None:
            parts: list[Part] = []
            for block, fragments in self._self_blocks:
                text = "".join(fragments)
                kind = getattr(block, "type", None)
                if kind == "text":
                    parts.append(text_part((getattr(block, "text", "") or "") + text))
                elif kind in ("tool_use", "server_tool_use"):
                    parts.append(tool_call_part(block.id, block.name, text or getattr(block, "input", None)))
                elif kind == "thinking":
                    parts.append({"type": "reasoning", "content": text})
                else:
                    parts.append({"type": str(kind)})
            call.output_messages = [message("assistant", parts, finish_reason=stop_reason or "")]


class _SyncEvents(_EventsState, SyncStreamWrapper):
    pass


class _AsyncEvents(_EventsState, AsyncStreamWrapper):
    pass


class _SyncManager(Proxy):
    """Proxy of ``MessageStreamManager``: the span starts when the request is sent on ``__enter__``; the
    raw event stream inside the ``MessageStream`` is wrapped so its events (and its end) reach the span."""

    def __init__(self, wrapped: Any, handler: GenAIHandler, call: LLMCall) -> None:
        super().__init__(wrapped)
        self._self_handler = handler
        self._self_call = call

    def __enter__(self) -> Any:
        handler, call = self._self_handler, self._self_call
        handler.start(call)
        try:
            stream = self.__wrapped__.__enter__()
        except BaseException as exc:
            handler.detach(call)
            handler.fail(call, exc, _error_type(exc))
            raise
        handler.detach(call)
        _wrap_raw(stream, _SyncEvents, handler, call)
        return stream

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> Any:
        try:
            return self.__wrapped__.__exit__(exc_type, exc, tb)
        finally:
            _end_if_open(self._self_handler, self._self_call, exc)


class _AsyncManager(Proxy):
    """Proxy of ``AsyncMessageStreamManager`` (see :class:`_SyncManager`)."""

    def __init__(self, wrapped: Any, handler: GenAIHandler, call: LLMCall) -> None:
        super().__init__(wrapped)
        self._self_handler = handler
        self._self_call = call

    async def __aenter__(self) -> Any:
        handler, call = self._self_handler, self._self_call
        handler.start(call)
        try:
            stream = await self.__wrapped__.__aenter__()
        except BaseException as exc:
            handler.detach(call)
            handler.fail(call, exc, _error_type(exc))
            raise
        handler.detach(call)
        _wrap_raw(stream, _AsyncEvents, handler, call)
        return stream

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> Any:
        try:
            return await self.__wrapped__.__aexit__(exc_type, exc, tb)
        finally:
            _end_if_open(self._self_handler, self._self_call, exc)


def _wrap_raw(stream: Any, cls: type[Any], handler: GenAIHandler, call: LLMCall) -> None:
    raw = getattr(stream, "_raw_stream", None)
    if raw is None:
        return  # an SDK without the attribute: the span ends when the manager exits, without usage
    try:
        stream._raw_stream = cls(raw, handler, call, _error_type)
    except Exception:
        _log.debug("Could not wrap the Anthropic message stream.", exc_info=True)


def _end_if_open(handler: GenAIHandler, call: LLMCall, exc: BaseException | None) -> None:
    if call.ended:
        return
    if exc is not None and isinstance(exc, Exception):
        handler.fail(call, exc, _error_type(exc))
    else:
        handler.finish(call)


class AnthropicInstrumentor(ProviderInstrumentor):
    """Instruments the ``anthropic`` SDK. ``instrument()`` also accepts ``prefer_native`` (see module
    docstring)."""

    instruments = _instruments
    targets = _TARGETS
    operations = {"create": Operation(_request, _response, stream_wrappers(_SyncEvents, _AsyncEvents))}
    error_type = staticmethod(_error_type)
    _set_switch = False

    def _instrument(self, **kwargs: Any) -> None:
        if not kwargs.get("prefer_native") and _NATIVE_SWITCH not in os.environ:
            os.environ[_NATIVE_SWITCH] = "false"
            self._set_switch = True
        super()._instrument(**kwargs)

    def _uninstrument(self, **kwargs: Any) -> None:
        super()._uninstrument(**kwargs)
        if self._set_switch:
            os.environ.pop(_NATIVE_SWITCH, None)
            self._set_switch = False

    def _wrapper_factory(self, handler: GenAIHandler, kwargs: Mapping[str, Any]) -> WrapperFactory:
        make_call = super()._wrapper_factory(handler, kwargs)

        def make(target: Target, is_async: bool) -> WraptWrapper:
            if target.kind == "create":
                return make_call(target, is_async)
            return _stream_helper(handler, is_async=target.kind == "async_stream")

        return make
