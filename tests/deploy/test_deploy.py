"""deploy/ is checked statically: every file parses and every config passes llm-observer's own validation."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry, generate_latest

from llm_observer.collector.config import load_config
from llm_observer.exporters.spanmetrics import GenAIMetrics
from llm_observer.kernel.telemetry import Telemetry
from tests.support import span_batch

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
ENV = {"CLICKHOUSE_URL": "http://clickhouse:8123", "QDRANT_URL": "http://qdrant:6333"}


@pytest.mark.parametrize("name", ["up.yaml", "collector.yaml", "query.yaml"])
def test_deploy_config_validates_and_binds_all_interfaces(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    config = load_config(DEPLOY / "config" / name)
    text = (DEPLOY / "config" / name).read_text()
    assert "127.0.0.1" not in text
    assert "0.0.0.0" in text
    if name == "collector.yaml":
        assert config.exporters["clickhouse"].config.endpoint == "http://clickhouse:8123"


def test_deploy_compose_refers_to_files_that_exist() -> None:
    compose = yaml.safe_load((DEPLOY / "docker-compose.yaml").read_text())
    services = compose["services"]
    assert {"clickhouse", "collector", "query", "grafana", "prometheus", "qdrant"} <= set(services)
    for service in services.values():
        for arg in service.get("command", []):
            if arg.startswith("/app/"):
                assert (DEPLOY.parent / arg.removeprefix("/app/")).exists(), arg
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (DEPLOY / source).exists(), source
            else:
                assert source in compose["volumes"], source
        build = service.get("build")
        if build:
            assert (DEPLOY / build["context"] / build["dockerfile"]).exists()


def test_deploy_kubernetes_manifests_parse_and_their_configs_validate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    docs = [d for d in yaml.safe_load_all((DEPLOY / "kubernetes" / "llm-observer.yaml").read_text()) if d]
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == ["ConfigMap", "Deployment", "Service", "Service", "StatefulSet"]
    for doc in docs:
        assert doc["apiVersion"] and doc["metadata"]["name"]
    config_map = next(d for d in docs if d["kind"] == "ConfigMap")
    for name, body in config_map["data"].items():
        path = tmp_path / name
        path.write_text(body)
        load_config(path)


def _exported_metric_names() -> set[str]:
    telemetry = Telemetry()
    metrics = GenAIMetrics(10)
    attributes = {
        "gen_ai.operation.name": "chat",
        "gen_ai.usage.input_tokens": 3,
        "llm_observer.cost.usd": 0.1,
        "error.type": "timeout",
    }
    batch = span_batch(attributes, resource={}, name="chat m", status_code=2)
    metrics.observe(batch)
    registry = CollectorRegistry()
    registry.register(metrics)
    telemetry.wal_lag_records.labels("traces/clickhouse").set(0)
    telemetry.refused.labels("otlp", "wal_size").inc()
    telemetry.exported.labels("clickhouse").inc()
    telemetry.accepted.labels("otlp").inc()
    text = (generate_latest(registry) + generate_latest(telemetry.registry)).decode()
    return {
        line.split("{")[0].split(" ")[0] for line in text.splitlines() if line and not line.startswith("#")
    }


def test_deploy_dashboard_queries_only_metrics_that_exist() -> None:
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "llm-observer.json").read_text())
    names = _exported_metric_names()
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"] if "expr" in t]
    assert exprs
    for expr in exprs:
        for metric in re.findall(r"\b((?:gen_ai|llm_observer)_[a-z_]+)\s*[{[]", expr):
            assert metric in names, f"{metric} (in {expr!r}) is not exported"
    sql = [t["rawSql"] for p in dashboard["panels"] for t in p["targets"] if "rawSql" in t]
    assert all("otel.otel_traces" in q for q in sql)


def test_deploy_prometheus_scrapes_the_collector_metrics_port() -> None:
    prometheus = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    targets = prometheus["scrape_configs"][0]["static_configs"][0]["targets"]
    assert targets == ["collector:9464"]
