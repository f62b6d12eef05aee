"""The ``prometheus`` exporter behind a running collector: the GenAI metrics the ``spanmetrics`` connector
derives from spans sent by the OpenTelemetry SDK, the collector's own counters, bounded cardinality per
organization, and ``/metrics`` behind the keys when auth is on."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode
from prometheus_client.parser import text_string_to_metric_families

from llm_observer.collector.service import Service
from llm_observer.kernel.auth import hash_api_key
from tests.support import trace_request, wait_for
from tests.support.collector import Sample, Samples, metrics_port, scrape, sink

# The GenAI client histograms' advisory boundaries: powers of 4 for token counts, doubling from 10 ms for
# durations.
TOKEN_BUCKETS = [4.0**i for i in range(14)]  # 1, 4, 16, … 67108864
DURATION_BUCKETS = [0.01 * 2**i for i in range(14)]  # 0.01, 0.02, … 81.92 s
TENANT = {"llm_observer.organization.id": "acme", "llm_observer.project.id": "chatbot"}
LABELS = {
    "gen_ai_provider_name": "openai",
    "gen_ai_request_model": "gpt-4o",
    "gen_ai_operation_name": "chat",
    "organization": "acme",
    "project": "chatbot",
}


def _sdk_spans(
    specs: Sequence[tuple[Mapping[str, Any], float, bool]], resource: Mapping[str, Any] | None = None
) -> tuple[ReadableSpan, ...]:
    """Spans made by the real SDK: (attributes, duration in seconds, is error) each."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "prom-test", **(resource or TENANT)}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("tests.prometheus")
    start = time.time_ns() - 120_000_000_000
    for attributes, seconds, is_error in specs:
        span = tracer.start_span(
            f"chat {attributes.get('gen_ai.request.model', '')}",
            kind=SpanKind.CLIENT,
            attributes=dict(attributes),
            start_time=start,
        )
        if is_error:
            span.set_status(Status(StatusCode.ERROR, "boom"))
        span.end(end_time=start + int(seconds * 1e9))
    provider.shutdown()
    return memory.get_finished_spans()


async def _export(service: Service, spans: Sequence[ReadableSpan]) -> None:
    """Through the SDK's OTLP/gRPC exporter, which blocks: in a thread, so the loop serves the request."""
    exporter = OTLPSpanExporter(
        endpoint=f"127.0.0.1:{service.endpoints()['otlp.grpc']}", insecure=True, timeout=10
    )
    try:
        assert await asyncio.to_thread(exporter.export, spans) == SpanExportResult.SUCCESS
    finally:
        await asyncio.to_thread(exporter.shutdown)


def _chat(
    model: str = "gpt-4o",
    input_tokens: int = 100,
    output_tokens: int = 20,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": model,
        "gen_ai.usage.input_tokens": input_tokens,
        "gen_ai.usage.output_tokens": output_tokens,
        **(extra or {}),
    }


def _buckets(samples: Samples, name: str, **labels: str) -> list[tuple[float, float]]:
    """(le, cumulative count) of one histogram series, in bound order."""
    found = samples.named(f"{name}_bucket", **labels)
    return sorted((float(s.labels["le"]), s.value) for s in found)


async def _at_least(port: int, exporter: str, spans: int) -> bool:
    """Whether ``exporter`` has counted at least ``spans`` spans exported."""
    samples = await scrape(port)
    return (samples.value("llm_observer_spans_exported_total", exporter=exporter) or 0.0) >= spans


