"""deploy/ is checked statically: every file parses and every config passes llm-observer's own validation."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry, generate_latest

from llm_observer.collector.config import load_config
from llm_observer.exporters.spanmetrics import GenAIMetrics
from llm_observer.kernel.batch import SpanBatch
from llm_observer.kernel.telemetry import Telemetry
from llm_observer.storage.clickhouse import schema
from llm_observer.storage.clickhouse.arrow import to_arrow
from llm_observer.storage.clickhouse.client import ClickHouseClient, open_client
from llm_observer.storage.clickhouse.migrate import ensure_schema
from tests.support import add_span, span_batch

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
ROOT = DEPLOY.parent
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "llm-observer.json"
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
    telemetry.wal_lag_records.labels("traces", "clickhouse").set(0)
    telemetry.refused.labels("otlp", "wal_size").inc()
    telemetry.exported.labels("traces", "clickhouse").inc()
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


# --- Kubernetes: the image is one the user built, named in one place -----------------------------------


def _k8s_docs() -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((DEPLOY / "kubernetes" / "llm-observer.yaml").read_text()) if d]


def _images(docs: Sequence[Mapping[str, Any]]) -> list[str]:
    return [
        container["image"]
        for doc in docs
        if doc["kind"] in {"Deployment", "StatefulSet"}
        for container in doc["spec"]["template"]["spec"]["containers"]
    ]


def _split_image(image: str) -> tuple[str, str]:
    """(name, tag) of an image reference; tag "" when none (Kubernetes then pulls :latest)."""
    name, _, tag = image.rpartition(":") if ":" in image.rsplit("/", 1)[-1] else (image, "", "")
    return name, tag


def test_deploy_kubernetes_image_is_set_by_kustomize_to_a_version() -> None:
    kustomization = yaml.safe_load((DEPLOY / "kubernetes" / "kustomization.yaml").read_text())
    assert kustomization["resources"] == ["llm-observer.yaml"]
    entries = {entry["name"]: entry for entry in kustomization["images"]}
    images = _images(_k8s_docs())
    assert len(images) == 2
    for image in images:
        name, _ = _split_image(image)
        assert name in entries, f"{image}: no images: entry in kustomization.yaml sets it"
        entry = entries[name]
        final = f"{entry['newName']}:{entry['newTag']}"
        assert "/" in entry["newName"], f"{final}: name a registry"
        assert str(entry["newTag"]) not in {"", "latest"}, f"{final}: pin a version, not latest"
    readme = (DEPLOY / "README.md").read_text()
    for step in (
        "docker build -f deploy/docker/Dockerfile",
        "docker push",
        "kubectl apply -k deploy/kubernetes",
    ):
        assert step in readme, f"deploy/README.md does not show `{step}`"


def test_deploy_kubernetes_kustomize_renders_the_users_image() -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed")
    rendered = subprocess.run(
        [kubectl, "kustomize", str(DEPLOY / "kubernetes")], capture_output=True, text=True, timeout=120
    )
    assert rendered.returncode == 0, rendered.stderr
    docs = [d for d in yaml.safe_load_all(rendered.stdout) if d]
    assert sorted(d["kind"] for d in docs) == sorted(d["kind"] for d in _k8s_docs())
    entry = yaml.safe_load((DEPLOY / "kubernetes" / "kustomization.yaml").read_text())["images"][0]
    assert set(_images(docs)) == {f"{entry['newName']}:{entry['newTag']}"}


# --- Grafana: the ClickHouse panel follows the dashboard and counts model calls -----------------------

LLM_OPERATIONS = ("chat", "text_completion", "generate_content", "embeddings")


def _clickhouse_sql() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [
        t["rawSql"]
        for p in dashboard["panels"]
        if p.get("datasource", {}).get("type") == "grafana-clickhouse-datasource"
        for t in p["targets"]
    ]


def _macro_args(sql: str, start: int) -> tuple[list[str], int]:
    """The top-level comma-separated arguments of the call whose "(" is at ``start``, and the index after
    its ")"."""
    depth, current = 0, ""
    args: list[str] = []
    for index in range(start, len(sql)):
        char = sql[index]
        if char == "(":
            depth += 1
            if depth == 1:
                continue
        elif char == ")":
            depth -= 1
            if depth == 0:
                return [*args, current.strip()], index + 1
        elif char == "," and depth == 1:
            args.append(current.strip())
            current = ""
            continue
        current += char
    raise AssertionError(f"unbalanced macro call in {sql!r}")


def _grafana_sql(sql: str, selected: Mapping[str, Sequence[str] | None], start: float, end: float) -> str:
    """``sql`` as Grafana with the ClickHouse plugin sends it: ``$__conditionalAll(cond, $var)`` is ``1=1``
    when "All" is selected (``None``), else ``cond``; ``${var:singlequote}`` is the quoted, escaped value
    list; ``$__timeFilter(col)`` bounds ``col`` to the time range."""
    macro = "$__conditionalAll"
    while (at := sql.find(macro)) >= 0:
        (condition, variable), after = _macro_args(sql, at + len(macro))
        assert re.fullmatch(r"\$\{?(\w+)\}?", variable), (
            f"second argument must be a plain variable: {variable}"
        )
        name = variable.strip("${}")
        sql = sql[:at] + ("1=1" if selected[name] is None else condition) + sql[after:]

    def quoted(match: re.Match[str]) -> str:
        values = selected[match.group(1)]
        assert values is not None, f"{match.group(0)} used outside $__conditionalAll"
        return ", ".join("'" + v.replace("'", "\\'") + "'" for v in values)  # as Grafana escapes

    sql = re.sub(r"\$\{(\w+):singlequote\}", quoted, sql)
    sql = re.sub(
        r"\$__timeFilter\((\w+)\)",
        lambda m: f"{m.group(1)} >= toDateTime({int(start)}) AND {m.group(1)} <= toDateTime({int(end)})",
        sql,
    )
    assert "$" not in sql, f"a Grafana variable or macro is left: {sql}"
    return sql


def test_deploy_dashboard_clickhouse_panels_use_the_variables_and_time_range() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    assert {"organization", "project"} <= variables
    queries = _clickhouse_sql()
    assert queries
    for sql in queries:
        assert "$__timeFilter(Timestamp)" in sql, sql
        assert "now() - INTERVAL" not in sql, f"a fixed window ignores the time picker: {sql}"
        operations = ", ".join(f"'{op}'" for op in LLM_OPERATIONS)
        assert f"GenAiOperation IN ({operations})" in sql, f"count model calls only: {sql}"
        for variable, column in (("organization", "OrganizationId"), ("project", "ProjectId")):
            expected = f"$__conditionalAll({column} IN (${{{variable}:singlequote}}), ${variable})"
            assert expected in sql, f"{variable} is not applied: {sql}"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ClickHouseClient]:
    client = open_client("chdb://clickhouse", tmp_path)
    ensure_schema(client, "otel", 90)
    yield client
    client.close()


def _user_spans(now_ns: int) -> SpanBatch:
    """One agent run of u1 (acme/support): the agent span repeats its children's usage; an older call of
    u1 outside the time range; one call of u2 (acme/billing) and one of u3 (globex/support)."""
    batch = SpanBatch()
    span_no = iter(range(1, 100))

    def span(
        org: str,
        project: str,
        user: str,
        operation: str,
        usage: tuple[int, int, float] | None,
        at: int = now_ns,
    ) -> None:
        attrs: dict[str, Any] = {"gen_ai.operation.name": operation, "user.id": user}
        if usage:
            attrs |= {
                "gen_ai.usage.input_tokens": usage[0],
                "gen_ai.usage.output_tokens": usage[1],
                "llm_observer.cost.usd": usage[2],
            }
        resource = {
            "service.name": "svc",
            "llm_observer.organization.id": org,
            "llm_observer.project.id": project,
        }
        add_span(
            batch,
            attrs,
            resource=resource,
            span_id=next(span_no).to_bytes(8, "big"),
            start=at,
            name=operation,
        )

    span("acme", "support", "u1", "invoke_agent", (100, 30, 0.000105))
    span("acme", "support", "u1", "chat", (60, 30, 0.0000585))
    span("acme", "support", "u1", "embeddings", (40, 0, 0.0000465))
    span("acme", "support", "u1", "execute_tool", None)
    span("acme", "support", "u1", "chat", (999, 999, 9.0), at=now_ns - 3 * 86_400 * 10**9)
    span("acme", "billing", "u2", "text_completion", (10, 5, 0.001))
    span("globex", "support", "u3", "generate_content", (7, 7, 0.002))
    return batch


def test_deploy_dashboard_users_table_counts_llm_calls_of_the_selected_tenants(
    store: ClickHouseClient,
) -> None:
    now = time.time()
    batch = _user_spans(int((now - 60) * 1e9))
    store.insert_arrow("otel.otel_traces", schema.INSERT_COLUMNS, to_arrow(batch))
    (sql,) = _clickhouse_sql()
    day = (now - 86_400, now)

    def table(organization: Sequence[str] | None, project: Sequence[str] | None) -> dict[str, dict[str, Any]]:
        query = _grafana_sql(sql, {"organization": organization, "project": project}, *day)
        return {row["UserId"]: row for row in store.rows(query)}

    everyone = table(None, None)
    assert set(everyone) == {"u1", "u2", "u3"}
    u1 = everyone["u1"]
    assert (u1["llm_calls"], u1["input_tokens"], u1["output_tokens"]) == (2, 100, 30)
    assert u1["cost_usd"] == pytest.approx(0.000105)
    assert list(everyone) == ["u3", "u2", "u1"], "ordered by cost"

    assert set(table(["acme"], None)) == {"u1", "u2"}
    assert set(table(None, ["support"])) == {"u1", "u3"}
    assert set(table(["acme"], ["billing"])) == {"u2"}
    assert set(table(["acme", "globex"], ["support"])) == {"u1", "u3"}
    assert table(["it's"], None) == {}, "values are quoted, not spliced into the SQL"


def test_deploy_is_reachable_from_the_top_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    section = re.search(r"^## Deploy\n(.*?)(?=^## )", readme, re.M | re.S)
    assert section, "README.md has no '## Deploy' section"
    text = section.group(1)
    assert "(deploy/README.md)" in text
    for word in ("Compose", "Kubernetes", "Grafana", "kubectl apply -k deploy/kubernetes"):
        assert word in text, f"README.md's Deploy section does not mention {word}"
