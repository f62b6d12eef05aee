"""The five kinds of receiver integration, and ``integrations(receiver, client)`` that makes a receiver's."""

from __future__ import annotations

import httpx

from llm_observer.query.alerting.config import Receiver
from llm_observer.query.alerting.receivers.alertmanager import AlertmanagerIntegration
from llm_observer.query.alerting.receivers.base import Integration
from llm_observer.query.alerting.receivers.email import EmailIntegration
from llm_observer.query.alerting.receivers.pagerduty import PagerDutyIntegration
from llm_observer.query.alerting.receivers.slack import SlackIntegration
from llm_observer.query.alerting.receivers.webhook import WebhookIntegration

__all__ = [
    "AlertmanagerIntegration",
    "EmailIntegration",
    "Integration",
    "PagerDutyIntegration",
    "SlackIntegration",
    "WebhookIntegration",
    "integrations",
]


def integrations(receiver: Receiver, client: httpx.AsyncClient) -> dict[str, Integration]:
    """A receiver's integrations by id (``slack/0``, ``email/1``…: kind and index within its list, stable
    while the config keeps the order). ``ValueError`` for an unusable entry (an email smarthost without a
    port)."""
    made: dict[str, Integration] = {}
    for i, slack in enumerate(receiver.slack_configs):
        made[f"slack/{i}"] = SlackIntegration(slack, client)
    for i, pagerduty in enumerate(receiver.pagerduty_configs):
        made[f"pagerduty/{i}"] = PagerDutyIntegration(pagerduty, client)
    for i, email in enumerate(receiver.email_configs):
        made[f"email/{i}"] = EmailIntegration(email)
    for i, webhook in enumerate(receiver.webhook_configs):
        made[f"webhook/{i}"] = WebhookIntegration(webhook, client)
    for i, alertmanager in enumerate(receiver.alertmanager_configs):
        made[f"alertmanager/{i}"] = AlertmanagerIntegration(alertmanager, client)
    return made
