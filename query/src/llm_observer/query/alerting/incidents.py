"""Correlation: alerts that fire close in time and share a dimension become one incident, so one page goes out
rather than five, with a root-cause hint ("provider openai: error rate, p95 latency and cost anomalies
together since 14:02 UTC").

Rules (``config.CorrelationConfig``): two firing alerts of the same organization join when they fired within
``window`` of each other and carry the same value of one of ``dimensions`` (the first, in the configured
order, that both carry). A firing alert joins an open incident when it carries the incident's dimension value
and fired within ``window`` of the incident's latest member. An incident resolves when none of its alerts is
firing any more. An alert alone forms no incident. Ids are derived from what started the incident, so the
same history gives the same id.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from llm_observer.query.alerting.config import CorrelationConfig, Rule
from llm_observer.query.alerting.model import Alert, Incident, fingerprint

_MEASURE_NAMES = {
    "request_count": "request count",
    "request_rate": "request rate",
    "error_count": "errors",
    "error_rate": "error rate",
    "latency_p50": "p50 latency",
    "latency_p95": "p95 latency",
    "latency_p99": "p99 latency",
    "ttft_p95": "p95 time to first token",
    "tokens_per_request": "tokens per request",
    "input_tokens": "input tokens",
    "output_tokens": "output tokens",
    "cost_usd": "cost",
    "cost_per_hour": "cost",
}


def describe_rule(rule: Rule | None, name: str) -> tuple[str, bool]:
    """What a rule watches, as people say it (``p95 latency``), and whether it is an anomaly rule."""
    if rule is None:
        return name, False
    if rule.kind == "budget":
        return "budget", False
    if rule.kind == "slo":
        return f"{'latency' if rule.sli == 'latency' else 'success'} SLO burn", False
    return _MEASURE_NAMES.get(rule.measure, rule.measure.replace("_", " ")), rule.kind == "anomaly"


def summarize(
    dimension: str, value: str, rules: Sequence[Rule | None], names: Sequence[str], since_ns: int
) -> str:
    """The incident's root-cause hint from its rules (in the order their alerts fired)."""
    plain: list[str] = []
    anomalies: list[str] = []
    for rule, name in zip(rules, names, strict=True):
        what, anomaly = describe_rule(rule, name)
        bucket = anomalies if anomaly else plain
        if what not in plain and what not in anomalies:
            bucket.append(what)
    if not plain:
        items = anomalies
        suffix = " anomalies" if len(anomalies) > 1 else " anomaly"
    else:
        items = plain + [f"{a} anomaly" for a in anomalies]
        suffix = ""
    listed = items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"
    since = time.strftime("%H:%M", time.gmtime(since_ns / 1e9))
    return f"{dimension} {value}: {listed}{suffix} together since {since} UTC"


@dataclass(slots=True)
class Correlation:
    """What one correlation pass changed: alerts with a new ``incident_id`` and incidents created, grown or
    resolved (each by key)."""

    alerts: dict[str, Alert] = field(default_factory=dict)
    incidents: dict[str, Incident] = field(default_factory=dict)


