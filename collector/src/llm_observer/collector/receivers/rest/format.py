"""The JSON format of the ``rest`` receiver, and its conversion into the OTLP request the WAL stores.

A trace::

    {"organization_id": "acme", "project_id": "web", "trace_id": "<32 hex, optional>",
     "trace_type": "chat", "model": "gpt-4o", "provider": "openai", "user_id": "u1", "session_id": "s1",
     "service_name": "my-app", "start_time": "<RFC 3339, optional>", "metadata": {"k": "v"},
     "spans": [{"span_id": "a", "name": "llm", "parent_span_id": null, "model": "gpt-4o",
                "provider": "openai", "input": "Hi", "output": "Hello!", "prompt_tokens": 3,
                "completion_tokens": 2, "duration_ms": 420, "status": "success", "error": null,
                "start_time": "<RFC 3339, optional>", "metadata": {}}]}

Spans become OTel GenAI spans (``gen_ai.*`` attributes, content as ``gen_ai.input.messages`` /
``gen_ai.output.messages``) so they take the same pipeline as OTLP. Span ids that are not 16 hex characters
are hashed into ids, so clients may name spans freely and refer to them in ``parent_span_id``. A span without
``start_time`` starts with its parent (or at the trace's start, which defaults to now minus the longest span).
Times without an offset are UTC. Numbers must fit what the spans carry: integers in 64 bits, finite floats.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from pydantic import BaseModel, ConfigDict, Field, field_validator

from llm_observer.kernel.batch import STATUS_ERROR, STATUS_OK, STATUS_UNSET, IngestMeta, SpanBatch
from llm_observer.kernel.errors import PermissionDenied
from llm_observer.kernel.limits import INT64_MAX, INT64_MIN, TimeLimits
from llm_observer.kernel.otlp_codec import EXPIRED, INVALID_SPAN, encode_traces
from llm_observer.semconv import attributes as attrs

_OPERATIONS = {
    "chat": "chat",
    "completion": "text_completion",
    "text_completion": "text_completion",
    "embedding": "embeddings",
    "embeddings": "embeddings",
    "agent": "invoke_agent",
    "tool": "execute_tool",
}
_OK = {"ok", "success", "succeeded", "completed", "complete"}
_ERROR = {"error", "failed", "failure", "err"}
_SPAN_KIND_CLIENT = 3
_SPAN_KIND_INTERNAL = 1
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
MAX_DURATION_MS = INT64_MAX // 1_000_000
"""The longest ``duration_ms``: a span's length in nanoseconds is a 64-bit integer."""


def _int64_values(metadata: dict[str, Any]) -> dict[str, Any]:
    """Metadata values become span attributes as they are: an integer must fit in 64 bits."""
    for key, value in metadata.items():
        if isinstance(value, int) and not isinstance(value, bool) and not INT64_MIN <= value <= INT64_MAX:
            raise ValueError(f"metadata[{key!r}]: integer {value} does not fit in 64 bits")
    return metadata


class JsonSpan(BaseModel):
    model_config = ConfigDict(extra="allow")

    span_id: str | None = None
    name: str = Field(default="llm", max_length=1024)
    parent_span_id: str | None = None
    model: str | None = None
    provider: str | None = None
    operation: str | None = None
    input: Any = None
    output: Any = None
    prompt_tokens: int | None = Field(default=None, ge=0, le=INT64_MAX)
    completion_tokens: int | None = Field(default=None, ge=0, le=INT64_MAX)
    duration_ms: float = Field(default=0.0, ge=0, le=MAX_DURATION_MS, allow_inf_nan=False)
    status: str | None = None
    error: str | None = None
    start_time: datetime | None = None
    cost_usd: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    metadata: dict[str, Any] = Field(default_factory=dict)

    _metadata_fits = field_validator("metadata")(_int64_values)


class JsonTrace(BaseModel):
    model_config = ConfigDict(extra="allow")

    organization_id: str | None = None
    project_id: str | None = None
    trace_id: str | None = Field(default=None, pattern=r"^[0-9a-fA-F]{32}$")
    trace_type: str | None = None
    model: str | None = None
    provider: str | None = None
    user_id: str | None = None
    session_id: str | None = None
    service_name: str | None = None
    start_time: datetime | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    spans: list[JsonSpan] = Field(min_length=1, max_length=10_000)

    _metadata_fits = field_validator("metadata")(_int64_values)

    @field_validator("trace_id")
    @classmethod
    def _not_zero(cls, value: str | None) -> str | None:
        if value is not None and int(value, 16) == 0:
            raise ValueError("trace_id must not be all zeros")
        return value.lower() if value is not None else None