async def test_prometheus_serves_genai_metrics_and_collector_counters(
    start_collector: Callable[..., Awaitable[Service]],
) -> None:
    service = await start_collector(exporters=["debug", "spanmetrics"])
    port = metrics_port(service)
    spans = _sdk_spans(
        [
            (_chat(input_tokens=100, output_tokens=20, extra={"llm_observer.cost.usd": 0.0125}), 0.3, False),
            (_chat(input_tokens=3000, output_tokens=700, extra={"llm_observer.cost.usd": 0.25}), 1.5, False),
            (_chat(input_tokens=1, output_tokens=0, extra={"error.type": "timeout"}), 0.015, True),
            ({"http.route": "/not-genai"}, 0.05, False),  # not a GenAI span: counted, not measured
        ]
    )
    await _export(service, spans)

    last: dict[str, float] = {}

    async def exported_by_both() -> bool:
        samples = await scrape(port)
        for exporter in ("debug", "spanmetrics"):
            last[exporter] = samples.value("llm_observer_spans_exported_total", exporter=exporter) or 0.0
        return all(value == 4 for value in last.values())

    await wait_for(exported_by_both, what=lambda: f"both exporters to count 4 spans (now {last})")
    samples = await scrape(port)

    # Token usage: exactly the advisory buckets, per token type.
    name = "gen_ai_client_token_usage"
    input_buckets = _buckets(samples, name, gen_ai_token_type="input", **LABELS)
    assert [le for le, _ in input_buckets] == [*TOKEN_BUCKETS, float("inf")]
    counts = dict(input_buckets)
    assert (counts[1.0], counts[64.0], counts[256.0], counts[4096.0], counts[float("inf")]) == (1, 1, 2, 3, 3)
    assert samples.value(f"{name}_count", gen_ai_token_type="input", **LABELS) == 3
    assert samples.value(f"{name}_sum", gen_ai_token_type="input", **LABELS) == 3101
    assert samples.value(f"{name}_sum", gen_ai_token_type="output", **LABELS) == 720

    # Duration: the advisory buckets, with error.type (empty when the call succeeded).
    name = "gen_ai_client_operation_duration_seconds"
    ok = _buckets(samples, name, error_type="", **LABELS)
    assert [le for le, _ in ok] == pytest.approx([*DURATION_BUCKETS, float("inf")])
    ok_counts = [count for _, count in ok]
    assert ok_counts[DURATION_BUCKETS.index(0.16)] == 0  # 0.3 s is above 0.16
    assert ok_counts[DURATION_BUCKETS.index(0.32)] == 1
    assert ok_counts[DURATION_BUCKETS.index(2.56)] == 2
    assert samples.value(f"{name}_sum", error_type="", **LABELS) == pytest.approx(1.8)
    assert samples.value(f"{name}_count", error_type="timeout", **LABELS) == 1

    assert samples.value("llm_observer_cost_usd_total", **LABELS) == pytest.approx(0.2625)

    # No user or trace ids as labels: cardinality stays bounded.
    for sample in samples.named("gen_ai_client_token_usage_bucket"):
        assert set(sample.labels) == {*LABELS, "gen_ai_token_type", "le"}

    # The collector's own metrics on the same endpoint.
    assert samples.value("llm_observer_spans_received_total", component="otlp") == 4
    assert samples.value("llm_observer_spans_accepted_total", component="otlp") == 4
    assert samples.value("llm_observer_spans_exported_total", exporter="debug") == 4
    assert samples.value("llm_observer_spans_exported_total", exporter="spanmetrics") == 4
    lags = {
        (s.labels["pipeline"], s.labels["exporter"]): s.value
        for s in samples.named("llm_observer_wal_lag_records")
    }
    assert set(lags) == {("traces", "debug"), ("traces", "spanmetrics")}
    # One label scheme: the same exporter id on every self-metric, the pipeline beside it.
    assert samples.value("llm_observer_spans_exported_total", pipeline="traces", exporter="debug") == 4
    assert all(lag == 0 for lag in lags.values())
    assert samples.value("llm_observer_wal_sync_seconds_count") >= 1


async def test_prometheus_reports_wal_lag_of_a_stalled_exporter(
    start_collector: Callable[..., Awaitable[Service]],
) -> None:
    """An exporter that cannot deliver shows as lag while the others of its pipeline reach zero."""
    service = await start_collector(
        exporters=["spanmetrics", "flaky"],  # flaky: fails (retryably) on every send until told otherwise
        overrides={"service": {"delivery": {"drain_timeout_seconds": 0.1}}},
    )
    port = metrics_port(service)
    for _ in range(3):
        await _export(service, _sdk_spans([(_chat(), 0.1, False)]))
    lags: dict[str, float] = {}

    async def settled() -> bool:
        samples = await scrape(port)
        lags.update(
            {
                f"{s.labels['pipeline']}/{s.labels['exporter']}": s.value
                for s in samples.named("llm_observer_wal_lag_records")
            }
        )
        retries = samples.value("llm_observer_export_retries_total", exporter="flaky") or 0
        return lags.get("traces/spanmetrics") == 0 and lags.get("traces/flaky") == 3 and retries >= 1

    await wait_for(settled, what=lambda: f"the flaky exporter's lag alone to stay (lags: {lags})")
    assert (await scrape(port)).value("llm_observer_spans_exported_total", exporter="flaky") in (None, 0.0)


