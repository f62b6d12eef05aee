"""Alerting's values: what evaluation yields (``Sample``), what the engine keeps (``Alert``), what people
create (``Silence``), what correlation forms (``Incident``), and ``AlertingApi``, what the query service's
REST and gRPC APIs call.

Times are nanoseconds since the epoch (as everywhere in the store); labels are plain ``dict[str, str]``.
Every alert and silence belongs to one organization (``organization_id``, also the alert label of that
name): the APIs show a caller only their own.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

AlertState = Literal["pending", "firing", "resolved"]

ALERTNAME = "alertname"  # the rule's name, as Alertmanager labels it
ORGANIZATION = "organization_id"


def fingerprint(labels: Mapping[str, str]) -> str:
    """A stable id of a label set (the same labels, in any order, give the same id): 16 hex digits."""
    digest = hashlib.sha256()
    for name in sorted(labels):
        digest.update(name.encode())
        digest.update(b"\xff")
        digest.update(labels[name].encode())
        digest.update(b"\xff")
    return digest.hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Sample:
    """One rule's verdict on one group at one evaluation.

    ``labels`` hold ``alertname``, ``organization_id``, the rule's ``group_by`` values, the rule's own labels
    and any the kind adds (``level`` of a budget; ``severity``, ``long_window`` and ``short_window`` of an SLO burn). ``active``: the
    condition holds now. ``clear``: it is clear past the hysteresis band (a firing alert may resolve); a
    sample neither active nor clear keeps the alert as it is. ``annotations`` are already rendered.
    """

    rule: str
    labels: dict[str, str]
    value: float
    active: bool
    clear: bool
    annotations: dict[str, str] = field(default_factory=dict)
    # The time range of the data the verdict is about (for links and "would have fired at").
    window_start_ns: int = 0
    window_end_ns: int = 0


@dataclass(slots=True)
class Alert:
    """An alert the engine tracks, one per rule and label set (``fingerprint`` of ``labels``)."""

    fingerprint: str
    rule: str
    organization_id: str
    labels: dict[str, str]
    annotations: dict[str, str]
    state: AlertState
    value: float
    active_since_ns: int  # when the condition started holding (pending from then)
    fired_at_ns: int | None = None  # when it went pending → firing
    resolved_at_ns: int | None = None
    last_evaluated_ns: int = 0
    last_active_ns: int = 0  # the last evaluation at which the condition held (``keep_firing_for``)
    incident_id: str | None = None
    generator_url: str = ""


@dataclass(frozen=True, slots=True)
class Silence:
    """Mutes the alerts of ``organization_id`` that match every matcher between ``starts_at`` and
    ``ends_at`` (an expired silence keeps its row, with ``ends_at`` moved to when it was expired)."""

    id: str
    organization_id: str
    matchers: tuple[str, ...]  # ``name="value"`` etc., as in the config
    starts_at_ns: int
    ends_at_ns: int
    created_by: str
    comment: str

    def state(self, now_ns: int) -> Literal["pending", "active", "expired"]:
        if now_ns < self.starts_at_ns:
            return "pending"
        return "active" if now_ns < self.ends_at_ns else "expired"


@dataclass(frozen=True, slots=True)
class Incident:
    """Alerts that fired close in time and share a dimension, notified as one."""

    id: str
    organization_id: str
    dimension: str  # e.g. ``provider``
    value: str  # e.g. ``openai``
    started_at_ns: int
    resolved_at_ns: int | None
    alert_fingerprints: tuple[str, ...]
    rules: tuple[str, ...]
    # e.g. "provider openai: error rate, p95 latency and cost anomalies together since 14:02 UTC"
    summary: str


@dataclass(frozen=True, slots=True)
class RuleInfo:
    """A configured rule as the API shows it."""

    name: str
    kind: str
    organization_id: str | None  # None: evaluated for every organization
    spec: dict[str, object]  # the rule's config, as in the YAML
    last_evaluated_ns: int | None
    last_error: str | None


@dataclass(frozen=True, slots=True)
class BacktestHit:
    """When a rule would have fired (and resolved) over past data."""

    labels: dict[str, str]
    fired_at_ns: int
    resolved_at_ns: int | None
    peak_value: float


@runtime_checkable
class AlertingApi(Protocol):
    """What the REST and gRPC APIs call. ``organization_id`` None means every organization (auth off);
    otherwise a call sees and touches only that organization's rules, alerts, incidents and silences."""

    def rules(self, organization_id: str | None) -> Sequence[RuleInfo]: ...

    def alerts(self, organization_id: str | None, states: Sequence[AlertState] = ()) -> Sequence[Alert]: ...

    def incidents(
        self, organization_id: str | None, include_resolved: bool = False
    ) -> Sequence[Incident]: ...

    def silences(self, organization_id: str | None) -> Sequence[Silence]: ...

    def add_silence(
        self,
        organization_id: str,
        matchers: Sequence[str],
        starts_at_ns: int,
        ends_at_ns: int,
        created_by: str,
        comment: str,
    ) -> Silence:
        """``ValueError`` for a bad matcher or an end before the start."""
        ...

    def expire_silence(self, organization_id: str | None, silence_id: str) -> Silence | None:
        """The expired silence; None when the organization has no silence of that id."""
        ...

    async def backtest(
        self, organization_id: str | None, rule_name: str, start_ns: int, end_ns: int, step_ns: int
    ) -> Sequence[BacktestHit]:
        """Evaluate the rule at every ``step_ns`` over past data; ``KeyError`` for an unknown rule."""
        ...

    async def reload(self) -> None:
        """Re-read the rules, routes and receivers from the config file."""
        ...
