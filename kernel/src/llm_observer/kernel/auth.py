"""Authentication and tenancy for every API: OTLP ingest, REST ingest and the query APIs.

Callers present ``Authorization: Bearer <credential>`` (HTTP header or gRPC metadata). A credential is either
an API key (configured by its SHA-256, never in clear) or a JWT issued by ``/api/v1/auth/login`` for a
configured user. Either one is scoped to an organization, optionally to some of its projects, and to the
scopes ``ingest``, ``query`` and/or ``metrics`` (the operator's Prometheus scrape).

``Authenticator.authenticate`` turns the header into a ``Principal`` or raises ``Unauthenticated`` (401 /
UNAUTHENTICATED: no or unknown credential) or ``PermissionDenied`` (403 / PERMISSION_DENIED: a known
credential that is revoked or lacks the scope). With auth disabled (the embedded default) every caller is an
unrestricted principal, and the organization and project come from the request itself.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field, model_validator

from llm_observer.kernel.config import ComponentConfig
from llm_observer.kernel.errors import AuthError, PermissionDenied, Unauthenticated
from llm_observer.kernel.threads import named_thread_pool

# ``metrics``: the operator's scrape of Prometheus ``/metrics``, every organization's series and the
# collector's own; with ``query`` alone a scrape shows only the caller's organization's GenAI series.
Scope = Literal["ingest", "query", "metrics"]
ALL_SCOPES: frozenset[str] = frozenset({"ingest", "query", "metrics"})

_PBKDF2_ITERATIONS = 200_000
_JWT_ALGORITHM = "HS256"


# --- helpers for operators --------------------------------------------------------------------------


def hash_api_key(key: str) -> str:
    """The hex SHA-256 of an API key: what ``api_keys[].key_sha256`` holds."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def generate_api_key() -> str:
    """A new random API key (show it once; store only ``hash_api_key`` of it)."""
    return "llmo_" + secrets.token_urlsafe(32)


def hash_password(password: str, *, iterations: int = _PBKDF2_ITERATIONS) -> str:
    """A salted PBKDF2-SHA256 hash, ``pbkdf2_sha256$<iterations>$<salt b64>$<hash b64>``."""
    salt = secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations)
    return "pbkdf2_sha256${}${}${}".format(
        iterations, base64.b64encode(salt).decode("ascii"), base64.b64encode(digest).decode("ascii")
    )


def verify_password(password: str, encoded: str) -> bool:
    """Whether ``password`` matches a hash made by ``hash_password`` (constant time)."""
    try:
        algorithm, iterations, salt_b64, hash_b64 = encoded.split("$")
        if algorithm != "pbkdf2_sha256":
            return False
        salt, expected = base64.b64decode(salt_b64), base64.b64decode(hash_b64)
        digest = hashlib.pbkdf2_hmac(
            "sha256", password.encode("utf-8", "surrogatepass"), salt, int(iterations)
        )
    except (ValueError, OverflowError):
        return False
    return hmac.compare_digest(digest, expected)


def _iterations(encoded: str) -> int | None:
    parts = encoded.split("$")
    return int(parts[1]) if len(parts) == 4 and parts[1].isdigit() else None


# --- config ------------------------------------------------------------------------------------------


def _scopes(*scopes: Scope) -> list[Scope]:
    return list(scopes)


class ApiKeyConfig(ComponentConfig):
    """One API key. ``projects`` None means every project of the organization."""

    id: str = Field(min_length=1)
    key_sha256: str = Field(pattern=r"^[0-9a-fA-F]{64}$")
    organization_id: str = Field(min_length=1)
    projects: list[str] | None = None
    scopes: list[Scope] = Field(default_factory=lambda: _scopes("ingest", "query"))
    revoked: bool = False


