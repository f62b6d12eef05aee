"""What one notification says, independent of where it goes: the group's alerts frozen at the moment it was
decided, serialisable (the outbox keeps it as JSON until it is delivered), and the pieces every receiver
renders from it (titles, links, the Alertmanager webhook payload).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import urlencode

from llm_observer.query.alerting.model import ALERTNAME, Alert, Incident

Status = Literal["firing", "resolved"]
ZERO_TIME = "0001-01-01T00:00:00Z"  # what Alertmanager writes for "no end yet"


@dataclass(frozen=True, slots=True)
class AlertView:
    """One alert as a notification tells it."""

    fingerprint: str
    status: Status
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at_ns: int
    ends_at_ns: int | None
    generator_url: str
    value: float
    incident_id: str | None = None

    @classmethod
    def of(cls, alert: Alert, status: Status) -> AlertView:
        return cls(
            fingerprint=alert.fingerprint,
            status=status,
            labels=dict(alert.labels),
            annotations=dict(alert.annotations),
            starts_at_ns=alert.fired_at_ns or alert.active_since_ns,
            ends_at_ns=(alert.resolved_at_ns or alert.last_evaluated_ns) if status == "resolved" else None,
            generator_url=alert.generator_url,
            value=alert.value,
            incident_id=alert.incident_id,
        )


@dataclass(frozen=True, slots=True)
class IncidentView:
    id: str
    summary: str

    @classmethod
    def of(cls, incident: Incident) -> IncidentView:
        return cls(incident.id, incident.summary)


@dataclass(frozen=True, slots=True)
class Notification:
    """One message to one integration of one receiver about one aggregation group."""

    receiver: str
    integration: str  # e.g. ``slack/0``
    group_key: str
    group_labels: dict[str, str]
    alerts: tuple[AlertView, ...]
    external_url: str
    created_ns: int
    group_interval_s: float
    incidents: tuple[IncidentView, ...] = ()
    truncated: int = 0

    @property
    def status(self) -> Status:
        """``firing`` while any alert of the message fires, as Alertmanager's group status."""
        return "firing" if any(a.status == "firing" for a in self.alerts) else "resolved"

    @property
    def firing(self) -> list[AlertView]:
        return [a for a in self.alerts if a.status == "firing"]

    @property
    def resolved(self) -> list[AlertView]:
        return [a for a in self.alerts if a.status == "resolved"]

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Notification:
        raw = json.loads(text)
        raw["alerts"] = tuple(AlertView(**a) for a in raw["alerts"])
        raw["incidents"] = tuple(IncidentView(**i) for i in raw["incidents"])
        return cls(**raw)


def rfc3339(ns: int | None) -> str:
    """Nanoseconds as Alertmanager writes times (``2026-12-02T18:00:00.123Z``); None as its zero time."""
    if not ns:
        return ZERO_TIME
    moment = datetime.fromtimestamp(ns / 1e9, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def common(maps: Sequence[Mapping[str, str]]) -> dict[str, str]:
    """The entries every map shares with the same value."""
    if not maps:
        return {}
    shared = dict(maps[0])
    for other in maps[1:]:
        shared = {k: v for k, v in shared.items() if other.get(k) == v}
    return shared


def title(notification: Notification) -> str:
    """``[FIRING:2] HighErrorRate (provider=openai)`` — the one line every receiver leads with."""
    firing = len(notification.firing)
    head = f"[FIRING:{firing}]" if firing else "[RESOLVED]"
    labels = common([a.labels for a in notification.alerts])
    names = sorted({a.labels.get(ALERTNAME, "alert") for a in notification.alerts})
    name = names[0] if len(names) == 1 else f"{len(names)} alerts"
    shown = {k: v for k, v in sorted(notification.group_labels.items()) if k != ALERTNAME} or {
        k: v for k, v in sorted(labels.items()) if k not in (ALERTNAME, "organization_id")
    }
    detail = ", ".join(f"{k}={v}" for k, v in list(shown.items())[:4])
    return f"{head} {name}" + (f" ({detail})" if detail else "")


def summary(alert: AlertView) -> str:
    """The alert's one-line description: its ``summary`` (or ``description``) annotation, else its name and
    value."""
    for key in ("summary", "description", "message"):
        if alert.annotations.get(key):
            return alert.annotations[key]
    return f"{alert.labels.get(ALERTNAME, 'alert')} = {alert.value:g}"


def alert_link(alert: AlertView, external_url: str) -> str:
    """Where a person looks at it: the rule's link or generator URL (made absolute against
    ``external_url``), else the alerts page filtered to it."""
    base = external_url.rstrip("/")
    link = alert.generator_url
    if link:
        return link if "://" in link else f"{base}/{link.lstrip('/')}"
    return f"{base}/alerts?{urlencode({'fingerprint': alert.fingerprint})}"


def group_link(notification: Notification) -> str:
    """The web view's alerts page for the group (one alert: that alert's own link)."""
    if len(notification.alerts) == 1:
        return alert_link(notification.alerts[0], notification.external_url)
    base = notification.external_url.rstrip("/")
    query: dict[str, str] = {"status": notification.status}
    name = common([a.labels for a in notification.alerts]).get(ALERTNAME)
    if name:
        query[ALERTNAME] = name
    return f"{base}/alerts?{urlencode(query)}"


def incident_line(notification: Notification) -> str | None:
    """The incidents the message is about, by their root-cause hints, or None."""
    if not notification.incidents:
        return None
    return "; ".join(f"Incident {i.id}: {i.summary}" for i in notification.incidents)


def webhook_payload(notification: Notification, max_alerts: int = 0) -> dict[str, Any]:
    """The Alertmanager webhook payload, version 4: what ``webhook_configs`` of an Alertmanager POSTs."""
    alerts = list(notification.alerts)
    truncated = notification.truncated
    if max_alerts and len(alerts) > max_alerts:
        truncated += len(alerts) - max_alerts
        alerts = alerts[:max_alerts]
    return {
        "version": "4",
        "groupKey": notification.group_key,
        "truncatedAlerts": truncated,
        "status": notification.status,
        "receiver": notification.receiver,
        "groupLabels": dict(notification.group_labels),
        "commonLabels": common([a.labels for a in notification.alerts]),
        "commonAnnotations": common([a.annotations for a in notification.alerts]),
        "externalURL": notification.external_url,
        "alerts": [
            {
                "status": a.status,
                "labels": dict(a.labels),
                "annotations": dict(a.annotations),
                "startsAt": rfc3339(a.starts_at_ns),
                "endsAt": rfc3339(a.ends_at_ns),
                "generatorURL": alert_link(a, notification.external_url),
                "fingerprint": a.fingerprint,
            }
            for a in alerts
        ],
    }
