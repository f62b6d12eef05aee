"""An in-memory ``AlertingApi`` for the API shape tests (REST, gRPC, CLI, web page), and a query service
serving it.

``MemoryAlerting`` keeps what a test puts in it (alerts, rules, incidents) and what the API creates
(silences) per organization, answers every call confined to the organization it is given, and records the
calls. Its ``backtest`` really evaluates: each rule is a threshold over a series of ``(time_ns, value)``
points per label set, judged at every step, so a test computes the expected hits itself. ``reload``
validates ``config`` as the ``alerting:`` section, so a bad one fails as a real reload would.

``serving(tmp_path, api, auth)`` starts a real ``QueryService`` (HTTP and gRPC on ephemeral ports, over an
embedded chDB store) whose running extensions hold ``api``.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx
from pydantic import TypeAdapter

from llm_observer.exporters.clickhouse import ClickHouseExporterConfig
from llm_observer.kernel.auth import AuthConfig
from llm_observer.kernel.telemetry import Telemetry
from llm_observer.query.alerting.config import AlertingConfig, Matcher
from llm_observer.query.alerting.model import (
    Alert,
    AlertState,
    BacktestHit,
    Incident,
    RuleInfo,
    Silence,
    fingerprint,
)
from llm_observer.query.service import QueryService
from tests.query.conftest import auth_config, local_config

_MATCHER: TypeAdapter[str] = TypeAdapter(Matcher)
_MINUTE = 60 * 10**9
_HOUR = 60 * _MINUTE


@dataclass
class SeriesRule:
    """A rule of the double: fires while a series' value exceeds ``threshold``."""

    info: RuleInfo
    threshold: float
    series: dict[tuple[tuple[str, str], ...], list[tuple[int, float]]] = field(default_factory=dict)


class MemoryAlerting:
    """``AlertingApi`` over plain lists; ``calls`` records ``(method, organization_id, …)``."""

    def __init__(self, clock: Callable[[], int] = time.time_ns) -> None:
        self.clock = clock
        self.alerts_: list[Alert] = []
        self.rules_: list[SeriesRule] = []
        self.incidents_: list[Incident] = []
        self.silences_: list[Silence] = []
        self.config: Mapping[str, Any] = {}
        self.reloads = 0
        self.calls: list[tuple[Any, ...]] = []
        self._ids = itertools.count(1)

    # --- what tests put in -----------------------------------------------------------------------------

    def add_alert(
        self,
        organization_id: str,
        rule: str,
        state: AlertState,
        value: float,
        active_since_ns: int,
        labels: Mapping[str, str] | None = None,
        **fields: Any,
    ) -> Alert:
        full = {"alertname": rule, "organization_id": organization_id, **(labels or {})}
        alert = Alert(
            fingerprint=fingerprint(full),
            rule=rule,
            organization_id=organization_id,
            labels=full,
            annotations=fields.pop("annotations", {}),
            state=state,
            value=value,
            active_since_ns=active_since_ns,
            **fields,
        )
        self.alerts_.append(alert)
        return alert

    def add_rule(
        self, name: str, organization_id: str | None, threshold: float, kind: str = "threshold", **spec: Any
    ) -> SeriesRule:
        info = RuleInfo(
            name=name,
            kind=kind,
            organization_id=organization_id,
            spec={"name": name, "kind": kind, "threshold": threshold, **spec},
            last_evaluated_ns=None,
            last_error=None,
        )
        rule = SeriesRule(info, threshold)
        self.rules_.append(rule)
        return rule

    def add_incident(self, incident: Incident) -> Incident:
        self.incidents_.append(incident)
        return incident

    # --- AlertingApi ---------------------------------------------------------------------------------

    @staticmethod
    def _visible(organization_id: str | None, owner: str | None) -> bool:
        return organization_id is None or owner is None or owner == organization_id

    def rules(self, organization_id: str | None) -> Sequence[RuleInfo]:
        self.calls.append(("rules", organization_id))
        return [r.info for r in self.rules_ if self._visible(organization_id, r.info.organization_id)]

    def alerts(self, organization_id: str | None, states: Sequence[AlertState] = ()) -> Sequence[Alert]:
        self.calls.append(("alerts", organization_id, tuple(states)))
        return [
            a
            for a in self.alerts_
            if (organization_id is None or a.organization_id == organization_id)
            and (not states or a.state in states)
        ]

    def incidents(self, organization_id: str | None, include_resolved: bool = False) -> Sequence[Incident]:
        self.calls.append(("incidents", organization_id, include_resolved))
        return [
            i
            for i in self.incidents_
            if (organization_id is None or i.organization_id == organization_id)
            and (include_resolved or i.resolved_at_ns is None)
        ]

    def silences(self, organization_id: str | None) -> Sequence[Silence]:
        self.calls.append(("silences", organization_id))
        return [s for s in self.silences_ if organization_id is None or s.organization_id == organization_id]

    def add_silence(
        self,
        organization_id: str,
        matchers: Sequence[str],
        starts_at_ns: int,
        ends_at_ns: int,
        created_by: str,
        comment: str,
    ) -> Silence:
        self.calls.append(("add_silence", organization_id, tuple(matchers)))
        for matcher in matchers:
            _MATCHER.validate_python(matcher)  # a ValidationError is a ValueError, as the protocol says
        if ends_at_ns <= starts_at_ns:
            raise ValueError("a silence must end after it starts")
        silence = Silence(
            id=f"s{next(self._ids)}",
            organization_id=organization_id,
            matchers=tuple(matchers),
            starts_at_ns=starts_at_ns,
            ends_at_ns=ends_at_ns,
            created_by=created_by,
            comment=comment,
        )
        self.silences_.append(silence)
        return silence

    def expire_silence(self, organization_id: str | None, silence_id: str) -> Silence | None:
        self.calls.append(("expire_silence", organization_id, silence_id))
        for index, silence in enumerate(self.silences_):
            if silence.id == silence_id and (
                organization_id is None or silence.organization_id == organization_id
            ):
                expired = replace(silence, ends_at_ns=min(silence.ends_at_ns, self.clock()))
                self.silences_[index] = expired
                return expired
        return None

    async def backtest(
        self, organization_id: str | None, rule_name: str, start_ns: int, end_ns: int, step_ns: int
    ) -> Sequence[BacktestHit]:
        self.calls.append(("backtest", organization_id, rule_name, start_ns, end_ns, step_ns))
        rule = next(
            (
                r
                for r in self.rules_
                if r.info.name == rule_name and self._visible(organization_id, r.info.organization_id)
            ),
            None,
        )
        if rule is None:
            raise KeyError(rule_name)
        hits: list[BacktestHit] = []
        for labels, points in rule.series.items():
            open_at: int | None = None
            peak = float("-inf")
            at = start_ns
            while at <= end_ns:
                # The value at a step is the last point at or before it.
                value = next((v for t, v in reversed(points) if t <= at), None)
                active = value is not None and value > rule.threshold
                if active and value is not None:
                    peak = max(peak, value)
                    open_at = at if open_at is None else open_at
                elif open_at is not None:
                    hits.append(BacktestHit(dict(labels), open_at, at, peak))
                    open_at, peak = None, float("-inf")
                at += step_ns
            if open_at is not None:
                hits.append(BacktestHit(dict(labels), open_at, None, peak))
        return hits

    async def reload(self) -> None:
        self.calls.append(("reload",))
        AlertingConfig.model_validate(self.config)
        self.reloads += 1