class UserConfig(ComponentConfig):
    """A user who may log in at ``/api/v1/auth/login`` for a JWT (``password_hash`` from ``hash_password``)."""

    username: str = Field(min_length=1)
    password_hash: str = Field(pattern=r"^pbkdf2_sha256\$\d+\$[^$]+\$[^$]+$")
    organization_id: str = Field(min_length=1)
    projects: list[str] | None = None
    scopes: list[Scope] = Field(default_factory=lambda: _scopes("query"))
    disabled: bool = False


class LoginLimitsConfig(ComponentConfig):
    """``auth.login`` — what password logins may cost the service.

    Each password check (PBKDF2) runs on one of ``max_concurrent`` threads, never on the event loop; up to
    ``max_queued`` more wait for one, and a login beyond that is refused (429 with ``Retry-After``). Logins
    are rate-limited by token buckets: every attempt from one client address takes from its bucket
    (``per_client_per_minute``, bursts of ``per_client_burst``), and every failed attempt for one user name
    from that name's (``per_user_per_minute``, ``per_user_burst``) — an empty bucket is a 429 before any
    hashing. At most ``max_tracked`` addresses and names are remembered; the least recently seen go first.
    """

    max_concurrent: int = Field(default=2, gt=0)
    max_queued: int = Field(default=8, ge=0)
    per_client_per_minute: float = Field(default=30.0, gt=0)
    per_client_burst: int = Field(default=10, gt=0)
    per_user_per_minute: float = Field(default=10.0, gt=0)
    per_user_burst: int = Field(default=5, gt=0)
    max_tracked: int = Field(default=10_000, gt=0)


class AuthConfig(ComponentConfig):
    """``auth:`` — off by default (local use); on, every API needs a key or a JWT."""

    enabled: bool = False
    api_keys: list[ApiKeyConfig] = Field(default_factory=list)
    users: list[UserConfig] = Field(default_factory=list)
    jwt_secret: str | None = None
    jwt_ttl_seconds: int = Field(default=3600, gt=0)
    jwt_issuer: str = "llm-observer"
    login: LoginLimitsConfig = Field(default_factory=LoginLimitsConfig)

    @model_validator(mode="after")
    def _check(self) -> AuthConfig:
        if self.users and (self.jwt_secret is None or len(self.jwt_secret) < 32):
            raise ValueError("jwt_secret of at least 32 characters is required when users are configured")
        ids = [key.id for key in self.api_keys]
        if len(ids) != len(set(ids)):
            raise ValueError("api_keys ids must be unique")
        hashes = [key.key_sha256.lower() for key in self.api_keys]
        if len(hashes) != len(set(hashes)):
            raise ValueError("api_keys key_sha256 values must be unique")
        names = [user.username for user in self.users]
        if len(names) != len(set(names)):
            raise ValueError("users usernames must be unique")
        return self


# --- authentication --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling. ``organization_id`` None means any organization (auth disabled); ``project_ids`` None
    means every project of the organization."""

    organization_id: str | None
    project_ids: frozenset[str] | None
    subject: str
    scopes: frozenset[str] = ALL_SCOPES

    @property
    def unrestricted(self) -> bool:
        return self.organization_id is None

    def check_organization(self, organization_id: str | None) -> str | None:
        """The organization a request may act on: the principal's own; a different one is refused."""
        if self.organization_id is None:
            return organization_id or None
        if organization_id and organization_id != self.organization_id:
            raise PermissionDenied(f"{self.subject} may not access organization {organization_id!r}")
        return self.organization_id

    def check_project(self, project_id: str | None) -> str | None:
        """Refuse a project outside the principal's projects; pass None (= all allowed) through."""
        if project_id and self.project_ids is not None and project_id not in self.project_ids:
            raise PermissionDenied(f"{self.subject} may not access project {project_id!r}")
        return project_id or None


ANONYMOUS = Principal(organization_id=None, project_ids=None, subject="anonymous")


@dataclass(frozen=True, slots=True)
class Token:
    access_token: str
    token_type: str
    expires_in: int


