"""The pipeline engine: WAL records → decoded ``SpanBatch`` → processors → every exporter.

One *stage* per pipeline reads new WAL records, decodes and processes them once, and keeps the last few
processed chunks in a small ring. Each exporter has a *worker* with its own persisted cursor: a worker that
keeps up takes chunks from the ring; one that fell behind (slow or failing exporter) reads and processes the
WAL range it needs itself, so it never blocks the others and they never receive duplicates. Before a send
the worker records the range as in flight; after a restart it replays exactly that range first, with the same
``origin``, so storage can drop the replay (idempotent writes).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from llm_observer.collector.notify import Notifier
from llm_observer.collector.wal import Cursor, Log, Record
from llm_observer.kernel.batch import Provenance, SpanBatch
from llm_observer.kernel.component import SIGNAL_LOGS, SIGNAL_TRACES, Exporter, Processor
from llm_observer.kernel.errors import PermanentError
from llm_observer.kernel.otlp_codec import decode_traces
from llm_observer.kernel.telemetry import Telemetry

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DeliverySettings:
    max_batch_bytes: int = 4 << 20
    min_batch_bytes: int = 1 << 20
    linger_seconds: float = 0.2
    timeout_seconds: float = 30.0
    initial_backoff_seconds: float = 0.1
    max_backoff_seconds: float = 10.0
    ring_size: int = 2


@dataclass(frozen=True, slots=True)
class Chunk:
    start: int
    end: int
    batch: SpanBatch


class Decoder:
    """Turns WAL records into one processed ``SpanBatch``: decode the spans, note each request's provenance
    (and, when a processor reads them, the range's OTLP log requests), then run the processors in order.

    Processors are deterministic, so the same records give the same batch; ``logjoin`` documents its one
    exception (content that waited for its span in an earlier range).
    """

    def __init__(
        self,
        name: str,
        processors: Sequence[tuple[str, Processor]],
        telemetry: Telemetry,
        read_logs: bool = False,
    ) -> None:
        self.name = name
        self.processors = list(processors)
        self.telemetry = telemetry
        self.read_logs = read_logs
        self._failed_once: set[str] = set()

    def __call__(self, records: Sequence[Record], start: int, end: int) -> SpanBatch:
        batch = SpanBatch()
        for record in records:
            if record.signal == SIGNAL_TRACES:
                before = len(batch)
                decode_traces(ExportTraceServiceRequest.FromString(record.payload), batch)
                if record.meta is not None and len(batch) > before:
                    batch.provenance.append(Provenance(before, len(batch), record.meta))
            elif record.signal == SIGNAL_LOGS and self.read_logs:
                batch.logs.append((record.lsn, record.payload))
        for component_id, processor in self.processors:
            try:
                batch = processor(batch)
            except Exception:
                # A processor bug must not lose data: the batch goes on without this processor's work.
                self.telemetry.component(component_id).event("processor_error")
                if component_id not in self._failed_once:
                    self._failed_once.add(component_id)
                    logger.exception("processor %s failed; batches pass it unprocessed", component_id)
        batch.origin = f"{self.name}:{start}-{end}"
        return batch


class ExporterWorker:
    """Delivers a pipeline's chunks to one exporter, behind its own cursor."""

    def __init__(self, pipeline: Pipeline, exporter_id: str, exporter: Exporter) -> None:
        self.pipeline = pipeline
        self.exporter_id = exporter_id
        self.exporter = exporter
        self.consumer = f"{pipeline.name}/{exporter_id}"
        self.cursor = Cursor(pipeline.log.first)
        self.task: asyncio.Task[None] | None = None
        self._last_warning = -1e9

    def load(self) -> None:
        self.cursor = self.pipeline.log.load_cursor(self.consumer)
        if self.cursor.next < self.pipeline.log.first:
            self.cursor = Cursor(self.pipeline.log.first, None)

    async def run(self) -> None:
        p = self.pipeline
        if self.cursor.inflight is not None:
            start, end = self.cursor.inflight
            records = p.log.read(start, end, 1 << 62)
            await self._deliver(Chunk(start, end, await p.decode(records, start, end)))
        while True:
            chunk = p.ring_chunk(self.cursor.next)
            if chunk is None:
                chunk = await p.catch_up(self.cursor.next)
            if chunk is None:
                await p.wait_for_chunks(partial(p.has_work_at, self.cursor.next))
                continue
            await self._deliver(chunk)

    async def _deliver(self, chunk: Chunk) -> None:
        p = self.pipeline
        if len(chunk.batch):
            await self._save(Cursor(self.cursor.next, (chunk.start, chunk.end)))
            await self._send_with_retry(chunk.batch)
        await self._save(Cursor(chunk.end, None))
        p.committed()

    async def _save(self, cursor: Cursor) -> None:
        # Cursor files are synced: keep that off the event loop, which is answering clients.
        await asyncio.to_thread(self.pipeline.log.save_cursor, self.consumer, cursor)
        self.cursor = cursor

    async def _send_with_retry(self, batch: SpanBatch) -> None:
        p = self.pipeline
        t = p.telemetry
        settings = p.settings
        backoff = settings.initial_backoff_seconds
        while True:
            started = time.perf_counter()
            try:
                async with asyncio.timeout(settings.timeout_seconds):
                    await self.exporter.send(batch)
            except PermanentError as exc:
                t.failed.labels(self.exporter_id, "permanent").inc(len(batch))
                logger.error("exporter %s refused %d spans for good: %s", self.exporter_id, len(batch), exc)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                t.export_retries.labels(self.exporter_id).inc()
                now = time.monotonic()
                if now - self._last_warning >= 60.0:
                    self._last_warning = now
                    logger.warning(
                        "exporter %s failing, will retry (data stays in the WAL): %s", self.exporter_id, exc
                    )
                await asyncio.sleep(backoff * (0.5 + random.random()))
                backoff = min(backoff * 2, settings.max_backoff_seconds)
                continue
            t.export_seconds.labels(self.exporter_id).observe(time.perf_counter() - started)
            t.exported.labels(self.exporter_id).inc(len(batch))
            return


class Pipeline:
    """One traces pipeline: a processing stage and a worker per exporter."""

    def __init__(
        self,
        name: str,
        log: Log,
        decoder: Decoder,
        exporters: Sequence[tuple[str, Exporter]],
        telemetry: Telemetry,
        settings: DeliverySettings,
        on_commit: Callable[[], None],
    ) -> None:
        self.name = name
        self.log = log
        self.decoder = decoder
        self.telemetry = telemetry
        self.settings = settings
        self.on_commit = on_commit
        self.workers = [ExporterWorker(self, exporter_id, exporter) for exporter_id, exporter in exporters]
        self._ring: deque[Chunk] = deque()
        self._stage_pos = 0
        self._changed = Notifier()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"llm-observer-{name}")
        self._stage_task: asyncio.Task[None] | None = None
        self._lag_task: asyncio.Task[None] | None = None

    # --- shared by workers ---------------------------------------------------------------------------

    async def decode(self, records: Sequence[Record], start: int, end: int) -> SpanBatch:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self.decoder, records, start, end)

    def _consumed(self, end: int) -> bool:
        return any(w.cursor.next >= end for w in self.workers)

    def has_work_at(self, cursor: int) -> bool:
        return self._stage_pos > cursor

    def ring_chunk(self, start: int) -> Chunk | None:
        for chunk in self._ring:
            if chunk.start == start:
                return chunk
        return None

    async def catch_up(self, cursor: int) -> Chunk | None:
        """Read and process ``[cursor, next ring boundary)`` from the WAL for a worker off the ring."""
        upper = next((chunk.start for chunk in self._ring if chunk.start > cursor), None)
        if upper is None:
            upper = self._stage_pos if self._stage_pos > cursor else None
        if upper is None:
            return None
        records = self.log.read(cursor, upper, self.settings.max_batch_bytes)
        if not records:
            return Chunk(cursor, upper, SpanBatch())
        end = records[-1].lsn + 1
        return Chunk(cursor, end, await self.decode(records, cursor, end))

    async def wait_for_chunks(self, ready: Callable[[], bool] = lambda: False) -> None:
        """Wait (at most a second) for the ring or a cursor to change."""
        await self._changed.wait_until(ready, 1.0)

    def committed(self) -> None:
        self._notify()
        self._report_lag()
        self.on_commit()

    def _notify(self) -> None:
        self._changed.notify()

    # --- the stage -----------------------------------------------------------------------------------

    async def _stage(self) -> None:
        s = self.settings
        while True:
            while len(self._ring) >= s.ring_size:
                oldest = self._ring[0]
                if any(w.cursor.next >= oldest.end for w in self.workers):
                    self._ring.popleft()  # a worker still on it falls back to reading the WAL
                    break
                await self.wait_for_chunks(partial(self._consumed, oldest.end))
            pos = self._stage_pos
            if not await self.log.wait_beyond(pos, 1.0):
                continue
            # Linger briefly so storage gets fewer, larger inserts.
            deadline = time.monotonic() + s.linger_seconds
            while (
                self.log.bytes_between(pos, self.log.head) < s.min_batch_bytes
                and time.monotonic() < deadline
                and await self.log.wait_beyond(self.log.head, deadline - time.monotonic())
            ):
                pass
            records = self.log.read(pos, self.log.head, s.max_batch_bytes)
            if not records:
                continue
            end = records[-1].lsn + 1
            batch = await self.decode(records, pos, end)
            self._ring.append(Chunk(pos, end, batch))
            self._stage_pos = end
            self._notify()

    def _report_lag(self) -> None:
        head = self.log.head
        for worker in self.workers:
            label = worker.consumer
            self.telemetry.wal_lag_records.labels(label).set(max(0, head - worker.cursor.next))
            self.telemetry.wal_lag_bytes.labels(label).set(self.log.bytes_between(worker.cursor.next, head))

    async def _lag_loop(self) -> None:
        while True:
            self._report_lag()
            await asyncio.sleep(1.0)

    # --- lifecycle -----------------------------------------------------------------------------------

    async def start(self) -> None:
        if self._stage_task is not None:
            return
        self._changed.bind()
        for worker in self.workers:
            worker.load()
        # The stage starts where the furthest-behind worker will be once it has replayed its in-flight range.
        self._stage_pos = min(
            (w.cursor.inflight[1] if w.cursor.inflight else w.cursor.next for w in self.workers),
            default=self.log.head,
        )
        self._stage_task = asyncio.create_task(self._stage(), name=f"pipeline-{self.name}-stage")
        for worker in self.workers:
            worker.task = asyncio.create_task(worker.run(), name=f"pipeline-{worker.consumer}")
        self._lag_task = asyncio.create_task(self._lag_loop(), name=f"pipeline-{self.name}-lag")

    def caught_up(self) -> bool:
        head = self.log.head
        return all(w.cursor.next >= head and w.cursor.inflight is None for w in self.workers)

    def min_cursor(self) -> int:
        return min(
            (w.cursor.inflight[0] if w.cursor.inflight else w.cursor.next for w in self.workers),
            default=self.log.head,
        )

    async def drain(self, timeout: float) -> bool:
        """Wait until every exporter has delivered everything in the WAL (or ``timeout``)."""
        deadline = time.monotonic() + timeout
        while not self.caught_up():
            if time.monotonic() >= deadline:
                return False
            await self.wait_for_chunks(self.caught_up)
        return True

    async def shutdown(self) -> None:
        tasks = [
            t for t in (self._stage_task, self._lag_task, *(w.task for w in self.workers)) if t is not None
        ]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._stage_task = self._lag_task = None
        for worker in self.workers:
            worker.task = None
        self._executor.shutdown(wait=True)
        self._report_lag()
