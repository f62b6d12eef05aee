"""pending → firing → resolved, ``for:``, ``keep_firing_for``, hysteresis and vanished groups, as a table of
rounds: each row is one evaluation and the state the alert must be in after it."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from pydantic import TypeAdapter

from llm_observer.query.alerting.config import Rule
from llm_observer.query.alerting.model import Alert, Sample, fingerprint
from llm_observer.query.alerting.transitions import advance, vanished

S = 10**9
LABELS = {"alertname": "Slow", "organization_id": "org-a", "provider": "openai"}

# What a round's sample says: A active, C clear, B inside the hysteresis band (neither), - no sample.
ACTIVE, CLEAR, BAND, NONE = "A", "C", "B", "-"


def rule(**extra: object) -> Rule:
    spec = {"name": "Slow", "kind": "threshold", "measure": "latency_p95", "threshold": 1000.0, **extra}
    return TypeAdapter(Rule).validate_python(spec)


def sample(verdict: str, value: float) -> Sample:
    return Sample(
        rule="Slow",
        labels=dict(LABELS),
        value=value,
        active=verdict == ACTIVE,
        clear=verdict == CLEAR,
        annotations={"summary": f"p95 {value}"},
    )


def run(r: Rule, verdicts: Sequence[str], step_s: int = 60) -> list[Alert | None]:
    """Evaluate one round per verdict, ``step_s`` apart; the alert after each round."""
    alert: Alert | None = None
    out: list[Alert | None] = []
    for index, verdict in enumerate(verdicts):
        now = (1000 + index * step_s) * S
        if verdict == NONE:
            alert = vanished(alert, r, now) if alert is not None else None
        else:
            alert = advance(alert, sample(verdict, 100.0 + index), r, now)
        out.append(alert)
    return out


def states(alerts: Sequence[Alert | None]) -> list[str]:
    return [a.state if a is not None else "none" for a in alerts]


@pytest.mark.parametrize(
    ("settings", "verdicts", "expected"),
    [
        # No ``for:``: fires at the first active round, resolves at the first clear one.
        ({}, "CAAC", ["none", "firing", "firing", "resolved"]),
        # ``for: 2m``: pending while the condition held less than 2 minutes (rounds are 1 minute apart).
        ({"for": "2m"}, "AAAAC", ["pending", "pending", "firing", "firing", "resolved"]),
        # A pending alert whose condition clears is forgotten: it never fired.
        ({"for": "2m"}, "AACAAA", ["pending", "pending", "none", "pending", "pending", "firing"]),
        # Hysteresis: inside the band a firing alert stays firing, a pending one stays pending.
        ({}, "ABBBC", ["firing", "firing", "firing", "firing", "resolved"]),
        ({"for": "2m"}, "ABAC", ["pending", "pending", "firing", "resolved"]),
        # keep_firing_for: the condition must stay clear that long before the alert resolves.
        ({"keep_firing_for": "2m"}, "ACCCC", ["firing", "firing", "resolved", "resolved", "resolved"]),
        ({"keep_firing_for": "2m"}, "ACACC", ["firing", "firing", "firing", "firing", "resolved"]),
        # A resolved alert whose condition returns starts a new pending episode.
        ({"for": "1m"}, "AACAA", ["pending", "firing", "resolved", "pending", "firing"]),
        # No sample: a firing alert resolves (no data is nothing wrong now), a pending one is forgotten.
        ({}, "AA-", ["firing", "firing", "resolved"]),
        ({"for": "5m"}, "AA-", ["pending", "pending", "none"]),
        ({"keep_firing_for": "2m"}, "A---", ["firing", "firing", "resolved", "resolved"]),
        # Never active: nothing to track, whatever the other verdicts.
        ({}, "CB-C", ["none", "none", "none", "none"]),
    ],
)
def test_transitions_table(settings: dict[str, object], verdicts: str, expected: list[str]) -> None:
    assert states(run(rule(**settings), verdicts)) == expected


def test_transitions_times_and_values() -> None:
    alerts = run(rule(**{"for": "1m"}), "AABC")
    pending, firing, band, resolved = alerts
    assert pending is not None and firing is not None and band is not None and resolved is not None
    assert pending.fingerprint == fingerprint(LABELS) == resolved.fingerprint
    assert pending.organization_id == "org-a" and pending.rule == "Slow"
    assert pending.active_since_ns == 1000 * S and pending.fired_at_ns is None
    assert firing.fired_at_ns == 1060 * S and firing.active_since_ns == 1000 * S
    # The band round updates the value the alert shows, not its state or its last active time; the
    # annotations keep describing the condition as it last held (a resolve must not read "33% > 50%").
    assert band.value == 102.0 and band.annotations == {"summary": "p95 101.0"}
    assert band.last_active_ns == 1060 * S and band.last_evaluated_ns == 1120 * S
    assert resolved.resolved_at_ns == 1180 * S and resolved.fired_at_ns == 1060 * S
    assert resolved.value == 103.0 and resolved.annotations == {"summary": "p95 101.0"}


def test_transitions_do_not_modify_their_input() -> None:
    r = rule()
    firing = advance(None, sample(ACTIVE, 2000.0), r, 1000 * S)
    assert firing is not None
    snapshot = (firing.state, firing.value, firing.last_evaluated_ns)
    after = advance(firing, sample(CLEAR, 10.0), r, 1060 * S)
    assert after is not None and after.state == "resolved"
    assert (firing.state, firing.value, firing.last_evaluated_ns) == snapshot


def test_transitions_new_episode_drops_the_incident() -> None:
    r = rule()
    firing = advance(None, sample(ACTIVE, 2000.0), r, 1000 * S)
    assert firing is not None
    firing.incident_id = "inc-1"
    resolved = advance(firing, sample(CLEAR, 10.0), r, 1060 * S)
    again = advance(resolved, sample(ACTIVE, 3000.0), r, 1120 * S)
    assert again is not None and again.state == "firing"
    assert again.incident_id is None and again.fired_at_ns == 1120 * S and again.resolved_at_ns is None


def test_transitions_removed_rule_resolves_at_once() -> None:
    firing = advance(None, sample(ACTIVE, 2000.0), rule(keep_firing_for="1h"), 1000 * S)
    assert firing is not None
    gone = vanished(firing, None, 1060 * S)
    assert gone is not None and gone.state == "resolved" and gone.resolved_at_ns == 1060 * S
