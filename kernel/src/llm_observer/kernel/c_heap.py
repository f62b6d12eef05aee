"""The C allocator's share of the process's memory: how many heaps it keeps, and what they hold.

glibc's ``malloc`` gives a thread that finds the heaps busy a heap of its own, up to eight per core. The
collector's threads (the event loop, the exporters' workers, gRPC's pollers, the embedded engine's pools)
each free what others allocated, so every heap keeps its own free memory: under the guard's load glibc held
190 to 210 MB, of which 120 to 140 MB were free. Two heaps hold 105 to 120 MB, 35 to 50 MB of it free, at the
same stored rate (``bench/bench_collector.py --up``, alternating runs). Other C libraries (musl, macOS) have
no such heaps, and nothing here applies to them.
"""

from __future__ import annotations

import ctypes
import functools
import os
from dataclasses import dataclass

ARENAS = 2
_M_ARENA_MAX = -8  # mallopt's parameter, from glibc's malloc.h


class _Mallinfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",  # bytes taken from the system for the heaps (not the chunks mapped on their own)
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",  # bytes in chunks mapped on their own (large allocations)
            "usmblks",
            "fsmblks",
            "uordblks",  # bytes allocated from the heaps
            "fordblks",  # bytes free in the heaps
            "keepcost",
        )
    ]


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    """The C library, its functions typed once, when it is glibc 2.33 or later (``mallinfo2``)."""
    try:
        libc = ctypes.CDLL(None)
    except OSError:
        return None
    if not (hasattr(libc, "mallopt") and hasattr(libc, "mallinfo2")):
        return None
    libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    libc.mallinfo2.restype = _Mallinfo2
    return libc


def limit_arenas(count: int = ARENAS) -> bool:
    """Cap glibc's heaps at ``count``, unless ``MALLOC_ARENA_MAX`` says otherwise (glibc reads it at
    start-up, and the user's value wins). Call before the process starts threads: heaps made before stay.
    True when the cap was set here."""
    if "MALLOC_ARENA_MAX" in os.environ:
        return False
    libc = _glibc()
    if libc is None:
        return False
    return bool(libc.mallopt(_M_ARENA_MAX, count))


@dataclass(frozen=True)
class HeapUsage:
    in_use: int  # allocated, from the heaps or mapped on their own
    free: int  # free in the heaps: kept by the allocator, resident if it was ever touched


def usage() -> HeapUsage | None:
    """What glibc's heaps hold now, or None elsewhere. ``mallinfo2`` walks every heap's free lists, each
    heap locked meanwhile: ~0.1 ms in a process just started, ~16 ms with 100,000 free chunks."""
    libc = _glibc()
    if libc is None:
        return None
    info = libc.mallinfo2()
    return HeapUsage(in_use=info.uordblks + info.hblkhd, free=info.fordblks)