class Authenticator:
    """Checks credentials against an ``AuthConfig``. Thread-safe; cheap per call (one hash lookup)."""

    def __init__(self, config: AuthConfig, clock: Any = time.time) -> None:
        self.config = config
        self._clock = clock
        self._keys = {key.key_sha256.lower(): key for key in config.api_keys}
        self._users = {user.username: user for user in config.users}
        # Unknown user names are checked against a hash as costly as the users' own, so that timing does
        # not tell which names exist. It matches no password; making it costs nothing.
        costs = [n for n in (_iterations(user.password_hash) for user in config.users) if n is not None]
        self._dummy_hash = "pbkdf2_sha256${}${}${}".format(
            max(costs, default=_PBKDF2_ITERATIONS),
            base64.b64encode(secrets.token_bytes(16)).decode("ascii"),
            base64.b64encode(secrets.token_bytes(32)).decode("ascii"),
        )

    @property
    def enabled(self) -> bool:
        return self.config.enabled

    def authenticate(self, authorization: str | None, scope: str) -> Principal:
        """The principal behind an ``Authorization`` header value, allowed ``scope``; raises otherwise."""
        if not self.config.enabled:
            return ANONYMOUS
        credential = _bearer(authorization)
        if credential.count(".") == 2:
            principal = self._from_jwt(credential)
        else:
            principal = self._from_api_key(credential)
        if scope not in principal.scopes:
            raise PermissionDenied(f"{principal.subject} lacks the {scope!r} scope")
        return principal

    def _from_api_key(self, key: str) -> Principal:
        entry = self._keys.get(hash_api_key(key))
        if entry is None:
            raise Unauthenticated("unknown API key")
        if entry.revoked:
            raise PermissionDenied(f"API key {entry.id!r} is revoked")
        return Principal(
            organization_id=entry.organization_id,
            project_ids=frozenset(entry.projects) if entry.projects is not None else None,
            subject=f"api_key:{entry.id}",
            scopes=frozenset(entry.scopes),
        )

    def _from_jwt(self, token: str) -> Principal:
        import jwt

        if not self.config.jwt_secret:
            raise Unauthenticated("JWTs are not accepted: no jwt_secret is configured")
        try:
            claims = jwt.decode(
                token,
                self.config.jwt_secret,
                algorithms=[_JWT_ALGORITHM],
                issuer=self.config.jwt_issuer,
                options={"require": ["exp", "sub", "org"]},
                leeway=5,
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthenticated("token has expired") from exc
        except jwt.InvalidTokenError as exc:
            raise Unauthenticated(f"invalid token: {exc}") from exc
        # A user removed or disabled since the token was issued loses access at once.
        user = self._users.get(str(claims["sub"]))
        if user is None or user.disabled:
            raise PermissionDenied(f"user {claims['sub']!r} is disabled")
        return Principal(
            organization_id=user.organization_id,
            project_ids=frozenset(user.projects) if user.projects is not None else None,
            subject=f"user:{user.username}",
            scopes=frozenset(user.scopes),
        )

    def login(self, username: str, password: str) -> Token:
        """A JWT for a configured user; ``Unauthenticated`` for any bad name or password.

        Blocks for one password hash (CPU-bound): call it off the event loop, through ``LoginGuard``."""
        import jwt

        user = self._users.get(username)
        encoded = user.password_hash if user is not None else self._dummy_hash
        if not verify_password(password, encoded) or user is None:
            raise Unauthenticated("bad username or password")
        if user.disabled:
            raise PermissionDenied(f"user {username!r} is disabled")
        if not self.config.jwt_secret:
            raise Unauthenticated("login is not available: no jwt_secret is configured")
        now = int(self._clock())
        ttl = self.config.jwt_ttl_seconds
        claims = {
            "sub": user.username,
            "org": user.organization_id,
            "projects": user.projects,
            "scopes": list(user.scopes),
            "iss": self.config.jwt_issuer,
            "iat": now,
            "exp": now + ttl,
        }
        token = jwt.encode(claims, self.config.jwt_secret, algorithm=_JWT_ALGORITHM)
        return Token(access_token=token, token_type="bearer", expires_in=ttl)


class LoginThrottled(AuthError):
    """Too many logins: from this client, for this user name, or in progress (429, ``Retry-After``)."""

    code = "resource_exhausted"
    status = 429

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class _Buckets:
    """Token buckets by key (``rate`` tokens a second, up to ``burst``), at most ``max_keys`` remembered."""

    def __init__(self, per_minute: float, burst: int, max_keys: int) -> None:
        self.rate = per_minute / 60.0
        self.burst = float(burst)
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key -> (tokens, at)

    def _tokens(self, key: str, now: float) -> float:
        tokens, at = self._buckets.get(key, (self.burst, now))
        return min(self.burst, tokens + (now - at) * self.rate)

    def wait(self, key: str, now: float) -> float:
        """Seconds until ``key`` has a token (0: it has one now)."""
        tokens = self._tokens(key, now)
        return 0.0 if tokens >= 1.0 else (1.0 - tokens) / self.rate

    def take(self, key: str, now: float) -> float:
        """Take a token for ``key``; returns 0, or the seconds to wait when there is none (nothing taken)."""
        tokens = self._tokens(key, now)
        if tokens < 1.0:
            return (1.0 - tokens) / self.rate
        self._buckets[key] = (tokens - 1.0, now)
        self._buckets.move_to_end(key)
        while len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)
        return 0.0


