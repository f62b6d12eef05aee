"""How one alert moves between states: pending → firing → resolved, as Prometheus moves them.

Pure functions of the alert as it was, the round's ``Sample`` (or its absence) and the rule, so that the
engine, the backtest and the tests share one definition:

* the condition starts holding (``sample.active``): a new alert, *pending* from now — or *firing* at once
  when the rule has no ``for:``;
* it holds for ``for:``: *firing*;
* it is clear past the hysteresis band (``sample.clear``) and has been for ``keep_firing_for``: *resolved*;
  a pending alert whose condition clears is forgotten (it never fired, nobody was told);
* a sample neither active nor clear (inside the band) leaves the alert as it is;
* a resolved alert whose condition returns starts a new pending episode under the same fingerprint.

A group that yields no sample at all this round (``vanished``) is treated as clear: no data means nothing is
wrong now, as Prometheus resolves a series that disappears.
"""

from __future__ import annotations

from dataclasses import replace

from llm_observer.query.alerting.config import Rule
from llm_observer.query.alerting.model import ORGANIZATION, Alert, Sample, fingerprint


def advance(alert: Alert | None, sample: Sample, rule: Rule, now_ns: int) -> Alert | None:
    """The alert after this round's ``sample`` of its group; None when there is nothing to track (the
    condition does not hold and no alert was pending or firing). ``alert`` is not modified: a changed alert
    is a new value."""
    for_ns = _ns(rule.for_)
    if alert is None or alert.state == "resolved":
        if not sample.active:
            return alert
        fired = for_ns == 0
        return Alert(
            fingerprint=fingerprint(sample.labels),
            rule=sample.rule,
            organization_id=sample.labels.get(ORGANIZATION, ""),
            labels=dict(sample.labels),
            annotations=dict(sample.annotations),
            state="firing" if fired else "pending",
            value=sample.value,
            active_since_ns=now_ns,
            fired_at_ns=now_ns if fired else None,
            last_evaluated_ns=now_ns,
            last_active_ns=now_ns,
        )
    seen = replace(
        alert,
        labels=dict(sample.labels),
        # The annotations describe the condition while it holds ("error_rate 7.1% > 5%"); once it no longer
        # does, the alert keeps the last such description, so a resolve notification does not read as a
        # contradiction ("33% > 50%").
        annotations=dict(sample.annotations) if sample.active else alert.annotations,
        value=sample.value,
        last_evaluated_ns=now_ns,
    )
    if sample.active:
        seen.last_active_ns = now_ns
        if seen.state == "pending" and now_ns - seen.active_since_ns >= for_ns:
            seen.state = "firing"
            seen.fired_at_ns = now_ns
        return seen
    if not sample.clear:
        return seen  # inside the hysteresis band: no change of state
    return _clear(seen, rule, now_ns)


def vanished(alert: Alert, rule: Rule | None, now_ns: int) -> Alert | None:
    """The alert of a group that yielded no sample this round (or whose rule was removed: ``rule`` None):
    cleared as if its sample were clear. None when the alert was only pending."""
    if alert.state == "resolved":
        return alert
    return _clear(replace(alert, last_evaluated_ns=now_ns), rule, now_ns)


def _clear(alert: Alert, rule: Rule | None, now_ns: int) -> Alert | None:
    if alert.state == "pending":
        return None
    keep_ns = _ns(rule.keep_firing_for) if rule is not None else 0
    if now_ns - alert.last_active_ns < keep_ns:
        return alert
    alert.state = "resolved"
    alert.resolved_at_ns = now_ns
    return alert


def _ns(seconds: float) -> int:
    return round(seconds * 1e9)
