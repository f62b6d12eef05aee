"""Builds the slow tests keep between runs under the system temp dir (virtualenvs, wheels, an image's root),
one folder per state of the sources they come from, so a second run of the suite is fast.

A folder's name is ``<prefix>-<key>``, the key a hash of those sources. Every commit makes a new key, and the
folders run to a gigabyte or more each, so each use also removes the same prefix's folders for other keys that
no run has used for an hour: a day of commits would otherwise fill the disk the suite runs on."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from pathlib import Path

STALE_AFTER_SECONDS = 3600.0


def cache_dir(prefix: str, key: str, stale_after: float = STALE_AFTER_SECONDS) -> Path:
    """The folder for ``key`` under ``prefix`` (not created), marked as used now; removes the prefix's
    folders for other keys unused for ``stale_after`` seconds. An hour's grace leaves alone a run of the
    suite on another checkout that is using its own key at the same time."""
    base = Path(tempfile.gettempdir())
    keep = base / f"{prefix}-{key}"
    own = re.compile(re.escape(prefix) + r"-[0-9a-f]{16}")
    now = time.time()
    for other in base.glob(f"{prefix}-*"):
        if other == keep or not own.fullmatch(other.name):
            continue
        try:
            unused = now - other.stat().st_mtime
        except FileNotFoundError:  # another run removed it first
            continue
        if unused > stale_after:
            shutil.rmtree(other, ignore_errors=True)
    if keep.exists():
        os.utime(keep)
    return keep
