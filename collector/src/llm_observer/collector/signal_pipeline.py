"""Logs and metrics pipelines: OTLP log and metric requests from the WAL to the exporters that store or
forward them.

They run the same engine as traces pipelines (``pipeline.Pipeline``: one stage, a worker per exporter with
its own WAL cursor, retry, dead-letter store, self-metrics), over ``SignalBatch`` instead of spans. Nothing
processes them, so a batch is the WAL range's requests of the pipeline's signal, as they were received, each
with the tenant its receiver knew; the exporter decodes what it needs. A row is one request; a request an
exporter refuses is split into one request per log record or metric data point and sent again, so that only
the records that can never be stored are quarantined.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from llm_observer.collector.wal import Record
from llm_observer.kernel.batch import IngestMeta
from llm_observer.kernel.component import SIGNAL_LOGS, SIGNAL_METRICS, SIGNAL_NAMES
from llm_observer.kernel.signals import (
    LogsExporter,
    MetricsPushExporter,
    SignalBatch,
    SignalRecord,
    organization_of_record,
    split_request,
)

__all__ = ["LOGS", "METRICS", "SignalDecoder", "SignalKind"]


class SignalDecoder:
    """The WAL records of one signal in a range, as a ``SignalBatch`` named for the range (``origin``)."""

    def __init__(self, name: str, signal: int) -> None:
        self.name = name
        self.signal = signal

    def __call__(self, records: Sequence[Record], start: int, end: int) -> SignalBatch:
        return SignalBatch(
            self.signal,
            [SignalRecord(r.lsn, r.payload, r.meta) for r in records if r.signal == self.signal],
            f"{self.name}:{start}-{end}",
        )


class SignalKind:
    """The ``BatchKind`` of a logs or metrics pipeline: a row is one OTLP request."""

    def __init__(self, signal: int) -> None:
        self.number = signal
        self.signal = SIGNAL_NAMES[signal]
        self.unit = f"{self.signal} requests"
        self._method = "send_logs" if signal == SIGNAL_LOGS else "send_metrics"
        self.protocol: type[Any] = LogsExporter if signal == SIGNAL_LOGS else MetricsPushExporter

    def empty(self) -> SignalBatch:
        return SignalBatch(self.number)

    async def send(self, exporter: Any, batch: SignalBatch) -> None:
        await getattr(exporter, self._method)(batch)

    def take(self, batch: SignalBatch, rows: Sequence[int]) -> SignalBatch:
        records = batch.records
        return SignalBatch(batch.signal, [records[row] for row in rows], batch.origin)

    def metas(self, batch: SignalBatch) -> list[IngestMeta | None]:
        return [record.meta for record in batch.records]

    def organization(self, batch: SignalBatch, row: int, meta: IngestMeta | None) -> str:
        return organization_of_record(batch.records[row], batch.signal)

    def split(self, batch: SignalBatch, row: int) -> SignalBatch | None:
        record = batch.records[row]
        try:
            parts = split_request(batch.signal, record.payload)
        except Exception:
            return None  # not a request at all: it is quarantined as it is
        if len(parts) <= 1:
            return None
        return SignalBatch(
            batch.signal, [SignalRecord(record.lsn, part, record.meta) for part in parts], batch.origin
        )


LOGS = SignalKind(SIGNAL_LOGS)
METRICS = SignalKind(SIGNAL_METRICS)
