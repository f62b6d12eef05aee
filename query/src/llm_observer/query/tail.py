"""The live tail behind ``/api/v1/tail`` (Server-Sent Events) and the gRPC ``TailSpans``.

Tails are shared: every tail of the same tenant with the same filter reads from one ``_Poll``, which asks
storage once per interval for the keys of recent spans, reads only the spans it has not reported yet, and
hands them to each subscriber's bounded buffer. A subscriber that lets its buffer overflow is dropped
(``TailEnded``), never buffered without bound. How many tails may be open, per principal and in all, is
capped by the query config (``tail_max_per_principal``, ``tail_max_total``): over a cap, ``TooManyTails``
(429 / RESOURCE_EXHAUSTED).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from llm_observer.kernel.errors import RetryableError
from llm_observer.storage.clickhouse.reads import SpanFilter, SpanRow, Tenant

logger = logging.getLogger(__name__)

# Reading at most this many new spans per storage round trip.
_READ_CHUNK = 1000
# What one poll looks back over, at most, in keys.
_MAX_KEYS = 100_000


class TooManyTails(RetryableError):
    """A tail cap is reached (429 / RESOURCE_EXHAUSTED)."""


class TailEnded(Exception):
    """The service ended this tail: the subscriber did not keep up, or the service is stopping."""


class TailSource(Protocol):
    """What a tail reads: the keys of recent spans, then the spans it has not reported yet."""

    async def span_keys_since(
        self, tenant: Tenant, since_ns: int, spans: SpanFilter, limit: int
    ) -> tuple[tuple[str, str, int], ...]: ...

    async def spans_by_keys(
        self, tenant: Tenant, since_ns: int, keys: Sequence[tuple[str, str]]
    ) -> tuple[SpanRow, ...]: ...


class Subscription:
    """One open tail: ``await next()`` gives the next spans (an empty list when ``timeout`` passed first)."""

    def __init__(self, hub: TailHub, poll: _Poll, holder: str, max_spans: int) -> None:
        self._hub = hub
        self._poll = poll
        self.holder = holder
        self._max_spans = max_spans
        self._pending: deque[SpanRow] = deque()
        self._wake = asyncio.Event()
        self.ended: str | None = None
        self.closed = False

    def end(self, reason: str) -> None:
        """Stop this tail: ``next`` raises ``TailEnded(reason)`` from now on."""
        if self.ended is None:
            self.ended = reason
            self._pending.clear()
            self._wake.set()

    def offer(self, spans: Sequence[SpanRow]) -> None:
        if self.ended is not None or self.closed:
            return
        if len(self._pending) + len(spans) > self._max_spans:
            self._hub.count("tail_dropped_slow")
            self.end(
                f"the live tail was closed: more than {self._max_spans} spans waited for this client "
                "(query.tail_max_queued_spans)"
            )
            return
        self._pending.extend(spans)
        self._wake.set()

    async def next(self, timeout: float | None = None) -> list[SpanRow]:
        """The spans that arrived since the last call; waits up to ``timeout`` for some.

        Raises ``TailEnded`` once the service has ended the tail."""
        if not self._pending and self.ended is None:
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except TimeoutError:
                return []
        if self.ended is not None:
            raise TailEnded(self.ended)
        out = list(self._pending)
        self._pending.clear()
        return out

    def close(self) -> None:
        """Release this tail's place (idempotent)."""
        if self.closed:
            return
        self.closed = True
        self._hub.release(self)

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()


