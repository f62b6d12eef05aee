"""How fast ClickHouse could store spans without Python decoding them, measured against the Python path.

The collector's write-ahead log holds the OTLP request bytes it acknowledged. Today Python decodes every
request into a ``SpanBatch`` (``decode_traces``), converts it to Arrow (``to_arrow``) and chDB inserts the
Arrow table. The candidate for goal 1 of the speed issue: chDB reads the request bytes itself (Protobuf
input format with ``native/otlp_traces.proto``, the oneof presence column telling an ``int_value`` of 0 from
an absent value), walks down to spans with ``ARRAY JOIN`` and inserts into the same ``otel_traces``, whose
typed GenAI, tenant and cost columns are already SQL over ``SpanAttributes``.

Both paths store the same generated GenAI requests (``genai_request``: 5-span agent traces, ~1 KB spans
with prompt content, plus a request of edge values: zero and empty attributes, booleans, floats, arrays,
bytes, events and links) into two databases of one chDB store. Reported: spans/s and CPU µs per span of
each path, and how many rows differ between the two stores, per column, with examples — what the SQL
transform still gets wrong is what a pipeline built on it must send to Python.

    .venv/bin/python bench/bench_native_decode.py [--spans 200000] [--json out.json]

Processors (normalise, attribute, cost, redact, roll-up) are not part of either path here.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList

from llm_observer.collector.testing import genai_request
from llm_observer.kernel.otlp_codec import decode_traces
from llm_observer.storage.clickhouse import schema
from llm_observer.storage.clickhouse.arrow import to_arrow
from llm_observer.storage.clickhouse.client import open_client
from llm_observer.storage.clickhouse.migrate import ensure_schema

SCHEMA = Path(__file__).with_name("native") / "otlp_traces.proto"

_PRESENCE = (
    "Enum8('none' = 0, 'string_value' = 1, 'bool_value' = 2, 'int_value' = 3, 'double_value' = 4, "
    "'array_value' = 5, 'kvlist_value' = 6, 'bytes_value' = 7)"
)
_SCALAR = (
    "Tuple(string_value String, bool_value Bool, int_value Int64, double_value Float64, bytes_value String, "
    f"value {_PRESENCE})"
)
_VALUE = (
    "Tuple(string_value String, bool_value Bool, int_value Int64, double_value Float64, "
    f"array_value Tuple(values Array({_SCALAR})), bytes_value String, value {_PRESENCE})"
)
_ATTRS = f"Array(Tuple(key String, value {_VALUE}))"
STRUCTURE = (
    f"resource_spans Array(Tuple(resource Tuple(attributes {_ATTRS}), scope_spans Array(Tuple("
    "scope Tuple(name String, version String), spans Array(Tuple("
    "trace_id String, span_id String, trace_state String, parent_span_id String, name String, kind Int32, "
    f"start_time_unix_nano UInt64, end_time_unix_nano UInt64, attributes {_ATTRS}, "
    f"events Array(Tuple(time_unix_nano UInt64, name String, attributes {_ATTRS})), "
    f"links Array(Tuple(trace_id String, span_id String, trace_state String, attributes {_ATTRS})), "
    "status Tuple(message String, code Int32)))))))"
)
_QUOTED_STRUCTURE = STRUCTURE.replace("'", "\\'")

# Python's float repr for the common cases: integral values keep ".0"; ClickHouse's own shortest form
# otherwise. The two differ where Python writes an exponent (1.5e-05 / 0.000015): the report shows them.
_FLOAT = "if(isFinite({x}) AND {x} = trunc({x}) AND abs({x}) < 1e16, concat(toString(toInt64({x})), '.0'), toString({x}))"


def _json_scalar(v: str) -> str:
    return (
        f"multiIf({v}.value = 'string_value', toJSONString({v}.string_value), "
        f"{v}.value = 'int_value', toString({v}.int_value), "
        f"{v}.value = 'bool_value', if({v}.bool_value, 'true', 'false'), "
        f"{v}.value = 'double_value', {_FLOAT.format(x=f'{v}.double_value')}, "
        f"{v}.value = 'bytes_value', toJSONString(base64Encode({v}.bytes_value)), 'null')"
    )


def _value(v: str) -> str:
    """SQL: a decoded value (tuple ``v``) as the Python path stringifies it. Strings, nearly every value,
    first: the rest is evaluated only for the other rows (~1 µs per span less than one flat multiIf)."""
    return (
        f"if({v}.value = 'string_value', {v}.string_value, multiIf("
        f"{v}.value = 'int_value', toString({v}.int_value), "
        f"{v}.value = 'bool_value', if({v}.bool_value, 'true', 'false'), "
        f"{v}.value = 'double_value', {_FLOAT.format(x=f'{v}.double_value')}, "
        f"{v}.value = 'array_value', "
        f"concat('[', arrayStringConcat(arrayMap(e -> {_json_scalar('e')}, {v}.array_value.values), ','), ']'), "
        f"{v}.value = 'bytes_value', base64Encode({v}.bytes_value), ''))"
    )


def _map(attrs: str) -> str:
    return f"mapFromArrays(arrayMap(a -> a.key, {attrs}), arrayMap(a -> {_value('a.value')}, {attrs}))"


def _hex(column: str) -> str:
    return f"lower(hex({column}))"


def native_select(path: Path) -> str:
    """The INSERT's SELECT: one row per span of every request in ``path`` (length-delimited messages)."""
    kinds = "['Unspecified', 'Internal', 'Server', 'Client', 'Producer', 'Consumer']"
    # Computed per span: an alias of the resource's map is not visible across the ARRAY JOINs.
    resource = _map("rs.resource.attributes")
    return f"""
SELECT
    fromUnixTimestamp64Nano(toInt64(sp.start_time_unix_nano)) AS Timestamp,
    {_hex("sp.trace_id")} AS TraceId,
    {_hex("sp.span_id")} AS SpanId,
    {_hex("sp.parent_span_id")} AS ParentSpanId,
    sp.trace_state AS TraceState,
    sp.name AS SpanName,
    {kinds}[if(sp.kind BETWEEN 0 AND 5, sp.kind + 1, 1)] AS SpanKind,
    {resource}['service.name'] AS ServiceName,
    {resource} AS ResourceAttributes,
    ss.scope.name AS ScopeName,
    ss.scope.version AS ScopeVersion,
    {_map("sp.attributes")} AS SpanAttributes,
    if(sp.end_time_unix_nano > sp.start_time_unix_nano, sp.end_time_unix_nano - sp.start_time_unix_nano, 0)
        AS Duration,
    ['Unset', 'Ok', 'Error'][if(sp.status.code BETWEEN 0 AND 2, sp.status.code + 1, 1)] AS StatusCode,
    sp.status.message AS StatusMessage,
    arrayMap(e -> fromUnixTimestamp64Nano(toInt64(e.time_unix_nano)), sp.events) AS `Events.Timestamp`,
    arrayMap(e -> e.name, sp.events) AS `Events.Name`,
    arrayMap(e -> {_map("e.attributes")}, sp.events) AS `Events.Attributes`,
    arrayMap(l -> {_hex("l.trace_id")}, sp.links) AS `Links.TraceId`,
    arrayMap(l -> {_hex("l.span_id")}, sp.links) AS `Links.SpanId`,
    arrayMap(l -> l.trace_state, sp.links) AS `Links.TraceState`,
    arrayMap(l -> {_map("l.attributes")}, sp.links) AS `Links.Attributes`
FROM file('{path}', 'Protobuf', '{_QUOTED_STRUCTURE}')
ARRAY JOIN resource_spans AS rs
ARRAY JOIN rs.scope_spans AS ss
ARRAY JOIN ss.spans AS sp
SETTINGS format_schema = '{SCHEMA}:ExportTraceServiceRequest', input_format_protobuf_oneof_presence = 1
"""


