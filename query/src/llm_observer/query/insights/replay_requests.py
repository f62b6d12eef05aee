"""Rebuilding a recorded call as its provider SDK request (:func:`build_request`): OpenAI Chat Completions,
the Responses API and legacy completions, Anthropic Messages — faithful where the span says enough, with the
fallbacks :mod:`llm_observer.query.insights.replay` documents where it does not."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from llm_observer.semconv import genai_values as gv

if TYPE_CHECKING:
    pass

from llm_observer.query.insights.replay_record import (
    RecordedCall,
    RequestNotRebuilt,
    UnsupportedProvider,
    parsed_json,
)

_ANTHROPIC_DEFAULT_MAX_TOKENS = 4096
# Chat Completions models that refuse ``max_tokens`` and want ``max_completion_tokens``.
_MAX_COMPLETION_PREFIXES = ("o1", "o3", "o4", "gpt-5")


# --- rebuilding requests ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProviderRequest:
    """One SDK call: the provider, which API (``chat``, ``responses``, ``completions``, ``messages``) and
    its keyword arguments."""

    provider: str
    api: str
    kwargs: Mapping[str, Any]

    @property
    def stream(self) -> bool:
        return self.kwargs.get("stream") is True


def _parts(message: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [part for part in message.get("parts") or () if isinstance(part, Mapping)]


def _texts(parts: Iterable[Mapping[str, Any]]) -> list[str]:
    return [str(part.get("content") or "") for part in parts if part.get("type") == "text"]


def _system_text(call: RecordedCall) -> str | None:
    if not call.system_instructions:
        return None
    return "\n".join(_texts(call.system_instructions)) or None


def _json_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _unsendable(call: RecordedCall, part: Mapping[str, Any]) -> RequestNotRebuilt:
    return RequestNotRebuilt(
        f"span {call.span_id}: a {part.get('type')} part ({part.get('modality') or 'content'}) was not "
        "recorded in full, so the request cannot be rebuilt"
    )


def _openai_content(call: RecordedCall, parts: Sequence[Mapping[str, Any]], responses: bool) -> Any:
    items: list[dict[str, Any]] = []
    for part in parts:
        kind = part.get("type")
        if kind == "text":
            text_type = "input_text" if responses else "text"
            items.append({"type": text_type, "text": str(part.get("content") or "")})
        elif kind == "uri" and part.get("modality") == "image":
            if responses:
                items.append({"type": "input_image", "image_url": part.get("uri")})
            else:
                items.append({"type": "image_url", "image_url": {"url": part.get("uri")}})
        elif kind in ("tool_call", "tool_call_response", "reasoning"):
            continue
        else:
            raise _unsendable(call, part)
    if all(item["type"] in ("text", "input_text") for item in items):
        return "\n".join(item["text"] for item in items)
    return items


def _openai_tool_calls(parts: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "id": part.get("id"),
            "type": "function",
            "function": {"name": part.get("name"), "arguments": _json_text(part.get("arguments"))},
        }
        for part in parts
        if part.get("type") == "tool_call"
    ]


def _openai_messages(call: RecordedCall) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    system = _system_text(call)
    if system is not None:
        messages.append({"role": "system", "content": system})
    for item in call.input_messages or ():
        role = str(item.get("role") or "user")
        parts = _parts(item)
        if role == "tool":
            for part in parts:
                if part.get("type") == "tool_call_response":
                    messages.append(
                        {
                            "role": "tool",
                            "tool_call_id": part.get("id"),
                            "content": _json_text(part.get("response")),
                        }
                    )
            continue
        entry: dict[str, Any] = {"role": role}
        content = _openai_content(call, parts, responses=False)
        tool_calls = _openai_tool_calls(parts) if role == "assistant" else []
        entry["content"] = content if content or not tool_calls else None
        if tool_calls:
            entry["tool_calls"] = tool_calls
        if isinstance(item.get("name"), str):
            entry["name"] = item["name"]
        messages.append(entry)
    return messages


def _openai_tools(call: RecordedCall, responses: bool) -> list[dict[str, Any]] | None:
    if not call.tool_definitions:
        return None
    tools: list[dict[str, Any]] = []
    for definition in call.tool_definitions:
        kind = definition.get("type") or "function"
        if kind != "function":
            tools.append({"type": kind})
            continue
        function: dict[str, Any] = {"name": definition.get("name")}
        if definition.get("description"):
            function["description"] = definition["description"]
        if definition.get("parameters") is not None:
            function["parameters"] = definition["parameters"]
        tools.append(
            {"type": "function", **function} if responses else {"type": "function", "function": function}
        )
    return tools


def _common_openai(call: RecordedCall, kwargs: dict[str, Any]) -> None:
    for key, value in (
        ("temperature", call.temperature),
        ("top_p", call.top_p),
        ("frequency_penalty", call.frequency_penalty),
        ("presence_penalty", call.presence_penalty),
        ("seed", call.seed),
    ):
        if value is not None:
            kwargs[key] = value
    if call.stop_sequences:
        kwargs["stop"] = list(call.stop_sequences)
    if call.choice_count is not None and call.choice_count != 1:
        kwargs["n"] = call.choice_count


def _openai_chat(call: RecordedCall, model: str) -> ProviderRequest:
    kwargs: dict[str, Any] = {"model": model, "messages": _openai_messages(call)}
    _common_openai(call, kwargs)
    if call.max_tokens is not None:
        key = "max_completion_tokens" if model.lower().startswith(_MAX_COMPLETION_PREFIXES) else "max_tokens"
        kwargs[key] = call.max_tokens
    tools = _openai_tools(call, responses=False)
    if tools:
        kwargs["tools"] = tools
    if call.output_type == gv.OUTPUT_TYPE_JSON:
        kwargs["response_format"] = {"type": "json_object"}
    if call.stream:
        kwargs["stream"] = True
    return ProviderRequest(gv.PROVIDER_OPENAI, "chat", kwargs)


def _openai_responses(call: RecordedCall, model: str) -> ProviderRequest:
    items: list[dict[str, Any]] = []
    for item in call.input_messages or ():
        role = str(item.get("role") or "user")
        parts = _parts(item)
        for part in parts:
            if part.get("type") == "tool_call":
                items.append(
                    {
                        "type": "function_call",
                        "call_id": part.get("id"),
                        "name": part.get("name"),
                        "arguments": _json_text(part.get("arguments")),
                    }
                )
            elif part.get("type") == "tool_call_response":
                items.append(
                    {
                        "type": "function_call_output",
                        "call_id": part.get("id"),
                        "output": _json_text(part.get("response")),
                    }
                )
        content = _openai_content(call, parts, responses=True)
        if content:
            items.append({"role": role, "content": content})
    kwargs: dict[str, Any] = {"model": model, "input": items}
    system = _system_text(call)
    if system is not None:
        kwargs["instructions"] = system
    for key, value in (("temperature", call.temperature), ("top_p", call.top_p)):
        if value is not None:
            kwargs[key] = value
    if call.max_tokens is not None:
        kwargs["max_output_tokens"] = call.max_tokens
    tools = _openai_tools(call, responses=True)
    if tools:
        kwargs["tools"] = tools
    if call.stream:
        kwargs["stream"] = True
    return ProviderRequest(gv.PROVIDER_OPENAI, "responses", kwargs)


def _openai_completion(call: RecordedCall, model: str) -> ProviderRequest:
    prompts = ["\n".join(_texts(_parts(item))) for item in call.input_messages or ()]
    kwargs: dict[str, Any] = {"model": model, "prompt": prompts[0] if len(prompts) == 1 else prompts}
    _common_openai(call, kwargs)
    if call.max_tokens is not None:
        kwargs["max_tokens"] = call.max_tokens
    if call.stream:
        kwargs["stream"] = True
    return ProviderRequest(gv.PROVIDER_OPENAI, "completions", kwargs)


def _anthropic_blocks(call: RecordedCall, parts: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    for part in parts:
        kind = part.get("type")
        if kind == "text":
            blocks.append({"type": "text", "text": str(part.get("content") or "")})
        elif kind == "tool_call":
            arguments = part.get("arguments")
            if isinstance(arguments, str):
                arguments = parsed_json(arguments) if parsed_json(arguments) is not None else {}
            blocks.append(
                {"type": "tool_use", "id": part.get("id"), "name": part.get("name"), "input": arguments or {}}
            )
        elif kind == "tool_call_response":
            response = part.get("response")
            if isinstance(response, list):
                response = "\n".join(str(item) for item in response)
            blocks.append(
                {"type": "tool_result", "tool_use_id": part.get("id"), "content": _json_text(response)}
            )
        elif kind == "uri":
            blocks.append(
                {
                    "type": str(part.get("modality") or "image"),
                    "source": {"type": "url", "url": part.get("uri")},
                }
            )
        elif kind == "reasoning":
            # A thinking block is only accepted back with the signature the span does not record.
            continue
        else:
            raise _unsendable(call, part)
    return blocks


def _anthropic_messages(call: RecordedCall, model: str) -> ProviderRequest:
    messages: list[dict[str, Any]] = []
    system_parts: list[str] = []
    for item in call.input_messages or ():
        role = str(item.get("role") or "user")
        blocks = _anthropic_blocks(call, _parts(item))
        if role == "system":
            system_parts.extend(block["text"] for block in blocks if block["type"] == "text")
            continue
        role = "assistant" if role == "assistant" else "user"  # tool results go back as a user turn
        if messages and messages[-1]["role"] == role:
            messages[-1]["content"].extend(blocks)
        else:
            messages.append({"role": role, "content": blocks})
    for entry in messages:
        blocks = entry["content"]
        if len(blocks) == 1 and blocks[0]["type"] == "text":
            entry["content"] = blocks[0]["text"]  # a plain-text turn, as it is usually sent
    kwargs: dict[str, Any] = {
        "model": model,
        "messages": messages,
        "max_tokens": call.max_tokens if call.max_tokens is not None else _ANTHROPIC_DEFAULT_MAX_TOKENS,
    }
    system = _system_text(call)
    if system is not None:
        system_parts.insert(0, system)
    if system_parts:
        kwargs["system"] = "\n".join(system_parts)
    for key, value in (("temperature", call.temperature), ("top_p", call.top_p), ("top_k", call.top_k)):
        if value is not None:
            kwargs[key] = value
    if call.stop_sequences:
        kwargs["stop_sequences"] = list(call.stop_sequences)
    if call.tool_definitions:
        kwargs["tools"] = [
            {
                "name": definition.get("name"),
                **({"description": definition["description"]} if definition.get("description") else {}),
                "input_schema": definition.get("parameters") or {"type": "object", "properties": {}},
            }
            for definition in call.tool_definitions
        ]
    if call.stream:
        kwargs["stream"] = True
    return ProviderRequest(gv.PROVIDER_ANTHROPIC, "messages", kwargs)


def build_request(call: RecordedCall, model: str | None = None) -> ProviderRequest:
    """The SDK call that re-issues ``call`` (with ``model`` instead of the recorded request model).

    Raises :class:`UnsupportedProvider` or :class:`RequestNotRebuilt`."""
    chosen = model or call.request_model
    if not chosen:
        raise RequestNotRebuilt(f"span {call.span_id} names no model")
    if call.provider == gv.PROVIDER_OPENAI:
        if call.operation == gv.OP_TEXT_COMPLETION:
            return _openai_completion(call, chosen)
        if call.api_type == gv.OPENAI_API_TYPE_RESPONSES:
            return _openai_responses(call, chosen)
        return _openai_chat(call, chosen)
    if call.provider == gv.PROVIDER_ANTHROPIC:
        return _anthropic_messages(call, chosen)
    raise UnsupportedProvider(f"replay does not support provider {call.provider or '(none)'} yet")
