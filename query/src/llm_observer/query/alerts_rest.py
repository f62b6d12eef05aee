"""The REST API of alerting (``/api/v1/alerts…``): alerts, rules, a rule's test over past data, incidents,
silences and reloading the rules.

Every route is confined to the caller's organization (``QueryBackend.alerting``: the key's organization;
with auth off, every organization unless ``organization_id`` names one) and answers 404 ``not_found`` when no
extension of the process serves alerting. Times are RFC 3339 in and out; the data comes from the running
``AlertingApi`` (``llm_observer.query.alerting.model``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, get_args

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from llm_observer.kernel.auth import Principal
from llm_observer.kernel.errors import ConfigError
from llm_observer.query.alerting.config import Matcher, parse_duration
from llm_observer.query.alerting.model import (
    Alert,
    AlertingApi,
    AlertState,
    BacktestHit,
    Incident,
    RuleInfo,
    Silence,
)
from llm_observer.query.backend import NotFound, QueryBackend
from llm_observer.query.deps import Backend, QueryPrincipal
from llm_observer.query.formats import parse_step, parse_time, rfc3339
from llm_observer.semconv import attributes as attrs
from llm_observer.storage.clickhouse.reads import InvalidArgument

ALERT_STATES: tuple[AlertState, ...] = get_args(AlertState)

# A rule's test evaluates it once per step, each a query: a window of more steps asks for a larger step.
MAX_BACKTEST_STEPS = 2000
_SECOND_NS = 10**9
_MATCHER: TypeAdapter[str] = TypeAdapter(Matcher)


# --- documents -----------------------------------------------------------------------------------------


def _time(ns: int | None) -> str | None:
    return rfc3339(ns) if ns else None


def _number(value: float) -> float | None:
    """A value JSON can carry: NaN and infinities (a ratio over no calls) become null."""
    return value if math.isfinite(value) else None


def alert_document(alert: Alert) -> dict[str, Any]:
    return {
        "fingerprint": alert.fingerprint,
        "rule": alert.rule,
        "organization_id": alert.organization_id,
        "state": alert.state,
        "labels": dict(alert.labels),
        "annotations": dict(alert.annotations),
        "value": _number(alert.value),
        "active_since": _time(alert.active_since_ns),
        "fired_at": _time(alert.fired_at_ns),
        "resolved_at": _time(alert.resolved_at_ns),
        "incident_id": alert.incident_id,
        "generator_url": alert.generator_url,
    }


def rule_document(rule: RuleInfo) -> dict[str, Any]:
    return {
        "name": rule.name,
        "kind": rule.kind,
        "organization_id": rule.organization_id,
        "spec": rule.spec,
        "last_evaluated": _time(rule.last_evaluated_ns),
        "last_error": rule.last_error,
    }


def hit_document(hit: BacktestHit) -> dict[str, Any]:
    return {
        "labels": dict(hit.labels),
        "fired_at": rfc3339(hit.fired_at_ns),
        "resolved_at": _time(hit.resolved_at_ns),
        "peak_value": _number(hit.peak_value),
    }


def incident_document(incident: Incident) -> dict[str, Any]:
    return {
        "id": incident.id,
        "organization_id": incident.organization_id,
        "dimension": incident.dimension,
        "value": incident.value,
        "started_at": rfc3339(incident.started_at_ns),
        "resolved_at": _time(incident.resolved_at_ns),
        "alert_fingerprints": list(incident.alert_fingerprints),
        "rules": list(incident.rules),
        "summary": incident.summary,
    }


def silence_document(silence: Silence, now_ns: int) -> dict[str, Any]:
    return {
        "id": silence.id,
        "organization_id": silence.organization_id,
        "matchers": list(silence.matchers),
        "starts_at": rfc3339(silence.starts_at_ns),
        "ends_at": rfc3339(silence.ends_at_ns),
        "state": silence.state(now_ns),
        "created_by": silence.created_by,
        "comment": silence.comment,
    }


# --- what REST and gRPC share -----------------------------------------------------------------------


def check_states(states: Sequence[str]) -> tuple[AlertState, ...]:
    """The alert states asked for, each one of ``pending``, ``firing``, ``resolved``."""
    chosen: list[AlertState] = []
    for state in states:
        found = next((known for known in ALERT_STATES if known == state.strip().lower()), None)
        if found is None:
            raise InvalidArgument(f"state must be one of {', '.join(ALERT_STATES)}, got {state!r}")
        chosen.append(found)
    return tuple(chosen)


def backtest_window(
    backend: QueryBackend, start_ns: int | None, end_ns: int | None, step: str | None
) -> tuple[int, int, int]:
    """``(start_ns, end_ns, step_ns)`` of a rule's test: the window defaults to the last
    ``query.default_lookback_hours`` and the step to about 120 evaluations; at most
    ``MAX_BACKTEST_STEPS`` evaluations."""
    end = end_ns if end_ns is not None else backend.clock()
    hours = backend.config.default_lookback_hours
    start = start_ns if start_ns is not None else end - int(hours * 3600 * _SECOND_NS)
    if start >= end:
        raise InvalidArgument("start_time must be before end_time")
    step_ns = parse_step(step, start, end)
    if (end - start) // step_ns > MAX_BACKTEST_STEPS:
        raise InvalidArgument(
            f"the window holds {(end - start) // step_ns} steps of {step_ns / _SECOND_NS:g}s; "
            f"at most {MAX_BACKTEST_STEPS}: use a larger step or a shorter window"
        )
    return start, end, step_ns


async def run_backtest(
    api: AlertingApi, organization: str | None, rule: str, window: tuple[int, int, int]
) -> Sequence[BacktestHit]:
    """The rule's hits over ``window``; ``NotFound`` for a rule the organization does not have."""
    start, end, step = window
    try:
        return await api.backtest(organization, rule, start, end, step)
    except KeyError as exc:
        raise NotFound(f"no alert rule named {rule!r}") from exc


