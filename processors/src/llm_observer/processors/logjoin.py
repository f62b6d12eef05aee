"""The ``logjoin`` processor: GenAI content sent as OTLP log records becomes events of its span, so the
``normalize`` processor can read it.

The GenAI conventions v1.28 to v1.36 sent prompt and completion content as events (log records) named
``gen_ai.system.message``, ``gen_ai.user.message``, ``gen_ai.assistant.message``, ``gen_ai.tool.message`` and
``gen_ai.choice``, correlated to their span by trace and span id; OpenLIT sent ``gen_ai.content.prompt`` /
``gen_ai.content.completion``. The event name is in the LogRecord ``event_name`` field (newer SDKs) or the
``event.name`` attribute (older ones).

SDKs export logs and spans on separate schedules (by default logs after 1 s, spans after 5 s), so the content
of a call usually reaches the WAL in an earlier batch than its span: content whose span is not in the batch
waits in a bounded, expiring buffer. Entries are keyed by span and by the WAL record they came from, so
processing the same range twice (the pipeline's stage and an exporter catching up) neither loses nor
duplicates them. After a restart the buffer starts empty: a span replayed then gets only the content of its
own range.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from pydantic import Field

from llm_observer.kernel.batch import Event, SpanBatch
from llm_observer.kernel.component import ComponentConfig, CreateContext, Factory
from llm_observer.kernel.otlp_codec import any_value, attributes_of
from llm_observer.processors.normalize.messages import dumps
from llm_observer.semconv import mappings as M

__all__ = ["LogJoin", "PendingEvents", "attach_events", "content_events_by_span", "factory"]

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


SpanKey = tuple[bytes, bytes]


class PendingEvents:
    """Content events waiting for their span, oldest first; bounded by ``max_spans`` and ``max_age_seconds``."""

    def __init__(self, max_spans: int = 100_000, max_age_seconds: float = 300.0) -> None:
        self.max_spans = max_spans
        self.max_age_seconds = max_age_seconds
        self._entries: OrderedDict[SpanKey, tuple[float, dict[int, list[Event]]]] = OrderedDict()

    def add(self, lsn: int, found: dict[SpanKey, list[Event]], now: float) -> None:
        for key, events in found.items():
            entry = self._entries.get(key)
            if entry is None:
                self._entries[key] = (now, {lsn: list(events)})
            else:
                entry[1][lsn] = list(events)
        while len(self._entries) > self.max_spans:
            self._entries.popitem(last=False)

    def expire(self, now: float) -> None:
        while self._entries:
            key, (added, _) = next(iter(self._entries.items()))
            if now - added <= self.max_age_seconds:
                break
            del self._entries[key]

    def take(self, key: SpanKey) -> list[Event]:
        entry = self._entries.get(key)
        if entry is None:
            return []
        return [event for lsn in sorted(entry[1]) for event in entry[1][lsn]]

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


class LogJoinConfig(ComponentConfig):
    max_pending_spans: int = Field(100_000, gt=0, description="spans whose content may wait for them")
    max_pending_seconds: float = Field(300.0, gt=0, description="how long content waits for its span")


class LogJoin:
    """Attaches to each span the content events of the batch's log records and of earlier ones kept waiting."""

    def __init__(self, config: LogJoinConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self.pending = PendingEvents(config.max_pending_spans, config.max_pending_seconds)
        self.clock = clock

    def __call__(self, batch: SpanBatch) -> SpanBatch:
        now = self.clock()
        for lsn, payload in batch.logs:
            found = content_events_by_span(ExportLogsServiceRequest.FromString(payload))
            if found:
                self.pending.add(lsn, found, now)
        if len(self.pending):
            pending = self.pending
            for row in range(len(batch)):
                events = pending.take((batch.trace_id[row], batch.span_id[row]))
                if events:
                    batch.events[row] = [*batch.events[row], *events]
            pending.expire(now)
        return batch

    async def start(self) -> None:
        return None

    async def shutdown(self) -> None:
        self.pending.clear()


def _create(ctx: CreateContext, config: LogJoinConfig) -> LogJoin:
    return LogJoin(config)


factory = Factory("logjoin", LogJoinConfig, _create, reads_logs=True)
