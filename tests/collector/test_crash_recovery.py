"""Killing the collector at any moment loses nothing it acknowledged, and replays store nothing twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import grpc
import yaml

from llm_observer.collector.testing import genai_request
from llm_observer.storage.clickhouse.client import open_client
from tests.support import free_port, wait_until

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


def _start(config: Path, data_dir: Path, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llm_observer.collector.cli",
            "collector",
            "--config",
            str(config),
            "--data-dir",
            str(data_dir),
        ],
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


def _wait_ready(port: int, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    def listening() -> bool:
        assert proc.poll() is None, "collector exited during start-up"
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            try:
                grpc.channel_ready_future(channel).result(timeout=0.5)
            except grpc.FutureTimeoutError:
                return False
            return True

    wait_until(listening, timeout, what="the collector to listen")


def test_sigkill_after_acks_loses_nothing_and_duplicates_nothing(tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "collector.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "receivers": {
                    "otlp": {
                        "protocols": {"grpc": {"endpoint": f"127.0.0.1:{port}"}, "http": {"enabled": False}}
                    }
                },
                # Any free port for /metrics: another process's 9464 must not stop this one.
                "exporters": {"prometheus": {"endpoint": "127.0.0.1:0"}},
                "service": {
                    "delivery": {"linger_seconds": 0.05, "min_batch_mib": 0.5},
                    "pipelines": {
                        "traces": {"receivers": ["otlp"], "processors": [], "exporters": ["clickhouse"]}
                    },
                },
            }
        )
    )
    data_dir = tmp_path / "data"
    log = tmp_path / "collector.log"
    proc = _start(config, data_dir, log)
    acked: list[bytes] = []
    stop = threading.Event()
    enough = threading.Event()
    try:
        _wait_ready(port, proc)

        def send() -> None:
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                export = channel.unary_unary(EXPORT)
                while not stop.is_set():
                    request = genai_request(traces=10)
                    ids = [s.span_id for s in request.resource_spans[0].scope_spans[0].spans]
                    try:
                        export(request.SerializeToString(), timeout=5)
                    except grpc.RpcError:
                        return  # the collector died under us: this request was not acknowledged
                    acked.extend(ids)
                    if len(acked) >= 3000:
                        enough.set()

        sender = threading.Thread(target=send)
        sender.start()
        enough.wait(timeout=60)
        os.kill(proc.pid, signal.SIGKILL)  # mid-stream: requests in flight, exports unfinished
        proc.wait()
        stop.set()
        sender.join()
        assert len(acked) >= 3000, log.read_text()[-3000:]

        proc = _start(config, data_dir, log)
        _wait_ready(port, proc)
        proc.send_signal(signal.SIGTERM)  # a clean shutdown drains everything replayed
        assert proc.wait(timeout=120) == 0, log.read_text()[-3000:]
    finally:
        stop.set()
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    client = open_client("chdb://clickhouse", data_dir)
    try:
        rows = client.rows(
            "SELECT lower(SpanId) AS id, count() AS n FROM otel.otel_traces GROUP BY id HAVING n > 1"
        )
        assert rows == [], f"{len(rows)} spans stored more than once"
        stored = {r["id"] for r in client.rows("SELECT SpanId AS id FROM otel.otel_traces")}
    finally:
        client.close()
    missing = {i.hex() for i in acked} - stored
    assert not missing, f"{len(missing)} acknowledged spans were lost"
