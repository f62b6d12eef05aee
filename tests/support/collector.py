"""A real collector ``Service`` on loopback ports in the test's event loop, and what tests read from it.

- ``start_collector`` (a fixture: the test's conftest imports it) → ``service = await start_collector(
  exporters=..., processors=..., overrides=...)``, a started ``Service`` shut down when the test ends.
- ``collector_config(data_dir, exporters=..., processors=..., overrides=...)`` → the validated ``Config``
  behind it; ``running(config)`` (from ``llm_observer.collector.testing``) runs one in an ``async with``.
- ``debug_collector_yaml(grpc, http)`` → the YAML of a collector that takes OTLP into the ``debug`` exporter,
  for tests that run the ``llm-observer`` command.
- ``sink(service)`` → the ``debug`` exporter (``.spans``: dicts of the span columns); ``stored(service, sql)``
  → rows of the ``clickhouse`` exporter's store; ``metrics_port(service)`` and ``scrape(port)`` → the
  Prometheus samples the collector serves (its own metrics, and GenAI metrics when the traces pipeline
  exports to the ``spanmetrics`` connector).
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from llm_observer.collector.config import Config, deep_merge, discover_factories
from llm_observer.collector.service import Service
from llm_observer.collector.testing import local_config
from llm_observer.exporters.debug import DebugExporter
from llm_observer.exporters.prometheus import PrometheusExporter
from llm_observer.kernel.component import Factory


def build_overrides(
    exporters: Mapping[str, Mapping[str, Any]] | Sequence[str] | None = None,
    processors: Mapping[str, Mapping[str, Any]] | Sequence[str] = (),
    overrides: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The overrides ``collector_config`` merges over ``local_config``'s loopback defaults.

    ``exporters`` may name connectors too (``spanmetrics``): they are configured under ``connectors``."""
    if exporters is None:
        exporters = {"debug": {}}
    if not isinstance(exporters, Mapping):
        exporters = {exporter_id: {} for exporter_id in exporters}
    if not isinstance(processors, Mapping):
        processors = {processor_id: {} for processor_id in processors}
    connector_types = set(discover_factories()["connectors"])
    sections: dict[str, dict[str, Any]] = {"exporters": {}, "connectors": {}}
    for exporter_id, body in exporters.items():
        kind = "connectors" if exporter_id.split("/", 1)[0] in connector_types else "exporters"
        sections[kind][exporter_id] = dict(body)
    base: dict[str, Any] = {
        "processors": {processor_id: dict(body) for processor_id, body in processors.items()},
        **{kind: bodies for kind, bodies in sections.items() if bodies},
        "service": {
            "pipelines": {
                "traces": {
                    "receivers": ["otlp"],
                    "processors": list(processors),
                    "exporters": list(exporters),
                },
                # The default logs and OTLP metrics pipelines store into ClickHouse: only the tests that
                # name them (in ``overrides``) run them.
                "logs": None,
                "metrics/otlp": None,
            },
            # Tests want spans through quickly, and a stuck exporter must not hold teardown for long.
            "delivery": {"linger_seconds": 0.01, "drain_timeout_seconds": 5},
        },
    }
    result = deep_merge(base, copy.deepcopy(dict(overrides or {})))
    assert isinstance(result, dict)
    return result


def collector_config(
    data_dir: Path,
    exporters: Mapping[str, Mapping[str, Any]] | Sequence[str] | None = None,
    processors: Mapping[str, Mapping[str, Any]] | Sequence[str] = (),
    overrides: Mapping[str, Any] | None = None,
    extra_factories: Mapping[str, Mapping[str, Factory[Any, Any]]] | None = None,
) -> Config:
    """A validated config: every listener on ``127.0.0.1:0``, one ``traces`` pipeline from the ``otlp``
    receiver through ``processors`` to ``exporters`` (ids, or ``{id: config}``; default: the ``debug`` sink).
    The default ``metrics/genai`` pipeline stays (``spanmetrics`` → ``prometheus``), and the ``prometheus``
    exporter serves the collector's own metrics whatever the pipelines hold.

    ``overrides`` is merged last (e.g. ``{"service": {"wal": {"mode": "memory"}}}``). The test-only types of
    ``llm_observer.collector.testing`` (the ``flaky`` exporter) are always known; ``extra_factories`` adds
    more (``{"exporters": {"mine": Factory(...)}}``)."""
    return local_config(data_dir, build_overrides(exporters, processors, overrides), extra_factories)


@pytest.fixture
async def start_collector(tmp_path: Path) -> AsyncIterator[Callable[..., Awaitable[Service]]]:
    """``service = await start_collector(**collector_config_kwargs)`` (data under the test's ``tmp_path``);
    every service started is shut down when the test ends."""
    started: list[Service] = []

    async def start(**kwargs: Any) -> Service:
        kwargs.setdefault("data_dir", tmp_path)
        service = Service(collector_config(**kwargs))
        await service.start()
        started.append(service)
        return service

    yield start
    for service in reversed(started):
        await service.shutdown()


def sink(service: Service) -> DebugExporter:
    """The service's ``debug`` exporter: ``sink(service).spans`` are the spans it received, as dicts."""
    return cast(DebugExporter, service.exporters["debug"])


def stored(service: Service, sql: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """The rows ``sql`` (with ``{name:Type}`` placeholders filled from ``params``) reads from the store of
    the service's ``clickhouse`` exporter."""
    client = service.exporters["clickhouse"].client  # type: ignore[attr-defined]
    return list(client.rows(sql, params))


def metrics_port(service: Service) -> int:
    """The port the service's ``prometheus`` exporter serves ``/metrics`` on."""
    return cast(PrometheusExporter, service.exporters["prometheus"]).port


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


async def scrape(port: int) -> Samples:
    """The samples served at ``http://127.0.0.1:<port>/metrics``:
    ``(await scrape(port)).value("llm_observer_spans_received_total", component="otlp")``."""
    async with httpx.AsyncClient() as client:
        response = await client.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
    response.raise_for_status()
    out = Samples()
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            out.append(Sample(sample.name, dict(sample.labels), float(sample.value)))
    return out


def debug_collector_yaml(grpc: str, http: str | None) -> str:
    """A collector config: OTLP on ``grpc`` and ``http`` (None: off) into the debug exporter, no processors."""
    http_yaml = "enabled: false" if http is None else f"endpoint: {http}"
    return f"""receivers:
  otlp:
    protocols:
      grpc:
        endpoint: {grpc}
      http:
        {http_yaml}
exporters:
  debug: {{}}
service:
  pipelines:
    traces:
      receivers: [otlp]
      processors: []
      exporters: [debug]
"""