async def test_prometheus_folds_label_sets_beyond_max_series_into_other(
    start_collector: Callable[..., Awaitable[Service]],
) -> None:
    service = await start_collector(exporters={"spanmetrics": {"max_series": 2}})
    port = metrics_port(service)
    models = ["gpt-4o", "gpt-4o-mini", "o3", "claude-sonnet-4", "gpt-4o"]
    # One request per span, so the order the label sets are first seen is the order sent.
    for model in models:
        await _export(service, _sdk_spans([(_chat(model=model, input_tokens=10), 0.1, False)]))
    await wait_for(
        lambda: _at_least(port, "spanmetrics", len(models)), what=f"{len(models)} spans through spanmetrics"
    )
    samples = await scrape(port)

    counts = {
        s.labels["gen_ai_request_model"]: s.value
        for s in samples.named("gen_ai_client_token_usage_count", gen_ai_token_type="input")
    }
    assert counts == {"gpt-4o": 2, "gpt-4o-mini": 1, "_other": 2}
    other = samples.named("gen_ai_client_token_usage_count", gen_ai_request_model="_other")
    # Folded into the organization's own _other series: every label _other but the organization.
    assert other and all(
        value == ("acme" if key == "organization" else "_other")
        for s in other
        for key, value in s.labels.items()
        if key in LABELS
    )
    assert {s.labels["gen_ai_request_model"] for s in samples.named("llm_observer_cost_usd_total")} <= {
        "gpt-4o",
        "gpt-4o-mini",
        "_other",
    }


async def test_prometheus_cost_matches_the_cost_processor(
    start_collector: Callable[..., Awaitable[Service]],
) -> None:
    """Through the default processors, the cost counter is the sum of the cost the spans carry."""
    service = await start_collector(
        exporters=["debug", "spanmetrics"], processors=["normalize", "attribute", "cost"]
    )
    port = metrics_port(service)
    spans = _sdk_spans(
        [
            (_chat(input_tokens=1000, output_tokens=500), 0.4, False),
            (_chat(input_tokens=50, output_tokens=5), 0.2, False),
        ]
    )
    await _export(service, spans)
    await wait_for(lambda: _at_least(port, "spanmetrics", 2), what="2 spans through spanmetrics")
    stored = [s["attributes"].get("llm_observer.cost.usd") for s in sink(service).spans]
    assert all(isinstance(cost, float) and cost > 0 for cost in stored), stored
    samples = await scrape(port)
    assert samples.value("llm_observer_cost_usd_total", gen_ai_request_model="gpt-4o") == pytest.approx(
        sum(stored)
    )


async def test_prometheus_endpoint_serves_only_metrics(
    start_collector: Callable[..., Awaitable[Service]],
) -> None:
    service = await start_collector()
    port = metrics_port(service)
    async with httpx.AsyncClient() as client:
        metrics = await client.get(f"http://127.0.0.1:{port}/metrics")
        other = await client.get(f"http://127.0.0.1:{port}/")
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    assert "# TYPE llm_observer_spans_received_total counter" in metrics.text
    assert other.status_code == 404


async def test_prometheus_one_organizations_cardinality_folds_only_its_own_series(
    start_collector: Callable[..., Awaitable[Service]],
) -> None:
    service = await start_collector(
        exporters={"spanmetrics": {"max_series": 4, "max_series_per_organization": 2}}
    )
    port = metrics_port(service)
    noisy = {**TENANT, "llm_observer.organization.id": "noisy"}
    for model in ["m1", "m2", "m3", "m4", "m5", "m6"]:
        await _export(service, _sdk_spans([(_chat(model=model), 0.1, False)], resource=noisy))
    await _export(service, _sdk_spans([(_chat(model="gpt-4o"), 0.1, False)]))  # acme, after the flood
    await wait_for(lambda: _at_least(port, "spanmetrics", 7), what="7 spans through spanmetrics")
    samples = await scrape(port)
    counts = {
        (s.labels["organization"], s.labels["gen_ai_request_model"]): s.value
        for s in samples.named("gen_ai_client_token_usage_count", gen_ai_token_type="input")
    }
    assert counts == {("noisy", "m1"): 1, ("noisy", "m2"): 1, ("noisy", "_other"): 4, ("acme", "gpt-4o"): 1}