def correlate(
    alerts: Mapping[str, Alert],
    incidents: Mapping[str, Incident],
    config: CorrelationConfig,
    rule_of: Callable[[str], Rule | None],
    now_ns: int,
) -> Correlation:
    """Assign firing alerts that have no incident to one (an open one, or a new one with a partner) and
    resolve incidents none of whose alerts still fires. The inputs are not modified."""
    out = Correlation()
    window_ns = round(config.window * 1e9)
    current = dict(incidents)

    def alert(fp: str) -> Alert | None:
        return out.alerts.get(fp) or alerts.get(fp)

    def member_of(a: Alert | None, incident: Incident) -> bool:
        return a is not None and a.incident_id == incident.id and a.state != "resolved"

    if config.enabled:
        candidates = sorted(
            (
                a
                for a in alerts.values()
                if a.state == "firing"
                and a.fired_at_ns is not None
                and (a.incident_id is None or a.incident_id not in current)
            ),
            key=lambda a: (a.fired_at_ns or 0, a.fingerprint),
        )
        for a in candidates:
            if alert(a.fingerprint) is not a:
                continue  # already taken into an incident this pass
            incident = _open_incident_for(a, current, alert, window_ns)
            if incident is not None:
                members = incident.alert_fingerprints
                if a.fingerprint not in members:  # a member that fired again, in a new episode
                    members = (*members, a.fingerprint)
                incident = _rebuilt(incident, members, alert, rule_of, a.fingerprint, a)
            else:
                found = _partner(a, candidates, alert, config.dimensions, window_ns)
                if found is None:
                    continue
                partner, dimension = found
                started = min(a.fired_at_ns or 0, partner.fired_at_ns or 0)
                incident_id = fingerprint(
                    {
                        "organization_id": a.organization_id,
                        "dimension": dimension,
                        "value": a.labels[dimension],
                        "started_at_ns": str(started),
                    }
                )
                incident = Incident(
                    id=incident_id,
                    organization_id=a.organization_id,
                    dimension=dimension,
                    value=a.labels[dimension],
                    started_at_ns=started,
                    resolved_at_ns=None,
                    alert_fingerprints=(),
                    rules=(),
                    summary="",
                )
                out.alerts[partner.fingerprint] = replace(partner, incident_id=incident_id)
                pair = sorted((a, partner), key=lambda x: x.fired_at_ns or 0)
                incident = _rebuilt(
                    incident, tuple(m.fingerprint for m in pair), alert, rule_of, a.fingerprint, a
                )
            out.alerts[a.fingerprint] = replace(a, incident_id=incident.id)
            current[incident.id] = out.incidents[incident.id] = incident
    for incident in list(current.values()):
        if incident.resolved_at_ns is not None:
            continue
        now_members = [alert(fp) for fp in incident.alert_fingerprints]
        if any(member_of(m, incident) for m in now_members):
            continue
        ends = [m.resolved_at_ns for m in now_members if m is not None and m.resolved_at_ns is not None]
        out.incidents[incident.id] = replace(incident, resolved_at_ns=max(ends, default=now_ns))
    return out


def _open_incident_for(
    a: Alert, incidents: Mapping[str, Incident], alert: Callable[[str], Alert | None], window_ns: int
) -> Incident | None:
    for incident in sorted(incidents.values(), key=lambda i: (i.started_at_ns, i.id)):
        if incident.resolved_at_ns is not None or incident.organization_id != a.organization_id:
            continue
        if a.labels.get(incident.dimension) != incident.value:
            continue
        fired = [
            m.fired_at_ns
            for m in (alert(fp) for fp in incident.alert_fingerprints)
            if m is not None and m.incident_id == incident.id and m.fired_at_ns is not None
        ]
        latest = max(fired, default=incident.started_at_ns)
        if abs((a.fired_at_ns or 0) - latest) <= window_ns:
            return incident
    return None


def _partner(
    a: Alert,
    candidates: Sequence[Alert],
    alert: Callable[[str], Alert | None],
    dimensions: Sequence[str],
    window_ns: int,
) -> tuple[Alert, str] | None:
    for dimension in dimensions:
        value = a.labels.get(dimension)
        if value is None:
            continue
        for b in candidates:
            if b.fingerprint == a.fingerprint or alert(b.fingerprint) is not b:
                continue
            if b.organization_id != a.organization_id or b.labels.get(dimension) != value:
                continue
            if abs((a.fired_at_ns or 0) - (b.fired_at_ns or 0)) <= window_ns:
                return b, dimension
    return None


def _rebuilt(
    incident: Incident,
    members: tuple[str, ...],
    alert: Callable[[str], Alert | None],
    rule_of: Callable[[str], Rule | None],
    joining: str,
    joining_alert: Alert,
) -> Incident:
    """``incident`` with ``members``, its rules (in the order they fired; by name when together) and summary
    recomputed."""
    fired: dict[str, int] = {}
    for fp in members:
        m = joining_alert if fp == joining else alert(fp)
        if m is not None:
            at = m.fired_at_ns or 0
            fired[m.rule] = min(fired.get(m.rule, at), at)
    names = sorted(fired, key=lambda name: (fired[name], name))
    summary = summarize(
        incident.dimension, incident.value, [rule_of(n) for n in names], names, incident.started_at_ns
    )
    return replace(incident, alert_fingerprints=members, rules=tuple(names), summary=summary)
