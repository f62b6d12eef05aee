"""API keys, JWT login and their refusals: the Authenticator itself."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import jwt
import pytest
from pydantic import ValidationError

from llm_observer.kernel import auth as auth_module
from llm_observer.kernel.auth import (
    ANONYMOUS,
    ApiKeyConfig,
    AuthConfig,
    Authenticator,
    LoginGuard,
    LoginLimitsConfig,
    LoginThrottled,
    PermissionDenied,
    Unauthenticated,
    UserConfig,
    generate_api_key,
    hash_api_key,
    hash_password,
    verify_password,
)

SECRET = "x" * 40


def _config(**extra: Any) -> AuthConfig:
    key = "secret-key-1"
    return AuthConfig(
        enabled=True,
        api_keys=[
            ApiKeyConfig(id="k1", key_sha256=hash_api_key(key), organization_id="acme", projects=["web"]),
            ApiKeyConfig(
                id="k2", key_sha256=hash_api_key("ingest-key"), organization_id="acme", scopes=["ingest"]
            ),
            ApiKeyConfig(id="k3", key_sha256=hash_api_key("old-key"), organization_id="acme", revoked=True),
        ],
        users=[
            UserConfig(
                username="bob", password_hash=hash_password("pw-bob", iterations=1000), organization_id="acme"
            ),
            UserConfig(
                username="eve",
                password_hash=hash_password("pw-eve", iterations=1000),
                organization_id="acme",
                disabled=True,
            ),
        ],
        jwt_secret=SECRET,
        **extra,
    )


def test_auth_api_key_gives_scoped_principal() -> None:
    principal = Authenticator(_config()).authenticate("Bearer secret-key-1", "query")
    assert principal.organization_id == "acme"
    assert principal.project_ids == frozenset({"web"})
    assert principal.subject == "api_key:k1"


def test_auth_refusals() -> None:
    auth = Authenticator(_config())
    for header in (None, "", "Bearer", "Basic abc", "Bearer wrong-key", "Bearer a.b.c"):
        with pytest.raises(Unauthenticated):
            auth.authenticate(header, "query")
    with pytest.raises(PermissionDenied, match="revoked"):
        auth.authenticate("Bearer old-key", "query")
    with pytest.raises(PermissionDenied, match="scope"):
        auth.authenticate("Bearer ingest-key", "query")
    assert auth.authenticate("Bearer ingest-key", "ingest").organization_id == "acme"


def test_auth_disabled_is_anonymous_and_unrestricted() -> None:
    principal = Authenticator(AuthConfig()).authenticate(None, "query")
    assert principal is ANONYMOUS and principal.unrestricted
    assert principal.check_organization("any-org") == "any-org"
    assert principal.check_project("p") == "p"


def test_auth_principal_checks_tenant() -> None:
    principal = Authenticator(_config()).authenticate("Bearer secret-key-1", "query")
    assert principal.check_organization(None) == "acme"
    with pytest.raises(PermissionDenied):
        principal.check_organization("other")
    with pytest.raises(PermissionDenied):
        principal.check_project("api")
    assert principal.check_project("web") == "web"


def test_auth_jwt_login_round_trip_and_expiry() -> None:
    now = [time.time() - 7200]  # a token issued two hours ago, valid for a minute
    auth = Authenticator(_config(jwt_ttl_seconds=60), clock=lambda: now[0])
    token = auth.login("bob", "pw-bob")
    assert token.token_type == "bearer" and token.expires_in == 60
    # PyJWT checks expiry against the real clock: issue a token valid now for the round trip.
    live = Authenticator(_config()).login("bob", "pw-bob").access_token
    principal = Authenticator(_config()).authenticate(f"Bearer {live}", "query")
    assert principal.subject == "user:bob" and principal.organization_id == "acme"
    with pytest.raises(Unauthenticated, match="expired"):
        Authenticator(_config()).authenticate(f"Bearer {token.access_token}", "query")
    with pytest.raises(PermissionDenied, match="scope"):
        Authenticator(_config()).authenticate(f"Bearer {live}", "ingest")


def test_auth_jwt_forged_or_for_disabled_user_is_refused() -> None:
    auth = Authenticator(_config())
    claims = {"sub": "bob", "org": "other", "iss": "llm-observer", "exp": 4_000_000_000}
    forged = jwt.encode(claims, "y" * 40, algorithm="HS256")
    with pytest.raises(Unauthenticated):
        auth.authenticate(f"Bearer {forged}", "query")
    eve = jwt.encode({**claims, "sub": "eve"}, SECRET, algorithm="HS256")
    with pytest.raises(PermissionDenied):
        auth.authenticate(f"Bearer {eve}", "query")
    # The organization comes from the user's config, not from the token's claims.
    bob = jwt.encode(claims, SECRET, algorithm="HS256")
    assert auth.authenticate(f"Bearer {bob}", "query").organization_id == "acme"


def test_auth_login_refuses_bad_credentials() -> None:
    auth = Authenticator(_config())
    for user, password in (("bob", "wrong"), ("nobody", "pw-bob"), ("bob", "")):
        with pytest.raises(Unauthenticated):
            auth.login(user, password)
    with pytest.raises(PermissionDenied):
        auth.login("eve", "pw-eve")


def test_auth_hash_helpers() -> None:
    key = generate_api_key()
    assert key.startswith("llmo_") and len(hash_api_key(key)) == 64
    encoded = hash_password("s3cret", iterations=1000)
    assert verify_password("s3cret", encoded) and not verify_password("other", encoded)
    assert not verify_password("s3cret", "garbage")


def test_auth_config_validation() -> None:
    with pytest.raises(ValidationError, match="jwt_secret"):
        AuthConfig(
            users=[
                UserConfig(username="a", password_hash=hash_password("p", iterations=10), organization_id="o")
            ]
        )
    with pytest.raises(ValidationError, match="unique"):
        AuthConfig(
            api_keys=[
                ApiKeyConfig(id="a", key_sha256="0" * 64, organization_id="o"),
                ApiKeyConfig(id="a", key_sha256="1" * 64, organization_id="o"),
            ]
        )
    with pytest.raises(ValidationError):
        ApiKeyConfig(id="a", key_sha256="plaintext-key", organization_id="o")
    with pytest.raises(ValidationError):
        AuthConfig(unknown=True)


def _guard(monkeypatch: pytest.MonkeyPatch, **limits: Any) -> tuple[LoginGuard, list[float], threading.Event]:
    """A LoginGuard over ``_config`` with ``limits``, a settable clock, and password checks that wait for
    the returned event (set, they run at once) and record nothing else."""
    now = [1000.0]
    gate = threading.Event()
    gate.set()
    real = auth_module.verify_password

    def gated(password: str, encoded: str) -> bool:
        assert gate.wait(10)
        return real(password, encoded)

    monkeypatch.setattr(auth_module, "verify_password", gated)
    config = _config(login=LoginLimitsConfig(**limits))
    return LoginGuard(Authenticator(config), clock=lambda: now[0]), now, gate


async def test_auth_login_guard_limits_per_client_with_retry_after(monkeypatch: pytest.MonkeyPatch) -> None:
    guard, now, _ = _guard(monkeypatch, per_client_burst=2, per_client_per_minute=6)
    try:
        assert (await guard.login("bob", "pw-bob", "10.0.0.1")).token_type == "bearer"
        with pytest.raises(Unauthenticated):
            await guard.login("nobody", "x", "10.0.0.1")
        with pytest.raises(LoginThrottled, match=r"10\.0\.0\.1") as caught:
            await guard.login("bob", "pw-bob", "10.0.0.1")
        assert caught.value.status == 429 and caught.value.retry_after == pytest.approx(10.0)
        assert (await guard.login("bob", "pw-bob", "10.0.0.2")).token_type == "bearer"  # another client
        now[0] += 10.0  # one token back
        assert (await guard.login("bob", "pw-bob", "10.0.0.1")).token_type == "bearer"
    finally:
        guard.close()


async def test_auth_login_guard_limits_failures_per_user_name(monkeypatch: pytest.MonkeyPatch) -> None:
    guard, now, _ = _guard(monkeypatch, per_user_burst=2, per_user_per_minute=1)
    try:
        for _ in range(3):  # successes take nothing from the name's bucket
            await guard.login("bob", "pw-bob", "10.0.0.1")
        for client in ("10.0.0.1", "10.0.0.2"):
            with pytest.raises(Unauthenticated):
                await guard.login("bob", "wrong", client)
        with pytest.raises(LoginThrottled, match="user name 'bob'") as caught:
            await guard.login("bob", "pw-bob", "10.0.0.3")
        assert caught.value.retry_after == pytest.approx(60.0)
        # A name nobody configured is limited the same way, so refusals do not tell names apart.
        for _ in range(2):
            with pytest.raises(Unauthenticated):
                await guard.login("ghost", "wrong", "10.0.0.4")
        with pytest.raises(LoginThrottled, match="user name 'ghost'"):
            await guard.login("ghost", "wrong", "10.0.0.5")
        now[0] += 60.0
        assert (await guard.login("bob", "pw-bob", "10.0.0.3")).token_type == "bearer"
    finally:
        guard.close()


async def test_auth_login_guard_bounds_hashing_off_the_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    guard, _, gate = _guard(monkeypatch, max_concurrent=1, max_queued=1, per_client_burst=100)
    threads: list[int] = []
    real = auth_module.verify_password

    def recorded(password: str, encoded: str) -> bool:
        threads.append(threading.get_ident())
        return real(password, encoded)

    monkeypatch.setattr(auth_module, "verify_password", recorded)
    gate.clear()
    try:
        first = asyncio.create_task(guard.login("bob", "pw-bob", "10.0.0.1"))
        second = asyncio.create_task(guard.login("nobody", "x", "10.0.0.1"))
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        # One check runs and one waits: a third finds the bound full, and is refused without hashing.
        with pytest.raises(LoginThrottled, match="in progress"):
            await guard.login("bob", "pw-bob", "10.0.0.2")
        gate.set()
        assert (await first).token_type == "bearer"
        with pytest.raises(Unauthenticated):
            await second
        assert len(threads) == 2 and threading.get_ident() not in threads
        # The bound is free again.
        assert (await guard.login("bob", "pw-bob", "10.0.0.2")).token_type == "bearer"
    finally:
        gate.set()
        guard.close()


def test_auth_unknown_users_cost_what_known_ones_do(monkeypatch: pytest.MonkeyPatch) -> None:
    checked: list[str] = []
    real = auth_module.verify_password

    def recorded(password: str, encoded: str) -> bool:
        checked.append(encoded)
        return real(password, encoded)

    monkeypatch.setattr(auth_module, "verify_password", recorded)
    auth = Authenticator(_config())
    for user in ("bob", "nobody", "someone-else"):
        with pytest.raises(Unauthenticated):
            auth.login(user, "wrong")
    assert [encoded.split("$")[1] for encoded in checked] == ["1000"] * 3
    assert checked[1] != checked[0] and not verify_password("", checked[1])
