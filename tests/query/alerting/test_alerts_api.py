"""The REST API of alerting (``/api/v1/alerts…``) on a running query service, over the in-memory
``AlertingApi`` of ``api_support``: shapes, tenancy, silences, a rule's test over past data, reload."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from llm_observer.query.formats import parse_time, rfc3339
from tests.query.alerting.api_support import MemoryAlerting, Served, seed, seeded_service, serving
from tests.query.conftest import KEY_A, KEY_A_WEB, KEY_B

MINUTE = 60 * 10**9
HOUR = 60 * MINUTE


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    async with seeded_service(tmp_path) as running:
        yield running


@pytest.fixture
async def open_served(tmp_path: Path) -> AsyncIterator[Served]:
    api = MemoryAlerting()
    seed(api, time.time_ns())
    async with serving(tmp_path, api) as running:
        yield running


async def test_alerts_api_off_answers_not_found_everywhere(tmp_path: Path) -> None:
    async with serving(tmp_path, None) as off:
        status = await off.http.get("/api/v1/alerts/status")
        assert status.status_code == 200
        assert status.json()["enabled"] is False
        for method, path in [
            ("GET", "/api/v1/alerts"),
            ("GET", "/api/v1/alerts/rules"),
            ("POST", "/api/v1/alerts/rules/X/test"),
            ("GET", "/api/v1/alerts/incidents"),
            ("GET", "/api/v1/alerts/silences"),
            ("DELETE", "/api/v1/alerts/silences/s1"),
            ("POST", "/api/v1/alerts/reload"),
        ]:
            response = await off.http.request(method, path)
            assert response.status_code == 404, (method, path, response.text)
            assert response.json() == {
                "error": {
                    "code": "not_found",
                    "message": "alerting is not enabled: list alerting in service.extensions",
                }
            }
        created = await off.http.post(
            "/api/v1/alerts/silences", json={"matchers": ['a="b"'], "comment": "c", "duration": "1h"}
        )
        assert created.status_code == 404


async def test_alerts_api_extension_found_when_it_starts_later(tmp_path: Path) -> None:
    async with serving(tmp_path, None) as running:
        assert (await running.http.get("/api/v1/alerts")).status_code == 404
        # The mapping is the process's live one: an extension started after the query service is found.
        running.extensions["alerting"] = running.api
        running.api.add_alert("default", "Late", "firing", 1.0, time.time_ns())
        response = await running.http.get("/api/v1/alerts")
        assert response.status_code == 200
        assert [a["rule"] for a in response.json()["alerts"]] == ["Late"]
        assert (await running.http.get("/api/v1/alerts/status")).json()["enabled"] is True


async def test_alerts_api_lists_alerts_with_their_shape(served: Served) -> None:
    response = await served.http.get("/api/v1/alerts", headers=_auth(KEY_A))
    assert response.status_code == 200
    alerts = response.json()["alerts"]
    assert {a["rule"] for a in alerts} == {"HighErrorRate", "SlowP95", "Budget"}
    firing = next(a for a in alerts if a["rule"] == "HighErrorRate")
    expected = served.api.alerts_[0]
    assert firing == {
        "fingerprint": expected.fingerprint,
        "rule": "HighErrorRate",
        "organization_id": "org-a",
        "state": "firing",
        "labels": {
            "alertname": "HighErrorRate",
            "organization_id": "org-a",
            "provider": "openai",
            "severity": "page",
        },
        "annotations": {"summary": "openai error rate is 12%"},
        "value": 0.12,
        "active_since": rfc3339(expected.active_since_ns),
        "fired_at": rfc3339(expected.fired_at_ns or 0),
        "resolved_at": None,
        "incident_id": "inc-1",
        "generator_url": "http://127.0.0.1:8080/#/traces?provider=openai",
    }
    assert parse_time(firing["active_since"], "t") == expected.active_since_ns
    pending = next(a for a in alerts if a["rule"] == "SlowP95")
    assert pending["value"] is None  # NaN is not JSON
    assert pending["fired_at"] is None


async def test_alerts_api_filters_by_state(served: Served) -> None:
    response = await served.http.get(
        "/api/v1/alerts", params=[("state", "firing"), ("state", "pending")], headers=_auth(KEY_A)
    )
    assert sorted(a["state"] for a in response.json()["alerts"]) == ["firing", "pending"]
    assert served.api.calls[-1] == ("alerts", "org-a", ("firing", "pending"))
    bad = await served.http.get("/api/v1/alerts", params={"state": "burning"}, headers=_auth(KEY_A))
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "invalid_argument"
    assert "burning" in bad.json()["error"]["message"]


async def test_alerts_api_tenant_isolation(served: Served) -> None:
    as_b = await served.http.get("/api/v1/alerts", headers=_auth(KEY_B))
    assert [(a["organization_id"], a["labels"]["provider"]) for a in as_b.json()["alerts"]] == [
        ("org-b", "anthropic")
    ]
    # A key of org A may not name org B.
    other = await served.http.get("/api/v1/alerts", params={"organization_id": "org-b"}, headers=_auth(KEY_A))
    assert other.status_code == 403
    assert other.json()["error"]["code"] == "permission_denied"
    # Alerting is organization-wide: a key limited to a project is refused rather than shown it all.
    limited = await served.http.get("/api/v1/alerts", headers=_auth(KEY_A_WEB))
    assert limited.status_code == 403
    anonymous = await served.http.get("/api/v1/alerts")
    assert anonymous.status_code == 401
    rules_a = (await served.http.get("/api/v1/alerts/rules", headers=_auth(KEY_A))).json()["rules"]
    rules_b = (await served.http.get("/api/v1/alerts/rules", headers=_auth(KEY_B))).json()["rules"]
    assert [r["name"] for r in rules_a] == ["HighErrorRate"]
    assert [r["name"] for r in rules_b] == ["HighErrorRate", "OrgBOnly"]
    incidents_b = (await served.http.get("/api/v1/alerts/incidents", headers=_auth(KEY_B))).json()
    assert incidents_b == {"incidents": []}


async def test_alerts_api_silences_of_one_org_invisible_to_another(served: Served) -> None:
    created = await served.http.post(
        "/api/v1/alerts/silences",
        json={"matchers": ['provider="openai"'], "duration": "2h", "comment": "provider outage"},
        headers=_auth(KEY_A),
    )
    assert created.status_code == 201, created.text
    silence = created.json()
    assert silence["organization_id"] == "org-a"
    assert silence["created_by"] == "api_key:a"  # the caller, when the body names no one
    assert silence["state"] == "active"
    span = parse_time(silence["ends_at"], "e") - parse_time(silence["starts_at"], "s")  # type: ignore[operator]
    assert span == 2 * HOUR
    # Org B neither sees it nor can expire it.
    listed_b = (await served.http.get("/api/v1/alerts/silences", headers=_auth(KEY_B))).json()
    assert listed_b == {"silences": []}
    expired_b = await served.http.delete(f"/api/v1/alerts/silences/{silence['id']}", headers=_auth(KEY_B))
    assert expired_b.status_code == 404
    assert expired_b.json()["error"]["code"] == "not_found"
    # Nor can a key of org A create one for org B.
    forged = await served.http.post(
        "/api/v1/alerts/silences",
        json={"matchers": ['a="b"'], "duration": 60, "comment": "x", "organization_id": "org-b"},
        headers=_auth(KEY_A),
    )
    assert forged.status_code == 403
    assert all(s.organization_id == "org-a" for s in served.api.silences_)
    listed_a = (await served.http.get("/api/v1/alerts/silences", headers=_auth(KEY_A))).json()["silences"]
    assert [s["id"] for s in listed_a] == [silence["id"]]
    expired = await served.http.delete(f"/api/v1/alerts/silences/{silence['id']}", headers=_auth(KEY_A))
    assert expired.status_code == 200
    assert expired.json()["id"] == silence["id"]
    assert expired.json()["state"] == "expired"
    assert served.api.silences_[0].ends_at_ns <= time.time_ns()


async def test_alerts_api_silence_window_and_bad_input(served: Served) -> None:
    start = time.time_ns() + HOUR
    created = await served.http.post(
        "/api/v1/alerts/silences",
        json={
            "matchers": ['model=~"gpt-.*"', "severity!=ticket"],
            "starts_at": rfc3339(start),
            "ends_at": rfc3339(start + HOUR),
            "comment": "maintenance",
            "created_by": "alice",
        },
        headers=_auth(KEY_A),
    )
    assert created.status_code == 201
    body = created.json()
    assert body["state"] == "pending"
    assert body["created_by"] == "alice"
    assert body["matchers"] == ['model=~"gpt-.*"', "severity!=ticket"]
    assert parse_time(body["starts_at"], "s") == start
    before = len(served.api.silences_)
    for bad, words in [
        ({"matchers": ['a="b"'], "comment": "c"}, "ends_at or duration"),
        ({"matchers": ['a="b"'], "comment": "c", "duration": "2h", "ends_at": rfc3339(start)}, "either"),
        ({"matchers": ['a="b"'], "comment": "c", "duration": "soon"}, "duration"),
        ({"matchers": ["not a matcher"], "comment": "c", "duration": "1h"}, "not a matcher"),
        ({"matchers": ['m=~"("'], "comment": "c", "duration": "1h"}, "regular expression"),
        ({"matchers": [], "comment": "c", "duration": "1h"}, "matchers"),
        ({"matchers": ['a="b"'], "comment": "", "duration": "1h"}, "comment"),
        ({"matchers": ['a="b"'], "comment": "c", "ends_at": "yesterday"}, "ends_at"),
        (
            {"matchers": ['a="b"'], "comment": "c", "ends_at": rfc3339(time.time_ns() - HOUR)},
            "after it starts",
        ),
        (
            {
                "matchers": ['a="b"'],
                "comment": "c",
                "starts_at": rfc3339(time.time_ns() - 2 * HOUR),
                "ends_at": rfc3339(time.time_ns() - HOUR),
            },
            "future",
        ),
        ({"matchers": ['a="b"'], "comment": "c", "duration": "1h", "extra": 1}, "extra"),
    ]:
        response = await served.http.post("/api/v1/alerts/silences", json=bad, headers=_auth(KEY_A))
        assert response.status_code == 400, (bad, response.text)
        assert response.json()["error"]["code"] == "invalid_argument"
        assert words in response.json()["error"]["message"], (bad, response.text)
    assert len(served.api.silences_) == before  # nothing half-made


async def test_alerts_api_auth_off_silences_take_the_named_organization(open_served: Served) -> None:
    http = open_served.http
    default = await http.post(
        "/api/v1/alerts/silences", json={"matchers": ['a="b"'], "duration": "30m", "comment": "c"}
    )
    named = await http.post(
        "/api/v1/alerts/silences",
        json={"matchers": ['a="b"'], "duration": "30m", "comment": "c", "organization_id": "org-b"},
    )
    assert (default.json()["organization_id"], named.json()["organization_id"]) == ("default", "org-b")
    assert default.json()["created_by"] == "anonymous"
    every = (await http.get("/api/v1/alerts/silences")).json()["silences"]
    assert {s["organization_id"] for s in every} == {"default", "org-b"}
    only_b = (await http.get("/api/v1/alerts/silences", params={"organization_id": "org-b"})).json()
    assert [s["id"] for s in only_b["silences"]] == [named.json()["id"]]
    # Auth off sees every organization's alerts unless one is named.
    alerts = (await http.get("/api/v1/alerts")).json()["alerts"]
    assert {a["organization_id"] for a in alerts} == {"org-a", "org-b"}
    assert open_served.api.calls[-1] == ("alerts", None, ())


async def test_alerts_api_rules_and_incidents(served: Served) -> None:
    rules = (await served.http.get("/api/v1/alerts/rules", headers=_auth(KEY_B))).json()["rules"]
    assert rules[0] == {
        "name": "HighErrorRate",
        "kind": "threshold",
        "organization_id": None,
        "spec": {
            "name": "HighErrorRate",
            "kind": "threshold",
            "threshold": 0.05,
            "measure": "error_rate",
            "window": 300.0,
        },
        "last_evaluated": None,
        "last_error": None,
    }
    open_only = (await served.http.get("/api/v1/alerts/incidents", headers=_auth(KEY_A))).json()["incidents"]
    assert [i["id"] for i in open_only] == ["inc-1"]
    assert open_only[0]["summary"] == "provider openai: error rate together since 14:02 UTC"
    assert open_only[0]["alert_fingerprints"] == [served.api.alerts_[0].fingerprint]
    assert open_only[0]["resolved_at"] is None
    every = await served.http.get(
        "/api/v1/alerts/incidents", params={"include_resolved": "true"}, headers=_auth(KEY_A)
    )
    assert [i["id"] for i in every.json()["incidents"]] == ["inc-1", "inc-0"]
    assert every.json()["incidents"][1]["resolved_at"] is not None


async def test_alerts_api_rule_test_reports_when_it_would_have_fired(served: Served) -> None:
    base = 1_780_000_000 * 10**9
    rule = served.api.rules_[0]
    rule.series[(("provider", "openai"),)] = [
        (base, 0.01),
        (base + 10 * MINUTE, 0.2),
        (base + 30 * MINUTE, 0.02),
    ]
    rule.series[(("provider", "anthropic"),)] = [(base, 0.01), (base + 50 * MINUTE, 0.3)]
    response = await served.http.post(
        "/api/v1/alerts/rules/HighErrorRate/test",
        json={"start_time": rfc3339(base), "end_time": rfc3339(base + HOUR), "step": "5m"},
        headers=_auth(KEY_A),
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["step_seconds"] == 300
    assert body["hits"] == [
        {
            "labels": {"provider": "openai"},
            "fired_at": rfc3339(base + 10 * MINUTE),
            "resolved_at": rfc3339(base + 30 * MINUTE),
            "peak_value": 0.2,
        },
        {
            "labels": {"provider": "anthropic"},
            "fired_at": rfc3339(base + 50 * MINUTE),
            "resolved_at": None,
            "peak_value": 0.3,
        },
    ]
    assert served.api.calls[-1] == ("backtest", "org-a", "HighErrorRate", base, base + HOUR, 5 * MINUTE)
    # Step as seconds; default window: the last 24 h.
    seconds = await served.http.post(
        "/api/v1/alerts/rules/HighErrorRate/test", json={"step": 600}, headers=_auth(KEY_A)
    )
    assert seconds.status_code == 200
    _, _, _, start, end, step = served.api.calls[-1]
    assert (end - start, step) == (24 * HOUR, 10 * MINUTE)


async def test_alerts_api_rule_test_refuses_bad_requests(served: Served) -> None:
    async def post(name: str, body: dict[str, object], key: str = KEY_A) -> tuple[int, str]:
        response = await served.http.post(f"/api/v1/alerts/rules/{name}/test", json=body, headers=_auth(key))
        return response.status_code, response.json().get("error", {}).get("message", "")

    assert await post("Nope", {}) == (404, "no alert rule named 'Nope'")
    # Another organization's rule is unknown to this one, and known to its own.
    assert (await post("OrgBOnly", {}))[0] == 404
    assert await post("OrgBOnly", {}, KEY_B) == (200, "")
    status, message = await post("HighErrorRate", {"step": "1s"})
    assert status == 400 and "at most 2000" in message
    status, message = await post("HighErrorRate", {"step": "often"})
    assert status == 400 and "step" in message
    now = time.time_ns()
    status, message = await post(
        "HighErrorRate", {"start_time": rfc3339(now), "end_time": rfc3339(now - HOUR)}
    )
    assert status == 400 and "before" in message


async def test_alerts_api_reload(served: Served) -> None:
    served.api.config = {
        "rules": [{"name": "R", "kind": "threshold", "measure": "error_rate", "threshold": 0.1}]
    }
    ok = await served.http.post("/api/v1/alerts/reload", headers=_auth(KEY_A))
    assert (ok.status_code, ok.json()) == (200, {"reloaded": True})
    assert served.api.reloads == 1
    served.api.config = {"rules": [{"name": "R", "kind": "threshold", "measure": "vibes", "threshold": 0.1}]}
    bad = await served.http.post("/api/v1/alerts/reload", headers=_auth(KEY_A))
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "invalid_argument"
    assert "not reloaded" in bad.json()["error"]["message"]
    assert "measure" in bad.json()["error"]["message"]
    assert served.api.reloads == 1


async def test_alerts_api_in_openapi(served: Served) -> None:
    paths = (await served.http.get("/openapi.json")).json()["paths"]
    assert set(paths["/api/v1/alerts/silences"]) == {"get", "post"}
    assert "delete" in paths["/api/v1/alerts/silences/{silence_id}"]
    for path in (
        "/api/v1/alerts",
        "/api/v1/alerts/rules",
        "/api/v1/alerts/incidents",
        "/api/v1/alerts/status",
    ):
        assert "get" in paths[path]
    assert "post" in paths["/api/v1/alerts/rules/{name}/test"]
    assert "post" in paths["/api/v1/alerts/reload"]
