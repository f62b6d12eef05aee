"""Turn every legacy spelling of prompt and completion content into the current message shape.

Current shape (GenAI conventions v1.37+): a JSON list of ``{"role", "parts": [...], "name"?}``; output
messages add ``finish_reason``. Parts used here: ``{"type": "text", "content"}``, ``{"type": "tool_call",
"id", "name", "arguments"}`` (arguments parsed from JSON when they are JSON), ``{"type":
"tool_call_response", "id", "response"}`` and ``{"type": "uri", "modality", "uri"}``.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Mapping
from typing import Any

from llm_observer.kernel.batch import Attributes, Event
from llm_observer.semconv import attributes as A
from llm_observer.semconv import mappings as M

Message = dict[str, Any]
Part = dict[str, Any]


def _arguments(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _text_parts(content: Any) -> list[Part]:
    """Parts for a message ``content`` that may be text, a JSON list of provider parts, or a list."""
    if content is None:
        return []
    if isinstance(content, str):
        stripped = content.lstrip()
        if stripped.startswith("[") and stripped.endswith("]"):
            try:
                parsed = json.loads(content)
            except ValueError:
                parsed = None
            if (
                isinstance(parsed, list)
                and parsed
                and all(isinstance(p, dict) and "type" in p for p in parsed)
            ):
                return _provider_parts(parsed)
        return [{"type": "text", "content": content}]
    if isinstance(content, list):
        return _provider_parts([p for p in content if isinstance(p, dict)])
    return [{"type": "text", "content": str(content)}]


def _provider_parts(parts: Iterable[Mapping[str, Any]]) -> list[Part]:
    """Parts from OpenAI / Anthropic request content blocks."""
    out: list[Part] = []
    for part in parts:
        kind = part.get("type")
        if kind == "text" or kind == "input_text" or kind == "output_text":
            text = part.get("text", part.get("content"))
            out.append({"type": "text", "content": text if isinstance(text, str) else json.dumps(text)})
        elif kind == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, Mapping) else image
            out.append({"type": "uri", "modality": "image", "uri": url})
        elif kind == "tool_use":  # Anthropic
            out.append(
                {
                    "type": "tool_call",
                    "id": part.get("id"),
                    "name": part.get("name"),
                    "arguments": part.get("input"),
                }
            )
        elif kind == "tool_result":  # Anthropic
            out.append(
                {"type": "tool_call_response", "id": part.get("tool_use_id"), "response": part.get("content")}
            )
        else:
            out.append(dict(part))
    return out


def _openai_tool_calls(tool_calls: Any) -> list[Part]:
    out: list[Part] = []
    if not isinstance(tool_calls, list):
        return out
    for call in tool_calls:
        if not isinstance(call, Mapping):
            continue
        function = call.get("function")
        function = function if isinstance(function, Mapping) else {}
        out.append(
            {
                "type": "tool_call",
                "id": call.get("id"),
                "name": function.get("name", call.get("name")),
                "arguments": _arguments(function.get("arguments", call.get("arguments"))),
            }
        )
    return out


def provider_message(message: Mapping[str, Any], default_role: str = "user") -> Message:
    """A current-shape message from an OpenAI/Anthropic-style ``{role, content, tool_calls, ...}`` dict."""
    role = message.get("role") or default_role
    parts: list[Part]
    if role == "tool":
        parts = [
            {
                "type": "tool_call_response",
                "id": message.get("tool_call_id", message.get("id")),
                "response": message.get("content"),
            }
        ]
    else:
        parts = _text_parts(message.get("content"))
        parts.extend(_openai_tool_calls(message.get("tool_calls")))
    out: Message = {"role": role, "parts": parts}
    if message.get("name"):
        out["name"] = message["name"]
    return out


# --- indexed attribute families ---------------------------------------------------------------------------


def indexed_families(
    attributes: Attributes, prefixes: tuple[str, ...]
) -> dict[str, dict[int, dict[str, Any]]]:
    """``{prefix: {i: {rest_of_key: value}}}`` for every key ``prefix{i}.{rest}`` (e.g.
    ``gen_ai.prompt.0.role``), for one or two prefixes (neither a prefix of the other), in one pass."""
    first = prefixes[0]
    second = prefixes[-1]
    out: dict[str, dict[int, dict[str, Any]]] = {prefix: {} for prefix in prefixes}
    for key, value in attributes.items():
        # One C-level test per key keeps the common case (a key of no family) cheap.
        if not key.startswith(prefixes):
            continue
        prefix = first if key.startswith(first) else second
        index, _, rest = key[len(prefix) :].partition(".")
        if rest and index.isdigit():
            groups = out[prefix]
            fields = groups.get(int(index))
            if fields is None:
                fields = groups[int(index)] = {}
            fields[rest] = value
    return {prefix: dict(sorted(groups.items())) for prefix, groups in out.items()}


_SUB_FAMILIES = ("contents.", "tool_calls.")


def _sub_families(fields: Mapping[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A message's ``contents.{j}.*`` and ``tool_calls.{j}.*`` groups, in index order, in one pass."""
    contents: dict[int, dict[str, Any]] = {}
    calls: dict[int, dict[str, Any]] = {}
    for key, value in fields.items():
        if not key.startswith(_SUB_FAMILIES):
            continue
        groups, cut = (contents, 9) if key[0] == "c" else (calls, 11)
        index, _, rest = key[cut:].partition(".")
        if rest and index.isdigit():
            groups.setdefault(int(index), {})[rest] = value
    return [contents[i] for i in sorted(contents)], [calls[i] for i in sorted(calls)]


