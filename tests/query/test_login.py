"""Login and auth refusals over the REST API."""

from __future__ import annotations

import threading
from typing import Any

import httpx
import pytest

from llm_observer.kernel import auth as auth_module
from llm_observer.kernel.auth import LoginLimitsConfig
from tests.query.conftest import PASSWORD, auth_config


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


class _HashSpy:
    """Records the thread and the stored hash of every password check, then does the real check."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[tuple[int, str]] = []
        real = auth_module.verify_password

        def spy(password: str, encoded: str) -> bool:
            self.calls.append((threading.get_ident(), encoded))
            return real(password, encoded)

        monkeypatch.setattr(auth_module, "verify_password", spy)


async def test_auth_login_hashes_off_the_event_loop_at_one_cost(
    running: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = _HashSpy(monkeypatch)
    http = running.http
    good = await http.post("/api/v1/auth/login", json={"username": "alice", "password": PASSWORD})
    bad = await http.post("/api/v1/auth/login", json={"username": "alice", "password": "nope"})
    unknown = await http.post("/api/v1/auth/login", json={"username": "mallory", "password": "nope"})
    assert (good.status_code, bad.status_code, unknown.status_code) == (200, 401, 401)
    assert unknown.json() == bad.json()  # the same answer whether the name exists or not
    loop_thread = threading.get_ident()
    assert len(spy.calls) == 3 and all(thread != loop_thread for thread, _ in spy.calls)
    # The unknown name was checked against a hash as costly as alice's (1000 iterations in these tests).
    assert {encoded.split("$")[1] for _, encoded in spy.calls} == {"1000"}


async def test_auth_login_is_rate_limited_per_user_and_per_client(
    start_running: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    limits = LoginLimitsConfig(
        per_client_burst=4, per_client_per_minute=0.5, per_user_burst=2, per_user_per_minute=0.5
    )
    service = await start_running(auth_config(login=limits))
    spy = _HashSpy(monkeypatch)
    http = service.http

    async def login(username: str, password: str = "wrong") -> httpx.Response:
        response: httpx.Response = await http.post(
            "/api/v1/auth/login", json={"username": username, "password": password}
        )
        return response

    assert [(await login("alice")).status_code for _ in range(2)] == [401, 401]
    # alice's name has had its failures: refused before any hashing, even with the right password.
    for password in ("wrong", PASSWORD):
        refused = await login("alice", password)
        assert refused.status_code == 429, refused.text
        assert refused.json()["error"]["code"] == "resource_exhausted"
        assert "user name 'alice'" in refused.json()["error"]["message"]
        assert int(refused.headers["Retry-After"]) >= 1
    # Unknown names are limited the same way, and every attempt takes from the client's bucket.
    assert [(await login(f"nobody-{n}")).status_code for n in range(2)] == [401, 401]
    refused = await login("nobody-else")
    assert refused.status_code == 429 and "127.0.0.1" in refused.json()["error"]["message"]
    assert int(refused.headers["Retry-After"]) > 60  # a token every two minutes
    assert len(spy.calls) == 4
    registry = service.service.telemetry.registry
    labels = {"component": "query", "event": "http_429"}
    assert registry.get_sample_value("llm_observer_component_events_total", labels) == 3
