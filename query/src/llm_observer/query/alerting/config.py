"""The ``alerting:`` section: rules, the routing tree, inhibit rules and receivers.

Its shape follows Alertmanager's (``route``, ``receivers`` with ``*_configs``, ``inhibit_rules``, matchers
written ``name="value"``, ``name!=value``, ``name=~regex``, ``name!~regex``) so that people who run one read
it at a glance; durations are written as Alertmanager and Prometheus write them (``30s``, ``5m``, ``1h30m``,
``7d``) or as a number of seconds. Every model forbids unknown keys, so a typo fails at load with its YAML
path::

    alerting:
      evaluation_interval: 30s
      rules:
        - name: HighErrorRate
          kind: threshold
          measure: error_rate
          window: 5m
          group_by: [provider]
          op: ">"
          threshold: 0.05
          resolve_threshold: 0.03
          for: 2m
          labels: {severity: page}
          annotations: {summary: "{{ $labels.provider }} error rate is {{ $value }}"}
      route:
        receiver: ops
        group_by: [alertname, organization_id]
        routes:
          - matchers: ['severity="page"']
            receiver: pager
      receivers:
        - name: ops
          slack_configs: [{api_url: "https://hooks.slack.com/services/…"}]
        - name: pager
          pagerduty_configs: [{routing_key: "…"}]
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BeforeValidator, Field, model_validator

from llm_observer.kernel.config import ComponentConfig

_DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)(ms|s|m|h|d|w))+$")
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


def parse_duration(value: object) -> float:
    """Seconds from ``30s`` / ``5m`` / ``1h30m`` / ``7d`` or a number of seconds; ``ValueError`` otherwise."""
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or a string such as 30s, 5m, 1h30m, 7d")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and _DURATION.match(value.strip()):
        seconds = sum(float(n) * _UNIT_SECONDS[u] for n, u in _PART.findall(value.strip()))
    else:
        raise ValueError(f"{value!r} is not a duration such as 30s, 5m, 1h30m or 7d")
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return seconds


Duration = Annotated[float, BeforeValidator(parse_duration)]
"""Seconds, written ``30s``, ``5m``, ``1h30m``, ``7d`` or as a number."""

_MATCHER = re.compile(r'^\s*([A-Za-z_][A-Za-z0-9_.]*)\s*(=~|!~|!=|=)\s*(?:"((?:[^"\\]|\\.)*)"|(.*?))\s*$')


def _check_matcher(value: str) -> str:
    match = _MATCHER.match(value)
    if match is None:
        raise ValueError(f'{value!r} is not a matcher such as severity="page", team!=ml or model=~"gpt-.*"')
    if match.group(2) in ("=~", "!~"):
        pattern = match.group(3) if match.group(3) is not None else match.group(4)
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"{value!r}: bad regular expression: {exc}") from exc
    return value


Matcher = Annotated[str, AfterValidator(_check_matcher)]
"""A label matcher as Alertmanager writes one: ``name="value"``, ``name!=value``, ``name=~re``, ``name!~re``."""


def parse_matcher(value: str) -> tuple[str, str, str]:
    """``(label, op, value)`` of a matcher already validated by ``Matcher``; ``op`` is ``=``, ``!=``, ``=~``
    or ``!~``."""
    match = _MATCHER.match(value)
    if match is None:
        raise ValueError(f"{value!r} is not a matcher")
    raw = match.group(3)
    text = raw.encode().decode("unicode_escape") if raw is not None else match.group(4)
    return match.group(1), match.group(2), text


# --- rules ------------------------------------------------------------------------------------------

Measure = Literal[
    "request_count",  # model calls in the window
    "request_rate",  # model calls per second
    "error_count",
    "error_rate",  # errors / requests, 0..1
    "latency_p50",  # milliseconds
    "latency_p95",
    "latency_p99",
    "ttft_p95",  # time to first token of streamed calls, milliseconds
    "tokens_per_request",  # (input + output) / requests
    "input_tokens",
    "output_tokens",
    "cost_usd",  # spend in the window
    "cost_per_hour",  # spend in the window scaled to an hour
]
"""What a threshold or anomaly rule watches: the figures the metrics API computes, over model-call spans."""

GroupBy = Literal["model", "provider", "project", "team", "user", "service", "operation", "organization"]
"""The dimensions a rule may group by (``organization`` is always a label of an alert)."""


class SpanWhere(ComponentConfig):
    """Which model-call spans a rule looks at; every field given must match."""

    organization: str | None = None
    project: str | None = None
    team: str | None = None
    user: str | None = None
    service: str | None = None
    model: str | None = None
    provider: str | None = None
    operation: str | None = None


class _RuleBase(ComponentConfig):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z_][A-Za-z0-9_:.-]*$")
    # Only this organization's data; unset: the rule is evaluated for each organization apart.
    organization: str | None = None
    where: SpanWhere = Field(default_factory=SpanWhere)
    labels: dict[str, str] = Field(default_factory=dict)
    # Go-template-like placeholders: ``{{ $value }}``, ``{{ $labels.model }}``, ``{{ $threshold }}``.
    annotations: dict[str, str] = Field(default_factory=dict)
    # How long the condition must hold before the alert fires (pending until then).
    for_: Duration = Field(default=0.0, alias="for")
    # How long the condition must stay clear before a firing alert resolves.
    keep_firing_for: Duration = 0.0
    # A query-service URL path (``/traces?model=…``) or absolute URL that notifications link to; default:
    # the web view filtered to the alert's labels and window.
    link: str | None = None


class ThresholdRule(_RuleBase):
    """Fires when ``measure`` over the last ``window``, per group, crosses ``threshold``."""

    kind: Literal["threshold"]
    measure: Measure
    window: Duration = 300.0
    group_by: list[GroupBy] = Field(default_factory=list)
    op: Literal[">", ">=", "<", "<="] = ">"
    threshold: float
    # Hysteresis: once firing, the alert resolves only when the measure is back past this value (default:
    # the threshold itself).
    resolve_threshold: float | None = None
    # Groups with fewer model calls in the window are not judged (a 100% error rate of one call is noise).
    min_requests: int = Field(default=1, ge=0)

    @model_validator(mode="after")
    def _hysteresis_side(self) -> ThresholdRule:
        rt = self.resolve_threshold
        if rt is not None and (
            (self.op in (">", ">=") and rt > self.threshold)
            or (self.op in ("<", "<=") and rt < self.threshold)
        ):
            raise ValueError("resolve_threshold must lie on the clear side of threshold")
        return self


class AnomalyRule(_RuleBase):
    """Fires when ``measure`` over the last ``window`` departs from its learned baseline.

    ``robust``: median and MAD of the same measure over the previous windows of ``history``. ``seasonal``:
    median and MAD of the windows at the same hour of day (and day of week when ``history`` covers three
    weeks or more), so a daily peak is not an anomaly. The score is ``|value - median| / (1.4826 * MAD)``
    (with a floor on MAD of ``min_spread`` relative to the median); it fires when the score exceeds
    ``sensitivity`` in ``direction``.
    """

    kind: Literal["anomaly"]
    measure: Measure
    window: Duration = 300.0
    group_by: list[GroupBy] = Field(default_factory=list)
    baseline: Literal["robust", "seasonal"] = "robust"
    history: Duration = 7 * 86400.0
    sensitivity: float = Field(default=4.0, gt=0)
    direction: Literal["up", "down", "both"] = "up"
    min_requests: int = Field(default=20, ge=0)
    # Baseline windows with data needed before the rule may fire.
    warmup: Duration = 3600.0
    min_spread: float = Field(default=0.05, ge=0)


class BudgetRule(_RuleBase):
    """Spend per ``scope`` over the current ``period`` (UTC day or calendar month) against ``amount_usd``.

    Fires one alert per crossed level (label ``level``: ``50%``, ``80%``, ``100%``) on actual spend, and one
    with ``level="forecast"`` when the forecast of period-end spend crosses the budget.
    """

    kind: Literal["budget"]
    scope: Literal["organization", "project", "team", "user"] = "organization"
    period: Literal["day", "month"] = "month"
    amount_usd: float = Field(gt=0)
    levels: list[float] = Field(default_factory=lambda: [0.5, 0.8, 1.0])
    forecast: bool = True

    @model_validator(mode="after")
    def _levels(self) -> BudgetRule:
        if any(level <= 0 for level in self.levels):
            raise ValueError("levels are fractions of the budget above 0 (0.5 for 50%)")
        return self


class BurnWindow(ComponentConfig):
    """One pair of the multi-window, multi-burn-rate scheme: fires when the burn rate over both ``long`` and
    ``short`` exceeds ``burn_rate``."""

    long: Duration
    short: Duration
    burn_rate: float = Field(gt=0)
    severity: str = "page"


def _default_burn_windows() -> list[BurnWindow]:
    # The SRE workbook's table for a 30-day objective: 2% of the budget in 1 h, 5% in 6 h (page), 10% in
    # 3 d (ticket), each with a short window one twelfth of the long one.
    return [
        BurnWindow(long=3600, short=300, burn_rate=14.4, severity="page"),
        BurnWindow(long=21600, short=1800, burn_rate=6.0, severity="page"),
        BurnWindow(long=259200, short=21600, burn_rate=1.0, severity="ticket"),
    ]


def _service() -> list[GroupBy]:
    return ["service"]


class SloRule(_RuleBase):
    """An objective on the success ratio (``sli: success``: calls without error) or on latency (``sli:
    latency``: calls faster than ``latency_threshold_ms``), alerting on error-budget burn rate."""

    kind: Literal["slo"]
    sli: Literal["success", "latency"] = "success"
    objective: float = Field(gt=0, lt=1)
    latency_threshold_ms: float | None = Field(default=None, gt=0)
    period: Duration = 30 * 86400.0
    group_by: list[GroupBy] = Field(default_factory=_service)
    windows: list[BurnWindow] = Field(default_factory=_default_burn_windows)
    min_requests: int = Field(default=1, ge=0)

    @model_validator(mode="after")
    def _latency_threshold(self) -> SloRule:
        if self.sli == "latency" and self.latency_threshold_ms is None:
            raise ValueError("an SLO on latency needs latency_threshold_ms")
        return self


Rule = Annotated[ThresholdRule | AnomalyRule | BudgetRule | SloRule, Field(discriminator="kind")]


# --- routing -------------------------------------------------------------------------------------------


class Route(ComponentConfig):
    """A node of the routing tree, as in Alertmanager: the first child whose matchers all match takes an
    alert (and its siblings too when that child says ``continue: true``); unset timings are inherited."""

    receiver: str | None = None
    matchers: list[Matcher] = Field(default_factory=list)
    group_by: list[str] | None = None  # ``["..."]``: group by every label
    group_wait: Duration | None = None
    group_interval: Duration | None = None
    repeat_interval: Duration | None = None
    continue_: bool = Field(default=False, alias="continue")
    routes: list[Route] = Field(default_factory=list)


class InhibitRule(ComponentConfig):
    """While an alert matching ``source_matchers`` fires, alerts matching ``target_matchers`` with the same
    values of the ``equal`` labels are not notified."""

    source_matchers: list[Matcher] = Field(min_length=1)
    target_matchers: list[Matcher] = Field(min_length=1)
    equal: list[str] = Field(default_factory=list)


# --- receivers -----------------------------------------------------------------------------------------


class _NotifierBase(ComponentConfig):
    send_resolved: bool = True
    timeout: Duration = 10.0


class SlackConfig(_NotifierBase):
    """A Slack incoming webhook; the message is Block Kit with a link to the trace list or dashboard."""

    api_url: str = Field(min_length=1)
    channel: str | None = None
    username: str | None = None


class PagerDutyConfig(_NotifierBase):
    """PagerDuty Events API v2: trigger on firing, resolve on resolved, one dedup key per alert group."""

    routing_key: str = Field(min_length=1)
    url: str = "https://events.pagerduty.com/v2/enqueue"
    severity: Literal["critical", "error", "warning", "info"] = "error"
    source: str = "llm-observer"


class EmailConfig(_NotifierBase):
    """SMTP with STARTTLS (``require_tls``), a plain-text and an HTML part."""

    to: list[str] = Field(min_length=1)
    from_: str = Field(alias="from", min_length=3)
    smarthost: str = Field(min_length=3)  # host:port
    auth_username: str | None = None
    auth_password: str | None = None
    require_tls: bool = True
    # Trust this PEM file (a private CA) instead of the system's; for tests and private mail relays.
    ca_file: str | None = None
    insecure_skip_verify: bool = False


class WebhookConfig(_NotifierBase):
    """A POST of the Alertmanager webhook payload (version 4), so tools that consume Alertmanager's read it."""

    url: str = Field(min_length=1)
    max_alerts: int = Field(default=0, ge=0)  # 0: all
    headers: dict[str, str] = Field(default_factory=dict)


