"""Trace replay: re-issue the recorded LLM calls of a trace through the provider's SDK and compare.

A recorded call is rebuilt from what the instrumentation put on its span when content capture was on
(``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=SPAN_ONLY``): ``gen_ai.input.messages`` (the
conversation, tool calls and tool results included), ``gen_ai.system_instructions``,
``gen_ai.tool.definitions``, the request parameters (``gen_ai.request.temperature`` / ``top_p`` /
``top_k`` / ``max_tokens`` / ``stop_sequences`` / ``seed`` / ``frequency_penalty`` / ``presence_penalty``
/ ``choice.count`` / ``stream``), ``gen_ai.output.type`` (JSON answers) and ``openai.api.type`` (Chat
Completions or the Responses API). A span without ``gen_ai.input.messages`` cannot be replayed:
:class:`ContentNotCaptured` names every such span.

Providers (``gen_ai.provider.name``): ``openai`` (Chat Completions, Responses, legacy completions) and
``anthropic`` (Messages); any other is refused up front with :class:`UnsupportedProvider`.

The replay is a new trace: a root span ``replay {original root span name}`` carrying
``llm_observer.replay.original_trace_id`` (and ``…original_span_id`` / ``…model`` when the replay was
narrowed to one span or given another model), linked to the original root, and under it one LLM span per
call, each linked to the span it replays. The LLM spans are made by llm-observer's own instrumentation (the
instrumentor's wrapper around the SDK method, with its handler writing to a private ``TracerProvider``), so
they look exactly like the originals; content capture is on for them. The provider's ``instrument()`` is not
used because it patches the SDK classes for the whole process (a singleton): a query service serving
several replays at once, or an application that instruments the SDK itself, would see each other's spans.
The trace is sent over OTLP/HTTP to the collector with the original's ``llm_observer.organization.id`` /
``llm_observer.project.id`` / ``llm_observer.team.id`` resource attributes and service name
``llm-observer-replay``.

API keys come from :attr:`ReplayOptions.api_keys`, else the SDK's environment variable
(``OPENAI_API_KEY``, ``ANTHROPIC_API_KEY``); they are handed to the SDK client only, never logged or stored.

Rebuilding is faithful where the span says enough; where it cannot (the conventions do not record it),
the replay uses: ``max_tokens`` for Chat Completions (``max_completion_tokens`` for the o-series and
gpt-5 models, which refuse the former), ``{"type": "json_object"}`` for a JSON answer (the schema itself
is not recorded), ``max_tokens=4096`` for an Anthropic call that recorded none (the API requires it).
Images recorded only as ``<data uri omitted>`` and reasoning blocks are not sent back; a call whose input
needs them fails with a message saying so (:class:`RequestNotRebuilt`), the other calls still replay.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from opentelemetry import trace as otel_trace
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import Link, SpanContext, SpanKind, TraceFlags

from llm_observer.processors.pricing import PriceBook
from llm_observer.query.formats import parse_time
from llm_observer.query.insights.replay_diff import (
    CallDiff,
    CallSide,
    ReplayResult,
    cost_usd,
    diff_call,
    output_text,
    totals,
)
from llm_observer.semconv import attributes as attr
from llm_observer.semconv import genai_values as gv

if TYPE_CHECKING:
    from llm_observer.storage.clickhouse.rows import SpanRow

__all__ = [
    "DEFAULT_OTLP_ENDPOINT",
    "REPLAY_SERVICE_NAME",
    "SUPPORTED_PROVIDERS",
    "ContentNotCaptured",
    "MissingApiKey",
    "NothingToReplay",
    "RecordedCall",
    "RecordedTrace",
    "ReplayError",
    "ReplayOptions",
    "RequestNotRebuilt",
    "UnsupportedProvider",
    "build_request",
    "recorded_trace_from_document",
    "recorded_trace_from_rows",
    "replay_trace",
    "select_calls",
]

_log = logging.getLogger(__name__)

DEFAULT_OTLP_ENDPOINT = "http://127.0.0.1:4318"
REPLAY_SERVICE_NAME = "llm-observer-replay"
SUPPORTED_PROVIDERS = (gv.PROVIDER_OPENAI, gv.PROVIDER_ANTHROPIC)

ORIGINAL_TRACE_ID = "llm_observer.replay.original_trace_id"
ORIGINAL_SPAN_ID = "llm_observer.replay.original_span_id"
REPLAY_MODEL = "llm_observer.replay.model"
LINK_KIND = "llm_observer.link.type"
LINK_REPLAY_OF = "replay_of"

_API_KEY_ENV = {gv.PROVIDER_OPENAI: "OPENAI_API_KEY", gv.PROVIDER_ANTHROPIC: "ANTHROPIC_API_KEY"}
_REPLAYABLE_OPERATIONS = frozenset({gv.OP_CHAT, gv.OP_TEXT_COMPLETION, gv.OP_GENERATE_CONTENT})
_ANTHROPIC_DEFAULT_MAX_TOKENS = 4096
# Chat Completions models that refuse ``max_tokens`` and want ``max_completion_tokens``.
_MAX_COMPLETION_PREFIXES = ("o1", "o3", "o4", "gpt-5")
_CAPTURE_HINT = (
    "record them with content capture on (OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=SPAN_ONLY, "
    "or instrument(capture_content=True))"
)


# --- errors --------------------------------------------------------------------------------------------


class ReplayError(Exception):
    """A replay that cannot start; ``code`` and ``status`` are its REST error."""

    code = "failed_precondition"
    status = 400


class NothingToReplay(ReplayError):
    """The trace has no LLM call to replay, or not the span asked for."""

    code = "not_found"
    status = 404


class ContentNotCaptured(ReplayError):
    """Calls whose prompts were not recorded (``spans``: ``(span id, span name)``)."""

    def __init__(self, spans: Sequence[tuple[str, str]]) -> None:
        self.spans = tuple(spans)
        named = ", ".join(f"{span_id} ({name})" for span_id, name in self.spans)
        super().__init__(
            f"cannot replay: the prompt content of {len(self.spans)} LLM span(s) was not captured: {named}; "
            + _CAPTURE_HINT
        )


class UnsupportedProvider(ReplayError):
    """A call of a provider replay does not support yet."""

    code = "unimplemented"
    status = 501


class MissingApiKey(ReplayError):
    """No API key for a provider the replay calls."""


class RequestNotRebuilt(ReplayError):
    """One call's request cannot be rebuilt from its span (recorded per call, not raised to the caller)."""


