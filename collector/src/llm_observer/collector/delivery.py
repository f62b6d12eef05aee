"""Delivery from a pipeline to one exporter: the worker behind each exporter's WAL cursor, and its settings.

Nothing a worker meets stops it for good: a refused batch is narrowed down to the rows refused, which go to
the dead-letter store (``deadletter.py``) with the rest delivered; a batch that keeps failing is retried
for a bounded time and then quarantined too; an optional exporter that falls too far behind skips ahead
(``sending_queue.on_overflow: drop``); and an unexpected error restarts the worker after a backoff. What a
worker reports is read by its pipeline's ``/health`` check.

The worker is generic over what a pipeline carries: a ``BatchKind`` says how to send a batch, take some of
its rows, find each row's tenant and split a refused row into finer ones. ``SPANS`` is the kind of traces
pipelines; ``signal_pipeline.py`` has the kinds of logs and metrics pipelines, whose rows are OTLP requests.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Literal, Protocol, TypeVar, cast

from llm_observer.collector.deadletter import DeadLetterStore, metas_of, organization_of
from llm_observer.collector.wal import Cursor, Log, Record
from llm_observer.kernel.batch import IngestMeta, Provenance, SpanBatch
from llm_observer.kernel.errors import PartialFailure, PermanentError, RetryableError
from llm_observer.kernel.signals import SignalBatch
from llm_observer.kernel.telemetry import Telemetry

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RetrySettings:
    """Retry of a failing send (the OpenTelemetry Collector's ``retry_on_failure``): exponential backoff
    from ``initial_interval`` to ``max_interval`` seconds, for at most ``max_elapsed`` seconds (0: for
    ever); then the batch is quarantined and the cursor moves on."""

    initial_interval: float = 0.1
    max_interval: float = 10.0
    max_elapsed: float = 300.0


@dataclass(frozen=True, slots=True)
class QueueSettings:
    """How far an exporter may fall behind (the Collector's ``sending_queue``). ``block``: it keeps its WAL
    range however long that takes (the WAL fills, then ingest is refused). ``drop``: once its lag is over
    ``max_lag_bytes`` or ``max_lag_seconds`` (0: no bound) it skips to the newest data, counting what it
    skipped, so that it never pins the WAL."""

    on_overflow: Literal["block", "drop"] = "block"
    max_lag_bytes: int = 0
    max_lag_seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class ExporterPolicy:
    retry: RetrySettings = RetrySettings()
    queue: QueueSettings = QueueSettings()


@dataclass(frozen=True, slots=True)
class DeliverySettings:
    max_batch_bytes: int = 4 << 20
    min_batch_bytes: int = 1 << 20
    linger_seconds: float = 0.2
    timeout_seconds: float = 30.0
    ring_size: int = 2
    # How long the stage waits, once one worker is done with the ring's oldest chunk, for the others still on
    # it before it evicts the chunk and sends them to the WAL (``Pipeline._evict_oldest``).
    ring_wait_seconds: float = 2.0
    # The retry of exporters that do not set their own ``retry_on_failure``.
    retry: RetrySettings = RetrySettings()
    # /health reports a worker with WAL records waiting and no progress for this long.
    stall_seconds: float = 60.0


B = TypeVar("B", bound=SpanBatch | SignalBatch)


class BatchKind(Protocol[B]):
    """What the delivery worker needs to know of the batches a pipeline carries."""

    signal: str  # traces | logs | metrics: the dead-letter entries' kind
    unit: str  # what a row is, for log lines: "spans", "log requests"

    def empty(self) -> B: ...

    async def send(self, exporter: Any, batch: B) -> None:
        """Hand ``batch`` to the exporter's method for this kind."""
        ...

    def take(self, batch: B, rows: Sequence[int]) -> B:
        """The rows, in order, keeping the batch's origin and each row's tenant."""
        ...

    def metas(self, batch: B) -> list[IngestMeta | None]:
        """The tenant each row was ingested for (None where the receiver knew none)."""
        ...

    def organization(self, batch: B, row: int, meta: IngestMeta | None) -> str: ...

    def split(self, batch: B, row: int) -> B | None:
        """Row ``row`` as a batch of finer rows, when it has them (None: it is as fine as it gets). A refused
        row is split before it is quarantined, so that only the finest rows refused are kept aside."""
        ...


class _Spans:
    signal = "traces"
    unit = "spans"

    def empty(self) -> SpanBatch:
        return SpanBatch()

    async def send(self, exporter: Any, batch: SpanBatch) -> None:
        await exporter.send(batch)

    def take(self, batch: SpanBatch, rows: Sequence[int]) -> SpanBatch:
        return _take(batch, rows)

    def metas(self, batch: SpanBatch) -> list[IngestMeta | None]:
        return metas_of(batch)

    def organization(self, batch: SpanBatch, row: int, meta: IngestMeta | None) -> str:
        return organization_of(batch, row, meta)

    def split(self, batch: SpanBatch, row: int) -> SpanBatch | None:
        return None  # a span is one row


SPANS: BatchKind[SpanBatch] = _Spans()
"""The kind of traces pipelines: a row is a span."""


@dataclass(frozen=True, slots=True)
class Chunk(Generic[B]):
    start: int
    end: int
    batch: B


class Supervisor:
    """Keeps a loop that must never stop running: whatever it raises is counted
    (``llm_observer_worker_failures_total{pipeline,worker,error}``), logged once per episode, and the loop restarts
    after an exponential backoff. ``down`` says why while an episode lasts (``/health`` reads it)."""

    def __init__(
        self, pipeline: str, worker: str, what: str, retry: RetrySettings, telemetry: Telemetry
    ) -> None:
        self.labels = (pipeline, worker)
        self.label = f"{pipeline}/{worker}"  # how /health names it
        self.what = what  # "delivery to exporter traces/clickhouse", for the log lines
        self.retry = retry
        self.telemetry = telemetry
        self.down: str | None = None
        self.down_since = 0.0
        self._backoff = retry.initial_interval

    async def run(self, loop: Callable[[], Awaitable[None]]) -> None:
        while True:
            try:
                await loop()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.telemetry.worker_failures.labels(*self.labels, type(exc).__name__).inc()
                if self.down is None:
                    self.down_since = time.monotonic()
                    logger.error(
                        "%s stopped (%s); restarting with backoff, data stays in the WAL",
                        self.what,
                        describe_failure(exc, 0, 0),
                        exc_info=exc,
                    )
                self.down = describe_failure(exc, 0, 0)
                delay = self._backoff
                self._backoff = min(delay * 2, self.retry.max_interval)
                await asyncio.sleep(delay * (0.5 + random.random()))

    def moving(self) -> None:
        """The loop made progress: the episode (if any) is over and the backoff starts afresh."""
        self._backoff = self.retry.initial_interval
        if self.down is not None:
            logger.info("%s is moving again", self.what)
            self.down = None

    def problem(self) -> str | None:
        if self.down is None:
            return None
        return f"{self.label}: stopped {time.monotonic() - self.down_since:.0f}s ago, restarting: {self.down}"


class PipelineView(Protocol[B]):
    """What a worker needs of the pipeline it delivers for (``pipeline.Pipeline``)."""

    name: str
    log: Log
    telemetry: Telemetry
    settings: DeliverySettings
    deadletter: DeadLetterStore | None

    async def decode(self, records: Sequence[Record], start: int, end: int) -> B: ...

    def ring_chunk(self, start: int) -> Chunk[B] | None: ...

    async def catch_up(self, cursor: int) -> Chunk[B] | None: ...

    async def wait_for_chunks(self, ready: Callable[[], bool] = ...) -> None: ...

    def has_work_at(self, cursor: int) -> bool: ...

    def committed(self) -> None: ...

    def live_edge(self) -> int: ...

    def lag_age(self, cursor: int) -> float: ...


class _Overflow(Exception):
    """Raised inside a drop-policy worker whose lag went over its bound: skip to ``target``."""

    def __init__(self, target: int) -> None:
        super().__init__(target)
        self.target = target


@dataclass(frozen=True, slots=True)
class _Exhausted:
    """A send whose retries ran out (``max_elapsed_seconds``) with this error."""

    message: str


MAX_SPLITS = 64
"""How many times one delivery halves a refused set to find the refused rows: enough to single out a few
bad rows in the largest batch, bounded so that a refusal of everything costs a few dozen sends, not one
per row."""


def describe_failure(exc: BaseException, timeout: float, rows: int, unit: str = "spans") -> str:
    if isinstance(exc, TimeoutError) and not str(exc):
        return f"send of {rows} {unit} timed out after {timeout:g}s"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def retry_delay(backoff: float, exc: BaseException, max_interval: float) -> float:
    """How long to wait before the next attempt: the backoff with jitter (half to one and a half times),
    at least what the exporter asked for (``RetryableError.retry_after``, a server's Retry-After), and never
    more than ``max_interval``."""
    delay = backoff * (0.5 + random.random())
    if isinstance(exc, RetryableError) and exc.retry_after is not None:
        delay = max(delay, exc.retry_after)
    return min(delay, max_interval)


class ExporterWorker(Generic[B]):
    """Delivers a pipeline's chunks to one exporter, behind its own cursor.

    The worker owns everything between the WAL and the exporter's ``send``: the cursor, retry with backoff
    and a bound, the timeout, narrowing a refusal down to the rows that cause it, quarantine to the
    dead-letter store, the lag bound of its ``sending_queue``, replays an operator asked for, and its own
    supervision (any unexpected error — a cursor that cannot be saved on a full disk — is logged once,
    counted, and the loop restarts after a backoff from the range it was delivering).
    """

    def __init__(
        self,
        pipeline: PipelineView[B],
        exporter_id: str,
        exporter: Any,
        policy: ExporterPolicy,
        kind: BatchKind[B],
    ) -> None:
        self.pipeline = pipeline
        self.exporter_id = exporter_id
        self.exporter = exporter
        self.policy = policy
        self.kind = kind
        self.consumer = f"{pipeline.name}/{exporter_id}"
        self.cursor = Cursor(pipeline.log.first)
        self.task: asyncio.Task[None] | None = None
        self.replays: deque[str] = deque()
        # What /health reads.
        self.supervisor = Supervisor(
            pipeline.name,
            exporter_id,
            f"delivery to exporter {self.consumer}",
            policy.retry,
            pipeline.telemetry,
        )
        self.failing: str | None = None
        self.progress_at = time.monotonic()
        self._last_warning = -1e9
        self._last_drop_log = -1e9
        self._overflow_reason = "over its lag bound"

    def load(self) -> None:
        self.cursor = self.pipeline.log.load_cursor(self.consumer)
        if self.cursor.next < self.pipeline.log.first:
            self.cursor = Cursor(self.pipeline.log.first, None)

    # --- supervision -----------------------------------------------------------------------------------

    async def supervise(self) -> None:
        """Run the delivery loop for good: restart it, after a backoff, whatever it raises."""
        await self.supervisor.run(self.run)

    def _recovered(self) -> None:
        self.progress_at = time.monotonic()
        self.supervisor.moving()

    # --- the loop --------------------------------------------------------------------------------------

    async def run(self) -> None:
        p = self.pipeline
        if self.cursor.inflight is not None:
            start, end = self.cursor.inflight
            records = p.log.read(start, end, 1 << 62)
            await self._deliver(Chunk(start, end, await p.decode(records, start, end)))
        while True:
            try:
                self._check_overflow()
            except _Overflow as overflow:
                await self._skip_to(overflow.target)
                continue
            if self.replays:
                await self._replay(self.replays[0])
                self.replays.popleft()
                continue
            chunk = p.ring_chunk(self.cursor.next)
            if chunk is None:
                chunk = await p.catch_up(self.cursor.next)
            if chunk is None:
                self.progress_at = time.monotonic()  # nothing to do is not a stall
                await p.wait_for_chunks(self._has_work)
                continue
            await self._deliver(chunk)

    def _has_work(self) -> bool:
        return self.pipeline.has_work_at(self.cursor.next) or bool(self.replays)

    async def _deliver(self, chunk: Chunk[B]) -> None:
        p = self.pipeline
        if len(chunk.batch):
            await self._save(Cursor(self.cursor.next, (chunk.start, chunk.end)))
            try:
                await self._deliver_batch(chunk.batch, (chunk.start, chunk.end))
            except _Overflow as overflow:
                p.telemetry.failed.labels(self.pipeline.name, self.exporter_id, "lag_overflow").inc(
                    len(chunk.batch)
                )
                await self._skip_to(max(overflow.target, chunk.end), in_flight=chunk.end - chunk.start)
                return
        await self._save(Cursor(chunk.end, None))
        p.committed()

    async def _save(self, cursor: Cursor) -> None:
        # Cursor files are synced: keep that off the event loop, which is answering clients.
        await asyncio.to_thread(self.pipeline.log.save_cursor, self.consumer, cursor)
        self.cursor = cursor
        self._recovered()

    # --- one batch: send, narrow down, quarantine --------------------------------------------------------

    async def _deliver_batch(
        self, batch: B, wal_range: tuple[int, int] | None, replay_of: str | None = None
    ) -> int:
        """Deliver every row of ``batch`` or quarantine it; returns the rows delivered.

        A ``PermanentError`` costs only the rows that cause it: the refused rows (all of them, unless the
        exporter said which with ``PartialFailure``) are sent again in halves until each refused row stands
        alone, and only those are quarantined. The halves of a batch are always cut the same way, so a
        replay after a crash sends the same sub-batches (storage deduplicates them). A batch whose retries
        ran out is quarantined as it is, with its origin, so that its replay is the same batch again.
        A refused row that the kind can split (an OTLP request of several log records) is delivered again
        split, so that only its refused parts are quarantined."""
        t = self.pipeline.telemetry
        kind = self.kind
        n = len(batch)
        stack: list[list[int] | None] = [None]
        refused: dict[int, str] = {}
        reason = "invalid_data"
        exhausted: list[tuple[list[int], str]] = []
        coarse: set[int] = set()  # refused together, not narrowed down: no use splitting them
        delivered = 0
        splits = 0
        while stack:
            rows = stack.pop()
            part = batch if rows is None else kind.take(batch, rows)
            index = rows if rows is not None else list(range(n))
            outcome = await self._send_with_retry(part)
            if outcome is None:
                delivered += len(part)
                continue
            if isinstance(outcome, _Exhausted):
                exhausted.append((index, outcome.message))
                continue
            reason = outcome.reason
            if isinstance(outcome, PartialFailure):
                bad = sorted({r for r in outcome.rows if 0 <= r < len(part)})
                delivered += len(part) - len(bad)
                unresolved = []
                for r in bad:
                    if r in outcome.problems:
                        refused[index[r]] = outcome.problems[r]
                    else:
                        unresolved.append(index[r])
            else:
                unresolved = index
            if len(unresolved) == 1 or (unresolved and splits >= MAX_SPLITS):
                # Narrowed down, or the refusal is not about a few rows (a missing table refuses them all):
                # stop sending and keep what is left as it is.
                for row in unresolved:
                    refused[row] = str(outcome)
                if len(unresolved) > 1:
                    coarse.update(unresolved)
            elif unresolved:
                splits += 1
                half = len(unresolved) // 2
                stack.extend((unresolved[half:], unresolved[:half]))
        if delivered:
            t.exported.labels(self.pipeline.name, self.exporter_id).inc(delivered)
        for row in sorted(set(refused) - coarse):
            finer = kind.split(batch, row)
            if finer is not None and len(finer) > 1:
                del refused[row]
                delivered += await self._deliver_batch(finer, wal_range, replay_of)
        if refused:
            rows = sorted(refused)
            first = refused[rows[0]]
            await self._quarantine(
                batch,
                rows,
                reason,
                f"{len(rows)} of {n} {kind.unit} refused; first: {first}",
                wal_range,
                None,
                refused,
                replay_of,
            )
        for rows, message in exhausted:
            # Its own entry, keeping the batch's origin when it is the whole batch: its replay is then the
            # very batch whose inserts may have landed after all (a timeout), and storage drops it.
            origin = batch.origin if len(rows) == n and batch.origin else None
            await self._quarantine(
                batch,
                rows,
                "retries_exhausted",
                f"gave up after retrying: {message}",
                wal_range,
                origin,
                None,
                replay_of,
            )
        return delivered

    async def _quarantine(
        self,
        batch: B,
        rows: list[int],
        reason: str,
        message: str,
        wal_range: tuple[int, int] | None,
        origin: str | None,
        problems: dict[int, str] | None,
        replay_of: str | None,
    ) -> None:
        p = self.pipeline
        t = p.telemetry
        kind = self.kind
        part = batch if len(rows) == len(batch) else kind.take(batch, rows)
        metas = kind.metas(batch)
        part_metas = [metas[row] for row in rows]
        part_problems = {n: problems[row] for n, row in enumerate(rows)} if problems else None
        if p.deadletter is None:
            # No place to keep them (a log without a data dir): say what was lost, for whom.
            entry_id = "none (no dead-letter store)"
        else:
            entry = await asyncio.to_thread(
                p.deadletter.quarantine,
                part,
                part_metas,
                pipeline=p.name,
                exporter=self.exporter_id,
                consumer=self.consumer,
                reason=reason,
                message=message,
                origin=origin,
                wal_range=wal_range,
                problems=part_problems,
                replay_of=replay_of,
            )
            entry_id = entry.id
        organizations = Counter(kind.organization(part, n, part_metas[n]) for n in range(len(part)))
        for organization, count in organizations.items():
            t.quarantined.labels(self.pipeline.name, self.exporter_id, reason, organization).inc(count)
        t.failed.labels(self.pipeline.name, self.exporter_id, reason).inc(len(part))
        where = f"WAL range {wal_range[0]}-{wal_range[1]}" if wal_range else f"replay of {replay_of}"
        logger.error(
            "exporter %s could not store %d %s of %s (%s; organizations: %s): %s; quarantined as "
            "dead-letter entry %s (see: llm-observer deadletter show %s)",
            self.consumer,
            len(part),
            kind.unit,
            where,
            reason,
            ", ".join(f"{org}={count}" for org, count in sorted(organizations.items())),
            message,
            entry_id,
            entry_id,
        )

    async def _send_with_retry(self, batch: B) -> PermanentError | _Exhausted | None:
        """Send until it succeeds (None), is refused for good, or its retries run out."""
        p = self.pipeline
        t = p.telemetry
        retry = self.policy.retry
        timeout = p.settings.timeout_seconds
        backoff = retry.initial_interval
        first_failure: float | None = None
        while True:
            self._check_overflow()
            started = time.perf_counter()
            try:
                async with asyncio.timeout(timeout):
                    await self.kind.send(self.exporter, batch)
            except PermanentError as exc:
                self.failing = None
                return exc
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                message = describe_failure(exc, timeout, len(batch), self.kind.unit)
                t.export_retries.labels(self.pipeline.name, self.exporter_id).inc()
                now = time.monotonic()
                first_failure = now if first_failure is None else first_failure
                self.failing = message
                if now - self._last_warning >= 60.0:
                    self._last_warning = now
                    logger.warning(
                        "exporter %s failing, will retry (data stays in the WAL): %s", self.consumer, message
                    )
                if retry.max_elapsed and now - first_failure >= retry.max_elapsed:
                    return _Exhausted(message)
                await asyncio.sleep(retry_delay(backoff, exc, retry.max_interval))
                backoff = min(backoff * 2, retry.max_interval)
                continue
            self.failing = None
            t.export_seconds.labels(self.pipeline.name, self.exporter_id).observe(
                time.perf_counter() - started
            )
            return None

    # --- the lag bound (sending_queue) ---------------------------------------------------------------

    def lag_over(self) -> str | None:
        """Why this worker's lag is over its bound, or None."""
        queue = self.policy.queue
        p = self.pipeline
        if queue.max_lag_bytes:
            lag = p.log.bytes_between(self.cursor.next, p.log.head)
            if lag > queue.max_lag_bytes:
                return f"{lag} bytes behind (bound {queue.max_lag_bytes})"
        if queue.max_lag_seconds:
            age = p.lag_age(self.cursor.next)
            if age > queue.max_lag_seconds:
                return f"{age:.0f}s behind (bound {queue.max_lag_seconds:g}s)"
        return None

    def _check_overflow(self) -> None:
        if self.policy.queue.on_overflow != "drop":
            return
        over = self.lag_over()
        if over is None:
            return
        target = self.pipeline.live_edge()
        if target > self.cursor.next:
            self._overflow_reason = over
            raise _Overflow(target)

    async def _skip_to(self, target: int, in_flight: int = 0) -> None:
        p = self.pipeline
        t = p.telemetry
        start = self.cursor.next
        records = max(0, target - start)
        size = p.log.bytes_between(start, target)
        await self._save(Cursor(target, None))
        t.lag_dropped_records.labels(self.pipeline.name, self.exporter_id, "lag_overflow").inc(records)
        t.lag_dropped_bytes.labels(self.pipeline.name, self.exporter_id, "lag_overflow").inc(size)
        now = time.monotonic()
        if now - self._last_drop_log >= 60.0:
            self._last_drop_log = now
            logger.warning(
                "exporter %s is %s (sending_queue.on_overflow: drop): skipped %d WAL records (%d bytes) to "
                "catch up; counted in llm_observer_wal_records_dropped_total",
                self.consumer,
                self._overflow_reason,
                records,
                size,
            )
        p.committed()

    # --- replays from the dead-letter store -------------------------------------------------------------

    async def _replay(self, entry_id: str) -> None:
        store = self.pipeline.deadletter
        if store is None:
            return
        try:
            entry, loaded = await asyncio.to_thread(store.load, entry_id)
        except (KeyError, FileNotFoundError):
            return  # dropped by an operator meanwhile
        if entry.signal != self.kind.signal:
            return  # not this pipeline's kind of data (an entry moved by hand)
        batch = cast(B, loaded)
        try:
            delivered = await self._deliver_batch(batch, None, replay_of=entry.id)
        except _Overflow:
            return  # the entry stays, marked; it is picked up again once the lag is back under its bound
        await asyncio.to_thread(store.remove, entry.id)
        self.pipeline.telemetry.replayed.labels(self.pipeline.name, self.exporter_id).inc(delivered)
        logger.info(
            "replayed dead-letter entry %s to %s: %d of %d %s delivered",
            entry.id,
            self.consumer,
            delivered,
            entry.spans,
            self.kind.unit,
        )

    # --- health ------------------------------------------------------------------------------------------

    def problem(self, stall_seconds: float) -> str | None:
        now = time.monotonic()
        down = self.supervisor.problem()
        if down is not None:
            return down
        p = self.pipeline
        lag = p.log.head - self.cursor.next
        idle = now - self.progress_at
        if lag > 0 and idle > stall_seconds:
            why = f"; last error: {self.failing}" if self.failing else ""
            return f"{self.consumer}: no progress for {idle:.0f}s with {lag} WAL records waiting{why}"
        return None


def _take(batch: SpanBatch, rows: Sequence[int]) -> SpanBatch:
    """``batch.take(rows)`` keeping the origin, and the provenance mapped onto the new rows."""
    part = batch.take(rows)
    part.origin = batch.origin
    if batch.provenance:
        metas = metas_of(batch)
        start = 0
        for n in range(1, len(rows) + 1):
            if n == len(rows) or metas[rows[n]] is not metas[rows[start]]:
                meta = metas[rows[start]]
                if meta is not None:
                    part.provenance.append(Provenance(start, n, meta))
                start = n
    return part
