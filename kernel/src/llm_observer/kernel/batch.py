"""``SpanBatch``: the one batch type that moves through the pipeline.

Spans are held column by column (one Python list per field) so that exporters can hand whole columns to
Arrow and processors can work over a column without touching the rest. Attribute maps hold typed Python
values (``str``, ``bool``, ``int``, ``float``, ``bytes``, ``list``, ``dict``) so nothing is lost on the way
from OTLP in to OTLP out. The resource map is shared by every span of one OTLP ``ResourceSpans``: a processor
that changes resource attributes for some spans only must copy the map first.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, NamedTuple

AttrValue = Any  # str | bool | int | float | bytes | list[AttrValue] | dict[str, AttrValue]
Attributes = dict[str, AttrValue]


class Event(NamedTuple):
    time_unix_nano: int
    name: str
    attributes: Attributes


class Link(NamedTuple):
    trace_id: bytes
    span_id: bytes
    trace_state: str
    attributes: Attributes


# OTLP status codes
STATUS_UNSET = 0
STATUS_OK = 1
STATUS_ERROR = 2

SPAN_KIND_NAMES = ("Unspecified", "Internal", "Server", "Client", "Producer", "Consumer")
STATUS_NAMES = ("Unset", "Ok", "Error")


@dataclass(frozen=True, slots=True)
class IngestMeta:
    """What the receiver knows about a request beyond its bytes (kept in the WAL beside them)."""

    organization_id: str | None = None
    project_id: str | None = None
    # When the key may write to several projects: the data's own project must be one of them.
    allowed_projects: tuple[str, ...] | None = None
    # Where the request was read from when it is a replayable record of another system, e.g.
    # ``kafka:otlp_spans/3/1200-1264`` (topic, partition, offsets). Stores derive insert-deduplication tokens
    # from it, so the same source records read twice (a consumer-group rebalance, a crash before the offset
    # commit) are stored once.
    source: str | None = None


@dataclass(frozen=True, slots=True)
class Provenance:
    """Rows ``[start, end)`` of a batch came from one request whose receiver knew ``meta``."""

    start: int
    end: int
    meta: IngestMeta


@dataclass(slots=True)
class SpanBatch:
    """Spans as parallel columns; row ``i`` of every list is span ``i``."""

    trace_id: list[bytes] = field(default_factory=list)
    span_id: list[bytes] = field(default_factory=list)
    parent_span_id: list[bytes] = field(default_factory=list)
    trace_state: list[str] = field(default_factory=list)
    name: list[str] = field(default_factory=list)
    kind: list[int] = field(default_factory=list)
    start_time_unix_nano: list[int] = field(default_factory=list)
    end_time_unix_nano: list[int] = field(default_factory=list)
    status_code: list[int] = field(default_factory=list)
    status_message: list[str] = field(default_factory=list)
    attributes: list[Attributes] = field(default_factory=list)
    resource: list[Attributes] = field(default_factory=list)
    scope_name: list[str] = field(default_factory=list)
    scope_version: list[str] = field(default_factory=list)
    events: list[list[Event]] = field(default_factory=list)
    links: list[list[Link]] = field(default_factory=list)
    # Where the batch came from (e.g. ``traces:17-42``, a WAL range). Not a column. Replaying the same
    # range yields the same spans, so exporters may use it as an idempotency key.
    origin: str = ""
    # Not columns either: what the pipeline's decoder knows of the WAL range, for the processors that need it
    # (``tenant`` reads the provenance, ``logjoin`` the OTLP log requests). Exporters must not rely on them,
    # except for ``meta.source`` (an idempotency key when present); ``take`` and ``concat`` do not carry them.
    provenance: list[Provenance] = field(default_factory=list)
    logs: list[tuple[int, bytes]] = field(default_factory=list)  # (WAL lsn, ExportLogsServiceRequest bytes)
    # The ``IngestMeta`` of each log request in ``logs`` that had one, by WAL lsn: whose content it is.
    log_meta: dict[int, IngestMeta] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.span_id)

    def columns(self) -> Iterator[tuple[str, list[Any]]]:
        for name in COLUMNS:
            yield name, getattr(self, name)

    def extend(self, other: SpanBatch) -> None:
        """Append every span of ``other`` to this batch."""
        for name, column in self.columns():
            column.extend(getattr(other, name))

    def take(self, rows: Sequence[int]) -> SpanBatch:
        """A new batch holding the given rows, in that order."""
        out = SpanBatch()
        for name, column in self.columns():
            getattr(out, name).extend(column[i] for i in rows)
        return out

    @classmethod
    def concat(cls, batches: Sequence[SpanBatch]) -> SpanBatch:
        if len(batches) == 1:
            return batches[0]
        out = cls()
        for batch in batches:
            out.extend(batch)
        return out

    def service_name(self, row: int) -> str:
        value = self.resource[row].get("service.name")
        return value if isinstance(value, str) else ""


COLUMNS: tuple[str, ...] = tuple(
    f.name for f in fields(SpanBatch) if f.name not in ("origin", "provenance", "logs", "log_meta")
)
