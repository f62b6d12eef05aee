"""A real Jaeger v2 for the tests: built from the Go module proxy, run with its in-memory store on free
loopback ports.

Jaeger v2 (``github.com/jaegertracing/jaeger/cmd/jaeger``) is an OpenTelemetry Collector distribution;
``go install pkg@version`` refuses it because its ``go.mod`` has ``replace`` directives, so it is built as
``tests.support.go_tools`` builds every Go tool. The binary is cached outside the clone, in
``~/.cache/llm-observer/jaeger-v1.76.0/bin/jaeger``;
``python -m tests.support.jaeger`` builds it (the test command runs that first; a build takes a few minutes
and ~1 GB of module cache the first time).

- ``jaeger`` (a fixture: import it into the test module) → a started ``Jaeger`` (OTLP/gRPC and OTLP/HTTP
  receivers, the ``jaeger_query`` extension), stopped when the test ends. Slow: runs when
  ``LLM_OBSERVER_SLOW_TESTS=1``.
- ``await jaeger.trace(trace_id_hex)`` → the trace as Jaeger's API v3 returns it (OTLP/JSON
  ``resourceSpans``), or None while it is not there.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.go_tools import GoProcess, go_binary, started
from tests.support.ports import free_port

JAEGER_VERSION = "v1.76.0"
MODULE = "github.com/jaegertracing/jaeger"
PACKAGE = "./cmd/jaeger"
SLOW = os.environ.get("LLM_OBSERVER_SLOW_TESTS") != "1"
SKIP_SLOW = pytest.mark.skipif(SLOW, reason="slow (builds and runs Jaeger v2): set LLM_OBSERVER_SLOW_TESTS=1")


def jaeger_binary() -> Path:
    """The Jaeger v2 binary, built from the Go module proxy the first time (cached; one build at a time)."""
    return go_binary("jaeger", MODULE, JAEGER_VERSION, PACKAGE)


_CONFIG = """\
service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [otlp]
      processors: []
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    logs:
      level: info
extensions:
  jaeger_storage:
    backends:
      memstore:
        memory:
          max_traces: 100000
  jaeger_query:
    storage:
      traces: memstore
    grpc:
      endpoint: 127.0.0.1:{query_grpc}
    http:
      endpoint: 127.0.0.1:{query_http}
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:{otlp_grpc}
      http:
        endpoint: 127.0.0.1:{otlp_http}
exporters:
  jaeger_storage_exporter:
    trace_storage: memstore
"""


@dataclass
class Jaeger(GoProcess):
    """A Jaeger v2 process with an in-memory store, on loopback ports chosen when it is made."""

    title = "Jaeger"
    binary: Path = field(default_factory=jaeger_binary)
    otlp_grpc: int = field(default_factory=free_port)
    otlp_http: int = field(default_factory=free_port)
    query_http: int = field(default_factory=free_port)
    query_grpc: int = field(default_factory=free_port)

    @property
    def query_url(self) -> str:
        return f"http://127.0.0.1:{self.query_http}"

    def start(self, timeout: float = 60.0) -> None:
        """Start it and wait until the query API answers (the receivers start before it)."""
        config = self.folder / "jaeger.yaml"
        config.write_text(
            _CONFIG.format(
                otlp_grpc=self.otlp_grpc,
                otlp_http=self.otlp_http,
                query_http=self.query_http,
                query_grpc=self.query_grpc,
            )
        )
        self._launch(
            [str(self.binary), "--config", str(config)], f"{self.query_url}/api/v3/services", timeout
        )

    async def trace(self, trace_id: str) -> list[dict[str, Any]] | None:
        """The spans of a trace (``GET /api/v3/traces/{id}``, OTLP/JSON), each with its resource's
        attributes under ``"resource"``; None while Jaeger does not have it."""
        async with httpx.AsyncClient() as client:
            response = await client.get(f"{self.query_url}/api/v3/traces/{trace_id}", timeout=10)
        if response.status_code == 404:
            return None
        response.raise_for_status()
        spans: list[dict[str, Any]] = []
        for resource_spans in response.json().get("result", {}).get("resourceSpans", []):
            resource = resource_spans.get("resource", {})
            for scope_spans in resource_spans.get("scopeSpans", []):
                for span in scope_spans.get("spans", []):
                    spans.append({**span, "resource": resource})
        return spans or None


@pytest.fixture
def jaeger(tmp_path: Path) -> Iterator[Jaeger]:
    """A started Jaeger v2 (in-memory store), stopped when the test ends."""
    yield from started(Jaeger(tmp_path / "jaeger"))


def main() -> int:
    """``python -m tests.support.jaeger``: build the binary when missing, print where it is."""
    print(jaeger_binary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
