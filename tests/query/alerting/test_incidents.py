"""Correlation: alerts firing close in time that share a dimension form one incident with a root-cause hint;
other organizations, other values and alerts far apart in time stay apart."""

from __future__ import annotations

import calendar
import time
from pathlib import Path

from pydantic import TypeAdapter

from llm_observer.kernel.batch import SpanBatch
from llm_observer.query.alerting.config import CorrelationConfig, Rule
from llm_observer.query.alerting.incidents import correlate, summarize
from llm_observer.query.alerting.model import Alert, Incident, fingerprint
from tests.query.alerting.engine_support import (
    MINUTE,
    Clock,
    Ticks,
    alerting_config,
    calls,
    make_alerting,
    minute_floor,
    open_store,
    write,
)
from tests.support.waiting import wait_for

S = 10**9
T0 = calendar.timegm((2026, 3, 2, 14, 2, 0)) * S  # 14:02 UTC

RULES: dict[str, Rule] = {
    r.name: r
    for r in TypeAdapter(list[Rule]).validate_python(
        [
            {"name": "Errors", "kind": "anomaly", "measure": "error_rate"},
            {"name": "Slow", "kind": "anomaly", "measure": "latency_p95"},
            {"name": "Spend", "kind": "anomaly", "measure": "cost_per_hour"},
            {"name": "ErrorsHigh", "kind": "threshold", "measure": "error_rate", "threshold": 0.1},
            {"name": "Budget", "kind": "budget", "amount_usd": 100},
        ]
    )
}


def firing(rule: str, at_s: int, org: str = "org-a", **labels: str) -> Alert:
    all_labels = {"alertname": rule, "organization_id": org, **labels}
    return Alert(
        fingerprint=fingerprint(all_labels),
        rule=rule,
        organization_id=org,
        labels=all_labels,
        annotations={},
        state="firing",
        value=1.0,
        active_since_ns=T0 + at_s * S,
        fired_at_ns=T0 + at_s * S,
        last_evaluated_ns=T0 + at_s * S,
        last_active_ns=T0 + at_s * S,
    )


def run(
    alerts: list[Alert], incidents: dict[str, Incident] | None = None, **config: object
) -> tuple[dict[str, Alert], dict[str, Incident]]:
    """One correlation pass; the alerts and incidents after it."""
    by_fp = {a.fingerprint: a for a in alerts}
    current = dict(incidents or {})
    now = max(a.last_evaluated_ns for a in alerts)
    result = correlate(by_fp, current, CorrelationConfig.model_validate(config), RULES.get, now)
    by_fp.update(result.alerts)
    current.update(result.incidents)
    return by_fp, current


def test_incidents_three_alerts_on_one_provider_form_one_incident() -> None:
    alerts = [
        firing("Errors", 0, provider="openai"),
        firing("Slow", 60, provider="openai", model="gpt-4o"),
        firing("Spend", 240, provider="openai", model="gpt-4o-mini"),
        firing("Slow", 30, provider="anthropic", model="claude-sonnet-4"),
    ]
    after, incidents = run(alerts)
    (incident,) = incidents.values()
    assert (incident.dimension, incident.value, incident.organization_id) == ("provider", "openai", "org-a")
    assert incident.started_at_ns == T0 and incident.resolved_at_ns is None
    assert set(incident.alert_fingerprints) == {a.fingerprint for a in alerts[:3]}
    assert incident.rules == ("Errors", "Slow", "Spend")
    assert incident.summary == (
        "provider openai: error rate, p95 latency and cost anomalies together since 14:02 UTC"
    )
    assert [after[a.fingerprint].incident_id for a in alerts] == [incident.id] * 3 + [None]


def test_incidents_ids_are_stable() -> None:
    alerts = [firing("Errors", 0, provider="openai"), firing("Slow", 60, provider="openai")]
    _, first = run(alerts)
    _, second = run(list(reversed(alerts)))
    assert list(first) == list(second)


def test_incidents_keep_organizations_values_and_times_apart() -> None:
    alerts = [
        firing("Errors", 0, provider="openai"),
        firing("Slow", 60, org="org-b", provider="openai"),  # another organization
        firing("Spend", 90, provider="anthropic"),  # another value
        firing("Budget", 2000, provider="openai"),  # more than the window (600 s) later
        firing("ErrorsHigh", 30),  # no dimension at all
    ]
    after, incidents = run(alerts)
    assert incidents == {}
    assert all(a.incident_id is None for a in after.values())


def test_incidents_first_shared_dimension_in_configured_order() -> None:
    alerts = [
        firing("Errors", 0, provider="openai", model="gpt-4o"),
        firing("Slow", 10, provider="openai", model="gpt-4o"),
    ]
    _, incidents = run(alerts, dimensions=["model", "provider"])
    (incident,) = incidents.values()
    assert (incident.dimension, incident.value) == ("model", "gpt-4o")


def test_incidents_late_alert_joins_and_mixed_summary() -> None:
    first = [firing("ErrorsHigh", 0, model="gpt-4o"), firing("Slow", 300, model="gpt-4o")]
    after, incidents = run(first)
    # 500 s after the incident's latest member fired: within the window of it, though not of the first.
    late = firing("Budget", 800, model="gpt-4o")
    after, incidents = run([*after.values(), late], incidents)
    (incident,) = incidents.values()
    assert after[late.fingerprint].incident_id == incident.id
    assert incident.rules == ("ErrorsHigh", "Slow", "Budget")
    assert (
        incident.summary
        == "model gpt-4o: error rate, budget and p95 latency anomaly together since 14:02 UTC"
    )


