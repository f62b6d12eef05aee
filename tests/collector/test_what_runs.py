"""The config says what runs: signals no pipeline consumes stay out of the WAL, stateful processors follow
the service's lifecycle, self-metrics are exposed whatever the pipelines hold, and a component in the wrong
place is refused with its YAML path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

from llm_observer.collector.testing import local_config, running
from llm_observer.kernel.batch import SpanBatch
from llm_observer.kernel.component import ComponentConfig, CreateContext, Factory, Reference
from llm_observer.kernel.errors import ConfigError

PROTOBUF = {"content-type": "application/x-protobuf"}


def _metrics() -> bytes:
    request = ExportMetricsServiceRequest()
    metric = request.resource_metrics.add().scope_metrics.add().metrics.add()
    metric.name = "app.requests"
    metric.sum.data_points.add().as_int = 3
    return request.SerializeToString()


def _logs() -> bytes:
    request = ExportLogsServiceRequest()
    record = request.resource_logs.add().scope_logs.add().log_records.add()
    record.body.string_value = "hello"
    return request.SerializeToString()


def _sample(service: Any, name: str, **labels: str) -> float:
    value = service.telemetry.registry.get_sample_value(name, labels)
    return float(value or 0.0)


async def _post(service: Any, path: str, body: bytes) -> None:
    port = service.endpoints()["otlp.http"]
    async with httpx.AsyncClient() as client:
        response = await client.post(f"http://127.0.0.1:{port}{path}", content=body, headers=PROTOBUF)
    assert response.status_code == 200, response.text


def _only_debug(processors: list[str]) -> dict[str, Any]:
    return {
        "exporters": {"debug": {}},
        "service": {
            "pipelines": {
                "traces": {"processors": processors, "exporters": ["debug"]},
                # Without the default logs and OTLP metrics pipelines, nothing consumes those signals.
                "logs": None,
                "metrics/otlp": None,
            }
        },
    }


async def test_what_runs_metrics_are_acknowledged_and_counted_but_not_written(tmp_path: Path) -> None:
    async with running(local_config(tmp_path, _only_debug(["logjoin"]))) as service:
        head = service.log.head
        await _post(service, "/v1/metrics", _metrics())
        assert service.log.head == head
        assert (
            _sample(service, "llm_observer_items_discarded_total", signal="metrics", reason="no_pipeline")
            == 1
        )


async def test_what_runs_logs_are_written_only_when_a_processor_reads_them(tmp_path: Path) -> None:
    async with running(local_config(tmp_path / "a", _only_debug(["logjoin"]))) as service:
        head = service.log.head
        await _post(service, "/v1/logs", _logs())
        assert service.log.head == head + 1
    async with running(local_config(tmp_path / "b", _only_debug(["normalize"]))) as service:
        head = service.log.head
        await _post(service, "/v1/logs", _logs())
        assert service.log.head == head
        assert (
            _sample(service, "llm_observer_items_discarded_total", signal="logs", reason="no_pipeline") == 1
        )


class _Recording:
    """A stateful processor that records its lifecycle."""

    calls: list[str] = []

    def __call__(self, batch: SpanBatch) -> SpanBatch:
        return batch

    async def start(self) -> None:
        self.calls.append("start")

    async def shutdown(self) -> None:
        self.calls.append("shutdown")


def _create_recording(ctx: CreateContext, config: ComponentConfig) -> _Recording:
    return _Recording()


async def test_what_runs_stateful_processors_are_started_and_shut_down_with_the_service(
    tmp_path: Path,
) -> None:
    _Recording.calls = []
    factories = {"processors": {"recording": Factory("recording", ComponentConfig, _create_recording)}}
    overrides = {**_only_debug(["recording"]), "processors": {"recording": {}}}
    config = local_config(tmp_path, overrides, extra_factories=factories)
    async with running(config):
        assert _Recording.calls == ["start"]
    assert _Recording.calls == ["start", "shutdown"]


async def test_what_runs_self_metrics_are_exposed_without_any_metrics_pipeline(tmp_path: Path) -> None:
    overrides = _only_debug([])
    overrides["service"]["pipelines"]["metrics/genai"] = None  # type: ignore[index]
    config = local_config(tmp_path, overrides)
    assert list(config.service.pipelines) == ["traces"]
    async with running(config) as service:
        port = service.exporters["prometheus"].port  # type: ignore[attr-defined]
        async with httpx.AsyncClient() as client:
            text = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
    assert "llm_observer_spans_received_total" in text
    assert "gen_ai_client_token_usage" not in text  # nothing derives GenAI metrics here


def test_what_runs_a_pipeline_naming_an_undefined_component_is_refused_before_start(tmp_path: Path) -> None:
    bad = {"service": {"pipelines": {"traces": {"exporters": ["clickhouse", "qdrant/x"]}}}}
    with pytest.raises(ConfigError) as error:
        local_config(tmp_path, bad)
    assert error.value.problems == [
        ("service.pipelines.traces.exporters[1]", "'qdrant/x' is not defined under exporters or connectors")
    ]


def test_what_runs_an_exporter_of_the_wrong_signal_is_refused_before_start(tmp_path: Path) -> None:
    bad = {
        "service": {
            "pipelines": {"traces": {"exporters": ["prometheus"]}},
            "telemetry": {"metrics": {"exporters": ["clickhouse"]}},
        }
    }
    with pytest.raises(ConfigError) as error:
        local_config(tmp_path, bad)
    assert error.value.problems == [
        ("service.pipelines.traces.exporters[0]", "'prometheus' takes metrics, not traces"),
        (
            "service.telemetry.metrics.exporters[0]",
            "'clickhouse' is sent OTLP metrics by receivers, it does not expose metrics to be scraped",
        ),
    ]


def test_what_runs_unknown_top_level_keys_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as error:
        local_config(tmp_path, {"extensions": {"query": {}}, "connectorz": {}})
    assert ("extensions", "unknown key") in error.value.problems
    assert ("connectorz", "unknown key") in error.value.problems


class _ReadsConfig(ComponentConfig):
    store: str = "debug"


class _StoreSettings(ComponentConfig):
    pass


def _reads_refs(config: _ReadsConfig) -> list[Reference]:
    return [Reference("store", "exporters", config.store, _StoreSettings)]


def test_what_runs_a_reference_must_name_a_component_of_the_expected_kind(tmp_path: Path) -> None:
    reader = Factory("reader", _ReadsConfig, lambda ctx, config: None, references=_reads_refs)
    factories = {"extensions": {"reader": reader}}
    for store, message in (
        ("nowhere", "'nowhere' is not defined under exporters"),
        ("debug", "exporter 'debug' has no _StoreSettings"),
    ):
        overrides = {**_only_debug([]), "reader": {"store": store}}
        with pytest.raises(ConfigError) as error:
            local_config(tmp_path, overrides, extra_factories=factories)
        assert ("reader.store", message) in error.value.problems
