"""API keys, JWT login and their refusals: the Authenticator itself."""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest
from pydantic import ValidationError

from llm_observer.kernel.auth import (
    ANONYMOUS,
    ApiKeyConfig,
    AuthConfig,
    Authenticator,
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
