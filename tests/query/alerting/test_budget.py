"""Budget rules over a real store (actual spend crossing levels, the period-end forecast, scopes and
periods), and the forecast itself on synthetic months with trend and weekly seasonality."""

from __future__ import annotations

import calendar
import random
import time
from datetime import UTC, datetime

import pytest

from llm_observer.query.alerting.forecast import forecast_period_end
from tests.query.alerting.eval_support import DAY, HOUR, NOW, Call, Planted, by_labels, one, planted, rule_of

__all__ = ["planted"]


def a_past_month() -> tuple[int, int]:
    """(start ns, days) of a whole calendar month that ended more than a week ago, inside the retention."""
    moment = datetime.fromtimestamp(time.time() - 40 * 86400, UTC)
    first = moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return int(first.timestamp()) * 10**9, calendar.monthrange(first.year, first.month)[1]


async def test_budget_levels_and_forecast(planted: Planted) -> None:
    start, days = a_past_month()
    calls = []
    for day in range(16):
        for quarter in range(4):
            at = start + day * DAY + quarter * 6 * HOUR
            calls.append(Call(start_ns=at, project="web", cost_usd=1.0))
            calls.append(Call(start_ns=at, project="api", cost_usd=0.25))
    # Last month's spend is not this month's.
    calls.append(Call(start_ns=start - HOUR, project="web", cost_usd=1000.0))
    await planted.write(calls)
    rule = rule_of(
        {
            "name": "Spend",
            "kind": "budget",
            "scope": "project",
            "period": "month",
            "amount_usd": 100,
            "labels": {"owner": "finops"},
        }
    )
    at = start + 15 * DAY + 12 * HOUR  # mid-month, half of day 15 gone (two of its four calls)
    evaluation = planted.evaluator().evaluate([rule], at)
    assert evaluation.errors == {}
    web = by_labels(evaluation.samples, project="web")
    assert [s.labels["level"] for s in web] == ["50%", "80%", "100%", "forecast"]
    assert list(web[0].labels) == ["alertname", "organization_id", "project", "owner", "level"]
    levels = {s.labels["level"]: (s.active, s.clear, s.value) for s in web}
    assert levels["50%"] == (True, False, pytest.approx(62.0))
    assert levels["80%"] == (False, True, pytest.approx(62.0))
    forecast = one(web, level="forecast")
    assert forecast.active
    assert forecast.value == pytest.approx(4.0 * days, rel=1e-6)
    assert forecast.window_start_ns == start
    # 4 USD a day reaches 100 USD by the end of day 25 (index 24).
    runs_out = datetime.fromtimestamp(start / 1e9 + 24 * 86400, UTC).strftime("%Y-%m-%d")
    assert forecast.annotations["runs_out_on"] == runs_out
    assert f"runs out on {runs_out}" in forecast.annotations["summary"]
    # Rounded to cents in the annotations.
    low, high = float(forecast.annotations["forecast_low"]), float(forecast.annotations["forecast_high"])
    assert low - 0.005 <= forecast.value <= high + 0.005
    api = {s.labels["level"]: s.active for s in by_labels(evaluation.samples, project="api")}
    assert api == {"50%": False, "80%": False, "100%": False, "forecast": False}


async def test_budget_daily_per_organization(planted: Planted) -> None:
    midnight = NOW - NOW % DAY - DAY
    await planted.write(
        [
            Call(start_ns=midnight + h * HOUR, org=org, cost_usd=1.0)
            for h in range(24)
            for org in ("org-a", "org-b")
        ]
    )
    rule = rule_of(
        {"name": "Daily", "kind": "budget", "period": "day", "amount_usd": 20, "organization": "org-a"}
    )
    samples = planted.evaluator().evaluate([rule], midnight + 12 * HOUR).samples
    assert {s.labels["organization_id"] for s in samples} == {"org-a"}
    levels = {s.labels["level"]: (s.active, s.value) for s in samples}
    assert levels["50%"] == (True, pytest.approx(12.0))
    assert levels["80%"][0] is False
    assert levels["forecast"] == (True, pytest.approx(24.0))
    # Too early in the day to forecast: not judged.
    early = planted.evaluator().evaluate([rule], midnight + 2 * HOUR + 30 * 60 * 10**9).samples
    assert one(early, level="forecast").active is False


def synthetic_month(rng: random.Random, days: int, first_weekday: int) -> list[float]:
    base, trend = rng.uniform(50, 200), rng.uniform(-0.01, 0.03)
    weekly = [1.0, 1.05, 1.1, 1.05, 1.0, 0.55, 0.45]
    return [
        base * (1 + trend * t) * weekly[(first_weekday + t) % 7] * (1 + rng.gauss(0, 0.05))
        for t in range(days)
    ]


def test_forecast_mid_month_error_is_small() -> None:
    rng = random.Random(5)
    errors, covered = [], 0
    for _ in range(200):
        days, weekday = rng.choice((28, 30, 31)), rng.randrange(7)
        month = synthetic_month(rng, days, weekday)
        forecast = forecast_period_end(month[:15], days, first_weekday=weekday)
        truth = sum(month)
        errors.append(abs(forecast.total - truth) / truth)
        covered += forecast.low <= truth <= forecast.high
    assert sum(errors) / len(errors) < 0.05
    assert covered / len(errors) > 0.75  # a 90% interval, give or take the model's misfit


def test_forecast_methods_and_runs_out() -> None:
    assert forecast_period_end([], 30).total == 0.0
    rate = forecast_period_end([2.0], 30, last_day_fraction=0.5)
    assert (rate.method, rate.total) == ("rate", pytest.approx(120.0))
    mean = forecast_period_end([3.0, 3.0], 10)
    assert (mean.method, mean.total) == ("mean", pytest.approx(30.0))
    linear = forecast_period_end([1.0, 2.0, 3.0, 4.0], 6)
    assert linear.method == "linear"
    assert linear.total == pytest.approx(21.0)
    assert linear.runs_out_on(10.0) == 3 and linear.runs_out_on(100.0) is None
    assert linear.cumulative == pytest.approx((1.0, 3.0, 6.0, 10.0, 15.0, 21.0))
    with pytest.raises(ValueError):
        forecast_period_end([1.0] * 5, 4)
