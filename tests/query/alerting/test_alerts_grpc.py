"""The alerting RPCs of ``llm_observer.query.v1.QueryService`` over a real gRPC channel, on the in-memory
``AlertingApi``: shapes, tenancy, silences, a rule's test, NOT_FOUND when alerting is off."""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from llm_observer.query.v1 import llm_observer_query_v1_pb2 as pb
from llm_observer.query.v1 import llm_observer_query_v1_pb2_grpc as pb_grpc
from tests.query.alerting.api_support import Served, seeded_service, serving
from tests.query.conftest import KEY_A, KEY_A_WEB, KEY_B

MINUTE = 60 * 10**9
HOUR = 60 * MINUTE
MD_A = (("authorization", f"Bearer {KEY_A}"),)
MD_B = (("authorization", f"Bearer {KEY_B}"),)


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    async with seeded_service(tmp_path) as running:
        yield running


@pytest.fixture
async def stub(served: Served) -> AsyncIterator[pb_grpc.QueryServiceStub]:
    async with grpc.aio.insecure_channel(served.grpc_target) as channel:
        yield pb_grpc.QueryServiceStub(channel)


async def test_alerts_grpc_lists_alerts_of_the_callers_organization(
    served: Served, stub: pb_grpc.QueryServiceStub
) -> None:
    response = await stub.ListAlerts(pb.ListAlertsRequest(), metadata=MD_A)
    by_rule = {alert.rule: alert for alert in response.alerts}
    assert set(by_rule) == {"HighErrorRate", "SlowP95", "Budget"}
    firing = by_rule["HighErrorRate"]
    expected = served.api.alerts_[0]
    assert firing.fingerprint == expected.fingerprint
    assert dict(firing.labels) == expected.labels
    assert dict(firing.annotations) == {"summary": "openai error rate is 12%"}
    assert (firing.state, firing.value, firing.incident_id) == ("firing", 0.12, "inc-1")
    assert firing.active_since_unix_nano == expected.active_since_ns
    assert firing.fired_at_unix_nano == expected.fired_at_ns
    assert not firing.HasField("resolved_at_unix_nano")
    assert math.isnan(by_rule["SlowP95"].value)
    assert not by_rule["SlowP95"].HasField("fired_at_unix_nano")
    pending = await stub.ListAlerts(pb.ListAlertsRequest(states=["pending"]), metadata=MD_A)
    assert [a.rule for a in pending.alerts] == ["SlowP95"]
    as_b = await stub.ListAlerts(pb.ListAlertsRequest(), metadata=MD_B)
    assert [(a.rule, a.organization_id, a.labels["provider"]) for a in as_b.alerts] == [
        ("HighErrorRate", "org-b", "anthropic")
    ]
    resolved = by_rule["Budget"]
    assert resolved.resolved_at_unix_nano == served.api.alerts_[2].resolved_at_ns


async def test_alerts_grpc_refusals(served: Served, stub: pb_grpc.QueryServiceStub) -> None:
    cases = [
        (stub.ListAlerts(pb.ListAlertsRequest(organization_id="org-b"), metadata=MD_A), "PERMISSION_DENIED"),
        (
            stub.ListAlerts(pb.ListAlertsRequest(), metadata=(("authorization", f"Bearer {KEY_A_WEB}"),)),
            "PERMISSION_DENIED",
        ),
        (stub.ListAlerts(pb.ListAlertsRequest()), "UNAUTHENTICATED"),
        (stub.ListAlerts(pb.ListAlertsRequest(states=["on fire"]), metadata=MD_A), "INVALID_ARGUMENT"),
        (stub.TestAlertRule(pb.TestAlertRuleRequest(rule="Nope"), metadata=MD_A), "NOT_FOUND"),
        (stub.TestAlertRule(pb.TestAlertRuleRequest(), metadata=MD_A), "INVALID_ARGUMENT"),
        (stub.ExpireSilence(pb.ExpireSilenceRequest(id="s404"), metadata=MD_A), "NOT_FOUND"),
        (
            stub.CreateSilence(pb.CreateSilenceRequest(matchers=['a="b"'], comment="c"), metadata=MD_A),
            "INVALID_ARGUMENT",  # neither an end nor a duration
        ),
    ]
    for call, code in cases:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call
        assert caught.value.code().name == code, caught.value.details()


