"""GenAI content sent as OTLP log records, turned into span events so the normaliser can read it.

The GenAI conventions v1.28 to v1.36 sent prompt and completion content as events (log records) named
``gen_ai.system.message``, ``gen_ai.user.message``, ``gen_ai.assistant.message``, ``gen_ai.tool.message`` and
``gen_ai.choice``, correlated to their span by trace and span id; OpenLIT sent ``gen_ai.content.prompt`` /
``gen_ai.content.completion``. The event name is in the LogRecord ``event_name`` field (newer SDKs) or the
``event.name`` attribute (older ones). The collector attaches the returned events to their spans before the
``normalize`` processor runs.
"""

from __future__ import annotations

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from llm_observer.kernel.batch import Event, SpanBatch
from llm_observer.kernel.otlp_codec import any_value, attributes_of
from llm_observer.processors.normalize.messages import dumps
from llm_observer.semconv import mappings as M

__all__ = ["attach_events", "content_events_by_span"]

_EVENT_NAME_ATTRIBUTE = "event.name"


def content_events_by_span(request: ExportLogsServiceRequest) -> dict[tuple[bytes, bytes], list[Event]]:
    """GenAI content log records of ``request`` as span ``Event``s, keyed by (trace_id, span_id).

    The record's attributes (minus ``event.name``) become the event's attributes, and its body, when
    present, is kept as JSON under ``gen_ai.event.content``. Records without a span id, and records that
    are not GenAI content events, are left out. Order within a span is the records' order.
    """
    out: dict[tuple[bytes, bytes], list[Event]] = {}
    for resource_logs in request.resource_logs:
        for scope_logs in resource_logs.scope_logs:
            for record in scope_logs.log_records:
                name = record.event_name
                if not name:
                    for kv in record.attributes:
                        if kv.key == _EVENT_NAME_ATTRIBUTE:
                            name = kv.value.string_value
                            break
                if name not in M.CONTENT_EVENT_NAMES or not record.span_id:
                    continue
                attributes = attributes_of(kv for kv in record.attributes if kv.key != _EVENT_NAME_ATTRIBUTE)
                if record.HasField("body"):
                    body = any_value(record.body)
                    if body is not None and body != "":
                        attributes[M.EVENT_BODY] = body if isinstance(body, str) else dumps(body)
                time = record.time_unix_nano or record.observed_time_unix_nano
                out.setdefault((record.trace_id, record.span_id), []).append(Event(time, name, attributes))
    return out


def attach_events(batch: SpanBatch, events: dict[tuple[bytes, bytes], list[Event]]) -> int:
    """Append to each span of ``batch`` the events keyed by its (trace_id, span_id), in place.

    Returns how many events found their span; the caller may keep the rest for a later batch.
    """
    if not events:
        return 0
    attached = 0
    trace_ids, span_ids, span_events = batch.trace_id, batch.span_id, batch.events
    for row, span_id in enumerate(span_ids):
        found = events.get((trace_ids[row], span_id))
        if found:
            span_events[row].extend(found)
            attached += len(found)
    return attached
