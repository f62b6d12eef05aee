"""LLMObserverTracer exporting real OTLP/HTTP to a local receiver, and the integrations."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import openai
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from llm_observer import LLMObserverTracer
from llm_observer.instrumentation.testing import ReplayServer, Route
from llm_observer.instrumentation.testing.otlp import otlp_trace_route, spans_from_requests
from llm_observer.integrations import OpenAIIntegration

Recording = Callable[[str], list[Route]]


@pytest.fixture
def collector() -> Iterator[ReplayServer]:
    with ReplayServer([otlp_trace_route()]) as server:
        yield server


def test_tracer_trace_exports_otlp_with_tenant_resource(collector: ReplayServer) -> None:
    tracer = LLMObserverTracer(
        endpoint=collector.url,
        organization_id="acme",
        project_id="support-bot",
        service_name="bot",
        api_key="k-1",
    )
    trace_id = tracer.trace(
        model="gpt-4o",
        provider="openai",
        prompt="What is 2+2?",
        response="4",
        prompt_tokens=12,
        completion_tokens=1,
        duration_ms=250.0,
        metadata={"user_id": "u-9", "route": "faq", "tags": ["a", "b"]},
    )
    assert tracer.flush()
    tracer.shutdown()
    (request,) = [r for r in collector.requests if r.path == "/v1/traces"]
    assert request.headers["authorization"] == "Bearer k-1"
    assert request.headers["content-type"] == "application/x-protobuf"
    (span,) = spans_from_requests(collector.requests)
    assert span.trace_id == trace_id
    assert span.name == "chat gpt-4o"
    assert span.resource["llm_observer.organization.id"] == "acme"
    assert span.resource["llm_observer.project.id"] == "support-bot"
    assert span.resource["service.name"] == "bot"
    assert span.end_ns - span.start_ns == 250_000_000
    assert span.attributes["gen_ai.provider.name"] == "openai"
    assert span.attributes["gen_ai.usage.input_tokens"] == 12
    assert span.attributes["gen_ai.usage.output_tokens"] == 1
    assert span.attributes["user.id"] == "u-9"
    assert span.attributes["llm_observer.metadata.route"] == "faq"
    assert span.attributes["llm_observer.metadata.tags"] == '["a","b"]'
    assert '"content":"What is 2+2?"' in span.attributes["gen_ai.input.messages"]
    assert '"content":"4"' in span.attributes["gen_ai.output.messages"]


def test_tracer_start_end_span_builds_a_tree_in_the_given_trace(collector: ReplayServer) -> None:
    run_id = str(uuid.uuid4())
    with LLMObserverTracer(endpoint=collector.url, project_id="p") as tracer:
        root = tracer.start_span(trace_id=run_id, name="research run")
        step = tracer.start_span(
            trace_id=run_id, name="plan", parent_span_id=root, model="gpt-4o", provider="openai"
        )
        assert tracer.end_span(span_id=step, output="1. search", prompt_tokens=30, completion_tokens=5)
        assert not tracer.end_span(span_id=step)
        tracer.end_span(span_id=root, output="done")
    spans = {span.name: span for span in spans_from_requests(collector.requests)}
    assert spans["research run"].trace_id == run_id.replace("-", "")
    assert spans["research run"].parent_span_id == ""
    assert spans["plan"].trace_id == run_id.replace("-", "")
    assert spans["plan"].parent_span_id == root == spans["research run"].span_id
    assert spans["plan"].attributes["gen_ai.request.model"] == "gpt-4o"
    assert spans["plan"].attributes["gen_ai.usage.input_tokens"] == 30


def test_tracer_remote_parent_and_error(collector: ReplayServer) -> None:
    with LLMObserverTracer(endpoint=collector.url) as tracer:
        span_id = tracer.start_span(
            trace_id="4bf92f3577b34da6a3ce929d0e0e4736",
            parent_span_id="00f067aa0ba902b7",
            name="retry",
            model="m",
        )
        tracer.end_span(span_id=span_id, error=TimeoutError("slow"))
    (span,) = spans_from_requests(collector.requests)
    assert span.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert span.parent_span_id == "00f067aa0ba902b7"
    assert span.status_code == 2
    assert span.attributes["error.type"] == "TimeoutError"


def test_tracer_shutdown_ends_open_spans(collector: ReplayServer) -> None:
    tracer = LLMObserverTracer(endpoint=collector.url)
    tracer.start_span(name="never ended")
    tracer.shutdown()
    tracer.shutdown()
    (span,) = spans_from_requests(collector.requests)
    assert span.attributes["llm_observer.incomplete"] is True


def test_tracer_openai_integration_sends_sdk_calls_through_tracer(
    replay: ReplayServer, recording: Recording
) -> None:
    replay.set_routes(recording("openai/chat.json"))
    exporter = InMemorySpanExporter()
    tracer = LLMObserverTracer(organization_id="acme", span_exporter=exporter)
    OpenAIIntegration.instrument(tracer)
    try:
        client = openai.OpenAI(base_url=replay.url + "/v1", api_key="k", max_retries=0)
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
        tracer.flush()
    finally:
        OpenAIIntegration.uninstrument()
        tracer.shutdown()
    (span,) = exporter.get_finished_spans()
    assert span.name == "chat gpt-4o-mini"
    assert span.resource.attributes["llm_observer.organization.id"] == "acme"
    assert span.attributes["gen_ai.usage.input_tokens"] == 24
