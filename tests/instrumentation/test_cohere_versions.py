"""The cohere instrumentation against the OLDEST supported cohere (cohere==5.13.0): the whole
``test_cohere.py`` suite runs again with that release first on the path (the rest of the suite runs the newest).
Installing it takes a while, so this runs only when ``LLM_OBSERVER_SLOW_TESTS=1``; the install is cached
under the system temp dir between runs."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Installed without dependencies over the venv's newer ones; httpx-sse is a dependency the newest release dropped.
OLDEST = ["cohere==5.13.0", "httpx-sse==0.4.0"]

pytestmark = pytest.mark.skipif(
    os.environ.get("LLM_OBSERVER_SLOW_TESTS") != "1",
    reason="slow (installs an old SDK): set LLM_OBSERVER_SLOW_TESTS=1",
)


def _oldest_site() -> Path:
    target = Path(tempfile.gettempdir()) / ("llmo-oldest-" + "-".join(OLDEST).replace("=", ""))
    if not (target / ".complete").exists():
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), *OLDEST],
            check=True,
            timeout=600,
        )
        (target / ".complete").touch()
    return target


def test_cohere_suite_passes_on_oldest_supported_sdk() -> None:
    site = _oldest_site()
    env = {key: value for key, value in os.environ.items() if not key.startswith(("OTEL_", "PYTEST_"))}
    env["PYTHONPATH"] = str(site)
    version = subprocess.run(
        [sys.executable, "-c", "import importlib.metadata as m; print(m.version('cohere'))"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert version.stdout.strip() == "5.13.0"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/instrumentation/test_cohere.py",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
