"""OpenTelemetry instrumentation for Hugging Face inference (``huggingface_hub``).

Instruments ``InferenceClient`` and ``AsyncInferenceClient``:

- ``chat_completion`` (also reached as ``client.chat.completions.create``), plain and streamed — span
  ``chat {model}``;
- ``text_generation``, plain and streamed — span ``text_completion {model}``.

Provider name ``hugging_face`` (not enumerated by the conventions). When the client points at a URL (an
Inference Endpoint or a self-hosted TGI server) that URL gives ``server.address``/``server.port`` and the
model is the one named in the request, if any. ``text_generation`` reports token counts only when the caller
asks for ``details=True`` (the server sends none otherwise); streamed chat reports usage when the server
sends it (TGI does with ``stream_options={"include_usage": True}``).
"""

from __future__ import annotations

from typing import Any

from llm_observer.instrumentation._chat_completions import ChatChunkState, chat_usage
from llm_observer.instrumentation._content import image_url_part, tool_call_parts
from llm_observer.instrumentation._instrumentor import Operation, ProviderInstrumentor, Target, stream_states
from llm_observer.instrumentation._util import get, given, host_port, integer, put_numbers, put_strings
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

__all__ = ["HuggingFaceInstrumentor"]

_instruments = ("huggingface_hub >= 1.0.0, < 2",)
_SYNC = "huggingface_hub.inference._client"
_ASYNC = "huggingface_hub.inference._generated._async_client"
_TARGETS = (
    Target(_SYNC, "InferenceClient.chat_completion", "chat"),
    Target(_SYNC, "InferenceClient.text_generation", "generation"),
    Target(_ASYNC, "AsyncInferenceClient.chat_completion", "chat"),
    Target(_ASYNC, "AsyncInferenceClient.text_generation", "generation"),
)


def _error_type(exc: BaseException) -> str | None:
    # HfHubHTTPError is one class for every HTTP failure: its status code says which. Its subclasses
    # (OverloadedError, GenerationError…, raised for TGI errors) are specific enough by name.
    if type(exc).__name__ == "HfHubHTTPError":
        status = getattr(getattr(exc, "response", None), "status_code", None)
        if isinstance(status, int):
            return str(status)
    return None


def _target(call: LLMCall, instance: Any, model: Any) -> None:
    """Request model and server from the call's ``model`` argument and the client's model / base URL."""
    client_model = getattr(instance, "model", None)
    for candidate in (client_model, model):
        if isinstance(candidate, str) and candidate.startswith(("http://", "https://")):
            call.server_address, call.server_port = host_port(candidate)
    if isinstance(model, str) and not model.startswith(("http://", "https://")):
        call.request_model = model
    elif isinstance(client_model, str) and not client_model.startswith(("http://", "https://")):
        call.request_model = client_model


# --- chat_completion -----------------------------------------------------------------------------------

_CHAT_PARAMS = (
    ("temperature", attr.GEN_AI_REQUEST_TEMPERATURE),
    ("top_p", attr.GEN_AI_REQUEST_TOP_P),
    ("max_tokens", attr.GEN_AI_REQUEST_MAX_TOKENS),
    ("frequency_penalty", attr.GEN_AI_REQUEST_FREQUENCY_PENALTY),
    ("presence_penalty", attr.GEN_AI_REQUEST_PRESENCE_PENALTY),
    ("seed", attr.GEN_AI_REQUEST_SEED),
    ("n", attr.GEN_AI_REQUEST_CHOICE_COUNT),
)


