"""A real llm-observer collector (``llm-observer up``) in a subprocess, for end-to-end instrumentation tests.

Runs with OTLP/HTTP, the query HTTP API and Prometheus on free loopback ports, gRPC and the vector store off,
and only the ClickHouse (chDB) exporter in the pipeline. Needs the ``collector`` extra installed.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any, Self

__all__ = ["CollectorProcess"]

_CONFIG = """\
receivers:
  otlp:
    protocols:
      grpc:
        enabled: false
      http:
        endpoint: 127.0.0.1:{otlp}
exporters:
  prometheus:
    endpoint: 127.0.0.1:{prometheus}
service:
  pipelines:
    traces:
      receivers: [otlp]
      processors: [normalize, attribute, cost]
      exporters: [clickhouse]
query:
  http:
    endpoint: 127.0.0.1:{http}
  grpc:
    endpoint: 127.0.0.1:{grpc}
  vectors:
    enabled: false
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class CollectorProcess:
    """``with CollectorProcess(tmp_dir) as collector:`` — ``collector.otlp_url`` takes OTLP/HTTP,
    ``collector.get(path)`` reads the query REST API, ``collector.wait_for_trace(...)`` polls it."""

    def __init__(self, workdir: Path, start_timeout_s: float = 60.0) -> None:
        self.workdir = workdir
        self.ports = {name: _free_port() for name in ("otlp", "prometheus", "http", "grpc")}
        self.otlp_url = f"http://127.0.0.1:{self.ports['otlp']}"
        self.query_url = f"http://127.0.0.1:{self.ports['http']}"
        self._start_timeout_s = start_timeout_s
        self._process: subprocess.Popen[bytes] | None = None
        self._log = workdir / "collector.log"

    def start(self) -> None:
        config = self.workdir / "collector.yaml"
        config.write_text(_CONFIG.format(**self.ports), encoding="utf-8")
        cli = Path(sys.executable).parent / "llm-observer"
        with self._log.open("wb") as log:
            self._process = subprocess.Popen(
                [str(cli), "up", "--config", str(config), "--data-dir", str(self.workdir / "data")],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + self._start_timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"collector exited: {self.log()}")
            try:
                if self.get("/health").get("status") == "ok":
                    return
            except (OSError, ValueError):
                pass
            time.sleep(0.1)
        raise TimeoutError(f"collector did not start: {self.log()}")

    def log(self) -> str:
        """The collector's output so far."""
        return self._log.read_text(errors="replace") if self._log.exists() else ""

    def get(self, path: str) -> Any:
        """GET a query-API path and decode its JSON."""
        with urllib.request.urlopen(self.query_url + path, timeout=5) as response:
            return json.loads(response.read())

    def wait_for_traces(self, count: int = 1, timeout_s: float = 30.0) -> list[dict[str, Any]]:
        """Poll ``/api/v1/traces`` until it lists ``count`` traces; returns the summaries."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                traces: list[dict[str, Any]] = self.get("/api/v1/traces?limit=100")["traces"]
                if len(traces) >= count:
                    return traces
            except (OSError, ValueError, KeyError):
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{count} traces not stored: {self.log()[-2000:]}")
            time.sleep(0.1)

    def wait_for_trace(self, trace_id: str, spans: int = 1, timeout_s: float = 30.0) -> dict[str, Any]:
        """Poll ``/api/v1/traces/{trace_id}`` until it holds ``spans`` spans; returns the trace."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                found: dict[str, Any] = self.get(f"/api/v1/traces/{trace_id}")
                if len(found.get("spans", [])) >= spans:
                    return found
            except (urllib.error.HTTPError, OSError, ValueError):
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"trace {trace_id} not stored: {self.log()[-2000:]}")
            time.sleep(0.1)

    def stop(self) -> None:
        """SIGTERM and wait (the collector flushes what it accepted)."""
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
