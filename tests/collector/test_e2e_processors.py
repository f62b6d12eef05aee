"""End to end: a real OpenTelemetry SDK exporter → the collector with an ingest key → tenant, normalize,
attribute, cost, redact → ClickHouse (chDB). The stored row has the key's tenant (not the one the client claimed),
the computed cost, and masked content."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind

from llm_observer.collector.testing import local_config, running
from llm_observer.kernel.auth import hash_api_key
from tests.support import wait_for
from tests.support.collector import stored

INGEST_KEY = "llmo-test-ingest-key-0123456789"


def send(endpoint: str) -> None:
    provider = TracerProvider(
        resource=Resource.create(
            # The client claims another tenant on its resource and its spans: the key decides.
            {"service.name": "support-bot", "llm_observer.organization.id": "victim-org"}
        )
    )
    exporter = OTLPSpanExporter(endpoint=endpoint, headers={"Authorization": f"Bearer {INGEST_KEY}"})
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("e2e-cost")
    with tracer.start_as_current_span("chat gpt-4o", kind=SpanKind.CLIENT) as span:
        span.set_attribute("gen_ai.operation.name", "chat")
        span.set_attribute("gen_ai.provider.name", "openai")
        span.set_attribute("gen_ai.request.model", "gpt-4o")
        span.set_attribute("gen_ai.response.model", "gpt-4o-2024-08-06")
        span.set_attribute("gen_ai.usage.input_tokens", 1000)
        span.set_attribute("gen_ai.usage.cache_read.input_tokens", 200)
        span.set_attribute("gen_ai.usage.output_tokens", 500)
        span.set_attribute("session.id", "sess-42")
        span.set_attribute("llm_observer.organization.id", "victim-org")
        span.set_attribute("llm_observer.project.id", "victim-project")
        span.set_attribute(
            "gen_ai.input.messages",
            json.dumps([{"role": "user", "parts": [{"type": "text", "content": "I am jane@example.com"}]}]),
        )
    with tracer.start_as_current_span("chat my-local-model", kind=SpanKind.CLIENT) as span:
        span.set_attribute("gen_ai.operation.name", "chat")
        span.set_attribute("gen_ai.provider.name", "ollama")
        span.set_attribute("gen_ai.request.model", "my-local-model")
        span.set_attribute("gen_ai.usage.input_tokens", 10)
        span.set_attribute("gen_ai.usage.output_tokens", 10)
    provider.shutdown()


async def test_e2e_processors_tenant_cost_and_redaction_are_stored(tmp_path: Path) -> None:
    config = local_config(
        tmp_path,
        {
            "auth": {
                "enabled": True,
                "api_keys": [
                    {
                        "id": "ingest",
                        "key_sha256": hash_api_key(INGEST_KEY),
                        "organization_id": "acme",
                        "projects": ["support"],
                        "scopes": ["ingest"],
                    }
                ],
            },
            "processors": {"redact": {}},
            "service": {
                "pipelines": {
                    "traces": {
                        "receivers": ["otlp"],
                        "processors": ["tenant", "normalize", "attribute", "cost", "redact"],
                        "exporters": ["clickhouse"],
                    }
                }
            },
        },
    )
    async with running(config) as service:
        endpoint = f"http://127.0.0.1:{service.endpoints()['otlp.http']}/v1/traces"
        await asyncio.to_thread(send, endpoint)
        sql = (
            "SELECT SpanName, OrganizationId, ProjectId, CostUsd, ConversationId, "
            "SpanAttributes['llm_observer.cost.source'] AS source, "
            "SpanAttributes['llm_observer.cost.cache_read_usd'] AS cache_read, "
            "SpanAttributes['gen_ai.input.messages'] AS messages "
            "FROM otel.otel_traces ORDER BY SpanName"
        )
        rows = await wait_for(
            lambda: (r := stored(service, sql)) and len(r) == 2 and r, timeout=30, what="2 stored spans"
        )
    priced, local = rows
    assert (priced["SpanName"], priced["OrganizationId"], priced["ProjectId"]) == (
        "chat gpt-4o",
        "acme",
        "support",
    )
    assert priced["CostUsd"] == 0.00725
    assert priced["source"] == "computed"
    assert float(priced["cache_read"]) == 0.00025
    assert priced["ConversationId"] == "sess-42"
    content = json.loads(priced["messages"])
    assert content[0]["parts"][0]["content"] == "I am [REDACTED:email]"
    assert (local["OrganizationId"], local["ProjectId"]) == ("acme", "support")
    assert local["CostUsd"] == 0.0  # no price known for a local model: no cost attribute, never a guess
    assert local["source"] == ""