# --- what was recorded ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RecordedCall:
    """One LLM call as its span recorded it (content fields are None when not captured)."""

    span_id: str
    name: str
    operation: str
    provider: str
    request_model: str | None
    response_model: str | None
    start_ns: int
    duration_ns: int
    api_type: str | None = None
    input_messages: tuple[Mapping[str, Any], ...] | None = None
    system_instructions: tuple[Mapping[str, Any], ...] | None = None
    tool_definitions: tuple[Mapping[str, Any], ...] | None = None
    output_messages: tuple[Mapping[str, Any], ...] | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    max_tokens: int | None = None
    stop_sequences: tuple[str, ...] = ()
    seed: int | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    choice_count: int | None = None
    stream: bool = False
    output_type: str | None = None
    finish_reasons: tuple[str, ...] = ()
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    error: str | None = None

    @property
    def content_captured(self) -> bool:
        return bool(self.input_messages)


@dataclass(frozen=True, slots=True)
class RecordedTrace:
    """The parts of a stored trace a replay needs: its root, tenant and LLM calls (in start order)."""

    trace_id: str
    root_span_id: str
    root_name: str
    organization_id: str
    project_id: str
    team_id: str | None
    calls: tuple[RecordedCall, ...]


def _json(value: Any) -> Any:
    if isinstance(value, str):
        if not value:
            return None
        try:
            return json.loads(value)
        except ValueError:
            return None
    return value


def _records(value: Any) -> tuple[Mapping[str, Any], ...] | None:
    items = _json(value)
    if not isinstance(items, list | tuple):
        return None
    return tuple(item for item in items if isinstance(item, Mapping))


def _float(value: Any) -> float | None:
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _int(value: Any) -> int | None:
    number = _float(value)
    return int(number) if number is not None and number.is_integer() else None


def _strings(value: Any) -> tuple[str, ...]:
    items = _json(value)
    if isinstance(items, str):
        return (items,)
    if isinstance(items, list | tuple):
        return tuple(str(item) for item in items)
    return ()


