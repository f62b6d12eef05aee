"""Login and auth refusals over the REST API."""

from __future__ import annotations

from typing import Any


async def test_auth_rest_login_and_refusals(running: Any) -> None:
    http = running.http
    response = await http.post(
        "/api/v1/auth/login", json={"username": "alice", "password": "correct horse battery staple"}
    )
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer" and body["expires_in"] == 3600
    listed = await http.get("/api/v1/traces", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert listed.status_code == 200 and len(listed.json()["traces"]) == 18

    response = await http.post("/api/v1/auth/login", json={"username": "alice", "password": "nope"})
    assert response.status_code == 401 and response.json()["error"]["code"] == "unauthenticated"

    for headers, status, code in (
        ({}, 401, "unauthenticated"),
        ({"Authorization": "Bearer not-a-key"}, 401, "unauthenticated"),
        ({"Authorization": "Token key-for-org-a"}, 401, "unauthenticated"),
        ({"Authorization": "Bearer key-revoked"}, 403, "permission_denied"),
        ({"Authorization": "Bearer key-ingest-only"}, 403, "permission_denied"),
    ):
        for path in (
            "/api/v1/traces",
            f"/api/v1/traces/{'a' * 32}",
            "/api/v1/metrics/summary",
            "/api/v1/metrics/cost",
            "/api/v1/search/semantic?q=x",
            "/jaeger/api/services",
            "/jaeger/api/v3/services",
        ):
            response = await http.get(path, headers=headers)
            assert response.status_code == status, (path, headers)
            assert response.json()["error"]["code"] == code
        if status == 401:
            assert response.headers["WWW-Authenticate"] == "Bearer"
    # Refusals are counted in the self-metrics, never logged per request.
    registry = running.service.telemetry.registry
    labels = {"component": "query", "event": "http_401"}
    assert (registry.get_sample_value("llm_observer_component_events_total", labels) or 0) >= 21
    # A query-only JWT may not ingest.
    token = body["access_token"]
    response = await http.post(
        "/api/v1/traces", headers={"Authorization": f"Bearer {token}"}, json={"spans": [{"name": "x"}]}
    )
    assert response.status_code == 403
    response = await http.post("/api/v1/traces", json={"spans": [{"name": "x"}]})
    assert response.status_code == 401


async def test_auth_login_when_auth_is_off_is_404(open_running: Any) -> None:
    response = await open_running.http.post("/api/v1/auth/login", json={"username": "a", "password": "b"})
    assert response.status_code == 404
    # Auth off: no header needed, every organization visible.
    listed = (await open_running.http.get("/api/v1/traces", params={"limit": 100})).json()["traces"]
    assert {t["organization_id"] for t in listed} == {"org-a", "org-b"}
    only_b = (await open_running.http.get("/api/v1/traces", params={"organization_id": "org-b"})).json()[
        "traces"
    ]
    assert len(only_b) == 8 and {t["organization_id"] for t in only_b} == {"org-b"}
