"""The pipeline engine: WAL records → decoded ``SpanBatch`` → processors → every exporter.

One *stage* per pipeline reads new WAL records, decodes and processes them once, and keeps the last few
processed chunks in a small ring. Each exporter has a *worker* with its own persisted cursor: a worker that
keeps up takes chunks from the ring; one that fell behind (slow or failing exporter) reads and processes the
WAL range it needs itself, so it never blocks the others and they never receive duplicates. Before a send
the worker records the range as in flight; after a restart it replays exactly that range first, with the same
``origin``, so storage can drop the replay (idempotent writes).

The workers, and what keeps a refused batch, a failing exporter or a full disk from stopping one for good,
are in ``delivery.py``. Logs and metrics pipelines run the same engine over OTLP requests instead of spans
(``signal_pipeline.py`` has their decoder and batch kinds). Each pipeline reports to ``/health`` (``Telemetry.health``) when its stage or a
worker is down or not making progress.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Generic

from google.protobuf.message import DecodeError

from llm_observer.collector.deadletter import DeadLetterStore
from llm_observer.collector.delivery import (
    SPANS,
    B,
    BatchKind,
    Chunk,
    DeliverySettings,
    ExporterPolicy,
    ExporterWorker,
    QueueSettings,
    RetrySettings,
    Supervisor,
)
from llm_observer.collector.notify import Notifier
from llm_observer.collector.wal import Log, Record
from llm_observer.kernel.batch import Provenance, SpanBatch
from llm_observer.kernel.component import SIGNAL_LOGS, SIGNAL_TRACES, Processor
from llm_observer.kernel.otlp_codec import decode_trace_bytes
from llm_observer.kernel.telemetry import Telemetry
from llm_observer.kernel.tenancy import enforce_tenancy
from llm_observer.kernel.threads import named_thread_pool

__all__ = [
    "Chunk",
    "Decoder",
    "DeliverySettings",
    "ExporterPolicy",
    "Pipeline",
    "QueueSettings",
    "RetrySettings",
]

logger = logging.getLogger(__name__)


class Decoder:
    """Turns WAL records into one processed ``SpanBatch``: decode the spans, note each request's provenance
    (and, when a processor reads them, the range's OTLP log requests), then run the processors in order.

    Processors are deterministic, so the same records give the same batch; ``logjoin`` and ``rollup``
    document their exceptions (state that waited for a span in an earlier range).
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
                try:
                    decode_trace_bytes(record.payload, batch)
                except DecodeError:
                    # Ingest parsed every record before writing it, so this is a damaged log: skipping the
                    # record costs its spans, keeping it would stop the pipeline for good.
                    self.telemetry.component(self.name).event("undecodable_record")
                    if "undecodable" not in self._failed_once:
                        self._failed_once.add("undecodable")
                        logger.error(
                            "pipeline %s skipped WAL record %d: it does not decode", self.name, record.lsn
                        )
                    continue
                if record.meta is not None and len(batch) > before:
                    batch.provenance.append(Provenance(before, len(batch), record.meta))
            elif record.signal == SIGNAL_LOGS and self.read_logs:
                batch.logs.append((record.lsn, record.payload))
                if record.meta is not None:
                    batch.log_meta[record.lsn] = record.meta
        for component_id, processor in self.processors:
            try:
                batch = processor(batch)
            except Exception:
                # A processor bug must not lose data: the batch goes on without this processor's work.
                self.telemetry.component(component_id).event("processor_error")
                if component_id not in self._failed_once:
                    self._failed_once.add(component_id)
                    logger.exception("processor %s failed; batches pass it unprocessed", component_id)
        enforce_tenancy(batch, self.telemetry.component(self.name))
        batch.origin = f"{self.name}:{start}-{end}"
        return batch


class Pipeline(Generic[B]):
    """One pipeline: a processing stage and a worker per exporter. ``kind`` says what its batches are
    (spans by default; ``signal_pipeline.LOGS`` / ``METRICS`` for logs and metrics pipelines) and
    ``decoder`` makes one from a WAL range."""

    def __init__(
        self,
        name: str,
        log: Log,
        decoder: Callable[[Sequence[Record], int, int], B],
        exporters: Sequence[tuple[str, Any]],
        telemetry: Telemetry,
        settings: DeliverySettings,
        on_commit: Callable[[], None],
        policies: Mapping[str, ExporterPolicy] | None = None,
        deadletter: DeadLetterStore | None = None,
        kind: BatchKind[B] = SPANS,  # type: ignore[assignment]
    ) -> None:
        self.name = name
        self.log = log
        self.kind = kind
        self.decoder = decoder
        self.telemetry = telemetry
        self.settings = settings
        self.on_commit = on_commit
        self.deadletter = deadletter
        default = ExporterPolicy(settings.retry, QueueSettings())
        self.workers = [
            ExporterWorker(self, exporter_id, exporter, (policies or {}).get(exporter_id, default), kind)
            for exporter_id, exporter in exporters
        ]
        self._ring: deque[Chunk[B]] = deque()
        # (start of the ring's oldest chunk, when a worker first consumed it): how long the others have had.
        self._first_consumed: tuple[int, float] = (-1, 0.0)
        self._evicted: tuple[int, int] = (-1, -1)  # [start, end) of the chunk the ring evicted last
        self._stage_pos = 0
        self._changed = Notifier()
        self._executor = named_thread_pool(f"stage-{name}", 1)
        self._stage_task: asyncio.Task[None] | None = None
        self._lag_task: asyncio.Task[None] | None = None
        self._stage_supervisor = Supervisor(
            name, "stage", f"processing of pipeline {name}", settings.retry, telemetry
        )
        # (head, when it was seen): how old the oldest record a worker has not delivered is, roughly.
        self._marks: deque[tuple[int, float]] = deque()

    # --- shared by workers ---------------------------------------------------------------------------

    async def decode(self, records: Sequence[Record], start: int, end: int) -> B:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self.decoder, records, start, end)

    async def read_and_decode(self, start: int, end: int) -> Chunk[B] | None:
        """The records of ``[start, end)`` (up to ``max_batch_bytes`` of them) read and processed, or None
        when there are none. Both run off the event loop, which acknowledges clients: reading megabytes of
        WAL and parsing its records is milliseconds of work."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._read_and_decode, start, end)

    def _read_and_decode(self, start: int, end: int) -> Chunk[B] | None:
        records = self.log.read(start, end, self.settings.max_batch_bytes)
        if not records:
            return None
        stop = records[-1].lsn + 1
        return Chunk(start, stop, self.decoder(records, start, stop))

    def _waited_on(self, chunk: Chunk[B]) -> bool:
        """Whether a worker that never drops (``on_overflow: block``) has yet to consume ``chunk`` and will
        take it from the ring: one on it, or on the chunk evicted just before it while the worker had it in
        hand. A worker further behind reads the WAL for itself, and one that may drop its backlog never holds
        the others up: neither is waited for."""
        evicted_start, evicted_end = self._evicted
        lower = evicted_start if evicted_end == chunk.start else chunk.start
        return any(
            lower <= w.cursor.next < chunk.end and w.policy.queue.on_overflow != "drop" for w in self.workers
        )

    async def _evict_oldest(self) -> bool:
        """Wait for room in the full ring; True once the oldest chunk is gone.

        The oldest chunk goes once the workers that never drop have consumed it, or ``ring_wait_seconds``
        after the first worker did: a worker still on it then falls back to reading and processing the WAL
        itself, which costs the same work again. (Evicting as soon as the fastest worker was done made every
        slower one — storage behind span metrics by milliseconds — reprocess nearly every chunk, on the decode
        thread the stage needs too.) A worker whose chunk was evicted from under it is waited for on the next
        chunk too, ``ring_wait_seconds`` again: it still delivers the evicted chunk from its hands, so a
        delivery that outlasts one wait but not two costs nothing processed twice. Evicting the next one at
        once, as nobody was on it yet, sent storage off the ring for the whole backlog whenever one insert
        took longer than the wait. A worker that is stuck thus holds the stage for two waits, once. The stage
        never runs ahead of every worker.
        """
        oldest = self._ring[0]
        done = any(w.cursor.next >= oldest.end for w in self.workers)
        if done and not self._waited_on(oldest):
            self._evict()
            return True
        timeout = 1.0
        if done:
            if self._first_consumed[0] != oldest.start:
                self._first_consumed = (oldest.start, time.monotonic())
            timeout = self._first_consumed[1] + self.settings.ring_wait_seconds - time.monotonic()
            if timeout <= 0:
                self._evict()
                return True
        await self._changed.wait_until(
            lambda: any(w.cursor.next >= oldest.end for w in self.workers) and not self._waited_on(oldest),
            min(timeout, 1.0),
        )
        return False

    def _evict(self) -> None:
        chunk = self._ring.popleft()
        self._evicted = (chunk.start, chunk.end)

    def has_work_at(self, cursor: int) -> bool:
        return self._stage_pos > cursor

    def ring_chunk(self, start: int) -> Chunk[B] | None:
        for chunk in self._ring:
            if chunk.start == start:
                return chunk
        return None

    def live_edge(self) -> int:
        """Where a worker that drops its backlog resumes: the oldest chunk still in the ring (processed
        already), else the stage's position."""
        return self._ring[0].start if self._ring else self._stage_pos

    def lag_age(self, cursor: int) -> float:
        """Seconds since the oldest record at or after ``cursor`` was appended (roughly, and 0 when none)."""
        if cursor >= self.log.head:
            return 0.0
        for head, seen in self._marks:
            if head > cursor:
                return time.monotonic() - seen
        return 0.0

    async def catch_up(self, cursor: int) -> Chunk[B] | None:
        """Read and process ``[cursor, next ring boundary)`` from the WAL for a worker off the ring."""
        upper = next((chunk.start for chunk in self._ring if chunk.start > cursor), None)
        if upper is None:
            upper = self._stage_pos if self._stage_pos > cursor else None
        if upper is None:
            return None
        chunk = await self.read_and_decode(cursor, upper)
        if chunk is None:
            return Chunk(cursor, upper, self.kind.empty())
        # Work done twice: the stage processed (or will process) these records for the ring already.
        self.telemetry.component(self.name).event("records_reprocessed", chunk.end - chunk.start)
        return chunk

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
                if await self._evict_oldest():
                    break
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
            chunk = await self.read_and_decode(pos, self.log.head)
            if chunk is None:
                continue
            self._ring.append(chunk)
            self._stage_pos = chunk.end
            self._stage_supervisor.moving()
            self._notify()

    def _report_lag(self) -> None:
        head = self.log.head
        for worker in self.workers:
            labels = (self.name, worker.exporter_id)
            self.telemetry.wal_lag_records.labels(*labels).set(max(0, head - worker.cursor.next))
            self.telemetry.wal_lag_bytes.labels(*labels).set(self.log.bytes_between(worker.cursor.next, head))

    def _mark(self) -> None:
        head = self.log.head
        if not self._marks or self._marks[-1][0] != head:
            self._marks.append((head, time.monotonic()))
        oldest = min((w.cursor.next for w in self.workers), default=head)
        while len(self._marks) > 1 and self._marks[1][0] <= oldest:
            self._marks.popleft()

    def _pick_up_replays(self) -> None:
        if self.deadletter is None:
            return
        wanted = self.deadletter.replay_requested()
        if not wanted:
            return
        by_consumer = {w.consumer: w for w in self.workers}
        for entry_id in wanted:
            try:
                entry = self.deadletter.get(entry_id)
            except KeyError:
                continue
            worker = by_consumer.get(entry.consumer)
            if worker is not None and entry_id not in worker.replays:
                worker.replays.append(entry_id)
                self._notify()

    async def _lag_loop(self) -> None:
        while True:
            try:
                self._report_lag()
                self._mark()
                self._pick_up_replays()
            except OSError as exc:
                logger.warning("pipeline %s: cannot read the dead-letter store: %s", self.name, exc)
            await asyncio.sleep(1.0)

    def problem(self) -> str | None:
        """What /health reports for this pipeline (None when data is moving)."""
        problems = []
        stage = self._stage_supervisor.problem()
        if stage is not None:
            problems.append(stage)
        for worker in self.workers:
            problem = worker.problem(self.settings.stall_seconds)
            if problem:
                problems.append(problem)
        return "; ".join(problems) or None

    # --- lifecycle -----------------------------------------------------------------------------------

    async def start(self) -> None:
        if self._stage_task is not None:
            return
        self._changed.bind()
        for worker in self.workers:
            worker.load()
            worker.progress_at = time.monotonic()
        # The stage starts where the furthest-behind worker will be once it has replayed its in-flight range.
        self._stage_pos = min(
            (w.cursor.inflight[1] if w.cursor.inflight else w.cursor.next for w in self.workers),
            default=self.log.head,
        )
        self._mark()
        self._stage_task = asyncio.create_task(
            self._stage_supervisor.run(self._stage), name=f"pipeline-{self.name}-stage"
        )
        for worker in self.workers:
            worker.task = asyncio.create_task(worker.supervise(), name=f"pipeline-{worker.consumer}")
        self._pick_up_replays()
        self._lag_task = asyncio.create_task(self._lag_loop(), name=f"pipeline-{self.name}-lag")
        self.telemetry.health.register(f"pipeline/{self.name}", self.problem)

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
        self.telemetry.health.unregister(f"pipeline/{self.name}")
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