def recorded_call_from_attributes(
    attributes: Mapping[str, Any],
    *,
    span_id: str,
    name: str,
    start_ns: int,
    duration_ns: int,
    error: str | None,
) -> RecordedCall:
    """A :class:`RecordedCall` from span attributes, stored (strings) or typed (the REST document's)."""

    def text(key: str) -> str | None:
        value = attributes.get(key)
        return str(value) if value not in (None, "") else None

    provider = text(attr.GEN_AI_PROVIDER_NAME) or text("gen_ai.system") or ""
    return RecordedCall(
        span_id=span_id,
        name=name,
        operation=text(attr.GEN_AI_OPERATION_NAME) or "",
        provider=provider,
        request_model=text(attr.GEN_AI_REQUEST_MODEL),
        response_model=text(attr.GEN_AI_RESPONSE_MODEL),
        start_ns=start_ns,
        duration_ns=duration_ns,
        api_type=text(gv.GEN_AI_OPENAI_API_TYPE),
        input_messages=_records(attributes.get(attr.GEN_AI_INPUT_MESSAGES)),
        system_instructions=_records(attributes.get(attr.GEN_AI_SYSTEM_INSTRUCTIONS)),
        tool_definitions=_records(attributes.get(attr.GEN_AI_TOOL_DEFINITIONS)),
        output_messages=_records(attributes.get(attr.GEN_AI_OUTPUT_MESSAGES)),
        temperature=_float(attributes.get(attr.GEN_AI_REQUEST_TEMPERATURE)),
        top_p=_float(attributes.get(attr.GEN_AI_REQUEST_TOP_P)),
        top_k=_int(attributes.get(attr.GEN_AI_REQUEST_TOP_K)),
        max_tokens=_int(attributes.get(attr.GEN_AI_REQUEST_MAX_TOKENS)),
        stop_sequences=_strings(attributes.get(attr.GEN_AI_REQUEST_STOP_SEQUENCES)),
        seed=_int(attributes.get(attr.GEN_AI_REQUEST_SEED)),
        frequency_penalty=_float(attributes.get(attr.GEN_AI_REQUEST_FREQUENCY_PENALTY)),
        presence_penalty=_float(attributes.get(attr.GEN_AI_REQUEST_PRESENCE_PENALTY)),
        choice_count=_int(attributes.get(attr.GEN_AI_REQUEST_CHOICE_COUNT)),
        stream=str(attributes.get(attr.GEN_AI_REQUEST_STREAM, "")).lower() == "true",
        output_type=text(gv.GEN_AI_OUTPUT_TYPE),
        finish_reasons=_strings(attributes.get(attr.GEN_AI_RESPONSE_FINISH_REASONS)),
        input_tokens=_int(attributes.get(attr.GEN_AI_USAGE_INPUT_TOKENS)) or 0,
        output_tokens=_int(attributes.get(attr.GEN_AI_USAGE_OUTPUT_TOKENS)) or 0,
        cache_read_tokens=_int(attributes.get(attr.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS)) or 0,
        cache_write_tokens=(
            _int(attributes.get(attr.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS))
            or _int(attributes.get(attr.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS))
            or 0
        ),
        reasoning_tokens=_int(attributes.get(attr.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS)) or 0,
        error=error,
    )


def _is_llm_call(attributes: Mapping[str, Any]) -> bool:
    operation = attributes.get(attr.GEN_AI_OPERATION_NAME)
    return operation in _REPLAYABLE_OPERATIONS and bool(attributes.get(attr.GEN_AI_REQUEST_MODEL))


def recorded_trace_from_rows(trace_id: str, rows: Sequence[SpanRow]) -> RecordedTrace:
    """The replayable view of a trace read from storage (``TraceStore.get_trace``)."""
    if not rows:
        raise NothingToReplay(f"trace {trace_id} not found")
    ordered = sorted(rows, key=lambda row: row.start_ns)
    ids = {row.span_id for row in ordered}
    root = next(
        (row for row in ordered if not row.parent_span_id or row.parent_span_id not in ids), ordered[0]
    )
    calls = tuple(
        recorded_call_from_attributes(
            row.attributes,
            span_id=row.span_id,
            name=row.name,
            start_ns=row.start_ns,
            duration_ns=row.duration_ns,
            error=(row.status_message or "error") if row.status == "Error" else None,
        )
        for row in ordered
        if _is_llm_call(row.attributes)
    )
    return RecordedTrace(
        trace_id=trace_id,
        root_span_id=root.span_id,
        root_name=root.name,
        organization_id=root.organization_id,
        project_id=root.project_id,
        team_id=root.resource.get("llm_observer.team.id") or None,
        calls=calls,
    )


