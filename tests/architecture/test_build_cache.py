"""The slow tests' build cache keeps one folder per state of the sources and removes the others once unused."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import pytest

from tests.support.cache import cache_dir

KEY = "0123456789abcdef"
OLD_KEY = "fedcba9876543210"
OTHER_KEY = "00112233445566ff"


def _folder(base: Path, name: str, age_seconds: float) -> Path:
    folder = base / name
    (folder / "venv").mkdir(parents=True)
    (folder / "venv" / "big").write_bytes(b"x" * 1024)
    stamp = time.time() - age_seconds
    os.utime(folder, (stamp, stamp))
    return folder


def test_cache_dir_removes_other_keys_unused_for_an_hour_and_nothing_else(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    current = _folder(tmp_path, f"llmo-alone-{KEY}", 3 * 3600)
    stale = _folder(tmp_path, f"llmo-alone-{OLD_KEY}", 2 * 3600)
    in_use = _folder(tmp_path, f"llmo-alone-{OTHER_KEY}", 60)
    longer_prefix = _folder(tmp_path, f"llmo-alone-wheels-{OLD_KEY}", 2 * 3600)
    not_a_key = _folder(tmp_path, "llmo-alone-scratch", 2 * 3600)

    assert cache_dir("llmo-alone", KEY) == current

    assert not stale.exists()
    assert in_use.exists(), "another checkout's run may be using its own key right now"
    assert longer_prefix.exists(), "another prefix's folders are not this prefix's to remove"
    assert not_a_key.exists()
    assert (current / "venv" / "big").exists()
    assert time.time() - current.stat().st_mtime < 600, "a use marks the folder as used"


def test_cache_dir_does_not_create_the_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    stale = _folder(tmp_path, f"llmo-publish-{OLD_KEY}", 2 * 3600)

    folder = cache_dir("llmo-publish", KEY)

    assert folder == tmp_path / f"llmo-publish-{KEY}"
    assert not folder.exists()
    assert not stale.exists()
