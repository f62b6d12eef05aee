"""``SpanBatch`` → Arrow table with the columns of ``otel_traces`` (``schema.INSERT_COLUMNS``, in order).

Values follow the contrib ClickHouse exporter, so tools that read its tables read ours: ids as lower-case
hex (empty when absent), ``SpanKind`` / ``StatusCode`` as names, ``Duration`` in nanoseconds, and attribute
maps as ``Map(String, String)`` with every value stringified (see ``stringify``).

This is the collector's hot path. The attribute maps and the ids, most of its work, are laid out as Arrow
buffers by the native ``_arrow_native`` when it is built (``NATIVE_ARROW``), with no Python object per value;
anything it does not take (see its docstring) and every other column are built in Python, each in one pass
with C-level iteration (``map``/``chain``/``accumulate``), and the per-resource work is done once per
distinct resource map rather than once per span.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Sequence
from itertools import accumulate, chain
from operator import itemgetter
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from llm_observer.kernel.batch import SPAN_KIND_NAMES, STATUS_NAMES, Attributes, AttrValue, SpanBatch
from llm_observer.storage.clickhouse.pandas_check import settle_without_pandas

try:
    from llm_observer.storage.clickhouse import _arrow_native
except ImportError:  # installed without a C compiler
    _arrow_native = None  # type: ignore[assignment]

NATIVE_ARROW = _arrow_native is not None
"""Whether the attribute maps and ids are laid out natively (see ``_arrow_native``)."""

settle_without_pandas()  # before the first conversion: see pandas_check

_STRING_MAP = pa.map_(pa.string(), pa.string())
_TIMESTAMP = pa.timestamp("ns")
_KINDS = pa.array(SPAN_KIND_NAMES, pa.string())
_STATUSES = pa.array(STATUS_NAMES, pa.string())
_EMPTY_STRINGS = pa.array([], pa.string())
_SERVICE_NAME = "service.name"

ARROW_SCHEMA = pa.schema(
    [
        ("Timestamp", _TIMESTAMP),
        ("TraceId", pa.string()),
        ("SpanId", pa.string()),
        ("ParentSpanId", pa.string()),
        ("TraceState", pa.string()),
        ("SpanName", pa.string()),
        ("SpanKind", pa.dictionary(pa.int8(), pa.string())),
        ("ServiceName", pa.string()),
        ("ResourceAttributes", _STRING_MAP),
        ("ScopeName", pa.string()),
        ("ScopeVersion", pa.string()),
        ("SpanAttributes", _STRING_MAP),
        ("Duration", pa.uint64()),
        ("StatusCode", pa.dictionary(pa.int8(), pa.string())),
        ("StatusMessage", pa.string()),
        ("Events.Timestamp", pa.list_(_TIMESTAMP)),
        ("Events.Name", pa.list_(pa.string())),
        ("Events.Attributes", pa.list_(_STRING_MAP)),
        ("Links.TraceId", pa.list_(pa.string())),
        ("Links.SpanId", pa.list_(pa.string())),
        ("Links.TraceState", pa.list_(pa.string())),
        ("Links.Attributes", pa.list_(_STRING_MAP)),
    ]
)
"""The Arrow schema of ``to_arrow``'s tables; its names are ``schema.INSERT_COLUMNS``."""


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(value).decode("ascii")
    return str(value)


# One encoder for every call: ``json.dumps`` with options builds a new one each time.
_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=_json_default)


# Arrays of strings repeat (``gen_ai.response.finish_reasons`` is nearly always ``["stop"]``): remember the
# JSON of short ones instead of encoding them again for every span.
_LIST_CACHE: dict[tuple[str, ...], str] = {}
_LIST_CACHE_SIZE = 1024


def _list_json(value: list[Any]) -> str:
    if len(value) > 8:
        return _JSON.encode(value)
    try:
        "".join(value)  # only strings join; other elements (1 == 1.0 == True as keys) are not cached
    except TypeError:
        return _JSON.encode(value)
    key = tuple(value)
    text = _LIST_CACHE.get(key)
    if text is None:
        text = _JSON.encode(value)
        if len(_LIST_CACHE) >= _LIST_CACHE_SIZE:
            _LIST_CACHE.clear()
        _LIST_CACHE[key] = text
    return text


