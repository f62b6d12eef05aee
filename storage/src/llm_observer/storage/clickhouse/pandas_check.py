"""Keep pyarrow from importing pandas to check whether a Python list is a pandas object.

The first time pyarrow converts a Python sequence (``pa.array(list)``) it imports pandas, if installed, only to
ask whether the sequence is a pandas Series or Index. chDB installs pandas, and importing it adds 30-50 MB to
the process (``llm-observer up`` with one trace stored: 496 → 452 MB without it; ``bench/bench_collector.py
--up`` reports ``pandas_loaded``). The storage layer never hands pyarrow a pandas object, so
:func:`settle_without_pandas` lets pyarrow's check find pandas absent: once, before the first conversion, and
only while nothing has loaded pandas yet. pyarrow still imports pandas when something asks it for pandas
objects (``Table.to_pandas``): its check for that is a separate one.
"""

from __future__ import annotations

import importlib.abc
import sys
import threading
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType

import pyarrow as pa

_lock = threading.Lock()
_settled = False


class _PandasAbsent(importlib.abc.MetaPathFinder):
    """Finds no pandas for the thread that made it; other threads import as usual meanwhile."""

    def __init__(self) -> None:
        self._thread = threading.get_ident()

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if threading.get_ident() == self._thread and fullname.split(".", 1)[0] == "pandas":
            raise ModuleNotFoundError(f"No module named {fullname!r}", name=fullname)
        return None


def settle_without_pandas() -> None:
    """Have pyarrow's "is this a pandas object" check settle on "no" without importing pandas, unless pandas
    is already loaded (then the check uses it, as usual). Idempotent and thread-safe."""
    global _settled
    with _lock:
        if _settled:
            return
        _settled = True
        if "pandas" in sys.modules:
            return
        finder = _PandasAbsent()
        sys.meta_path.insert(0, finder)
        try:
            pa.array([0])  # pyarrow tries pandas here, once per process, and remembers the answer
        finally:
            sys.meta_path.remove(finder)
