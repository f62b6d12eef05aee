"""The ``alerting`` extension in a real ``Service``, from a config file with an ``alerting:`` section: it is
in the default extensions, validated with the rest of the file, and found by the query service's API."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from llm_observer.collector.config import load_config
from llm_observer.collector.service import Service
from llm_observer.kernel.errors import ConfigError
from llm_observer.query.alerting.component import AlertingService
from llm_observer.query.alerting.model import AlertingApi
from tests.support.waiting import wait_for

PORTS = """
receivers:
  otlp:
    protocols:
      grpc: {endpoint: 127.0.0.1:0}
      http: {endpoint: 127.0.0.1:0}
exporters:
  prometheus: {endpoint: 127.0.0.1:0}
query:
  http: {endpoint: 127.0.0.1:0}
  grpc: {endpoint: 127.0.0.1:0}
"""

ALERTING = """
alerting:
  evaluation_interval: 1m
  state_path: state/alerts.sqlite
  rules:
    - name: HighErrorRate
      kind: threshold
      measure: error_rate
      window: 5m
      group_by: [provider]
      threshold: 0.05
      resolve_threshold: 0.03
      for: 2m
      labels: {severity: page}
"""


def config_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(PORTS + text)
    return path


async def test_component_runs_in_the_default_service(tmp_path: Path) -> None:
    config = load_config(config_file(tmp_path, ALERTING), data_dir=tmp_path / "data")
    assert config.service.extensions == ["query", "alerting"]
    service = Service(config, collector=True, query=True)
    await service.start()
    try:
        alerting = service.extensions["alerting"]
        assert isinstance(alerting, AlertingService) and isinstance(alerting, AlertingApi)
        assert alerting.state_path == (tmp_path / "data" / "state" / "alerts.sqlite").resolve()
        assert alerting.state_path.exists()
        (rule,) = alerting.rules(None)
        assert (rule.name, rule.kind, rule.spec["for"], rule.spec["labels"]) == (
            "HighErrorRate",
            "threshold",
            120.0,
            {"severity": "page"},
        )
        # The loop's first round runs right after start (no data: no alert, no error).
        (rule,) = await wait_for(
            lambda: [r for r in alerting.rules(None) if r.last_evaluated_ns], what="a round"
        )
        assert rule.last_error is None and alerting.alerts(None) == []
        port = service.query_service.http_port
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            response = await http.get("/api/v1/alerts/rules")
        assert response.status_code == 200, response.text
        assert [r["name"] for r in response.json()["rules"]] == ["HighErrorRate"]
    finally:
        await service.shutdown()
    assert service.extensions == {}


async def test_component_without_alerting_section_runs_with_defaults(tmp_path: Path) -> None:
    service = Service(load_config(config_file(tmp_path, ""), data_dir=tmp_path), collector=False, query=True)
    await service.start()
    try:
        alerting = service.extensions["alerting"]
        assert isinstance(alerting, AlertingService)
        assert alerting.rules(None) == [] and alerting.alerts(None) == []
        assert alerting.state_path == service.data_dir / "alerting.sqlite"
    finally:
        await service.shutdown()


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("alerting:\n  storage: nowhere\n", "alerting.storage"),
        (
            "alerting:\n  rules: [{name: X, kind: threshold, measure: error_rate, threshold: 1, fro: 1m}]\n",
            "alerting.rules.0.threshold.fro",
        ),
        ("alerting:\n  route: {receiver: pager}\n", "alerting"),
    ],
)
def test_component_bad_config_names_the_key(tmp_path: Path, text: str, where: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(config_file(tmp_path, text), data_dir=tmp_path)
    paths = [path for path, _ in caught.value.problems]
    assert where in paths, caught.value.problems
