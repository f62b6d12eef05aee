"""OpenTelemetry instrumentation for the ``openai`` SDK (and every server that speaks its API).

Instrumented, sync and async: ``chat.completions.create`` (and ``parse``; ``stream()`` goes through
``create``), ``responses.create`` (and ``parse``; ``stream()`` goes through ``create``),
legacy ``completions.create`` and ``embeddings.create``, with streaming, tool calls and errors.

The provider is told apart by the client's base URL (``gen_ai.provider.name``): Azure clients and
``*.openai.azure.com`` → ``azure.ai.openai``, ``*.services.ai.azure.com`` / ``models.inference.ai.azure.com``
→ ``azure.ai.inference``, Groq, DeepSeek, xAI, Mistral, Perplexity, Gemini's OpenAI endpoint, OpenRouter,
Together, Fireworks by host; port 11434 → ``ollama``, hosts naming ``vllm`` / ``localai`` → ``vllm`` /
``localai``; other hosts → ``openai``. ``instrument(providers={"10.0.0.5:8000": "vllm"})`` maps further
``host`` or ``host:port`` values.

Every span carries ``openai.api.type`` (``chat_completions`` or ``responses``, the conventions' values) for
chat completions and the Responses API; legacy completions and embeddings have no such value and get none.

Stream usage: OpenAI and most compatible servers report tokens on a stream only when asked with
``stream_options={"include_usage": True}``, in one last chunk whose ``choices`` list is empty. So that
streamed calls have tokens and cost, the instrumentation asks for it on streamed chat and legacy completion
requests whose caller did not set ``include_usage``, and keeps that last chunk from the caller: the
application iterates exactly the chunks it would without instrumentation (a loop indexing
``chunk.choices[0]`` keeps working), and the usage goes on the span. A caller that asks for
``include_usage`` itself gets the chunk as usual.

By default it asks only servers known to accept the option, told apart by base URL as above: OpenAI
(``api.openai.com``), Azure OpenAI clients of API version 2024-09-01 or later (and the ``/openai/v1`` API),
DeepSeek, Groq, xAI, OpenRouter, vLLM, Ollama, and hosts mapped by ``providers`` to one of those. Other hosts
(and Mistral, Perplexity, Gemini, Azure AI Inference, LocalAI) are left alone: some reject unknown request
fields. ``LLM_OBSERVER_OPENAI_STREAM_USAGE=true`` (or ``instrument(stream_usage=True)``) asks every
server, ``false`` none; ``auto`` or unset is the default above.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from typing import Any

from opentelemetry.util.types import AttributeValue

from llm_observer.instrumentation._content import image_url_part, tool_call_parts
from llm_observer.instrumentation._instrumentor import (
    Operation,
    ProviderInstrumentor,
    Target,
    stream_wrappers,
)
from llm_observer.instrumentation._streams import AsyncStreamWrapper, SyncStreamWrapper
from llm_observer.instrumentation._util import (
    get,
    given,
    host_port,
    integer,
    put_number,
    strings,
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

__all__ = ["STREAM_USAGE_ENV", "OpenAIInstrumentor", "provider_for_url"]

STREAM_USAGE_ENV = "LLM_OBSERVER_OPENAI_STREAM_USAGE"
_log = logging.getLogger(__name__)
_instruments = ("openai >= 1.40.0, < 4",)

# kind: which API's translators a method gets. Older SDKs lack some modules (the Responses API came in 1.66).
_CHAT = "openai.resources.chat.completions"
_RESPONSES = "openai.resources.responses"
_COMPLETIONS = "openai.resources.completions"
_EMBEDDINGS = "openai.resources.embeddings"
_TARGETS = (
    Target(_CHAT, "Completions.create", "chat"),
    Target(_CHAT, "AsyncCompletions.create", "chat"),
    Target(_CHAT, "Completions.parse", "chat"),
    Target(_CHAT, "AsyncCompletions.parse", "chat"),
    Target(_RESPONSES, "Responses.create", "responses"),
    Target(_RESPONSES, "AsyncResponses.create", "responses"),
    Target(_RESPONSES, "Responses.parse", "responses"),
    Target(_RESPONSES, "AsyncResponses.parse", "responses"),
    Target(_COMPLETIONS, "Completions.create", "completions"),
    Target(_COMPLETIONS, "AsyncCompletions.create", "completions"),
    Target(_EMBEDDINGS, "Embeddings.create", "embeddings"),
    Target(_EMBEDDINGS, "AsyncEmbeddings.create", "embeddings"),
)

_HOST_PROVIDERS: tuple[tuple[str, str], ...] = (
    (".openai.azure.com", gv.PROVIDER_AZURE_AI_OPENAI),
    (".cognitiveservices.azure.com", gv.PROVIDER_AZURE_AI_OPENAI),
    (".services.ai.azure.com", gv.PROVIDER_AZURE_AI_INFERENCE),
    ("models.inference.ai.azure.com", gv.PROVIDER_AZURE_AI_INFERENCE),
    ("api.groq.com", gv.PROVIDER_GROQ),
    ("api.deepseek.com", gv.PROVIDER_DEEPSEEK),
    ("api.x.ai", gv.PROVIDER_X_AI),
    ("api.mistral.ai", gv.PROVIDER_MISTRAL_AI),
    ("api.perplexity.ai", gv.PROVIDER_PERPLEXITY),
    ("generativelanguage.googleapis.com", gv.PROVIDER_GCP_GEMINI),
    ("aiplatform.googleapis.com", gv.PROVIDER_GCP_VERTEX_AI),
    ("openrouter.ai", gv.PROVIDER_OPENROUTER),
    ("api.together.xyz", gv.PROVIDER_TOGETHER_AI),
    ("api.fireworks.ai", gv.PROVIDER_FIREWORKS_AI),
    ("api.openai.com", gv.PROVIDER_OPENAI),
)


def provider_for_url(url: str, azure_client: bool = False, overrides: Mapping[str, str] | None = None) -> str:
    """The ``gen_ai.provider.name`` for an OpenAI-API base URL (rules in the module docstring)."""
    return _identify(url, azure_client, overrides)[0]


def _identify(url: str, azure_client: bool, overrides: Mapping[str, str] | None) -> tuple[str, bool]:
    """``(provider, recognised)``: recognised is False for the ``openai`` of a host no rule names."""
    if azure_client:
        return gv.PROVIDER_AZURE_AI_OPENAI, True
    host, port = host_port(url)
    host = (host or "").lower()
    if overrides:
        found = overrides.get(f"{host}:{port}") or overrides.get(host)
        if found:
            return found, True
    for suffix, provider in _HOST_PROVIDERS:
        if host == suffix.lstrip(".") or host.endswith(suffix):
            return provider, True
    if port == 11434 or "ollama" in host:
        return gv.PROVIDER_OLLAMA, True
    if "vllm" in host:
        return gv.PROVIDER_VLLM, True
    if "localai" in host:
        return gv.PROVIDER_LOCALAI, True
    return gv.PROVIDER_OPENAI, False


#: (provider, host, port, whether the server accepts ``stream_options``) of a client.
_Endpoint = tuple[str, str | None, int | None, bool]

# Servers that accept ``stream_options`` (the others may refuse a request with a field they do not know).
_STREAM_USAGE_PROVIDERS = frozenset(
    {
        gv.PROVIDER_OPENAI,
        gv.PROVIDER_DEEPSEEK,
        gv.PROVIDER_GROQ,
        gv.PROVIDER_X_AI,
        gv.PROVIDER_OPENROUTER,
        gv.PROVIDER_VLLM,
        gv.PROVIDER_OLLAMA,
    }
)
# Azure OpenAI's dated API versions accept ``stream_options`` from this one on.
_AZURE_STREAM_OPTIONS_SINCE = "2024-09-01"


def _accepts_stream_options(provider: str, recognised: bool, url: str, client: Any) -> bool:
    """Whether the server behind a client is known to accept ``stream_options`` (module docstring)."""
    if provider == gv.PROVIDER_AZURE_AI_OPENAI:
        if "/openai/v1" in url:  # the version-less v1 API
            return True
        version = getattr(client, "_api_version", None)
        return isinstance(version, str) and version[:10] >= _AZURE_STREAM_OPTIONS_SINCE
    return recognised and provider in _STREAM_USAGE_PROVIDERS


def _stream_usage_setting(value: Any) -> bool | None:
    """``instrument(stream_usage=…)``, else the environment variable: True (ask every server), False
    (none) or None (servers known to accept it)."""
    if isinstance(value, bool):
        return value
    raw = os.environ.get(STREAM_USAGE_ENV, "").strip().lower()
    if raw in ("true", "1", "yes", "on"):
        return True
    if raw in ("false", "0", "no", "off"):
        return False
    if raw not in ("", "auto"):
        _log.warning("%s=%r is not true, false or auto; using auto.", STREAM_USAGE_ENV, raw)
    return None


def _error_type(exc: BaseException) -> str | None:
    code = getattr(exc, "code", None)
    if isinstance(code, str) and code:
        return code
    return None


class OpenAIInstrumentor(ProviderInstrumentor):
    """Instruments the ``openai`` SDK. ``instrument()`` also accepts ``stream_usage`` (True: ask every server
    for stream usage, False: none, None: the default of ``LLM_OBSERVER_OPENAI_STREAM_USAGE``, else the
    servers known to accept it) and ``providers`` (host[:port] → provider)."""

    instruments = _instruments
    targets = _TARGETS

    error_type = staticmethod(_error_type)

    def _operations(self, handler: GenAIHandler, kwargs: Mapping[str, Any]) -> Mapping[str, Operation]:
        # The requests depend on this instrument() call's options, so the table is made here.
        stream_usage = _stream_usage_setting(kwargs.get("stream_usage"))
        adapter = _Adapter(handler, stream_usage, dict(kwargs.get("providers") or {}))
        return adapter.operations()


class _Adapter:
    """Translates openai requests and responses into :class:`LLMCall` fields."""

    def __init__(self, handler: GenAIHandler, stream_usage: bool | None, providers: dict[str, str]) -> None:
        self.handler = handler
        #: True: ask every server for stream usage; False: none; None: those known to accept the option.
        self.stream_usage = stream_usage
        self.providers = providers
        self._endpoints: dict[int, tuple[Any, _Endpoint]] = {}

    def operations(self) -> dict[str, Operation]:
        """The instrumentor's operations, reading requests and responses with this adapter."""
        chat_streams = stream_wrappers(_SyncChatStream, _AsyncChatStream)
        return {
            "chat": Operation(_bound(self.chat_request), _parsed(self.chat_response), chat_streams),
            "responses": Operation(
                _bound(self.responses_request),
                _parsed(self.responses_response),
                stream_wrappers(_SyncResponsesStream, _AsyncResponsesStream),
            ),
            "completions": Operation(
                _bound(self.completions_request), _parsed(self.completions_response), chat_streams
            ),
            "embeddings": Operation(_bound(self.embeddings_request), _parsed(self.embeddings_response)),
        }

    # --- common -------------------------------------------------------------------------------------

    def _endpoint(self, client: Any) -> _Endpoint:
        """(provider, host, port, accepts stream_options) of a client, cached per base-URL object (it
        changes only when reassigned)."""
        base_url = getattr(client, "base_url", None)
        cached = self._endpoints.get(id(base_url))
        if cached is not None and cached[0] is base_url:
            return cached[1]
        url = str(base_url or "")
        azure = type(client).__name__ in ("AzureOpenAI", "AsyncAzureOpenAI")
        host, port = host_port(url) if url else (None, None)
        provider, recognised = _identify(url, azure, self.providers)
        found = (provider, host, port, _accepts_stream_options(provider, recognised, url, client))
        if len(self._endpoints) > 256:
            self._endpoints.clear()
        self._endpoints[id(base_url)] = (base_url, found)
        return found

    def _call(self, operation: str, instance: Any, kwargs: dict[str, Any], api_type: str | None) -> LLMCall:
        provider, host, port, accepts_stream_options = self._endpoint(getattr(instance, "_client", None))
        model = kwargs.get("model")
        call = LLMCall(operation, provider, model if isinstance(model, str) else None)
        call.server_address, call.server_port = host, port
        if api_type is not None:
            call.attributes[gv.GEN_AI_OPENAI_API_TYPE] = api_type
        if kwargs.get("stream") is True:
            call.streaming = True
            ask = self.stream_usage
            if ask if ask is not None else accepts_stream_options:
                self._ask_stream_usage(call, kwargs)
        return call

    def _common_params(self, call: LLMCall, kwargs: dict[str, Any]) -> None:
        attributes = call.attributes
        put_number(attributes, attr.GEN_AI_REQUEST_TEMPERATURE, kwargs.get("temperature"))
        put_number(attributes, attr.GEN_AI_REQUEST_TOP_P, kwargs.get("top_p"))
        put_number(attributes, attr.GEN_AI_REQUEST_FREQUENCY_PENALTY, kwargs.get("frequency_penalty"))
        put_number(attributes, attr.GEN_AI_REQUEST_PRESENCE_PENALTY, kwargs.get("presence_penalty"))
        put_number(attributes, attr.GEN_AI_REQUEST_SEED, kwargs.get("seed"))
        stop = strings(kwargs.get("stop"))
        if stop:
            attributes[attr.GEN_AI_REQUEST_STOP_SEQUENCES] = stop
        choices = integer(kwargs.get("n"))
        if choices is not None and choices != 1:
            attributes[attr.GEN_AI_REQUEST_CHOICE_COUNT] = choices
        tier = kwargs.get("service_tier")
        if isinstance(tier, str) and tier != "auto":
            attributes[gv.GEN_AI_OPENAI_REQUEST_SERVICE_TIER] = tier

    @staticmethod
    def _ask_stream_usage(call: LLMCall, kwargs: dict[str, Any]) -> None:
        """Ask for the usage chunk unless the caller decided about it; the chunk is then the
        instrumentation's own (kept from the caller). The wrapper hands the SDK this same kwargs dict, so
        the option reaches the request."""
        options = kwargs.get("stream_options")
        if not given(options):
            kwargs["stream_options"] = {"include_usage": True}
        elif isinstance(options, Mapping) and "include_usage" not in options:
            kwargs["stream_options"] = {**options, "include_usage": True}
        else:
            return
        call.private_usage_chunk = True

    @staticmethod
    def _usage(call: LLMCall, usage: Any) -> None:
        if usage is None:
            return
        prompt = integer(get(usage, "prompt_tokens"))
        if prompt is None:  # Responses API spelling
            prompt = integer(get(usage, "input_tokens"))
        completion = integer(get(usage, "completion_tokens"))
        if completion is None:
            completion = integer(get(usage, "output_tokens"))
        call.input_tokens = prompt
        call.output_tokens = completion
        details = get(usage, "prompt_tokens_details") or get(usage, "input_tokens_details")
        cached = integer(get(details, "cached_tokens")) if details is not None else None
        if cached is not None:
            call.cache_read_tokens = cached
        out_details = get(usage, "completion_tokens_details") or get(usage, "output_tokens_details")
        reasoning = integer(get(out_details, "reasoning_tokens")) if out_details is not None else None
        if reasoning is not None:
            call.reasoning_tokens = reasoning

    @staticmethod
    def _response_meta(call: LLMCall, result: Any) -> None:
        model = getattr(result, "model", None)
        if isinstance(model, str):
            call.response_model = model
        response_id = getattr(result, "id", None)
        if isinstance(response_id, str):
            call.response_id = response_id
        extra: dict[str, AttributeValue] = {}
        tier = getattr(result, "service_tier", None)
        if isinstance(tier, str):
            extra[gv.GEN_AI_OPENAI_RESPONSE_SERVICE_TIER] = tier
        fingerprint = getattr(result, "system_fingerprint", None)
        if isinstance(fingerprint, str):
            extra[gv.GEN_AI_OPENAI_RESPONSE_SYSTEM_FINGERPRINT] = fingerprint
        if extra:
            call.response_attributes = extra

    # --- chat completions ---------------------------------------------------------------------------

    def chat_request(self, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> LLMCall:
        call = self._call(gv.OP_CHAT, instance, kwargs, gv.OPENAI_API_TYPE_CHAT_COMPLETIONS)
        self._common_params(call, kwargs)
        max_tokens = kwargs.get("max_completion_tokens")
        if not given(max_tokens):
            max_tokens = kwargs.get("max_tokens")
        put_number(call.attributes, attr.GEN_AI_REQUEST_MAX_TOKENS, max_tokens)
        output_type = _output_type(kwargs.get("response_format"))
        if output_type:
            call.attributes[gv.GEN_AI_OUTPUT_TYPE] = output_type
        if self.handler.capture_content:
            call.input_messages = [_chat_message(item) for item in kwargs.get("messages") or ()]
            call.tool_definitions = _tool_definitions(kwargs.get("tools"))
        return call

    def chat_response(self, call: LLMCall, result: Any) -> None:
        self._response_meta(call, result)
        choices = getattr(result, "choices", None) or ()
        call.finish_reasons = [choice.finish_reason or "" for choice in choices]
        self._usage(call, getattr(result, "usage", None))
        if self.handler.capture_content:
            call.output_messages = [_chat_output(choice.message, choice.finish_reason) for choice in choices]

    # --- Responses API ------------------------------------------------------------------------------

    def responses_request(self, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> LLMCall:
        call = self._call(gv.OP_CHAT, instance, kwargs, gv.OPENAI_API_TYPE_RESPONSES)
        self._common_params(call, kwargs)
        put_number(call.attributes, attr.GEN_AI_REQUEST_MAX_TOKENS, kwargs.get("max_output_tokens"))
        conversation = kwargs.get("conversation")
        conversation_id = conversation if isinstance(conversation, str) else get(conversation, "id")
        if isinstance(conversation_id, str):
            call.attributes[attr.GEN_AI_CONVERSATION_ID] = conversation_id
        if self.handler.capture_content:
            call.input_messages = _responses_input(kwargs.get("input"))
            instructions = kwargs.get("instructions")
            if isinstance(instructions, str):
                call.system_instructions = [text_part(instructions)]
            call.tool_definitions = _tool_definitions(kwargs.get("tools"))
        return call

    def responses_response(self, call: LLMCall, result: Any) -> None:
        self._response_meta(call, result)
        self._usage(call, getattr(result, "usage", None))
        status = getattr(result, "status", None)
        reason = _responses_finish_reason(result, status)
        if reason:
            call.finish_reasons = [reason]
        if self.handler.capture_content:
            call.output_messages = [_responses_output(getattr(result, "output", None) or (), reason)]

    # --- legacy completions -------------------------------------------------------------------------

    def completions_request(self, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> LLMCall:
        call = self._call(gv.OP_TEXT_COMPLETION, instance, kwargs, None)
        self._common_params(call, kwargs)
        put_number(call.attributes, attr.GEN_AI_REQUEST_MAX_TOKENS, kwargs.get("max_tokens"))
        if self.handler.capture_content:
            prompt = kwargs.get("prompt")
            prompts = [prompt] if isinstance(prompt, str) else prompt if isinstance(prompt, list) else []
            call.input_messages = [message("user", [text_part(p)]) for p in prompts if isinstance(p, str)]
        return call

    def completions_response(self, call: LLMCall, result: Any) -> None:
        self._response_meta(call, result)
        choices = getattr(result, "choices", None) or ()
        call.finish_reasons = [choice.finish_reason or "" for choice in choices]
        self._usage(call, getattr(result, "usage", None))
        if self.handler.capture_content:
            call.output_messages = [
                message("assistant", [text_part(choice.text or "")], finish_reason=choice.finish_reason or "")
                for choice in choices
            ]

    # --- embeddings ---------------------------------------------------------------------------------

    def embeddings_request(self, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> LLMCall:
        call = self._call(gv.OP_EMBEDDINGS, instance, kwargs, None)
        encoding = kwargs.get("encoding_format")
        if isinstance(encoding, str):
            call.attributes[gv.GEN_AI_REQUEST_ENCODING_FORMATS] = [encoding]
        dimensions = integer(kwargs.get("dimensions"))
        if dimensions is not None:
            call.attributes[gv.GEN_AI_EMBEDDINGS_DIMENSION_COUNT] = dimensions
        return call

    def embeddings_response(self, call: LLMCall, result: Any) -> None:
        model = getattr(result, "model", None)
        if isinstance(model, str):
            call.response_model = model
        usage = getattr(result, "usage", None)
        if usage is not None:
            call.input_tokens = integer(getattr(usage, "prompt_tokens", None))
        data = getattr(result, "data", None)
        if data and "dimensions" not in call.attributes:
            vector = getattr(data[0], "embedding", None)
            if isinstance(vector, list):
                call.response_attributes = {gv.GEN_AI_EMBEDDINGS_DIMENSION_COUNT: len(vector)}


def _parsed(response: Callable[[LLMCall, Any], None]) -> Callable[[LLMCall, Any], None]:
    """``response`` reading the parsed result of a ``client.….with_raw_response.create(…)`` call too.

    Such a call (langchain-openai makes every call this way) returns the SDK's ``LegacyAPIResponse``, whose
    ``parse()`` gives the usual object and caches it, so the caller's own ``parse()`` gets the same one. A
    streamed raw response is left alone: parsing it would start a second reader of the stream."""

    def read(call: LLMCall, result: Any) -> None:
        if type(result).__name__ == "LegacyAPIResponse" and not getattr(result, "_stream", False):
            try:
                result = result.parse()
            except Exception:
                _log.debug("Could not parse a raw OpenAI response.", exc_info=True)
                return
        response(call, result)

    return read


def _bound(request: RequestFn) -> Callable[[GenAIHandler], RequestFn]:
    """A request builder for a request function already bound to the handler (the adapter's)."""
    return lambda _handler: request


# --- content: chat messages -------------------------------------------------------------------------


def _content_parts(content: Any) -> list[Part]:
    if content is None:
        return []
    if isinstance(content, str):
        return [text_part(content)]
    parts: list[Part] = []
    for item in content:
        kind = get(item, "type")
        if kind in ("text", "input_text", "output_text"):
            parts.append(text_part(get(item, "text") or ""))
        elif kind == "refusal":
            parts.append(text_part(get(item, "refusal") or ""))
        elif kind in ("image_url", "input_image"):
            image = get(item, "image_url")
            parts.append(image_url_part(image if isinstance(image, str) else get(image, "url")))
        elif kind in ("input_audio", "file", "input_file"):
            parts.append({"type": "file" if "file" in kind else "blob", "modality": kind})
        else:
            parts.append({"type": str(kind)})
    return parts


def _chat_message(item: Any) -> Message:
    role = get(item, "role") or "user"
    if role == "tool":
        return message("tool", [tool_response_part(get(item, "tool_call_id"), get(item, "content"))])
    parts = _content_parts(get(item, "content"))
    parts.extend(tool_call_parts(get(item, "tool_calls")))
    name = get(item, "name")
    return message(role, parts, name=name) if isinstance(name, str) else message(role, parts)


def _chat_output(msg: Any, finish_reason: Any) -> Message:
    parts = _content_parts(getattr(msg, "content", None))
    parts.extend(tool_call_parts(getattr(msg, "tool_calls", None)))
    return message(getattr(msg, "role", None) or "assistant", parts, finish_reason=finish_reason or "")


def _tool_definitions(tools: Any) -> list[dict[str, Any]] | None:
    if not given(tools):
        return None
    definitions: list[dict[str, Any]] = []
    for tool in tools:
        kind = get(tool, "type") or "function"
        function = get(tool, "function")
        source = function if function is not None else tool
        definition: dict[str, Any] = {"type": kind, "name": get(source, "name")}
        description = get(source, "description")
        if description:
            definition["description"] = description
        parameters = get(source, "parameters")
        if parameters is not None:
            definition["parameters"] = parameters
        definitions.append(definition)
    return definitions or None


def _output_type(response_format: Any) -> str | None:
    kind = get(response_format, "type") if given(response_format) else None
    if kind in ("json_schema", "json_object"):
        return gv.OUTPUT_TYPE_JSON
    if kind == "text":
        return gv.OUTPUT_TYPE_TEXT
    if isinstance(response_format, type):  # parse(response_format=PydanticModel)
        return gv.OUTPUT_TYPE_JSON
    return None


# --- content: Responses API -------------------------------------------------------------------------


def _responses_input(value: Any) -> list[Message]:
    if isinstance(value, str):
        return [message("user", [text_part(value)])]
    messages: list[Message] = []
    for item in value or ():
        kind = get(item, "type")
        if kind == "function_call":
            messages.append(
                message(
                    "assistant",
                    [tool_call_part(get(item, "call_id"), get(item, "name"), get(item, "arguments"))],
                )
            )
        elif kind == "function_call_output":
            messages.append(message("tool", [tool_response_part(get(item, "call_id"), get(item, "output"))]))
        else:
            messages.append(message(get(item, "role") or "user", _content_parts(get(item, "content"))))
    return messages


def _responses_output(output: Any, finish_reason: str | None) -> Message:
    parts: list[Part] = []
    for item in output:
        kind = getattr(item, "type", None)
        if kind == "message":
            parts.extend(_content_parts(getattr(item, "content", None)))
        elif kind == "function_call":
            parts.append(tool_call_part(item.call_id, item.name, item.arguments))
        elif kind == "reasoning":
            summary = " ".join(getattr(s, "text", "") for s in getattr(item, "summary", None) or ())
            parts.append({"type": "reasoning", "content": summary})
        elif kind:
            parts.append({"type": str(kind)})
    return message("assistant", parts, finish_reason=finish_reason or "")


def _responses_finish_reason(result: Any, status: Any) -> str | None:
    if status == "completed":
        output = getattr(result, "output", None) or ()
        if any(getattr(item, "type", None) == "function_call" for item in output):
            return "tool_calls"
        return "stop"
    if status == "incomplete":
        details = getattr(result, "incomplete_details", None)
        reason = getattr(details, "reason", None)
        return "length" if reason == "max_output_tokens" else str(reason or "incomplete")
    if status in ("failed", "cancelled"):
        return "error" if status == "failed" else "cancelled"
    return None


# --- streams ----------------------------------------------------------------------------------------


class _ChatStreamState:
    """Per-stream state of a chat/legacy-completion stream (mixed into the sync and async wrappers).

    Per chunk only references are kept (first chunk, last usage block, finish reasons as they arrive);
    text and tool-call fragments are accumulated only when content capture is on."""

    _self_first: Any
    _self_usage: Any
    _self_hide_usage: bool
    _self_reasons: dict[int, str] | None
    _self_texts: dict[int, list[str]] | None
    _self_tools: dict[int, dict[int, list[Any]]] | None
    _self_handler: GenAIHandler
    _self_call: LLMCall

    def _llmo_init(self) -> None:
        self._self_first = None
        self._self_usage = None
        self._self_hide_usage = self._self_call.private_usage_chunk
        self._self_reasons = None
        capture = self._self_handler.capture_content
        self._self_texts = {} if capture else None
        self._self_tools = {} if capture else None

    def _llmo_on_chunk(self, chunk: Any) -> bool:
        if self._self_first is None:
            self._self_first = chunk
        usage = chunk.usage
        choices = chunk.choices
        if usage is not None:
            self._self_usage = usage
            if self._self_hide_usage and not choices:
                return True  # the usage chunk the instrumentation asked for: not the caller's
        for choice in choices:
            reason = choice.finish_reason
            if reason is not None:
                if self._self_reasons is None:
                    self._self_reasons = {}
                self._self_reasons[choice.index] = reason
            if self._self_texts is not None:
                self._llmo_keep_content(choice)
        return False

    def _llmo_keep_content(self, choice: Any) -> None:
        assert self._self_texts is not None and self._self_tools is not None
        delta = getattr(choice, "delta", None)
        text = getattr(delta, "content", None) if delta is not None else getattr(choice, "text", None)
        if text:
            self._self_texts.setdefault(choice.index, []).append(text)
        for tool_call in getattr(delta, "tool_calls", None) or ():
            slot = self._self_tools.setdefault(choice.index, {}).setdefault(tool_call.index, [None, None, []])
            if tool_call.id:
                slot[0] = tool_call.id
            function = tool_call.function
            if function is not None:
                if function.name:
                    slot[1] = function.name
                if function.arguments:
                    slot[2].append(function.arguments)

    def _llmo_on_end(self) -> None:
        call = self._self_call
        if self._self_first is not None:
            _Adapter._response_meta(call, self._self_first)
        _Adapter._usage(call, self._self_usage)
        reasons = self._self_reasons or {}
        if reasons:
            call.finish_reasons = [reasons[index] for index in sorted(reasons)]
        if self._self_texts is not None and self._self_tools is not None:
            indexes = sorted(set(self._self_texts) | set(self._self_tools) | set(reasons))
            outputs: list[Message] = []
            for index in indexes:
                parts: list[Part] = []
                text = "".join(self._self_texts.get(index, ()))
                if text:
                    parts.append(text_part(text))
                for _, (call_id, name, fragments) in sorted(self._self_tools.get(index, {}).items()):
                    parts.append(tool_call_part(call_id, name, "".join(fragments)))
                outputs.append(message("assistant", parts, finish_reason=reasons.get(index, "")))
            call.output_messages = outputs


class _SyncChatStream(_ChatStreamState, SyncStreamWrapper):
    pass


class _AsyncChatStream(_ChatStreamState, AsyncStreamWrapper):
    pass


_TERMINAL_RESPONSE_EVENTS = frozenset({"response.completed", "response.incomplete", "response.failed"})


class _ResponsesStreamState:
    """Responses API streams: the terminal event carries the whole response, usage included."""

    _self_response: Any
    _self_handler: GenAIHandler
    _self_call: LLMCall

    def _llmo_init(self) -> None:
        self._self_response = None

    def _llmo_on_chunk(self, chunk: Any) -> None:
        kind = chunk.type
        if kind in _TERMINAL_RESPONSE_EVENTS or kind == "response.created":
            self._self_response = chunk.response

    def _llmo_on_end(self) -> None:
        response = self._self_response
        if response is not None:
            adapter = _Adapter(self._self_handler, False, {})
            adapter.responses_response(self._self_call, response)


class _SyncResponsesStream(_ResponsesStreamState, SyncStreamWrapper):
    pass


class _AsyncResponsesStream(_ResponsesStreamState, AsyncStreamWrapper):
    pass
