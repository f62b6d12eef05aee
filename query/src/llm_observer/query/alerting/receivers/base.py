"""What every receiver integration is: ``send(notification)``, raising ``PermanentError`` for a refusal that
retrying cannot change (a 4xx other than 429, a bad address) and ``RetryableError`` for one it may (429, 5xx,
a network failure, a timeout). The dispatcher owns retries, backoff and counting; an integration sends once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Generic, Protocol, TypeVar

import httpx

from llm_observer.kernel.errors import PermanentError, RetryableError
from llm_observer.query.alerting.payloads import Notification


class Integration(Protocol):
    """One ``*_configs`` entry of a receiver."""

    kind: str  # "slack", "pagerduty", "email", "webhook", "alertmanager"
    send_resolved: bool

    async def send(self, notification: Notification, now_ns: int) -> None:
        """Deliver ``notification`` once; ``now_ns`` is the time of this attempt."""
        ...


class NotifierConfig(Protocol):
    """What every ``*_configs`` entry has."""

    @property
    def send_resolved(self) -> bool: ...

    @property
    def timeout(self) -> float: ...


C = TypeVar("C", bound=NotifierConfig)


class HttpIntegration(Generic[C]):
    """An integration that POSTs one JSON body per notification: subclasses say where (``url``) and what
    (``body``), and may add ``headers``."""

    kind = "http"

    def __init__(self, config: C, client: httpx.AsyncClient) -> None:
        self.config = config
        self.send_resolved = config.send_resolved
        self._client = client

    def url(self) -> str:
        raise NotImplementedError

    def body(self, notification: Notification, now_ns: int) -> Any:
        raise NotImplementedError

    def headers(self) -> Mapping[str, str]:
        return {}

    async def send(self, notification: Notification, now_ns: int) -> None:
        await post_json(
            self._client,
            self.url(),
            self.body(notification, now_ns),
            timeout=self.config.timeout,
            headers=self.headers(),
            what=self.kind,
        )


async def post_json(
    client: httpx.AsyncClient,
    url: str,
    body: Any,
    *,
    timeout: float,
    headers: Mapping[str, str] | None = None,
    what: str,
) -> httpx.Response:
    """POST ``body`` as JSON; the response when it is 2xx, else the error the dispatcher acts on."""
    try:
        response = await client.post(url, json=body, headers=dict(headers or {}), timeout=timeout)
    except httpx.TimeoutException as exc:
        raise RetryableError(f"{what}: no answer from {_origin(url)} within {timeout:g}s") from exc
    except httpx.HTTPError as exc:
        raise RetryableError(f"{what}: {_origin(url)}: {type(exc).__name__}: {exc}") from exc
    check_status(response, what)
    return response


def check_status(response: httpx.Response, what: str) -> None:
    """Nothing for a 2xx; ``RetryableError`` for 429 and 5xx (with the server's Retry-After), else
    ``PermanentError``."""
    status = response.status_code
    if 200 <= status < 300:
        return
    detail = response.text[:300].strip()
    message = f"{what}: {_origin(str(response.request.url))} answered {status}" + (
        f": {detail}" if detail else ""
    )
    if status == 429 or status >= 500:
        raise RetryableError(message, retry_after=_retry_after(response))
    raise PermanentError(message, reason=f"http_{status}")


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None  # an HTTP date: rare from these services, and the backoff applies anyway


def _origin(url: str) -> str:
    # Webhook URLs carry their secret in the path (Slack, most webhooks): never put it in a log line.
    parsed = httpx.URL(url)
    return f"{parsed.scheme}://{parsed.host}" + (f":{parsed.port}" if parsed.port else "")
