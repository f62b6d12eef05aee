"""Testing a rule against past data: "would have fired at …".

The rule is evaluated at every step over a past range (``Evaluator.evaluate_rule_at``) and its alerts are
moved by the same ``transitions`` the engine uses, so ``for:``, hysteresis and ``keep_firing_for`` count
exactly as they would have live. Each firing episode is one hit, with when it fired, when it resolved (None:
still firing at the end of the range) and the most extreme value seen while it fired.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Protocol

from llm_observer.query.alerting.config import Rule
from llm_observer.query.alerting.model import Alert, BacktestHit, Sample, fingerprint
from llm_observer.query.alerting.transitions import advance, vanished

MAX_STEPS = 10_000
"""More evaluations than this in one backtest is a mistake (a step far too small for the range)."""


class PointEvaluator(Protocol):
    """What a backtest needs of ``evaluate.Evaluator``."""

    def evaluate_rule_at(
        self, rule: Rule, now_ns: int, organization_id: str | None
    ) -> tuple[Sample, ...]: ...


def backtest(
    evaluator: PointEvaluator,
    rule: Rule,
    organization_id: str | None,
    start_ns: int,
    end_ns: int,
    step_ns: int,
) -> list[BacktestHit]:
    """The firing episodes of ``rule`` evaluated at ``start_ns``, ``start_ns + step_ns``, … ``end_ns``,
    in the order they fired. ``ValueError`` for an empty range, a step ≤ 0 or more than ``MAX_STEPS``
    steps."""
    if step_ns <= 0:
        raise ValueError("the step must be positive")
    if end_ns < start_ns:
        raise ValueError("the end of the range is before its start")
    if (end_ns - start_ns) // step_ns + 1 > MAX_STEPS:
        raise ValueError(f"more than {MAX_STEPS} evaluations: use a larger step or a shorter range")
    lower_is_worse = _lower_is_worse(rule)
    alerts: dict[str, Alert] = {}
    hits: list[BacktestHit] = []
    open_hits: dict[str, int] = {}  # fingerprint -> index in ``hits`` of its episode still firing

    def track(fp: str, after: Alert | None, now_ns: int) -> None:
        if after is None:
            alerts.pop(fp, None)
            return
        alerts[fp] = after
        index = open_hits.get(fp)
        if after.state == "firing":
            if index is None:
                open_hits[fp] = len(hits)
                hits.append(BacktestHit(dict(after.labels), after.fired_at_ns or now_ns, None, after.value))
            else:
                peak = hits[index].peak_value
                peak = min(peak, after.value) if lower_is_worse else max(peak, after.value)
                hits[index] = replace(hits[index], peak_value=peak)
        elif after.state == "resolved" and index is not None:
            del open_hits[fp]
            hits[index] = replace(hits[index], resolved_at_ns=after.resolved_at_ns)

    now = start_ns
    while now <= end_ns:
        seen: set[str] = set()
        for sample in evaluator.evaluate_rule_at(rule, now, organization_id):
            fp = fingerprint(sample.labels)
            if fp in seen:
                continue
            seen.add(fp)
            track(fp, advance(alerts.get(fp), sample, rule, now), now)
        for fp, alert in list(alerts.items()):
            if fp not in seen and alert.state != "resolved":
                track(fp, vanished(alert, rule, now), now)
        now += step_ns
    return hits


def _lower_is_worse(rule: Rule) -> bool:
    if rule.kind == "threshold":
        return rule.op in ("<", "<=")
    if rule.kind == "anomaly":
        return rule.direction == "down"
    return False
