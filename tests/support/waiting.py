"""Polling with a deadline: tests wait for a condition, never for a fixed time."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


def _describe(what: str | Callable[[], object]) -> str:
    return what if isinstance(what, str) else str(what())


async def wait_for(
    predicate: Callable[[], T | Awaitable[T]],
    timeout: float = 10.0,
    what: str | Callable[[], object] = "condition",
    interval: float = 0.02,
) -> T:
    """Call ``predicate`` (plain or async) until it returns something truthy, and return that.

    Fails with ``AssertionError`` naming ``what`` once ``timeout`` seconds have passed; ``what`` may be a
    function, called then, to report the last state seen."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.1f}s waiting for {_describe(what)}")
        await asyncio.sleep(interval)


def wait_until(
    predicate: Callable[[], T],
    timeout: float = 10.0,
    what: str | Callable[[], object] = "condition",
    interval: float = 0.02,
) -> T:
    """``wait_for`` for code outside an event loop (threads, subprocesses): blocks between polls."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.1f}s waiting for {_describe(what)}")
        time.sleep(interval)
