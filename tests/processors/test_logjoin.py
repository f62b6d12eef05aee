"""The logjoin processor: waiting content is kept once per WAL record, in WAL order, bounded and expiring,
and joins spans of its own organization only."""

from __future__ import annotations

import time

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from llm_observer.kernel.batch import Event, IngestMeta, Provenance, SpanBatch
from llm_observer.processors.logjoin import LogJoin, LogJoinConfig, PendingEvents
from llm_observer.semconv.attributes import ORGANIZATION_ID
from tests.support import add_span

TRACE, SPAN = b"t" * 16, b"s" * 8


def _logs(content: str, organization: str | None = None) -> bytes:
    request = ExportLogsServiceRequest()
    resource_logs = request.resource_logs.add()
    if organization is not None:
        kv = resource_logs.resource.attributes.add()
        kv.key, kv.value.string_value = ORGANIZATION_ID, organization
    record = resource_logs.scope_logs.add().log_records.add()
    record.time_unix_nano = time.time_ns()
    record.trace_id, record.span_id = TRACE, SPAN
    record.event_name = "gen_ai.user.message"
    record.body.string_value = content
    return request.SerializeToString()


def _span(organization: str | None = None, meta: IngestMeta | None = None) -> SpanBatch:
    batch = SpanBatch()
    resource = {"service.name": "svc"}
    if organization is not None:
        resource[ORGANIZATION_ID] = organization
    add_span(batch, resource=resource, trace_id=TRACE, span_id=SPAN)
    if meta is not None:
        batch.provenance.append(Provenance(0, 1, meta))
    return batch


def _contents(batch: SpanBatch) -> list[str]:
    return [str(event.attributes.get("gen_ai.event.content")) for event in batch.events[0]]


def test_logjoin_pending_are_kept_once_per_record_and_expire() -> None:
    pending = PendingEvents(max_spans=2, max_age_seconds=10)
    event = Event(1, "gen_ai.user.message", {"gen_ai.event.content": "{}"})
    pending.add(7, {("acme", TRACE, SPAN): [event]}, now=0.0)
    pending.add(7, {("acme", TRACE, SPAN): [event]}, now=1.0)  # the same WAL record decoded again
    assert pending.take("acme", TRACE, SPAN) == [event]
    pending.add(3, {("acme", TRACE, SPAN): [event._replace(time_unix_nano=0)]}, now=1.0)
    assert [e.time_unix_nano for e in pending.take("acme", TRACE, SPAN)] == [0, 1]  # WAL order
    pending.add(9, {("acme", b"a" * 16, b"b" * 8): [event], ("acme", b"c" * 16, b"d" * 8): [event]}, now=2.0)
    assert len(pending) == 2 and pending.take("acme", TRACE, SPAN) == []  # the oldest span made room
    pending.expire(now=12.5)
    assert len(pending) == 0


def test_logjoin_pending_content_is_kept_apart_per_organization() -> None:
    pending = PendingEvents()
    event = Event(1, "gen_ai.user.message", {})
    pending.add(1, {("org-a", TRACE, SPAN): [event]}, now=0.0)
    assert pending.take("org-b", TRACE, SPAN) == []
    assert pending.take("org-a", TRACE, SPAN) == [event]


def test_logjoin_pending_flood_of_one_organization_evicts_only_its_own() -> None:
    pending = PendingEvents(max_spans=10)
    event = Event(1, "gen_ai.user.message", {})
    pending.add(1, {("victim", TRACE, SPAN): [event]}, now=0.0)
    flood = {("flooder", i.to_bytes(16, "big"), SPAN): [event] for i in range(50)}
    pending.add(2, flood, now=1.0)
    assert len(pending) == 10
    assert pending.take("victim", TRACE, SPAN) == [event]


def test_logjoin_authenticated_content_never_joins_another_organizations_span() -> None:
    join = LogJoin(LogJoinConfig())
    # Org A's key writes content naming org B's span (ids known from a traceparent header), claiming org B
    # on the log resource too.
    logs = SpanBatch()
    logs.logs.append((1, _logs("injected by A", organization="org-b")))
    logs.log_meta[1] = IngestMeta("org-a")
    join(logs)
    victim = join(_span("org-b", IngestMeta("org-b")))
    assert victim.events[0] == []
    # The same ids in org A's own span do get it.
    own = join(_span(None, IngestMeta("org-a")))
    assert _contents(own) == ["injected by A"]


def test_logjoin_authenticated_content_joins_its_own_span_whatever_the_resources_say() -> None:
    join = LogJoin(LogJoinConfig())
    logs = SpanBatch()
    logs.logs.append((1, _logs("mine")))
    logs.log_meta[1] = IngestMeta("acme", "support")
    join(logs)
    span = join(_span("claimed-elsewhere", IngestMeta("acme", "support")))
    assert _contents(span) == ["mine"]


def test_logjoin_without_auth_matches_on_the_resource_organization() -> None:
    join = LogJoin(LogJoinConfig())
    logs = SpanBatch()
    logs.logs.append((1, _logs("for a", organization="org-a")))
    logs.logs.append((2, _logs("no org")))
    join(logs)
    assert _contents(join(_span("org-b"))) == []
    assert _contents(join(_span("org-a"))) == ["for a"]
    assert _contents(join(_span(None))) == ["no org"]  # both default
