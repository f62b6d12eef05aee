"""The ``llm-observer`` console script, run as a user would: a subprocess per command."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import pytest
import yaml

from tests.support import free_port, trace_request, wait_until
from tests.support.collector import debug_collector_yaml


def _script() -> str:
    beside = Path(sys.executable).parent / "llm-observer"
    found = str(beside) if beside.exists() else shutil.which("llm-observer")
    assert found, "the llm-observer console script is not installed (pip install -e .)"
    return found


def _run(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_script(), *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def _debug_collector(tmp_path: Path, grpc: str, http: str) -> Path:
    path = tmp_path / "collector.yaml"
    path.write_text(debug_collector_yaml(grpc, http))
    return path


def test_cli_validate_good_config_exits_zero(tmp_path: Path) -> None:
    good = _write(
        tmp_path,
        "good.yaml",
        """
        receivers:
          otlp:
            protocols:
              grpc:
                endpoint: 0.0.0.0:4317
        exporters:
          debug: {}
        service:
          pipelines:
            traces:
              receivers: [otlp]
              processors: [normalize, cost]
              exporters: [clickhouse, debug]
        """,
    )
    result = _run(tmp_path, "validate", "--config", str(good))
    assert result.returncode == 0, result.stderr
    assert "valid" in result.stdout
    assert not (tmp_path / ".llm-observer").exists()  # validating starts nothing and writes nothing


def test_cli_validate_bad_config_names_every_bad_key(tmp_path: Path) -> None:
    bad = _write(
        tmp_path,
        "bad.yaml",
        """
        receivers:
          otlp:
            protocols:
              grpc:
                max_recv_msg_size_mib: -1
        exporters:
          prometheus:
            endpiont: 127.0.0.1:9464
          nosuch: {}
        service:
          pipelines:
            traces:
              receivers: [otlp]
              exporters: [clickhouse, missing]
        """,
    )
    result = _run(tmp_path, "validate", "--config", str(bad))
    assert result.returncode != 0
    for path in (
        "receivers.otlp.protocols.grpc.max_recv_msg_size_mib",
        "exporters.prometheus.endpiont",
        "exporters.nosuch",
        "service.pipelines.traces.exporters[1]",
    ):
        assert path in result.stderr, f"{path} not named in:\n{result.stderr}"
    assert "Traceback" not in result.stderr


def test_cli_validate_missing_file_fails_cleanly(tmp_path: Path) -> None:
    result = _run(tmp_path, "validate", "--config", str(tmp_path / "absent.yaml"))
    assert result.returncode != 0
    assert "absent.yaml" in result.stderr
    assert "Traceback" not in result.stderr
    result = _run(tmp_path, "validate")
    assert result.returncode != 0
    assert "--config" in result.stderr


@pytest.mark.parametrize(
    "protocol",
    [
        "grpc",
        "http",
    ],
)
def test_cli_collector_port_in_use_names_the_endpoint(tmp_path: Path, protocol: str) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        endpoints = {"grpc": "127.0.0.1:0", "http": "127.0.0.1:0", protocol: f"127.0.0.1:{port}"}
        config = _debug_collector(tmp_path, endpoints["grpc"], endpoints["http"])
        result = _run(tmp_path, "collector", "--config", str(config), "--data-dir", str(tmp_path / "data"))
    assert result.returncode == 1, result.stderr[-2000:]
    assert f"receivers.otlp.protocols.{protocol}.endpoint: cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "config error" not in result.stderr


def test_cli_up_lists_every_port_conflict_at_once(tmp_path: Path) -> None:
    keys = (
        "receivers.otlp.protocols.grpc.endpoint",
        "receivers.otlp.protocols.http.endpoint",
        "query.http.endpoint",
        "query.grpc.endpoint",
        "exporters.prometheus.endpoint",
    )
    held = []
    try:
        for _ in keys:
            busy = socket.socket()
            held.append(busy)
            busy.bind(("127.0.0.1", 0))
            busy.listen()
        ports = [busy.getsockname()[1] for busy in held]
        config = _write(
            tmp_path,
            "up.yaml",
            f"""
            receivers:
              otlp:
                protocols:
                  grpc:
                    endpoint: 127.0.0.1:{ports[0]}
                  http:
                    endpoint: 127.0.0.1:{ports[1]}
            query:
              http:
                endpoint: 127.0.0.1:{ports[2]}
              grpc:
                endpoint: 127.0.0.1:{ports[3]}
            exporters:
              prometheus:
                endpoint: 127.0.0.1:{ports[4]}
            """,
        )
        result = _run(tmp_path, "up", "--config", str(config), "--data-dir", str(tmp_path / "data"))
    finally:
        for busy in held:
            busy.close()
    assert result.returncode == 1, result.stderr[-2000:]
    assert "cannot start: 5 listen addresses are unavailable" in result.stderr
    for key, port in zip(keys, ports, strict=True):
        assert f"{key}: cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "config error" not in result.stderr


def test_cli_up_refuses_a_port_configured_twice(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = _write(
        tmp_path,
        "twice.yaml",
        f"""
        receivers:
          otlp:
            protocols:
              grpc:
                endpoint: 127.0.0.1:0
              http:
                endpoint: 127.0.0.1:{port}
        query:
          http:
            endpoint: 127.0.0.1:{port}
          grpc:
            endpoint: 127.0.0.1:0
        exporters:
          prometheus:
            endpoint: 127.0.0.1:0
        """,
    )
    result = _run(tmp_path, "up", "--config", str(config), "--data-dir", str(tmp_path / "data"))
    assert result.returncode == 1, result.stderr[-2000:]
    assert (
        f"query.http.endpoint: 127.0.0.1:{port} is also configured for receivers.otlp.protocols.http.endpoint"
        in result.stderr
    )


def test_cli_version_prints_the_version(tmp_path: Path) -> None:
    result = _run(tmp_path, "--version")
    assert result.returncode == 0
    assert result.stdout.startswith("llm-observer ") and result.stdout.split()[1][0].isdigit()


def test_cli_config_show_prints_the_effective_config(tmp_path: Path) -> None:
    moved = _write(
        tmp_path,
        "moved.yaml",
        """
        receivers:
          otlp:
            protocols:
              http:
                endpoint: ${LLM_OBSERVER_TEST_HOST:-127.0.0.1}:5318
        """,
    )
    result = _run(
        tmp_path, "config", "show", "--config", str(moved), env={"LLM_OBSERVER_TEST_HOST": "0.0.0.0"}
    )
    assert result.returncode == 0, result.stderr
    shown = yaml.safe_load(result.stdout)
    protocols = shown["receivers"]["otlp"]["protocols"]
    assert protocols["http"]["endpoint"] == "0.0.0.0:5318"  # the file, env expanded
    assert protocols["grpc"]["endpoint"] == "127.0.0.1:4317"  # the default beside it
    assert protocols["grpc"]["max_recv_msg_size_mib"] == 16  # defaults filled in
    assert shown["service"]["pipelines"]["traces"] == {
        "receivers": ["otlp", "rest"],
        "processors": ["tenant", "logjoin", "normalize", "attribute", "cost", "rollup"],
        "exporters": ["clickhouse", "spanmetrics", "vectors"],
    }
    assert shown["service"]["wal"]["mode"] == "disk"
    assert shown["exporters"]["prometheus"]["endpoint"] == "127.0.0.1:9464"
    assert shown["query"]["http"]["endpoint"] == "127.0.0.1:8080"

    # What it prints is itself a config that validates to the same thing.
    saved = _write(tmp_path, "shown.yaml", result.stdout)
    again = _run(tmp_path, "config", "show", "--config", str(saved))
    assert again.returncode == 0, again.stderr
    assert yaml.safe_load(again.stdout) == shown


def test_cli_config_show_bad_file_names_the_key(tmp_path: Path) -> None:
    bad = _write(tmp_path, "bad.yaml", "exporters:\n  prometheus:\n    max_series: 0\n")
    result = _run(tmp_path, "config", "show", "--config", str(bad))
    assert result.returncode != 0
    assert "exporters.prometheus.max_series" in result.stderr
    assert result.stdout == ""


def test_cli_help_lists_the_commands(tmp_path: Path) -> None:
    result = _run(tmp_path, "--help")
    assert result.returncode == 0
    for command in ("up", "collector", "query", "validate", "config"):
        assert command in result.stdout


def _thread_names(pid: int) -> set[str]:
    names = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            names.add((task / "comm").read_text().strip())
        except OSError:  # the thread exited meanwhile
            continue
    return names


def _acknowledged(port: int) -> bool:
    try:
        response = httpx.post(
            f"http://127.0.0.1:{port}/v1/traces",
            content=trace_request(1).SerializeToString(),
            headers={"content-type": "application/x-protobuf"},
            timeout=5,
        )
    except httpx.HTTPError:
        return False
    return response.status_code == 200


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="thread names in /proc: Linux")
def test_cli_collector_names_its_threads_for_the_os(tmp_path: Path) -> None:
    """``top -H`` and ``ps -L`` tell the stage, the WAL writer and the exporters' pool apart."""
    port = free_port()
    config = _debug_collector(tmp_path, "127.0.0.1:0", f"127.0.0.1:{port}")
    log = tmp_path / "collector.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [_script(), "collector", "--config", str(config), "--data-dir", str(tmp_path / "data")],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until(lambda: _acknowledged(port), 60, lambda: log.read_text()[-2000:], interval=0.2)
        # The stage's thread starts with the first records to process.
        wait_until(
            lambda: _thread_names(proc.pid) >= {"wal-writer", "stage-traces"},
            30,
            lambda: sorted(_thread_names(proc.pid)),
        )
        names = _thread_names(proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    assert any(name.startswith("asyncio_") for name in names), sorted(names)