def test_incidents_resolve_when_every_alert_resolved() -> None:
    alerts = [firing("Errors", 0, provider="openai"), firing("Slow", 60, provider="openai")]
    after, incidents = run(alerts)
    (incident_id,) = incidents
    first, second = (after[a.fingerprint] for a in alerts)
    first.state, first.resolved_at_ns = "resolved", T0 + 900 * S
    after, incidents = run([first, second], incidents)
    assert incidents[incident_id].resolved_at_ns is None
    second.state, second.resolved_at_ns = "resolved", T0 + 960 * S
    after, incidents = run([first, second], incidents)
    assert incidents[incident_id].resolved_at_ns == T0 + 960 * S


def test_incidents_off() -> None:
    alerts = [firing("Errors", 0, provider="openai"), firing("Slow", 60, provider="openai")]
    _, incidents = run(alerts, enabled=False)
    assert incidents == {}


def test_incidents_summary_of_one_kind_and_of_slo() -> None:
    slo = TypeAdapter(Rule).validate_python({"name": "Avail", "kind": "slo", "objective": 0.99})
    assert summarize("service", "chatbot", [slo, RULES["Slow"]], ["Avail", "Slow"], T0) == (
        "service chatbot: success SLO burn and p95 latency anomaly together since 14:02 UTC"
    )
    assert summarize("model", "m", [RULES["Slow"]], ["Slow"], T0) == (
        "model m: p95 latency anomaly together since 14:02 UTC"
    )


# --- through the engine and the API, over a real store ---------------------------------------------------

BAD_PROVIDER_RULES = [
    {
        "name": "Errors",
        "kind": "threshold",
        "measure": "error_rate",
        "window": "1m",
        "group_by": ["provider"],
        "threshold": 0.1,
    },
    {
        "name": "Slow",
        "kind": "threshold",
        "measure": "latency_p95",
        "window": "1m",
        "group_by": ["provider"],
        "threshold": 1000,
    },
    {
        "name": "Spend",
        "kind": "threshold",
        "measure": "cost_per_hour",
        "window": "1m",
        "group_by": ["provider"],
        "threshold": 10,
    },
    {
        "name": "OrgBVolume",
        "kind": "threshold",
        "measure": "request_count",
        "organization": "org-b",
        "threshold": 1000000,
    },
]


async def test_incidents_engine_groups_one_provider_per_organization(tmp_path: Path) -> None:
    base = minute_floor(time.time_ns()) - 120 * MINUTE
    exporter = await open_store(tmp_path)
    batch = SpanBatch()
    for org in ("org-a", "org-b"):
        # openai errs, is slow and costly from ``base``; anthropic is fine throughout.
        calls(
            batch, org=org, start_ns=base, end_ns=base + 5 * MINUTE, latency_ms=2000, error=True, cost_usd=0.5
        )
        calls(batch, org=org, provider="anthropic", model="claude", start_ns=base, end_ns=base + 5 * MINUTE)
    await write(exporter, batch)
    await exporter.shutdown()
    clock = Clock(base + 2 * MINUTE)
    service = make_alerting(tmp_path, alerting_config(rules=BAD_PROVIDER_RULES), clock, Ticks())
    await service.start()
    try:
        await wait_for(lambda: len(service.alerts(None, ["firing"])) == 6, what=lambda: service.alerts(None))
        await wait_for(lambda: len(service.incidents(None)) == 2, what=lambda: service.incidents(None))
        for org in ("org-a", "org-b"):
            (incident,) = service.incidents(org)
            assert (incident.organization_id, incident.dimension, incident.value) == (
                org,
                "provider",
                "openai",
            )
            assert incident.summary == "provider openai: error rate, p95 latency and cost together since " + (
                time.strftime("%H:%M", time.gmtime((base + 2 * MINUTE) / 1e9)) + " UTC"
            )
            alerts = service.alerts(org)
            assert {a.rule for a in alerts} == {"Errors", "Slow", "Spend"}
            assert {a.organization_id for a in alerts} == {org}
            assert {a.incident_id for a in alerts} == {incident.id}
            assert set(incident.alert_fingerprints) == {a.fingerprint for a in alerts}
        assert service.alerts("org-c") == [] and service.incidents("org-c") == []
        # Rules: one scoped to org-b is invisible to org-a.
        assert {r.name for r in service.rules("org-a")} == {"Errors", "Slow", "Spend"}
        assert {r.name for r in service.rules("org-b")} == {"Errors", "Slow", "Spend", "OrgBVolume"}
        assert len(service.rules(None)) == 4
        # Silences: org-a's is neither listed for nor expirable by org-b.
        silence = service.add_silence(
            "org-a", ['rule="Slow"'], clock(), clock() + 3600 * S, "alice", "deploy"
        )
        assert [s.id for s in service.silences("org-a")] == [silence.id]
        assert service.silences("org-b") == []
        assert service.expire_silence("org-b", silence.id) is None
        expired = service.expire_silence("org-a", silence.id)
        assert expired is not None and expired.ends_at_ns == clock()
    finally:
        await service.shutdown()