def stringify(value: AttrValue) -> str:
    """An attribute value as the contrib exporter stores it: strings as they are, ``true``/``false``,
    integers in decimal, floats as ``repr``, bytes as base64, lists and maps as compact JSON, none as ``""``."""
    cls = value.__class__
    if cls is str:
        return value  # type: ignore[no-any-return]
    if cls is bool:
        return "true" if value else "false"
    if cls is int:
        return int.__repr__(value)
    if cls is float:
        return float.__repr__(value)
    if cls is list:
        return _list_json(value)
    if cls is dict:
        return _JSON.encode(value)
    if value is None:
        return ""
    # Subclasses and the rarer kinds.
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return int.__repr__(value)
    if isinstance(value, float):
        return float.__repr__(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, list | tuple | dict):
        return _JSON.encode(value)
    return str(value)


def _strings(values: Iterable[AttrValue]) -> list[str]:
    str_, int_, float_, conv = str, int, float, stringify
    # Strings, integers and floats are nearly all of the values: none of them costs a Python call (an
    # f-string formats an exact int or float without one, unlike ``str(v)`` or ``repr(v)``).
    return [
        v if (c := v.__class__) is str_ else f"{v}" if c is int_ else f"{v!r}" if c is float_ else conv(v)
        for v in values
    ]


def _offsets(lengths: Iterable[int]) -> pa.Array:
    return pa.array(list(accumulate(lengths, initial=0)), pa.int32())


def _utf8(count: int, offsets: bytes, data: bytes) -> pa.Array:
    return pa.Array.from_buffers(pa.string(), count, [None, pa.py_buffer(offsets), pa.py_buffer(data)])


def map_array(maps: Sequence[Attributes]) -> pa.MapArray:
    """One ``Map(String, String)`` value per attribute dict, values stringified."""
    if _arrow_native is not None and maps.__class__ is list:
        try:
            map_offsets, key_offsets, keys, value_offsets, values, entries = _arrow_native.string_map(
                maps, stringify
            )
        except (TypeError, ValueError, OverflowError):
            pass  # what the native layout does not take: the Python way below decides what it means
        else:
            return pa.MapArray.from_arrays(
                pa.Array.from_buffers(pa.int32(), len(maps) + 1, [None, pa.py_buffer(map_offsets)]),
                _utf8(entries, key_offsets, keys),
                _utf8(entries, value_offsets, values),
            )
    keys_array = pa.array(list(chain.from_iterable(maps)), pa.string())
    values_array = pa.array(_strings(chain.from_iterable(map(dict.values, maps))), pa.string())
    return pa.MapArray.from_arrays(_offsets(map(len, maps)), keys_array, values_array)


def _hex(ids: Iterable[bytes]) -> pa.Array:
    if _arrow_native is not None and ids.__class__ is list:
        try:
            offsets, data = _arrow_native.hex_ids(ids)
        except (TypeError, OverflowError):
            pass  # non-bytes ids, or 2 GiB of hex: the Python way decides
        else:
            return _utf8(len(ids), offsets, data)
    return pa.array(list(map(bytes.hex, ids)), pa.string())


def _names(codes: list[int], names: pa.Array) -> pa.DictionaryArray:
    """``codes`` as a dictionary column over ``names``; out-of-range codes read as the first name."""
    try:
        indices = pa.array(codes, pa.int8())
        bounds = pc.min_max(indices)
        if not codes or (bounds["min"].as_py() >= 0 and bounds["max"].as_py() < len(names)):
            return pa.DictionaryArray.from_arrays(indices, names)
    except (pa.ArrowInvalid, OverflowError):  # a code beyond int8
        pass
    top = len(names)
    return pa.DictionaryArray.from_arrays(
        pa.array([c if 0 <= c < top else 0 for c in codes], pa.int8()), names
    )


def _resources(resources: list[Attributes]) -> tuple[pa.Array, pa.Array]:
    """(ServiceName, ResourceAttributes), converting each distinct resource map (by identity) once."""
    ids = list(map(id, resources))
    by_id = dict(zip(ids, resources, strict=True))
    position = {key: n for n, key in enumerate(by_id)}
    distinct = list(by_id.values())
    services = pa.array([stringify(r.get(_SERVICE_NAME, "")) for r in distinct], pa.string())
    attributes = map_array(distinct)
    if len(distinct) == 1:
        # The common case (one ResourceSpans per request): repeat instead of gathering.
        rows = len(resources)
        return (
            pa.repeat(services[0], rows) if rows else services.slice(0, 0),
            attributes.take(pa.array([0] * rows, pa.int32())),
        )
    indices = pa.array(list(map(position.__getitem__, ids)), pa.int32())
    return services.take(indices), attributes.take(indices)


