"""SpanBatch → Arrow conversion for the ClickHouse exporter (``exporters/clickhouse/arrow.py``)."""

from __future__ import annotations

import enum
from typing import Any

import pyarrow as pa
import pytest

from llm_observer.kernel.batch import Event, Link, SpanBatch
from llm_observer.storage.clickhouse import schema
from llm_observer.storage.clickhouse.arrow import ARROW_SCHEMA, stringify, to_arrow
from tests.support import add_span


class Color(enum.IntEnum):
    RED = 1


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("plain", "plain"),
        ("", ""),
        (True, "true"),
        (False, "false"),
        (0, "0"),
        (-12345678901234, "-12345678901234"),
        (Color.RED, "1"),
        (0.1, "0.1"),
        (1e-07, "1e-07"),
        (3.0, "3.0"),
        (b"\xff\x00", "/wA="),
        (["a", 1, True, None, 2.5], '["a",1,true,null,2.5]'),
        ({"k": [b"\x01"], "é": "ü"}, '{"k":["AQ=="],"é":"ü"}'),
        (("x", "y"), '["x","y"]'),
        (None, ""),
    ],
)
def test_clickhouse_arrow_stringify_writes_each_value_type_as_map_text(value: Any, text: str) -> None:
    assert stringify(value) == text


def _row(batch: SpanBatch, span: int, resource: dict[str, Any], **extra: Any) -> None:
    add_span(
        batch,
        extra.get("attributes", {"n": span}),
        resource=resource,
        trace_id=b"\xab" * 16,
        span_id=span.to_bytes(8, "big"),
        name=f"span {span}",
        kind=extra.get("kind", 2),
        start=1_000 + span,
        end=2_000 + span,
        status_code=extra.get("status", 0),
        scope_name="",
        events=extra.get("events"),
        links=extra.get("links"),
    )


def test_clickhouse_arrow_resources_follow_each_row() -> None:
    a: dict[str, Any] = {"service.name": "a", "k": 1}
    b: dict[str, Any] = {"service.name": "b"}
    a_copy = dict(a)  # equal but another object: converted on its own, same result
    none: dict[str, Any] = {}
    batch = SpanBatch()
    for span, resource in enumerate([a, b, a, a_copy, none, b]):
        _row(batch, span, resource)
    table = to_arrow(batch)
    assert table.column("ServiceName").to_pylist() == ["a", "b", "a", "a", "", "b"]
    expected = [[("service.name", "a"), ("k", "1")], [("service.name", "b")]]
    assert table.column("ResourceAttributes").to_pylist() == [
        expected[0],
        expected[1],
        expected[0],
        expected[0],
        [],
        expected[1],
    ]
    assert table.column("SpanAttributes").to_pylist() == [[("n", str(n))] for n in range(6)]


def test_clickhouse_arrow_single_resource_batch() -> None:
    resource = {"service.name": "only"}
    batch = SpanBatch()
    for span in range(3):
        _row(batch, span, resource)
    table = to_arrow(batch)
    assert table.column("ServiceName").to_pylist() == ["only"] * 3
    assert table.column("ResourceAttributes").to_pylist() == [[("service.name", "only")]] * 3


def test_clickhouse_arrow_nested_events_and_links_line_up_with_rows() -> None:
    resource = {"service.name": "s"}
    batch = SpanBatch()
    _row(batch, 0, resource, events=[Event(5, "e0", {"a": 1}), Event(6, "e1", {})])
    _row(batch, 1, resource, links=[Link(b"\x01" * 16, b"\x02" * 8, "ts", {"x": "y"})], kind=300)
    _row(batch, 2, resource, events=[Event(7, "e2", {"b": False})], kind=-1, status=7)
    table = to_arrow(batch)
    assert table.column("Events.Timestamp").cast(pa.list_(pa.int64())).to_pylist() == [[5, 6], [], [7]]
    assert table.column("Events.Name").to_pylist() == [["e0", "e1"], [], ["e2"]]
    assert table.column("Events.Attributes").to_pylist() == [[[("a", "1")], []], [], [[("b", "false")]]]
    assert table.column("Links.TraceId").to_pylist() == [[], ["01" * 16], []]
    assert table.column("Links.SpanId").to_pylist() == [[], ["02" * 8], []]
    assert table.column("Links.TraceState").to_pylist() == [[], ["ts"], []]
    assert table.column("Links.Attributes").to_pylist() == [[], [[("x", "y")]], []]
    assert table.column("SpanKind").to_pylist() == ["Server", "Unspecified", "Unspecified"]
    assert table.column("StatusCode").to_pylist() == ["Unset", "Unset", "Unset"]
    assert table.column("Duration").to_pylist() == [1000, 1000, 1000]


