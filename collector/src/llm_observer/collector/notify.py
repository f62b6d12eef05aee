"""Waking coroutines of one event loop when something they wait for may have changed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


class Notifier:
    """Wakes every coroutine waiting in one event loop when the durable head moves (no lost wake-ups:
    a waiter takes the current generation's future before it checks the head)."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._future: asyncio.Future[None] | None = None

    def bind(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._future = self._loop.create_future()

    def notify(self) -> None:
        future = self._future
        if self._loop is None or future is None:
            return
        self._future = self._loop.create_future()
        if not future.done():
            future.set_result(None)

    async def wait_until(self, ready: Callable[[], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            future = self._future
            if ready():
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0 or future is None:
                return False
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancellation that
            # arrives as the future completes, and a cancelled worker would then wait forever.
            try:
                async with asyncio.timeout(remaining):
                    await asyncio.shield(future)
            except TimeoutError:
                return ready()
