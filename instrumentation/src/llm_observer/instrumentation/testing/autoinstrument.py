"""Running a small application under ``opentelemetry-instrument`` in a subprocess, exporting OTLP/HTTP to a
local receiver (a :class:`ReplayServer` with :func:`otlp_trace_route`)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

__all__ = ["run_instrumented"]


def run_instrumented(
    app: str, workdir: Path, collector_url: str, env: Mapping[str, str] | None = None, timeout_s: float = 60.0
) -> subprocess.CompletedProcess[str]:
    """Write ``app`` to ``workdir/app.py`` and run it as ``opentelemetry-instrument python app.py`` with the
    venv of the running interpreter, traces going to ``collector_url`` (metrics and logs exporters off
    unless ``env`` says otherwise). Returns the finished process (output captured as text)."""
    script = workdir / "app.py"
    script.write_text(app, encoding="utf-8")
    bindir = Path(sys.executable).parent
    full_env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("OTEL_", "PYTEST_")) and key != "ANTHROPIC_OPEN_TELEMETRY"
    }
    full_env.update(
        {
            "OTEL_TRACES_EXPORTER": "otlp",
            "OTEL_METRICS_EXPORTER": "none",
            "OTEL_LOGS_EXPORTER": "none",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": collector_url.rstrip("/") + "/v1/traces",
            "OTEL_BSP_SCHEDULE_DELAY": "50",
        }
    )
    full_env.update(env or {})
    return subprocess.run(
        [str(bindir / "opentelemetry-instrument"), str(bindir / "python"), str(script)],
        cwd=workdir,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
