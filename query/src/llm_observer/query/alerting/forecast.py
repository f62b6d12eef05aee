"""Period-end spend forecast from the daily spend of the period so far, with a prediction interval and the
day the budget runs out.

A small exact method, chosen by how much history there is (``m`` complete days):

* ``m >= 14``: ordinary least squares on a linear trend plus day-of-week effects (each weekday seen at least
  twice), so a quiet weekend is neither read as a falling trend nor extrapolated as one;
* ``m >= 3``: least squares on a linear trend;
* ``m >= 1``: the mean day;
* no complete day yet: the rate of the day so far.

The interval is the OLS prediction interval of the *sum* of the remaining days (residual variance of each
day plus the uncertainty of the fitted coefficients), at ``confidence``; with too few days to estimate the
residual variance it is ±25% of the forecast remainder, and says so (``method``).
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from statistics import NormalDist

__all__ = ["DailyModel", "Forecast", "fit_daily", "forecast_period_end"]


@dataclass(frozen=True, slots=True)
class Forecast:
    """The expected spend of a period.

    ``cumulative[d]`` is the spend up to the end of day ``d`` (0-based): actual for the days past, expected
    from the current day on. ``total`` is its last value; ``low``/``high`` bound it at the interval's
    confidence; ``spent`` is the actual spend so far.
    """

    spent: float
    total: float
    low: float
    high: float
    method: str  # "weekly", "linear", "mean", "rate" or "none"
    cumulative: tuple[float, ...]

    def runs_out_on(self, budget: float) -> int | None:
        """The first day (0-based index in the period) by whose end the expected spend reaches ``budget``;
        None when the forecast stays under it."""
        for day, spend in enumerate(self.cumulative):
            if spend >= budget:
                return day
        return None


@dataclass(frozen=True, slots=True)
class _Tail:
    """The whole days from ``first`` to the period's end under a model: their expected spend, each and
    summed, and the sum of their feature rows (for the interval)."""

    expected: tuple[float, ...]
    total: float
    features: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class DailyModel:
    """A model fitted to the complete days of a period (``fit_daily``): reusable for every forecast made
    while no further day completes, so a thousand budgets re-forecast every 30 s cost a thousand fits a
    day, not a thousand a round (and their remaining whole days are summed once, ``tail``)."""

    method: str  # "weekly", "linear" or "mean"
    days: int  # the complete days it was fitted on
    beta: tuple[float, ...]
    inverse: tuple[tuple[float, ...], ...]  # (X'X)^-1, for the coefficients' uncertainty
    sigma2: float | None  # residual variance; None with too few days to estimate it
    first_weekday: int
    _tails: dict[tuple[int, int], _Tail] = field(default_factory=dict, compare=False, repr=False)

    def features(self, t: int) -> list[float]:
        if self.method == "weekly":
            weekday = (self.first_weekday + t) % 7
            return [1.0, float(t)] + [1.0 if weekday == d else 0.0 for d in range(1, 7)]
        if self.method == "linear":
            return [1.0, float(t)]
        return [1.0]

    def predict(self, t: int) -> float:
        """The expected spend of day ``t`` (never below 0)."""
        return max(0.0, _dot(self.beta, self.features(t)))

    def tail(self, first: int, days_in_period: int) -> _Tail:
        key = (first, days_in_period)
        found = self._tails.get(key)
        if found is None:
            rows = [self.features(t) for t in range(first, days_in_period)]
            expected = tuple(max(0.0, _dot(self.beta, row)) for row in rows)
            sums = tuple(math.fsum(row[j] for row in rows) for j in range(len(self.beta)))
            found = _Tail(expected, math.fsum(expected), sums)
            self._tails[key] = found
        return found


def fit_daily(complete: Sequence[float], *, first_weekday: int = 0, weekly: bool = True) -> DailyModel | None:
    """The least-squares model of ``complete`` (the spend of each complete day from the period's first);
    None without a complete day."""
    m = len(complete)
    if m == 0:
        return None
    method = "weekly" if weekly and m >= 14 else "linear" if m >= 3 else "mean"
    model = DailyModel(method, m, (), (), None, first_weekday)
    values = [max(0.0, float(v)) for v in complete]
    x = [model.features(t) for t in range(m)]
    inverse = _inverse(_gram(x))
    beta = _solve(x, values, inverse)
    p = len(beta)
    sigma2 = None
    if m > p:
        sigma2 = math.fsum((y - _dot(beta, row)) ** 2 for y, row in zip(values, x, strict=True)) / (m - p)
    return DailyModel(method, m, tuple(beta), tuple(tuple(row) for row in inverse), sigma2, first_weekday)


def forecast_period_end(
    daily: Sequence[float],
    days_in_period: int,
    *,
    last_day_fraction: float = 1.0,
    first_weekday: int = 0,
    confidence: float = 0.9,
    weekly: bool = True,
    model: DailyModel | None = None,
) -> Forecast:
    """Forecast the period's total spend from ``daily`` (spend per day from the period's first day; the last
    entry is the current day, ``last_day_fraction`` of which has elapsed).

    ``first_weekday``: the weekday of the period's first day (Monday 0), for the weekly effects.
    ``days_in_period`` may also count other buckets (hours of a day: then ``weekly=False``, as day-of-week
    effects mean nothing there). ``model``: the ``fit_daily`` of the complete days of ``daily``, when the
    caller keeps one (fitted here otherwise).
    """
    if days_in_period < 1:
        raise ValueError("days_in_period must be at least 1")
    if len(daily) > days_in_period:
        raise ValueError("more daily values than days in the period")
    if not 0.0 < last_day_fraction <= 1.0:
        raise ValueError("last_day_fraction must be in (0, 1]")
    values = [max(0.0, float(v)) for v in daily]
    if not values:
        return Forecast(0.0, 0.0, 0.0, 0.0, "none", (0.0,) * days_in_period)
    partial = last_day_fraction < 1.0
    complete = values[:-1] if partial else values
    if model is None:
        model = fit_daily(complete, first_weekday=first_weekday, weekly=weekly)
    elif model.days != len(complete):
        raise ValueError("the model was fitted on other days")
    if model is None:
        rate = values[-1] / last_day_fraction
        remaining = [rate * (1.0 - last_day_fraction)] + [rate] * (days_in_period - len(values))
        extra = math.fsum(remaining)
        return _result(values, remaining, days_in_period, len(values) - 1, extra * 0.75, extra * 1.25, "rate")

    # The rest of the current day (its unelapsed share), then the whole days to the period's end.
    tail = model.tail(len(values), days_in_period)
    share = 1.0 - last_day_fraction if partial else 0.0
    now = model.features(len(values) - 1) if partial else [0.0] * len(model.beta)
    current = max(0.0, _dot(model.beta, now)) * share
    expected = ([current] if partial else []) + list(tail.expected)
    extra = current + tail.total
    if model.sigma2 is not None:
        s = [f + share * x for f, x in zip(tail.features, now, strict=True)]
        variance = model.sigma2 * (share * share + len(tail.expected) + _quad(model.inverse, s))
        half = _z(confidence) * math.sqrt(max(0.0, variance))
        low, high = max(0.0, extra - half), extra + half
    else:
        low, high = extra * 0.75, extra * 1.25
    first = len(values) - 1 if partial else len(values)
    return _result(values, expected, days_in_period, first, low, high, model.method)


@functools.lru_cache(maxsize=64)
def _z(confidence: float) -> float:
    return NormalDist().inv_cdf(0.5 + confidence / 2.0)


def _result(
    values: list[float],
    expected: list[float],
    days: int,
    first: int,
    low: float,
    high: float,
    method: str,
) -> Forecast:
    """``values``: actual spend per day so far; ``expected``: the amounts still to come, for the days from
    ``first`` on (the current day's rest first when it is partial); ``low``/``high`` bound their sum."""
    per_day = [0.0] * days
    for day, value in enumerate(values):
        per_day[day] += value
    for offset, value in enumerate(expected):
        per_day[first + offset] += value
    cumulative = list(itertools.accumulate(per_day))
    spent = math.fsum(values)
    extra = math.fsum(expected)
    return Forecast(spent, spent + extra, spent + low, spent + high, method, tuple(cumulative))


def _dot(a: Sequence[float], b: Sequence[float]) -> float:
    return math.fsum(x * y for x, y in zip(a, b, strict=True))


def _dot_column(x: Sequence[Sequence[float]], y: Sequence[float], j: int) -> float:
    return math.fsum(row[j] * v for row, v in zip(x, y, strict=True))


def _gram(x: Sequence[Sequence[float]]) -> list[list[float]]:
    p = len(x[0])
    return [[math.fsum(row[i] * row[j] for row in x) for j in range(p)] for i in range(p)]


def _solve(
    x: Sequence[Sequence[float]], y: Sequence[float], inverse: Sequence[Sequence[float]]
) -> list[float]:
    xty = [_dot_column(x, y, j) for j in range(len(inverse))]
    return [_dot(row, xty) for row in inverse]


def _quad(matrix: Sequence[Sequence[float]], v: Sequence[float]) -> float:
    return math.fsum(v[i] * matrix[i][j] * v[j] for i in range(len(v)) for j in range(len(v)))


def _inverse(a: Sequence[Sequence[float]]) -> list[list[float]]:
    """Gauss-Jordan with partial pivoting; a singular matrix (a weekday never seen) gets a tiny ridge."""
    n = len(a)
    m = [list(row) + [1.0 if i == j else 0.0 for j in range(n)] for i, row in enumerate(a)]
    scale = max((abs(a[i][i]) for i in range(n)), default=1.0) or 1.0
    for col in range(n):
        pivot = max(range(col, n), key=lambda r: abs(m[r][col]))
        if abs(m[pivot][col]) < 1e-12 * scale:
            m[pivot][col] += 1e-9 * scale
        m[col], m[pivot] = m[pivot], m[col]
        lead = m[col][col]
        m[col] = [v / lead for v in m[col]]
        for r in range(n):
            if r != col and m[r][col] != 0.0:
                factor = m[r][col]
                m[r] = [v - factor * w for v, w in zip(m[r], m[col], strict=True)]
    return [row[n:] for row in m]
