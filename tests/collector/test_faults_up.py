"""The fault suite against a real ``llm-observer up``: a full disk under the data dir (a small tmpfs mounted
for the test), ClickHouse errors injected through an exporter double and a slow optional exporter. Each
checks that every acknowledged span is stored exactly once, that ``/health`` tells the truth during the
fault, and that nothing is wedged once it clears.

These start the whole server in a subprocess and take a while: they run when ``LLM_OBSERVER_SLOW_TESTS=1``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from llm_observer.collector.testing import genai_request
from llm_observer.storage.clickhouse.client import open_client
from tests.support import free_port, wait_until

SLOW = os.environ.get("LLM_OBSERVER_SLOW_TESTS") != "1"
pytestmark = pytest.mark.skipif(SLOW, reason="slow (runs llm-observer up): set LLM_OBSERVER_SLOW_TESTS=1")
REPO = Path(__file__).resolve().parents[2]


class Server:
    def __init__(self, tmp_path: Path, data_dir: Path, overrides: dict[str, Any]) -> None:
        self.ports = {name: free_port() for name in ("grpc", "http", "query", "query_grpc", "metrics")}
        body: dict[str, Any] = {
            "receivers": {
                "otlp": {
                    "protocols": {
                        "grpc": {"endpoint": f"127.0.0.1:{self.ports['grpc']}"},
                        "http": {"endpoint": f"127.0.0.1:{self.ports['http']}"},
                    }
                }
            },
            "exporters": {"prometheus": {"endpoint": f"127.0.0.1:{self.ports['metrics']}"}},
            "query": {
                "http": {"endpoint": f"127.0.0.1:{self.ports['query']}"},
                "grpc": {"endpoint": f"127.0.0.1:{self.ports['query_grpc']}"},
            },
        }
        from llm_observer.collector.config import deep_merge

        self.config = tmp_path / "config.yaml"
        self.config.write_text(yaml.safe_dump(deep_merge(body, overrides)))
        self.data_dir = data_dir
        self.log = tmp_path / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.acked: list[bytes] = []

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.support.fault_doubles",
                "up",
                "--config",
                str(self.config),
                "--data-dir",
                str(self.data_dir),
            ],
            cwd=REPO,
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
        )
        wait_until(lambda: self.health("query")[0] in (200, 503), 90, what=self.tail)

    def tail(self) -> str:
        return self.log.read_text()[-3000:]

    def health(self, which: str = "query") -> tuple[int, Any]:
        assert self.proc is not None and self.proc.poll() is None, self.tail()
        port = self.ports["query" if which == "query" else "http"]
        try:
            response = httpx.get(f"http://127.0.0.1:{port}/health", timeout=5)
        except httpx.HTTPError:
            return 0, None
        return response.status_code, response.json()

    def send(self, traces: int = 5) -> bool:
        """One OTLP/HTTP request; True (and its spans noted) when acknowledged."""
        request = genai_request(traces=traces)
        ids = [s.span_id for s in request.resource_spans[0].scope_spans[0].spans]
        try:
            response = httpx.post(
                f"http://127.0.0.1:{self.ports['http']}/v1/traces",
                content=request.SerializeToString(),
                headers={"content-type": "application/x-protobuf"},
                timeout=10,
            )
        except httpx.HTTPError:
            return False
        if response.status_code == 200:
            self.acked.extend(ids)
            return True
        assert response.status_code in (429, 503), response.text
        return False

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                assert self.proc.wait(timeout=120) == 0, self.tail()
            finally:
                if self.proc.poll() is None:
                    self.proc.kill()
                    self.proc.wait()
        self.proc = None

    def assert_stored_exactly_once(self) -> None:
        client = open_client("chdb://clickhouse", self.data_dir)
        try:
            twice = client.rows(
                "SELECT SpanId AS id, count() AS n FROM otel.otel_traces GROUP BY id HAVING n > 1"
            )
            stored = {r["id"] for r in client.rows("SELECT SpanId AS id FROM otel.otel_traces")}
        finally:
            client.close()
        assert twice == [], f"{len(twice)} spans stored more than once"
        missing = {i.hex() for i in self.acked} - stored
        assert not missing, f"{len(missing)} of {len(self.acked)} acknowledged spans were lost"


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "data"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=160m", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs (needs root): {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_faults_up_disk_full_refuses_new_data_then_recovers_with_every_ack_stored_once(
    tmp_path: Path, tmpfs: Path
) -> None:
    server = Server(
        tmp_path,
        tmpfs,
        {
            "service": {
                "wal": {"segment_size_mib": 4},
                "delivery": {
                    "linger_seconds": 0.05,
                    "initial_backoff_seconds": 0.05,
                    "max_backoff_seconds": 0.5,
                },
                "pipelines": {"traces": {"exporters": ["clickhouse", "spanmetrics"]}},
            },
        },
    )
    server.start()
    try:
        for _ in range(20):
            assert server.send()
        # Fill the disk to the last byte.
        filler = tmpfs / "filler"
        with open(filler, "wb") as fh:
            try:
                while True:
                    fh.write(b"\0" * (1 << 20))
                    fh.flush()
            except OSError:
                pass
        refused = 0
        deadline = time.monotonic() + 60
        while refused < 3 and time.monotonic() < deadline:
            if not server.send(traces=20):
                refused += 1
        assert refused >= 3, "a full disk never refused a request"
        status, body = server.health("query")
        otlp_status, _ = server.health("otlp")
        assert status == 503 and otlp_status == 503, body
        assert any("space" in p["reason"].lower() for p in body["problems"]), body
        filler.unlink()
        wait_until(lambda: server.send(), 60, what="ingest to be accepted again")
        for _ in range(10):
            assert server.send()
        wait_until(lambda: server.health("query")[0] == 200, 60, what=lambda: server.health("query"))
        assert server.health("otlp")[0] == 200
    finally:
        server.stop()
    server.assert_stored_exactly_once()


def test_faults_up_store_errors_and_a_slow_optional_exporter_cost_nothing(tmp_path: Path) -> None:
    server = Server(
        tmp_path,
        tmp_path / "data",
        {
            "exporters": {
                "chaos_clickhouse": {"fail_first": 8, "delay_seconds": 0.05},
                "slow": {
                    # Far slower than the senders on any machine: its lag must pass the bound.
                    "delay_seconds": 8.0,
                    "sending_queue": {"on_overflow": "drop", "max_lag_mib": 0.2, "max_lag_seconds": 0},
                },
            },
            "service": {
                "wal": {"segment_size_mib": 1},
                "delivery": {
                    "linger_seconds": 0.05,
                    "initial_backoff_seconds": 0.3,
                    "max_backoff_seconds": 0.6,
                    "max_batch_mib": 0.25,
                    "stall_seconds": 1,
                    "drain_timeout_seconds": 10,
                },
                "pipelines": {"traces": {"exporters": ["chaos_clickhouse", "slow"]}},
            },
        },
    )
    server.start()
    try:
        for _ in range(5):
            assert server.send()
        # While the store refuses, /health says so; the slow exporter is not a problem (it drops).
        wait_until(lambda: server.health("query")[0] == 503, 30, what=lambda: server.health("query"))
        _, body = server.health("query")
        assert "chaos_clickhouse" in str(body) and "TOO_MANY_PARTS" in str(body), body
        for _ in range(60):
            assert server.send(traces=10)  # a slow exporter never makes ingest refuse
        wait_until(lambda: server.health("query")[0] == 200, 60, what=lambda: server.health("query"))
        dropped = 'llm_observer_wal_records_dropped_total{exporter="slow",pipeline="traces"'
        wait_until(
            lambda: (
                dropped in httpx.get(f"http://127.0.0.1:{server.ports['metrics']}/metrics", timeout=10).text
            ),
            60,
            what="the slow exporter skipping ahead",
        )
    finally:
        server.stop()
    server.assert_stored_exactly_once()