class _Poll:
    """One storage poll for a tenant and filter, shared by its subscribers."""

    def __init__(self, hub: TailHub, tenant: Tenant, spans: SpanFilter) -> None:
        self.hub = hub
        self.tenant = tenant
        self.spans = spans
        self.subscribers: set[Subscription] = set()
        self.primed = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self._seen: dict[tuple[str, str], int] = {}
        self._failing = False

    def start(self) -> None:
        self.task = asyncio.create_task(self._run(), name="llm-observer-tail-poll")

    async def _keys(self, since: int) -> tuple[tuple[str, str, int], ...]:
        return await self.hub.source.span_keys_since(self.tenant, since, self.spans, _MAX_KEYS)

    async def _run(self) -> None:
        hub = self.hub
        try:
            while True:
                since = hub.clock() - hub.lag_ns
                try:
                    if not self.primed.is_set():
                        # What is already there when the tail starts is history, not news.
                        for trace_id, span_id, start in await self._keys(since):
                            self._seen[(trace_id, span_id)] = start
                        self.primed.set()
                    else:
                        await self._poll_once(since)
                    self._failing = False
                except Exception as exc:
                    hub.count("tail_poll_failed")
                    if not self._failing:
                        logger.warning("The live tail cannot read storage (will keep trying): %s", exc)
                    self._failing = True
                await asyncio.sleep(hub.interval)
        except asyncio.CancelledError:
            self.primed.set()
            raise

    async def _poll_once(self, since: int) -> None:
        fresh = []
        for trace_id, span_id, start in await self._keys(since):
            key = (trace_id, span_id)
            if key not in self._seen:
                self._seen[key] = start
                fresh.append(key)
        for key in [k for k, start in self._seen.items() if start < since]:
            del self._seen[key]
        for offset in range(0, len(fresh), _READ_CHUNK):
            rows = await self.hub.source.spans_by_keys(
                self.tenant, since, fresh[offset : offset + _READ_CHUNK]
            )
            if rows:
                self.hub.count("tail_spans", len(rows) * len(self.subscribers))
                for subscriber in list(self.subscribers):
                    subscriber.offer(rows)


class TailHub:
    """Every open tail of one query service: shared polls, caps per principal and in all."""

    def __init__(
        self,
        source: TailSource,
        *,
        interval: float,
        lag_seconds: float,
        max_per_principal: int,
        max_total: int,
        max_queued_spans: int,
        clock: Callable[[], int],
        count: Callable[[str, int], None] | None = None,
    ) -> None:
        self.source = source
        self.interval = interval
        self.lag_ns = int(lag_seconds * 1e9)
        self.max_per_principal = max_per_principal
        self.max_total = max_total
        self.max_queued_spans = max_queued_spans
        self.clock = clock
        self._count = count
        self._polls: dict[tuple[Tenant, SpanFilter], _Poll] = {}
        self._by_holder: dict[str, int] = {}
        self._total = 0

    def count(self, event: str, n: int = 1) -> None:
        if self._count is not None:
            self._count(event, n)

    @property
    def open_tails(self) -> int:
        return self._total

    @property
    def polls(self) -> int:
        return len(self._polls)

    def open(self, holder: str, tenant: Tenant, spans: SpanFilter) -> Subscription:
        """A new tail for ``holder`` (who counts against the per-principal cap); ``TooManyTails`` over a cap.

        The caller must ``close`` it (or use it as an ``async with``); ``ready`` waits until it reports
        only spans that arrive from now on."""
        held = self._by_holder.get(holder, 0)
        if held >= self.max_per_principal:
            self.count("tail_refused_principal")
            raise TooManyTails(
                f"{holder} already has {held} live tails open (query.tail_max_per_principal)",
                retry_after=max(1.0, self.interval),
            )
        if self._total >= self.max_total:
            self.count("tail_refused_total")
            raise TooManyTails(
                f"the query service already serves {self._total} live tails (query.tail_max_total)",
                retry_after=max(1.0, self.interval),
            )
        key = (tenant, spans)
        poll = self._polls.get(key)
        if poll is None:
            poll = self._polls[key] = _Poll(self, tenant, spans)
            poll.start()
        subscription = Subscription(self, poll, holder, self.max_queued_spans)
        poll.subscribers.add(subscription)
        self._by_holder[holder] = held + 1
        self._total += 1
        return subscription

    async def ready(self, subscription: Subscription) -> None:
        """Wait until the subscription's poll knows what was there before the tail began."""
        await subscription._poll.primed.wait()

    def release(self, subscription: Subscription) -> None:
        poll = subscription._poll
        if subscription not in poll.subscribers:
            return
        poll.subscribers.discard(subscription)
        self._total -= 1
        left = self._by_holder.get(subscription.holder, 1) - 1
        if left > 0:
            self._by_holder[subscription.holder] = left
        else:
            self._by_holder.pop(subscription.holder, None)
        if not poll.subscribers:
            self._polls.pop((poll.tenant, poll.spans), None)
            if poll.task is not None:
                poll.task.cancel()

    async def close(self) -> None:
        """Stop every poll (the service is shutting down)."""
        polls, self._polls = list(self._polls.values()), {}
        tasks: list[Awaitable[None]] = []
        for poll in polls:
            for subscription in list(poll.subscribers):
                subscription.end("the query service is stopping")
            if poll.task is not None:
                poll.task.cancel()
                tasks.append(poll.task)
        await asyncio.gather(*tasks, return_exceptions=True)