def _rfc3339_ns(value: Any) -> int:
    if not isinstance(value, str) or not value:
        return 0
    return parse_time(value, "start_time") or 0


def recorded_trace_from_document(document: Mapping[str, Any]) -> RecordedTrace:
    """The replayable view of a trace as ``GET /api/v1/traces/{trace_id}`` answers it."""
    trace_id = str(document.get("trace_id") or "")
    spans = [span for span in document.get("spans") or () if isinstance(span, Mapping)]
    if not spans:
        raise NothingToReplay(f"trace {trace_id} not found")
    ordered = sorted(spans, key=lambda span: _rfc3339_ns(span.get("start_time")))
    ids = {span.get("span_id") for span in ordered}
    root = next(
        (span for span in ordered if not span.get("parent_span_id") or span.get("parent_span_id") not in ids),
        ordered[0],
    )
    calls = []
    for span in ordered:
        attributes = span.get("attributes") or {}
        if not _is_llm_call(attributes):
            continue
        status = span.get("status")
        calls.append(
            recorded_call_from_attributes(
                attributes,
                span_id=str(span.get("span_id")),
                name=str(span.get("name") or ""),
                start_ns=_rfc3339_ns(span.get("start_time")),
                duration_ns=int(float(span.get("duration_ms") or 0) * 1e6),
                error=(span.get("status_message") or "error") if status == "Error" else None,
            )
        )
    resource = root.get("resource") or {}
    return RecordedTrace(
        trace_id=trace_id,
        root_span_id=str(root.get("span_id")),
        root_name=str(root.get("name") or ""),
        organization_id=str(root.get("organization_id") or ""),
        project_id=str(root.get("project_id") or ""),
        team_id=str(resource.get("llm_observer.team.id") or "") or None,
        calls=tuple(calls),
    )


def select_calls(trace: RecordedTrace, span_id: str | None = None) -> tuple[RecordedCall, ...]:
    """The calls a replay re-issues: all of the trace's, or the one ``span_id`` names.

    Raises :class:`NothingToReplay` (no LLM call, or ``span_id`` is not one), :class:`UnsupportedProvider`
    and :class:`ContentNotCaptured` (naming every span without content) before anything is sent."""
    calls = trace.calls
    if span_id is not None:
        calls = tuple(call for call in calls if call.span_id == span_id.lower())
        if not calls:
            raise NothingToReplay(f"span {span_id} of trace {trace.trace_id} is not an LLM call")
    if not calls:
        raise NothingToReplay(f"trace {trace.trace_id} has no LLM call to replay")
    unsupported = sorted({call.provider or "(none)" for call in calls} - set(SUPPORTED_PROVIDERS))
    if unsupported:
        raise UnsupportedProvider(
            f"replay does not support provider {', '.join(unsupported)} yet "
            f"(supported: {', '.join(SUPPORTED_PROVIDERS)})"
        )
    missing = [(call.span_id, call.name) for call in calls if not call.content_captured]
    if missing:
        raise ContentNotCaptured(missing)
    return calls


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
                arguments = _json(arguments) if _json(arguments) is not None else {}
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


