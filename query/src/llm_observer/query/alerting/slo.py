"""Error-budget burn rates, the multi-window, multi-burn-rate way of the Google SRE workbook.

The burn rate over a window is the share of bad events in it divided by the share the objective allows
(``1 - objective``): 1 spends the budget exactly over the SLO period, 14.4 spends 2% of a 30-day budget in
an hour. A burn window pair alerts when both its long window (enough budget really spent) and its short
window (still spending now, so the alert resets soon after the burning stops) burn faster than its rate.
"""

from __future__ import annotations

from dataclasses import dataclass

from llm_observer.query.alerting.config import BurnWindow


def burn_rate(bad: int, total: int, objective: float) -> float:
    """``(bad / total) / (1 - objective)``; 0 without events."""
    if total <= 0:
        return 0.0
    return (bad / total) / (1.0 - objective)


@dataclass(frozen=True, slots=True)
class Burn:
    """The verdict of one burn window pair on one group."""

    long_rate: float
    short_rate: float
    active: bool

    @property
    def value(self) -> float:
        """The rate that must exceed the threshold for both windows to: the smaller of the two."""
        return min(self.long_rate, self.short_rate)


def judge(window: BurnWindow, long: tuple[int, int], short: tuple[int, int], objective: float) -> Burn:
    """``long``/``short``: ``(bad, total)`` events over the pair's long and short windows."""
    long_rate = burn_rate(long[0], long[1], objective)
    short_rate = burn_rate(short[0], short[1], objective)
    return Burn(long_rate, short_rate, long_rate > window.burn_rate and short_rate > window.burn_rate)
