"""Shared fixtures for the collector tests: a real ``Service`` on loopback ports in the test's event loop.

Test modules run with ``--import-mode=importlib`` and cannot import this file, so every helper is a fixture:

- ``collector_config(exporters=..., processors=..., overrides=...)`` → a validated ``Config`` (data dir =
  the test's ``tmp_path``; every listen endpoint ``127.0.0.1:0``; one ``traces`` pipeline from the ``otlp``
  receiver through the given processors to the given exporters; default exporter: the ``debug`` sink; the
  ``flaky`` exporter of ``collector.testing`` is available too).
- ``running_collector(config, query=False)`` → an async context manager (``collector.testing.running``)
  that starts a ``Service`` and shuts it down: ``async with running_collector(cfg) as service: ...``.
  Ports: ``service.endpoints()["otlp.grpc"]`` / ``["otlp.http"]``; the sink:
  ``service.exporters["debug"].spans`` (dicts of the span columns).
- ``start_collector(**collector_config kwargs)`` → a started ``Service``, shut down when the test ends.
- ``wait_for(predicate, timeout=10, what="...")`` → polls until ``predicate()`` is true (no fixed sleeps).
- ``trace_request(count=..., attributes=..., resource=...)`` → an ``ExportTraceServiceRequest`` of valid
  GenAI spans with unique ids (one trace, parent/child links).
- ``scrape(port)`` → the Prometheus samples served at ``http://127.0.0.1:<port>/metrics``.
- ``in_thread(fn, *args)`` → runs blocking client code (the OTel SDK's exporters) off the event loop, which
  must stay free to serve the request.
"""

from __future__ import annotations

import asyncio
import copy
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from prometheus_client.parser import text_string_to_metric_families

from llm_observer.collector.config import Config, deep_merge
from llm_observer.collector.service import Service
from llm_observer.collector.testing import local_config, running
from llm_observer.kernel.component import Factory

T = TypeVar("T")

LOOPBACK_ANY = "127.0.0.1:0"


