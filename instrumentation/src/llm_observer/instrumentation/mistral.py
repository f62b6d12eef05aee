"""OpenTelemetry instrumentation for the Mistral AI Python SDK (``mistralai``).

Instruments ``client.chat.complete`` / ``complete_async`` (span ``chat {model}``), ``client.chat.stream`` /
``stream_async`` (the same, streamed; usage from the final chunk) and ``client.embeddings.create`` /
``create_async`` (span ``embeddings {model}``). Works with the SDK's ``mistralai.client`` layout (2.x and later)
and the older top-level one (1.x). Provider name ``mistral_ai``.

The SDK has telemetry of its own, off unless ``MISTRAL_SDK_TELEMETRY`` (or the client's ``telemetry`` setting)
turns it on; with both on, each call is reported twice, once by each.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from llm_observer.instrumentation._chat_completions import ChatChunkState, chat_usage
from llm_observer.instrumentation._content import image_url_part, merge_text_parts
from llm_observer.instrumentation._instrumentor import Operation, ProviderInstrumentor, Target, stream_states
from llm_observer.instrumentation._util import (
    get,
    given,
    host_port,
    integer,
    put_numbers,
    put_strings,
    status_code,
)
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

__all__ = ["MistralInstrumentor"]

_instruments = ("mistralai >= 1.2.0, < 4",)
# 2.x moved the resources under mistralai.client; 1.x keeps them at the top level.
_CHAT, _CHAT_1X = "mistralai.client.chat", ("mistralai.chat",)
_EMBEDDINGS, _EMBEDDINGS_1X = "mistralai.client.embeddings", ("mistralai.embeddings",)
_TARGETS = (
    Target(_CHAT, "Chat.complete", "chat", _CHAT_1X),
    Target(_CHAT, "Chat.complete_async", "chat", _CHAT_1X),
    Target(_CHAT, "Chat.stream", "chat_stream", _CHAT_1X),
    Target(_CHAT, "Chat.stream_async", "chat_stream", _CHAT_1X),
    Target(_EMBEDDINGS, "Embeddings.create", "embed", _EMBEDDINGS_1X),
    Target(_EMBEDDINGS, "Embeddings.create_async", "embed", _EMBEDDINGS_1X),
)


def _server(call: LLMCall, instance: Any, kwargs: dict[str, Any]) -> None:
    url = kwargs.get("server_url")
    if not url:
        configuration = getattr(instance, "sdk_configuration", None)
        details = getattr(configuration, "get_server_details", None)
        if details is not None:
            url = details()[0]
    if isinstance(url, str) and url:
        call.server_address, call.server_port = host_port(url)


def _model(kwargs: dict[str, Any]) -> str | None:
    model = kwargs.get("model")
    return str(model) if given(model) else None


# --- chat ----------------------------------------------------------------------------------------------

_CHAT_PARAMS = (
    ("temperature", attr.GEN_AI_REQUEST_TEMPERATURE),
    ("top_p", attr.GEN_AI_REQUEST_TOP_P),
    ("max_tokens", attr.GEN_AI_REQUEST_MAX_TOKENS),
    ("random_seed", attr.GEN_AI_REQUEST_SEED),
    ("presence_penalty", attr.GEN_AI_REQUEST_PRESENCE_PENALTY),
    ("frequency_penalty", attr.GEN_AI_REQUEST_FREQUENCY_PENALTY),
    ("n", attr.GEN_AI_REQUEST_CHOICE_COUNT),
)


def _chat_request(handler: GenAIHandler, streaming: bool = False) -> RequestFn:
    def request(instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> LLMCall:
        call = LLMCall(gv.OP_CHAT, gv.PROVIDER_MISTRAL_AI, _model(kwargs))
        call.streaming = streaming
        _server(call, instance, kwargs)
        put_numbers(call.attributes, kwargs, _CHAT_PARAMS)
        put_strings(call.attributes, attr.GEN_AI_REQUEST_STOP_SEQUENCES, kwargs.get("stop"))
        response_format = kwargs.get("response_format")
        kind = get(response_format, "type") if given(response_format) else None
        if kind in ("json_object", "json_schema"):
            call.attributes[gv.GEN_AI_OUTPUT_TYPE] = gv.OUTPUT_TYPE_JSON
        if handler.capture_content:
            call.input_messages = [_chat_message(item) for item in kwargs.get("messages") or ()]
            call.tool_definitions = _tool_definitions(kwargs.get("tools"))
        return call

    return request


def _content_parts(content: Any) -> list[Part]:
    if not given(content) or content is None:
        return []
    if isinstance(content, str):
        return [text_part(content)] if content else []
    parts: list[Part] = []
    for chunk in content:
        kind = get(chunk, "type")
        if kind == "text":
            parts.append(text_part(str(get(chunk, "text") or "")))
        elif kind == "thinking":
            thoughts = get(chunk, "thinking") or ()
            text = "".join(str(get(item, "text") or "") for item in thoughts)
            parts.append({"type": "reasoning", "content": text})
        elif kind == "image_url":
            image = get(chunk, "image_url")
            parts.append(image_url_part(image if isinstance(image, str) else get(image, "url")))
        else:
            parts.append({"type": str(kind)})
    return parts


def _tool_call_parts(tool_calls: Any) -> list[Part]:
    parts: list[Part] = []
    if not given(tool_calls) or tool_calls is None:
        return parts
    for tool_call in tool_calls:
        function = get(tool_call, "function")
        call_id = get(tool_call, "id")
        parts.append(
            tool_call_part(
                call_id if given(call_id) else None, get(function, "name"), get(function, "arguments")
            )
        )
    return parts


def _chat_message(item: Any) -> Message:
    role = str(get(item, "role") or "user")
    if role == "tool":
        call_id = get(item, "tool_call_id")
        content = get(item, "content")
        response = (
            content if isinstance(content, str) else [part.get("content") for part in _content_parts(content)]
        )
        return message("tool", [tool_response_part(call_id if given(call_id) else None, response)])
    parts = _content_parts(get(item, "content"))
    parts.extend(_tool_call_parts(get(item, "tool_calls")))
    return message(role, parts)


def _tool_definitions(tools: Any) -> list[dict[str, Any]] | None:
    if not given(tools) or not tools:
        return None
    definitions = []
    for tool in tools:
        function = get(tool, "function")
        parameters = get(function, "parameters")
        definitions.append(
            {
                "type": str(get(tool, "type") or "function"),
                "name": get(function, "name"),
                "description": get(function, "description") if given(get(function, "description")) else None,
                "parameters": parameters if given(parameters) else None,
            }
        )
    return definitions


def _finish_reason(reason: Any) -> str:
    text = str(reason or "")
    return {"tool_calls": "tool_call", "model_length": "length"}.get(text, text)


def _usage(call: LLMCall, usage: Any) -> None:
    if usage is None or not given(usage):
        return
    chat_usage(call, usage)
    details = get(usage, "prompt_tokens_details")
    cached = integer(get(details, "cached_tokens")) if details is not None else None
    if cached is not None:
        call.cache_read_tokens = cached


def _chat_response(call: LLMCall, result: Any) -> None:
    call.response_id = get(result, "id") or None
    call.response_model = get(result, "model") or None
    _usage(call, get(result, "usage"))
    choices = get(result, "choices") or ()
    reasons = [str(get(choice, "finish_reason")) for choice in choices if given(get(choice, "finish_reason"))]
    if reasons:
        call.finish_reasons = reasons
    if call.input_messages is not None:
        outputs = []
        for choice in choices:
            reply = get(choice, "message")
            parts = _content_parts(get(reply, "content"))
            parts.extend(_tool_call_parts(get(reply, "tool_calls")))
            outputs.append(
                message("assistant", parts, finish_reason=_finish_reason(get(choice, "finish_reason")))
            )
        call.output_messages = outputs


class _ChatStreamState(ChatChunkState):
    """Stream events wrap the chunk in ``data``; text pieces are content parts (text and thinking);
    tool calls are keyed by their ``index``, else by their position in the delta."""

    __slots__ = ()

    def on_chunk(self, event: Any) -> None:
        chunk = get(event, "data")
        if chunk is None:
            return
        if self.first is None:
            self.first = chunk
        usage = get(chunk, "usage")
        if given(usage) and usage is not None:
            self.usage = usage
        for choice in get(chunk, "choices") or ():
            index = integer(get(choice, "index")) or 0
            reason = get(choice, "finish_reason")
            if given(reason) and reason is not None:
                self.reasons[index] = str(reason)
            if self.texts is None or self.tools is None:
                continue
            delta = get(choice, "delta")
            self.texts.setdefault(index, []).extend(_content_parts(get(delta, "content")))
            tool_calls = get(delta, "tool_calls")
            for position, tool_call in enumerate(tool_calls if given(tool_calls) and tool_calls else ()):
                key = integer(get(tool_call, "index"))
                slot = self.tools.setdefault(index, {}).setdefault(
                    position if key is None else key, [None, None, []]
                )
                call_id = get(tool_call, "id")
                if given(call_id) and call_id and call_id != "null":
                    slot[0] = call_id
                function = get(tool_call, "function")
                slot[1] = slot[1] or get(function, "name")
                arguments = get(function, "arguments")
                if arguments:
                    slot[2].append(arguments)

    def _usage(self, call: LLMCall, usage: Any) -> None:
        _usage(call, usage)

    def _finish_reason(self, reason: Any) -> str:
        return _finish_reason(reason)

    def _parts(self, texts: list[Any], tools: dict[int, list[Any]]) -> list[Part]:
        parts = merge_text_parts(texts)
        for _key, (call_id, name, pieces) in sorted(tools.items()):
            arguments: Any = pieces[0] if len(pieces) == 1 else "".join(str(piece) for piece in pieces)
            parts.append(tool_call_part(call_id, name, arguments))
        return parts


# --- embeddings ----------------------------------------------------------------------------------------


def _embed_request(handler: GenAIHandler) -> RequestFn:
    return _read_embed


def _read_embed(instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> LLMCall:
    call = LLMCall(gv.OP_EMBEDDINGS, gv.PROVIDER_MISTRAL_AI, _model(kwargs))
    _server(call, instance, kwargs)
    dimension = kwargs.get("output_dimension")
    if given(dimension) and integer(dimension) is not None:
        call.attributes[gv.GEN_AI_EMBEDDINGS_DIMENSION_COUNT] = dimension
    encoding = kwargs.get("encoding_format")
    if given(encoding) and encoding is not None:
        call.attributes[gv.GEN_AI_REQUEST_ENCODING_FORMATS] = [str(getattr(encoding, "value", encoding))]
    return call


def _embed_response(call: LLMCall, result: Any) -> None:
    call.response_id = get(result, "id") or None
    call.response_model = get(result, "model") or None
    _usage(call, get(result, "usage"))
    if call.output_tokens == 0:
        call.output_tokens = None  # embeddings produce no tokens; Mistral reports a 0
    data = get(result, "data") or ()
    vector = get(data[0], "embedding") if data else None
    if vector:
        call.response_attributes = {gv.GEN_AI_EMBEDDINGS_DIMENSION_COUNT: len(vector)}


class MistralInstrumentor(ProviderInstrumentor):
    """Instruments ``mistralai``: chat complete / stream and embeddings, sync and async."""

    instruments = _instruments
    targets = _TARGETS
    operations = {
        "chat": Operation(_chat_request, _chat_response),
        "chat_stream": Operation(
            partial(_chat_request, streaming=True), _chat_response, stream_states(_ChatStreamState)
        ),
        "embed": Operation(_embed_request, _embed_response),
    }
    # SDKError is one class for every HTTP failure: the status code tells them apart.
    error_type = staticmethod(status_code)
