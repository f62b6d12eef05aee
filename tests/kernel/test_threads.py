"""Threads named at the OS level: what ``/proc/<pid>/task/<tid>/comm`` (``top -H``, ``ps -L``) shows."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest

from llm_observer.kernel.threads import OS_NAME_BYTES, name_native_thread, named_thread_pool

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="thread names in /proc: Linux")


def _os_name(native_id: int) -> str:
    return Path(f"/proc/self/task/{native_id}/comm").read_text().rstrip("\n")


def _in_thread(name: str, given: str | None) -> str:
    seen: list[str] = []

    def run() -> None:
        name_native_thread(given)
        seen.append(_os_name(threading.get_native_id()))

    thread = threading.Thread(target=run, name=name)
    thread.start()
    thread.join()
    return seen[0]


def test_threads_a_thread_takes_its_python_name_or_the_one_given() -> None:
    assert _in_thread("wal-writer", None) == "wal-writer"
    assert _in_thread("wal-writer", "stage-traces") == "stage-traces"


def test_threads_a_long_name_keeps_its_first_15_bytes_and_stays_utf8() -> None:
    assert _in_thread("stage-metrics/otlp_0", None) == "stage-metrics/o"
    # "é" is two bytes: cut in its middle, it is left out rather than written half.
    name = _in_thread("x" * (OS_NAME_BYTES - 1) + "é", None)
    assert name == "x" * (OS_NAME_BYTES - 1)


def test_threads_a_named_pool_names_each_of_its_threads() -> None:
    pool = named_thread_pool("export", 2)
    try:
        barrier = threading.Barrier(2)

        def names() -> tuple[str, str]:
            barrier.wait(timeout=10)  # both threads exist at once
            return threading.current_thread().name, _os_name(threading.get_native_id())

        futures = [pool.submit(names), pool.submit(names)]
        seen = {future.result(timeout=10) for future in futures}
    finally:
        pool.shutdown()
    assert {python for python, _ in seen} == {"export_0", "export_1"}
    assert all(python == os_name for python, os_name in seen)


def test_threads_a_pool_of_one_is_named_without_its_number() -> None:
    """So that two long names that differ only past 13 bytes stay apart in 15."""
    names = []
    for prefix in ("stage-metrics/otlp", "stage-metrics/genai"):
        pool = named_thread_pool(prefix, 1)
        try:
            names.append(pool.submit(lambda: _os_name(threading.get_native_id())).result(timeout=10))
        finally:
            pool.shutdown()
    assert names == ["stage-metrics/o", "stage-metrics/g"]
