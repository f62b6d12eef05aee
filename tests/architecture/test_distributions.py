"""Each code folder installs on its own: its wheel, with only the distributions it declares (ours from the
wheels built here, the rest from PyPI), in a fresh virtualenv, imports every one of its modules, and brings
none of our other distributions. Together with ``test_layers`` (each folder declares exactly what it
imports) this is what lets a user install a building block alone.

Building wheels and virtualenvs takes minutes, so this runs only when ``LLM_OBSERVER_SLOW_TESTS=1``; both
are cached under the system temp dir, keyed by the sources.
"""

from __future__ import annotations

import json
import os
import subprocess
import tomllib
from pathlib import Path

import pytest

from tests.support.wheels import ROOT, cached_wheels, fresh_venv, run, sources_key

SLOW = os.environ.get("LLM_OBSERVER_SLOW_TESTS") != "1"
FOLDERS = ("semconv", "kernel", "instrumentation", "collector", "processors", "storage", "exporters", "query")

PROBE = r"""
import importlib, importlib.metadata, json, pkgutil, sys
import llm_observer
package = importlib.import_module(sys.argv[1])
modules = [package.__name__]
for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
    importlib.import_module(info.name)
    modules.append(info.name)
names = sorted(d.metadata["Name"] for d in importlib.metadata.distributions())
print(json.dumps({"modules": modules, "distributions": names, "file": package.__file__}))
"""


def _ours(folder: str) -> set[str]:
    """The llm-observer distributions ``folder`` may bring: itself and, transitively, what it declares."""
    out = {f"llm-observer-{folder}"}
    project = tomllib.loads((ROOT / folder / "pyproject.toml").read_text())["project"]
    for requirement in project.get("dependencies", []):
        name = requirement.split("=", 1)[0].split(">", 1)[0].strip()
        if name.startswith("llm-observer-"):
            out |= _ours(name.removeprefix("llm-observer-"))
    return out


@pytest.fixture(scope="module")
def wheels() -> Path:
    return cached_wheels("alone", FOLDERS)


@pytest.mark.slow
@pytest.mark.skipif(SLOW, reason="slow (builds wheels and a venv per folder): set LLM_OBSERVER_SLOW_TESTS=1")
# A venv per folder from PyPI: minutes on a busy machine, more than the suite's per-test timeout.
@pytest.mark.timeout(1200)
@pytest.mark.parametrize("folder", [f for f in FOLDERS if f != "instrumentation"])
def test_distributions_each_folder_installs_and_imports_on_its_own(
    folder: str, wheels: Path, tmp_path: Path
) -> None:
    (wheel,) = wheels.glob(f"llm_observer_{folder}-*.whl")
    python = fresh_venv(f"alone-{folder}", sources_key(FOLDERS), [str(wheel)], find_links=wheels)
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTHON")}
    probe = tmp_path / "probe.py"
    probe.write_text(PROBE)
    done = subprocess.run(
        [str(python), str(probe), f"llm_observer.{folder}"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    report = json.loads(done.stdout)
    assert Path(report["file"]).is_relative_to(python.parent.parent), (
        "imported from the venv, not the checkout"
    )
    assert len(report["modules"]) >= 1
    installed = {name.lower() for name in report["distributions"] if name.lower().startswith("llm-observer")}
    assert installed == _ours(folder)
    run([str(python), "-m", "pip", "check"])
