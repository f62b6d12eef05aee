"""Hand alerts to an Alertmanager (``POST /api/v2/alerts``) for teams that already route with one.

Alertmanager resolves an alert by itself once its ``endsAt`` passes, so a firing alert is posted with an
``endsAt`` a few group intervals ahead and re-posted every group interval while it fires (the dispatcher
re-sends this integration's groups each ``group_interval``, as Prometheus re-sends to Alertmanager); a
resolved alert is posted once with its real end.
"""

from __future__ import annotations

from typing import Any

from llm_observer.query.alerting.config import AlertmanagerConfig
from llm_observer.query.alerting.payloads import Notification, alert_link, rfc3339
from llm_observer.query.alerting.receivers.base import HttpIntegration

RESEND_MARGIN = 4  # how many missed re-sends Alertmanager waits before it resolves an alert on its own


class AlertmanagerIntegration(HttpIntegration[AlertmanagerConfig]):
    kind = "alertmanager"

    def url(self) -> str:
        return self.config.url.rstrip("/") + "/api/v2/alerts"

    def body(self, notification: Notification, now_ns: int) -> Any:
        return postable_alerts(notification, now_ns)


def postable_alerts(notification: Notification, now_ns: int) -> list[dict[str, Any]]:
    """The ``postableAlerts`` body of Alertmanager's v2 API."""
    ahead_ns = int(RESEND_MARGIN * max(notification.group_interval_s, 60.0) * 1e9)
    return [
        {
            "labels": dict(a.labels),
            "annotations": dict(a.annotations),
            "startsAt": rfc3339(a.starts_at_ns),
            "endsAt": rfc3339(a.ends_at_ns if a.status == "resolved" and a.ends_at_ns else now_ns + ahead_ns),
            "generatorURL": alert_link(a, notification.external_url),
        }
        for a in notification.alerts
    ]
