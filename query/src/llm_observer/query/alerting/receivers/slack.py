"""Slack incoming webhooks: a Block Kit message (a header, a section with the group's fields, one section
per alert, the incident's root-cause hint, a button to the web view) with a ``text`` fallback for
notifications and clients that do not render blocks, in an attachment coloured red (firing) or green
(resolved)."""

from __future__ import annotations

from typing import Any

from llm_observer.query.alerting.config import SlackConfig
from llm_observer.query.alerting.payloads import (
    Notification,
    alert_link,
    group_link,
    incident_line,
    summary,
    title,
)
from llm_observer.query.alerting.receivers.base import HttpIntegration

FIRING_COLOUR = "#d63232"
RESOLVED_COLOUR = "#2eb67d"
MAX_ALERT_SECTIONS = 10  # Slack allows 50 blocks; a page with more than this is read on the web view
MAX_TEXT = 2900  # a section's text is limited to 3000 characters


class SlackIntegration(HttpIntegration[SlackConfig]):
    kind = "slack"

    def url(self) -> str:
        return self.config.api_url

    def body(self, notification: Notification, now_ns: int) -> Any:
        return slack_message(notification, self.config)


def _clip(text: str, limit: int = MAX_TEXT) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def slack_message(notification: Notification, config: SlackConfig) -> dict[str, Any]:
    """The webhook's JSON body."""
    heading = title(notification)
    firing = notification.status == "firing"
    group = notification.group_labels or {}
    fields = [{"type": "mrkdwn", "text": f"*Status*\n{'Firing' if firing else 'Resolved'}"}]
    fields += [{"type": "mrkdwn", "text": _clip(f"*{k}*\n{v}", 2000)} for k, v in sorted(group.items())][:9]
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _clip(heading, 150), "emoji": True}},
        {"type": "section", "fields": fields},
    ]
    hint = incident_line(notification)
    if hint:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _clip(f":link: {hint}")}})
    for alert in notification.alerts[:MAX_ALERT_SECTIONS]:
        mark = ":red_circle:" if alert.status == "firing" else ":large_green_circle:"
        link = alert_link(alert, notification.external_url)
        text = f"{mark} *{alert.labels.get('alertname', 'alert')}* — {summary(alert)}\n<{link}|Open in llm-observer>"
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _clip(text)}})
    hidden = len(notification.alerts) - MAX_ALERT_SECTIONS + notification.truncated
    context = f"{len(notification.firing)} firing, {len(notification.resolved)} resolved"
    if hidden > 0:
        context += f" ({hidden} more not shown)"
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": context}]})
    blocks.append(
        {
            "type": "actions",
            "elements": [
                {
                    "type": "button",
                    "text": {"type": "plain_text", "text": "View in llm-observer"},
                    "url": group_link(notification),
                    **({"style": "danger"} if firing else {}),
                }
            ],
        }
    )
    lines = [heading, *(f"- {summary(a)}" for a in notification.alerts[:MAX_ALERT_SECTIONS])]
    if hint:
        lines.append(hint)
    message: dict[str, Any] = {
        "text": _clip("\n".join(lines)),
        "attachments": [{"color": FIRING_COLOUR if firing else RESOLVED_COLOUR, "blocks": blocks}],
    }
    if config.channel:
        message["channel"] = config.channel
    if config.username:
        message["username"] = config.username
    return message
