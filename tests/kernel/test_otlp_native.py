"""The native OTLP trace decoder gives exactly the batch the protobuf runtime gives, or hands the bytes to it.

Every test compares ``decode_trace_bytes`` (native) with ``decode_traces(ExportTraceServiceRequest
.FromString(...))`` (the protobuf runtime) on the same bytes: requests built with the protobuf classes, wire
bytes written by hand for what the classes never produce (fields out of order, repeated singular fields,
unknown fields, wrong wire types), random requests, and random damage to valid ones.
"""

from __future__ import annotations

import contextlib
import math
import random
from typing import Any

import pytest
from google.protobuf.message import DecodeError
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from llm_observer.collector.testing import genai_request
from llm_observer.kernel import otlp_codec
from llm_observer.kernel.batch import COLUMNS, SpanBatch
from llm_observer.kernel.otlp_codec import decode_trace_bytes, decode_traces, to_any_value
from tests.support.protobuf_wire import damaged, field, varint


def slow(payload: bytes) -> SpanBatch:
    return decode_traces(ExportTraceServiceRequest.FromString(payload))


def rows(batch: SpanBatch) -> list[tuple[Any, ...]]:
    """The batch's spans as comparable tuples (NaN made equal to itself)."""

    def plain(value: Any) -> Any:
        if isinstance(value, float) and math.isnan(value):
            return "NaN"
        if isinstance(value, dict):
            return [(k, type(v).__name__, plain(v)) for k, v in value.items()]
        if isinstance(value, (list, tuple)):
            return [(type(v).__name__, plain(v)) for v in value]
        return value

    return [tuple(plain(getattr(batch, name)[i]) for name in COLUMNS) for i in range(len(batch))]


def assert_same(payload: bytes) -> SpanBatch:
    native = decode_trace_bytes(payload)
    assert rows(native) == rows(slow(payload))
    return native


def test_the_native_decoder_is_built() -> None:
    # The test run installs with a C compiler: the fallback must not hide a broken build.
    assert otlp_codec.NATIVE_DECODE


def attribute(key: str, value: Any) -> KeyValue:
    kv = KeyValue(key=key)
    to_any_value(value, kv.value)
    return kv


EVERY_KIND_OF_VALUE = {
    "s": "plain",
    "unicode": "naïve — 日本語 🙂",
    "empty": "",
    "t": True,
    "f": False,
    "i": 42,
    "zero": 0,
    "negative": -(2**63),
    "max": 2**63 - 1,
    "d": 0.25,
    "neg_zero": -0.0,
    "inf": math.inf,
    "nan": math.nan,
    "bytes": b"\x00\xff",
    "empty_bytes": b"",
    "strings": ["stop", "length"],
    "mixed": ["a", 1, 2.5, True, None, b"b", ["nested", [1]], {"k": "v"}],
    "empty_list": [],
    "map": {"a": 1, "b": {"c": ["d"]}, "e": None},
    "empty_map": {},
}


def full_request() -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    for r in range(3):
        rs = request.resource_spans.add()
        if r != 1:  # one ResourceSpans without a resource
            rs.resource.attributes.extend([attribute("service.name", f"svc-{r}"), attribute("r", r)])
        rs.schema_url = "https://opentelemetry.io/schemas/1.26.0"
        for s in range(2):
            ss = rs.scope_spans.add()
            if s == 0:
                ss.scope.name, ss.scope.version = "scope", "1.0"
                ss.scope.attributes.append(attribute("ignored", "yes"))
            for i in range(3):
                span: Span = ss.spans.add()
                span.trace_id = bytes([r, s, i]) * 5 + b"\x01"
                span.span_id = bytes([i + 1]) * 8
                if i:
                    span.parent_span_id = bytes([i]) * 8
                span.trace_state = "k=v" if i == 2 else ""
                span.name = f"chat {r}.{s}.{i}"
                span.kind = i  # type: ignore[assignment]
                span.start_time_unix_nano = 2**64 - 2 if i == 2 else 1_700_000_000_000_000_000 + i
                span.end_time_unix_nano = span.start_time_unix_nano + 1
                span.status.code = i  # type: ignore[assignment]
                span.status.message = "boom" if i == 2 else ""
                span.flags = 0x301
                span.dropped_attributes_count = 3
                span.attributes.extend(attribute(k, v) for k, v in EVERY_KIND_OF_VALUE.items())
                span.attributes.append(KeyValue(key="absent"))  # a key without a value
                span.attributes.append(attribute("s", "replaced"))  # a later key wins
                if i == 1:
                    ev = span.events.add(time_unix_nano=5, name="gen_ai.choice")
                    ev.attributes.append(attribute("index", 0))
                    span.events.add()  # an event with nothing set
                    ln = span.links.add(trace_id=b"\x02" * 16, span_id=b"\x03" * 8, trace_state="a=b")
                    ln.attributes.append(attribute("link", True))
                    span.links.add()
    return request


