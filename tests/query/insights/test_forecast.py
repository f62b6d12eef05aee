"""Spend forecasts over synthetic daily spend with a known trend and weekly seasonality, written as spans
into chDB through the real exporter: the error of the period-end forecast made mid-period (MAPE) and how
often the prediction interval holds the actual total (coverage), over many series."""

from __future__ import annotations

import datetime as dt
import math
import random
import time

import pytest

from llm_observer.query.insights.forecast import (
    DAY_NS,
    forecast_spend,
    forecast_with_history,
    period_bounds,
)
from llm_observer.storage.clickhouse.queries import InvalidArgument, Tenant
from tests.query.insights.cost_support import HOUR, CostPlant, LlmCall, cost_plant

__all__ = ["cost_plant"]

SERIES = 80
HISTORY = 21


def previous_month() -> tuple[int, int]:
    """The last whole UTC month: inside the store's retention with ``HISTORY`` days before it."""
    today = dt.datetime.fromtimestamp(time.time(), tz=dt.UTC).date()
    first = today.replace(day=1)
    start = (first - dt.timedelta(days=1)).replace(day=1)
    begin = int(dt.datetime(start.year, start.month, 1, tzinfo=dt.UTC).timestamp()) * 10**9
    end = int(dt.datetime(first.year, first.month, 1, tzinfo=dt.UTC).timestamp()) * 10**9
    return begin, end


def synthetic(rng: random.Random, days: int, first_weekday: int) -> list[float]:
    """Daily spend: a base, a linear trend, a weekly pattern (quiet weekends) and 8% multiplicative noise."""
    base = rng.uniform(20, 200)
    slope = rng.uniform(-0.005, 0.02) * base
    weekly = [1.0 + rng.uniform(-0.1, 0.1) for _ in range(5)] + [rng.uniform(0.4, 0.8)] * 2
    return [
        max(0.0, (base + slope * t) * weekly[(first_weekday + t) % 7] * (1 + rng.gauss(0, 0.08)))
        for t in range(days)
    ]


async def test_forecast_mid_month_error_and_interval_coverage(cost_plant: CostPlant) -> None:
    start, end = previous_month()
    days = (end - start) // DAY_NS
    fit_start = start - HISTORY * DAY_NS
    first_weekday = dt.datetime.fromtimestamp(fit_start / 1e9, tz=dt.UTC).weekday()
    rng = random.Random(12)
    truth: dict[str, list[float]] = {}
    calls = []
    for s in range(SERIES):
        project = f"p{s:03d}"
        values = synthetic(rng, HISTORY + days, first_weekday)
        truth[project] = values[HISTORY:]
        # Each day's spend in four calls through the day, so a partial day holds its share.
        for d, value in enumerate(values):
            for quarter in range(4):
                at = fit_start + d * DAY_NS + (3 + 6 * quarter) * HOUR
                calls.append(LlmCall(at, project=project, cost_usd=value / 4))
    await cost_plant.write(calls)

    now = start + 15 * DAY_NS + 12 * HOUR  # mid-period: the 16th at noon
    forecasts = forecast_spend(
        cost_plant.store,
        Tenant("org-a", None),
        now,
        period="month",
        group_by=["project"],
        confidence=0.9,
        history_days=HISTORY,
    )
    assert len(forecasts) == SERIES
    errors, covered = [], 0
    for forecast in forecasts:
        actual = math.fsum(truth[forecast.group["project"]])
        assert (forecast.period_start_ns, forecast.period_end_ns) == (start, end)
        assert forecast.low_usd <= forecast.forecast_usd <= forecast.high_usd
        spent = math.fsum(truth[forecast.group["project"]][:15]) + truth[forecast.group["project"]][15] / 2
        assert forecast.spent_usd == pytest.approx(spent, rel=1e-9)
        errors.append(abs(forecast.forecast_usd - actual) / actual)
        covered += forecast.low_usd <= actual <= forecast.high_usd
    mape = 100 * math.fsum(errors) / len(errors)
    coverage = covered / len(forecasts)
    print(
        f"\nforecast mid-month over {SERIES} series: MAPE {mape:.2f}%, 90% interval coverage {coverage:.1%}"
    )
    assert mape <= 10.0
    # A 90% interval: the share of series it holds must be near 90% (binomial spread over 80 series).
    assert 0.78 <= coverage <= 0.99


async def test_forecast_week_period_and_budget_exhaustion(cost_plant: CostPlant) -> None:
    start, _ = previous_month()
    # A steady $10 a day: the budget of $55 is reached by the end of the 6th day of a week.
    week_start, week_end = period_bounds(start + 10 * DAY_NS, "week")
    calls = [
        LlmCall(week_start - 14 * DAY_NS + d * DAY_NS + h * HOUR, project="steady", cost_usd=2.5)
        for d in range(14 + 3)
        for h in (2, 8, 14, 20)
    ]
    await cost_plant.write(calls)
    now = week_start + 3 * DAY_NS  # Thursday 00:00: three whole days of the week seen
    (forecast,) = forecast_spend(
        cost_plant.store, Tenant("org-a", None), now, period="week", budget_usd=55.0, history_days=14
    )
    assert forecast.group == {"organization": "org-a"}
    assert (forecast.period_start_ns, forecast.period_end_ns) == (week_start, week_end)
    assert forecast.spent_usd == pytest.approx(30.0)
    assert forecast.forecast_usd == pytest.approx(70.0)
    assert (
        forecast.budget_exhausted_on
        == (dt.datetime.fromtimestamp(week_start / 1e9, tz=dt.UTC) + dt.timedelta(days=5)).date()
    )
    # Another tenant sees nothing.
    assert forecast_spend(cost_plant.store, Tenant("org-b", None), now, period="week") == []


def test_forecast_with_history_ignores_days_before_a_group_existed() -> None:
    # A group that began spending two days before the period: the empty days before are not a trend.
    forecast = forecast_with_history(
        [0.0] * 10 + [5.0, 5.0], [5.0, 5.0], 7, last_day_fraction=1.0, first_weekday=0
    )
    assert forecast.total == pytest.approx(35.0)
    assert forecast.cumulative[1] == pytest.approx(10.0)


def test_forecast_rejects_bad_parameters() -> None:
    with pytest.raises(InvalidArgument):
        period_bounds(0, "year")  # type: ignore[arg-type]
