"""``llm_observer_cpu_seconds_total{thread}``: the process's CPU by thread name, a pool's threads together,
and every series only growing while threads exit, are renamed or hand their ids on."""

from __future__ import annotations

import sys
import threading
import time

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from llm_observer.kernel import cpu
from llm_observer.kernel.cpu import CpuCollector, pool_name
from llm_observer.kernel.telemetry import Telemetry
from llm_observer.kernel.threads import name_native_thread, named_thread_pool

linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="thread CPU in /proc: Linux")


class _Threads:
    """A scripted ``/proc``: each ``read`` returns the next reading."""

    def __init__(self, *readings: dict[int, tuple[str, float]]) -> None:
        self.readings = list(readings)

    def __call__(self) -> dict[int, tuple[str, float]]:
        return self.readings.pop(0)


def test_cpu_a_pools_threads_count_together() -> None:
    assert pool_name("asyncio_12") == "asyncio"
    assert pool_name("stage-metrics/otlp_0") == "stage-metrics/otlp"
    assert pool_name("wal-writer") == "wal-writer"
    collector = CpuCollector(
        _Threads({1: ("python", 2.0), 2: ("asyncio_0", 1.0), 3: ("asyncio_1", 0.5)}), every_seconds=0
    )
    assert collector.totals() == {"python": 2.0, "asyncio": 1.5}


def test_cpu_time_of_exited_and_renamed_threads_stays_where_it_was_spent() -> None:
    collector = CpuCollector(
        _Threads(
            {1: ("python", 1.0), 2: ("python", 0.5), 3: ("asyncio_0", 2.0)},
            # 2 named itself; 3 exited and a new thread took its id (less time than 3 had).
            {1: ("python", 1.5), 2: ("stage-traces_0", 0.75), 3: ("asyncio_1", 0.25)},
            # 2 exited.
            {1: ("python", 2.0), 3: ("asyncio_1", 1.0)},
        ),
        every_seconds=0,
    )
    assert collector.totals() == {"python": 1.5, "asyncio": 2.0}
    assert collector.totals() == {"python": 2.25, "stage-traces": 0.0, "asyncio": 2.25}
    assert collector.totals() == {"python": 2.75, "stage-traces": 0.0, "asyncio": 3.0}


def _scrape(telemetry: Telemetry) -> dict[str, float]:
    text = generate_latest(telemetry.registry).decode()
    for family in text_string_to_metric_families(text):
        if family.name == "llm_observer_cpu_seconds":
            return {s.labels["thread"]: s.value for s in family.samples if s.name.endswith("_total")}
    return {}


def test_cpu_scrapes_close_together_share_one_reading() -> None:
    collector = CpuCollector(_Threads({1: ("python", 1.0)}, {1: ("python", 2.0)}), every_seconds=3600)
    assert collector.totals() == collector.totals() == {"python": 1.0}  # a second read would have found 2.0


@linux
def test_cpu_the_telemetry_endpoint_keeps_a_named_threads_time_after_it_exits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(cpu, "READ_EVERY_SECONDS", 0.0)  # every scrape reads /proc
    telemetry = Telemetry()
    burnt, release = threading.Event(), threading.Event()

    def burn() -> None:
        name_native_thread()
        deadline = time.thread_time() + 0.3
        while time.thread_time() < deadline:
            pass
        burnt.set()
        release.wait(10)

    before = _scrape(telemetry)
    thread = threading.Thread(target=burn, name="burner_7")
    thread.start()
    try:
        assert burnt.wait(30)
        while_alive = _scrape(telemetry)
    finally:
        release.set()
        thread.join()
    after_exit = _scrape(telemetry)
    assert "burner" not in before
    assert while_alive["burner"] >= 0.25
    assert after_exit["burner"] == while_alive["burner"]
    assert all(after_exit[name] >= seconds for name, seconds in while_alive.items())


@linux
def test_cpu_threads_whose_names_the_os_cuts_alike_keep_their_whole_python_names() -> None:
    # Both are "stage-pipeline-" to the OS (15 bytes); the pool of one thread is "stage-pipeline-" there too.
    names = ("stage-pipeline-alpha", "stage-pipeline-beta")
    burnt, release = threading.Barrier(len(names) + 2), threading.Event()

    def burn() -> None:
        name_native_thread()
        deadline = time.thread_time() + 0.05
        while time.thread_time() < deadline:
            pass
        burnt.wait(30)
        release.wait(10)

    threads = [threading.Thread(target=burn, name=name) for name in names]
    pool = named_thread_pool("stage-pipeline-gamma", 1)
    for thread in threads:
        thread.start()
    pooled = pool.submit(burn)
    try:
        burnt.wait(30)
        totals = CpuCollector(every_seconds=0).totals()
    finally:
        release.set()
        for thread in threads:
            thread.join()
        pooled.result(10)
        pool.shutdown()
    for name in (*names, "stage-pipeline-gamma"):
        assert totals[name] >= 0.04, (name, totals)
    assert "stage-pipeline-" not in totals
