"""Threads named for the operating system too, so that ``top -H``, ``ps -L``, ``perf`` and
``/proc/<pid>/task/*/comm`` tell the collector's threads apart.

Python names its threads for itself only: at the OS level every interpreter thread is called after the
executable (``python``, ``llm-observer``), so the CPU of the pipelines' stages, the WAL writer, the worker pool
the exporters convert batches in and the embedding model could not be told apart from outside. Linux keeps
15 bytes of a thread's name; elsewhere nothing is changed.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

__all__ = ["OS_NAME_BYTES", "name_native_thread", "named_thread_pool", "os_thread_name"]

OS_NAME_BYTES = 15  # Linux's TASK_COMM_LEN, less the terminating NUL


def os_thread_name(name: str) -> str:
    """What the OS keeps of ``name``: its first 15 bytes of UTF-8, no character cut in two."""
    return name.encode("utf-8", "replace")[:OS_NAME_BYTES].decode("utf-8", "ignore")


def name_native_thread(name: str | None = None) -> None:
    """Give the calling thread ``name`` (default: its Python name) at the OS level, cut to 15 bytes."""
    text = os_thread_name(threading.current_thread().name if name is None else name)
    try:
        with open(f"/proc/self/task/{threading.get_native_id()}/comm", "wb") as comm:
            comm.write(text.encode())
    except OSError:  # not Linux, or /proc not mounted: the name is only a convenience
        pass


def named_thread_pool(prefix: str, max_workers: int | None = None) -> ThreadPoolExecutor:
    """A thread pool whose threads carry their Python names (``<prefix>_<n>``) at the OS level too. A pool of
    one thread is called ``<prefix>`` there: without the number, more of a long name fits in 15 bytes
    (``stage-metrics/otlp`` and ``stage-metrics/genai`` stay apart)."""
    os_name = prefix if max_workers == 1 else None
    return ThreadPoolExecutor(
        max_workers, thread_name_prefix=prefix, initializer=name_native_thread, initargs=(os_name,)
    )
