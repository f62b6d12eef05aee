"""OTLP logs and metrics into ClickHouse: ``otel_logs`` and the ``otel_metrics_*`` tables.

A ``SignalBatch`` holds OTLP requests as received. Each request (a row of the batch) is converted on its
own: one that holds a record no column can hold (a time past 2262, an id of the wrong length, a histogram
whose bucket counts do not match its bounds) is left out whole and named in the ``PartialFailure``, with
what is wrong; the delivery helper then sends it again split into single records, so that only the bad
records are quarantined and the rest is stored. Values follow the contrib ClickHouse exporter: ids as
lower-case hex, attribute maps stringified like span attributes, ``Timestamp`` the observed time when the
record has no time of its own.

Each record's resource gets the tenant of its request's ingest key (``stamp_tenant``, as spans get it), and
the tables derive ``OrganizationId`` / ``ProjectId`` from it. Inserts carry deduplication tokens derived
from the batch (its WAL range and the requests converted), so a replayed range stores nothing twice.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import InstrumentationScope, KeyValue
from opentelemetry.proto.metrics.v1.metrics_pb2 import Exemplar, Metric

from llm_observer.kernel.batch import Attributes
from llm_observer.kernel.component import SIGNAL_LOGS
from llm_observer.kernel.errors import PartialFailure, PermanentError
from llm_observer.kernel.otlp_codec import any_value, attributes_of
from llm_observer.kernel.signals import SignalBatch, SignalRecord, stamp_tenant
from llm_observer.storage.clickhouse import logs as logs_schema
from llm_observer.storage.clickhouse import metrics as metrics_schema
from llm_observer.storage.clickhouse.arrow import stringify
from llm_observer.storage.clickhouse.client import ClickHouseClient

__all__ = ["ConvertedTable", "convert_logs", "convert_metrics", "store_signals"]

_MAX_NS = (1 << 63) - 1  # a DateTime64(9) is an Int64 of nanoseconds
_DAY_NS = 86_400 * 1_000_000_000
# Inserts of at most this many UTC days stay within ClickHouse's ``max_partitions_per_insert_block`` (100)
# whatever the store's time zone (``toDate`` partitions by local day; a UTC day overlaps two).
MAX_DAYS_PER_INSERT = 49
_SERVICE_NAME = "service.name"

_STRING_MAP = pa.map_(pa.string(), pa.string())
_TIMESTAMP = pa.timestamp("ns")
_EXEMPLAR_TYPES = (
    pa.list_(_STRING_MAP),
    pa.list_(_TIMESTAMP),
    pa.list_(pa.float64()),
    pa.list_(pa.string()),
    pa.list_(pa.string()),
)
_COMMON_TYPES = (
    _STRING_MAP,  # ResourceAttributes
    pa.string(),  # ResourceSchemaUrl
    pa.string(),  # ScopeName
    pa.string(),  # ScopeVersion
    _STRING_MAP,  # ScopeAttributes
    pa.uint32(),  # ScopeDroppedAttrCount
    pa.string(),  # ScopeSchemaUrl
    pa.string(),  # ServiceName
    pa.string(),  # MetricName
    pa.string(),  # MetricDescription
    pa.string(),  # MetricUnit
    _STRING_MAP,  # Attributes
    _TIMESTAMP,  # StartTimeUnix
    _TIMESTAMP,  # TimeUnix
)
_LOG_TYPES = (
    _TIMESTAMP,  # Timestamp
    pa.string(),  # TraceId
    pa.string(),  # SpanId
    pa.uint8(),  # TraceFlags
    pa.string(),  # SeverityText
    pa.uint8(),  # SeverityNumber
    pa.string(),  # ServiceName
    pa.string(),  # Body
    pa.string(),  # ResourceSchemaUrl
    _STRING_MAP,  # ResourceAttributes
    pa.string(),  # ScopeSchemaUrl
    pa.string(),  # ScopeName
    pa.string(),  # ScopeVersion
    _STRING_MAP,  # ScopeAttributes
    _STRING_MAP,  # LogAttributes
    pa.string(),  # EventName
)
_METRIC_TYPES: dict[str, tuple[pa.DataType, ...]] = {
    metrics_schema.GAUGE_TABLE: (*_COMMON_TYPES, pa.float64(), pa.uint32(), *_EXEMPLAR_TYPES),
    metrics_schema.SUM_TABLE: (
        *_COMMON_TYPES,
        pa.float64(),
        pa.uint32(),
        *_EXEMPLAR_TYPES,
        pa.int32(),
        pa.bool_(),
    ),
    metrics_schema.HISTOGRAM_TABLE: (
        *_COMMON_TYPES,
        pa.uint64(),
        pa.float64(),
        pa.list_(pa.uint64()),
        pa.list_(pa.float64()),
        *_EXEMPLAR_TYPES,
        pa.uint32(),
        pa.float64(),
        pa.float64(),
        pa.int32(),
    ),
    metrics_schema.EXPONENTIAL_HISTOGRAM_TABLE: (
        *_COMMON_TYPES,
        pa.uint64(),
        pa.float64(),
        pa.int32(),
        pa.uint64(),
        pa.int32(),
        pa.list_(pa.uint64()),
        pa.int32(),
        pa.list_(pa.uint64()),
        *_EXEMPLAR_TYPES,
        pa.uint32(),
        pa.float64(),
        pa.float64(),
        pa.int32(),
    ),
    metrics_schema.SUMMARY_TABLE: (
        *_COMMON_TYPES,
        pa.uint64(),
        pa.float64(),
        pa.list_(pa.float64()),
        pa.list_(pa.float64()),
        pa.uint32(),
    ),
}
_KIND_TABLES = {
    "gauge": metrics_schema.GAUGE_TABLE,
    "sum": metrics_schema.SUM_TABLE,
    "histogram": metrics_schema.HISTOGRAM_TABLE,
    "exponential_histogram": metrics_schema.EXPONENTIAL_HISTOGRAM_TABLE,
    "summary": metrics_schema.SUMMARY_TABLE,
}


class _Unstorable(ValueError):
    """A record no column can hold; the message says which field and why."""


@dataclass(slots=True)
class ConvertedTable:
    """The rows for one table: Python values by column (in the table's insert order), each row's day, and
    the batch rows (requests) they came from."""

    table: str
    columns: tuple[str, ...]
    types: tuple[pa.DataType, ...]
    values: list[list[Any]]
    days: list[int] = field(default_factory=list)
    sources: set[int] = field(default_factory=set)

    @classmethod
    def empty(cls, table: str, columns: tuple[str, ...], types: tuple[pa.DataType, ...]) -> ConvertedTable:
        return cls(table, columns, types, [[] for _ in columns])

    def __len__(self) -> int:
        return len(self.days)

    def extend(self, other: ConvertedTable) -> None:
        for mine, theirs in zip(self.values, other.values, strict=True):
            mine.extend(theirs)
        self.days.extend(other.days)
        self.sources |= other.sources

    def arrow(self, rows: Sequence[int] | None = None) -> pa.Table:
        """The rows (all when None) as an Arrow table whose column names are ``columns``."""
        arrays = []
        for values, arrow_type in zip(self.values, self.types, strict=True):
            picked = values if rows is None else [values[row] for row in rows]
            if arrow_type == _TIMESTAMP:
                arrays.append(pa.array(picked, pa.int64()).view(_TIMESTAMP))
            else:
                arrays.append(pa.array(picked, arrow_type))
        return pa.Table.from_arrays(arrays, names=list(self.columns))


# --- shared conversion helpers ----------------------------------------------------------------------------


def _time(name: str, value: int) -> int:
    if value > _MAX_NS:
        raise _Unstorable(f"{name} {value} is outside what storage can hold (0..{_MAX_NS})")
    return value


def _hex_id(name: str, value: bytes, size: int) -> str:
    if value and len(value) != size:
        raise _Unstorable(f"{name} has {len(value)} bytes, not {size}")
    return value.hex()


def _items(attributes: Attributes) -> list[tuple[str, str]]:
    return [(key, stringify(value)) for key, value in attributes.items()]


def _kv_items(kvs: Iterable[KeyValue]) -> list[tuple[str, str]]:
    return _items(attributes_of(kvs))


@dataclass(slots=True)
class _Resource:
    """A resource's stored form, with the tenant of its request stamped in."""

    attributes: list[tuple[str, str]]
    service_name: str
    schema_url: str


def _resource(kvs: Iterable[KeyValue], schema_url: str, record: SignalRecord) -> _Resource:
    attributes = attributes_of(kvs)
    stamp_tenant(attributes, record.meta)
    return _Resource(_items(attributes), stringify(attributes.get(_SERVICE_NAME, "")), schema_url)


def _scope(scope: InstrumentationScope) -> tuple[str, str, list[tuple[str, str]], int]:
    return scope.name, scope.version, _kv_items(scope.attributes), scope.dropped_attributes_count


def _row_day(unix_nano: int) -> int:
    return unix_nano // _DAY_NS


# --- logs -------------------------------------------------------------------------------------------------


def _log_rows(record: SignalRecord) -> ConvertedTable:
    """One request's log records as ``otel_logs`` rows (``_Unstorable`` names the first bad record)."""
    out = ConvertedTable.empty(logs_schema.LOGS_TABLE, logs_schema.LOG_INSERT_COLUMNS, _LOG_TYPES)
    request = ExportLogsServiceRequest.FromString(record.payload)
    cols = out.values
    for resource_logs in request.resource_logs:
        resource = _resource(resource_logs.resource.attributes, resource_logs.schema_url, record)
        for scope_logs in resource_logs.scope_logs:
            scope_name, scope_version, scope_attributes, _ = _scope(scope_logs.scope)
            for index, log in enumerate(scope_logs.log_records):
                try:
                    timestamp = _time("time_unix_nano", log.time_unix_nano or log.observed_time_unix_nano)
                    _time("observed_time_unix_nano", log.observed_time_unix_nano)
                    trace_id = _hex_id("trace_id", log.trace_id, 16)
                    span_id = _hex_id("span_id", log.span_id, 8)
                    if not 0 <= log.severity_number <= 255:
                        raise _Unstorable(f"severity_number {log.severity_number} is not a severity")
                except _Unstorable as exc:
                    raise _Unstorable(f"log record {index}: {exc}") from None
                body = log.body
                text = (
                    body.string_value
                    if body.WhichOneof("value") == "string_value"
                    else stringify(any_value(body))
                )
                for column, value in zip(
                    cols,
                    (
                        timestamp,
                        trace_id,
                        span_id,
                        log.flags & 0xFF,
                        log.severity_text,
                        log.severity_number,
                        resource.service_name,
                        text,
                        resource.schema_url,
                        resource.attributes,
                        scope_logs.schema_url,
                        scope_name,
                        scope_version,
                        scope_attributes,
                        _kv_items(log.attributes),
                        log.event_name,
                    ),
                    strict=True,
                ):
                    column.append(value)
                out.days.append(_row_day(timestamp))
    return out


def convert_logs(batch: SignalBatch) -> tuple[ConvertedTable, dict[int, str]]:
    """The storable requests' log records as ``otel_logs`` rows, and the problem of each request left out."""
    out = ConvertedTable.empty(logs_schema.LOGS_TABLE, logs_schema.LOG_INSERT_COLUMNS, _LOG_TYPES)
    problems: dict[int, str] = {}
    for row, record in enumerate(batch.records):
        try:
            part = _log_rows(record)
        except (_Unstorable, DecodeError) as exc:
            problems[row] = str(exc) or "not an OTLP logs request"
            continue
        part.sources.add(row)
        out.extend(part)
    return out, problems


# --- metrics ----------------------------------------------------------------------------------------------


def _exemplars(exemplars: Iterable[Exemplar]) -> list[list[Any]]:
    attributes, times, values, span_ids, trace_ids = [], [], [], [], []
    for n, exemplar in enumerate(exemplars):
        attributes.append(_kv_items(exemplar.filtered_attributes))
        times.append(_time(f"exemplars[{n}].time_unix_nano", exemplar.time_unix_nano))
        values.append(
            float(exemplar.as_int) if exemplar.WhichOneof("value") == "as_int" else exemplar.as_double
        )
        span_ids.append(_hex_id(f"exemplars[{n}].span_id", exemplar.span_id, 8))
        trace_ids.append(_hex_id(f"exemplars[{n}].trace_id", exemplar.trace_id, 16))
    return [attributes, times, values, span_ids, trace_ids]


def _number(point: Any) -> float:
    return float(point.as_int) if point.WhichOneof("value") == "as_int" else float(point.as_double)


def _optional(point: Any, name: str) -> float:
    return float(getattr(point, name)) if point.HasField(name) else 0.0


def _point_values(kind: str, metric: Metric, point: Any) -> list[Any]:
    """The columns after the common ones, for one data point of a metric of ``kind``."""
    if kind == "gauge":
        return [_number(point), point.flags, *_exemplars(point.exemplars)]
    if kind == "sum":
        data = metric.sum
        return [
            _number(point),
            point.flags,
            *_exemplars(point.exemplars),
            data.aggregation_temporality,
            data.is_monotonic,
        ]
    if kind == "histogram":
        counts, bounds = list(point.bucket_counts), list(point.explicit_bounds)
        if counts and len(counts) != len(bounds) + 1:
            raise _Unstorable(
                f"{len(counts)} bucket counts for {len(bounds)} explicit bounds (needs bounds + 1)"
            )
        return [
            point.count,
            point.sum,
            counts,
            bounds,
            *_exemplars(point.exemplars),
            point.flags,
            _optional(point, "min"),
            _optional(point, "max"),
            metric.histogram.aggregation_temporality,
        ]
    if kind == "exponential_histogram":
        return [
            point.count,
            point.sum,
            point.scale,
            point.zero_count,
            point.positive.offset,
            list(point.positive.bucket_counts),
            point.negative.offset,
            list(point.negative.bucket_counts),
            *_exemplars(point.exemplars),
            point.flags,
            _optional(point, "min"),
            _optional(point, "max"),
            metric.exponential_histogram.aggregation_temporality,
        ]
    return [
        point.count,
        point.sum,
        [q.quantile for q in point.quantile_values],
        [q.value for q in point.quantile_values],
        point.flags,
    ]


def _metric_rows(record: SignalRecord) -> dict[str, ConvertedTable]:
    """One request's data points as rows of the metric tables (``_Unstorable`` names the first bad one)."""
    tables: dict[str, ConvertedTable] = {}
    request = ExportMetricsServiceRequest.FromString(record.payload)
    for resource_metrics in request.resource_metrics:
        resource = _resource(resource_metrics.resource.attributes, resource_metrics.schema_url, record)
        for scope_metrics in resource_metrics.scope_metrics:
            scope_name, scope_version, scope_attributes, dropped = _scope(scope_metrics.scope)
            for metric in scope_metrics.metrics:
                kind = metric.WhichOneof("data")
                table_name = _KIND_TABLES.get(kind or "")
                if table_name is None:
                    continue  # no data (an empty metric): nothing to store
                table = tables.get(table_name)
                if table is None:
                    table = tables[table_name] = ConvertedTable.empty(
                        table_name,
                        metrics_schema.METRIC_INSERT_COLUMNS[table_name],
                        _METRIC_TYPES[table_name],
                    )
                for index, point in enumerate(getattr(metric, kind).data_points):  # type: ignore[arg-type]
                    try:
                        start = _time("start_time_unix_nano", point.start_time_unix_nano)
                        when = _time("time_unix_nano", point.time_unix_nano)
                        values = [
                            resource.attributes,
                            resource.schema_url,
                            scope_name,
                            scope_version,
                            scope_attributes,
                            dropped,
                            scope_metrics.schema_url,
                            resource.service_name,
                            metric.name,
                            metric.description,
                            metric.unit,
                            _kv_items(point.attributes),
                            start,
                            when,
                            *_point_values(kind, metric, point),  # type: ignore[arg-type]
                        ]
                    except _Unstorable as exc:
                        raise _Unstorable(f"metric {metric.name!r} data point {index}: {exc}") from None
                    for column, value in zip(table.values, values, strict=True):
                        column.append(value)
                    table.days.append(_row_day(when))
    return tables


def convert_metrics(batch: SignalBatch) -> tuple[dict[str, ConvertedTable], dict[int, str]]:
    """The storable requests' data points by table, and the problem of each request left out."""
    tables: dict[str, ConvertedTable] = {}
    problems: dict[int, str] = {}
    for row, record in enumerate(batch.records):
        try:
            parts = _metric_rows(record)
        except (_Unstorable, DecodeError) as exc:
            problems[row] = str(exc) or "not an OTLP metrics request"
            continue
        for name, part in parts.items():
            part.sources.add(row)
            if name in tables:
                tables[name].extend(part)
            else:
                tables[name] = part
    return tables, problems


# --- storing ----------------------------------------------------------------------------------------------


def dedup_token(batch: SignalBatch, problems: dict[int, str]) -> str:
    """The batch's idempotency key: its WAL range (``origin``), and a digest of the requests it stores.

    A replay of the range converts the same requests into the same rows, so its inserts carry the same
    tokens and ClickHouse drops them. The digest keeps apart batches that share an origin: the parts a
    refused request is split into, and ranges of a WAL that started over while the store lived on."""
    if not batch.origin:
        return ""
    return f"{batch.origin}/{len(batch) - len(problems)}/{_digest(batch, problems)}"


def _digest(batch: SignalBatch, problems: dict[int, str]) -> str:
    digest = hashlib.blake2b(digest_size=12)
    for row, record in enumerate(batch.records):
        if row not in problems:
            digest.update(record.lsn.to_bytes(8, "little"))
            digest.update(len(record.payload).to_bytes(8, "little"))
            digest.update(record.payload)
    return digest.hexdigest()


def _units(batch: SignalBatch) -> list[tuple[str | None, list[int]]]:
    """The batch's rows by where they were read from: each ``IngestMeta.source`` (a replayable record of
    another system, such as a Kafka offset range) alone, and the rest together (None).

    A source's rows are inserted on their own, keyed by the source rather than the WAL range: read twice
    (a consumer-group rebalance), they make the same insert under the same token wherever they land."""
    plain: list[int] = []
    sourced: dict[str, list[int]] = {}
    for row, record in enumerate(batch.records):
        source = record.meta.source if record.meta is not None else None
        if source:
            sourced.setdefault(source, []).append(row)
        else:
            plain.append(row)
    units: list[tuple[str | None, list[int]]] = [(None, plain)] if plain else []
    units.extend(sourced.items())
    return units


def _day_groups(days: list[int]) -> list[list[int]] | None:
    """Row indices in groups of at most ``MAX_DAYS_PER_INSERT`` days; None when one insert will do."""
    distinct = sorted(set(days))
    if len(distinct) <= MAX_DAYS_PER_INSERT:
        return None
    group_of = {day: n // MAX_DAYS_PER_INSERT for n, day in enumerate(distinct)}
    groups: list[list[int]] = [[] for _ in range(group_of[distinct[-1]] + 1)]
    for row, day in enumerate(days):
        groups[group_of[day]].append(row)
    return groups


Converter = Callable[[SignalBatch], tuple[dict[str, ConvertedTable], dict[int, str]]]


def store_signals(
    client: ClickHouseClient,
    database: str,
    batch: SignalBatch,
    settings: dict[str, Any] | None = None,
) -> None:
    """Insert every storable record of ``batch`` into its table; raise ``PartialFailure`` naming the
    requests left out (the others are stored). ``RetryableError`` from the store propagates: sending the
    batch again stores only what is missing. ``settings`` go with every insert."""
    convert: Converter = _convert_logs_by_table if batch.signal == SIGNAL_LOGS else convert_metrics
    problems: dict[int, str] = {}
    refused: set[int] = set()
    refusal = ""
    reason = "invalid_data"
    for source, rows in _units(batch):
        unit = (
            batch
            if len(rows) == len(batch)
            else SignalBatch(batch.signal, [batch.records[row] for row in rows], batch.origin)
        )
        tables, unit_problems = convert(unit)
        problems.update({rows[row]: text for row, text in unit_problems.items()})
        if source is None:
            token = dedup_token(unit, unit_problems)
        else:
            token = f"{source}/{len(unit) - len(unit_problems)}/{_digest(unit, unit_problems)}"
        for name in sorted(tables):
            table = tables[name]
            if not len(table):
                continue
            sources = {rows[row] for row in table.sources}
            groups = _day_groups(table.days)
            for index, group in enumerate(groups if groups is not None else [None]):
                insert_settings = dict(settings or {})
                if token:
                    suffix = f"/{name}" if groups is None else f"/{name}/g{index}"
                    insert_settings["insert_deduplication_token"] = token + suffix
                try:
                    data = table.arrow(group)
                except (pa.ArrowException, OverflowError, ValueError, TypeError) as exc:
                    # The checks above should leave nothing Arrow refuses: if they missed something, the
                    # requests of this table are refused (then split and narrowed down) rather than lost.
                    refused |= sources
                    refusal = f"cannot convert for ClickHouse: {exc}"
                    continue
                try:
                    client.insert_arrow(f"`{database}`.{name}", table.columns, data, insert_settings)
                except PermanentError as exc:
                    refused |= sources
                    reason = exc.reason
                    refusal = str(exc)
    if problems or refused:
        bad = sorted(set(problems) | refused)
        message = f"{len(bad)} of {len(batch)} requests not stored"
        if problems:
            first = min(problems)
            message += f"; request {first}: {problems[first]}"
        if refused:
            message += f"; ClickHouse refused {len(refused)}: {refusal}"
            reason = reason if not problems else "invalid_data"
        raise PartialFailure(message, bad, reason, dict(problems))


def _convert_logs_by_table(batch: SignalBatch) -> tuple[dict[str, ConvertedTable], dict[int, str]]:
    table, problems = convert_logs(batch)
    return {table.table: table}, problems
