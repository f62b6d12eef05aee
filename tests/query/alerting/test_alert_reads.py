"""AlertStore: the aggregates alerting reads, computed by ClickHouse over spans written by the real exporter,
checked against figures computed here from what was planted."""

from __future__ import annotations

import math

import pytest

from llm_observer.storage.clickhouse.alert_reads import CallWindow
from llm_observer.storage.clickhouse.queries import InvalidArgument
from tests.query.alerting.eval_support import DAY, HOUR, MINUTE, NOW, Call, Planted, planted

__all__ = ["planted"]


def inclusive_quantile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (ClickHouse's quantileExactInclusive)."""
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def by_group(rows: list[CallWindow], window_ns: int) -> dict[tuple[str, tuple[str, ...]], CallWindow]:
    return {(r.organization_id, r.group): r for r in rows if r.end_ns - r.start_ns == window_ns}


async def test_alert_reads_windows_per_group(planted: Planted) -> None:
    durations = [10.0 * (i + 1) for i in range(40)]
    calls = [
        Call(
            start_ns=NOW - 50 * MINUTE + i * MINUTE,
            provider="openai" if i % 2 else "anthropic",
            model="gpt-4o" if i % 2 else "claude",
            duration_ms=durations[i],
            error=i % 5 == 0,
            cost_usd=0.01 * (i + 1),
            input_tokens=100 + i,
            output_tokens=10 + i,
            ttft_s=0.05 * (i + 1) if i % 4 == 1 else None,
        )
        for i in range(40)
    ]
    # Outside every window, and another organization: neither may count.
    calls.append(Call(start_ns=NOW - 2 * HOUR, provider="openai", model="gpt-4o"))
    calls.append(Call(start_ns=NOW - 30 * MINUTE, org="org-b", provider="openai", model="gpt-4o"))
    await planted.write(calls)

    short, long = 20 * MINUTE, 60 * MINUTE
    rows = planted.store.windows(
        [("organization", "org-a")],
        ["provider"],
        NOW,
        [short, long],
        quantiles_for=[long],
        ttft_for=[long],
        slow_ms=[150.0, 300.0],
    )
    assert {r.organization_id for r in rows} == {"org-a"}
    for length in (short, long):
        got = by_group(rows, length)
        for provider in ("openai", "anthropic"):
            mine = [
                (i, c)
                for i, c in enumerate(calls[:40])
                if c.provider == provider and c.start_ns >= NOW - length
            ]
            stats = got[("org-a", (provider,))]
            assert stats.request_count == len(mine)
            assert stats.error_count == sum(c.error for _, c in mine)
            assert stats.input_tokens == sum(c.input_tokens for _, c in mine)
            assert stats.output_tokens == sum(c.output_tokens for _, c in mine)
            assert stats.cost_usd == pytest.approx(sum(c.cost_usd for _, c in mine))
            assert stats.slow_counts == (
                sum(c.duration_ms > 150 for _, c in mine),
                sum(c.duration_ms > 300 for _, c in mine),
            )
            if length == long:
                lat = [c.duration_ms for _, c in mine]
                assert stats.latency_p50_ms == pytest.approx(inclusive_quantile(lat, 0.5))
                assert stats.latency_p95_ms == pytest.approx(inclusive_quantile(lat, 0.95))
                assert stats.latency_p99_ms == pytest.approx(inclusive_quantile(lat, 0.99))
                ttft = [c.ttft_s * 1000 for _, c in mine if c.ttft_s is not None]
                assert stats.ttft_count == len(ttft)
                if ttft:
                    assert stats.ttft_p95_ms == pytest.approx(inclusive_quantile(ttft, 0.95))
            else:
                # Not asked for: not computed.
                assert (stats.latency_p95_ms, stats.ttft_count) == (0.0, 0)


async def test_alert_reads_groups_by_every_organization_without_filter(planted: Planted) -> None:
    await planted.write(
        [Call(start_ns=NOW - MINUTE, org="org-a"), Call(start_ns=NOW - MINUTE, org="org-b", model="m2")]
    )
    rows = planted.store.windows([], ["model"], NOW, [5 * MINUTE])
    assert sorted((r.organization_id, r.group, r.request_count) for r in rows) == [
        ("org-a", ("gpt-4o",), 1),
        ("org-b", ("m2",), 1),
    ]
    assert planted.store.windows([("project", "nope")], [], NOW, [5 * MINUTE]) == []


async def test_alert_reads_buckets_on_a_grid(planted: Planted) -> None:
    calls = [Call(start_ns=NOW - 3 * HOUR + i * 10 * MINUTE, duration_ms=100 + i) for i in range(18)]
    await planted.write(calls)
    rows = planted.store.buckets([("organization", "org-a")], [], NOW - 3 * HOUR, NOW, HOUR)
    assert [(r.start_ns, r.end_ns, r.request_count) for r in sorted(rows, key=lambda r: r.start_ns)] == [
        (NOW - 3 * HOUR, NOW - 2 * HOUR, 6),
        (NOW - 2 * HOUR, NOW - HOUR, 6),
        (NOW - HOUR, NOW, 6),
    ]
    first = min(rows, key=lambda r: r.start_ns)
    assert first.latency_p50_ms == pytest.approx(inclusive_quantile([100.0 + i for i in range(6)], 0.5))


async def test_alert_reads_spend_series_is_dense(planted: Planted) -> None:
    start = NOW - 4 * DAY
    await planted.write(
        [
            Call(start_ns=start + HOUR, project="web", cost_usd=1.5),
            Call(start_ns=start + 2 * HOUR, project="web", cost_usd=0.5),
            Call(start_ns=start + 2 * DAY + HOUR, project="web", cost_usd=3.0),
            Call(start_ns=start + 3 * DAY, project="api", cost_usd=7.0),
        ]
    )
    series = planted.store.spend_series([], ["project"], start, NOW - 12 * HOUR, DAY)
    assert [(s.group, s.values) for s in series] == [
        (("api",), (0.0, 0.0, 0.0, 7.0)),
        (("web",), (2.0, 0.0, 3.0, 0.0)),
    ]
    assert series[1].total == pytest.approx(5.0)


async def test_alert_reads_reject_unknown_dimensions_and_windows(planted: Planted) -> None:
    with pytest.raises(InvalidArgument, match="region"):
        planted.store.windows([], ["region"], NOW, [MINUTE])
    with pytest.raises(InvalidArgument, match="region"):
        planted.store.buckets([("region", "eu")], [], NOW - HOUR, NOW, MINUTE)
    with pytest.raises(InvalidArgument):
        planted.store.windows([], [], NOW, [0])
    # Values are parameters, never SQL.
    assert planted.store.windows([("model", "x' OR 1=1 --")], [], NOW, [MINUTE]) == []