# --- running a replay ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReplayOptions:
    """How to replay: ``span_id`` narrows to one call; ``model`` replaces every replayed call's model;
    ``base_urls`` maps a provider (or ``"*"``: any) to the SDK base URL; ``api_keys`` maps a provider to its
    key (else the SDK's environment variable); the new trace goes to ``otlp_endpoint`` (OTLP/HTTP base URL)
    with ``otlp_headers``. ``env_keys_with_base_url=False`` keeps the environment's keys from going to a
    base URL given here (the API's rule: the caller's own key only)."""

    span_id: str | None = None
    model: str | None = None
    base_urls: Mapping[str, str] = field(default_factory=dict)
    api_keys: Mapping[str, str] = field(default_factory=dict, repr=False)
    otlp_endpoint: str = DEFAULT_OTLP_ENDPOINT
    otlp_headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    timeout_seconds: float = 120.0
    env_keys_with_base_url: bool = True

    def base_url(self, provider: str) -> str | None:
        return self.base_urls.get(provider) or self.base_urls.get("*") or None

    def api_key(self, provider: str) -> str | None:
        """The key for ``provider``: given, else its environment variable (unless a base URL is set for it
        and ``env_keys_with_base_url`` is False)."""
        key = self.api_keys.get(provider)
        if key:
            return key
        if self.base_url(provider) and not self.env_keys_with_base_url:
            return None
        env = _API_KEY_ENV.get(provider)
        return (os.environ.get(env) or None) if env else None


class _ReplaySpans(SpanProcessor):
    """A span processor of the replay's private provider: links each new LLM span to the span it replays
    (``link_to``, set before each call) and keeps the finished spans, read back for the diff."""

    def __init__(self) -> None:
        self.link_to: tuple[int, int] | None = None
        self.finished: list[ReadableSpan] = []
        self._lock = threading.Lock()

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        target = self.link_to
        attributes = span.attributes or {}
        if target is not None and attr.GEN_AI_OPERATION_NAME in attributes:
            context = SpanContext(
                target[0], target[1], is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED)
            )
            span.add_link(context, {LINK_KIND: LINK_REPLAY_OF})

    def on_end(self, span: ReadableSpan) -> None:
        with self._lock:
            self.finished.append(span)

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


class _CheckedExporter(SpanExporter):
    """The OTLP/HTTP exporter of the new trace, remembering whether every export succeeded."""

    def __init__(self, options: ReplayOptions) -> None:
        endpoint = options.otlp_endpoint.rstrip("/")
        if not endpoint.endswith("/v1/traces"):
            endpoint += "/v1/traces"
        self.inner = OTLPSpanExporter(endpoint=endpoint, headers=dict(options.otlp_headers), timeout=30)
        self.ok = True
        self.exported = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        result = self.inner.export(spans)
        if result is SpanExportResult.SUCCESS:
            self.exported += len(spans)
        else:
            self.ok = False
        return result

    def shutdown(self) -> None:
        self.inner.shutdown()  # type: ignore[no-untyped-call]

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return bool(self.inner.force_flush(timeout_millis))


def _client(provider: str, options: ReplayOptions) -> Any:
    key = options.api_key(provider)
    if not key:
        if options.base_url(provider) and not options.env_keys_with_base_url:
            raise MissingApiKey(
                f"no API key for {provider}: a request that sets its base URL must give its key too"
            )
        raise MissingApiKey(
            f"no API key for {provider}: set {_API_KEY_ENV[provider]} or pass one with the request"
        )
    base_url = options.base_url(provider)
    try:
        if provider == gv.PROVIDER_OPENAI:
            import openai

            return openai.OpenAI(
                api_key=key, base_url=base_url, timeout=options.timeout_seconds, max_retries=0
            )
        import anthropic

        extra: dict[str, Any] = {}
        if "open_telemetry" in inspect.signature(anthropic.Anthropic).parameters:
            # Newer SDKs trace themselves; this replay's span is the instrumentation's, one per call.
            extra["open_telemetry"] = False
        return anthropic.Anthropic(
            api_key=key, base_url=base_url, timeout=options.timeout_seconds, max_retries=0, **extra
        )
    except ImportError as exc:
        raise UnsupportedProvider(
            f"replaying {provider} calls needs the {provider} package: pip install {provider}"
        ) from exc


# (instrumentor module, class name), the SDK method (module, qualname) and the client attribute path per API.
_APIS: Mapping[str, tuple[str, str, str, str, tuple[str, ...]]] = {
    "chat": (
        "llm_observer.instrumentation.openai",
        "OpenAIInstrumentor",
        "openai.resources.chat.completions",
        "Completions.create",
        ("chat", "completions"),
    ),
    "responses": (
        "llm_observer.instrumentation.openai",
        "OpenAIInstrumentor",
        "openai.resources.responses",
        "Responses.create",
        ("responses",),
    ),
    "completions": (
        "llm_observer.instrumentation.openai",
        "OpenAIInstrumentor",
        "openai.resources.completions",
        "Completions.create",
        ("completions",),
    ),
    "messages": (
        "llm_observer.instrumentation.anthropic",
        "AnthropicInstrumentor",
        "anthropic.resources.messages",
        "Messages.create",
        ("messages",),
    ),
}