class AlertmanagerConfig(_NotifierBase):
    """An Alertmanager to hand alerts to (``POST /api/v2/alerts``), for teams that already route with one."""

    url: str = Field(min_length=1)  # e.g. http://alertmanager:9093


class Receiver(ComponentConfig):
    name: str = Field(min_length=1)
    slack_configs: list[SlackConfig] = Field(default_factory=list)
    pagerduty_configs: list[PagerDutyConfig] = Field(default_factory=list)
    email_configs: list[EmailConfig] = Field(default_factory=list)
    webhook_configs: list[WebhookConfig] = Field(default_factory=list)
    alertmanager_configs: list[AlertmanagerConfig] = Field(default_factory=list)


class RetryConfig(ComponentConfig):
    """Notification retries: exponential backoff from ``initial`` to ``max`` until ``max_elapsed``."""

    initial: Duration = 1.0
    max: Duration = 60.0
    max_elapsed: Duration = 3600.0


class CorrelationConfig(ComponentConfig):
    """Alerts firing within ``window`` of each other that share a value of one of ``dimensions`` form one
    incident."""

    enabled: bool = True
    window: Duration = 600.0
    dimensions: list[str] = Field(default_factory=lambda: ["provider", "model", "project", "service"])


def _default_route() -> Route:
    return Route(
        receiver="default",
        group_by=["alertname", "organization_id"],
        group_wait=30.0,
        group_interval=300.0,
        repeat_interval=4 * 3600.0,
    )


