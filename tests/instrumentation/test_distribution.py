"""The instrumentation as applications install it: the ``semconv`` and ``instrumentation`` wheels in a fresh
virtualenv give the tracing API and the integrations, and none of the server's heavy dependencies; the
repository's editable install gives the same imports.

Building the wheels and the virtualenv takes a while, so this runs only when ``LLM_OBSERVER_SLOW_TESTS=1``;
the virtualenv is cached under the system temp dir, keyed by the two distributions' files.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.wheels import ROOT, cached_wheels, fresh_venv, sources_key

DISTRIBUTIONS = ("semconv", "instrumentation")
SLOW = os.environ.get("LLM_OBSERVER_SLOW_TESTS") != "1"

SERVER_ONLY = (
    "chdb",
    "pyarrow",
    "fastapi",
    "uvicorn",
    "onnxruntime",
    "fastembed",
    "qdrant-client",
    "grpcio-tools",
    "grpcio-reflection",
    "grpcio-status",
    "clickhouse-connect",
    "confluent-kafka",
)

PROBE = r"""
import importlib.metadata, json
import llm_observer
import llm_observer.semconv.attributes
from llm_observer import LLMObserverTracer, observe
from llm_observer.integrations import OpenAIIntegration

print(json.dumps({
    "package": llm_observer.__file__,
    "semconv": llm_observer.semconv.attributes.__file__,
    "tracer": LLMObserverTracer.__name__,
    "observe": callable(observe),
    "instrumentor": type(OpenAIIntegration._instrumentor()).__name__,
    "distributions": [dist.metadata["Name"] for dist in importlib.metadata.distributions()],
}))
"""


def _fresh_venv() -> Path:
    """A virtualenv holding the two wheels and what PyPI gives for their dependencies (cached)."""
    wheels = cached_wheels("app", DISTRIBUTIONS)
    return fresh_venv("dist", sources_key(DISTRIBUTIONS), [str(w) for w in sorted(wheels.glob("*.whl"))])


def _probe(python: Path | str, cwd: Path) -> dict[str, Any]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PYTHON", "OTEL_"))}
    done = subprocess.run(
        [str(python), "-c", PROBE], cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def _normalized(names: list[str]) -> set[str]:
    return {re.sub(r"[-_.]+", "-", name).lower() for name in names}


@pytest.mark.slow
@pytest.mark.skipif(SLOW, reason="slow (builds wheels and a venv): set LLM_OBSERVER_SLOW_TESTS=1")
def test_distribution_wheels_in_fresh_venv_give_tracer_without_server_dependencies(tmp_path: Path) -> None:
    python = _fresh_venv()
    report = _probe(python, tmp_path)

    site = python.parent.parent
    assert Path(report["package"]).is_relative_to(site)
    assert Path(report["semconv"]).is_relative_to(site)
    assert (report["tracer"], report["observe"]) == ("LLMObserverTracer", True)
    assert report["instrumentor"] == "OpenAIInstrumentor"
    installed = _normalized(report["distributions"])
    assert {"llm-observer-semconv", "llm-observer-instrumentation"} <= installed
    assert installed & set(SERVER_ONLY) == set()
    assert {name for name in installed if name.startswith("llm-observer")} == {
        "llm-observer-semconv",
        "llm-observer-instrumentation",
    }


@pytest.mark.slow
@pytest.mark.skipif(SLOW, reason="slow (starts the interpreter afresh): set LLM_OBSERVER_SLOW_TESTS=1")
def test_distribution_editable_install_gives_the_same_imports(tmp_path: Path) -> None:
    report = _probe(sys.executable, tmp_path)

    assert Path(report["package"]) == ROOT / "instrumentation/src/llm_observer/__init__.py"
    assert Path(report["semconv"]).is_relative_to(ROOT / "semconv/src")
    assert (report["tracer"], report["observe"]) == ("LLMObserverTracer", True)
    assert report["instrumentor"] == "OpenAIInstrumentor"
