"""OpenTelemetry instrumentation for the Ollama Python client (``ollama``, the native ``/api`` endpoints).

Instruments ``Client`` and ``AsyncClient`` ``chat`` (span ``chat {model}``), ``generate`` (span
``text_completion {model}``), ``embed`` and the older ``embeddings`` (span ``embeddings {model}``), plain and
streamed (newline-delimited JSON; usage comes from the final ``done`` chunk), and the module-level shortcuts
``ollama.chat``/``generate``/``embed``/``embeddings``, which the package binds to a default client at import.

Provider name ``ollama`` (not enumerated by the conventions). Usage: ``prompt_eval_count`` is the input,
``eval_count`` the output. Ollama's answers carry no response id. Ollama's OpenAI-compatible ``/v1``
endpoint is covered by the OpenAI instrumentor instead.
"""

from __future__ import annotations

from functools import partial
from importlib import import_module
from typing import Any, ClassVar

from llm_observer.instrumentation._content import tool_call_parts
from llm_observer.instrumentation._instrumentor import Operation, ProviderInstrumentor, Target, stream_states
from llm_observer.instrumentation._util import get, host_port, integer, put_numbers, put_strings, status_code
from llm_observer.instrumentation._wrappers import RequestFn
from llm_observer.instrumentation.handler import (
    GenAIHandler,
    LLMCall,
    Message,
    Part,
    message,
    text_part,
    tool_response_part,
)
from llm_observer.semconv import attributes as attr
from llm_observer.semconv import genai_values as gv

__all__ = ["OllamaInstrumentor"]

_instruments = ("ollama >= 0.4.0, < 1",)
_MODULE = "ollama._client"
# kind: the method's name, which is also the name of its module-level shortcut (``ollama.chat``…).
_TARGETS = (
    Target(_MODULE, "Client.chat", "chat"),
    Target(_MODULE, "Client.generate", "generate"),
    Target(_MODULE, "Client.embed", "embed"),
    Target(_MODULE, "Client.embeddings", "embeddings"),
    Target(_MODULE, "AsyncClient.chat", "chat"),
    Target(_MODULE, "AsyncClient.generate", "generate"),
    Target(_MODULE, "AsyncClient.embed", "embed"),
    Target(_MODULE, "AsyncClient.embeddings", "embeddings"),
)
_SHORTCUTS = ("chat", "generate", "embed", "embeddings")


def _argument(args: tuple[Any, ...], kwargs: dict[str, Any], position: int, name: str) -> Any:
    if name in kwargs:
        return kwargs[name]
    return args[position] if len(args) > position else None


