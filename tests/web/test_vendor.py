"""The vendored uPlot is exactly the pinned npm package's file: ``npm ci`` from query/web's lock file into a
scratch copy, then compare byte for byte (slow: needs npm and the registry)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PINS = ROOT / "query" / "web"
VENDOR = ROOT / "query" / "src" / "llm_observer" / "query" / "web" / "static" / "vendor"
# vendored name → file in the npm package
FILES = {
    "uPlot.esm.js": "uplot/dist/uPlot.esm.js",
    "uPlot.min.css": "uplot/dist/uPlot.min.css",
    "LICENSE.uplot.txt": "uplot/LICENSE",
}

pytestmark = pytest.mark.skipif(
    os.environ.get("LLM_OBSERVER_SLOW_TESTS") != "1", reason="slow (npm ci): set LLM_OBSERVER_SLOW_TESTS=1"
)


def test_vendored_uplot_equals_the_pinned_package(tmp_path: Path) -> None:
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail("npm is needed to check the vendored files (apt-get install -y npm)")
    for name in ("package.json", "package-lock.json"):
        shutil.copy(PINS / name, tmp_path / name)
    subprocess.run(
        [npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund"],
        cwd=tmp_path,
        check=True,
        capture_output=True,
        timeout=300,
    )
    for vendored, packaged in FILES.items():
        assert (VENDOR / vendored).read_bytes() == (tmp_path / "node_modules" / packaged).read_bytes(), (
            f"static/vendor/{vendored} differs from node_modules/{packaged}: copy it again after changing "
            "query/web/package.json"
        )
