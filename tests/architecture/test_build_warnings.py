"""Building our distributions prints no deprecation warning of our own making (setuptools' license table,
packages missing from the `packages` configuration, ...): an install from the README stays quiet."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = ("semconv", "kernel", "instrumentation", "collector", "processors", "storage", "exporters", "query")
SLOW = os.environ.get("LLM_OBSERVER_SLOW_TESTS") != "1"
_DEPRECATION = re.compile(r"deprecat|SetuptoolsWarning|absent from the `packages`", re.IGNORECASE)


@pytest.mark.slow
@pytest.mark.skipif(SLOW, reason="slow (builds every distribution): set LLM_OBSERVER_SLOW_TESTS=1")
def test_build_warnings_none_from_our_distributions(tmp_path: Path) -> None:
    sources = []
    for folder in FOLDERS:
        copy = tmp_path / "src" / folder
        shutil.copytree(
            ROOT / folder, copy, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "build")
        )
        sources.append(str(copy))
    root = tmp_path / "src" / "root"
    root.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (ROOT / name).exists():
            shutil.copy(ROOT / name, root / name)
    sources.append(str(root))
    command = [sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "--no-build-isolation"]
    done = subprocess.run(
        [*command, "-w", str(tmp_path / "wheels"), *sources],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    warnings = sorted({line.strip() for line in output.splitlines() if _DEPRECATION.search(line)})
    assert warnings == [], "\n".join(warnings)
