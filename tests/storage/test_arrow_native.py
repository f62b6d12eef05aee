"""The native layout of attribute maps and ids (``clickhouse/_arrow_native.c``) gives exactly the columns the
Python conversion gives, or leaves the column to it.

Each test builds the same column twice, with the extension and with ``arrow._arrow_native`` set to None (the
Python way), and compares the Arrow arrays: values of every kind, random maps, what the native code refuses
(non-dict maps, non-str keys, lone surrogates, non-bytes ids) and whole batches through ``to_arrow``.
"""

from __future__ import annotations

import enum
import math
import random
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llm_observer.collector.testing import genai_request
from llm_observer.kernel.otlp_codec import decode_trace_bytes
from llm_observer.storage.clickhouse import arrow
from llm_observer.storage.clickhouse.arrow import map_array, to_arrow


class Level(enum.IntEnum):
    HIGH = 3


def python_way(build: Callable[[], Any]) -> Any:
    native, arrow._arrow_native = arrow._arrow_native, None
    try:
        return build()
    finally:
        arrow._arrow_native = native


def outcome(build: Callable[[], Any]) -> Any:
    """The built array (validated, as Python values), or the type of the error building it raised."""
    try:
        array = build()
    except Exception as exc:
        return type(exc)
    array.validate(full=True)
    return array.to_pylist()


def assert_same(build: Callable[[], Any]) -> Any:
    native = outcome(build)
    assert native == outcome(lambda: python_way(build))
    return native


def test_the_native_layout_is_built() -> None:
    # The test run installs with a C compiler: the extension must be there, not silently skipped.
    assert arrow.NATIVE_ARROW


EVERY_KIND: dict[str, Any] = {
    "str": "plain",
    "empty": "",
    "unicode": "é ü 漢字 🙂",
    "nul": "a\x00b",
    "true": True,
    "false": False,
    "zero": 0,
    "negative": -12345678901234,
    "int64 max": 2**63 - 1,
    "int64 min": -(2**63),
    "past int64": 2**64 + 7,
    "far past int64": -(10**40),
    "int subclass": Level.HIGH,
    "float": 0.1,
    "exponent": 1e-07,
    "whole float": 3.0,
    "negative zero": -0.0,
    "inf": math.inf,
    "-inf": -math.inf,
    "huge": 1.7976931348623157e308,
    "subnormal": 5e-324,
    "bytes": b"\xff\x00",
    "list": ["a", 1, True, None, 2.5],
    "strings": ["stop"],
    "dict": {"k": [b"\x01"], "é": "ü"},
    "tuple": ("x", "y"),
    "none": None,
}


def test_every_value_kind_is_written_as_the_python_way_writes_it() -> None:
    column = assert_same(lambda: map_array([EVERY_KIND, {}, {"only": 1}]))
    assert dict(column[0])["past int64"] == str(2**64 + 7)
    assert dict(column[0])["int subclass"] == "3"
    assert dict(column[0])["negative zero"] == "-0.0"


def test_nan_is_written_as_nan() -> None:
    assert assert_same(lambda: map_array([{"x": math.nan}])) == [[("x", "nan")]]


def test_no_maps_and_empty_maps() -> None:
    assert assert_same(lambda: map_array([])) == []
    assert assert_same(lambda: map_array([{}, {}, {}])) == [[], [], []]


@pytest.mark.parametrize(
    "maps",
    [
        [{"k": "lone \ud800 surrogate"}],  # not UTF-8: refused by both ways alike
        [{"lone \udfff": "v"}],
        [{1: "v"}],  # not a str key
        [{"k": "v"}, "not a dict"],
        [{"k": "v"}, None],
    ],
)
def test_what_the_native_layout_refuses_goes_the_python_way(maps: list[Any]) -> None:
    assert_same(lambda: map_array(maps))


def test_a_dict_subclass_and_a_tuple_of_maps_go_the_python_way() -> None:
    class Ordered(dict[str, Any]):
        pass

    assert assert_same(lambda: map_array([Ordered(a=1)])) == [[("a", "1")]]
    assert assert_same(lambda: map_array(({"a": 1}, {"b": 2.5}))) == [[("a", "1")], [("b", "2.5")]]  # type: ignore[arg-type]


def test_a_stringify_that_fails_fails_the_same_way() -> None:
    class Broken:
        def __str__(self) -> str:
            raise RuntimeError("no text")

    with pytest.raises(RuntimeError, match="no text"):
        map_array([{"k": Broken()}])
    with pytest.raises(RuntimeError, match="no text"):
        python_way(lambda: map_array([{"k": Broken()}]))


values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text()
    | st.binary(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6,
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.dictionaries(st.text(max_size=12), values, max_size=6), max_size=8))
def test_random_maps_come_out_the_same(maps: list[dict[str, Any]]) -> None:
    assert_same(lambda: map_array(maps))


def test_ids_in_hex() -> None:
    ids = [b"", b"\x00", bytes(range(16)), b"\xff" * 8, random.Random(1).randbytes(33)]
    assert assert_same(lambda: arrow._hex(ids)) == [i.hex() for i in ids]


def test_ids_that_are_not_bytes_go_the_python_way() -> None:
    # ``bytes.hex`` takes only bytes: the Python way refuses the others, and so does the native one
    assert assert_same(lambda: arrow._hex([b"\x01", bytearray(b"\x02")])) is TypeError  # type: ignore[list-item]
    assert assert_same(lambda: arrow._hex([b"\x01", "not bytes"])) is TypeError  # type: ignore[list-item]
    assert assert_same(lambda: arrow._hex((b"\x01", b"\x02"))) == ["01", "02"]


def test_whole_batches_convert_to_the_same_table() -> None:
    rng = random.Random(7)
    for _ in range(5):
        batch = decode_trace_bytes(genai_request(traces=20, rng=rng).SerializeToString())
        native = to_arrow(batch)
        native.validate(full=True)
        assert native.equals(python_way(lambda batch=batch: to_arrow(batch)))
