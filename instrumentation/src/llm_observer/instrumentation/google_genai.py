"""OpenTelemetry instrumentation for the Google Gen AI SDK (``google-genai``).

Instruments ``client.models.generate_content``, ``generate_content_stream`` and ``embed_content`` and their
``client.aio.models`` twins (chats go through the same methods). Spans are ``generate_content {model}`` and
``embeddings {model}``.

Provider name: ``gcp.gemini`` when the client talks to the Gemini Developer API, ``gcp.vertex_ai`` when it
talks to Vertex AI (``vertexai=True``), ``gcp.gen_ai`` when the backend cannot be told.

Usage: ``prompt_token_count`` is the input (it already includes ``cached_content_token_count``, which is
reported as cache reads); the output counts ``candidates_token_count`` plus ``thoughts_token_count``, since
both are billed as output, and the thoughts are also reported as reasoning tokens. With automatic function
calling the SDK makes several model requests inside one user call; the span covers the whole call and
reports the usage of the final answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import Any

from opentelemetry.util.types import AttributeValue

from llm_observer.instrumentation._content import json_able, merge_text_parts
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

__all__ = ["GoogleGenAIInstrumentor"]

_instruments = ("google-genai >= 1.0.0, < 4",)
_MODULE = "google.genai.models"
_TARGETS = (
    Target(_MODULE, "Models.generate_content", "generate"),
    Target(_MODULE, "Models.generate_content_stream", "generate_stream"),
    Target(_MODULE, "Models.embed_content", "embed"),
    Target(_MODULE, "AsyncModels.generate_content", "generate"),
    Target(_MODULE, "AsyncModels.generate_content_stream", "generate_stream"),
    Target(_MODULE, "AsyncModels.embed_content", "embed"),
)


# --- helpers -------------------------------------------------------------------------------------------


def _get(obj: Any, key: str) -> Any:
    """A field of a pydantic model or of the equivalent dict (the SDK accepts both)."""
    if obj is None:
        return None
    if isinstance(obj, Mapping):
        return obj.get(key)
    return getattr(obj, key, None)


def _enum_text(value: Any) -> str:
    return str(getattr(value, "value", value))


def _provider_and_server(call: LLMCall, instance: Any) -> None:
    api_client = getattr(instance, "_api_client", None)
    if api_client is not None:
        # The SDK treats an unset `vertexai` as the Gemini Developer API.
        call.provider = (
            gv.PROVIDER_GCP_VERTEX_AI if getattr(api_client, "vertexai", None) else gv.PROVIDER_GCP_GEMINI
        )
    options = getattr(api_client, "_http_options", None)
    base_url = _get(options, "base_url")
    if base_url:
        call.server_address, call.server_port = host_port(str(base_url))


def _error_type(exc: BaseException) -> str | None:
    # google.genai.errors.APIError carries the RPC status name (RESOURCE_EXHAUSTED, INTERNAL…).
    status = getattr(exc, "status", None)
    return str(status) if isinstance(status, str) and status else None


def _finish_reason(reason: str) -> str:
    return {
        "STOP": "stop",
        "MAX_TOKENS": "length",
        "SAFETY": "content_filter",
        "RECITATION": "content_filter",
        "BLOCKLIST": "content_filter",
        "PROHIBITED_CONTENT": "content_filter",
        "SPII": "content_filter",
        "MALFORMED_FUNCTION_CALL": "error",
    }.get(reason, reason.lower())


# --- content -------------------------------------------------------------------------------------------


def _part(part: Any) -> Part | None:
    if isinstance(part, str):
        return text_part(part)
    text = _get(part, "text")
    if text is not None:
        if _get(part, "thought"):
            return {"type": "reasoning", "content": text}
        return text_part(text)
    function_call = _get(part, "function_call")
    if function_call is not None:
        return tool_call_part(
            _get(function_call, "id"), _get(function_call, "name"), json_able(_get(function_call, "args"))
        )
    function_response = _get(part, "function_response")
    if function_response is not None:
        return tool_response_part(
            _get(function_response, "id"), json_able(_get(function_response, "response"))
        )
    inline = _get(part, "inline_data")
    if inline is not None:
        # The bytes themselves stay out of telemetry; their type and size say what was sent.
        data = _get(inline, "data")
        return {"type": "blob", "mime_type": _get(inline, "mime_type"), "size": len(data) if data else 0}
    file_data = _get(part, "file_data")
    if file_data is not None:
        return {"type": "uri", "mime_type": _get(file_data, "mime_type"), "uri": _get(file_data, "file_uri")}
    return None


def _parts(parts: Any) -> list[Part]:
    result: list[Part] = []
    for item in parts or ():
        converted = _part(item)
        if converted is not None:
            result.append(converted)
    return result


def _role(role: Any) -> str:
    return "assistant" if role == "model" else str(role or "user")


def _input_messages(contents: Any) -> list[Message]:
    """``contents`` as the SDK accepts it: a string, a Part, a Content, or a list of them (loose parts in a
    row form one user message, as the SDK sends them)."""
    if contents is None:
        return []
    if not isinstance(contents, list | tuple):
        contents = [contents]
    messages: list[Message] = []
    loose: list[Part] = []
    for item in contents:
        if isinstance(item, list | tuple):
            loose.extend(_parts(item))
            continue
        if _get(item, "parts") is not None or _get(item, "role") is not None:
            if loose:
                messages.append(message("user", loose))
                loose = []
            messages.append(message(_role(_get(item, "role")), _parts(_get(item, "parts"))))
            continue
        converted = _part(item)
        if converted is not None:
            loose.append(converted)
    if loose:
        messages.append(message("user", loose))
    return messages


def _system_instructions(instruction: Any) -> list[Part]:
    if instruction is None:
        return []
    if isinstance(instruction, str):
        return [text_part(instruction)]
    if isinstance(instruction, list | tuple):
        return _parts(instruction)
    if _get(instruction, "parts") is not None:
        return _parts(_get(instruction, "parts"))
    converted = _part(instruction)
    return [converted] if converted is not None else []


def _tool_definitions(tools: Any) -> list[dict[str, Any]]:
    definitions: list[dict[str, Any]] = []
    for tool in tools or ():
        if callable(tool) and not hasattr(tool, "function_declarations"):
            # A Python function handed over for automatic function calling.
            definitions.append(
                {
                    "type": "function",
                    "name": getattr(tool, "__name__", str(tool)),
                    "description": tool.__doc__,
                }
            )
            continue
        for declaration in _get(tool, "function_declarations") or ():
            parameters = _get(declaration, "parameters_json_schema") or _get(declaration, "parameters")
            definitions.append(
                {
                    "type": "function",
                    "name": _get(declaration, "name"),
                    "description": _get(declaration, "description"),
                    "parameters": json_able(parameters),
                }
            )
        for kind in ("google_search", "code_execution", "retrieval", "url_context"):
            if _get(tool, kind) is not None:
                definitions.append({"type": kind})
    return definitions


# --- generate_content ----------------------------------------------------------------------------------

_CONFIG_PARAMS: tuple[tuple[str, str], ...] = (
    ("temperature", attr.GEN_AI_REQUEST_TEMPERATURE),
    ("top_p", attr.GEN_AI_REQUEST_TOP_P),
    ("top_k", attr.GEN_AI_REQUEST_TOP_K),
    ("max_output_tokens", attr.GEN_AI_REQUEST_MAX_TOKENS),
    ("candidate_count", attr.GEN_AI_REQUEST_CHOICE_COUNT),
    ("seed", attr.GEN_AI_REQUEST_SEED),
    ("presence_penalty", attr.GEN_AI_REQUEST_PRESENCE_PENALTY),
    ("frequency_penalty", attr.GEN_AI_REQUEST_FREQUENCY_PENALTY),
)


def _request_generate(handler: GenAIHandler, streaming: bool = False) -> RequestFn:
    def request(instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> LLMCall:
        model = kwargs.get("model")
        call = LLMCall(gv.OP_GENERATE_CONTENT, gv.PROVIDER_GCP_GEN_AI, str(model) if model else None)
        call.streaming = streaming
        _provider_and_server(call, instance)
        config = kwargs.get("config")
        if config is not None:
            put_numbers(call.attributes, config, _CONFIG_PARAMS)
            stop = _get(config, "stop_sequences")
            if stop:
                call.attributes[attr.GEN_AI_REQUEST_STOP_SEQUENCES] = [str(item) for item in stop]
            mime = _get(config, "response_mime_type")
            if mime:
                call.attributes[gv.GEN_AI_OUTPUT_TYPE] = "json" if mime == "application/json" else "text"
        if handler.capture_content:
            call.input_messages = _input_messages(kwargs.get("contents"))
            call.system_instructions = _system_instructions(_get(config, "system_instruction")) or None
            call.tool_definitions = _tool_definitions(_get(config, "tools")) or None
        return call

    return request


def _usage(call: LLMCall, usage: Any) -> None:
    if usage is None:
        return
    prompt = _get(usage, "prompt_token_count")
    if prompt is not None:
        call.input_tokens = int(prompt)
    candidates = _get(usage, "candidates_token_count")
    thoughts = _get(usage, "thoughts_token_count")
    if candidates is not None or thoughts is not None:
        call.output_tokens = int(candidates or 0) + int(thoughts or 0)
    if thoughts is not None:
        call.reasoning_tokens = int(thoughts)
    cached = _get(usage, "cached_content_token_count")
    if cached is not None:
        call.cache_read_tokens = int(cached)


def _response_generate(call: LLMCall, result: Any) -> None:
    call.response_id = _get(result, "response_id")
    call.response_model = _get(result, "model_version")
    _usage(call, _get(result, "usage_metadata"))
    reasons: list[str] = []
    outputs: list[Message] = []
    for candidate in _get(result, "candidates") or ():
        reason = _get(candidate, "finish_reason")
        reason_text = _enum_text(reason) if reason is not None else None
        if reason_text:
            reasons.append(reason_text)
        if call.input_messages is not None:
            parts = _parts(_get(_get(candidate, "content"), "parts"))
            extra = {"finish_reason": _finish_reason(reason_text)} if reason_text else {}
            outputs.append(message("assistant", parts, **extra))
    if reasons:
        call.finish_reasons = reasons
    if call.input_messages is not None:
        call.output_messages = outputs


class _StreamState:
    """Keeps the last chunk (id, model, usage) and finish reasons; parts only when content is captured."""

    __slots__ = ("capture", "last", "parts", "reasons")

    def __init__(self, capture: bool) -> None:
        self.capture = capture
        self.last: Any = None
        self.reasons: dict[int, str] = {}
        self.parts: dict[int, list[Any]] = {}

    def on_chunk(self, chunk: Any) -> None:
        self.last = chunk
        candidates = _get(chunk, "candidates")
        if not candidates:
            return
        for position, candidate in enumerate(candidates):
            index = _get(candidate, "index") or position
            reason = _get(candidate, "finish_reason")
            if reason is not None:
                self.reasons[index] = _enum_text(reason)
            if self.capture:
                parts = _get(_get(candidate, "content"), "parts")
                if parts:
                    self.parts.setdefault(index, []).extend(parts)

    def finish(self, call: LLMCall) -> None:
        last = self.last
        if last is not None:
            call.response_id = _get(last, "response_id")
            call.response_model = _get(last, "model_version")
            _usage(call, _get(last, "usage_metadata"))
        if self.reasons:
            call.finish_reasons = [self.reasons[index] for index in sorted(self.reasons)]
        if self.capture:
            outputs: list[Message] = []
            for index in sorted(set(self.parts) | set(self.reasons)):
                reason = self.reasons.get(index)
                extra = {"finish_reason": _finish_reason(reason)} if reason else {}
                outputs.append(message("assistant", merge_text_parts(_parts(self.parts.get(index))), **extra))
            call.output_messages = outputs


# --- embed_content -------------------------------------------------------------------------------------


def _request_embed(handler: GenAIHandler) -> RequestFn:
    return _read_embed


def _read_embed(instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> LLMCall:
    model = kwargs.get("model")
    call = LLMCall(gv.OP_EMBEDDINGS, gv.PROVIDER_GCP_GEN_AI, str(model) if model else None)
    _provider_and_server(call, instance)
    dimension = _get(kwargs.get("config"), "output_dimensionality")
    if isinstance(dimension, int):
        call.attributes[gv.GEN_AI_EMBEDDINGS_DIMENSION_COUNT] = dimension
    return call


def _response_embed(call: LLMCall, result: Any) -> None:
    embeddings = _get(result, "embeddings") or []
    response: dict[str, AttributeValue] = {}
    if embeddings:
        values = _get(embeddings[0], "values")
        if values:
            response[gv.GEN_AI_EMBEDDINGS_DIMENSION_COUNT] = len(values)
    usage = _get(result, "usage_metadata")
    prompt = _get(usage, "prompt_token_count")
    if prompt is not None:
        call.input_tokens = int(prompt)
    else:
        # Vertex AI reports a token count per embedded input.
        counts = [_get(_get(item, "statistics"), "token_count") for item in embeddings]
        if counts and all(count is not None for count in counts):
            call.input_tokens = int(sum(counts))
    if response:
        call.response_attributes = response


class GoogleGenAIInstrumentor(ProviderInstrumentor):
    """Instruments ``google-genai``: generate_content (plain and streamed) and embed_content, sync and aio."""

    instruments = _instruments
    targets = _TARGETS
    operations = {
        "generate": Operation(_request_generate, _response_generate),
        "generate_stream": Operation(
            partial(_request_generate, streaming=True), _response_generate, stream_states(_StreamState)
        ),
        "embed": Operation(_request_embed, _response_embed),
    }
    error_type = staticmethod(_error_type)
