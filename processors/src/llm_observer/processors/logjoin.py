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

Content joins spans of its own organization only: ids are no secret (a ``traceparent`` header carries them),
so a log record of one tenant naming another tenant's span is never attached to it. A log record's
organization is its ingest key's (the WAL record's ``IngestMeta``), else (auth off) the one its resource
names; a span's is decided the same way.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.logs.v1.logs_pb2 import ResourceLogs
from pydantic import Field

from llm_observer.kernel.batch import Event, IngestMeta, SpanBatch
from llm_observer.kernel.component import ComponentConfig, CreateContext, Factory
from llm_observer.kernel.otlp_codec import any_value, attributes_of
from llm_observer.kernel.tenancy import organization_of
from llm_observer.processors.normalize.messages import dumps
from llm_observer.semconv import mappings as M
from llm_observer.semconv.attributes import ORGANIZATION_ID

__all__ = [
    "LogJoin",
    "PendingEvents",
    "attach_events",
    "content_events_by_span",
    "content_events_by_tenant",
    "factory",
    "span_organizations",
]

_EVENT_NAME_ATTRIBUTE = "event.name"


def _content_events(
    resource_logs: Iterable[ResourceLogs],
) -> Iterator[tuple[ResourceLogs, tuple[bytes, bytes], Event]]:
    for resource_log in resource_logs:
        for scope_logs in resource_log.scope_logs:
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
                yield resource_log, (record.trace_id, record.span_id), Event(time, name, attributes)


def content_events_by_span(request: ExportLogsServiceRequest) -> dict[tuple[bytes, bytes], list[Event]]:
    """GenAI content log records of ``request`` as span ``Event``s, keyed by (trace_id, span_id).

    The record's attributes (minus ``event.name``) become the event's attributes, and its body, when
    present, is kept as JSON under ``gen_ai.event.content``. Records without a span id, and records that
    are not GenAI content events, are left out. Order within a span is the records' order.
    """
    out: dict[tuple[bytes, bytes], list[Event]] = {}
    for _, key, event in _content_events(request.resource_logs):
        out.setdefault(key, []).append(event)
    return out


def content_events_by_tenant(
    request: ExportLogsServiceRequest, meta: IngestMeta | None
) -> dict[TenantSpanKey, list[Event]]:
    """Like ``content_events_by_span``, keyed by (organization, trace_id, span_id): the organization is the
    authenticated key's (``meta``), else the one the record's resource names, else the default."""
    out: dict[TenantSpanKey, list[Event]] = {}
    authenticated = meta.organization_id if meta is not None else None
    organizations: dict[int, str] = {}
    for resource_log, (trace_id, span_id), event in _content_events(request.resource_logs):
        organization = authenticated
        if organization is None:
            organization = organizations.get(id(resource_log))
            if organization is None:
                organization = organizations[id(resource_log)] = _resource_organization(resource_log)
        out.setdefault((organization, trace_id, span_id), []).append(event)
    return out


def _resource_organization(resource_log: ResourceLogs) -> str:
    for kv in resource_log.resource.attributes:
        if kv.key == ORGANIZATION_ID:
            return organization_of(any_value(kv.value))
    return organization_of(None)


def span_organizations(batch: SpanBatch) -> list[str]:
    """The organization of each span of ``batch``, as ``content_events_by_tenant`` decides it for logs: the
    authenticated key's (``batch.provenance``), else the one its resource names, else the default."""
    resources = batch.resource
    by_resource: dict[int, str] = {}
    out: list[str] = []
    for resource in resources:
        organization = by_resource.get(id(resource))
        if organization is None:
            organization = by_resource[id(resource)] = organization_of(resource.get(ORGANIZATION_ID))
        out.append(organization)
    for provenance in batch.provenance:
        organization = provenance.meta.organization_id
        if organization:
            out[provenance.start : provenance.end] = [organization] * (provenance.end - provenance.start)
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


TenantSpanKey = tuple[str, bytes, bytes]  # (organization, trace_id, span_id)


class PendingEvents:
    """Content events waiting for their span, oldest first, kept apart per organization.

    Bounded by ``max_spans`` over every organization and by ``max_age_seconds``; when over the bound, the
    organization with the most waiting spans loses its oldest, so one tenant's flood of content cannot push
    out another's.
    """

    def __init__(self, max_spans: int = 100_000, max_age_seconds: float = 300.0) -> None:
        self.max_spans = max_spans
        self.max_age_seconds = max_age_seconds
        self._orgs: dict[str, OrderedDict[tuple[bytes, bytes], tuple[float, dict[int, list[Event]]]]] = {}
        self._size = 0

    def add(self, lsn: int, found: dict[TenantSpanKey, list[Event]], now: float) -> None:
        for (organization, trace_id, span_id), events in found.items():
            entries = self._orgs.get(organization)
            if entries is None:
                entries = self._orgs[organization] = OrderedDict()
            key = (trace_id, span_id)
            entry = entries.get(key)
            if entry is None:
                entries[key] = (now, {lsn: list(events)})
                self._size += 1
            else:
                entry[1][lsn] = list(events)
        while self._size > self.max_spans:
            organization, entries = max(self._orgs.items(), key=lambda item: len(item[1]))
            entries.popitem(last=False)
            self._size -= 1
            if not entries:
                del self._orgs[organization]

    def expire(self, now: float) -> None:
        for organization in list(self._orgs):
            entries = self._orgs[organization]
            while entries:
                key, (added, _) = next(iter(entries.items()))
                if now - added <= self.max_age_seconds:
                    break
                del entries[key]
                self._size -= 1
            if not entries:
                del self._orgs[organization]

    def take(self, organization: str, trace_id: bytes, span_id: bytes) -> list[Event]:
        """The events waiting for span (``trace_id``, ``span_id``) of ``organization``, in WAL order."""
        entries = self._orgs.get(organization)
        entry = entries.get((trace_id, span_id)) if entries is not None else None
        if entry is None:
            return []
        return [event for lsn in sorted(entry[1]) for event in entry[1][lsn]]

    def clear(self) -> None:
        self._orgs.clear()
        self._size = 0

    def __len__(self) -> int:
        return self._size


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
        log_meta = batch.log_meta
        for lsn, payload in batch.logs:
            found = content_events_by_tenant(ExportLogsServiceRequest.FromString(payload), log_meta.get(lsn))
            if found:
                self.pending.add(lsn, found, now)
        if len(self.pending):
            pending = self.pending
            trace_ids, span_ids, span_events = batch.trace_id, batch.span_id, batch.events
            for row, organization in enumerate(span_organizations(batch)):
                events = pending.take(organization, trace_ids[row], span_ids[row])
                if events:
                    span_events[row] = [*span_events[row], *events]
            pending.expire(now)
        return batch

    async def start(self) -> None:
        return None

    async def shutdown(self) -> None:
        self.pending.clear()


def _create(ctx: CreateContext, config: LogJoinConfig) -> LogJoin:
    return LogJoin(config)


factory = Factory("logjoin", LogJoinConfig, _create, reads_logs=True)
