"""Where the process's memory is: ``llm_observer_memory_bytes{part}``, read when scraped.

Parts: ``rss_anonymous`` and ``rss_file`` (the kernel's split of resident memory), ``rss_engine_library``
(the resident part of chDB's engine library, a mapped file that is most of ``rss_file``), ``arrow_pool``
(pyarrow's allocator, when pyarrow is loaded), ``malloc_in_use`` and ``malloc_free`` (glibc's heaps: what is
allocated from them, and what they keep free; see ``c_heap``) and whatever components add to
``Telemetry.memory_parts`` (the ClickHouse exporter, for the embedded engine, which has an allocator of its
own: ``chdb_heap_allocated``, ``chdb_heap_active`` and ``chdb_heap_resident`` from that allocator, and
``chdb_tracked``, what the engine says it holds for caches, inserts and merges). What remains of
``rss_anonymous`` is mostly the interpreter's small objects, which it keeps in arenas of its own, and the
threads' stacks.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from llm_observer.kernel import c_heap

MemoryPart = Callable[[], int | None]

_ENGINE_LIBRARY = "_chdb"


def _status_kib() -> dict[str, int]:
    out: dict[str, int] = {}
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return out
    for line in text.splitlines():
        if line.startswith(("RssAnon:", "RssFile:")):
            name, value, *_ = line.split()
            out[name.rstrip(":")] = int(value)
    return out


def _engine_library_kib() -> int | None:
    """Resident KiB of the mappings of chDB's engine library (None without /proc or the library)."""
    try:
        text = Path("/proc/self/smaps").read_text()
    except OSError:
        return None
    total, inside, seen = 0, False, False
    for line in text.splitlines():
        if not line.split(" ", 1)[0].endswith(":"):  # a mapping's header, then its "Field: value" lines
            inside = _ENGINE_LIBRARY in line
            seen = seen or inside
        elif inside and line.startswith("Rss:"):
            total += int(line.split()[1])
    return total if seen else None


class MemoryCollector:
    """A Prometheus collector of the parts above, plus ``extra`` (read when scraped). The engine library's
    part, which takes reading every mapping of the process, is re-read at most every ``library_seconds``."""

    def __init__(self, extra: Mapping[str, MemoryPart], library_seconds: float = 30.0) -> None:
        self.extra = extra
        self.library_seconds = library_seconds
        self._library: tuple[float, int | None] = (-library_seconds, None)

    def _library_kib(self) -> int | None:
        read_at, value = self._library
        now = time.monotonic()
        if value is None or now - read_at >= self.library_seconds:  # not loaded yet: look again
            value = _engine_library_kib()
            self._library = (now, value)
        return value

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "llm_observer_memory_bytes",
            "Resident memory of the process by part, read when scraped.",
            labels=["part"],
        )
        status = _status_kib()
        for part, key in (("rss_anonymous", "RssAnon"), ("rss_file", "RssFile")):
            if key in status:
                family.add_metric([part], status[key] * 1024)
        library = self._library_kib()
        if library is not None:
            family.add_metric(["rss_engine_library"], library * 1024)
        arrow = sys.modules.get("pyarrow")
        if arrow is not None:
            family.add_metric(["arrow_pool"], int(arrow.total_allocated_bytes()))
        heap = c_heap.usage()
        if heap is not None:
            family.add_metric(["malloc_in_use"], heap.in_use)
            family.add_metric(["malloc_free"], heap.free)
        for part, read in list(self.extra.items()):
            value = read()
            if value is not None:
                family.add_metric([part], value)
        yield family
