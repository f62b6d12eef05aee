"""The dead-letter store: spans an exporter could not deliver, kept for an operator instead of dropped.

A pipeline's delivery worker quarantines a set of spans when the exporter refuses them for good (after the
set was narrowed down to the refused rows) or when retries of it ran out; the worker's cursor then moves on,
so one bad set never blocks the rest. Layout under ``<data dir>/deadletter``::

    <id>.spans     the spans, as processed, each run of rows that share a resource and scope one OTLP
                   ``ExportTraceServiceRequest`` (``<u32 length><bytes>`` framed): decoding the runs in
                   order gives back the quarantined rows in their order
    <id>.records   instead of ``.spans`` for logs and metrics pipelines: the OTLP requests as received
                   (``<u64 WAL lsn><u32 length><bytes>`` framed), in order
    <id>.json      what, where from and why (``signal``: traces, logs or metrics): pipeline, exporter, WAL range, origin, reason, message, the
                   problem of each refused row (first few), time, span counts per organization, and the
                   tenant each row was ingested for (``provenance``: ``[first, end, meta]`` row ranges)
    <id>.replay    present when an operator asked for a replay (``llm-observer deadletter replay``)

The ``.json`` file is written last: an entry without it is incomplete and ignored. A running service picks
up entries marked for replay within about a second and hands them to the exporter they came from (after a
restart, at start-up); a delivered replay removes the entry. A replay carries the entry's ``origin``, so
storage that deduplicates on it (ClickHouse) stores nothing twice when a replay is repeated, and a set that
was quarantined after its retries ran out is replayed as exactly the batch that was sent.
"""

from __future__ import annotations

import json
import secrets
import struct
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from llm_observer.collector.wal import decode_meta, encode_meta, write_atomically
from llm_observer.kernel.batch import IngestMeta, Provenance, SpanBatch
from llm_observer.kernel.component import SIGNAL_LOGS, SIGNAL_METRICS
from llm_observer.kernel.otlp_codec import decode_trace_bytes, encode_traces
from llm_observer.kernel.signals import SignalBatch, SignalRecord, organization_of_record
from llm_observer.kernel.telemetry import Telemetry
from llm_observer.semconv.attributes import DEFAULT_ORGANIZATION, ORGANIZATION_ID

_FRAME = struct.Struct("<I")
_RECORD_FRAME = struct.Struct("<QI")
_SIGNALS = {"logs": SIGNAL_LOGS, "metrics": SIGNAL_METRICS}
_SIGNAL_NAMES = {number: name for name, number in _SIGNALS.items()}
MAX_PROBLEMS = 20


def organization_of(batch: SpanBatch, row: int, meta: IngestMeta | None) -> str:
    """The organization a row is stored under: the span attribute, else the resource's, else the ingest
    key's, else ``default`` (storage's precedence)."""
    for attrs in (batch.attributes[row], batch.resource[row]):
        value = attrs.get(ORGANIZATION_ID)
        if isinstance(value, str) and value:
            return value
    if meta is not None and meta.organization_id:
        return meta.organization_id
    return DEFAULT_ORGANIZATION


