"""glibc's heaps: capped at two for the collector unless the user says otherwise, and reported as they are."""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys
import textwrap

import pytest
from prometheus_client import generate_latest

from llm_observer.kernel import c_heap
from llm_observer.kernel.telemetry import Telemetry

pytestmark = pytest.mark.skipif(c_heap.usage() is None, reason="glibc only")

# Threads that each allocate while all are alive: glibc gives each new thread a heap of its own while it may
# make more. malloc_stats() then prints one "Arena N:" block per heap on the C stderr.
_COUNT_HEAPS = textwrap.dedent(
    """
    import ctypes, json, sys, threading
    from llm_observer.kernel import c_heap

    applied = c_heap.limit_arenas() if sys.argv[1] == "limit" else None
    barrier = threading.Barrier(7)
    kept = []

    def work():
        kept.append([bytearray(4096) for _ in range(100)])
        barrier.wait()
        barrier.wait()

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    barrier.wait()
    ctypes.CDLL(None).malloc_stats()
    barrier.wait()
    for t in threads:
        t.join()
    print(json.dumps({"applied": applied}))
    """
)


def _heaps(mode: str, env: dict[str, str]) -> tuple[int, object]:
    run = subprocess.run(
        [sys.executable, "-c", _COUNT_HEAPS, mode], env=env, capture_output=True, text=True, check=True
    )
    heaps = sum(1 for line in run.stderr.splitlines() if line.startswith("Arena "))
    return heaps, json.loads(run.stdout)["applied"]


def test_the_collector_keeps_two_heaps_where_threads_would_each_get_one() -> None:
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    unlimited, applied = _heaps("free", env)
    assert applied is None
    assert unlimited >= 4  # six threads on any machine with at least one core: up to eight heaps per core
    limited, applied = _heaps("limit", env)
    assert applied is True
    assert limited == c_heap.ARENAS


def test_the_users_malloc_arena_max_wins() -> None:
    env = {**os.environ, "MALLOC_ARENA_MAX": "3"}
    heaps, applied = _heaps("limit", env)
    assert applied is False
    assert heaps == 3


def test_usage_counts_an_allocation_until_it_is_freed() -> None:
    libc = ctypes.CDLL(None)
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    before = c_heap.usage()
    assert before is not None
    block = libc.malloc(64 << 20)
    try:
        during = c_heap.usage()
        assert during is not None
        assert during.in_use - before.in_use >= 64 << 20
    finally:
        libc.free(block)
    after = c_heap.usage()
    assert after is not None
    assert during.in_use - after.in_use >= 64 << 20


def _memory_parts(telemetry: Telemetry) -> dict[str, float]:
    return {
        line.split('part="', 1)[1].split('"', 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in generate_latest(telemetry.registry).decode().splitlines()
        if line.startswith("llm_observer_memory_bytes{")
    }


def test_the_memory_metric_reports_the_heaps() -> None:
    telemetry = Telemetry()
    before = _memory_parts(telemetry)
    assert before["malloc_free"] >= 0
    libc = ctypes.CDLL(None)
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    block = libc.malloc(64 << 20)
    try:
        assert _memory_parts(telemetry)["malloc_in_use"] - before["malloc_in_use"] >= 64 << 20
    finally:
        libc.free(block)
