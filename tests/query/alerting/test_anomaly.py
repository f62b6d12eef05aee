"""Anomaly rules over a real store: a robust baseline catches a latency step, a seasonal baseline lets a
daily load be, warm-up and volume gates hold, a drop to no calls is seen, and the incremental history
gives the same verdicts as reading everything afresh."""

from __future__ import annotations

import math
import random

import pytest

from llm_observer.query.alerting import anomaly
from tests.query.alerting.eval_support import (
    DAY,
    HOUR,
    MINUTE,
    NOW,
    Call,
    Planted,
    by_labels,
    one,
    planted,
    rule_of,
)

__all__ = ["planted"]

WINDOW = 5 * MINUTE


def daily_load(days: int, step_at: int | None = None) -> list[Call]:
    """``days`` days up to ``NOW`` of 5-minute windows whose call count follows the hour of day (10 at
    night to 40 in the afternoon, ±10%) with latencies around 100 ms; from ``step_at`` on, 400 ms."""
    rng = random.Random(11)
    calls = []
    for begin in range(NOW - days * DAY, NOW, WINDOW):
        hour = (begin // HOUR) % 24
        rate = 25 + 15 * math.sin(2 * math.pi * (hour - 9) / 24)
        count = max(1, round(rate * rng.uniform(0.9, 1.1)))
        for i in range(count):
            start = begin + i * (WINDOW // count)
            base = 400.0 if step_at is not None and start >= step_at else 100.0
            calls.append(Call(start_ns=start, duration_ms=base * rng.uniform(0.9, 1.1)))
    return calls


def spec(**extra: object) -> dict[str, object]:
    out: dict[str, object] = {
        "name": "Anomaly",
        "kind": "anomaly",
        "measure": "latency_p95",
        "window": "5m",
        "history": "3d",
        "warmup": "1h",
        "sensitivity": 4,
        "min_requests": 5,
    }
    out.update(extra)
    return out


async def test_anomaly_robust_catches_a_latency_step(planted: Planted) -> None:
    await planted.write(daily_load(1, step_at=NOW - 5 * MINUTE))
    rule = rule_of(spec())
    evaluator = planted.evaluator()
    before = one(evaluator.evaluate([rule], NOW - 5 * MINUTE).samples)
    assert (before.active, before.clear) == (False, True)
    after = one(evaluator.evaluate([rule], NOW).samples)
    assert after.active and not after.clear
    assert after.value == pytest.approx(400, rel=0.12)
    assert float(after.annotations["score"]) > 4
    assert "above its robust baseline" in after.annotations["summary"]
    # A drop would not fire an "up" rule; "both" sees the step too.
    assert one(planted.evaluator().evaluate([rule_of(spec(direction="down"))], NOW).samples).active is False
    assert one(planted.evaluator().evaluate([rule_of(spec(direction="both"))], NOW).samples).active


async def test_anomaly_seasonal_daily_load_does_not_fire(planted: Planted) -> None:
    await planted.write(daily_load(4))
    rules = [
        rule_of(spec(name="Seasonal", measure="request_rate", baseline="seasonal", direction="both")),
        rule_of(spec(name="Latency", measure="latency_p95", direction="both")),
    ]
    evaluator = planted.evaluator()
    fresh = planted.evaluator()
    verdicts = []
    # Every 20 minutes over the last day: the incremental history serves each round.
    for moment in range(NOW - DAY + 20 * MINUTE, NOW + 1, 20 * MINUTE):
        evaluation = evaluator.evaluate(rules, moment)
        assert evaluation.errors == {}
        verdicts += [(s.rule, s.active) for s in evaluation.samples]
        if moment % (6 * HOUR) == 0:
            again = [s for rule in rules for s in fresh.evaluate_rule_at(rule, moment, None)]
            assert [(s.rule, s.value, s.active, s.clear) for s in again] == [
                (s.rule, s.value, s.active, s.clear) for s in evaluation.samples
            ]
    assert len(verdicts) == 2 * 72
    assert [v for v in verdicts if v[1]] == []
    # The same load against a robust baseline spans the whole day's range, so the peak is no anomaly either;
    # but a seasonal baseline is what makes the night's quiet hour look normal at a tight sensitivity.
    tight = rule_of(spec(name="Tight", measure="request_rate", baseline="seasonal", sensitivity=3))
    assert not one(planted.evaluator().evaluate([tight], NOW).samples).active


async def test_anomaly_warmup_and_volume_gates(planted: Planted) -> None:
    await planted.write(daily_load(1, step_at=NOW - 5 * MINUTE))
    # 30 minutes of history before the step: less than the 1 h warm-up.
    young = planted.evaluator().evaluate([rule_of(spec(history="35m"))], NOW)
    sample = one(young.samples)
    assert (sample.active, sample.clear) == (False, True)
    assert "still learning" in sample.annotations["summary"]
    # Fewer calls in the window than min_requests: not judged.
    quiet = one(planted.evaluator().evaluate([rule_of(spec(min_requests=1000))], NOW).samples)
    assert (quiet.active, quiet.clear) == (False, True)


async def test_anomaly_sees_a_group_go_silent(planted: Planted) -> None:
    # gpt-4o stops answering (no calls at all) 5 minutes before the evaluation; "other" carries on.
    calls = [c for c in daily_load(2) if c.start_ns < NOW - 5 * MINUTE]
    calls += [Call(start_ns=c.start_ns, model="other") for c in daily_load(2)]
    await planted.write(calls)
    rule = rule_of(spec(measure="request_count", direction="down", group_by=["model"], baseline="seasonal"))
    samples = planted.evaluator().evaluate([rule], NOW).samples
    silent = one(samples, model="gpt-4o")
    assert silent.value == 0.0 and silent.active
    assert not one(samples, model="other").active
    assert len(by_labels(samples)) == 2


def test_anomaly_baseline_math() -> None:
    base = anomaly.learn([10.0, 11.0, 9.0, 10.0, 30.0], "latency_p95", 0.05)
    assert base is not None
    assert base.median == 10.0
    assert base.spread == pytest.approx(1.4826)
    assert anomaly.score(20.0, base, "up") == pytest.approx(10 / 1.4826)
    assert anomaly.score(20.0, base, "down") < 0
    # A flat history: the relative floor, then the unit's absolute floor.
    assert anomaly.learn([100.0] * 5, "latency_p95", 0.05).spread == pytest.approx(5.0)  # type: ignore[union-attr]
    assert anomaly.learn([0.0] * 5, "error_rate", 0.05).spread == pytest.approx(0.01)  # type: ignore[union-attr]
    assert anomaly.season(0, HOUR, True) == (0, 3)  # 1970-01-01 00:30 UTC, a Thursday
    assert anomaly.warmup_windows(3600, 300) == 12


def test_anomaly_history_reads_only_what_is_new() -> None:
    history = anomaly.WindowHistory(WINDOW)
    assert history.missing(0, 10 * WINDOW) == (0, 10 * WINDOW)
    history.add([], 0, 10 * WINDOW)
    # The next round: only the window completed since; the oldest one falls out of the history.
    assert history.missing(WINDOW, 11 * WINDOW) == (10 * WINDOW, 11 * WINDOW)
    assert history.start_ns == WINDOW
    history.add([], 10 * WINDOW, 11 * WINDOW)
    assert history.missing(WINDOW, 11 * WINDOW) is None
    # Asked to reach further back (a rule with a longer history), or past everything it holds: read whole.
    assert history.missing(0, 11 * WINDOW) == (0, 11 * WINDOW)
    history.add([], 0, 11 * WINDOW)
    assert history.missing(20 * WINDOW, 30 * WINDOW) == (20 * WINDOW, 30 * WINDOW)