def openllmetry_messages(groups: dict[int, dict[str, Any]], output: bool) -> list[Message]:
    """OpenLLMetry's ``gen_ai.prompt.{i}.*`` / ``gen_ai.completion.{i}.*`` (grouped by
    ``indexed_families``) as messages."""
    messages: list[Message] = []
    for fields in groups.values():
        role = fields.get("role") or ("assistant" if output else "user")
        parts: list[Part]
        if role == "tool":
            parts = [
                {
                    "type": "tool_call_response",
                    "id": fields.get("tool_call_id"),
                    "response": fields.get("content"),
                }
            ]
        else:
            parts = _text_parts(fields.get("content"))
            for call in _sub_families(fields)[1]:
                parts.append(
                    {
                        "type": "tool_call",
                        "id": call.get("id"),
                        "name": call.get("name"),
                        "arguments": _arguments(call.get("arguments")),
                    }
                )
            if "function_call.name" in fields:
                parts.append(
                    {
                        "type": "tool_call",
                        "id": None,
                        "name": fields["function_call.name"],
                        "arguments": _arguments(fields.get("function_call.arguments")),
                    }
                )
        message: Message = {"role": role, "parts": parts}
        if output and fields.get("finish_reason"):
            message["finish_reason"] = fields["finish_reason"]
        messages.append(message)
    return messages


def openinference_messages(
    groups: dict[int, dict[str, Any]], output: bool, finish_reason: Any
) -> list[Message]:
    """OpenInference's ``llm.input_messages.{i}.message.*`` / ``llm.output_messages.{i}.message.*`` (grouped
    by ``indexed_families``) as messages."""
    messages: list[Message] = []
    for raw in groups.values():
        fields = {key.removeprefix("message."): value for key, value in raw.items()}
        role = fields.get("role") or ("assistant" if output else "user")
        parts: list[Part]
        if role == "tool":
            parts = [
                {
                    "type": "tool_call_response",
                    "id": fields.get("tool_call_id"),
                    "response": fields.get("content"),
                }
            ]
        else:
            parts = _text_parts(fields.get("content"))
            contents, calls = _sub_families(fields)
            for item in contents:
                content = {key.removeprefix("message_content."): value for key, value in item.items()}
                if content.get("type") == "image":
                    parts.append({"type": "uri", "modality": "image", "uri": content.get("image.image.url")})
                elif "text" in content:
                    parts.append({"type": "text", "content": content["text"]})
            for item in calls:
                call = {key.removeprefix("tool_call."): value for key, value in item.items()}
                parts.append(
                    {
                        "type": "tool_call",
                        "id": call.get("id"),
                        "name": call.get("function.name"),
                        "arguments": _arguments(call.get("function.arguments")),
                    }
                )
        message: Message = {"role": role, "parts": parts}
        if fields.get("name"):
            message["name"] = fields["name"]
        if output and finish_reason:
            message["finish_reason"] = finish_reason
        messages.append(message)
    return messages


