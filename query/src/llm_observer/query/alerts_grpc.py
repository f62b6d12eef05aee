"""The alerting RPCs of ``llm_observer.query.v1.QueryService`` (ListAlerts, ListAlertRules, TestAlertRule,
ListIncidents, ListSilences, CreateSilence, ExpireSilence): each a function of the backend, the caller and
the request message, giving the response message.

They share their rules with the REST routes (``alerts_rest``): the same organization scoping, defaults and
refusals, raised as the package's exceptions, which ``grpc_api`` turns into status codes (``NotFound`` →
NOT_FOUND, ``InvalidArgument`` → INVALID_ARGUMENT, ``PermissionDenied`` → PERMISSION_DENIED).
"""

from __future__ import annotations

import json

from llm_observer.kernel.auth import Principal
from llm_observer.query.alerting.model import Alert, BacktestHit, Incident, RuleInfo, Silence
from llm_observer.query.alerts_rest import (
    backtest_window,
    check_states,
    create_silence,
    expire_silence,
    run_backtest,
    silence_window,
)
from llm_observer.query.backend import QueryBackend
from llm_observer.query.v1 import llm_observer_query_v1_pb2 as pb
from llm_observer.storage.clickhouse.reads import InvalidArgument, check_time_ns


def _time(value: int, name: str) -> int | None:
    """A time field of a request: None when unset (0), else a time storage can hold."""
    return check_time_ns(value, name) if value else None


def alert_message(alert: Alert) -> pb.Alert:
    message = pb.Alert(
        fingerprint=alert.fingerprint,
        rule=alert.rule,
        organization_id=alert.organization_id,
        state=alert.state,
        labels=alert.labels,
        annotations=alert.annotations,
        value=alert.value,
        active_since_unix_nano=alert.active_since_ns,
        incident_id=alert.incident_id or "",
        generator_url=alert.generator_url,
    )
    if alert.fired_at_ns:
        message.fired_at_unix_nano = alert.fired_at_ns
    if alert.resolved_at_ns:
        message.resolved_at_unix_nano = alert.resolved_at_ns
    return message


def rule_message(rule: RuleInfo) -> pb.AlertRule:
    message = pb.AlertRule(
        name=rule.name,
        kind=rule.kind,
        organization_id=rule.organization_id or "",
        last_error=rule.last_error or "",
    )
    # Through JSON: the spec is the YAML's values (numbers, strings, lists, maps), which a Struct holds.
    message.spec.update(json.loads(json.dumps(rule.spec, default=str)))
    if rule.last_evaluated_ns:
        message.last_evaluated_unix_nano = rule.last_evaluated_ns
    return message


def hit_message(hit: BacktestHit) -> pb.BacktestHit:
    message = pb.BacktestHit(labels=hit.labels, fired_at_unix_nano=hit.fired_at_ns, peak_value=hit.peak_value)
    if hit.resolved_at_ns is not None:
        message.resolved_at_unix_nano = hit.resolved_at_ns
    return message


def incident_message(incident: Incident) -> pb.Incident:
    message = pb.Incident(
        id=incident.id,
        organization_id=incident.organization_id,
        dimension=incident.dimension,
        value=incident.value,
        started_at_unix_nano=incident.started_at_ns,
        alert_fingerprints=incident.alert_fingerprints,
        rules=incident.rules,
        summary=incident.summary,
    )
    if incident.resolved_at_ns is not None:
        message.resolved_at_unix_nano = incident.resolved_at_ns
    return message


def silence_message(silence: Silence, now_ns: int) -> pb.Silence:
    return pb.Silence(
        id=silence.id,
        organization_id=silence.organization_id,
        matchers=silence.matchers,
        starts_at_unix_nano=silence.starts_at_ns,
        ends_at_unix_nano=silence.ends_at_ns,
        state=silence.state(now_ns),
        created_by=silence.created_by,
        comment=silence.comment,
    )


async def list_alerts(
    backend: QueryBackend, principal: Principal, request: pb.ListAlertsRequest
) -> pb.ListAlertsResponse:
    api, organization = backend.alerting(principal, request.organization_id or None)
    alerts = api.alerts(organization, check_states(request.states))
    return pb.ListAlertsResponse(alerts=[alert_message(alert) for alert in alerts])


async def list_rules(
    backend: QueryBackend, principal: Principal, request: pb.ListAlertRulesRequest
) -> pb.ListAlertRulesResponse:
    api, organization = backend.alerting(principal, request.organization_id or None)
    return pb.ListAlertRulesResponse(rules=[rule_message(rule) for rule in api.rules(organization)])


async def test_rule(
    backend: QueryBackend, principal: Principal, request: pb.TestAlertRuleRequest
) -> pb.TestAlertRuleResponse:
    api, organization = backend.alerting(principal, request.organization_id or None)
    if not request.rule:
        raise InvalidArgument("rule must name an alert rule")
    start = _time(request.start_time_unix_nano, "start_time_unix_nano")
    end = _time(request.end_time_unix_nano, "end_time_unix_nano")
    step = repr(request.step_seconds) if request.step_seconds else None
    window = backtest_window(backend, start, end, step)
    hits = await run_backtest(api, organization, request.rule, window)
    return pb.TestAlertRuleResponse(
        hits=[hit_message(hit) for hit in hits],
        start_time_unix_nano=window[0],
        end_time_unix_nano=window[1],
        step_seconds=window[2] / 1e9,
    )


async def list_incidents(
    backend: QueryBackend, principal: Principal, request: pb.ListIncidentsRequest
) -> pb.ListIncidentsResponse:
    api, organization = backend.alerting(principal, request.organization_id or None)
    incidents = api.incidents(organization, request.include_resolved)
    return pb.ListIncidentsResponse(incidents=[incident_message(incident) for incident in incidents])


async def list_silences(
    backend: QueryBackend, principal: Principal, request: pb.ListSilencesRequest
) -> pb.ListSilencesResponse:
    api, organization = backend.alerting(principal, request.organization_id or None)
    now = backend.clock()
    return pb.ListSilencesResponse(silences=[silence_message(s, now) for s in api.silences(organization)])


async def create(backend: QueryBackend, principal: Principal, request: pb.CreateSilenceRequest) -> pb.Silence:
    api, organization = backend.alerting(principal, request.organization_id or None)
    now = backend.clock()
    starts = _time(request.starts_at_unix_nano, "starts_at_unix_nano")
    ends = (
        check_time_ns(request.ends_at_unix_nano, "ends_at_unix_nano")
        if request.HasField("ends_at_unix_nano")
        else None
    )
    duration = request.duration_seconds if request.HasField("duration_seconds") else None
    window = silence_window(now, starts, ends, duration)
    silence = create_silence(
        api, principal, organization, request.matchers, window, request.comment, request.created_by or None
    )
    return silence_message(silence, now)


async def expire(backend: QueryBackend, principal: Principal, request: pb.ExpireSilenceRequest) -> pb.Silence:
    api, organization = backend.alerting(principal, request.organization_id or None)
    if not request.id:
        raise InvalidArgument("id must name a silence")
    return silence_message(expire_silence(api, organization, request.id), backend.clock())
