"""Waiters wake on every notify, time out, and never swallow a cancellation."""

from __future__ import annotations

import asyncio

import pytest

from llm_observer.collector.notify import Notifier


async def test_notify_wakes_a_waiter_whose_condition_became_true() -> None:
    notifier = Notifier()
    notifier.bind()
    state = {"ready": False}
    waiter = asyncio.create_task(notifier.wait_until(lambda: state["ready"], 30))
    await asyncio.sleep(0)
    state["ready"] = True
    notifier.notify()
    assert await asyncio.wait_for(waiter, 5) is True


async def test_notify_wait_times_out_false() -> None:
    notifier = Notifier()
    notifier.bind()
    assert await notifier.wait_until(lambda: False, 0.05) is False


async def test_notify_cancellation_arriving_with_a_notify_is_not_swallowed() -> None:
    # A pipeline worker is cancelled at shutdown while the stage notifies in the same loop turn; if the
    # cancellation were lost, the worker would go on waiting and shutdown would never finish.
    notifier = Notifier()
    notifier.bind()
    for _ in range(50):
        waiter = asyncio.create_task(notifier.wait_until(lambda: False, 30))
        await asyncio.sleep(0)
        notifier.notify()
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(waiter, 5)