def test_every_field_and_value_kind_decodes_as_the_runtime_does() -> None:
    batch = assert_same(full_request().SerializeToString())
    assert len(batch) == 18
    # Spans of one ResourceSpans share one resource map, as in the slow path.
    assert batch.resource[0] is batch.resource[5]
    assert batch.resource[0] is not batch.resource[6]
    assert batch.attributes[0]["absent"] is None and batch.attributes[0]["s"] == "replaced"
    assert batch.attributes[0]["t"] is True and isinstance(batch.attributes[0]["i"], int)


def test_an_open_enum_value_outside_the_known_ones_is_kept() -> None:
    request = ExportTraceServiceRequest()
    span = request.resource_spans.add().scope_spans.add().spans.add(kind=99)
    span.status.code = -5  # type: ignore[assignment]
    batch = assert_same(request.SerializeToString())
    assert batch.kind == [99] and batch.status_code == [-5]


def test_the_empty_request_and_generated_requests() -> None:
    assert len(assert_same(b"")) == 0
    rng = random.Random(7)
    for _ in range(5):
        assert len(assert_same(genai_request(traces=20, rng=rng).SerializeToString())) > 0


def test_short_strings_are_one_object_each_and_long_ones_are_not_shared() -> None:
    # Keys, names and short values repeat from span to span: the decoder keeps one str per distinct short
    # string (up to 64 bytes), so a batch holds one copy of each. Longer strings are decoded every time.
    long_value = "x" * 65
    request = ExportTraceServiceRequest()
    spans = request.resource_spans.add().scope_spans.add().spans
    for n in range(3):
        span = spans.add(name="chat gpt-4o", trace_id=bytes(16), span_id=n.to_bytes(8, "big"))
        span.attributes.extend(
            [
                attribute("gen_ai.request.model", "gpt-4o-mini"),
                attribute("naïve 🙂", "日本語" * 7),  # 63 bytes of UTF-8
                attribute("edge", "y" * 64),
                attribute("long", long_value),
            ]
        )
    batch = assert_same(request.SerializeToString())
    first, *others = batch.attributes
    for other in others:
        for (key, value), (other_key, other_value) in zip(first.items(), other.items(), strict=True):
            assert key is other_key
            assert (value is other_value) == (key != "long")
    assert batch.name[0] is batch.name[1] is batch.name[2]
    assert first["long"] == long_value


def test_strings_that_share_a_cache_slot_keep_their_own_values() -> None:
    # Thousands of distinct short strings, more than the cache holds, each read twice: every one decodes to
    # itself whatever string held its slot before.
    request = ExportTraceServiceRequest()
    spans = request.resource_spans.add().scope_spans.add().spans
    for n in range(10_000):
        spans.add(name=f"op-{n}", span_id=n.to_bytes(8, "big")).attributes.append(
            attribute(f"k{n % 97}", f"v{n}")
        )
    payload = request.SerializeToString()
    assert_same(payload)
    assert_same(payload)


