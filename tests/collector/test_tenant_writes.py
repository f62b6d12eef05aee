"""One organization's ingest key trying to land data in, or change, another organization's, through every
write path: OTLP traces (gRPC, HTTP protobuf, HTTP JSON), OTLP logs (GenAI content keyed to the other's
span), OTLP metrics, and the REST ingest (``/api/v1/traces`` and ``/batch``) on the collector's own port and
on the query service's. Ids are no secret (a ``traceparent`` header carries them), so the attacker reuses
the victim's trace and span ids and claims the victim's organization and project in resource and span
attributes. Everything is checked through the real store (chDB) and the query API.

The pipeline deliberately lacks the ``attribute`` processor: isolation must not depend on it.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import grpc
import httpx
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from llm_observer.collector.service import Service
from llm_observer.collector.testing import local_config, running
from llm_observer.kernel.auth import hash_api_key
from llm_observer.semconv.attributes import ORGANIZATION_ID, PROJECT_ID
from tests.support import kv, trace_request, wait_for
from tests.support.collector import stored

ORG_A, ORG_B = "org-a", "org-b"
PROJECT_A, PROJECT_B = "project-a", "project-b"
KEY_A, KEY_B = "key-of-org-a", "key-of-org-b"
MARKER = "llm_observer.metadata.marker"  # what the REST ingest makes of ``metadata: {"marker": …}``
PROTOBUF = "application/x-protobuf"
CHAT = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o"}
CLAIM_B = {ORGANIZATION_ID: ORG_B, PROJECT_ID: PROJECT_B}


def _overrides() -> dict[str, Any]:
    def key(key_id: str, secret: str, org: str, project: str) -> dict[str, Any]:
        return {
            "id": key_id,
            "key_sha256": hash_api_key(secret),
            "organization_id": org,
            "projects": [project],
        }

    return {
        "receivers": {"rest": {"endpoint": "127.0.0.1:0"}},
        "service": {
            "delivery": {"linger_seconds": 0.01, "drain_timeout_seconds": 5},
            "pipelines": {
                "traces": {
                    "receivers": ["otlp", "rest"],
                    "processors": ["tenant", "logjoin", "normalize"],
                    "exporters": ["clickhouse"],
                }
            },
        },
        "auth": {
            "enabled": True,
            "api_keys": [key("a", KEY_A, ORG_A, PROJECT_A), key("b", KEY_B, ORG_B, PROJECT_B)],
        },
    }


@asynccontextmanager
async def _service(tmp_path: Path) -> AsyncIterator[Service]:
    async with running(local_config(tmp_path, _overrides()), query=True) as service:
        yield service


def _bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def _exported(service: Service) -> float:
    value = service.telemetry.registry.get_sample_value(
        "llm_observer_spans_exported_total", {"pipeline": "traces", "exporter": "clickhouse"}
    )
    return value or 0.0


async def _wait_exported(service: Service, spans: int) -> None:
    await wait_for(
        lambda: _exported(service) >= spans,
        timeout=30,
        what=lambda: f"{spans} spans exported to the store (now {_exported(service)})",
    )


def _rows(service: Service, organization: str) -> list[dict[str, Any]]:
    return stored(
        service,
        "SELECT TraceId, SpanId, ProjectId, SpanAttributes, ResourceAttributes, Events.Name AS events "
        "FROM otel.otel_traces WHERE OrganizationId = {org:String} ORDER BY SpanAttributes[{marker:String}]",
        {"org": organization, "marker": MARKER},
    )


def _victim_request(marker: str) -> tuple[ExportTraceServiceRequest, bytes, bytes]:
    request = trace_request(1, attributes={**CHAT, MARKER: marker}, resource={"service.name": "victim"})
    span = request.resource_spans[0].scope_spans[0].spans[0]
    return request, span.trace_id, span.span_id


def _attack_request(trace_id: bytes, span_id: bytes, marker: str) -> ExportTraceServiceRequest:
    """A span with the victim's ids, claiming the victim's organization and project everywhere."""
    request = trace_request(
        1, attributes={**CHAT, **CLAIM_B, MARKER: marker}, resource={"service.name": "attacker", **CLAIM_B}
    )
    span = request.resource_spans[0].scope_spans[0].spans[0]
    span.trace_id, span.span_id = trace_id, span_id
    return request


def _attack_json(trace_id: bytes, span_id: bytes, marker: str) -> bytes:
    now = time.time_ns() - 30_000_000_000

    def attrs(values: dict[str, str]) -> list[dict[str, Any]]:
        return [{"key": k, "value": {"stringValue": v}} for k, v in values.items()]

    document = {
        "resourceSpans": [
            {
                "resource": {"attributes": attrs({"service.name": "attacker", **CLAIM_B})},
                "scopeSpans": [
                    {
                        "spans": [
                            {
                                "traceId": trace_id.hex(),
                                "spanId": span_id.hex(),
                                "name": "chat gpt-4o",
                                "kind": 3,
                                "startTimeUnixNano": str(now),
                                "endTimeUnixNano": str(now + 1_000_000),
                                "attributes": attrs({**CHAT, **CLAIM_B, MARKER: marker}),
                            }
                        ]
                    }
                ],
            }
        ]
    }
    return json.dumps(document).encode()


def _rest_trace(trace_id: bytes, span_id: bytes, marker: str, **extra: Any) -> dict[str, Any]:
    return {
        "trace_id": trace_id.hex(),
        "model": "gpt-4o",
        "provider": "openai",
        "spans": [{"span_id": span_id.hex(), "name": "chat", "input": "hi", "metadata": {"marker": marker}}],
        **extra,
    }


def _content_logs(trace_id: bytes, span_id: bytes, text: str) -> ExportLogsServiceRequest:
    """GenAI content for a span, as the OpenAI instrumentation (semconv v1.28) sends it, claiming org B."""
    request = ExportLogsServiceRequest()
    resource_logs = request.resource_logs.add()
    resource_logs.resource.attributes.extend(kv(k, v) for k, v in CLAIM_B.items())
    record = resource_logs.scope_logs.add().log_records.add()
    record.time_unix_nano = time.time_ns()
    record.trace_id, record.span_id = trace_id, span_id
    record.event_name = "gen_ai.user.message"
    record.attributes.append(kv(ORGANIZATION_ID, ORG_B))
    content = record.body.kvlist_value.values.add()
    content.key, content.value.string_value = "content", text
    return request


def _metrics_claiming_b() -> ExportMetricsServiceRequest:
    request = ExportMetricsServiceRequest()
    resource_metrics = request.resource_metrics.add()
    resource_metrics.resource.attributes.extend(kv(k, v) for k, v in CLAIM_B.items())
    metric = resource_metrics.scope_metrics.add().metrics.add()
    metric.name = "gen_ai.client.token.usage"
    point = metric.sum.data_points.add()
    point.as_int = 1_000_000
    point.time_unix_nano = time.time_ns()
    point.attributes.append(kv(ORGANIZATION_ID, ORG_B))
    return request


async def _grpc_export(target: str, method: str, request: Any, response_type: Any, key: str) -> Any:
    async with grpc.aio.insecure_channel(target) as channel:
        export = channel.unary_unary(
            method,
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=response_type.FromString,
        )
        return await export(request, metadata=(("authorization", f"Bearer {key}"),), timeout=10)


def _b_is_untouched(service: Service, trace_id: bytes, span_id: bytes, marker: str) -> None:
    rows = _rows(service, ORG_B)
    assert len(rows) == 1, rows
    (row,) = rows
    assert (row["TraceId"], row["SpanId"], row["ProjectId"]) == (trace_id.hex(), span_id.hex(), PROJECT_B)
    assert row["SpanAttributes"][MARKER] == marker
    assert row["ResourceAttributes"]["service.name"] == "victim"


async def test_tenant_writes_every_trace_path_lands_in_the_keys_organization(tmp_path: Path) -> None:
    async with _service(tmp_path) as service:
        ports = service.endpoints()
        grpc_target = f"127.0.0.1:{ports['otlp.grpc']}"
        otlp_http = f"http://127.0.0.1:{ports['otlp.http']}"
        assert service.query_service is not None
        rest_ports = {"collector": ports["rest.http"], "query": service.query_service.http_port}

        victim, trace_id, span_id = _victim_request("b-original")
        async with httpx.AsyncClient(timeout=30) as http:
            headers = {"content-type": PROTOBUF, **_bearer(KEY_B)}
            seeded = await http.post(
                f"{otlp_http}/v1/traces", content=victim.SerializeToString(), headers=headers
            )
            assert seeded.status_code == 200, seeded.text
            await _wait_exported(service, 1)

            # OTLP traces over gRPC, HTTP protobuf and HTTP JSON.
            response = await _grpc_export(
                grpc_target,
                "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
                _attack_request(trace_id, span_id, "a-grpc"),
                ExportTraceServiceResponse,
                KEY_A,
            )
            assert not response.HasField("partial_success")
            attack = _attack_request(trace_id, span_id, "a-http-protobuf").SerializeToString()
            headers = {"content-type": PROTOBUF, **_bearer(KEY_A)}
            assert (
                await http.post(f"{otlp_http}/v1/traces", content=attack, headers=headers)
            ).status_code == 200
            headers = {"content-type": "application/json", **_bearer(KEY_A)}
            attack = _attack_json(trace_id, span_id, "a-http-json")
            assert (
                await http.post(f"{otlp_http}/v1/traces", content=attack, headers=headers)
            ).status_code == 200

            # OTLP metrics naming org B: acknowledged, and they change nothing stored.
            response = await _grpc_export(
                grpc_target,
                "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
                _metrics_claiming_b(),
                ExportMetricsServiceResponse,
                KEY_A,
            )
            assert response == ExportMetricsServiceResponse()
            body = _metrics_claiming_b().SerializeToString()
            headers = {"content-type": PROTOBUF, **_bearer(KEY_A)}
            assert (
                await http.post(f"{otlp_http}/v1/metrics", content=body, headers=headers)
            ).status_code == 200

            # The REST ingest on both ports: naming org B (or B's project) is refused, nothing is written…
            for where, port in rest_ports.items():
                base = f"http://127.0.0.1:{port}/api/v1/traces"
                for claim in ({"organization_id": ORG_B}, {"project_id": PROJECT_B}):
                    single = _rest_trace(trace_id, span_id, f"a-refused-{where}", **claim)
                    refused = await http.post(base, json=single, headers=_bearer(KEY_A))
                    assert refused.status_code == 403, (where, claim, refused.text)
                    refused = await http.post(
                        f"{base}/batch", json={"traces": [single]}, headers=_bearer(KEY_A)
                    )
                    assert refused.status_code == 403, (where, claim, refused.text)
                # …and the victim's ids without a claim land in A.
                single = _rest_trace(trace_id, span_id, f"a-rest-{where}")
                accepted = await http.post(base, json=single, headers=_bearer(KEY_A))
                assert accepted.status_code == 202, (where, accepted.text)
                batch = {"traces": [_rest_trace(trace_id, span_id, f"a-rest-batch-{where}")]}
                accepted = await http.post(f"{base}/batch", json=batch, headers=_bearer(KEY_A))
                assert accepted.status_code == 202, (where, accepted.text)

            await _wait_exported(service, 1 + 3 + 4)
            # Everything is exported and nothing more is coming: the counts below are final.
            await wait_for(
                lambda: all(p.caught_up() for p in service.pipelines), what="the pipeline to drain"
            )

            _b_is_untouched(service, trace_id, span_id, "b-original")
            rows = _rows(service, ORG_A)
            assert sorted(row["SpanAttributes"][MARKER] for row in rows) == sorted(
                [
                    "a-grpc",
                    "a-http-json",
                    "a-http-protobuf",
                    "a-rest-batch-collector",
                    "a-rest-batch-query",
                    "a-rest-collector",
                    "a-rest-query",
                ]
            )
            for row in rows:
                marker = row["SpanAttributes"][MARKER]
                assert (row["TraceId"], row["SpanId"], row["ProjectId"]) == (
                    trace_id.hex(),
                    span_id.hex(),
                    PROJECT_A,
                ), marker
                # The claim is gone from both attribute maps, not only from the derived columns.
                assert row["SpanAttributes"][ORGANIZATION_ID] == ORG_A, marker
                assert row["ResourceAttributes"][ORGANIZATION_ID] == ORG_A, marker
                assert row["SpanAttributes"].get(PROJECT_ID, PROJECT_A) == PROJECT_A, marker
                assert row["ResourceAttributes"][PROJECT_ID] == PROJECT_A, marker

            # Through the query API: each organization sees its own spans under the shared trace id.
            query = f"http://127.0.0.1:{rest_ports['query']}/api/v1/traces/{trace_id.hex()}"
            seen_by_b = (await http.get(query, headers=_bearer(KEY_B))).json()["spans"]
            assert [span["attributes"].get(MARKER) for span in seen_by_b] == ["b-original"]
            seen_by_a = (await http.get(query, headers=_bearer(KEY_A))).json()["spans"]
            assert len(seen_by_a) == 7 and all(span["organization_id"] == ORG_A for span in seen_by_a)


async def test_tenant_writes_log_records_never_reach_another_organizations_span(tmp_path: Path) -> None:
    async with _service(tmp_path) as service:
        ports = service.endpoints()
        otlp_http = f"http://127.0.0.1:{ports['otlp.http']}"
        victim, trace_id, span_id = _victim_request("b-original")
        pipeline = service.pipelines[0]
        async with httpx.AsyncClient(timeout=30) as http:
            # Org A's content, keyed to org B's span, arrives first (over both transports) and waits for it.
            body = _content_logs(trace_id, span_id, "injected over http").SerializeToString()
            headers = {"content-type": PROTOBUF, **_bearer(KEY_A)}
            assert (await http.post(f"{otlp_http}/v1/logs", content=body, headers=headers)).status_code == 200
            response = await _grpc_export(
                f"127.0.0.1:{ports['otlp.grpc']}",
                "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
                _content_logs(trace_id, span_id, "injected over grpc"),
                ExportLogsServiceResponse,
                KEY_A,
            )
            assert response == ExportLogsServiceResponse()
            await wait_for(pipeline.caught_up, what="the pipeline to process the log records")

            headers = {"content-type": PROTOBUF, **_bearer(KEY_B)}
            seeded = await http.post(
                f"{otlp_http}/v1/traces", content=victim.SerializeToString(), headers=headers
            )
            assert seeded.status_code == 200
            await _wait_exported(service, 1)
            # The same ids in org A's own span do get org A's content: the join works, within the tenant.
            own_request, _, _ = _victim_request("a-own")
            own_span = own_request.resource_spans[0].scope_spans[0].spans[0]
            own_span.trace_id, own_span.span_id = trace_id, span_id
            own = own_request.SerializeToString()
            headers = {"content-type": PROTOBUF, **_bearer(KEY_A)}
            assert (
                await http.post(f"{otlp_http}/v1/traces", content=own, headers=headers)
            ).status_code == 200
            await _wait_exported(service, 2)

        _b_is_untouched(service, trace_id, span_id, "b-original")
        (b_row,) = _rows(service, ORG_B)
        assert list(b_row["events"]) == []
        assert "injected" not in json.dumps(b_row, default=str)
        (a_row,) = _rows(service, ORG_A)
        assert "injected over http" in a_row["SpanAttributes"]["gen_ai.input.messages"]
        assert "injected over grpc" in a_row["SpanAttributes"]["gen_ai.input.messages"]


async def test_tenant_writes_a_guessed_key_writes_nothing_on_any_path(
    tmp_path: Path,
) -> None:
    """A wrong key is refused on every path before anything is written."""
    async with _service(tmp_path) as service:
        ports = service.endpoints()
        request = _attack_request(b"\x01" * 16, b"\x02" * 8, "forged")
        async with httpx.AsyncClient(timeout=30) as http:
            headers = {"content-type": PROTOBUF, **_bearer("a-guessed-key")}
            for path in ("/v1/traces", "/v1/logs", "/v1/metrics"):
                url = f"http://127.0.0.1:{ports['otlp.http']}{path}"
                refused = await http.post(url, content=b"", headers=headers)
                assert refused.status_code == 401, path
            assert service.query_service is not None
            for port in (ports["rest.http"], service.query_service.http_port):
                url = f"http://127.0.0.1:{port}/api/v1/traces"
                refused = await http.post(
                    url, json=_rest_trace(b"\x01" * 16, b"\x02" * 8, "x"), headers=headers
                )
                assert refused.status_code == 401, port
        try:
            await _grpc_export(
                f"127.0.0.1:{ports['otlp.grpc']}",
                "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
                request,
                ExportTraceServiceResponse,
                "a-guessed-key",
            )
        except grpc.aio.AioRpcError as error:
            assert error.code() == grpc.StatusCode.UNAUTHENTICATED
        else:
            raise AssertionError("a guessed key was accepted over gRPC")
        assert service.log is not None and service.log.head == service.log.first