class JsonTraceBatch(BaseModel):
    traces: list[JsonTrace] = Field(min_length=1, max_length=1000)


def _span_id(trace_id: bytes, name: str) -> bytes:
    value = name.strip().lower()
    if len(value) == 16:
        try:
            raw = bytes.fromhex(value)
            if raw != bytes(8):
                return raw
        except ValueError:
            pass
    return hashlib.sha256(trace_id + name.encode("utf-8")).digest()[:8]


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


def _messages(role: str, value: Any) -> str:
    message: dict[str, Any] = {"role": role, "parts": [{"type": "text", "content": _text(value)}]}
    if role == "assistant":
        message["finish_reason"] = "stop"
    return json.dumps([message], ensure_ascii=False)


def _ns(moment: datetime) -> int:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // _MICROSECOND * 1000


def _end(start: int, span: JsonSpan) -> int:
    return start + int(span.duration_ms * 1_000_000)


def _metadata(prefix: str, metadata: dict[str, Any], into: dict[str, Any]) -> None:
    for key, value in metadata.items():
        into[f"{prefix}{key}"] = value if isinstance(value, str | bool | int | float) else _text(value)


def to_batch(
    traces: list[JsonTrace], organization_id: str | None, project_id: str | None, now_ns: int | None = None
) -> SpanBatch:
    """The spans of ``traces``; ``organization_id`` / ``project_id`` (when given) override the payload's."""
    batch = SpanBatch()
    now = now_ns if now_ns is not None else time.time_ns()
    for trace in traces:
        trace_id = bytes.fromhex(trace.trace_id) if trace.trace_id else secrets.token_bytes(16)
        org = organization_id or trace.organization_id or attrs.DEFAULT_ORGANIZATION
        project = project_id or trace.project_id or attrs.DEFAULT_PROJECT
        resource: dict[str, Any] = {
            attrs.SERVICE_NAME: trace.service_name or "llm-observer-api",
            attrs.ORGANIZATION_ID: org,
            attrs.PROJECT_ID: project,
        }
        longest = max(int(span.duration_ms * 1_000_000) for span in trace.spans)
        trace_start = _ns(trace.start_time) if trace.start_time else now - longest
        ids = [_span_id(trace_id, span.span_id or f"#{index}") for index, span in enumerate(trace.spans)]
        by_name = {span.span_id: ids[i] for i, span in enumerate(trace.spans) if span.span_id}
        starts: dict[bytes, int] = {}
        # Parents before children so a child without start_time can start with its parent.
        pending = list(range(len(trace.spans)))
        for _ in range(len(trace.spans) + 1):
            if not pending:
                break
            later = []
            for index in pending:
                span = trace.spans[index]
                parent = by_name.get(span.parent_span_id) if span.parent_span_id else None
                if span.parent_span_id and parent is None:
                    parent = _span_id(trace_id, span.parent_span_id)
                if span.start_time is not None:
                    starts[ids[index]] = _ns(span.start_time)
                elif parent is None or parent not in by_name.values():
                    starts[ids[index]] = trace_start
                elif parent in starts:
                    starts[ids[index]] = starts[parent]
                else:
                    later.append(index)
            pending = later
        for index in pending:  # a parent cycle: start them with the trace
            starts[ids[index]] = trace_start
        for index, span in enumerate(trace.spans):
            parent_id = b""
            if span.parent_span_id:
                parent_id = by_name.get(span.parent_span_id) or _span_id(trace_id, span.parent_span_id)
            model = span.model or (
                trace.model if span.prompt_tokens is not None or span.input is not None else None
            )
            provider = span.provider or (trace.provider if model else None)
            attributes: dict[str, Any] = {}
            if model:
                operation = span.operation or _OPERATIONS.get((trace.trace_type or "chat").lower(), "chat")
                attributes[attrs.GEN_AI_OPERATION_NAME] = operation
                attributes[attrs.GEN_AI_REQUEST_MODEL] = model
            elif span.operation:
                attributes[attrs.GEN_AI_OPERATION_NAME] = span.operation
            if provider:
                attributes[attrs.GEN_AI_PROVIDER_NAME] = provider
            if span.prompt_tokens is not None:
                attributes[attrs.GEN_AI_USAGE_INPUT_TOKENS] = span.prompt_tokens
            if span.completion_tokens is not None:
                attributes[attrs.GEN_AI_USAGE_OUTPUT_TOKENS] = span.completion_tokens
            if span.input is not None:
                attributes[attrs.GEN_AI_INPUT_MESSAGES] = _messages("user", span.input)
            if span.output is not None:
                attributes[attrs.GEN_AI_OUTPUT_MESSAGES] = _messages("assistant", span.output)
            if span.cost_usd is not None:
                attributes[attrs.COST_USD] = span.cost_usd
            if trace.user_id:
                attributes[attrs.USER_ID] = trace.user_id
            if trace.session_id:
                attributes[attrs.SESSION_ID] = trace.session_id
                attributes[attrs.GEN_AI_CONVERSATION_ID] = trace.session_id
            if trace.trace_type:
                attributes["llm_observer.trace_type"] = trace.trace_type
            _metadata("llm_observer.metadata.", trace.metadata, attributes)
            _metadata("llm_observer.metadata.", span.metadata, attributes)
            status = (span.status or "").lower()
            code = (
                STATUS_ERROR
                if status in _ERROR or span.error
                else STATUS_OK
                if status in _OK
                else STATUS_UNSET
            )
            start = starts[ids[index]]
            batch.trace_id.append(trace_id)
            batch.span_id.append(ids[index])
            batch.parent_span_id.append(parent_id)
            batch.trace_state.append("")
            batch.name.append(span.name)
            batch.kind.append(_SPAN_KIND_CLIENT if model else _SPAN_KIND_INTERNAL)
            batch.start_time_unix_nano.append(start)
            batch.end_time_unix_nano.append(_end(start, span))
            batch.status_code.append(code)
            batch.status_message.append(span.error or "")
            batch.attributes.append(attributes)
            batch.resource.append(resource)
            batch.scope_name.append("llm_observer.rest")
            batch.scope_version.append("")
            batch.events.append([])
            batch.links.append([])
    return batch


