"""Reading the process's memory as the collector reports it, and allocating outside the interpreter."""

from __future__ import annotations

import ctypes
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import generate_latest

from llm_observer.kernel.telemetry import Telemetry


def memory_parts(telemetry: Telemetry) -> dict[str, float]:
    """``llm_observer_memory_bytes`` by ``part``, scraped from ``telemetry``'s registry."""
    out = {}
    for line in generate_latest(telemetry.registry).decode().splitlines():
        if line.startswith("llm_observer_memory_bytes{"):
            labels, value = line.rsplit(" ", 1)
            out[labels.split('part="', 1)[1].split('"', 1)[0]] = float(value)
    return out


@contextmanager
def c_allocation(size: int) -> Iterator[None]:
    """``size`` bytes from the C library's ``malloc``, freed on leaving."""
    libc = ctypes.CDLL(None)
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    block = libc.malloc(size)
    assert block, f"malloc({size}) failed"
    try:
        yield
    finally:
        libc.free(block)
