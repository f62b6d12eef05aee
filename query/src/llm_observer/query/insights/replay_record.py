"""What a trace recorded, read back for replay: its LLM calls (:class:`RecordedCall`) from stored span rows or a
trace document, the calls a replay takes (:func:`select_calls`), and the errors that stop a replay before it
starts (see :mod:`llm_observer.query.insights.replay`)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from llm_observer.query.formats import parse_time
from llm_observer.semconv import attributes as attr
from llm_observer.semconv import genai_values as gv

if TYPE_CHECKING:
    from llm_observer.storage.clickhouse.rows import SpanRow


SUPPORTED_PROVIDERS = (gv.PROVIDER_OPENAI, gv.PROVIDER_ANTHROPIC)


_REPLAYABLE_OPERATIONS = frozenset({gv.OP_CHAT, gv.OP_TEXT_COMPLETION, gv.OP_GENERATE_CONTENT})
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


def parsed_json(value: Any) -> Any:
    if isinstance(value, str):
        if not value:
            return None
        try:
            return json.loads(value)
        except ValueError:
            return None
    return value


def _records(value: Any) -> tuple[Mapping[str, Any], ...] | None:
    items = parsed_json(value)
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
    items = parsed_json(value)
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
