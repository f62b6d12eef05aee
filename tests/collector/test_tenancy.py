"""The authenticated ingest key decides the tenant, whatever the client's resource attributes claim: the
request's provenance survives the WAL and the decoder, and the ``tenant`` processor applies it."""

from __future__ import annotations

from pathlib import Path

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from llm_observer.collector.pipeline import Decoder
from llm_observer.collector.testing import genai_request, local_config
from llm_observer.collector.wal import Record, decode_meta, encode_meta
from llm_observer.kernel.component import SIGNAL_TRACES, IngestMeta
from llm_observer.kernel.errors import ConfigError
from llm_observer.kernel.telemetry import Telemetry
from llm_observer.processors.tenant import stamp_tenant
from llm_observer.semconv.attributes import ORGANIZATION_ID, PROJECT_ID


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


def test_tenancy_without_the_tenant_processor_the_key_does_not_decide() -> None:
    decoder = Decoder("traces", [], Telemetry())
    batch = decoder([Record(1, SIGNAL_TRACES, IngestMeta("acme", "support"), _request("billing"))], 1, 2)
    assert {(r.get(ORGANIZATION_ID), r.get(PROJECT_ID)) for r in batch.resource} == {("evil-corp", "billing")}
    assert [(p.start, p.end, p.meta) for p in batch.provenance] == [(0, 10, IngestMeta("acme", "support"))]


def test_tenancy_auth_on_refuses_a_pipeline_without_the_tenant_processor(tmp_path: Path) -> None:
    overrides = {
        "auth": {"enabled": True, "jwt_secret": "x" * 32},
        "service": {"pipelines": {"traces": {"processors": ["normalize"]}}},
    }
    with pytest.raises(ConfigError) as error:
        local_config(tmp_path, overrides)
    assert ("service.pipelines.traces.processors", error.value.problems[0][1]) in error.value.problems
    assert "tenant processor" in str(error.value)
