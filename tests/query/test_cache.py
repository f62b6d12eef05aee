"""The in-process result cache: fresh hits, expiry, bounded size."""

from __future__ import annotations

from llm_observer.query.cache import ResultCache


async def test_cache_serves_fresh_results_and_expires() -> None:
    now = [100.0]
    cache = ResultCache(ttl=5.0, max_entries=10, clock=lambda: now[0])
    calls: list[str] = []

    async def compute(value: str) -> str:
        calls.append(value)
        return value

    assert await cache.get_or_compute("k", lambda: compute("first")) == "first"
    now[0] += 4.9
    assert await cache.get_or_compute("k", lambda: compute("second")) == "first"
    now[0] += 0.2
    assert await cache.get_or_compute("k", lambda: compute("third")) == "third"
    assert calls == ["first", "third"]
    assert (cache.hits, cache.misses) == (1, 2)


async def test_cache_evicts_least_recently_used_and_can_be_off() -> None:
    cache = ResultCache(ttl=60.0, max_entries=2, clock=lambda: 0.0)
    computed: list[int] = []

    async def compute(n: int) -> int:
        computed.append(n)
        return n

    for key in (1, 2, 1, 3):  # 2 is the least recently used when 3 arrives
        await cache.get_or_compute(key, lambda key=key: compute(key))
    await cache.get_or_compute(1, lambda: compute(1))
    await cache.get_or_compute(2, lambda: compute(2))
    assert computed == [1, 2, 3, 2]

    off = ResultCache(ttl=0.0, max_entries=10)
    for _ in range(2):
        await off.get_or_compute("k", lambda: compute(9))
    assert computed[-2:] == [9, 9]
