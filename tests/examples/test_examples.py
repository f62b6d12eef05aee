"""Every example in examples/ runs against a live collector, and its spans are stored as sent.

The JavaScript, Go and Java examples need their dependencies, which `tests/run.sh` installs from the
registries (npm, the Go module proxy, Maven Central) before the suite runs.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from llm_observer.collector.service import Service
from llm_observer.collector.testing import local_config, running
from tests.support import wait_for
from tests.support.collector import stored

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
# The OTLP/HTTP examples honour both ways the OpenTelemetry SDKs take an endpoint.
ENDPOINT_VARIABLES = ["OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"]


def _pipeline(tmp_path: Path) -> Any:
    return local_config(
        tmp_path,
        {
            "service": {
                "pipelines": {
                    "traces": {"receivers": ["otlp"], "processors": [], "exporters": ["clickhouse"]}
                }
            }
        },
    )


def _endpoint_env(variable: str, port: int) -> dict[str, str]:
    """How an OTLP/HTTP user points an SDK at the collector: the generic variable takes the base URL (the
    SDK appends ``/v1/traces``), the traces variable the full URL."""
    base = f"http://127.0.0.1:{port}"
    if variable == "OTEL_EXPORTER_OTLP_ENDPOINT":
        return {variable: base}
    return {variable: f"{base}/v1/traces"}


async def _run(cmd: list[str], cwd: Path, env: dict[str, str]) -> None:
    # Only the variables the test sets reach the example: an OTEL_* of the caller's shell would change
    # where it sends.
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    proc = await asyncio.create_subprocess_exec(
        *cmd,
        cwd=cwd,
        env={**inherited, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 300)
    assert proc.returncode == 0, out.decode()[-3000:]


async def _stored(service: Service, service_name: str) -> dict[str, dict[str, Any]]:
    """The example's spans by name, once its three spans are stored."""
    sql = (
        "SELECT SpanName, ParentSpanId, SpanId, StatusCode, GenAiOperation, GenAiProvider, GenAiRequestModel, "
        "InputTokens, OutputTokens, ProjectId FROM otel.otel_traces WHERE ServiceName = {s:String}"
    )
    rows = await wait_for(
        lambda: found if len(found := stored(service, sql, {"s": service_name})) >= 3 else None,
        timeout=30,
        what=f"the three spans of {service_name}",
    )
    return {r["SpanName"]: r for r in rows}


def _check_tree(
    spans: dict[str, dict[str, Any]], agent: str, llm: str, tool: str, tokens: tuple[int, int]
) -> None:
    assert set(spans) == {agent, llm, tool}
    root = spans[agent]
    assert root["ParentSpanId"] == "" and root["GenAiOperation"] == "invoke_agent"
    assert spans[llm]["ParentSpanId"] == root["SpanId"] and spans[tool]["ParentSpanId"] == root["SpanId"]
    assert (spans[llm]["InputTokens"], spans[llm]["OutputTokens"]) == tokens
    assert spans[tool]["StatusCode"] == "Error"
    assert spans[llm]["ProjectId"] == "examples"


async def test_examples_python_otel_sdk(tmp_path: Path) -> None:
    async with running(_pipeline(tmp_path)) as service:
        port = service.endpoints()["otlp.grpc"]
        await _run(
            [sys.executable, "agent.py"],
            EXAMPLES / "python_otel_sdk",
            {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}"},
        )
        spans = await _stored(service, "python-travel-agent")
    _check_tree(spans, "invoke_agent travel", "chat gpt-4o", "execute_tool search_flights", (640, 120))


@pytest.mark.parametrize("variable", ENDPOINT_VARIABLES)
async def test_examples_javascript_otlp_http(tmp_path: Path, variable: str) -> None:
    folder = EXAMPLES / "javascript_otlp"
    if not (folder / "node_modules").exists():
        pytest.fail("run `npm ci` in examples/javascript_otlp first (tests/run.sh does)")
    async with running(_pipeline(tmp_path)) as service:
        port = service.endpoints()["otlp.http"]
        await _run(["node", "agent.mjs"], folder, _endpoint_env(variable, port))
        spans = await _stored(service, "js-support-agent")
    _check_tree(spans, "invoke_agent support", "chat gpt-4o-mini", "execute_tool lookup_order", (812, 96))
    assert spans["chat gpt-4o-mini"]["GenAiProvider"] == "openai"


async def test_examples_go_otlp_grpc(tmp_path: Path) -> None:
    folder = EXAMPLES / "go_otlp_grpc"
    binary = tmp_path / "go-agent"
    await _run([shutil.which("go") or "go", "build", "-o", str(binary), "."], folder, {})
    async with running(_pipeline(tmp_path / "data")) as service:
        port = service.endpoints()["otlp.grpc"]
        await _run([str(binary)], folder, {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}"})
        spans = await _stored(service, "go-research-agent")
    _check_tree(
        spans,
        "invoke_agent researcher",
        "chat claude-3-5-sonnet-20241022",
        "execute_tool web_search",
        (2048, 350),
    )
    assert spans["chat claude-3-5-sonnet-20241022"]["GenAiProvider"] == "anthropic"


@pytest.mark.parametrize("variable", ENDPOINT_VARIABLES)
async def test_examples_java_otlp_http(tmp_path: Path, variable: str) -> None:
    folder = EXAMPLES / "java_otlp"
    if not (folder / "target" / "lib").exists():
        pytest.fail("run `mvn -q package` in examples/java_otlp first (tests/run.sh does)")
    async with running(_pipeline(tmp_path)) as service:
        port = service.endpoints()["otlp.http"]
        await _run(
            ["java", "-cp", "target/classes:target/lib/*", "example.Agent"],
            folder,
            _endpoint_env(variable, port),
        )
        spans = await _stored(service, "java-billing-agent")
    _check_tree(spans, "invoke_agent billing", "chat gpt-4o", "execute_tool refund", (1000, 500))
