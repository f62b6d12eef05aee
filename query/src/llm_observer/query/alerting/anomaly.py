"""Learned baselines for anomaly rules: robust (median and MAD of the previous windows) and seasonal (the
windows at the same hour of day, and the same day of week once the history covers three weeks).

History is kept per data shape as a grid of windows aligned to multiples of the window length since the
epoch (``WindowHistory``): a grid window's statistics do not change once it is past, so each evaluation
only asks ClickHouse for the windows completed since the previous one. The window being judged (the last
``window`` before the evaluation time) is read apart, and the grid windows that overlap it are left out of
the baseline so an incident's first minutes do not teach the baseline that the incident is normal.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from statistics import median

from llm_observer.query.alerting.config import Measure
from llm_observer.query.alerting.measures import ADDITIVE, UNITS, value_of
from llm_observer.storage.clickhouse.alert_reads import CallWindow

MAD_SCALE = 1.4826  # MAD → standard deviation for normal data
WEEKLY_HISTORY_S = 21 * 86400.0  # the history from which seasonal baselines also match the day of week
CLEAR_FRACTION = 0.75  # a firing anomaly clears once its score is below sensitivity times this

# The smallest spread a baseline may have, per unit: below it a difference is not worth an alert whatever
# the history (a flat 0% error rate must not make one failed call infinitely anomalous).
_ABSOLUTE_FLOOR = {
    "ratio": 0.01,
    "ms": 1.0,
    "count": 1.0,
    "per_second": 0.01,
    "tokens": 1.0,
    "usd": 0.001,
    "usd_per_hour": 0.01,
}

GroupKey = tuple[str, tuple[str, ...]]  # (organization, group values)


@dataclass(frozen=True, slots=True)
class Baseline:
    """What is normal: ``median`` and ``spread`` (scaled MAD, with its floors) learned from ``windows``
    windows."""

    median: float
    spread: float
    windows: int


def learn(values: Sequence[float], measure: Measure, min_spread: float) -> Baseline | None:
    """The baseline of ``values``; None without any."""
    if not values:
        return None
    middle = median(values)
    mad = median(abs(v - middle) for v in values)
    floor = max(min_spread * abs(middle), _ABSOLUTE_FLOOR.get(UNITS[measure], 1e-9))
    return Baseline(middle, max(MAD_SCALE * mad, floor), len(values))


def score(value: float, baseline: Baseline, direction: str) -> float:
    """How far ``value`` departs from ``baseline`` in ``direction`` (``up``, ``down``, ``both``), in
    spreads; negative when it departs the other way."""
    z = (value - baseline.median) / baseline.spread
    if direction == "down":
        return -z
    if direction == "both":
        return abs(z)
    return z


def season(start_ns: int, window_ns: int, weekly: bool) -> tuple[int, int]:
    """``(hour of day, day of week or -1)`` (UTC) of a window's middle."""
    middle_s = (start_ns + window_ns // 2) // 10**9
    hour = middle_s // 3600 % 24
    # 1970-01-01 was a Thursday (weekday 3, Monday being 0).
    return hour, (middle_s // 86400 + 3) % 7 if weekly else -1


@dataclass
class WindowHistory:
    """Grid windows of one data shape (filters, group_by, window length) over ``[start_ns, end_ns)``."""

    window_ns: int
    quantiles: bool = False  # read with latency percentiles
    ttft: bool = False  # read with time to first chunk
    start_ns: int = 0
    end_ns: int = 0
    windows: dict[int, dict[GroupKey, CallWindow]] = field(default_factory=dict)
    first_seen: dict[GroupKey, int] = field(default_factory=dict)
    version: int = 0  # bumped on every change, so learned baselines know when to be relearned

    def missing(self, start_ns: int, end_ns: int) -> tuple[int, int] | None:
        """The range to read so that the history covers ``[start_ns, end_ns)``; None when it does. A history
        asked to reach further back than it does, or whose windows are all too old, is read again whole."""
        if self.start_ns <= start_ns < self.end_ns:
            self._trim(start_ns)
            return None if end_ns <= self.end_ns else (self.end_ns, end_ns)
        self.windows.clear()
        self.first_seen.clear()
        self.start_ns = self.end_ns = start_ns
        return start_ns, end_ns

    def add(self, rows: Iterable[CallWindow], start_ns: int, end_ns: int) -> None:
        """Record the windows read for ``[start_ns, end_ns)`` (which must follow the recorded range)."""
        for row in rows:
            key = (row.organization_id, row.group)
            self.windows.setdefault(row.start_ns, {})[key] = row
            seen = self.first_seen.get(key)
            if seen is None or row.start_ns < seen:
                self.first_seen[key] = row.start_ns
        self.end_ns = max(self.end_ns, end_ns)
        self.version += 1

    def _trim(self, start_ns: int) -> None:
        if start_ns <= self.start_ns:
            return
        for begin in [b for b in self.windows if b < start_ns]:
            del self.windows[begin]
        self.start_ns = start_ns
        self.version += 1

    def groups(self) -> set[GroupKey]:
        return set(self.first_seen)

    def values(
        self,
        key: GroupKey,
        measure: Measure,
        start_ns: int,
        end_ns: int,
        *,
        at: tuple[int, int] | None,
        min_requests: int,
    ) -> list[float]:
        """The measure in each grid window of ``[start_ns, end_ns)`` that has a value for group ``key``
        (``at``: only the windows of that season). Additive measures count a window without calls as 0 once
        the group has been seen; the others skip windows with fewer than ``min_requests`` calls."""
        window_s = self.window_ns / 1e9
        first = self.first_seen.get(key)
        if first is None:
            return []
        out = []
        additive = measure in ADDITIVE
        begin = grid_ceil(max(start_ns, first) if additive else start_ns, self.window_ns)
        for grid in range(begin, end_ns, self.window_ns):
            if at is not None and season(grid, self.window_ns, at[1] >= 0) != at:
                continue
            window = self.windows.get(grid, {}).get(key)
            if window is None and not additive:
                continue
            if window is not None and not additive and window.request_count < max(1, min_requests):
                continue
            value = value_of(measure, window, window_s)
            if value is not None and math.isfinite(value):
                out.append(value)
        return out


def grid_floor(time_ns: int, window_ns: int) -> int:
    return time_ns - time_ns % window_ns


def grid_ceil(time_ns: int, window_ns: int) -> int:
    return -(-time_ns // window_ns) * window_ns


def warmup_windows(warmup_s: float, window_s: float) -> int:
    """Baseline windows with data needed before a rule may fire."""
    return max(1, math.ceil(warmup_s / window_s - 1e-9))
