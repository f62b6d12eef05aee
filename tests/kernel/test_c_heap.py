"""glibc's heaps: capped at two for the collector unless the user says otherwise, and reported as they are."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from llm_observer.kernel import c_heap
from llm_observer.kernel.telemetry import Telemetry
from tests.support import free_port
from tests.support.collector import debug_collector_yaml
from tests.support.memory import c_allocation, memory_parts

pytestmark = pytest.mark.skipif(c_heap.usage() is None, reason="glibc only")

# A child process that first does what argv[1] says ("free": nothing, "limit": limit_arenas(), "cli": runs
# `llm-observer collector` with the config in argv[2], whose gRPC port is taken, so it stops at once), then
# starts six threads that allocate while all are alive: glibc gives each new thread a heap of its own while it
# may make more. malloc_stats() then prints one "Arena N:" block per heap on the C stderr.
_COUNT_HEAPS = textwrap.dedent(
    """
    import ctypes, json, socket, sys, threading
    from llm_observer.kernel import c_heap

    mode, result = sys.argv[1], None
    if mode == "limit":
        result = c_heap.limit_arenas()
    elif mode == "cli":
        from llm_observer.collector.cli import main
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", int(sys.argv[3])))
            busy.listen()
            result = main(["collector", "--config", sys.argv[2], "--data-dir", sys.argv[4]])
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
    print(json.dumps({"result": result}))
    """
)


def _heaps(env: dict[str, str], *args: str) -> tuple[int, object]:
    run = subprocess.run(
        [sys.executable, "-c", _COUNT_HEAPS, *args], env=env, capture_output=True, text=True, check=True
    )
    heaps = sum(1 for line in run.stderr.splitlines() if line.startswith("Arena "))
    return heaps, json.loads(run.stdout.strip().splitlines()[-1])["result"]


def _without_arena_max() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}


def test_limit_arenas_keeps_two_heaps_where_threads_would_each_get_one() -> None:
    unlimited, result = _heaps(_without_arena_max(), "free")
    assert result is None
    assert unlimited >= 4  # six threads on any machine with at least one core: up to eight heaps per core
    limited, result = _heaps(_without_arena_max(), "limit")
    assert result is True
    assert limited == c_heap.ARENAS


def test_the_collector_command_caps_its_heaps(tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "collector.yaml"
    config.write_text(debug_collector_yaml(f"127.0.0.1:{port}", None))
    heaps, code = _heaps(_without_arena_max(), "cli", str(config), str(port), str(tmp_path / "data"))
    assert code == 1  # the port was taken: the command ran and stopped
    assert heaps <= c_heap.ARENAS


def test_the_users_malloc_arena_max_wins() -> None:
    heaps, result = _heaps({**os.environ, "MALLOC_ARENA_MAX": "3"}, "limit")
    assert result is False
    assert heaps == 3


def test_usage_counts_an_allocation_until_it_is_freed() -> None:
    before = c_heap.usage()
    assert before is not None
    with c_allocation(64 << 20):
        during = c_heap.usage()
        assert during is not None
        assert during.in_use - before.in_use >= 64 << 20
    after = c_heap.usage()
    assert after is not None
    assert during.in_use - after.in_use >= 64 << 20


def test_the_memory_metric_reports_the_heaps() -> None:
    telemetry = Telemetry()
    rises = []
    # Threads that earlier tests left winding down free memory of their own between two readings: one of
    # three tries must see the whole allocation.
    for _ in range(3):
        before = memory_parts(telemetry)
        assert before["malloc_free"] >= 0
        with c_allocation(64 << 20):
            rises.append(memory_parts(telemetry)["malloc_in_use"] - before["malloc_in_use"])
        if rises[-1] >= 64 << 20:
            break
    assert max(rises) >= 64 << 20, rises