def time_problem(
    traces: list[JsonTrace], batch: SpanBatch, paths: list[str], limits: TimeLimits, now_ns: int
) -> tuple[str, str] | None:
    """The first span of ``batch`` (``to_batch(traces, ...)``) with a time outside ``limits`` at ``now_ns``:
    (``EXPIRED`` or ``INVALID_SPAN``, a message naming the field), or None. ``paths[i]`` is how the request
    names ``traces[i]`` (``body``, ``body.traces.0``)."""
    earliest = limits.earliest_start(now_ns)
    row = 0
    for path, trace in zip(paths, traces, strict=True):
        longest = max(range(len(trace.spans)), key=lambda i: trace.spans[i].duration_ms)
        for index, span in enumerate(trace.spans):
            start, end = batch.start_time_unix_nano[row], batch.end_time_unix_nano[row]
            row += 1
            if span.start_time is not None:
                field = f"{path}.spans.{index}.start_time"
            elif trace.start_time is not None:
                field = f"{path}.start_time"
            else:  # the trace starts at now minus its longest span
                field = f"{path}.spans.{longest}.duration_ms (the trace's start)"
            problem = limits.start_problem(field, start, now_ns)
            if problem is not None:
                return (EXPIRED if 0 <= start < earliest else INVALID_SPAN), problem
            problem = limits.time_problem(f"{path}.spans.{index}.duration_ms (the span's end)", end)
            if problem is not None:
                return INVALID_SPAN, problem
    return None


def to_otlp(batch: SpanBatch) -> tuple[bytes, list[str]]:
    """Serialized ``ExportTraceServiceRequest`` for ``batch`` (what the WAL stores) and its trace ids (hex)."""
    request: ExportTraceServiceRequest = encode_traces(batch)
    return request.SerializeToString(), list(dict.fromkeys(tid.hex() for tid in batch.trace_id))


def tenant_of(trace: JsonTrace, meta: IngestMeta | None) -> tuple[str, str]:
    """The organization and project ``trace`` goes to. With an ingest key (``meta``), the key's organization
    wins and a project outside the key's is refused (``PermissionDenied``); a trace naming no project takes
    the key's only one."""
    org = trace.organization_id or attrs.DEFAULT_ORGANIZATION
    project = trace.project_id or attrs.DEFAULT_PROJECT
    if meta is None:
        return org, project
    if meta.organization_id:
        if trace.organization_id not in (None, meta.organization_id):
            raise PermissionDenied(f"this key may not write to organization {trace.organization_id!r}")
        org = meta.organization_id
    allowed = (meta.project_id,) if meta.project_id else meta.allowed_projects
    if allowed is not None and project not in allowed:
        if trace.project_id is None and len(allowed) == 1:
            project = allowed[0]
        else:
            raise PermissionDenied(f"this key may not write to project {project!r}")
    return org, project