async def test_alerts_grpc_not_found_when_alerting_is_off(tmp_path: Path) -> None:
    async with serving(tmp_path, None) as off, grpc.aio.insecure_channel(off.grpc_target) as channel:
        stub = pb_grpc.QueryServiceStub(channel)
        for call in (
            stub.ListAlerts(pb.ListAlertsRequest()),
            stub.ListAlertRules(pb.ListAlertRulesRequest()),
            stub.TestAlertRule(pb.TestAlertRuleRequest(rule="R")),
            stub.ListIncidents(pb.ListIncidentsRequest()),
            stub.ListSilences(pb.ListSilencesRequest()),
            stub.CreateSilence(pb.CreateSilenceRequest(matchers=['a="b"'], comment="c", duration_seconds=60)),
            stub.ExpireSilence(pb.ExpireSilenceRequest(id="s1")),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await call
            assert caught.value.code() == grpc.StatusCode.NOT_FOUND
            assert caught.value.details() == "alerting is not enabled: list alerting in service.extensions"


async def test_alerts_grpc_rules_incidents_and_rule_test(
    served: Served, stub: pb_grpc.QueryServiceStub
) -> None:
    rules = await stub.ListAlertRules(pb.ListAlertRulesRequest(), metadata=MD_A)
    (rule,) = rules.rules
    assert (rule.name, rule.kind, rule.organization_id) == ("HighErrorRate", "threshold", "")
    assert rule.spec["measure"] == "error_rate"
    assert rule.spec["window"] == 300
    assert not rule.HasField("last_evaluated_unix_nano")
    incidents = await stub.ListIncidents(pb.ListIncidentsRequest(), metadata=MD_A)
    assert [(i.id, i.dimension, i.value, i.summary) for i in incidents.incidents] == [
        ("inc-1", "provider", "openai", "provider openai: error rate together since 14:02 UTC")
    ]
    everything = await stub.ListIncidents(pb.ListIncidentsRequest(include_resolved=True), metadata=MD_A)
    assert [i.id for i in everything.incidents] == ["inc-1", "inc-0"]
    assert everything.incidents[1].HasField("resolved_at_unix_nano")
    assert (await stub.ListIncidents(pb.ListIncidentsRequest(), metadata=MD_B)).incidents == []

    base = 1_780_000_000 * 10**9
    served.api.rules_[0].series[(("provider", "openai"),)] = [(base, 0.0), (base + 20 * MINUTE, 0.4)]
    response = await stub.TestAlertRule(
        pb.TestAlertRuleRequest(
            rule="HighErrorRate", start_time_unix_nano=base, end_time_unix_nano=base + HOUR, step_seconds=600
        ),
        metadata=MD_A,
    )
    (hit,) = response.hits
    assert (dict(hit.labels), hit.fired_at_unix_nano, hit.peak_value) == (
        {"provider": "openai"},
        base + 20 * MINUTE,
        0.4,
    )
    assert not hit.HasField("resolved_at_unix_nano")
    assert (response.start_time_unix_nano, response.end_time_unix_nano, response.step_seconds) == (
        base,
        base + HOUR,
        600,
    )
    assert served.api.calls[-1] == ("backtest", "org-a", "HighErrorRate", base, base + HOUR, 10 * MINUTE)


async def test_alerts_grpc_silences_stay_in_their_organization(
    served: Served, stub: pb_grpc.QueryServiceStub
) -> None:
    created = await stub.CreateSilence(
        pb.CreateSilenceRequest(matchers=['provider="openai"'], duration_seconds=7200, comment="outage"),
        metadata=MD_A,
    )
    assert (created.organization_id, created.state, created.created_by) == ("org-a", "active", "api_key:a")
    assert created.ends_at_unix_nano - created.starts_at_unix_nano == 2 * HOUR
    assert (await stub.ListSilences(pb.ListSilencesRequest(), metadata=MD_B)).silences == []
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.ExpireSilence(pb.ExpireSilenceRequest(id=created.id), metadata=MD_B)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    listed = await stub.ListSilences(pb.ListSilencesRequest(), metadata=MD_A)
    assert [s.id for s in listed.silences] == [created.id]
    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await stub.CreateSilence(
            pb.CreateSilenceRequest(matchers=["nonsense"], duration_seconds=60, comment="c"), metadata=MD_A
        )
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert len(served.api.silences_) == 1
    expired = await stub.ExpireSilence(pb.ExpireSilenceRequest(id=created.id), metadata=MD_A)
    assert (expired.id, expired.state) == (created.id, "expired")
    ends = time.time_ns() + HOUR
    until = await stub.CreateSilence(
        pb.CreateSilenceRequest(matchers=['a="b"'], ends_at_unix_nano=ends, comment="c", created_by="bob"),
        metadata=MD_A,
    )
    assert (until.ends_at_unix_nano, until.created_by) == (ends, "bob")
