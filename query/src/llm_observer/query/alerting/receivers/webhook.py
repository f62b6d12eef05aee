"""A generic webhook: the Alertmanager webhook payload (version 4), so tools written for Alertmanager's
``webhook_configs`` consume ours unchanged."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from llm_observer.query.alerting.config import WebhookConfig
from llm_observer.query.alerting.payloads import Notification, webhook_payload
from llm_observer.query.alerting.receivers.base import HttpIntegration


class WebhookIntegration(HttpIntegration[WebhookConfig]):
    kind = "webhook"

    def url(self) -> str:
        return self.config.url

    def body(self, notification: Notification, now_ns: int) -> Any:
        return webhook_payload(notification, self.config.max_alerts)

    def headers(self) -> Mapping[str, str]:
        return self.config.headers
