"""Content-capture mode and the GenAI "parts" message format helpers."""

from __future__ import annotations

import contextlib
import enum
import json
import os
from collections.abc import Mapping
from typing import Any

from llm_observer.instrumentation._util import get

CAPTURE_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"

Part = dict[str, Any]
Message = dict[str, Any]


class ContentCapture(enum.Enum):
    """Where prompts and answers go: nowhere (default), on the span, as an event, or both."""

    NO_CONTENT = "NO_CONTENT"
    SPAN_ONLY = "SPAN_ONLY"
    EVENT_ONLY = "EVENT_ONLY"
    SPAN_AND_EVENT = "SPAN_AND_EVENT"

    @property
    def on_span(self) -> bool:
        return self in (ContentCapture.SPAN_ONLY, ContentCapture.SPAN_AND_EVENT)

    @property
    def as_event(self) -> bool:
        return self in (ContentCapture.EVENT_ONLY, ContentCapture.SPAN_AND_EVENT)

    @property
    def enabled(self) -> bool:
        return self is not ContentCapture.NO_CONTENT


def content_capture_from_env(environ: Mapping[str, str] | None = None) -> ContentCapture:
    """Read ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` (case-insensitive).

    ``true`` (older packages' spelling) means SPAN_ONLY, ``false``, empty or anything unknown NO_CONTENT.
    """
    raw = (os.environ if environ is None else environ).get(CAPTURE_ENV, "").strip().upper()
    if raw in ("TRUE", "1", "YES"):
        return ContentCapture.SPAN_ONLY
    try:
        return ContentCapture(raw)
    except ValueError:
        return ContentCapture.NO_CONTENT


_CAPTURE_NAMES = ", ".join(repr(mode.value) for mode in ContentCapture)


def content_capture(value: object) -> ContentCapture | None:
    """The content-capture mode an ``instrument(capture_content=…)`` argument asks for: a
    :class:`ContentCapture`, ``True`` (SPAN_ONLY), ``False`` (NO_CONTENT) or a mode's name in any case;
    None for None (the environment variable decides).

    Raises ValueError naming the accepted values for anything else, so a typo never silently drops
    prompts and answers."""
    if value is None or isinstance(value, ContentCapture):
        return value
    if value is True:
        return ContentCapture.SPAN_ONLY
    if value is False:
        return ContentCapture.NO_CONTENT
    if isinstance(value, str):
        try:
            return ContentCapture(value.strip().upper())
        except ValueError:
            pass
    raise ValueError(
        f"capture_content must be True, False, a ContentCapture or one of {_CAPTURE_NAMES} "
        f"(any case), not {value!r}"
    )


def text_part(content: str) -> Part:
    """A ``{"type": "text", "content": …}`` part."""
    return {"type": "text", "content": content}


def tool_call_part(call_id: str | None, name: str | None, arguments: Any) -> Part:
    """A ``tool_call`` part; JSON-string arguments are decoded so they nest as objects."""
    if isinstance(arguments, str):
        with contextlib.suppress(ValueError):
            arguments = json.loads(arguments)
    return {"type": "tool_call", "id": call_id, "name": name, "arguments": arguments}


def image_url_part(url: Any) -> Part:
    """An image given by URL: a ``blob`` part without its content for a ``data:`` URI (the image itself is
    not recorded), else a ``uri`` part."""
    if isinstance(url, str) and url.startswith("data:"):
        return {"type": "blob", "modality": "image", "content": "<data uri omitted>"}
    return {"type": "uri", "modality": "image", "uri": url}


def tool_call_parts(tool_calls: Any) -> list[Part]:
    """``tool_call`` parts of OpenAI-style tool calls (``{"id", "function": {"name", "arguments"}}``, as
    dicts or SDK objects); none for None."""
    parts: list[Part] = []
    for tool_call in tool_calls or ():
        function = get(tool_call, "function")
        parts.append(tool_call_part(get(tool_call, "id"), get(function, "name"), get(function, "arguments")))
    return parts


def merge_text_parts(parts: list[Part]) -> list[Part]:
    """Join consecutive text parts (and consecutive reasoning parts) into one: streamed answers arrive in
    pieces."""
    merged: list[Part] = []
    for part in parts:
        previous = merged[-1] if merged else None
        if (
            previous is not None
            and part["type"] in ("text", "reasoning")
            and previous["type"] == part["type"]
        ):
            merged[-1] = {"type": part["type"], "content": previous["content"] + part["content"]}
        else:
            merged.append(part)
    return merged


def tool_response_part(call_id: str | None, response: Any) -> Part:
    """A ``tool_call_response`` part."""
    return {"type": "tool_call_response", "id": call_id, "response": response}


def json_able(value: Any) -> Any:
    """An SDK value as JSON-able data for content (tool arguments and results): scalars stay, mappings and
    sequences are converted item by item, pydantic models are dumped, anything else becomes its text."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, Mapping):
        return {str(key): json_able(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_able(item) for item in value]
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump(mode="json", exclude_none=True)
    return str(value)


def message(role: str, parts: list[Part], **extra: Any) -> Message:
    """A message ``{"role", "parts", …extra}`` (output messages pass ``finish_reason``)."""
    result: Message = {"role": role, "parts": parts}
    result.update(extra)
    return result


def to_json(value: Any) -> str:
    """Compact JSON for span attributes; objects JSON cannot encode become their ``str``."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=_default)


def _default(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        try:
            return dump(mode="json", exclude_none=True)
        except Exception:
            pass
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    return str(value)
