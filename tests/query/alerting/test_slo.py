"""SLO rules over a real store: the multi-window, multi-burn-rate scheme on success and latency SLIs."""

from __future__ import annotations

import pytest

from llm_observer.query.alerting.config import BurnWindow
from llm_observer.query.alerting.slo import burn_rate, judge
from tests.query.alerting.eval_support import HOUR, NOW, Call, Planted, S, by_labels, one, planted, rule_of

__all__ = ["planted"]

PER_HOUR = 120


def hours(first: int, last: int, service: str, bad_share: float, slow: bool = False) -> list[Call]:
    """``PER_HOUR`` calls an hour from ``first`` to ``last`` hours before ``NOW``, ``bad_share`` of them
    failing (or, with ``slow``, taking 900 ms instead of 100 ms), spread evenly."""
    calls = []
    for h in range(first, last, -1):
        for i in range(PER_HOUR):
            bad = int((i + 1) * bad_share) > int(i * bad_share)
            calls.append(
                Call(
                    start_ns=NOW - h * HOUR + i * (HOUR // PER_HOUR),
                    service=service,
                    error=bad and not slow,
                    duration_ms=900.0 if bad and slow else 100.0,
                )
            )
    return calls


async def test_slo_burn_windows_on_success(planted: Planted) -> None:
    calls = hours(72, 1, "chatbot", 0.005) + hours(1, 0, "chatbot", 0.2)  # fine for 3 days, then 20% errors
    calls += hours(72, 0, "batch", 0.02)  # a slow leak: 2% errors for 3 days
    await planted.write(calls)
    rule = rule_of({"name": "Availability", "kind": "slo", "objective": 0.99, "labels": {"team": "ml"}})
    evaluation = planted.evaluator().evaluate([rule], NOW)
    assert evaluation.errors == {}
    samples = evaluation.samples
    assert len(samples) == 6  # three burn window pairs for each of two services
    fast = one(samples, service="chatbot", long_window="1h")
    assert fast.labels == {
        "alertname": "Availability",
        "organization_id": "org-a",
        "service": "chatbot",
        "team": "ml",
        "severity": "page",
        "long_window": "1h",
        "short_window": "5m",
    }
    assert fast.active and fast.value == pytest.approx(20.0, rel=0.1)
    assert "burning" in fast.annotations["summary"]
    assert (fast.window_start_ns, fast.window_end_ns) == (NOW - HOUR, NOW)
    assert not one(samples, service="chatbot", long_window="6h").active
    assert not one(samples, service="chatbot", long_window="3d").active
    # The leak spends the budget only over days: a ticket, not a page.
    leak = {s.labels["long_window"]: s.active for s in by_labels(samples, service="batch")}
    assert leak == {"1h": False, "6h": False, "3d": True}
    assert one(samples, service="batch", long_window="3d").labels["severity"] == "ticket"


async def test_slo_burn_windows_on_latency(planted: Planted) -> None:
    await planted.write(hours(8, 1, "chatbot", 0.01, slow=True) + hours(1, 0, "chatbot", 0.8, slow=True))
    rule = rule_of(
        {
            "name": "Fast",
            "kind": "slo",
            "sli": "latency",
            "latency_threshold_ms": 500,
            "objective": 0.95,
            "windows": [
                {"long": "1h", "short": "5m", "burn_rate": 14.4},
                {"long": "6h", "short": "30m", "burn_rate": 6},
            ],
        }
    )
    errors_rule = rule_of(
        {
            "name": "Ok",
            "kind": "slo",
            "objective": 0.95,
            "windows": [{"long": "1h", "short": "5m", "burn_rate": 1}],
        }
    )
    evaluator = planted.evaluator()
    # Both rules read one shape: one query for the windows up to an hour, one for the 6-hour window's grid
    # (5-minute windows, kept: the next round reads none of them again).
    evaluation = evaluator.evaluate([rule, errors_rule], NOW)
    assert evaluation.queries == 2
    assert evaluator.evaluate([rule, errors_rule], NOW + 30 * S).queries == 1
    fast = one(evaluation.samples, alertname="Fast", long_window="1h")
    assert fast.active and fast.value == pytest.approx(16.0, rel=0.05)
    assert not one(evaluation.samples, alertname="Fast", long_window="6h").active
    # Slow calls are no errors.
    assert not one(evaluation.samples, alertname="Ok").active


async def test_slo_min_requests(planted: Planted) -> None:
    await planted.write(hours(1, 0, "tiny", 1.0)[:5])
    rule = rule_of({"name": "A", "kind": "slo", "objective": 0.99, "min_requests": 10})
    assert not any(s.active for s in planted.evaluator().evaluate([rule], NOW).samples)


def test_slo_burn_math() -> None:
    assert burn_rate(2, 100, 0.99) == pytest.approx(2.0)
    assert burn_rate(0, 0, 0.99) == 0.0
    pair = BurnWindow(long=3600, short=300, burn_rate=14.4)
    assert judge(pair, (20, 100), (20, 100), 0.99).active
    # The short window has recovered: no alert, however bad the hour was.
    verdict = judge(pair, (20, 100), (1, 100), 0.99)
    assert not verdict.active and verdict.value == pytest.approx(1.0)