def seed(api: MemoryAlerting, now: int) -> None:
    """What the API tests read: for org-a a firing, a pending (value NaN) and a resolved alert, an open and
    a resolved incident; for org-b one firing alert; a rule of every organization and one of org-b's."""
    api.add_alert(
        "org-a",
        "HighErrorRate",
        "firing",
        0.12,
        now - 20 * _MINUTE,
        {"provider": "openai", "severity": "page"},
        fired_at_ns=now - 15 * _MINUTE,
        annotations={"summary": "openai error rate is 12%"},
        incident_id="inc-1",
        generator_url="http://127.0.0.1:8080/#/traces?provider=openai",
    )
    api.add_alert("org-a", "SlowP95", "pending", math.nan, now - 2 * _MINUTE, {"model": "gpt-4o"})
    api.add_alert(
        "org-a",
        "Budget",
        "resolved",
        80.0,
        now - 3 * _HOUR,
        fired_at_ns=now - 3 * _HOUR,
        resolved_at_ns=now - _HOUR,
    )
    api.add_alert("org-b", "HighErrorRate", "firing", 0.5, now - 5 * _MINUTE, {"provider": "anthropic"})
    api.add_rule("HighErrorRate", None, 0.05, measure="error_rate", window=300.0)
    api.add_rule("OrgBOnly", "org-b", 10.0)
    api.add_incident(
        Incident(
            id="inc-1",
            organization_id="org-a",
            dimension="provider",
            value="openai",
            started_at_ns=now - 15 * _MINUTE,
            resolved_at_ns=None,
            alert_fingerprints=(api.alerts_[0].fingerprint,),
            rules=("HighErrorRate",),
            summary="provider openai: error rate together since 14:02 UTC",
        )
    )
    api.add_incident(
        Incident(
            "inc-0", "org-a", "model", "gpt-4o", now - 5 * _HOUR, now - 4 * _HOUR, (), ("SlowP95",), "old"
        )
    )


@dataclass
class Served:
    service: QueryService
    api: MemoryAlerting
    extensions: dict[str, Any]
    http: httpx.AsyncClient

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.service.http_port}"

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.service.grpc_port}"


@contextlib.asynccontextmanager
async def serving(
    tmp_path: Path, api: MemoryAlerting | None, auth: AuthConfig | None = None
) -> AsyncIterator[Served]:
    """A started query service whose running extensions hold ``api`` (None: alerting off)."""
    extensions: dict[str, Any] = {} if api is None else {"alerting": api}
    service = QueryService(
        local_config(cache_ttl_seconds=0),
        ClickHouseExporterConfig(),
        None,
        data_dir=tmp_path,
        auth=auth if auth is not None else AuthConfig(),
        telemetry=Telemetry(),
        extensions=extensions,
    )
    await service.start()
    client = httpx.AsyncClient(base_url=f"http://127.0.0.1:{service.http_port}", timeout=30)
    try:
        yield Served(service, api if api is not None else MemoryAlerting(), extensions, client)
    finally:
        await client.aclose()
        await service.shutdown()


@contextlib.asynccontextmanager
async def seeded_service(tmp_path: Path) -> AsyncIterator[Served]:
    """``serving`` with auth on (``tests.query.conftest.auth_config``: org-a, org-a/web, org-b) over a
    ``MemoryAlerting`` holding ``seed``'s alerts, rules and incidents."""
    api = MemoryAlerting()
    seed(api, time.time_ns())
    async with serving(tmp_path, api, auth_config()) as running:
        yield running