class _Instrumented:
    """The instrumentation's wrappers per API, bound to one private ``TracerProvider``."""

    def __init__(self, tracer_provider: Any) -> None:
        self._tracer_provider = tracer_provider
        self._made: dict[str, Callable[..., Any]] = {}

    def wrapper(self, api: str) -> Callable[..., Any]:
        found = self._made.get(api)
        if found is not None:
            return found
        from importlib import import_module

        from opentelemetry.metrics import NoOpMeterProvider

        from llm_observer.instrumentation import __version__
        from llm_observer.instrumentation.handler import ContentCapture, GenAIHandler

        module_name, class_name, sdk_module, qualname, _ = _APIS[api]
        instrumentor_cls = getattr(import_module(module_name), class_name)
        handler = GenAIHandler(
            module_name,
            __version__,
            tracer_provider=self._tracer_provider,
            meter_provider=NoOpMeterProvider(),
            capture=ContentCapture.SPAN_ONLY,
        )
        target = next(
            t for t in instrumentor_cls.targets if t.module == sdk_module and t.qualname == qualname
        )
        # The instrumentor's own wrapper for the method, applied per call instead of patched in.
        made: Callable[..., Any] = instrumentor_cls()._wrapper_factory(handler, {})(target, False)
        self._made[api] = made
        return made