@dataclass(slots=True)
class Entry:
    """One quarantined set (the ``.json`` file)."""

    id: str
    pipeline: str
    exporter: str
    consumer: str
    reason: str
    message: str
    origin: str
    spans: int
    organizations: dict[str, int]
    time: str
    wal_range: list[int] | None = None
    problems: list[dict[str, Any]] = field(default_factory=list)
    provenance: list[list[Any]] = field(default_factory=list)
    replay_of: str | None = None
    replay_requested: bool = False
    # What the entry holds: spans (``traces``), or OTLP ``logs`` / ``metrics`` requests (``spans`` then
    # counts requests).
    signal: str = "traces"

    def summary(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("provenance")
        return out


class DeadLetterStore:
    """Entries under one directory. Safe to use from several threads and from the CLI beside a running
    service: every change is a whole-file write and rename, or an unlink."""

    def __init__(self, directory: Path, *, sync: bool = True, telemetry: Telemetry | None = None) -> None:
        self.directory = directory
        self.sync = sync
        self._telemetry = telemetry
        self._lock = threading.Lock()

    # --- writing (the delivery workers) -----------------------------------------------------------------

    def quarantine(
        self,
        batch: SpanBatch | SignalBatch,
        metas: Sequence[IngestMeta | None],
        *,
        pipeline: str,
        exporter: str,
        consumer: str,
        reason: str,
        message: str,
        origin: str | None = None,
        wal_range: tuple[int, int] | None = None,
        problems: dict[int, str] | None = None,
        replay_of: str | None = None,
    ) -> Entry:
        """Keep ``batch`` (``metas[i]``: the tenant row ``i`` was ingested for) durably; returns its entry.

        ``origin`` None gives the entry an origin of its own (``deadletter:<id>``)."""
        entry_id = f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{secrets.token_hex(4)}"
        if isinstance(batch, SignalBatch):
            organizations = Counter(organization_of_record(r, batch.signal) for r in batch.records)
        else:
            organizations = Counter(organization_of(batch, row, metas[row]) for row in range(len(batch)))
        listed = sorted((problems or {}).items())[:MAX_PROBLEMS]
        entry = Entry(
            id=entry_id,
            pipeline=pipeline,
            exporter=exporter,
            consumer=consumer,
            reason=reason,
            message=message,
            origin=origin or f"deadletter:{entry_id}",
            spans=len(batch),
            organizations=dict(organizations),
            time=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            wal_range=list(wal_range) if wal_range else None,
            problems=[_problem(batch, row, text) for row, text in listed],
            provenance=_provenance(metas),
            replay_of=replay_of,
            signal=_SIGNAL_NAMES[batch.signal] if isinstance(batch, SignalBatch) else "traces",
        )
        self.directory.mkdir(parents=True, exist_ok=True)
        if isinstance(batch, SignalBatch):
            self._write(self._path(entry_id, ".records"), _encode_records(batch))
        else:
            self._write(self._path(entry_id, ".spans"), _encode_rows(batch))
        self._write(
            self._path(entry_id, ".json"),
            json.dumps(entry.summary() | {"provenance": entry.provenance}).encode(),
        )
        self._report()
        return entry

    def _write(self, path: Path, data: bytes) -> None:
        write_atomically(path, data, self.sync, sync_directory=True)

    # --- reading -------------------------------------------------------------------------------------

    def _path(self, entry_id: str, suffix: str) -> Path:
        if not entry_id or not all(c.isalnum() or c in "-_T" for c in entry_id):
            raise KeyError(entry_id)
        return self.directory / f"{entry_id}{suffix}"

    def entries(self) -> list[Entry]:
        """Every complete entry, oldest first."""
        if not self.directory.is_dir():
            return []
        out = []
        for path in sorted(self.directory.glob("*.json")):
            try:
                out.append(self.get(path.stem))
            except (KeyError, ValueError):
                continue
        return out

    def get(self, entry_id: str) -> Entry:
        """The entry (``KeyError`` when there is none)."""
        path = self._path(entry_id, ".json")
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise KeyError(entry_id) from None
        entry = Entry(**{k: v for k, v in data.items() if k in Entry.__dataclass_fields__})
        entry.replay_requested = self._path(entry_id, ".replay").exists()
        return entry

    def load(self, entry_id: str) -> tuple[Entry, SpanBatch | SignalBatch]:
        """The entry and its spans (or OTLP requests), in the order they were quarantined, with ``origin``
        and the tenant of each row."""
        entry = self.get(entry_id)
        if entry.signal in _SIGNALS:
            return entry, self._load_records(entry)
        data = self._path(entry_id, ".spans").read_bytes()
        batch = SpanBatch()
        pos = 0
        while pos < len(data):
            (length,) = _FRAME.unpack_from(data, pos)
            pos += _FRAME.size
            decode_trace_bytes(data[pos : pos + length], batch)
            pos += length
        batch.origin = entry.origin
        for start, end, meta in entry.provenance:
            decoded = decode_meta(json.dumps(meta).encode()) if meta else None
            if decoded is not None:
                batch.provenance.append(Provenance(start, end, decoded))
        return entry, batch

    def _load_records(self, entry: Entry) -> SignalBatch:
        data = self._path(entry.id, ".records").read_bytes()
        metas: list[IngestMeta | None] = []
        for start, end, meta in entry.provenance:
            decoded = decode_meta(json.dumps(meta).encode()) if meta else None
            metas.extend([None] * (start - len(metas)))
            metas.extend([decoded] * (end - start))
        batch = SignalBatch(_SIGNALS[entry.signal], origin=entry.origin)
        pos = 0
        while pos < len(data):
            lsn, length = _RECORD_FRAME.unpack_from(data, pos)
            pos += _RECORD_FRAME.size
            row = len(batch.records)
            meta = metas[row] if row < len(metas) else None
            batch.records.append(SignalRecord(lsn, data[pos : pos + length], meta))
            pos += length
        return batch

    def replay_requested(self) -> list[str]:
        """Ids of the complete entries marked for replay, oldest first (cheap: one directory listing)."""
        if not self.directory.is_dir():
            return []
        return sorted(p.stem for p in self.directory.glob("*.replay") if p.with_suffix(".json").exists())

    # --- operator actions ----------------------------------------------------------------------------

    def request_replay(self, entry_id: str) -> Entry:
        entry = self.get(entry_id)
        self._write(self._path(entry_id, ".replay"), b"")
        entry.replay_requested = True
        return entry

    def remove(self, entry_id: str) -> None:
        """Delete the entry (its ``.json`` first, so that a half-removed entry is never read)."""
        for suffix in (".json", ".spans", ".records", ".replay"):
            self._path(entry_id, suffix).unlink(missing_ok=True)
        self._report()

    def _report(self) -> None:
        if self._telemetry is not None and self.directory.is_dir():
            self._telemetry.deadletter_entries.set(sum(1 for _ in self.directory.glob("*.json")))


def _provenance(metas: Sequence[IngestMeta | None]) -> list[list[Any]]:
    """``metas`` as ``[first, end, meta]`` runs (rows without a tenant are left out)."""
    out: list[list[Any]] = []
    start = 0
    for row in range(1, len(metas) + 1):
        if row == len(metas) or metas[row] != metas[start]:
            meta = metas[start]
            if meta is not None:
                out.append([start, row, json.loads(encode_meta(meta))])
            start = row
    return out


def _encode_rows(batch: SpanBatch) -> bytes:
    """The rows as OTLP requests, one per run of rows sharing a resource map and scope, in row order."""
    parts: list[bytes] = []
    start = 0
    n = len(batch)
    for row in range(1, n + 1):
        if row == n or (
            batch.resource[row] is not batch.resource[start]
            or batch.scope_name[row] != batch.scope_name[start]
            or batch.scope_version[row] != batch.scope_version[start]
        ):
            body = encode_traces(batch.take(range(start, row))).SerializeToString()
            parts.append(_FRAME.pack(len(body)) + body)
            start = row
    return b"".join(parts)


def _problem(batch: SpanBatch | SignalBatch, row: int, text: str) -> dict[str, Any]:
    if isinstance(batch, SignalBatch):
        return {"row": row, "lsn": batch.records[row].lsn, "problem": text}
    return {
        "row": row,
        "trace_id": batch.trace_id[row].hex(),
        "span_id": batch.span_id[row].hex(),
        "problem": text,
    }


def _encode_records(batch: SignalBatch) -> bytes:
    return b"".join(
        _RECORD_FRAME.pack(record.lsn, len(record.payload)) + record.payload for record in batch.records
    )


def metas_of(batch: SpanBatch) -> list[IngestMeta | None]:
    """The tenant each row was ingested for, from the batch's provenance (None where it says nothing)."""
    metas: list[IngestMeta | None] = [None] * len(batch)
    for prov in batch.provenance:
        for row in range(max(0, prov.start), min(prov.end, len(batch))):
            metas[row] = prov.meta
    return metas