def test_clickhouse_arrow_empty_batch_has_the_schema() -> None:
    table = to_arrow(SpanBatch())
    assert table.num_rows == 0
    assert table.schema == ARROW_SCHEMA
    assert tuple(table.column_names) == schema.INSERT_COLUMNS


def test_clickhouse_arrow_stringify_keeps_equal_arrays_of_other_types_apart() -> None:
    # 1 == 1.0 == True: a cache keyed on the values alone would hand one of them the others' text.
    assert [stringify([1]), stringify([True]), stringify([1.0]), stringify([1])] == [
        "[1]",
        "[true]",
        "[1.0]",
        "[1]",
    ]
    assert [stringify(["stop"]), stringify(["stop"])] == ['["stop"]', '["stop"]']


def test_clickhouse_arrow_matches_a_row_by_row_conversion() -> None:
    import random

    rng = random.Random(3)
    resources: list[dict[str, Any]] = [{"service.name": f"s{n}", "n": n} for n in range(5)] + [{}]
    values: list[Any] = ["text", 7, -1, 2.5, True, False, b"\x00", ["a", "b"], [1, 2.0], {"k": "v"}, None]
    batch = SpanBatch()
    for span in range(300):
        attributes = {f"k{k}": rng.choice(values) for k in range(rng.randrange(6))}
        events = [
            Event(span * 10 + e, f"e{e}", {"x": rng.choice(values)} if e % 2 else {})
            for e in range(rng.randrange(3))
        ]
        links = [Link(rng.randbytes(16), rng.randbytes(8), "", {"l": span}) for _ in range(rng.randrange(2))]
        _row(
            batch,
            span,
            rng.choice(resources),
            attributes=attributes,
            events=events,
            links=links,
            kind=rng.randrange(-1, 8),
            status=rng.randrange(4),
        )
        batch.parent_span_id[-1] = rng.choice([b"", rng.randbytes(8)])

    def pairs(attrs: dict[str, Any]) -> list[tuple[str, str]]:
        return [(key, stringify(value)) for key, value in attrs.items()]

    kinds = ["Unspecified", "Internal", "Server", "Client", "Producer", "Consumer"]
    expected = [
        {
            "TraceId": batch.trace_id[i].hex(),
            "SpanId": batch.span_id[i].hex(),
            "ParentSpanId": batch.parent_span_id[i].hex(),
            "SpanName": batch.name[i],
            "SpanKind": kinds[batch.kind[i]] if 0 <= batch.kind[i] < 6 else "Unspecified",
            "ServiceName": str(batch.resource[i].get("service.name", "")),
            "ResourceAttributes": pairs(batch.resource[i]),
            "SpanAttributes": pairs(batch.attributes[i]),
            "Duration": batch.end_time_unix_nano[i] - batch.start_time_unix_nano[i],
            "StatusCode": ["Unset", "Ok", "Error"][batch.status_code[i]]
            if batch.status_code[i] < 3
            else "Unset",
            "Events.Name": [e.name for e in batch.events[i]],
            "Events.Attributes": [pairs(e.attributes) for e in batch.events[i]],
            "Links.TraceId": [link.trace_id.hex() for link in batch.links[i]],
            "Links.SpanId": [link.span_id.hex() for link in batch.links[i]],
            "Links.Attributes": [pairs(link.attributes) for link in batch.links[i]],
        }
        for i in range(len(batch))
    ]
    table = to_arrow(batch).select(list(expected[0]))
    assert table.to_pylist() == expected
