"""What ingest accepts: the times storage can hold, and how deeply nested a JSON body may be.

Every time a receiver takes in (span start and end, event times, log record times and observed times) must
lie in ``[TimeLimits.earliest, TimeLimits.latest]``; a span that starts before its pipeline's retention began
would be dropped by storage the moment it arrives, so it is refused instead. Storage exporters declare their
limits (``Factory.time_limits``) and the service hands each receiver the strictest limits of the exporters
its pipelines feed (``CreateContext.time_limits``). With none declared, the bounds are those of the signed
64-bit nanosecond count that every time is converted through (Arrow timestamps, ``DateTime64(9)``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

INT64_MAX = (1 << 63) - 1
"""The largest signed 64-bit integer: the latest nanosecond time, and the largest integer attribute value."""
INT64_MIN = -(1 << 63)

NANOS_PER_SECOND = 1_000_000_000
NANOS_PER_DAY = 86_400 * NANOS_PER_SECOND
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

MAX_JSON_DEPTH = 128
"""How deeply JSON bodies may nest (objects and arrays). OTLP/JSON needs about a dozen levels plus four per
level of nested attribute values (protobuf refuses messages nested over 100 deep); deeper bodies are refused
before any recursive step can exhaust the stack."""


def rfc3339(unix_nano: int) -> str:
    """``unix_nano`` as an RFC 3339 UTC time (to the second), for messages."""
    try:
        moment = _EPOCH + timedelta(seconds=unix_nano // NANOS_PER_SECOND)
    except OverflowError:
        return f"{unix_nano} ns since 1970"
    return moment.replace(tzinfo=None).isoformat() + "Z"


@dataclass(frozen=True, slots=True)
class TimeLimits:
    """The times a store can hold: from the Unix epoch (OTLP times are unsigned) to ``latest_unix_nano``, and
    for span start times no older than ``retention_seconds`` (None: kept for ever)."""

    latest_unix_nano: int = INT64_MAX
    retention_seconds: int | None = None

    def narrow(self, other: TimeLimits) -> TimeLimits:
        """The limits that satisfy both ``self`` and ``other``."""
        retention = [r for r in (self.retention_seconds, other.retention_seconds) if r is not None]
        return TimeLimits(
            min(self.latest_unix_nano, other.latest_unix_nano), min(retention) if retention else None
        )

    def earliest_start(self, now_unix_nano: int) -> int:
        """The earliest span start time storage keeps at ``now_unix_nano``."""
        if self.retention_seconds is None:
            return 0
        return max(0, now_unix_nano - self.retention_seconds * NANOS_PER_SECOND)

    def time_problem(self, field: str, unix_nano: int) -> str | None:
        """Why the time ``unix_nano`` in ``field`` cannot be stored, or None."""
        if unix_nano < 0:
            return f"{field} {rfc3339(unix_nano)} is before 1970-01-01T00:00:00Z"
        if unix_nano > self.latest_unix_nano:
            return (
                f"{field} {rfc3339(unix_nano)} is after {rfc3339(self.latest_unix_nano)}, "
                "the latest time storage can hold"
            )
        return None

    def start_problem(self, field: str, unix_nano: int, now_unix_nano: int) -> str | None:
        """Like ``time_problem``, and also refuses a span start older than the retention."""
        problem = self.time_problem(field, unix_nano)
        if problem is None and self.retention_seconds is not None:
            earliest = self.earliest_start(now_unix_nano)
            if unix_nano < earliest:
                days = self.retention_seconds / 86_400
                return (
                    f"{field} {rfc3339(unix_nano)} is older than the retention of {days:g} days "
                    f"(earliest kept: {rfc3339(earliest)})"
                )
        return problem


UNLIMITED = TimeLimits()