def _kv(key: str, value: AnyValue) -> KeyValue:
    return KeyValue(key=key, value=value)


def edge_request(start_ns: int) -> ExportTraceServiceRequest:
    """One request of values a straightforward transform gets wrong: zeros, empties, floats, arrays, bytes."""
    request = ExportTraceServiceRequest()
    rs = request.resource_spans.add()
    rs.resource.attributes.append(_kv("service.name", AnyValue(string_value="edge")))
    ss = rs.scope_spans.add()
    ss.scope.name = "edge"
    values = {
        "int.zero": AnyValue(int_value=0),
        "int.negative": AnyValue(int_value=-7),
        "string.empty": AnyValue(string_value=""),
        "string.unicode": AnyValue(string_value='naïve "quoted" / \\ \n tab\t'),
        "bool.false": AnyValue(bool_value=False),
        "bool.true": AnyValue(bool_value=True),
        "double.zero": AnyValue(double_value=0.0),
        "double.integral": AnyValue(double_value=3.0),
        "double.fraction": AnyValue(double_value=0.7),
        "double.small": AnyValue(double_value=1.5e-05),
        "double.large": AnyValue(double_value=2.5e17),
        "bytes": AnyValue(bytes_value=b"\x00\x01binary"),
        "array.strings": AnyValue(array_value=ArrayValue(values=[AnyValue(string_value="stop")])),
        "array.mixed": AnyValue(
            array_value=ArrayValue(
                values=[AnyValue(int_value=1), AnyValue(double_value=2.5), AnyValue(bool_value=True)]
            )
        ),
        "array.empty": AnyValue(array_value=ArrayValue()),
        "kvlist": AnyValue(kvlist_value=KeyValueList(values=[_kv("a", AnyValue(int_value=1))])),
        "unset": AnyValue(),
    }
    for n, (key, value) in enumerate(values.items()):
        span = ss.spans.add()
        span.trace_id, span.span_id = random.randbytes(16), random.randbytes(8)
        span.name, span.kind = f"edge {key}", n % 7
        span.start_time_unix_nano, span.end_time_unix_nano = (
            start_ns + n,
            start_ns + n + (1000 if n % 2 else 0),
        )
        span.attributes.append(_kv(key, value))
        span.status.code, span.status.message = n % 4, "m" if n % 3 else ""
        event = span.events.add()
        event.time_unix_nano, event.name = start_ns + n, "e"
        event.attributes.append(_kv(key, value))
        link = span.links.add()
        link.trace_id, link.span_id = random.randbytes(16), random.randbytes(8)
        link.attributes.append(_kv(key, value))
    return request


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        if n:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="bench-native-"))
    client = open_client("chdb://clickhouse", work / "store")
    try:
        rng = random.Random(7)
        start_ns = time.time_ns() - 3600 * 10**9
        requests = [edge_request(start_ns)]
        spans = 0
        while spans < args.spans:
            request = genai_request(traces=100, rng=rng, start_ns=start_ns + spans * 1000)
            requests.append(request)
            spans += sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)
        payloads = [r.SerializeToString() for r in requests]
        spans = sum(len(ss.spans) for r in requests for rs in r.resource_spans for ss in rs.scope_spans)
        for database in ("python", "native"):
            ensure_schema(client, database, ttl_days=30)

        # Python: what the pipeline does per request record today (decode, Arrow, insert), in 4 MiB batches.
        table = f"`python`.{schema.TRACES_TABLE}"
        wall, cpu = time.perf_counter(), _cpu()
        batch: list[bytes] = []
        size = 0
        for n, payload in enumerate(payloads):
            batch.append(payload)
            size += len(payload)
            if size >= 4 << 20 or n == len(payloads) - 1:
                decoded = None
                for raw in batch:
                    decoded = decode_traces(ExportTraceServiceRequest.FromString(raw), decoded)
                assert decoded is not None
                client.insert_arrow(table, schema.INSERT_COLUMNS, to_arrow(decoded))
                batch, size = [], 0
        python = {"seconds": time.perf_counter() - wall, "cpu_seconds": _cpu() - cpu}

        # Native: the same bytes, length-delimited in files of ~4 MiB, read by chDB.
        files: list[Path] = []
        chunk, size = bytearray(), 0
        for n, payload in enumerate(payloads):
            chunk += _varint(len(payload)) + payload
            if len(chunk) >= 4 << 20 or n == len(payloads) - 1:
                files.append(work / f"wal-{len(files)}.bin")
                files[-1].write_bytes(chunk)
                chunk = bytearray()
        columns = ", ".join(f"`{c}`" for c in schema.INSERT_COLUMNS)
        wall, cpu = time.perf_counter(), _cpu()
        for path in files:
            client.command(f"INSERT INTO `native`.{schema.TRACES_TABLE} ({columns}) {native_select(path)}")
        native = {"seconds": time.perf_counter() - wall, "cpu_seconds": _cpu() - cpu}

        # The two halves of the native path: decoding alone (the SELECT, output discarded), and the insert
        # alone (the same rows copied from one otel_traces into a third, so nothing is decoded).
        wall, cpu = time.perf_counter(), _cpu()
        for path in files:
            client.command(f"{native_select(path)} FORMAT Null")
        decode_only = {"seconds": time.perf_counter() - wall, "cpu_seconds": _cpu() - cpu}
        ensure_schema(client, "copy", ttl_days=30)
        wall, cpu = time.perf_counter(), _cpu()
        client.command(
            f"INSERT INTO `copy`.{schema.TRACES_TABLE} ({columns}) "
            f"SELECT {columns} FROM `python`.{schema.TRACES_TABLE} SETTINGS max_insert_block_size = 10000"
        )
        insert_only = {"seconds": time.perf_counter() - wall, "cpu_seconds": _cpu() - cpu}

        stored = {
            db: int(client.rows(f"SELECT count() AS n FROM `{db}`.{schema.TRACES_TABLE}")[0]["n"])
            for db in ("python", "native")
        }
        differences: dict[str, Any] = {}
        for column in schema.INSERT_COLUMNS:
            expr = f"`{column}`"
            rows = client.rows(
                f"""
SELECT p.SpanName AS span, toString(p.{expr}) AS python, toString(n.{expr}) AS native
FROM `python`.{schema.TRACES_TABLE} AS p
INNER JOIN `native`.{schema.TRACES_TABLE} AS n ON p.SpanId = n.SpanId AND p.TraceId = n.TraceId
WHERE p.{expr} != n.{expr}
SETTINGS join_use_nulls = 0
"""
            )
            if rows:
                differences[column] = {"rows": len(rows), "examples": rows[:3]}
        for path in files:
            path.unlink()
        timings = {
            "python": python,
            "native": native,
            "native_decode_only": decode_only,
            "insert_only": insert_only,
        }
        return {
            "spans": spans,
            "stored": stored,
            **{
                name: {
                    **t,
                    "spans_per_s": round(spans / t["seconds"]),
                    "cpu_us_per_span": round(1e6 * t["cpu_seconds"] / spans, 1),
                }
                for name, t in timings.items()
            },
            "differing_columns": differences,
        }
    finally:
        client.close()
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--spans", type=int, default=200_000)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    result = run(args)
    text = json.dumps(result, indent=2, ensure_ascii=False)
    print(text)
    if args.json:
        args.json.write_text(text)


if __name__ == "__main__":
    main()
