"""OpenTelemetry instrumentation for Amazon Bedrock through ``boto3`` / ``botocore`` (``bedrock-runtime``).

Instruments the ``Converse``, ``ConverseStream`` and ``InvokeModel`` operations of every ``bedrock-runtime``
client (``boto3.client("bedrock-runtime").converse(...)`` and friends) by wrapping botocore's single API-call
entry point; calls to other AWS services pass straight through.

- Converse / ConverseStream: span ``chat {modelId}``; the stream's usage comes from its final ``metadata``
  event. Bedrock reports cache reads and writes apart from ``inputTokens``, so the input count is their sum
  (the conventions' input count includes cached tokens).
- InvokeModel: the request and response bodies are read for the model families that use them —
  Anthropic Claude messages (``chat``), Amazon Titan text (``text_completion``) and embeddings
  (``embeddings``), Meta Llama (``text_completion``), Amazon Nova messages (``chat``); for any other model
  the usage comes from Bedrock's ``X-Amzn-Bedrock-Input/Output-Token-Count`` response headers. The response
  body is read once and handed back to the caller as an equivalent, unread ``StreamingBody``.

Provider name ``aws.bedrock``; ``error.type`` is the AWS error code (``ThrottlingException``…); the AWS
request id is recorded as ``aws.request_id``. botocore is synchronous, so there is no async path
(aiobotocore is not covered).
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from typing import Any

from opentelemetry.util.types import AttributeValue

from llm_observer.instrumentation._instrumentor import Operation, ProviderInstrumentor, Target
from llm_observer.instrumentation._streams import SyncStreamWrapper
from llm_observer.instrumentation._util import (
    ErrorTypeFn,
    host_port,
    integer,
    put_number,
    put_numbers,
    put_strings,
)
from llm_observer.instrumentation._wrappers import RequestFn, StreamFn
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

__all__ = ["BedrockInstrumentor"]

_instruments = ("botocore >= 1.34.116, < 2",)  # the first botocore with Converse / ConverseStream
# Every botocore client call goes through this one method; the request function picks Bedrock's.
_TARGETS = (Target("botocore.client", "BaseClient._make_api_call", "api_call"),)
_SERVICE = "bedrock-runtime"
_OPERATIONS = frozenset({"Converse", "ConverseStream", "InvokeModel"})
AWS_REQUEST_ID = "aws.request_id"


def _error_type(exc: BaseException) -> str | None:
    response = getattr(exc, "response", None)
    if isinstance(response, Mapping):
        code = response.get("Error", {}).get("Code")
        if isinstance(code, str) and code:
            return code
    return None


def _set_request_id(call: LLMCall, result: Any) -> None:
    metadata = result.get("ResponseMetadata") if isinstance(result, Mapping) else None
    request_id = metadata.get("RequestId") if isinstance(metadata, Mapping) else None
    if request_id:
        _response_attribute(call, AWS_REQUEST_ID, str(request_id))


def _response_attribute(call: LLMCall, key: str, value: AttributeValue) -> None:
    if call.response_attributes is None:
        call.response_attributes = {}
    call.response_attributes[key] = value


def _finish_reason(reason: Any) -> str:
    text = str(reason or "")
    return {
        "end_turn": "stop",
        "stop_sequence": "stop",
        "stop": "stop",
        "FINISH": "stop",
        "tool_use": "tool_call",
        "max_tokens": "length",
        "length": "length",
        "LENGTH": "length",
        "guardrail_intervened": "content_filter",
        "content_filtered": "content_filter",
        "CONTENT_FILTERED": "content_filter",
    }.get(text, text)


# --- request -------------------------------------------------------------------------------------------


def _request(handler: GenAIHandler) -> RequestFn:
    def request(instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> LLMCall | None:
        operation = args[0] if args else kwargs.get("operation_name")
        if operation not in _OPERATIONS:
            return None
        meta = getattr(instance, "meta", None)
        if getattr(getattr(meta, "service_model", None), "service_name", None) != _SERVICE:
            return None
        params = args[1] if len(args) > 1 else kwargs.get("api_params")
        if not isinstance(params, Mapping):
            return None
        model = params.get("modelId")
        call = LLMCall(gv.OP_CHAT, gv.PROVIDER_AWS_BEDROCK, str(model) if model else None)
        endpoint = getattr(meta, "endpoint_url", None)
        if endpoint:
            call.server_address, call.server_port = host_port(str(endpoint))
        if operation == "InvokeModel":
            _invoke_request(call, params, handler.capture_content)
        else:
            call.streaming = operation == "ConverseStream"
            _converse_request(call, params, handler.capture_content)
        return call

    return request


def _converse_request(call: LLMCall, params: Mapping[str, Any], capture: bool) -> None:
    config = params.get("inferenceConfig") or {}
    put_numbers(call.attributes, config, _CONVERSE_PARAMS)
    put_strings(call.attributes, attr.GEN_AI_REQUEST_STOP_SEQUENCES, config.get("stopSequences"))
    extra = params.get("additionalModelRequestFields")
    if isinstance(extra, Mapping):
        put_number(call.attributes, attr.GEN_AI_REQUEST_TOP_K, extra.get("top_k"))
    if not capture:
        return
    call.input_messages = _converse_messages(params.get("messages"))
    system = [text_part(str(block["text"])) for block in params.get("system") or () if "text" in block]
    call.system_instructions = system or None
    tools = (params.get("toolConfig") or {}).get("tools") or ()
    definitions = []
    for tool in tools:
        spec = tool.get("toolSpec")
        if spec:
            definitions.append(
                {
                    "type": "function",
                    "name": spec.get("name"),
                    "description": spec.get("description"),
                    "parameters": (spec.get("inputSchema") or {}).get("json"),
                }
            )
    call.tool_definitions = definitions or None


def _converse_messages(items: Any) -> list[Message]:
    """Converse-shaped messages (also Nova's InvokeModel body)."""
    return [
        message(str(item.get("role", "user")), _converse_parts(item.get("content"))) for item in items or ()
    ]


def _converse_parts(content: Any) -> list[Part]:
    parts: list[Part] = []
    for block in content or ():
        if "text" in block:
            parts.append(text_part(str(block["text"])))
        elif "toolUse" in block:
            use = block["toolUse"]
            parts.append(tool_call_part(use.get("toolUseId"), use.get("name"), use.get("input")))
        elif "toolResult" in block:
            result = block["toolResult"]
            outputs = [item.get("text", item.get("json")) for item in result.get("content") or ()]
            parts.append(
                tool_response_part(result.get("toolUseId"), outputs[0] if len(outputs) == 1 else outputs)
            )
        elif "reasoningContent" in block:
            reasoning = block["reasoningContent"].get("reasoningText") or {}
            parts.append({"type": "reasoning", "content": reasoning.get("text", "")})
        else:
            kind = next(iter(block), "unknown")
            part: Part = {"type": "blob", "modality": kind}
            media = block.get(kind)
            if isinstance(media, Mapping) and "format" in media:
                part["format"] = media["format"]
            parts.append(part)
    return parts


def _body_json(body: Any) -> Any:
    if isinstance(body, bytes | bytearray):
        return json.loads(body)
    if isinstance(body, str):
        return json.loads(body)
    return None  # a file object: read by botocore, not by us


def _family(model: str) -> str:
    lowered = model.lower()
    for key in ("anthropic", "titan-embed", "titan", "llama", "nova"):
        if key in lowered:
            return key
    return "other"


def _invoke_request(call: LLMCall, params: Mapping[str, Any], capture: bool) -> None:
    family = _family(call.request_model or "")
    try:
        body = _body_json(params.get("body"))
    except ValueError:
        body = None
    if not isinstance(body, Mapping):
        body = {}
    if family == "anthropic":
        put_numbers(call.attributes, body, _ANTHROPIC_PARAMS)
        put_strings(call.attributes, attr.GEN_AI_REQUEST_STOP_SEQUENCES, body.get("stop_sequences"))
        if capture:
            call.input_messages = [
                message(str(item.get("role", "user")), _anthropic_parts(item.get("content")))
                for item in body.get("messages") or ()
            ]
            system = body.get("system")
            if system:
                call.system_instructions = _anthropic_parts(system)
            tools = body.get("tools")
            if tools:
                call.tool_definitions = [
                    {
                        "type": "function",
                        "name": tool.get("name"),
                        "description": tool.get("description"),
                        "parameters": tool.get("input_schema"),
                    }
                    for tool in tools
                ]
    elif family == "titan-embed":
        call.operation = gv.OP_EMBEDDINGS
        dimension = integer(body.get("dimensions"))
        if dimension is not None:
            call.attributes[gv.GEN_AI_EMBEDDINGS_DIMENSION_COUNT] = dimension
    elif family == "titan":
        call.operation = gv.OP_TEXT_COMPLETION
        config = body.get("textGenerationConfig") or {}
        put_numbers(call.attributes, config, _TITAN_PARAMS)
        put_strings(call.attributes, attr.GEN_AI_REQUEST_STOP_SEQUENCES, config.get("stopSequences"))
        if capture and body.get("inputText") is not None:
            call.input_messages = [message("user", [text_part(str(body["inputText"]))])]
    elif family == "llama":
        call.operation = gv.OP_TEXT_COMPLETION
        put_numbers(call.attributes, body, _LLAMA_PARAMS)
        if capture and body.get("prompt") is not None:
            call.input_messages = [message("user", [text_part(str(body["prompt"]))])]
    elif family == "nova":
        put_numbers(call.attributes, body.get("inferenceConfig") or {}, _NOVA_PARAMS)
        if capture:
            call.input_messages = _converse_messages(body.get("messages"))
    elif "messages" not in body:
        call.operation = gv.OP_TEXT_COMPLETION


# Request parameters by model family: (field, attribute).
_MAX, _TEMPERATURE, _TOP_P, _TOP_K = (
    attr.GEN_AI_REQUEST_MAX_TOKENS,
    attr.GEN_AI_REQUEST_TEMPERATURE,
    attr.GEN_AI_REQUEST_TOP_P,
    attr.GEN_AI_REQUEST_TOP_K,
)
_CONVERSE_PARAMS = (("maxTokens", _MAX), ("temperature", _TEMPERATURE), ("topP", _TOP_P))
_ANTHROPIC_PARAMS = (
    ("max_tokens", _MAX),
    ("temperature", _TEMPERATURE),
    ("top_p", _TOP_P),
    ("top_k", _TOP_K),
)
_TITAN_PARAMS = (("maxTokenCount", _MAX), ("temperature", _TEMPERATURE), ("topP", _TOP_P))
_LLAMA_PARAMS = (("max_gen_len", _MAX), ("temperature", _TEMPERATURE), ("top_p", _TOP_P))
_NOVA_PARAMS = (("max_new_tokens", _MAX), ("temperature", _TEMPERATURE), ("topP", _TOP_P), ("topK", _TOP_K))


def _anthropic_parts(content: Any) -> list[Part]:
    if isinstance(content, str):
        return [text_part(content)]
    parts: list[Part] = []
    for block in content or ():
        kind = block.get("type")
        if kind == "text":
            parts.append(text_part(str(block.get("text", ""))))
        elif kind == "tool_use":
            parts.append(tool_call_part(block.get("id"), block.get("name"), block.get("input")))
        elif kind == "tool_result":
            parts.append(tool_response_part(block.get("tool_use_id"), block.get("content")))
        elif kind == "thinking":
            parts.append({"type": "reasoning", "content": str(block.get("thinking", ""))})
        else:
            parts.append({"type": "blob", "modality": str(kind)})
    return parts


# --- response ------------------------------------------------------------------------------------------


def _converse_usage(call: LLMCall, usage: Any) -> None:
    if isinstance(usage, Mapping):
        _usage(call, usage, "inputTokens", "outputTokens", "cacheReadInputTokens", "cacheWriteInputTokens")


def _usage(
    call: LLMCall, usage: Mapping[str, Any], uncached: str, output: str, read: str, write: str
) -> None:
    """Token counts from a usage block whose input count leaves out cache reads and writes (Converse and
    Anthropic both count them apart), under its own key names."""
    fresh = integer(usage.get(uncached))
    cache_read = integer(usage.get(read))
    cache_write = integer(usage.get(write))
    if fresh is not None:
        call.input_tokens = fresh + (cache_read or 0) + (cache_write or 0)
    produced = integer(usage.get(output))
    if produced is not None:
        call.output_tokens = produced
    if cache_read is not None:
        call.cache_read_tokens = cache_read
    if cache_write is not None:
        call.cache_creation_tokens = cache_write


def _response(call: LLMCall, result: Any) -> None:
    if not isinstance(result, dict):
        return
    _set_request_id(call, result)
    if "body" in result:
        _invoke_response(call, result)
        return
    reason = result.get("stopReason")
    if reason:
        call.finish_reasons = [str(reason)]
    _converse_usage(call, result.get("usage"))
    if call.input_messages is not None:
        reply = (result.get("output") or {}).get("message") or {}
        call.output_messages = [
            message("assistant", _converse_parts(reply.get("content")), finish_reason=_finish_reason(reason))
        ]


def _invoke_response(call: LLMCall, result: dict[str, Any]) -> None:
    from botocore.response import StreamingBody

    raw = result["body"].read()
    # The caller reads the body after us: give it an unread copy of the same bytes.
    result["body"] = StreamingBody(io.BytesIO(raw), len(raw))
    headers = (result.get("ResponseMetadata") or {}).get("HTTPHeaders") or {}
    header_in = headers.get("x-amzn-bedrock-input-token-count")
    header_out = headers.get("x-amzn-bedrock-output-token-count")
    if header_in is not None and str(header_in).isdigit():
        call.input_tokens = int(header_in)
    if header_out is not None and str(header_out).isdigit():
        call.output_tokens = int(header_out)
    try:
        body = json.loads(raw)
    except ValueError:
        return
    if not isinstance(body, Mapping):
        return
    family = _family(call.request_model or "")
    capture = call.input_messages is not None
    reason: Any = None
    parts: list[Part] = []
    if family == "anthropic":
        call.response_id = body.get("id")
        call.response_model = body.get("model")
        reason = body.get("stop_reason")
        usage = body.get("usage") or {}
        _usage(
            call,
            usage,
            "input_tokens",
            "output_tokens",
            "cache_read_input_tokens",
            "cache_creation_input_tokens",
        )
        parts = _anthropic_parts(body.get("content")) if capture else []
    elif family == "titan-embed":
        tokens = integer(body.get("inputTextTokenCount"))
        if tokens is not None:
            call.input_tokens = tokens
        vector = body.get("embedding")
        if isinstance(vector, list):
            _response_attribute(call, gv.GEN_AI_EMBEDDINGS_DIMENSION_COUNT, len(vector))
        return
    elif family == "titan":
        tokens = integer(body.get("inputTextTokenCount"))
        if tokens is not None:
            call.input_tokens = tokens
        results = body.get("results") or []
        if results:
            first = results[0]
            reason = first.get("completionReason")
            output = integer(first.get("tokenCount"))
            if output is not None:
                call.output_tokens = output
            if capture:
                parts = [text_part(str(first.get("outputText", "")))]
    elif family == "llama":
        reason = body.get("stop_reason")
        prompt = integer(body.get("prompt_token_count"))
        generated = integer(body.get("generation_token_count"))
        if prompt is not None:
            call.input_tokens = prompt
        if generated is not None:
            call.output_tokens = generated
        if capture:
            parts = [text_part(str(body.get("generation", "")))]
    elif family == "nova":
        reason = body.get("stopReason")
        _converse_usage(call, body.get("usage"))
        if capture:
            parts = _converse_parts(((body.get("output") or {}).get("message") or {}).get("content"))
    if reason:
        call.finish_reasons = [str(reason)]
    if capture and (parts or reason):
        call.output_messages = [message("assistant", parts, finish_reason=_finish_reason(reason))]


# --- ConverseStream ------------------------------------------------------------------------------------


class _ConverseStream(SyncStreamWrapper):
    """Wraps the ``stream`` of a ConverseStream response: keeps the stop reason and the final metadata
    event; text and tool-use input pieces only when content is captured."""

    def _llmo_init(self) -> None:
        self._self_reason: Any = None
        self._self_metadata: Any = None
        self._self_blocks: dict[int, list[Any]] | None = {} if self._self_handler.capture_content else None

    def _llmo_on_chunk(self, chunk: Any) -> None:
        if "metadata" in chunk:
            self._self_metadata = chunk["metadata"]
        elif "messageStop" in chunk:
            self._self_reason = chunk["messageStop"].get("stopReason")
        elif self._self_blocks is not None:
            if "contentBlockStart" in chunk:
                event = chunk["contentBlockStart"]
                use = (event.get("start") or {}).get("toolUse")
                if use:
                    self._self_blocks[event.get("contentBlockIndex", 0)] = [
                        "tool",
                        use.get("toolUseId"),
                        use.get("name"),
                        [],
                    ]
            elif "contentBlockDelta" in chunk:
                event = chunk["contentBlockDelta"]
                delta = event.get("delta") or {}
                index = event.get("contentBlockIndex", 0)
                if "text" in delta:
                    self._self_blocks.setdefault(index, ["text", []])[1].append(delta["text"])
                elif "toolUse" in delta and index in self._self_blocks:
                    self._self_blocks[index][3].append(delta["toolUse"].get("input", ""))
                elif "reasoningContent" in delta:
                    piece = delta["reasoningContent"].get("text", "")
                    self._self_blocks.setdefault(index, ["reasoning", []])[1].append(piece)

    def _llmo_on_end(self) -> None:
        call = self._self_call
        if self._self_reason:
            call.finish_reasons = [str(self._self_reason)]
        if self._self_metadata is not None:
            _converse_usage(call, self._self_metadata.get("usage"))
        if self._self_blocks is not None:
            parts: list[Part] = []
            for index in sorted(self._self_blocks):
                block = self._self_blocks[index]
                if block[0] == "tool":
                    parts.append(tool_call_part(block[1], block[2], "".join(block[3])))
                elif block[0] == "reasoning":
                    parts.append({"type": "reasoning", "content": "".join(block[1])})
                else:
                    parts.append(text_part("".join(block[1])))
            extra = {"finish_reason": _finish_reason(self._self_reason)} if self._self_reason else {}
            call.output_messages = [message("assistant", parts, **extra)]


def _streams(handler: GenAIHandler, is_async: bool, error_type: ErrorTypeFn | None) -> StreamFn:
    def stream(call: LLMCall, result: Any) -> Any:
        if not call.streaming or not isinstance(result, dict) or "stream" not in result:
            return None
        _set_request_id(call, result)
        result["stream"] = _ConverseStream(result["stream"], handler, call, error_type)
        # The response dict goes back to the caller with its stream wrapped; the span ends with the stream.
        return result

    return stream


class BedrockInstrumentor(ProviderInstrumentor):
    """Instruments ``bedrock-runtime`` Converse, ConverseStream and InvokeModel calls made with boto3."""

    instruments = _instruments
    targets = _TARGETS
    operations = {"api_call": Operation(_request, _response, _streams)}
    error_type = staticmethod(_error_type)
