"""What a backend's answer means, per the OTLP specification: retry later, or never.

* gRPC: UNAVAILABLE, CANCELLED, DEADLINE_EXCEEDED, ABORTED, OUT_OF_RANGE and DATA_LOSS are passing;
  RESOURCE_EXHAUSTED is passing only when the server says when to come back (a ``RetryInfo`` detail) —
  without one it means "too big", which retrying cannot fix. Every other code is permanent.
* HTTP: 429, 502, 503 and 504 are passing (``Retry-After`` in seconds or as a date); every other 4xx and
  5xx is permanent.

The delay the server asks for becomes ``RetryableError.retry_after``, which the collector's delivery helper
waits at least. ``PermanentError.reason`` is a short label (the gRPC code or ``http_<status>``) for the
``failed{reason}`` self-metric.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping

import grpc
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2

from llm_observer.exporters.otlp.wire import from_json
from llm_observer.kernel.errors import PermanentError, RetryableError

_RETRYABLE_CODES = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.OUT_OF_RANGE,
        grpc.StatusCode.DATA_LOSS,
    }
)
_RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})
_MAX_MESSAGE = 300


def retry_info_delay(status: status_pb2.Status) -> float | None:
    """The delay of the first ``RetryInfo`` detail of a ``google.rpc.Status``, in seconds."""
    for detail in status.details:
        if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            info = error_details_pb2.RetryInfo()
            detail.Unpack(info)
            return float(info.retry_delay.seconds + info.retry_delay.nanos / 1e9)
    return None


def _grpc_status(trailers: object) -> status_pb2.Status | None:
    for key, value in trailers or ():  # type: ignore[attr-defined]
        if key == "grpc-status-details-bin" and isinstance(value, bytes):
            try:
                return status_pb2.Status.FromString(value)
            except DecodeError:
                return None
    return None


def grpc_error(exc: grpc.aio.AioRpcError, where: str) -> RetryableError | PermanentError:
    """The error an export that ended in ``exc`` becomes; ``where`` names the exporter and endpoint."""
    code = exc.code()
    details = (exc.details() or "").strip()[:_MAX_MESSAGE]
    status = _grpc_status(exc.trailing_metadata())
    delay = retry_info_delay(status) if status is not None else None
    message = f"{where} answered {code.name}: {details or 'no details'}"
    if code in _RETRYABLE_CODES or (code is grpc.StatusCode.RESOURCE_EXHAUSTED and delay is not None):
        return RetryableError(message, delay)
    return PermanentError(message, code.name.lower())


def retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date); None when absent or
    unreadable."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _http_message(body: bytes, content_type: str) -> str:
    """The ``google.rpc.Status`` message of an error body (protobuf or JSON), else its start as text."""
    if body:
        try:
            if "json" in content_type:
                status = from_json(body, status_pb2.Status)
            elif "protobuf" in content_type:
                status = status_pb2.Status.FromString(body)
            else:
                status = None
            if isinstance(status, status_pb2.Status) and status.message:
                return str(status.message)[:_MAX_MESSAGE]
        except (DecodeError, ValueError):
            pass
    return body[:_MAX_MESSAGE].decode("utf-8", "replace").strip()


def http_error(
    status: int, headers: Mapping[str, str], body: bytes, where: str
) -> RetryableError | PermanentError:
    """The error a non-2xx answer becomes; ``headers`` are the response's (lower-case keys work)."""
    text = _http_message(body, headers.get("content-type", ""))
    message = f"{where} answered HTTP {status}: {text or 'no body'}"
    if status in _RETRYABLE_STATUSES:
        return RetryableError(message, retry_after(headers.get("retry-after")))
    return PermanentError(message, f"http_{status}")