def _fit_signature(method: Callable[..., Any], kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """``kwargs`` for ``method``: parameters this SDK release does not name (newer Anthropic SDKs dropped
    ``temperature``/``top_p``/``top_k``) go in ``extra_body``, so the request on the wire stays the same."""
    try:
        parameters = inspect.signature(method).parameters
    except (TypeError, ValueError):
        return dict(kwargs)
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return dict(kwargs)
    fitted: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for key, value in kwargs.items():
        (fitted if key in parameters else extra)[key] = value
    if extra:
        fitted["extra_body"] = extra
    return fitted


def _call_sdk(instrumented: _Instrumented, client: Any, request: ProviderRequest) -> None:
    resource = client
    for name in _APIS[request.api][4]:
        resource = getattr(resource, name)
    wrapper = instrumented.wrapper(request.api)
    result = wrapper(resource.create, resource, (), _fit_signature(resource.create, request.kwargs))
    if request.stream:
        # The span ends when the stream does: read it to the end.
        try:
            for _ in result:
                pass
        finally:
            close = getattr(result, "close", None)
            if callable(close):
                close()


def _side(call: RecordedCall, book: PriceBook, latency_ms: float | None) -> CallSide:
    return CallSide(
        model=call.request_model,
        response_model=call.response_model,
        output=output_text(call.output_messages),
        finish_reasons=call.finish_reasons,
        input_tokens=call.input_tokens,
        output_tokens=call.output_tokens,
        cache_read_tokens=call.cache_read_tokens,
        cache_write_tokens=call.cache_write_tokens,
        reasoning_tokens=call.reasoning_tokens,
        cost_usd=cost_usd(
            book,
            call.provider,
            (call.response_model, call.request_model),
            call.start_ns,
            call.input_tokens,
            call.output_tokens,
            call.cache_read_tokens,
            call.cache_write_tokens,
            call.reasoning_tokens,
        ),
        latency_ms=latency_ms,
    )


def _hex_id(value: int, size: int) -> str:
    return format(value, f"0{size * 2}x")


def replay_trace(
    trace: RecordedTrace, options: ReplayOptions, prices: PriceBook | None = None
) -> ReplayResult:
    """Re-issue the trace's recorded LLM calls (see the module docstring), send the new trace to the
    collector and compare. Blocking: call it from a worker thread in async code.

    Raises :class:`ReplayError` subclasses before any call is sent (nothing to replay, content not
    captured, provider not supported, no API key); a call that fails is reported in its :class:`CallDiff`
    (``error``) and the others still run."""
    calls = select_calls(trace, options.span_id)
    clients = {provider: _client(provider, options) for provider in sorted({call.provider for call in calls})}
    book = prices if prices is not None else PriceBook()

    resource_attributes: dict[str, str] = {
        attr.SERVICE_NAME: REPLAY_SERVICE_NAME,
        attr.ORGANIZATION_ID: trace.organization_id,
        attr.PROJECT_ID: trace.project_id,
    }
    if trace.team_id:
        resource_attributes["llm_observer.team.id"] = trace.team_id
    spans = _ReplaySpans()
    exporter = _CheckedExporter(options)
    provider = TracerProvider(resource=Resource.create(resource_attributes))
    provider.add_span_processor(spans)
    provider.add_span_processor(BatchSpanProcessor(exporter))
    instrumented = _Instrumented(provider)
    tracer = provider.get_tracer(__name__)

    root_attributes: dict[str, str] = {ORIGINAL_TRACE_ID: trace.trace_id}
    if options.span_id:
        root_attributes[ORIGINAL_SPAN_ID] = options.span_id.lower()
    if options.model:
        root_attributes[REPLAY_MODEL] = options.model
    original_root = SpanContext(
        int(trace.trace_id, 16), int(trace.root_span_id, 16), is_remote=True, trace_flags=TraceFlags(1)
    )
    diffs: list[tuple[RecordedCall, int | None, str | None]] = []
    try:
        root = tracer.start_span(
            f"replay {trace.root_name}",
            kind=SpanKind.INTERNAL,
            attributes=root_attributes,
            links=[Link(original_root, {LINK_KIND: LINK_REPLAY_OF})],
        )
        with otel_trace.use_span(root, end_on_exit=True):
            for call in calls:
                before = len(spans.finished)
                spans.link_to = (int(trace.trace_id, 16), int(call.span_id, 16))
                error: str | None = None
                try:
                    request = build_request(call, options.model)
                    _call_sdk(instrumented, clients[call.provider], request)
                except RequestNotRebuilt as exc:
                    error = str(exc)
                except Exception as exc:  # the provider's answer: reported in the diff, the rest go on
                    error = f"{type(exc).__name__}: {exc}"
                finally:
                    spans.link_to = None
                made = next(
                    (
                        span
                        for span in spans.finished[before:]
                        if (span.attributes or {}).get(attr.GEN_AI_OPERATION_NAME) is not None
                    ),
                    None,
                )
                diffs.append(
                    (call, made.context.span_id if made is not None and made.context else None, error)
                )
        root_context = root.get_span_context()
    finally:
        provider.force_flush(int(options.timeout_seconds * 1000))
        provider.shutdown()

    by_id = {span.context.span_id: span for span in spans.finished if span.context is not None}
    results: list[CallDiff] = []
    for call, made_id, error in diffs:
        original = _side(call, book, call.duration_ns / 1e6)
        made = by_id.get(made_id) if made_id is not None else None
        if made is None:
            results.append(
                diff_call(
                    call.span_id, None, call.name, call.provider, original, None, error or "no span was made"
                )
            )
            continue
        replayed = recorded_call_from_attributes(
            dict(made.attributes or {}),
            span_id=_hex_id(made_id or 0, 8),
            name=made.name,
            start_ns=made.start_time or 0,
            duration_ns=(made.end_time or 0) - (made.start_time or 0),
            error=error,
        )
        side = _side(replayed, book, replayed.duration_ns / 1e6)
        if error is not None:
            results.append(
                diff_call(call.span_id, replayed.span_id, call.name, call.provider, original, None, error)
            )
        else:
            results.append(
                diff_call(call.span_id, replayed.span_id, call.name, call.provider, original, side)
            )
    if not exporter.ok:
        _log.warning(
            "The collector at %s did not accept the replay of trace %s; the new trace is not stored.",
            options.otlp_endpoint,
            trace.trace_id,
        )
    return ReplayResult(
        original_trace_id=trace.trace_id,
        replay_trace_id=_hex_id(root_context.trace_id, 16),
        replay_root_span_id=_hex_id(root_context.span_id, 8),
        exported=bool(exporter.ok and exporter.exported > 0),
        calls=tuple(results),
        totals=totals(results),
    )
