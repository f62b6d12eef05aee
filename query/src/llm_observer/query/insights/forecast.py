"""Period-end spend forecasts per organization, project, team, provider or model, with a prediction interval
and the day a budget would run out.

The model is alerting's daily forecaster (``llm_observer.query.alerting.forecast``): ordinary least squares
on a linear trend plus day-of-week effects, its prediction interval the exact OLS interval of the sum of the
days still to come. Here it is fitted on the current period's days *and* ``history_days`` before it, so a
forecast made early in a week or a month still sees whole weeks (the weekly effects need 14 days).

Why not statsmodels (or Prophet, ETS): the fit is a least-squares problem of at most eight coefficients
over a few dozen points, solved exactly in closed form with its interval in a few dozen lines of plain
Python; statsmodels would add scipy, pandas and patsy (about 100 MB) to the query service to compute the
same numbers, and seasonal exponential smoothing needs two full seasons per parameter set to beat it, which
a month of daily spend does not give. The measured error on synthetic series with trend and weekly
seasonality is in the README (``tests/query/insights/test_forecast.py`` prints it).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from llm_observer.query.alerting.forecast import Forecast, forecast_period_end
from llm_observer.storage.clickhouse.cost_reads import FORECAST_DIMENSIONS, CostStore
from llm_observer.storage.clickhouse.queries import InvalidArgument, Tenant

__all__ = [
    "PERIODS",
    "Period",
    "SpendForecast",
    "forecast_spend",
    "forecast_with_history",
    "period_bounds",
]

Period = Literal["month", "week"]
PERIODS: tuple[Period, ...] = ("month", "week")

DAY_NS = 86_400 * 10**9
DEFAULT_HISTORY_DAYS = 28


@dataclass(frozen=True, slots=True)
class SpendForecast:
    """The expected spend of one group over a period.

    JSON shape (``document``): ``group`` (dimension → value, the organization always present), ``period``
    (``month``/``week``), ``period_start``/``period_end``/``as_of`` (RFC 3339), ``spent_usd`` (so far),
    ``forecast_usd`` (expected period total) with ``low_usd``/``high_usd`` (the interval at
    ``confidence``), ``method`` (the model the history allowed: ``weekly``, ``linear``, ``mean``, ``rate``),
    ``budget_usd`` and ``budget_exhausted_on`` (the UTC date by whose end the expected spend reaches the
    budget, null when it stays under), ``daily_usd`` (actual spend of each day so far, the current day
    partial) and ``expected_cumulative_usd`` (per day of the period: actual up to now, then expected).
    """

    group: Mapping[str, str]
    period: Period
    period_start_ns: int
    period_end_ns: int
    as_of_ns: int
    spent_usd: float
    forecast_usd: float
    low_usd: float
    high_usd: float
    confidence: float
    method: str
    budget_usd: float | None
    budget_exhausted_on: dt.date | None
    daily_usd: tuple[float, ...] = field(default=())
    expected_cumulative_usd: tuple[float, ...] = field(default=())


def period_bounds(now_ns: int, period: Period) -> tuple[int, int]:
    """``[start, end)`` in Unix nanoseconds of the UTC calendar month, or the ISO week (Monday first),
    holding ``now_ns``."""
    day = dt.datetime.fromtimestamp(now_ns / 1e9, tz=dt.UTC).date()
    if period == "month":
        first = day.replace(day=1)
        after = (first.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    elif period == "week":
        first = day - dt.timedelta(days=day.weekday())
        after = first + dt.timedelta(days=7)
    else:
        raise InvalidArgument(f"period must be one of {', '.join(PERIODS)}")
    return _ns(first), _ns(after)


def _ns(day: dt.date) -> int:
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp()) * 10**9


def forecast_with_history(
    history: Sequence[float],
    period_days: Sequence[float],
    days_in_period: int,
    *,
    last_day_fraction: float,
    first_weekday: int,
    confidence: float = 0.9,
) -> Forecast:
    """The forecast of a period from the spend of ``history`` (the days just before it, oldest first) and
    of ``period_days`` (its days so far, the last ``last_day_fraction`` elapsed); ``first_weekday`` is the
    weekday (Monday 0) of the period's first day.

    The history's leading days without spend are dropped (the group did not exist yet). The result covers
    the period only: its ``cumulative`` starts at the period's first day.
    """
    history = list(history)
    while history and history[0] <= 0.0:
        history.pop(0)
    h = len(history)
    combined = forecast_period_end(
        history + list(period_days),
        h + days_in_period,
        last_day_fraction=last_day_fraction,
        first_weekday=(first_weekday - h) % 7,
        confidence=confidence,
    )
    before = math.fsum(history)
    cumulative = tuple(c - before for c in combined.cumulative[h:])
    return Forecast(
        spent=combined.spent - before,
        total=combined.total - before,
        low=combined.low - before,
        high=combined.high - before,
        method=combined.method,
        cumulative=cumulative,
    )


def forecast_spend(
    store: CostStore,
    tenant: Tenant,
    now_ns: int,
    *,
    period: Period = "month",
    group_by: Sequence[str] = (),
    budget_usd: float | None = None,
    confidence: float = 0.9,
    history_days: int = DEFAULT_HISTORY_DAYS,
) -> list[SpendForecast]:
    """A forecast per group (the organization, then ``group_by`` among ``FORECAST_DIMENSIONS``) of the
    period holding ``now_ns``, for the groups that spent since ``history_days`` before the period began.

    One query. ``budget_usd`` applies to each group. Blocks: run it in a thread.
    """
    if period not in PERIODS:
        raise InvalidArgument(f"period must be one of {', '.join(PERIODS)}")
    if not 0.5 <= confidence < 1.0:
        raise InvalidArgument("confidence must be between 0.5 and 1 (such as 0.9)")
    if not 0 <= history_days <= 366:
        raise InvalidArgument("history_days must be between 0 and 366")
    if budget_usd is not None and not (math.isfinite(budget_usd) and budget_usd > 0):
        raise InvalidArgument("budget_usd must be a positive number")
    dimensions = [d for d in dict.fromkeys(group_by) if d != "organization"]
    for dimension in dimensions:
        if dimension not in FORECAST_DIMENSIONS:
            raise InvalidArgument(f"group_by must be among {', '.join(FORECAST_DIMENSIONS)}")
    start, end = period_bounds(now_ns, period)
    days_in_period = (end - start) // DAY_NS
    fit_start = start - history_days * DAY_NS
    elapsed = now_ns - start
    today = elapsed // DAY_NS
    fraction = (elapsed % DAY_NS) / DAY_NS
    # At midnight the current day has not begun: the period so far is whole days.
    observed_end = now_ns if fraction > 0 else start + today * DAY_NS
    period_days_seen = today + 1 if fraction > 0 else today
    series = store.spend_series(tenant, dimensions, fit_start, max(observed_end, fit_start + 1), DAY_NS)
    first_weekday = dt.datetime.fromtimestamp(start / 1e9, tz=dt.UTC).weekday()
    out = []
    for item in series:
        values = list(item.values)
        history = values[:history_days]
        history += [0.0] * (history_days - len(history))
        current = values[history_days : history_days + period_days_seen]
        current += [0.0] * (period_days_seen - len(current))
        forecast = forecast_with_history(
            history,
            current,
            days_in_period,
            last_day_fraction=fraction if fraction > 0 else 1.0,
            first_weekday=first_weekday,
            confidence=confidence,
        )
        exhausted = None
        if budget_usd is not None:
            day = forecast.runs_out_on(budget_usd)
            if day is not None:
                exhausted = (
                    dt.datetime.fromtimestamp(start / 1e9, tz=dt.UTC) + dt.timedelta(days=day)
                ).date()
        group = {"organization": item.group[0]}
        group.update(zip(dimensions, item.group[1:], strict=True))
        out.append(
            SpendForecast(
                group=group,
                period=period,
                period_start_ns=start,
                period_end_ns=end,
                as_of_ns=now_ns,
                spent_usd=forecast.spent,
                forecast_usd=forecast.total,
                low_usd=forecast.low,
                high_usd=forecast.high,
                confidence=confidence,
                method=forecast.method,
                budget_usd=budget_usd,
                budget_exhausted_on=exhausted,
                daily_usd=tuple(current),
                expected_cumulative_usd=forecast.cumulative,
            )
        )
    out.sort(key=lambda f: -f.forecast_usd)
    return out