def _nested(offsets: pa.Array, values: pa.Array) -> pa.ListArray:
    return pa.ListArray.from_arrays(offsets, values)


def _events(events: list[list[Any]]) -> list[pa.Array]:
    offsets = _offsets(map(len, events))
    flat = list(chain.from_iterable(events))
    if not flat:
        return [
            _nested(offsets, pa.array([], _TIMESTAMP)),
            _nested(offsets, _EMPTY_STRINGS),
            _nested(offsets, pa.array([], _STRING_MAP)),
        ]
    return [
        _nested(offsets, pa.array(list(map(itemgetter(0), flat)), _TIMESTAMP)),
        _nested(offsets, pa.array(list(map(itemgetter(1), flat)), pa.string())),
        _nested(offsets, map_array(list(map(itemgetter(2), flat)))),
    ]


def _links(links: list[list[Any]]) -> list[pa.Array]:
    offsets = _offsets(map(len, links))
    flat = list(chain.from_iterable(links))
    if not flat:
        return [
            _nested(offsets, _EMPTY_STRINGS),
            _nested(offsets, _EMPTY_STRINGS),
            _nested(offsets, _EMPTY_STRINGS),
            _nested(offsets, pa.array([], _STRING_MAP)),
        ]
    return [
        _nested(offsets, _hex(map(itemgetter(0), flat))),
        _nested(offsets, _hex(map(itemgetter(1), flat))),
        _nested(offsets, pa.array(list(map(itemgetter(2), flat)), pa.string())),
        _nested(offsets, map_array(list(map(itemgetter(3), flat)))),
    ]


_MAX_NS = (1 << 63) - 1  # a DateTime64(9) is an Int64 of nanoseconds: 2262-04-11T23:47:16.854775807Z


def unstorable_rows(batch: SpanBatch) -> dict[int, str]:
    """Rows that no ``otel_traces`` column can hold, each with what is wrong (naming the field).

    Checks the time fields, the one thing valid OTLP can carry that the table cannot (``fixed64`` times
    past 2262). Cheap when all is well: one ``max`` per column, rows looked at only when that fails."""
    problems: dict[int, str] = {}
    for field, column in (
        ("start_time_unix_nano", batch.start_time_unix_nano),
        ("end_time_unix_nano", batch.end_time_unix_nano),
    ):
        if column and (max(column) > _MAX_NS or min(column) < 0):
            for row, value in enumerate(column):
                if not 0 <= value <= _MAX_NS:
                    problems.setdefault(
                        row, f"{field} {value} is outside what storage can hold (0..{_MAX_NS})"
                    )
    for row, events in enumerate(batch.events):
        for index, event in enumerate(events):
            if not 0 <= event.time_unix_nano <= _MAX_NS:
                problems.setdefault(
                    row,
                    f"events[{index}].time_unix_nano {event.time_unix_nano} is outside what storage can hold "
                    f"(0..{_MAX_NS})",
                )
                break
    return problems


def to_arrow(batch: SpanBatch) -> pa.Table:
    """The batch as an Arrow table with ``ARROW_SCHEMA``, one row per span, in batch order.

    Raises ``pyarrow.ArrowException`` / ``OverflowError`` for values no column can hold (times past int64).
    """
    start = pa.array(batch.start_time_unix_nano, pa.int64())
    end = pa.array(batch.end_time_unix_nano, pa.int64())
    # A span that ends before it starts (or never ended: end = 0) has no duration rather than a huge one.
    duration = pc.max_element_wise(pc.subtract(end, start), 0).cast(pa.uint64())
    service_name, resource_attributes = _resources(batch.resource)
    arrays = [
        start.view(_TIMESTAMP),
        _hex(batch.trace_id),
        _hex(batch.span_id),
        _hex(batch.parent_span_id),
        pa.array(batch.trace_state, pa.string()),
        pa.array(batch.name, pa.string()),
        _names(batch.kind, _KINDS),
        service_name,
        resource_attributes,
        pa.array(batch.scope_name, pa.string()),
        pa.array(batch.scope_version, pa.string()),
        map_array(batch.attributes),
        duration,
        _names(batch.status_code, _STATUSES),
        pa.array(batch.status_message, pa.string()),
        *_events(batch.events),
        *_links(batch.links),
    ]
    return pa.Table.from_arrays(arrays, schema=ARROW_SCHEMA)
