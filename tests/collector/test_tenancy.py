"""The authenticated ingest key decides the tenant, whatever the client's attributes claim: the request's
provenance survives the WAL and the decoder, the ``tenant`` processor applies it to resources early, and the
decoder enforces it on resource and span attributes whatever the pipeline holds."""

from __future__ import annotations

from pathlib import Path

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from llm_observer.collector.pipeline import Decoder
from llm_observer.collector.testing import genai_request, local_config
from llm_observer.collector.wal import Record, decode_meta, encode_meta
from llm_observer.kernel.batch import Provenance, SpanBatch
from llm_observer.kernel.component import SIGNAL_TRACES, IngestMeta
from llm_observer.kernel.errors import ConfigError
from llm_observer.kernel.telemetry import Telemetry
from llm_observer.kernel.tenancy import enforce_tenancy
from llm_observer.processors.tenant import stamp_tenant
from llm_observer.semconv.attributes import ORGANIZATION_ID, PROJECT_ID
from tests.support import add_span


def _request(project: str | None) -> bytes:
    request: ExportTraceServiceRequest = genai_request(traces=2)
    attrs = request.resource_spans[0].resource.attributes
    for index in reversed(range(len(attrs))):
        if attrs[index].key == PROJECT_ID:
            del attrs[index]
    kv = attrs.add()
    kv.key, kv.value.string_value = ORGANIZATION_ID, "evil-corp"
    if project is not None:
        kv = attrs.add()
        kv.key, kv.value.string_value = PROJECT_ID, project
    return request.SerializeToString()


def _tenants(meta: IngestMeta, project: str | None) -> set[tuple[str, str]]:
    decoder = Decoder("traces", [("tenant", stamp_tenant)], Telemetry())
    batch = decoder([Record(1, SIGNAL_TRACES, meta, _request(project))], 1, 2)
    assert len(batch) == 10
    return {(r.get(ORGANIZATION_ID), r.get(PROJECT_ID)) for r in batch.resource}


def test_tenancy_single_project_key_forces_organization_and_project() -> None:
    assert _tenants(IngestMeta("acme", "support"), "billing") == {("acme", "support")}


def test_tenancy_multi_project_key_keeps_an_allowed_project() -> None:
    meta = IngestMeta("acme", None, ("billing", "support"))
    assert _tenants(meta, "support") == {("acme", "support")}


def test_tenancy_multi_project_key_moves_a_foreign_or_missing_project_into_its_own() -> None:
    meta = IngestMeta("acme", None, ("billing", "support"))
    assert _tenants(meta, "someone-elses") == {("acme", "billing")}
    assert _tenants(meta, None) == {("acme", "billing")}


def test_tenancy_meta_survives_the_wal_encoding() -> None:
    for meta in (IngestMeta("acme", "p"), IngestMeta("acme", None, ("a", "b")), IngestMeta("acme")):
        assert decode_meta(encode_meta(meta)) == meta


def _claiming(batch: SpanBatch) -> SpanBatch:
    """A processor that writes the tenant the client claimed onto the span attributes (as ``attribute``
    would from an unstamped resource)."""
    for attrs in batch.attributes:
        attrs[ORGANIZATION_ID], attrs[PROJECT_ID] = "evil-corp", "billing"
    return batch


def test_tenancy_the_kernel_enforces_the_key_without_any_processor() -> None:
    for processors in ([], [("claiming", _claiming)]):
        telemetry = Telemetry()
        decoder = Decoder("traces", processors, telemetry)
        record = Record(1, SIGNAL_TRACES, IngestMeta("acme", "support"), _request("billing"))
        batch = decoder([record], 1, 2)
        assert {(r.get(ORGANIZATION_ID), r.get(PROJECT_ID)) for r in batch.resource} == {("acme", "support")}
        assert {(a.get(ORGANIZATION_ID), a.get(PROJECT_ID)) for a in batch.attributes} == {
            ("acme", "support")
        }
        assert [(p.start, p.end, p.meta) for p in batch.provenance] == [
            (0, 10, IngestMeta("acme", "support"))
        ]
    enforced = telemetry.registry.get_sample_value(
        "llm_observer_component_events_total", {"component": "traces", "event": "tenant_enforced"}
    )
    assert enforced == 10


def test_tenancy_enforcement_keeps_an_allowed_span_project_and_moves_a_foreign_one() -> None:
    batch = SpanBatch()
    resource = {ORGANIZATION_ID: "evil-corp", PROJECT_ID: "support"}
    add_span(batch, {PROJECT_ID: "billing"}, resource=resource)
    add_span(batch, {ORGANIZATION_ID: "evil-corp", PROJECT_ID: "elsewhere"}, resource=resource)
    add_span(batch, {}, resource=resource)
    add_span(batch, {ORGANIZATION_ID: "someone", PROJECT_ID: "theirs"}, resource={})  # not authenticated
    batch.provenance.append(Provenance(0, 3, IngestMeta("acme", None, ("billing", "support"))))
    assert enforce_tenancy(batch) == 1
    assert [(a.get(ORGANIZATION_ID), a.get(PROJECT_ID)) for a in batch.attributes] == [
        ("acme", "billing"),
        ("acme", "support"),
        ("acme", "support"),
        ("someone", "theirs"),
    ]
    assert resource == {ORGANIZATION_ID: "acme", PROJECT_ID: "support"}


def test_tenancy_enforcement_leaves_the_project_to_a_key_for_every_project() -> None:
    batch = SpanBatch()
    add_span(batch, {ORGANIZATION_ID: "evil-corp", PROJECT_ID: "p2"}, resource={PROJECT_ID: "p1"})
    batch.provenance.append(Provenance(0, 1, IngestMeta("acme")))
    enforce_tenancy(batch)
    assert batch.attributes[0] == {ORGANIZATION_ID: "acme", PROJECT_ID: "p2"}
    assert batch.resource[0] == {ORGANIZATION_ID: "acme", PROJECT_ID: "p1"}


def test_tenancy_auth_on_refuses_a_pipeline_without_the_tenant_processor(tmp_path: Path) -> None:
    overrides = {
        "auth": {"enabled": True, "jwt_secret": "x" * 32},
        "service": {"pipelines": {"traces": {"processors": ["normalize"]}}},
    }
    with pytest.raises(ConfigError) as error:
        local_config(tmp_path, overrides)
    assert ("service.pipelines.traces.processors", error.value.problems[0][1]) in error.value.problems
    assert "tenant processor" in str(error.value)
