"""OpenTelemetry instrumentation for the Cohere Python SDK (``cohere``).

Instruments, for the sync and async clients:

- chat: the v2 API (``ClientV2.chat`` / ``chat_stream``, also reached as ``Client.v2``) and the v1 API
  (``Client.chat`` / ``chat_stream``) — span ``chat {model}``;
- embed (v1 and v2) — span ``embeddings {model}``;
- rerank (v1 and v2) — span ``rerank {model}`` (``rerank`` is not an operation of the conventions yet; it is
  the name peers use).

Provider name ``cohere``. Token counts are Cohere's *billed* units (what is charged), falling back to the raw
token counts when the response carries no billed units; ``usage.cached_tokens`` becomes
``gen_ai.usage.cache_read.input_tokens``. Streams report usage from their final ``message-end`` (v2) or
``stream-end`` (v1) event.

The SDK binds ``chat``/``chat_stream`` onto each client instance when the client is made, so clients made
before :meth:`CohereInstrumentor.instrument` stay uninstrumented, and clients made while instrumented stop
reporting once :meth:`~CohereInstrumentor.uninstrument` ran.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from opentelemetry.util.types import AttributeValue

from llm_observer.instrumentation._content import json_able
from llm_observer.instrumentation._instrumentor import Operation, ProviderInstrumentor, Target, stream_states
from llm_observer.instrumentation._util import host_port, put_numbers
from llm_observer.instrumentation._wrappers import RequestFn
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

__all__ = ["CohereInstrumentor"]

_instruments = ("cohere >= 5.13.0, < 8",)

# kind picks the request/response translators.
_V2 = "cohere.v2.client"
_V1 = "cohere.base_client"
_TARGETS = (
    Target(_V2, "V2Client.chat", "chat_v2"),
    Target(_V2, "V2Client.chat_stream", "chat_v2_stream"),
    Target(_V2, "V2Client.embed", "embed"),
    Target(_V2, "V2Client.rerank", "rerank"),
    Target(_V2, "AsyncV2Client.chat", "chat_v2"),
    Target(_V2, "AsyncV2Client.chat_stream", "chat_v2_stream"),
    Target(_V2, "AsyncV2Client.embed", "embed"),
    Target(_V2, "AsyncV2Client.rerank", "rerank"),
    Target(_V1, "BaseCohere.chat", "chat_v1"),
    Target(_V1, "BaseCohere.chat_stream", "chat_v1_stream"),
    Target(_V1, "BaseCohere.rerank", "rerank"),
    Target(_V1, "AsyncBaseCohere.chat", "chat_v1"),
    Target(_V1, "AsyncBaseCohere.chat_stream", "chat_v1_stream"),
    Target(_V1, "AsyncBaseCohere.rerank", "rerank"),
    # Client.embed batches texts over a thread pool and calls BaseCohere.embed per batch: wrapping the
    # public override gives one span per user call, in the caller's context.
    Target("cohere.client", "Client.embed", "embed"),
    Target("cohere.client", "AsyncClient.embed", "embed"),
)


def _request(
    translate: Callable[[GenAIHandler, Mapping[str, Any]], LLMCall], streaming: bool = False
) -> Callable[[GenAIHandler], RequestFn]:
    """The request builder of one kind: ``translate`` the arguments, then the client's server."""

    def build(handler: GenAIHandler) -> RequestFn:
        def request(instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> LLMCall | None:
            # Clients made while instrumented keep the wrapper bound on the instance: stay quiet once
            # uninstrumented.
            if not CohereInstrumentor._active:
                return None
            call = translate(handler, kwargs)
            call.streaming = streaming
            _set_server(call, instance)
            return call

        return request

    return build


# --- shared helpers ------------------------------------------------------------------------------------


def _get(obj: Any, key: str) -> Any:
    """A field of a pydantic model or a dict (users pass either), None when absent or omitted."""
    if obj is None:
        return None
    value = obj.get(key) if isinstance(obj, Mapping) else getattr(obj, key, None)
    return None if value is Ellipsis else value


def _given(kwargs: Mapping[str, Any], key: str) -> Any:
    value = kwargs.get(key)
    return None if value is Ellipsis else value


_PARAMS = (
    ("temperature", attr.GEN_AI_REQUEST_TEMPERATURE),
    ("p", attr.GEN_AI_REQUEST_TOP_P),
    ("k", attr.GEN_AI_REQUEST_TOP_K),
    ("max_tokens", attr.GEN_AI_REQUEST_MAX_TOKENS),
    ("frequency_penalty", attr.GEN_AI_REQUEST_FREQUENCY_PENALTY),
    ("presence_penalty", attr.GEN_AI_REQUEST_PRESENCE_PENALTY),
    ("seed", attr.GEN_AI_REQUEST_SEED),
)


def _set_params(call: LLMCall, kwargs: Mapping[str, Any]) -> None:
    put_numbers(call.attributes, kwargs, _PARAMS)
    stop = _given(kwargs, "stop_sequences")
    if stop:
        call.attributes[attr.GEN_AI_REQUEST_STOP_SEQUENCES] = [str(item) for item in stop]


def _set_server(call: LLMCall, instance: Any) -> None:
    wrapper = getattr(instance, "_client_wrapper", None)
    get_base_url = getattr(wrapper, "get_base_url", None)
    if get_base_url is None:
        return
    call.server_address, call.server_port = host_port(str(get_base_url()))


def _usage(call: LLMCall, usage: Any) -> None:
    """Copy a v2 ``Usage`` or v1 ``ApiMeta`` (both have billed_units / tokens) into ``call``."""
    if usage is None:
        return
    billed = _get(usage, "billed_units")
    tokens = _get(usage, "tokens")
    input_tokens = _get(billed, "input_tokens")
    if input_tokens is None:
        input_tokens = _get(tokens, "input_tokens")
    output_tokens = _get(billed, "output_tokens")
    if output_tokens is None:
        output_tokens = _get(tokens, "output_tokens")
    if input_tokens is not None:
        call.input_tokens = int(input_tokens)
    if output_tokens is not None:
        call.output_tokens = int(output_tokens)
    cached = _get(usage, "cached_tokens")
    if cached is not None:
        call.cache_read_tokens = int(cached)
    search_units = _get(billed, "search_units")
    if search_units is not None:
        _response_attribute(call, "cohere.usage.search_units", int(search_units))


def _response_attribute(call: LLMCall, key: str, value: AttributeValue) -> None:
    if call.response_attributes is None:
        call.response_attributes = {}
    call.response_attributes[key] = value


def _finish_reason(reason: Any) -> str:
    """Map Cohere's finish reasons onto the conventions' output-message values."""
    text = str(reason)
    return {
        "COMPLETE": "stop",
        "STOP_SEQUENCE": "stop",
        "MAX_TOKENS": "length",
        "TOOL_CALL": "tool_call",
        "ERROR": "error",
        "TIMEOUT": "error",
    }.get(text, text.lower())


def _text_of(content: Any) -> list[Part]:
    """Parts of a message ``content``: a string or a list of content items."""
    if content is None:
        return []
    if isinstance(content, str):
        return [text_part(content)]
    parts: list[Part] = []
    for item in content:
        if isinstance(item, str):
            parts.append(text_part(item))
            continue
        kind = _get(item, "type")
        if kind == "text":
            parts.append(text_part(str(_get(item, "text") or "")))
        elif kind == "thinking":
            parts.append({"type": "reasoning", "content": str(_get(item, "thinking") or "")})
        elif kind == "image_url":
            parts.append(
                {"type": "uri", "modality": "image", "uri": str(_get(_get(item, "image_url"), "url"))}
            )
        elif kind == "document":
            parts.append({"type": "document", "document": _get(item, "document")})
        else:
            parts.append({"type": str(kind)})
    return parts


def _tool_definitions_v2(tools: Any) -> list[dict[str, Any]]:
    definitions: list[dict[str, Any]] = []
    for tool in tools or ():
        function = _get(tool, "function")
        definitions.append(
            {
                "type": _get(tool, "type") or "function",
                "name": _get(function, "name"),
                "description": _get(function, "description"),
                "parameters": _get(function, "parameters"),
            }
        )
    return definitions


# --- v2 chat -------------------------------------------------------------------------------------------


def _request_chat_v2(handler: GenAIHandler, kwargs: Mapping[str, Any]) -> LLMCall:
    call = LLMCall(gv.OP_CHAT, gv.PROVIDER_COHERE, _given(kwargs, "model"))
    _set_params(call, kwargs)
    if handler.capture_content:
        call.input_messages = [_input_message_v2(item) for item in _given(kwargs, "messages") or ()]
        tools = _given(kwargs, "tools")
        if tools:
            call.tool_definitions = _tool_definitions_v2(tools)
    return call


def _input_message_v2(item: Any) -> Message:
    role = str(_get(item, "role") or "user")
    if role == "tool":
        parts: list[Part] = [tool_response_part(_get(item, "tool_call_id"), json_able(_get(item, "content")))]
        return message(role, parts)
    parts = []
    plan = _get(item, "tool_plan")
    if plan:
        parts.append({"type": "reasoning", "content": str(plan)})
    parts.extend(_text_of(_get(item, "content")))
    for tool_call in _get(item, "tool_calls") or ():
        function = _get(tool_call, "function")
        parts.append(
            tool_call_part(_get(tool_call, "id"), _get(function, "name"), _get(function, "arguments"))
        )
    return message(role, parts)


def _response_chat_v2(call: LLMCall, result: Any) -> None:
    call.response_id = _get(result, "id")
    reason = _get(result, "finish_reason")
    if reason is not None:
        call.finish_reasons = [str(reason)]
    _usage(call, _get(result, "usage"))
    if call.input_messages is not None:  # content is captured
        reply = _get(result, "message")
        parts: list[Part] = []
        plan = _get(reply, "tool_plan")
        if plan:
            parts.append({"type": "reasoning", "content": str(plan)})
        parts.extend(_text_of(_get(reply, "content")))
        for tool_call in _get(reply, "tool_calls") or ():
            function = _get(tool_call, "function")
            parts.append(
                tool_call_part(_get(tool_call, "id"), _get(function, "name"), _get(function, "arguments"))
            )
        call.output_messages = [message("assistant", parts, finish_reason=_finish_reason(reason))]


class _StreamStateV2:
    """What a v2 stream wrapper keeps: references to the events that matter, text only when captured."""

    __slots__ = ("capture", "end", "plan", "start", "text", "tool_calls")

    def __init__(self, capture: bool) -> None:
        self.capture = capture
        self.start: Any = None
        self.end: Any = None
        self.text: list[str] = []
        self.plan: list[str] = []
        self.tool_calls: list[list[Any]] = []  # [id, name, [argument pieces]]

    def on_chunk(self, event: Any) -> None:
        kind = _get(event, "type")
        if kind == "message-end":
            self.end = event
        elif kind == "message-start":
            self.start = event
        elif not self.capture:
            return
        elif kind == "content-delta":
            content = _get(_get(_get(event, "delta"), "message"), "content")
            text = _get(content, "text")
            if text:
                self.text.append(text)
        elif kind == "tool-plan-delta":
            plan = _get(_get(_get(event, "delta"), "message"), "tool_plan")
            if plan:
                self.plan.append(plan)
        elif kind == "tool-call-start":
            tool_call = _get(_get(_get(event, "delta"), "message"), "tool_calls")
            function = _get(tool_call, "function")
            arguments = _get(function, "arguments")
            self.tool_calls.append(
                [_get(tool_call, "id"), _get(function, "name"), [arguments] if arguments else []]
            )
        elif kind == "tool-call-delta" and self.tool_calls:
            tool_call = _get(_get(_get(event, "delta"), "message"), "tool_calls")
            arguments = _get(_get(tool_call, "function"), "arguments")
            if arguments:
                self.tool_calls[-1][2].append(arguments)

    def finish(self, call: LLMCall) -> None:
        if self.start is not None:
            call.response_id = _get(self.start, "id")
        delta = _get(self.end, "delta")
        reason = _get(delta, "finish_reason")
        if reason is not None:
            call.finish_reasons = [str(reason)]
        _usage(call, _get(delta, "usage"))
        if self.capture:
            parts: list[Part] = []
            if self.plan:
                parts.append({"type": "reasoning", "content": "".join(self.plan)})
            if self.text:
                parts.append(text_part("".join(self.text)))
            for call_id, name, pieces in self.tool_calls:
                parts.append(tool_call_part(call_id, name, "".join(pieces)))
            extra = {"finish_reason": _finish_reason(reason)} if reason is not None else {}
            call.output_messages = [message("assistant", parts, **extra)]


# --- v1 chat -------------------------------------------------------------------------------------------


def _request_chat_v1(handler: GenAIHandler, kwargs: Mapping[str, Any]) -> LLMCall:
    call = LLMCall(gv.OP_CHAT, gv.PROVIDER_COHERE, _given(kwargs, "model"))
    _set_params(call, kwargs)
    if handler.capture_content:
        messages: list[Message] = []
        for turn in _given(kwargs, "chat_history") or ():
            messages.append(_history_message_v1(turn))
        for result in _given(kwargs, "tool_results") or ():
            tool_call = _get(result, "call")
            messages.append(
                message(
                    "tool", [tool_response_part(_get(tool_call, "name"), json_able(_get(result, "outputs")))]
                )
            )
        text = _given(kwargs, "message")
        if text:
            messages.append(message("user", [text_part(str(text))]))
        call.input_messages = messages
        preamble = _given(kwargs, "preamble")
        if preamble:
            call.system_instructions = [text_part(str(preamble))]
        tools = _given(kwargs, "tools")
        if tools:
            call.tool_definitions = [
                {
                    "type": "function",
                    "name": _get(tool, "name"),
                    "description": _get(tool, "description"),
                    "parameters": json_able(_get(tool, "parameter_definitions")),
                }
                for tool in tools
            ]
    return call


_V1_ROLES = {"USER": "user", "CHATBOT": "assistant", "SYSTEM": "system", "TOOL": "tool"}


def _history_message_v1(turn: Any) -> Message:
    role = _V1_ROLES.get(str(_get(turn, "role")), str(_get(turn, "role")).lower())
    parts: list[Part] = []
    text = _get(turn, "message")
    if text:
        parts.append(text_part(str(text)))
    for tool_call in _get(turn, "tool_calls") or ():
        parts.append(tool_call_part(None, _get(tool_call, "name"), json_able(_get(tool_call, "parameters"))))
    for result in _get(turn, "tool_results") or ():
        parts.append(
            tool_response_part(_get(_get(result, "call"), "name"), json_able(_get(result, "outputs")))
        )
    return message(role, parts)


def _response_chat_v1(call: LLMCall, result: Any) -> None:
    call.response_id = _get(result, "response_id") or _get(result, "generation_id")
    reason = _get(result, "finish_reason")
    if reason is not None:
        call.finish_reasons = [str(reason)]
    _usage(call, _get(result, "meta"))
    if call.input_messages is not None:
        parts: list[Part] = []
        text = _get(result, "text")
        if text:
            parts.append(text_part(str(text)))
        for tool_call in _get(result, "tool_calls") or ():
            parts.append(
                tool_call_part(None, _get(tool_call, "name"), json_able(_get(tool_call, "parameters")))
            )
        extra = {"finish_reason": _finish_reason(reason)} if reason is not None else {}
        call.output_messages = [message("assistant", parts, **extra)]


class _StreamStateV1:
    __slots__ = ("end", "generation_id")

    def __init__(self) -> None:
        self.generation_id: str | None = None
        self.end: Any = None

    def on_chunk(self, event: Any) -> None:
        kind = _get(event, "event_type")
        if kind == "stream-end":
            self.end = event
        elif kind == "stream-start":
            self.generation_id = _get(event, "generation_id")

    def finish(self, call: LLMCall) -> None:
        if self.end is None:
            call.response_id = self.generation_id
            return
        # stream-end carries the whole response: text, tool calls, usage.
        _response_chat_v1(call, _get(self.end, "response"))
        reason = _get(self.end, "finish_reason")
        if reason is not None:
            call.finish_reasons = [str(reason)]


# --- embed and rerank ----------------------------------------------------------------------------------


def _request_embed(handler: GenAIHandler, kwargs: Mapping[str, Any]) -> LLMCall:
    call = LLMCall(gv.OP_EMBEDDINGS, gv.PROVIDER_COHERE, _given(kwargs, "model"))
    types = _given(kwargs, "embedding_types")
    if types:
        call.attributes[gv.GEN_AI_REQUEST_ENCODING_FORMATS] = [str(item) for item in types]
    dimension = _given(kwargs, "output_dimension")
    if isinstance(dimension, int):
        call.attributes[gv.GEN_AI_EMBEDDINGS_DIMENSION_COUNT] = dimension
    return call


def _response_embed(call: LLMCall, result: Any) -> None:
    call.response_id = _get(result, "id")
    _usage(call, _get(result, "meta"))
    embeddings = _get(result, "embeddings")
    if embeddings is not None and not isinstance(embeddings, list):
        # v2 answers by type: take the first type that is present (float_, int8…).
        for value in (embeddings.model_dump() if hasattr(embeddings, "model_dump") else embeddings).values():
            if value:
                embeddings = value
                break
    if isinstance(embeddings, list) and embeddings and isinstance(embeddings[0], list):
        _response_attribute(call, gv.GEN_AI_EMBEDDINGS_DIMENSION_COUNT, len(embeddings[0]))


def _request_rerank(handler: GenAIHandler, kwargs: Mapping[str, Any]) -> LLMCall:
    call = LLMCall(gv.OP_RERANK, gv.PROVIDER_COHERE, _given(kwargs, "model"))
    top_n = _given(kwargs, "top_n")
    if isinstance(top_n, int):
        call.attributes["cohere.request.top_n"] = top_n
    return call


def _response_rerank(call: LLMCall, result: Any) -> None:
    call.response_id = _get(result, "id")
    _usage(call, _get(result, "meta"))


class CohereInstrumentor(ProviderInstrumentor):
    """Instruments the ``cohere`` SDK: chat (v1, v2), embed and rerank, sync and async, with streams."""

    instruments = _instruments
    targets = _TARGETS
    # Whether instrumented: read by the wrappers that clients made while instrumented keep.
    _active: ClassVar[bool] = False
    operations = {
        "chat_v2": Operation(_request(_request_chat_v2), _response_chat_v2),
        "chat_v2_stream": Operation(
            _request(_request_chat_v2, streaming=True), _response_chat_v2, stream_states(_StreamStateV2)
        ),
        "chat_v1": Operation(_request(_request_chat_v1), _response_chat_v1),
        # stream-end carries the whole response, content or not: nothing here depends on capture.
        "chat_v1_stream": Operation(
            _request(_request_chat_v1, streaming=True),
            _response_chat_v1,
            stream_states(lambda _capture: _StreamStateV1()),
        ),
        "embed": Operation(_request(_request_embed), _response_embed),
        "rerank": Operation(_request(_request_rerank), _response_rerank),
    }

    def _instrument(self, **kwargs: Any) -> None:
        type(self)._active = True
        super()._instrument(**kwargs)

    def _uninstrument(self, **kwargs: Any) -> None:
        type(self)._active = False
        super()._uninstrument(**kwargs)
