"""Where the process's CPU goes: ``llm_observer_cpu_seconds_total{thread}``, read when scraped.

Each thread's user and system time (``/proc/self/task/*/stat``), summed by the thread's name with a pool's
number cut off (``asyncio_0``, ``asyncio_1``… count as ``asyncio``): the collector names its threads
(:mod:`llm_observer.kernel.threads`: ``stage-<pipeline>``, ``asyncio``, ``wal-writer``, ``embed-<exporter>``),
the embedded engine names its own (``MergeMutate``, ``ThreadPool``…), and the event loop keeps the
executable's name. The OS keeps 15 bytes of a name; a thread that carries its Python name there is counted
under the whole Python name, so ``stage-metrics/otlp-long`` and ``stage-metrics/otlp-longer`` stay apart. A
thread's time stays counted under the name it had when it was spent, after the thread exits or is renamed, so
every series only grows. Without ``/proc`` (not Linux) nothing is reported. Reading
every thread's ``stat`` takes a millisecond or two, so scrapes less than ``READ_EVERY_SECONDS`` apart share
one reading.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from prometheus_client.metrics_core import CounterMetricFamily, Metric

from llm_observer.kernel.threads import os_thread_name

__all__ = ["CpuCollector", "own_thread_cpu_seconds", "pool_name", "process_cpu_seconds", "thread_cpu_seconds"]

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_POOL_NUMBER = re.compile(r"_\d+$")

ThreadReader = Callable[[], dict[int, tuple[str, float]]]

READ_EVERY_SECONDS = 1.0


def pool_name(name: str) -> str:
    """A thread's name without its number in a pool: ``asyncio_3`` → ``asyncio``."""
    return _POOL_NUMBER.sub("", name)


def _stat(text: str) -> tuple[str, float]:
    """(name, user + system seconds) from a ``stat`` line; the name may hold spaces and parentheses."""
    name = text[text.index("(") + 1 : text.rindex(")")]
    fields = text[text.rindex(")") + 2 :].split()
    return name, (int(fields[11]) + int(fields[12])) / _TICKS  # utime and stime: the line's 14th and 15th


def process_cpu_seconds(pid: int | str = "self") -> float | None:
    """Process ``pid``'s CPU seconds, its exited threads' included; None without ``/proc``."""
    try:
        return _stat(Path(f"/proc/{pid}/stat").read_text())[1]
    except OSError:
        return None


def thread_cpu_seconds(pid: int | str = "self") -> dict[int, tuple[str, float]]:
    """Each live thread of process ``pid``: its id → (OS name, CPU seconds). Empty without ``/proc``."""
    out: dict[int, tuple[str, float]] = {}
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return out
    for task in tasks:
        try:
            out[int(task.name)] = _stat((task / "stat").read_text())
        except (OSError, ValueError):  # the thread exited meanwhile
            continue
    return out


def own_thread_cpu_seconds() -> dict[int, tuple[str, float]]:
    """:func:`thread_cpu_seconds` of this process, each thread whose OS name is what the OS keeps of its
    Python name (with or without a pool's number) under the whole Python name."""
    python_names = {t.native_id: t.name for t in threading.enumerate() if t.native_id is not None}
    out = thread_cpu_seconds()
    for tid, (name, seconds) in out.items():
        full = python_names.get(tid)
        if (
            full is not None
            and full != name
            and name in (os_thread_name(full), os_thread_name(pool_name(full)))
        ):
            out[tid] = (full, seconds)
    return out


@dataclass(slots=True)
class _Thread:
    name: str  # its pool name when last read
    since: float  # its CPU seconds when it took that name (or was first seen)
    last: float  # its CPU seconds when last read


class CpuCollector:
    """A Prometheus collector of the threads' CPU seconds by name (see the module docstring)."""

    def __init__(
        self, read: ThreadReader = own_thread_cpu_seconds, every_seconds: float | None = None
    ) -> None:
        self.read = read
        self.every_seconds = READ_EVERY_SECONDS if every_seconds is None else every_seconds
        self._last: tuple[float, dict[str, float]] | None = None  # (when, totals) of the last reading
        self._threads: dict[int, _Thread] = {}
        # The time of threads that exited or were renamed, under the name it was spent under.
        self._settled: dict[str, float] = {}
        self._lock = threading.Lock()  # two scrapes at once

    def _settle(self, thread: _Thread) -> None:
        self._settled[thread.name] = self._settled.get(thread.name, 0.0) + thread.last - thread.since

    def totals(self) -> dict[str, float]:
        """CPU seconds by thread name, every thread that ever ran included."""
        with self._lock:
            now = time.monotonic()
            if self._last is None or now - self._last[0] >= self.every_seconds:
                self._last = (now, self._totals(self.read()))
            return dict(self._last[1])

    def _totals(self, live: dict[int, tuple[str, float]]) -> dict[str, float]:
        for tid, gone in list(self._threads.items()):
            now = live.get(tid)
            # Exited, or a lower time: the id was reused by a new thread.
            if now is None or now[1] < gone.last:
                self._settle(gone)
                del self._threads[tid]
        for tid, (raw_name, seconds) in live.items():
            name = pool_name(raw_name)
            thread = self._threads.get(tid)
            if thread is None:
                self._threads[tid] = _Thread(name, 0.0, seconds)
                continue
            thread.last = seconds
            if thread.name != name:  # renamed: what it spent so far stays under the old name
                self._settle(thread)
                thread.name, thread.since = name, seconds
        totals = dict(self._settled)
        for kept in self._threads.values():
            totals[kept.name] = totals.get(kept.name, 0.0) + kept.last - kept.since
        return totals

    def collect(self) -> Iterator[Metric]:
        totals = self.totals()
        if not totals:
            return
        family = CounterMetricFamily(
            "llm_observer_cpu_seconds",
            "CPU time of the process's threads by thread name (a pool's threads together), read when scraped.",
            labels=["thread"],
        )
        for name, seconds in sorted(totals.items()):
            family.add_metric([name], seconds)
        yield family