class LoginGuard:
    """Password logins for an event loop: rate-limited per client address and per user name, and hashed on
    a bounded pool of threads so that the loop (which also serves ingest) never runs PBKDF2.

    Use it from one event loop; ``close`` when the service stops."""

    def __init__(self, authenticator: Authenticator, clock: Any = time.monotonic) -> None:
        self.authenticator = authenticator
        limits = authenticator.config.login
        self.limits = limits
        self._clock = clock
        self._clients = _Buckets(limits.per_client_per_minute, limits.per_client_burst, limits.max_tracked)
        self._users = _Buckets(limits.per_user_per_minute, limits.per_user_burst, limits.max_tracked)
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._in_flight = 0  # submitted and not finished (guarded by _lock: workers finish them)

    def _release(self, _: object) -> None:
        with self._lock:
            self._in_flight -= 1

    async def login(self, username: str, password: str, client: str) -> Token:
        """``Authenticator.login`` off the loop; ``LoginThrottled`` over a limit, before any hashing."""
        now = self._clock()
        wait = self._users.wait(username, now)
        if wait:
            raise LoginThrottled(f"too many failed logins for user name {username!r}", wait)
        wait = self._clients.take(client, now)
        if wait:
            raise LoginThrottled(f"too many logins from {client}", wait)
        limits = self.limits
        with self._lock:
            if self._in_flight >= limits.max_concurrent + limits.max_queued:
                raise LoginThrottled("too many logins in progress", 1.0)
            self._in_flight += 1
        if self._executor is None:
            self._executor = named_thread_pool("login", limits.max_concurrent)
        try:
            work = self._executor.submit(self.authenticator.login, username, password)
        except BaseException:
            self._release(None)
            raise
        # Counted until the hash is done, even when the caller goes away before: the thread still works.
        work.add_done_callback(self._release)
        try:
            return await asyncio.wrap_future(work)
        except Unauthenticated:
            self._users.take(username, self._clock())
            raise

    def close(self) -> None:
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)


def _bearer(authorization: str | None) -> str:
    if not authorization:
        raise Unauthenticated("missing Authorization header (expected 'Bearer <api key or token>')")
    scheme, _, credential = authorization.strip().partition(" ")
    credential = credential.strip()
    if scheme.lower() != "bearer" or not credential:
        raise Unauthenticated("Authorization must be 'Bearer <api key or token>'")
    return credential