def silence_window(
    now_ns: int, starts_at_ns: int | None, ends_at_ns: int | None, duration: object | None
) -> tuple[int, int]:
    """``(starts_at_ns, ends_at_ns)`` of a new silence: from ``starts_at`` (default now) to ``ends_at`` or
    for ``duration`` (``2h``, ``30m`` or seconds); exactly one of the two."""
    start = starts_at_ns if starts_at_ns is not None else now_ns
    if (ends_at_ns is None) == (duration is None):
        raise InvalidArgument("give either ends_at or duration (such as 2h) for a silence")
    if ends_at_ns is not None:
        end = ends_at_ns
    else:
        try:
            seconds = parse_duration(duration)
        except ValueError as exc:
            raise InvalidArgument(f"duration: {exc}") from exc
        end = start + int(seconds * _SECOND_NS)
    if end <= start:
        raise InvalidArgument("a silence must end after it starts")
    if end <= now_ns:
        raise InvalidArgument("a silence must end in the future")
    return start, end


def create_silence(
    api: AlertingApi,
    principal: Principal,
    organization: str | None,
    matchers: Sequence[str],
    window: tuple[int, int],
    comment: str,
    created_by: str | None,
) -> Silence:
    """A new silence of the organization (auth off and none named: the default organization)."""
    if not matchers:
        raise InvalidArgument('a silence needs at least one matcher, such as alertname="HighErrorRate"')
    if not comment.strip():
        raise InvalidArgument("a silence needs a comment saying why")
    for index, matcher in enumerate(matchers):
        try:
            _MATCHER.validate_python(matcher)
        except ValidationError as exc:
            problem = exc.errors()[0]["msg"].removeprefix("Value error, ")
            raise InvalidArgument(f"matchers[{index}]: {problem}") from exc
    try:
        return api.add_silence(
            organization or attrs.DEFAULT_ORGANIZATION,
            list(matchers),
            window[0],
            window[1],
            created_by or principal.subject,
            comment,
        )
    except ValueError as exc:
        raise InvalidArgument(str(exc)) from exc


def expire_silence(api: AlertingApi, organization: str | None, silence_id: str) -> Silence:
    silence = api.expire_silence(organization, silence_id)
    if silence is None:
        raise NotFound(f"silence {silence_id} not found")
    return silence


async def reload_rules(api: AlertingApi) -> None:
    """Re-read the alerting config; a bad one is ``InvalidArgument`` with its problems (the running rules
    stay as they were)."""
    try:
        await api.reload()
    except (ConfigError, ValueError) as exc:
        raise InvalidArgument(f"the alerting config was not reloaded: {exc}") from exc


# --- the router ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AlertingScope:
    """The alerting API, the caller, and the organization the caller acts on (None: every one)."""

    api: AlertingApi
    principal: Principal
    organization_id: str | None


async def alerting_scope(
    principal: QueryPrincipal,
    backend: Backend,
    organization_id: Annotated[
        str | None, Query(description="with auth off, only this organization; with auth on, the key's")
    ] = None,
) -> AlertingScope:
    api, organization = backend.alerting(principal, organization_id)
    return AlertingScope(api, principal, organization)


Alerting = Annotated[AlertingScope, Depends(alerting_scope)]


class BacktestRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    start_time: str | None = Field(default=None, description="RFC 3339; default end_time minus 24 h")
    end_time: str | None = Field(default=None, description="RFC 3339; default now")
    step: str | float | None = Field(
        default=None, description="seconds or 30s, 5m, 1h; default about 120 evaluations"
    )


class SilenceRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    matchers: list[str] = Field(
        min_length=1, description='label matchers: name="value", name!=value, name=~regex, name!~regex'
    )
    comment: str = Field(min_length=1, max_length=4096)
    starts_at: str | None = Field(default=None, description="RFC 3339; default now")
    ends_at: str | None = Field(default=None, description="RFC 3339; or give duration")
    duration: str | float | None = Field(default=None, description="2h, 30m, 1d or seconds; or give ends_at")
    created_by: str | None = Field(default=None, max_length=256, description="default: the caller")
    organization_id: str | None = Field(
        default=None, description="with auth off, the silence's organization (default 'default')"
    )


def build_router() -> APIRouter:
    router = APIRouter(tags=["alerting"])

    @router.get("/api/v1/alerts/status")
    async def alerting_status(principal: QueryPrincipal, backend: Backend) -> dict[str, Any]:
        """Whether this process runs alerting (``{"enabled": true}``); the other alert routes answer 404
        when it does not."""
        enabled = backend.alerting_enabled()
        return {"enabled": enabled, "message": None if enabled else "alerting is not enabled"}

    @router.get("/api/v1/alerts")
    async def list_alerts(
        scope: Alerting,
        state: Annotated[
            list[str] | None, Query(description="pending | firing | resolved (repeatable); default all")
        ] = None,
    ) -> dict[str, Any]:
        """The alerts the engine tracks: firing and pending ones, and those resolved recently."""
        alerts = scope.api.alerts(scope.organization_id, check_states(state or ()))
        return {"alerts": [alert_document(alert) for alert in alerts]}

    @router.get("/api/v1/alerts/rules")
    async def list_rules(scope: Alerting) -> dict[str, Any]:
        """The configured rules the caller's organization is evaluated by, with their last evaluation."""
        return {"rules": [rule_document(rule) for rule in scope.api.rules(scope.organization_id)]}

    @router.post("/api/v1/alerts/rules/{name}/test")
    async def test_rule(
        name: str, scope: Alerting, backend: Backend, body: BacktestRequest | None = None
    ) -> dict[str, Any]:
        """Evaluate a rule over past data at every ``step``: when it would have fired (and resolved)."""
        body = body or BacktestRequest()
        step = None if body.step is None else str(body.step)
        window = backtest_window(
            backend, parse_time(body.start_time, "start_time"), parse_time(body.end_time, "end_time"), step
        )
        hits = await run_backtest(scope.api, scope.organization_id, name, window)
        return {
            "rule": name,
            "start_time": rfc3339(window[0]),
            "end_time": rfc3339(window[1]),
            "step_seconds": window[2] / _SECOND_NS,
            "hits": [hit_document(hit) for hit in hits],
        }

    @router.get("/api/v1/alerts/incidents")
    async def list_incidents(scope: Alerting, include_resolved: bool = False) -> dict[str, Any]:
        """Alerts grouped into incidents (fired close in time, sharing a dimension), with a hint."""
        incidents = scope.api.incidents(scope.organization_id, include_resolved)
        return {"incidents": [incident_document(incident) for incident in incidents]}

    @router.get("/api/v1/alerts/silences")
    async def list_silences(scope: Alerting, backend: Backend) -> dict[str, Any]:
        """Silences, pending, active and expired."""
        now = backend.clock()
        return {"silences": [silence_document(s, now) for s in scope.api.silences(scope.organization_id)]}

    @router.post("/api/v1/alerts/silences", status_code=201)
    async def add_silence(body: SilenceRequest, scope: Alerting, backend: Backend) -> JSONResponse:
        """Mute the alerts matching every matcher, from ``starts_at`` until ``ends_at`` (or ``duration``)."""
        organization = scope.principal.check_organization(body.organization_id) or scope.organization_id
        now = backend.clock()
        window = silence_window(
            now, parse_time(body.starts_at, "starts_at"), parse_time(body.ends_at, "ends_at"), body.duration
        )
        silence = create_silence(
            scope.api, scope.principal, organization, body.matchers, window, body.comment, body.created_by
        )
        return JSONResponse(silence_document(silence, now), status_code=201)

    @router.delete("/api/v1/alerts/silences/{silence_id}")
    async def delete_silence(silence_id: str, scope: Alerting, backend: Backend) -> dict[str, Any]:
        """Expire a silence now; 404 when the caller's organization has no silence of that id."""
        return silence_document(expire_silence(scope.api, scope.organization_id, silence_id), backend.clock())

    @router.post("/api/v1/alerts/reload")
    async def reload(scope: Alerting) -> dict[str, Any]:
        """Re-read the rules, routes and receivers from the config file (as SIGHUP does); 400 with the
        problems when it is not valid, the running rules kept."""
        await reload_rules(scope.api)
        return {"reloaded": True}

    return router