def _json_or_none(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return None
    return value if isinstance(value, (dict, list)) else None


def openinference_input_value(value: Any) -> tuple[list[Message], list[Part]]:
    """Messages (and separate system instructions) from an LLM span's ``input.value`` request JSON."""
    parsed = _json_or_none(value)
    if isinstance(parsed, dict) and isinstance(parsed.get("messages"), list):
        messages = [provider_message(m) for m in parsed["messages"] if isinstance(m, Mapping)]
        system = _text_parts(parsed["system"]) if "system" in parsed else []
        return messages, system
    if isinstance(parsed, dict) and isinstance(parsed.get("prompt"), str):  # a text-completion request
        return [{"role": "user", "parts": [{"type": "text", "content": parsed["prompt"]}]}], []
    if isinstance(value, str) and value:
        return [{"role": "user", "parts": [{"type": "text", "content": value}]}], []
    return [], []


def openinference_output_value(value: Any) -> list[Message]:
    """Output messages from an LLM span's ``output.value`` response JSON (OpenAI or Anthropic shape)."""
    parsed = _json_or_none(value)
    if isinstance(parsed, dict):
        if isinstance(parsed.get("choices"), list):
            out = []
            for choice in parsed["choices"]:
                if isinstance(choice, Mapping) and isinstance(choice.get("message"), Mapping):
                    message = provider_message(choice["message"], "assistant")
                    if choice.get("finish_reason"):
                        message["finish_reason"] = choice["finish_reason"]
                    out.append(message)
            return out
        if isinstance(parsed.get("content"), list):
            message = {"role": parsed.get("role") or "assistant", "parts": _text_parts(parsed["content"])}
            if parsed.get("stop_reason"):
                message["finish_reason"] = parsed["stop_reason"]
            return [message]
    if isinstance(value, str) and value:
        return [{"role": "assistant", "parts": [{"type": "text", "content": value}]}]
    return []


def old_content(value: Any, output: bool) -> list[Message]:
    """``gen_ai.prompt`` / ``gen_ai.completion`` (pre-v1.28 and OpenLIT): a JSON message list or text."""
    parsed = _json_or_none(value)
    role = "assistant" if output else "user"
    if isinstance(parsed, list) and parsed and all(isinstance(m, Mapping) and "role" in m for m in parsed):
        return [provider_message(m, role) for m in parsed]
    if isinstance(value, str) and value:
        return [{"role": role, "parts": [{"type": "text", "content": value}]}]
    return []


def tool_definitions(groups: dict[int, dict[str, Any]]) -> list[dict[str, Any]]:
    """Tool definitions in the current shape (``{"type": "function", "name", "description", "parameters"}``)
    from OpenLLMetry's ``llm.request.functions.{i}.*`` or OpenInference's ``llm.tools.{i}.tool.json_schema``
    (grouped by ``indexed_families``)."""
    out: list[dict[str, Any]] = []
    for fields in groups.values():
        schema = _json_or_none(fields.get("tool.json_schema"))
        if isinstance(schema, dict):
            function = schema.get("function")
            source = function if isinstance(function, dict) else schema
            tool_type = schema.get("type", "function")
        elif "name" in fields:
            source, tool_type = fields, "function"
        else:
            continue
        tool: dict[str, Any] = {"type": tool_type, "name": source.get("name")}
        if source.get("description") is not None:
            tool["description"] = source["description"]
        parameters = source.get("parameters", source.get("input_schema"))
        if parameters is not None:
            tool["parameters"] = _arguments(parameters)
        out.append(tool)
    return out


# --- events ---------------------------------------------------------------------------------------------


def _event_body(attributes: Attributes) -> dict[str, Any]:
    body = attributes.get(M.EVENT_BODY)
    if body is not None:
        parsed = _json_or_none(body)
        if isinstance(parsed, dict):
            return parsed
        if isinstance(body, str):
            return {"content": body}
    return dict(attributes)


def _structured(value: Any) -> list[Any]:
    """A message list given as a structured value or as a JSON string."""
    parsed = _json_or_none(value)
    return parsed if isinstance(parsed, list) else []


def event_messages(events: Iterable[Event]) -> tuple[list[Message], list[Message], list[Part]]:
    """Input messages, output messages and system instructions from content events: v1.28 to v1.36
    per-message events, v1.37+ ``gen_ai.client.inference.operation.details`` and OpenLIT's content events."""
    inputs: list[Message] = []
    outputs: list[Message] = []
    system: list[Part] = []
    for event in events:
        name = event.name
        if name == M.EVENT_INFERENCE_DETAILS:
            attributes = event.attributes
            inputs.extend(_structured(attributes.get(A.GEN_AI_INPUT_MESSAGES)))
            outputs.extend(_structured(attributes.get(A.GEN_AI_OUTPUT_MESSAGES)))
            system.extend(_structured(attributes.get(A.GEN_AI_SYSTEM_INSTRUCTIONS)))
        elif name in M.EVENT_ROLES:
            body = _event_body(event.attributes)
            role = body.get("role") or M.EVENT_ROLES[name]
            inputs.append(
                provider_message(
                    {**body, "role": role, "tool_call_id": body.get("tool_call_id", body.get("id"))}
                )
            )
        elif name == M.EVENT_CHOICE:
            body = _event_body(event.attributes)
            inner = body.get("message")
            message = provider_message(inner if isinstance(inner, Mapping) else body, "assistant")
            if body.get("finish_reason"):
                message["finish_reason"] = body["finish_reason"]
            outputs.append(message)
        elif name == M.OPENLIT_PROMPT_EVENT:
            inputs.extend(old_content(event.attributes.get(M.OLD_PROMPT), output=False))
        elif name == M.OPENLIT_COMPLETION_EVENT:
            outputs.extend(old_content(event.attributes.get(M.OLD_COMPLETION), output=True))
    return inputs, outputs, system


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    return str(value)


def dumps(value: Any) -> str:
    """Compact JSON, keeping non-ASCII text as is; bytes become base64, anything else its ``str``."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=_json_default)