def test_spans_are_appended_after_the_rows_already_in_the_batch() -> None:
    first = genai_request(traces=3, rng=random.Random(1)).SerializeToString()
    second = genai_request(traces=4, rng=random.Random(2)).SerializeToString()
    batch = decode_trace_bytes(second, decode_trace_bytes(first))
    assert rows(batch) == rows(slow(first)) + rows(slow(second))


# --- wire bytes written by hand ----------------------------------------------------------------------


def text(number: int, value: str) -> bytes:
    return field(number, value.encode())


def key_value(key: str, *values: bytes) -> bytes:
    return text(1, key) + b"".join(field(2, v) for v in values)


def request_of(resource_spans: bytes) -> bytes:
    return field(1, resource_spans)


def one_span(span: bytes, scope: bytes = b"", resource: bytes = b"") -> bytes:
    return request_of(resource + field(2, scope + field(2, span)))


def test_a_resource_and_a_scope_after_their_spans() -> None:
    span = field(1, b"\x01" * 16) + text(5, "late")
    scope_spans = field(2, span) + field(1, text(1, "scope") + text(2, "2"))
    resource = field(1, field(1, key_value("service.name", text(1, "svc"))))
    batch = assert_same(request_of(field(2, scope_spans) + resource))
    assert batch.scope_name == ["scope"] and batch.resource[0] == {"service.name": "svc"}


def test_repeated_singular_fields_last_wins_and_embedded_messages_merge() -> None:
    span = (
        text(5, "first")
        + text(5, "second")
        + field(7, 1, 1)
        + field(7, 2, 1)
        + field(15, text(2, "msg") + field(3, 1, 0))
        + field(15, field(3, 2, 0))  # status merges: the message stays, the code changes
        + field(9, key_value("v", text(1, "x"), field(3, 7, 0)))  # the value's second occurrence wins
        + field(9, key_value("arr", field(5, field(1, text(1, "a"))), field(5, field(1, field(3, 1, 0)))))
        + field(9, key_value("map", field(6, field(1, key_value("a", text(1, "1")))), field(6, b"")))
        + field(9, key_value("switch", field(5, b""), text(1, "now a string")))
    )
    resource = field(1, field(1, key_value("a", text(1, "1")))) + field(
        1, field(1, key_value("b", text(1, "2")))
    )
    batch = assert_same(request_of(resource + field(2, field(2, span))))
    assert batch.name == ["second"] and batch.start_time_unix_nano == [2]
    assert batch.status_code == [2] and batch.status_message == ["msg"]
    assert batch.attributes[0] == {"v": 7, "arr": ["a", 1], "map": {"a": "1"}, "switch": "now a string"}
    assert batch.resource[0] == {"a": "1", "b": "2"}


def test_unknown_fields_of_every_wire_type_are_skipped() -> None:
    unknown = field(100, 5, 0) + field(101, 6, 1) + field(102, b"\xff\x00junk") + field(103, 7, 5)
    span = unknown + text(5, "s") + field(9, key_value("k", unknown + text(1, "v")) + unknown)
    batch = assert_same(request_of(unknown + field(2, unknown + field(2, span))) + unknown)
    assert batch.name == ["s"] and batch.attributes == [{"k": "v"}]


@pytest.mark.parametrize(
    "span",
    [
        field(5, 3, 0),  # a string sent as a varint
        field(7, b"12345678"),  # a fixed64 sent length-delimited
        field(9, key_value("k", field(3, b"\x01"))),  # an int value sent length-delimited
        field(6, 1, 5),  # the kind as a fixed32
    ],
    ids=["string-as-varint", "fixed64-as-bytes", "int-value-as-bytes", "enum-as-fixed32"],
)
def test_a_known_field_with_another_wire_type_decodes_as_the_runtime_decides(span: bytes) -> None:
    payload = one_span(text(5, "before") + span)
    try:
        expected = rows(slow(payload))
    except DecodeError:
        with pytest.raises(DecodeError):
            decode_trace_bytes(payload)
    else:
        assert rows(decode_trace_bytes(payload)) == expected