class AlertingConfig(ComponentConfig):
    """``alerting:`` — rules evaluated inside the service, and where their notifications go."""

    # The id of the exporter whose ClickHouse store the rules read (as ``query.storage``).
    storage: str = Field(default="clickhouse", min_length=1)
    evaluation_interval: Duration = 30.0
    # The state file (alert states, incidents, silences, notification log, outbox); relative paths are under
    # the data dir.
    state_path: str = "alerting.sqlite"
    # The address people open the web view at, for links in notifications.
    external_url: str = "http://127.0.0.1:8080"
    # Spans arrive late (batching, WAL, exporter queues): windows end this long before now.
    evaluation_delay: Duration = 15.0
    rules: list[Rule] = Field(default_factory=list)
    route: Route = Field(default_factory=_default_route)
    inhibit_rules: list[InhibitRule] = Field(default_factory=list)
    receivers: list[Receiver] = Field(default_factory=lambda: [Receiver(name="default")])
    retry: RetryConfig = Field(default_factory=RetryConfig)
    correlation: CorrelationConfig = Field(default_factory=CorrelationConfig)

    @model_validator(mode="after")
    def _references(self) -> AlertingConfig:
        names = [r.name for r in self.rules]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"rule names must be unique: {', '.join(duplicates)}")
        receivers = {r.name for r in self.receivers}
        if len(receivers) != len(self.receivers):
            raise ValueError("receiver names must be unique")
        if self.route.receiver is None:
            raise ValueError("route.receiver: the root route needs a receiver")

        def check(route: Route, path: str) -> None:
            if route.receiver is not None and route.receiver not in receivers:
                known = ", ".join(sorted(receivers))
                raise ValueError(f"{path}.receiver: no receiver named {route.receiver!r} (known: {known})")
            for index, child in enumerate(route.routes):
                check(child, f"{path}.routes[{index}]")

        check(self.route, "route")
        return self
