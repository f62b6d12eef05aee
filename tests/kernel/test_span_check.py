"""The native span check that settles the usual request, every span valid, before it is acknowledged.

``drop_invalid_spans(request, limits, now, raw)`` asks the native decoder whether every span of ``raw`` passes
the inline check; only when one does not (or has events, or bytes the decoder hands to the slow way) does it
check span by span in Python. Every test compares it with the Python check alone on the same request: the
spans kept, the refusals counted per reason and the first problem named must be the same.
"""

from __future__ import annotations

import random

from google.protobuf.message import DecodeError
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from llm_observer.collector.testing import genai_request
from llm_observer.kernel import otlp_codec
from llm_observer.kernel.limits import NANOS_PER_SECOND, TimeLimits
from llm_observer.kernel.otlp_codec import Rejected, drop_invalid_spans
from tests.support.protobuf_wire import damaged, field

NOW = 1_760_000_000 * NANOS_PER_SECOND
LIMITS = TimeLimits(latest_unix_nano=NOW + 3600 * NANOS_PER_SECOND, retention_seconds=86_400)
EARLIEST = LIMITS.earliest_start(NOW)


def both(payload: bytes, limits: TimeLimits = LIMITS) -> Rejected:
    """The check with the native step and without it, on two copies of the request: both must agree, on what
    they return and on what they leave in the request."""
    native_request = ExportTraceServiceRequest.FromString(payload)
    python_request = ExportTraceServiceRequest.FromString(payload)
    native = drop_invalid_spans(native_request, limits, NOW, payload)
    python = drop_invalid_spans(python_request, limits, NOW)
    assert (native.kept, native.refused, native.first) == (python.kept, python.refused, python.first)
    assert native_request == python_request
    return native


def test_the_span_check_is_built() -> None:
    assert otlp_codec._count_valid_spans is not None


def test_a_request_of_valid_spans_is_settled_natively() -> None:
    payload = genai_request(20, start_ns=NOW - NANOS_PER_SECOND).SerializeToString()
    assert otlp_codec._count_valid_spans is not None
    assert otlp_codec._count_valid_spans(payload, EARLIEST, LIMITS.latest_unix_nano) == 100
    rejected = both(payload)
    assert rejected.kept == 100 and rejected.count == 0


def test_the_empty_request() -> None:
    assert otlp_codec._count_valid_spans is not None
    assert otlp_codec._count_valid_spans(b"", 0, 2**64 - 1) == 0
    assert both(b"").kept == 0


# --- spans the native check hands to Python ----------------------------------------------------------


def span_request(**fields: object) -> bytes:
    """A request of two spans: one with ``fields`` changed, and a valid one beside it (a request is settled
    span by span, not refused whole)."""
    request = ExportTraceServiceRequest()
    spans = request.resource_spans.add().scope_spans.add().spans
    for span_id, changes in ((b"\x02" * 8, fields), (b"\x03" * 8, {})):
        span = spans.add(
            trace_id=b"\x01" * 16,
            span_id=span_id,
            name="ok",
            start_time_unix_nano=NOW - NANOS_PER_SECOND,
            end_time_unix_nano=NOW,
        )
        for name, value in changes.items():
            if name == "events":
                span.events.add(name="e", time_unix_nano=NOW)
            else:
                setattr(span, name, value)
    return request.SerializeToString()


def test_each_kind_of_invalid_span_is_refused_as_python_refuses_it() -> None:
    cases: dict[str, dict[str, object]] = {
        "short trace id": {"trace_id": b"\x01" * 15},
        "zero trace id": {"trace_id": bytes(16)},
        "short span id": {"span_id": b"\x02" * 7},
        "zero span id": {"span_id": bytes(8)},
        "odd parent": {"parent_span_id": b"\x04" * 4},
        "no start": {"start_time_unix_nano": 0},
        "end before start": {"end_time_unix_nano": NOW - 2 * NANOS_PER_SECOND},
        "end after latest": {"end_time_unix_nano": LIMITS.latest_unix_nano + 1},
        "older than retention": {"start_time_unix_nano": EARLIEST - 1},
    }
    for name, fields in cases.items():
        payload = span_request(**fields)
        assert otlp_codec._count_valid_spans is not None
        assert otlp_codec._count_valid_spans(payload, EARLIEST, LIMITS.latest_unix_nano) is None, name
        rejected = both(payload)
        assert rejected.kept == 1 and rejected.count == 1, name