def test_a_group_goes_the_slow_way() -> None:
    group = varint(50 << 3 | 3) + field(51, 1, 0) + varint(50 << 3 | 4)  # an unknown group, start to end
    assert assert_same(one_span(text(5, "s")) + group).name == ["s"]


def nested(levels: int) -> bytes:
    value = text(1, "leaf")
    for _ in range(levels):
        value = field(5, field(1, value))
    return one_span(field(9, key_value("deep", value)))


def test_nesting_deeper_than_the_native_limit_goes_the_slow_way() -> None:
    assert_same(nested(40))  # past the native decoder's 32 levels, within the runtime's 100 messages
    with pytest.raises(DecodeError):
        decode_trace_bytes(nested(80))


@pytest.mark.parametrize(
    "payload",
    [
        one_span(field(5, b"bad \xff")),  # a span name that is not UTF-8
        one_span(text(5, "x"))[:-1],  # truncated
        one_span(b"") + b"\x0a\xff\xff\xff\xff\x0f",  # a length past the end
    ],
    ids=["invalid-utf8", "truncated", "length-past-end"],
)
def test_damaged_bytes_raise_decode_error_and_leave_the_batch_as_it_was(payload: bytes) -> None:
    good = genai_request(traces=2, rng=random.Random(3)).SerializeToString()
    batch = decode_trace_bytes(good)
    before = rows(batch)
    with pytest.raises(DecodeError):
        decode_trace_bytes(good + payload, batch)  # the good spans come first: they must not stay twice
    assert rows(batch) == before


# --- random requests and random damage ---------------------------------------------------------------

scalars = st.one_of(
    st.text(max_size=8),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=True),
    st.binary(max_size=8),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=4), inner, max_size=4)
    ),
    max_leaves=12,
)
attribute_maps = st.lists(st.tuples(st.sampled_from(["a", "b", "gen_ai.x", ""]), values), max_size=6)


@st.composite
def requests(draw: st.DrawFn) -> bytes:
    request = ExportTraceServiceRequest()
    for _ in range(draw(st.integers(0, 2))):
        rs = request.resource_spans.add()
        rs.resource.attributes.extend(attribute(k, v) for k, v in draw(attribute_maps))
        for _ in range(draw(st.integers(0, 2))):
            ss = rs.scope_spans.add()
            ss.scope.name = draw(st.text(max_size=4))
            for _ in range(draw(st.integers(0, 3))):
                span = ss.spans.add(
                    trace_id=draw(st.binary(max_size=16)),
                    name=draw(st.text(max_size=6)),
                    kind=draw(st.integers(-3, 9)),
                    start_time_unix_nano=draw(st.integers(0, 2**64 - 1)),
                    status=Status(code=draw(st.integers(0, 3)), message=draw(st.text(max_size=3))),
                )
                span.attributes.extend(attribute(k, v) for k, v in draw(attribute_maps))
                for _ in range(draw(st.integers(0, 2))):
                    event = span.events.add(
                        name=draw(st.text(max_size=3)), time_unix_nano=draw(st.integers(0, 9))
                    )
                    event.attributes.extend(attribute(k, v) for k, v in draw(attribute_maps))
    return request.SerializeToString()


@settings(max_examples=300, deadline=None)
@given(requests())
def test_random_requests_decode_as_the_runtime_does(payload: bytes) -> None:
    assert_same(payload)


def test_random_damage_never_gives_another_batch_than_the_runtime() -> None:
    rng = random.Random(11)
    source = full_request().SerializeToString()
    agreed = 0
    for payload in damaged(source, rng, 3000):
        try:
            expected = rows(slow(payload))
        except DecodeError:
            # The runtime rejects it: the native decoder may still read it when the damage lies in a field it
            # skips (ingest parses every request in full before the WAL), but it must not crash.
            with contextlib.suppress(DecodeError):
                decode_trace_bytes(payload)
            continue
        assert rows(decode_trace_bytes(payload)) == expected
        agreed += 1
    assert agreed > 100  # enough damaged requests still parse for the comparison to mean something