def _chat_request(handler: GenAIHandler) -> RequestFn:
    def request(instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> LLMCall:
        call = LLMCall(gv.OP_CHAT, gv.PROVIDER_HUGGING_FACE)
        _target(call, instance, kwargs.get("model"))
        call.streaming = bool(kwargs.get("stream"))
        put_numbers(call.attributes, kwargs, _CHAT_PARAMS)
        put_strings(call.attributes, attr.GEN_AI_REQUEST_STOP_SEQUENCES, kwargs.get("stop"))
        if handler.capture_content:
            messages = args[0] if args else kwargs.get("messages")
            call.input_messages = [_chat_message(item) for item in messages or ()]
            call.tool_definitions = _tool_definitions(kwargs.get("tools"))
        return call

    return request


def _content_parts(content: Any) -> list[Part]:
    if content is None:
        return []
    if isinstance(content, str):
        return [text_part(content)]
    parts: list[Part] = []
    for item in content:
        kind = get(item, "type")
        if kind == "text":
            parts.append(text_part(get(item, "text") or ""))
        elif kind == "image_url":
            parts.append(image_url_part(get(get(item, "image_url"), "url")))
        else:
            parts.append({"type": str(kind)})
    return parts


def _chat_message(item: Any) -> Message:
    role = get(item, "role") or "user"
    if role == "tool":
        return message("tool", [tool_response_part(get(item, "tool_call_id"), get(item, "content"))])
    parts = _content_parts(get(item, "content"))
    parts.extend(tool_call_parts(get(item, "tool_calls")))
    return message(str(role), parts)


def _tool_definitions(tools: Any) -> list[dict[str, Any]] | None:
    if not given(tools):
        return None
    definitions = []
    for tool in tools:
        function = get(tool, "function")
        definitions.append(
            {
                "type": get(tool, "type") or "function",
                "name": get(function, "name"),
                "description": get(function, "description"),
                "parameters": get(function, "parameters") or get(function, "arguments"),
            }
        )
    return definitions or None


def _chat_response(call: LLMCall, result: Any) -> None:
    call.response_id = get(result, "id") or None
    call.response_model = get(result, "model") or None
    chat_usage(call, get(result, "usage"))
    choices = get(result, "choices") or ()
    reasons = [str(get(choice, "finish_reason")) for choice in choices if get(choice, "finish_reason")]
    if reasons:
        call.finish_reasons = reasons
    if call.input_messages is not None:
        outputs = []
        for choice in choices:
            reply = get(choice, "message")
            parts: list[Part] = []
            reasoning = get(reply, "reasoning")
            if reasoning:
                parts.append({"type": "reasoning", "content": reasoning})
            parts.extend(_content_parts(get(reply, "content")))
            parts.extend(tool_call_parts(get(reply, "tool_calls")))
            outputs.append(
                message("assistant", parts, finish_reason=_finish_reason(get(choice, "finish_reason")))
            )
        call.output_messages = outputs


def _finish_reason(reason: Any) -> str:
    text = str(reason or "")
    return {"tool_calls": "tool_call", "eos_token": "stop", "stop_sequence": "stop"}.get(text, text)


class _ChatStreamState(ChatChunkState):
    """Chat chunks: text pieces are strings; tool calls are keyed by their ``index``."""

    __slots__ = ()

    def on_chunk(self, chunk: Any) -> None:
        if self.first is None:
            self.first = chunk
        usage = get(chunk, "usage")
        if usage is not None:
            self.usage = usage
        for choice in get(chunk, "choices") or ():
            index = get(choice, "index") or 0
            reason = get(choice, "finish_reason")
            if reason:
                self.reasons[index] = str(reason)
            if self.texts is None or self.tools is None:
                continue
            delta = get(choice, "delta")
            text = get(delta, "content")
            if text:
                self.texts.setdefault(index, []).append(text)
            for tool_call in get(delta, "tool_calls") or ():
                slots = self.tools.setdefault(index, {})
                slot = slots.setdefault(get(tool_call, "index") or 0, [None, None, []])
                slot[0] = slot[0] or get(tool_call, "id")
                function = get(tool_call, "function")
                slot[1] = slot[1] or get(function, "name")
                arguments = get(function, "arguments")
                if arguments:
                    slot[2].append(arguments if isinstance(arguments, str) else str(arguments))

    def _usage(self, call: LLMCall, usage: Any) -> None:
        chat_usage(call, usage)

    def _finish_reason(self, reason: Any) -> str:
        return _finish_reason(reason)

    def _parts(self, texts: list[Any], tools: dict[int, list[Any]]) -> list[Part]:
        parts: list[Part] = []
        text = "".join(texts)
        if text:
            parts.append(text_part(text))
        for _position, (call_id, name, pieces) in sorted(tools.items()):
            parts.append(tool_call_part(call_id, name, "".join(pieces)))
        return parts


# --- text_generation -----------------------------------------------------------------------------------

_GENERATION_PARAMS = (
    ("temperature", attr.GEN_AI_REQUEST_TEMPERATURE),
    ("top_p", attr.GEN_AI_REQUEST_TOP_P),
    ("top_k", attr.GEN_AI_REQUEST_TOP_K),
    ("max_new_tokens", attr.GEN_AI_REQUEST_MAX_TOKENS),
    ("frequency_penalty", attr.GEN_AI_REQUEST_FREQUENCY_PENALTY),
    ("seed", attr.GEN_AI_REQUEST_SEED),
)


def _generation_request(handler: GenAIHandler) -> RequestFn:
    def request(instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> LLMCall:
        call = LLMCall(gv.OP_TEXT_COMPLETION, gv.PROVIDER_HUGGING_FACE)
        _target(call, instance, kwargs.get("model"))
        call.streaming = bool(kwargs.get("stream"))
        put_numbers(call.attributes, kwargs, _GENERATION_PARAMS)
        stop = kwargs.get("stop") or kwargs.get("stop_sequences")
        put_strings(call.attributes, attr.GEN_AI_REQUEST_STOP_SEQUENCES, stop)
        if handler.capture_content:
            prompt = args[0] if args else kwargs.get("prompt")
            call.input_messages = [message("user", [text_part(str(prompt))])]
        return call

    return request


def _generation_details(call: LLMCall, details: Any) -> str | None:
    """Usage from a TGI ``details`` block; returns its finish reason."""
    if details is None:
        return None
    generated = integer(get(details, "generated_tokens"))
    if generated is not None:
        call.output_tokens = generated
    input_length = integer(get(details, "input_length"))
    prefill = get(details, "prefill")
    if input_length is not None:
        call.input_tokens = input_length
    elif prefill:
        call.input_tokens = len(prefill)
    reason = get(details, "finish_reason")
    if reason:
        call.finish_reasons = [str(reason)]
        return str(reason)
    return None


def _generation_response(call: LLMCall, result: Any) -> None:
    text = result if isinstance(result, str) else get(result, "generated_text")
    reason = None if isinstance(result, str) else _generation_details(call, get(result, "details"))
    if call.input_messages is not None and text is not None:
        extra = {"finish_reason": _finish_reason(reason)} if reason else {}
        call.output_messages = [message("assistant", [text_part(str(text))], **extra)]


class _GenerationStreamState:
    """Per stream: the last chunk (TGI puts details and the full text on it); token texts only when
    content is captured and the stream carries plain strings."""

    __slots__ = ("last", "texts")

    def __init__(self, capture: bool) -> None:
        self.last: Any = None
        self.texts: list[str] | None = [] if capture else None

    def on_chunk(self, chunk: Any) -> None:
        self.last = chunk
        if self.texts is not None:
            token = chunk if isinstance(chunk, str) else get(get(chunk, "token"), "text")
            if token and not get(get(chunk, "token"), "special"):
                self.texts.append(str(token))

    def finish(self, call: LLMCall) -> None:
        reason = None
        if self.last is not None and not isinstance(self.last, str):
            reason = _generation_details(call, get(self.last, "details"))
        if self.texts is not None:
            extra = {"finish_reason": _finish_reason(reason)} if reason else {}
            call.output_messages = [message("assistant", [text_part("".join(self.texts))], **extra)]


# --- instrumentor --------------------------------------------------------------------------------------


class HuggingFaceInstrumentor(ProviderInstrumentor):
    """Instruments ``huggingface_hub`` inference clients: chat_completion and text_generation."""

    instruments = _instruments
    targets = _TARGETS
    operations = {
        "chat": Operation(
            _chat_request,
            _chat_response,
            stream_states(_ChatStreamState, streaming_only=True, iterables=True),
        ),
        "generation": Operation(
            _generation_request,
            _generation_response,
            stream_states(_GenerationStreamState, streaming_only=True, iterables=True),
        ),
    }
    error_type = staticmethod(_error_type)