_KEYS = {"operator": "op-key", "acme": "acme-query-key", "globex": "globex-key", "ingest": "ingest-only-key"}


def _auth() -> dict[str, Any]:
    def key(key_id: str, org: str, scopes: list[str]) -> dict[str, Any]:
        return {
            "id": key_id,
            "key_sha256": hash_api_key(_KEYS[key_id]),
            "organization_id": org,
            "scopes": scopes,
        }

    return {
        "enabled": True,
        "api_keys": [
            key("operator", "ops", ["metrics"]),
            key("acme", "acme", ["ingest", "query"]),
            key("globex", "globex", ["ingest", "query"]),
            key("ingest", "acme", ["ingest"]),
        ],
    }


async def _get_metrics(port: int, key: str | None) -> httpx.Response:
    headers = {"authorization": f"Bearer {key}"} if key is not None else {}
    async with httpx.AsyncClient() as client:
        return await client.get(f"http://127.0.0.1:{port}/metrics", headers=headers, timeout=10)


def _parse(text: str) -> Samples:
    out = Samples()
    for family in text_string_to_metric_families(text):
        out.extend(Sample(s.name, dict(s.labels), float(s.value)) for s in family.samples)
    return out


async def test_prometheus_metrics_need_a_key_and_a_tenant_key_sees_only_its_organization(
    start_collector: Callable[..., Awaitable[Service]],
) -> None:
    service = await start_collector(
        exporters=["spanmetrics"], processors=["tenant"], overrides={"auth": _auth()}
    )
    port = metrics_port(service)
    url = f"http://127.0.0.1:{service.endpoints()['otlp.http']}/v1/traces"
    async with httpx.AsyncClient() as client:
        for key_id, model in (("acme", "acme-model"), ("globex", "globex-model")):
            # Each claims the other organization in its attributes: the key decides.
            body = trace_request(
                2,
                attributes={**_chat(model=model), "llm_observer.organization.id": "someone-else"},
                resource={"service.name": "svc", "llm_observer.organization.id": "someone-else"},
            ).SerializeToString()
            headers = {"content-type": "application/x-protobuf", "authorization": f"Bearer {_KEYS[key_id]}"}
            assert (await client.post(url, content=body, headers=headers)).status_code == 200

    async def exported() -> bool:
        response = await _get_metrics(port, _KEYS["operator"])
        spans = _parse(response.text).value("llm_observer_spans_exported_total", exporter="spanmetrics")
        return spans == 4

    await wait_for(exported, what="4 spans through spanmetrics")

    anonymous = await _get_metrics(port, None)
    assert anonymous.status_code == 401 and anonymous.headers["www-authenticate"] == "Bearer"
    assert "acme-model" not in anonymous.text
    assert (await _get_metrics(port, "not-a-key")).status_code == 401
    ingest_only = await _get_metrics(port, _KEYS["ingest"])
    assert ingest_only.status_code == 403 and "metrics" in ingest_only.text

    everything = _parse((await _get_metrics(port, _KEYS["operator"])).text)
    models = {
        (s.labels["organization"], s.labels["gen_ai_request_model"])
        for s in everything.named("gen_ai_client_token_usage_count")
    }
    assert models == {("acme", "acme-model"), ("globex", "globex-model")}

    acme = await _get_metrics(port, _KEYS["acme"])
    assert acme.status_code == 200
    samples = _parse(acme.text)
    assert {s.labels.get("organization") for s in samples} == {"acme"}
    assert samples.value("gen_ai_client_token_usage_count", gen_ai_token_type="input") == 2
    assert samples.value("llm_observer_spans_exported_total") is None  # the operator's, not a tenant's
    assert "globex" not in acme.text