def _start(operation: str, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> LLMCall:
    model = _argument(args, kwargs, 0, "model")
    call = LLMCall(operation, gv.PROVIDER_OLLAMA, str(model) if model else None)
    base_url = getattr(getattr(instance, "_client", None), "base_url", None)
    if base_url is not None:
        call.server_address, call.server_port = host_port(str(base_url))
    call.streaming = bool(kwargs.get("stream"))
    options = kwargs.get("options")
    if options is not None:
        put_numbers(call.attributes, options, _OPTIONS)
        put_strings(call.attributes, attr.GEN_AI_REQUEST_STOP_SEQUENCES, get(options, "stop"))
    fmt = kwargs.get("format")
    if fmt:
        call.attributes[gv.GEN_AI_OUTPUT_TYPE] = gv.OUTPUT_TYPE_JSON
    return call


_OPTIONS = (
    ("temperature", attr.GEN_AI_REQUEST_TEMPERATURE),
    ("top_p", attr.GEN_AI_REQUEST_TOP_P),
    ("top_k", attr.GEN_AI_REQUEST_TOP_K),
    ("num_predict", attr.GEN_AI_REQUEST_MAX_TOKENS),
    ("seed", attr.GEN_AI_REQUEST_SEED),
    ("frequency_penalty", attr.GEN_AI_REQUEST_FREQUENCY_PENALTY),
    ("presence_penalty", attr.GEN_AI_REQUEST_PRESENCE_PENALTY),
)


def _finish_reason(reason: Any) -> str:
    text = str(reason or "")
    return {"stop": "stop", "length": "length", "load": "stop", "unload": "stop"}.get(text, text)


def _usage_and_meta(call: LLMCall, result: Any) -> str | None:
    """Model, usage and finish reason of a final response (or final ``done`` chunk)."""
    model = get(result, "model")
    if model:
        call.response_model = str(model)
    prompt = integer(get(result, "prompt_eval_count"))
    completion = integer(get(result, "eval_count"))
    if prompt is not None:
        call.input_tokens = prompt
    if completion is not None:
        call.output_tokens = completion
    reason = get(result, "done_reason")
    if reason:
        call.finish_reasons = [str(reason)]
        return str(reason)
    return None


def _plain(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)
    return dump(mode="json", exclude_none=True) if callable(dump) else value


# --- chat ----------------------------------------------------------------------------------------------


def _chat_request(handler: GenAIHandler) -> RequestFn:
    def request(instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> LLMCall:
        call = _start(gv.OP_CHAT, instance, args, kwargs)
        if handler.capture_content:
            call.input_messages = [
                _chat_message(item) for item in _argument(args, kwargs, 1, "messages") or ()
            ]
            call.tool_definitions = _tool_definitions(kwargs.get("tools"))
        return call

    return request


def _chat_message(item: Any) -> Message:
    role = str(get(item, "role") or "user")
    content = get(item, "content")
    if role == "tool":
        return message(
            "tool", [tool_response_part(get(item, "tool_call_id"), content)], name=get(item, "tool_name")
        )
    parts: list[Part] = []
    thinking = get(item, "thinking")
    if thinking:
        parts.append({"type": "reasoning", "content": thinking})
    if content:
        parts.append(text_part(str(content)))
    for _image in get(item, "images") or ():
        parts.append({"type": "blob", "modality": "image"})
    parts.extend(tool_call_parts(get(item, "tool_calls")))
    return message(role, parts)


def _tool_definitions(tools: Any) -> list[dict[str, Any]] | None:
    definitions: list[dict[str, Any]] = []
    for tool in tools or ():
        if callable(tool) and not isinstance(tool, dict):
            # A Python function: the SDK derives the schema from its signature and docstring.
            definitions.append(
                {
                    "type": "function",
                    "name": getattr(tool, "__name__", str(tool)),
                    "description": tool.__doc__,
                }
            )
            continue
        function = get(tool, "function")
        definitions.append(
            {
                "type": get(tool, "type") or "function",
                "name": get(function, "name"),
                "description": get(function, "description"),
                "parameters": _plain(get(function, "parameters")),
            }
        )
    return definitions or None


def _chat_response(call: LLMCall, result: Any) -> None:
    reason = _usage_and_meta(call, result)
    if call.input_messages is not None:
        reply = get(result, "message")
        parts: list[Part] = []
        thinking = get(reply, "thinking")
        if thinking:
            parts.append({"type": "reasoning", "content": thinking})
        content = get(reply, "content")
        if content:
            parts.append(text_part(str(content)))
        parts.extend(tool_call_parts(get(reply, "tool_calls")))
        call.output_messages = [message("assistant", parts, finish_reason=_finish_reason(reason))]


# --- generate ------------------------------------------------------------------------------------------


def _generate_request(handler: GenAIHandler) -> RequestFn:
    def request(instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> LLMCall:
        call = _start(gv.OP_TEXT_COMPLETION, instance, args, kwargs)
        if handler.capture_content:
            prompt = _argument(args, kwargs, 1, "prompt")
            call.input_messages = [message("user", [text_part(str(prompt))])] if prompt else []
            system = kwargs.get("system")
            if system:
                call.system_instructions = [text_part(str(system))]
        return call

    return request


def _generate_response(call: LLMCall, result: Any) -> None:
    reason = _usage_and_meta(call, result)
    if call.input_messages is not None:
        parts: list[Part] = []
        thinking = get(result, "thinking")
        if thinking:
            parts.append({"type": "reasoning", "content": thinking})
        parts.append(text_part(str(get(result, "response") or "")))
        call.output_messages = [message("assistant", parts, finish_reason=_finish_reason(reason))]


# --- embed ---------------------------------------------------------------------------------------------


def _embed_request(handler: GenAIHandler) -> RequestFn:
    def request(instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> LLMCall:
        call = _start(gv.OP_EMBEDDINGS, instance, args, kwargs)
        dimensions = integer(kwargs.get("dimensions"))
        if dimensions is not None:
            call.attributes[gv.GEN_AI_EMBEDDINGS_DIMENSION_COUNT] = dimensions
        return call

    return request


def _embed_response(call: LLMCall, result: Any) -> None:
    model = get(result, "model")
    if model:
        call.response_model = str(model)
    prompt = integer(get(result, "prompt_eval_count"))
    if prompt is not None:
        call.input_tokens = prompt
    vectors = get(result, "embeddings")
    first = vectors[0] if vectors else get(result, "embedding")
    if first:
        call.response_attributes = {gv.GEN_AI_EMBEDDINGS_DIMENSION_COUNT: len(first)}


# --- streams -------------------------------------------------------------------------------------------


class _StreamState:
    """Per stream: the last chunk (the ``done`` one carries model, counts and reason); text, thinking and
    tool calls only when content is captured."""

    __slots__ = ("chat", "last", "texts", "thinking", "tool_calls")

    def __init__(self, chat: bool, capture: bool) -> None:
        self.chat = chat
        self.last: Any = None
        self.texts: list[str] | None = [] if capture else None
        self.thinking: list[str] = []
        self.tool_calls: list[Any] = []

    def on_chunk(self, chunk: Any) -> None:
        self.last = chunk
        if self.texts is None:
            return
        source = get(chunk, "message") if self.chat else chunk
        text = get(source, "content") if self.chat else get(source, "response")
        if text:
            self.texts.append(text)
        thinking = get(source, "thinking")
        if thinking:
            self.thinking.append(thinking)
        tool_calls = get(source, "tool_calls") if self.chat else None
        if tool_calls:
            self.tool_calls.extend(tool_calls)

    def finish(self, call: LLMCall) -> None:
        reason = (
            _usage_and_meta(call, self.last) if self.last is not None and get(self.last, "done") else None
        )
        if self.last is not None and call.response_model is None and get(self.last, "model"):
            call.response_model = str(get(self.last, "model"))
        if self.texts is not None:
            parts: list[Part] = []
            if self.thinking:
                parts.append({"type": "reasoning", "content": "".join(self.thinking)})
            if self.texts:
                parts.append(text_part("".join(self.texts)))
            parts.extend(tool_call_parts(self.tool_calls))
            extra = {"finish_reason": _finish_reason(reason)} if reason else {}
            call.output_messages = [message("assistant", parts, **extra)]


class OllamaInstrumentor(ProviderInstrumentor):
    """Instruments the ``ollama`` client: chat, generate, embed, sync and async, with streams."""

    instruments = _instruments
    targets = _TARGETS
    # The module-level shortcuts replaced by instrument(), to put back on uninstrument().
    _shortcuts: ClassVar[dict[str, Any]] = {}
    operations = {
        "chat": Operation(
            _chat_request, _chat_response, stream_states(partial(_StreamState, True), streaming_only=True)
        ),
        "generate": Operation(
            _generate_request,
            _generate_response,
            stream_states(partial(_StreamState, False), streaming_only=True),
        ),
        "embed": Operation(_embed_request, _embed_response),
        "embeddings": Operation(_embed_request, _embed_response),
    }
    error_type = staticmethod(status_code)

    def _instrument(self, **kwargs: Any) -> None:
        super()._instrument(**kwargs)
        self._rebind_shortcuts()

    def _uninstrument(self, **kwargs: Any) -> None:
        super()._uninstrument(**kwargs)
        package = import_module("ollama")
        for name, original in self._shortcuts.items():
            setattr(package, name, original)
        self._shortcuts.clear()

    def _rebind_shortcuts(self) -> None:
        """Point ``ollama.chat`` & co. (bound to the default client before we wrapped the class) at the
        wrapped methods."""
        package = import_module("ollama")
        client_class = import_module(_MODULE).Client
        default = getattr(package, "_client", None)
        if not isinstance(default, client_class):
            return
        for name in _SHORTCUTS:
            current = getattr(package, name, None)
            if getattr(current, "__self__", None) is default:
                self._shortcuts[name] = current
                setattr(package, name, getattr(default, name))
