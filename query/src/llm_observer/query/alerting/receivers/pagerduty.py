"""PagerDuty Events API v2: ``trigger`` while the group fires, ``resolve`` once it has resolved, with a
``dedup_key`` derived from the receiver and the group key, so the resolve closes the incident the trigger
opened and a re-send updates it instead of opening another."""

from __future__ import annotations

import hashlib
from typing import Any

from llm_observer.query.alerting.config import PagerDutyConfig
from llm_observer.query.alerting.payloads import (
    Notification,
    group_link,
    incident_line,
    rfc3339,
    summary,
    title,
)
from llm_observer.query.alerting.receivers.base import HttpIntegration

MAX_SUMMARY = 1024  # PagerDuty refuses longer summaries


class PagerDutyIntegration(HttpIntegration[PagerDutyConfig]):
    kind = "pagerduty"

    def url(self) -> str:
        return self.config.url

    def body(self, notification: Notification, now_ns: int) -> Any:
        return pagerduty_event(notification, self.config)


def dedup_key(notification: Notification) -> str:
    """Stable per receiver and aggregation group (hex SHA-256, as Alertmanager's)."""
    return hashlib.sha256(f"{notification.receiver}\x00{notification.group_key}".encode()).hexdigest()


def pagerduty_event(notification: Notification, config: PagerDutyConfig) -> dict[str, Any]:
    """The event's JSON body."""
    key = dedup_key(notification)
    event: dict[str, Any] = {
        "routing_key": config.routing_key,
        "dedup_key": key,
        "event_action": "trigger" if notification.status == "firing" else "resolve",
        "client": "llm-observer",
        "client_url": notification.external_url,
    }
    if notification.status != "firing":
        return event  # a resolve needs only its key; PagerDuty ignores a payload on it
    text = title(notification)
    first = notification.firing[0]
    if len(notification.firing) == 1:
        text = f"{text}: {summary(first)}"
    severity = first.labels.get("severity", "")
    event["payload"] = {
        "summary": text[:MAX_SUMMARY],
        "source": config.source,
        "severity": severity if severity in ("critical", "error", "warning", "info") else config.severity,
        "timestamp": rfc3339(min(a.starts_at_ns for a in notification.firing)),
        "group": notification.group_labels.get("alertname", ""),
        "class": first.labels.get("alertname", ""),
        "custom_details": {
            "firing": [summary(a) for a in notification.firing],
            "resolved": [summary(a) for a in notification.resolved],
            "num_firing": len(notification.firing),
            "num_resolved": len(notification.resolved),
            "group_labels": dict(notification.group_labels),
            **({"incident": incident_line(notification)} if notification.incidents else {}),
        },
    }
    event["links"] = [{"href": group_link(notification), "text": "View in llm-observer"}]
    return event
