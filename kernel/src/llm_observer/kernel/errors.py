"""The collector's exception tree: config problems, and the permanent-versus-retryable split for data."""

from __future__ import annotations


class LLMObserverError(Exception):
    """Base of every error this package raises on purpose."""


class ConfigError(LLMObserverError):
    """The configuration is invalid; ``problems`` holds one ``(yaml.path, message)`` per bad key."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{path}: {message}" for path, message in problems))


class PermanentError(LLMObserverError):
    """The data can never be accepted as it is (INVALID_ARGUMENT / 400); retrying will not help.

    From an exporter's ``send`` it means nothing of the batch was stored (or what was is stored under
    idempotent keys, so sending it again stores nothing twice). ``reason`` is a short, bounded label for
    the self-metrics (``invalid_data``, ``too_many_partitions``...)."""

    def __init__(self, message: str, reason: str = "permanent") -> None:
        super().__init__(message)
        self.reason = reason


class PartialFailure(PermanentError):
    """An exporter stored every row of the batch except ``rows`` (row indices of the batch it was given),
    which it can never store as they are; ``problems`` may name, by row, what is wrong with each.

    The delivery helper quarantines (or narrows down) just those rows and counts the rest as delivered."""

    def __init__(
        self,
        message: str,
        rows: list[int],
        reason: str = "invalid_data",
        problems: dict[int, str] | None = None,
    ) -> None:
        super().__init__(message, reason)
        self.rows = rows
        self.problems = problems or {}


class RetryableError(LLMObserverError):
    """A passing failure (UNAVAILABLE / 503): the same data may succeed later."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Backpressure(RetryableError):
    """The collector is over a limit and refuses new data for now (RESOURCE_EXHAUSTED / 429)."""

    def __init__(self, reason: str, retry_after: float = 1.0) -> None:
        super().__init__(f"collector is over its {reason} limit, retry later", retry_after)
        self.reason = reason


class AuthError(LLMObserverError):
    """A refused request: ``code`` is the JSON error code, ``status`` the HTTP status."""

    code = "unauthenticated"
    status = 401


class Unauthenticated(AuthError):
    """No credential, or one that is not valid (401 / gRPC UNAUTHENTICATED)."""


class PermissionDenied(AuthError):
    """A valid credential that may not do this (403 / gRPC PERMISSION_DENIED)."""

    code = "permission_denied"
    status = 403
