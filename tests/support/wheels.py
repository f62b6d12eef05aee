"""Building the repository's distributions as wheels and installing them into fresh virtualenvs, as users
install them (for the slow tests that check each distribution on its own). Wheels and virtualenvs are cached
under the system temp dir, keyed by the sources of what they hold, so a second run is fast (``cache.py``)."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path

from tests.support.cache import cache_dir

ROOT = Path(__file__).resolve().parents[2]
BUILD_LEFTOVERS = ("__pycache__", "*.egg-info", "build")


def sources_key(folders: Iterable[str]) -> str:
    """A short hash of the folders' ``pyproject.toml`` and ``src`` trees."""
    digest = hashlib.sha256()
    for folder in sorted(folders):
        base = ROOT / folder
        for path in sorted([base / "pyproject.toml", *(base / "src").rglob("*")]):
            if path.is_file() and "__pycache__" not in path.parts and ".egg-info" not in str(path):
                digest.update(str(path.relative_to(ROOT)).encode())
                digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def run(command: list[str], timeout: float = 900) -> str:
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    assert done.returncode == 0, f"{' '.join(command)}\n{done.stdout[-2000:]}{done.stderr[-4000:]}"
    return done.stdout


def cached_wheels(name: str, folders: tuple[str, ...]) -> Path:
    """A folder holding one wheel per folder, built once per state of their sources."""
    into = cache_dir(f"llmo-{name}-wheels", sources_key(folders))
    if not (into / ".complete").exists():
        shutil.rmtree(into, ignore_errors=True)
        build_wheels(folders, into)
        (into / ".complete").touch()
    return into


def build_wheels(folders: Iterable[str], into: Path) -> list[Path]:
    """One wheel per folder, built from copies so the build leaves nothing in the source folders."""
    into.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        sources = []
        for folder in folders:
            copy = Path(scratch) / folder
            shutil.copytree(ROOT / folder, copy, ignore=shutil.ignore_patterns(*BUILD_LEFTOVERS))
            sources.append(str(copy))
        run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(into), *sources])
    return sorted(into.glob("*.whl"))


def fresh_venv(name: str, key: str, requirements: list[str], find_links: Path | None = None) -> Path:
    """The python of a virtualenv holding ``requirements`` (wheel paths or names) and what PyPI gives for
    their dependencies, with ``find_links`` searched for ours; cached by ``name`` and ``key``."""
    venv = cache_dir(f"llmo-{name}", key)
    python = venv / "bin" / "python"
    if (venv / ".complete").exists():
        return python
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    links = ["--find-links", str(find_links)] if find_links is not None else []
    run([str(python), "-m", "pip", "install", "-q", *links, *requirements])
    (venv / ".complete").touch()
    return python