def build_overrides(
    exporters: Mapping[str, Mapping[str, Any]] | Sequence[str] | None = None,
    processors: Mapping[str, Mapping[str, Any]] | Sequence[str] = (),
    overrides: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The overrides ``collector_config`` merges over the built-in default (see the module docstring)."""
    if exporters is None:
        exporters = {"debug": {}}
    if not isinstance(exporters, Mapping):
        exporters = {exporter_id: {} for exporter_id in exporters}
    if not isinstance(processors, Mapping):
        processors = {processor_id: {} for processor_id in processors}
    exporter_bodies: dict[str, Any] = {"prometheus": {"endpoint": LOOPBACK_ANY}}
    for exporter_id, body in exporters.items():
        body = dict(body)
        if exporter_id.split("/", 1)[0] == "prometheus":
            body.setdefault("endpoint", LOOPBACK_ANY)
        exporter_bodies[exporter_id] = body
    # Listeners on ephemeral ports come from ``local_config``; this adds the pipeline under test.
    base: dict[str, Any] = {
        "processors": {processor_id: dict(body) for processor_id, body in processors.items()},
        "exporters": exporter_bodies,
        "service": {
            "pipelines": {
                "traces": {
                    "receivers": ["otlp"],
                    "processors": list(processors),
                    "exporters": list(exporters),
                }
            },
            # Tests want spans through quickly, and a stuck exporter must not hold teardown for long.
            "delivery": {"linger_seconds": 0.01, "drain_timeout_seconds": 5},
        },
    }
    result = deep_merge(base, copy.deepcopy(dict(overrides or {})))
    assert isinstance(result, dict)
    return result


@pytest.fixture
def collector_config(tmp_path: Path) -> Callable[..., Config]:
    """``collector_config(exporters=None, processors=(), overrides=None, data_dir=tmp_path,
    extra_factories=None)`` → ``Config``.

    ``exporters`` / ``processors``: ids (``["debug", "prometheus"]``) or ``{id: config}``; they are the
    pipeline's, in that order. ``overrides`` is merged last (e.g. ``{"service": {"wal": {"mode": "memory"}}}``).
    The test-only types of ``llm_observer.collector.testing`` (the ``flaky`` exporter) are always known;
    ``extra_factories`` adds more (``{"exporters": {"mine": Factory(...)}}``).
    """

    def make(
        exporters: Mapping[str, Mapping[str, Any]] | Sequence[str] | None = None,
        processors: Mapping[str, Mapping[str, Any]] | Sequence[str] = (),
        overrides: Mapping[str, Any] | None = None,
        data_dir: Path | None = None,
        extra_factories: Mapping[str, Mapping[str, Factory[Any, Any]]] | None = None,
    ) -> Config:
        return local_config(
            data_dir if data_dir is not None else tmp_path,
            build_overrides(exporters, processors, overrides),
            extra_factories,
        )

    return make


@pytest.fixture
def running_collector() -> Callable[..., AbstractAsyncContextManager[Service]]:
    """``async with running_collector(config, query=False) as service:`` — started, then shut down."""
    return running


@pytest.fixture
async def start_collector(
    collector_config: Callable[..., Config],
) -> AsyncIterator[Callable[..., Awaitable[Service]]]:
    """``service = await start_collector(**collector_config_kwargs)``; shut down when the test ends."""
    started: list[Service] = []

    async def start(**kwargs: Any) -> Service:
        service = Service(collector_config(**kwargs))
        await service.start()
        started.append(service)
        return service

    yield start
    for service in reversed(started):
        await service.shutdown()


async def _wait_for(predicate: Callable[[], object], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.1f}s waiting for {what}")
        await asyncio.sleep(0.01)


@pytest.fixture
def wait_for() -> Callable[..., Awaitable[None]]:
    """``await wait_for(predicate, timeout=10.0, what="...")``: poll with a deadline, fail naming ``what``."""
    return _wait_for


# --- OTLP data ---------------------------------------------------------------------------------------


def _kv(key: str, value: Any) -> KeyValue:
    kv = KeyValue(key=key)
    if isinstance(value, bool):
        kv.value.bool_value = value
    elif isinstance(value, int):
        kv.value.int_value = value
    elif isinstance(value, float):
        kv.value.double_value = value
    else:
        kv.value.string_value = str(value)
    return kv


GENAI_ATTRIBUTES: dict[str, Any] = {
    "gen_ai.operation.name": "chat",
    "gen_ai.provider.name": "openai",
    "gen_ai.request.model": "gpt-4o",
    "gen_ai.usage.input_tokens": 100,
    "gen_ai.usage.output_tokens": 20,
}


def make_trace_request(
    count: int = 3,
    attributes: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None,
    resource: Mapping[str, Any] | None = None,
    duration_ns: int = 250_000_000,
) -> ExportTraceServiceRequest:
    """``count`` valid spans of one new trace (the first is the parent of the others), unique ids.

    ``attributes``: one mapping for every span or one per span (default: a GenAI chat span).
    """
    request = ExportTraceServiceRequest()
    rs = request.resource_spans.add()
    for key, value in (resource or {"service.name": "test-app"}).items():
        rs.resource.attributes.append(_kv(key, value))
    ss = rs.scope_spans.add()
    ss.scope.name = "tests.collector"
    trace_id = os.urandom(16)
    root = b""
    start = time.time_ns() - 60_000_000_000
    for index in range(count):
        if attributes is None:
            attrs: Mapping[str, Any] = GENAI_ATTRIBUTES
        elif isinstance(attributes, Mapping):
            attrs = attributes
        else:
            attrs = attributes[index]
        span = ss.spans.add()
        span.trace_id = trace_id
        span.span_id = os.urandom(8)
        span.parent_span_id = root
        span.name = f"{attrs.get('gen_ai.operation.name', 'op')} {attrs.get('gen_ai.request.model', '')}"
        span.kind = Span.SPAN_KIND_CLIENT
        span.start_time_unix_nano = start + index * 1_000_000
        span.end_time_unix_nano = span.start_time_unix_nano + duration_ns
        span.attributes.extend(_kv(k, v) for k, v in attrs.items())
        if index == 0:
            root = span.span_id
    return request


@pytest.fixture
def trace_request() -> Callable[..., ExportTraceServiceRequest]:
    """``trace_request(count=3, attributes=None, resource=None, duration_ns=...)`` (see ``make_trace_request``)."""
    return make_trace_request


# --- Prometheus -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sample:
    name: str
    labels: dict[str, str]
    value: float


class Samples(list[Sample]):
    """Parsed ``/metrics`` samples with small lookups."""

    def named(self, name: str, **labels: str) -> list[Sample]:
        return [s for s in self if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]

    def value(self, name: str, **labels: str) -> float | None:
        """The sum over the samples that match (None when none does)."""
        found = self.named(name, **labels)
        return sum(s.value for s in found) if found else None


async def _scrape(port: int) -> Samples:
    async with httpx.AsyncClient() as client:
        response = await client.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
    response.raise_for_status()
    out = Samples()
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            out.append(Sample(sample.name, dict(sample.labels), float(sample.value)))
    return out


@pytest.fixture
def scrape() -> Callable[[int], Awaitable[Samples]]:
    """``samples = await scrape(port)``; ``samples.value("llm_observer_spans_received_total", component="otlp")``."""
    return _scrape


# --- blocking clients ---------------------------------------------------------------------------------


@pytest.fixture
def in_thread() -> Callable[..., Awaitable[Any]]:
    """``await in_thread(fn, *args)``: blocking clients (the OTel SDK exporters) must not block the loop."""

    async def run(fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.to_thread(fn, *args)

    return run