def test_spans_with_events_are_checked_in_python() -> None:
    payload = span_request(events=True, parent_span_id=b"\x05" * 8)
    assert otlp_codec._count_valid_spans is not None
    assert otlp_codec._count_valid_spans(payload, EARLIEST, LIMITS.latest_unix_nano) is None
    assert both(payload).kept == 2


def test_limits_at_the_edges_of_an_unsigned_time() -> None:
    payload = span_request(end_time_unix_nano=2**64 - 1)
    # A latest time past what a fixed64 holds is clamped to it: both spans kept.
    assert both(payload, TimeLimits(latest_unix_nano=2**64 + 5)).kept == 2
    # A latest time before the epoch: every span refused.
    assert both(payload, TimeLimits(latest_unix_nano=-1)).count == 2


# --- wire bytes written by hand ----------------------------------------------------------------------


def wire_span(*extra: bytes) -> bytes:
    body = (
        field(1, b"\x01" * 16)
        + field(2, b"\x02" * 8)
        + field(7, NOW - NANOS_PER_SECOND, 1)
        + field(8, NOW, 1)
        + b"".join(extra)
    )
    return field(1, field(2, field(2, body)))


def test_a_repeated_id_field_is_read_as_the_runtime_reads_it_the_last_one() -> None:
    assert both(wire_span(field(1, bytes(16)))).count == 1  # a zero id after a good one: refused
    assert both(wire_span(field(2, b"\x09" * 8))).count == 0


def test_a_field_of_another_wire_type_goes_to_python() -> None:
    payload = wire_span(field(7, 5, 0))  # the start time sent again, as a varint
    assert otlp_codec._count_valid_spans is not None
    assert otlp_codec._count_valid_spans(payload, EARLIEST, LIMITS.latest_unix_nano) is None
    # The runtime keeps the start time of the right type and sets the varint aside as unknown: kept.
    assert both(payload).kept == 1


def test_unknown_fields_are_skipped() -> None:
    payload = wire_span(field(100, b"junk"), field(101, 7, 0), field(102, 9, 1))
    assert both(payload).kept == 1


@st.composite
def requests(draw: st.DrawFn) -> bytes:
    times = st.sampled_from([0, 1, EARLIEST - 1, EARLIEST, NOW, LIMITS.latest_unix_nano, 2**64 - 1])
    request = ExportTraceServiceRequest()
    for _ in range(draw(st.integers(0, 2))):
        rs = request.resource_spans.add()
        for _ in range(draw(st.integers(0, 2))):
            ss = rs.scope_spans.add()
            for _ in range(draw(st.integers(0, 4))):
                span = ss.spans.add(
                    trace_id=draw(st.sampled_from([b"\x01" * 16, bytes(16), b"\x01" * 15, b""])),
                    span_id=draw(st.sampled_from([b"\x02" * 8, bytes(8), b"\x02" * 9, b""])),
                    parent_span_id=draw(st.sampled_from([b"", b"\x03" * 8, bytes(8), b"\x03"])),
                    start_time_unix_nano=draw(times),
                    end_time_unix_nano=draw(times),
                )
                if draw(st.booleans()) and draw(st.booleans()):
                    span.events.add(name="e", time_unix_nano=draw(times))
    return request.SerializeToString()


@settings(max_examples=400, deadline=None)
@given(requests())
def test_random_requests_are_checked_as_python_checks_them(payload: bytes) -> None:
    both(payload)


def test_random_damage_never_changes_the_outcome() -> None:
    rng = random.Random(5)
    source = genai_request(4, start_ns=NOW - NANOS_PER_SECOND).SerializeToString()
    compared = 0
    for payload in damaged(source, rng, 2000, cut=0):
        try:
            ExportTraceServiceRequest.FromString(payload)
        except DecodeError:
            continue  # ingest refuses the request before the check
        both(payload)
        compared += 1
    assert compared > 100
