"""The write-ahead log: accepted requests are appended and synced (group commit) before the client is
answered; each exporter reads it through its own persisted cursor.

Layout under the WAL directory::

    00000000000000000001.wal   segments, named by the sequence number (LSN) of their first record
    cursors/<consumer>.json     {"next": LSN, "inflight": [first, end] | null}

A record is ``<u32 body length><u32 crc32><u8 signal><u16 meta length>`` followed by the body (meta, then
payload). A torn tail left by a crash is cut off on open. Segments are deleted once every consumer's cursor
has passed them. ``MemoryLog`` has the same interface without files: it is lossy and meant for benchmarks.
"""

from __future__ import annotations

import asyncio
import bisect
import json
import logging
import os
import struct
import threading
import time
import zlib
from array import array
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from llm_observer.collector.notify import Notifier
from llm_observer.kernel.component import IngestMeta
from llm_observer.kernel.errors import Backpressure
from llm_observer.kernel.telemetry import Telemetry
from llm_observer.kernel.threads import name_native_thread

logger = logging.getLogger(__name__)

_HEADER = struct.Struct("<IIBH")
_SUFFIX = ".wal"


@dataclass(slots=True)
class _Pending:
    """A record accepted by ``append`` and not yet written: the writer thread frames it."""

    signal: int
    meta: bytes
    payload: bytes
    future: asyncio.Future[int]

    @property
    def size(self) -> int:
        return _HEADER.size + len(self.meta) + len(self.payload)

    def frame(self) -> tuple[bytes, bytes, bytes]:
        """The record's bytes in three parts: header, meta, payload."""
        head = struct.pack("<BH", self.signal, len(self.meta))
        crc = zlib.crc32(self.payload, zlib.crc32(self.meta, zlib.crc32(head)))
        return (
            _HEADER.pack(len(self.meta) + len(self.payload), crc, self.signal, len(self.meta)),
            self.meta,
            self.payload,
        )


@dataclass(frozen=True, slots=True)
class Record:
    lsn: int
    signal: int
    meta: IngestMeta | None
    payload: bytes


@dataclass(frozen=True, slots=True)
class Cursor:
    next: int
    inflight: tuple[int, int] | None = None


def write_atomically(path: Path, data: bytes, sync: bool, sync_directory: bool = False) -> None:
    """Replace ``path`` with ``data`` so that a reader (or a crash) sees the old file or the new one, never
    part of either: write a temporary file beside it (synced when ``sync``), then rename it over ``path``.
    A failed write (a full disk) leaves ``path`` as it was and no temporary file behind."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            if sync:
                fh.flush()
                os.fdatasync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if sync and sync_directory:
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def encode_meta(meta: IngestMeta | None) -> bytes:
    if meta is None:
        return b""
    data: dict[str, object] = {"o": meta.organization_id, "p": meta.project_id}
    if meta.allowed_projects is not None:
        data["ps"] = list(meta.allowed_projects)
    if meta.source is not None:
        data["s"] = meta.source
    return json.dumps(data, separators=(",", ":")).encode()


def decode_meta(raw: bytes) -> IngestMeta | None:
    if not raw:
        return None
    data = json.loads(raw)
    allowed = data.get("ps")
    return IngestMeta(
        organization_id=data.get("o"),
        project_id=data.get("p"),
        allowed_projects=tuple(allowed) if allowed is not None else None,
        source=data.get("s"),
    )


class Log(Protocol):
    """What the pipeline needs from a log, durable or not."""

    @property
    def head(self) -> int:
        """The LSN the next durable record will get; records ``[first, head)`` can be read."""
        ...

    @property
    def first(self) -> int: ...

    async def append(self, signal: int, payload: bytes, meta: IngestMeta | None = None) -> int: ...

    def read(self, start: int, end: int, max_bytes: int) -> list[Record]: ...

    def bytes_between(self, start: int, end: int) -> int: ...

    async def wait_beyond(self, lsn: int, timeout: float) -> bool: ...

    def load_cursor(self, consumer: str) -> Cursor: ...

    def save_cursor(self, consumer: str, cursor: Cursor) -> None: ...

    def release(self, upto: int) -> None: ...

    def size_bytes(self) -> int: ...

    async def open(self) -> None: ...

    async def close(self) -> None: ...


class _Segment:
    __slots__ = ("base", "offsets", "path", "size")

    def __init__(self, path: Path, base: int) -> None:
        self.path = path
        self.base = base
        self.offsets = array("Q")  # byte offset of every record; the segment's end is ``size``
        self.size = 0

    @property
    def end(self) -> int:
        return self.base + len(self.offsets)


class _CursorFiles:
    def __init__(self, directory: Path, sync: bool) -> None:
        self.directory = directory
        self.sync = sync

    def _path(self, consumer: str) -> Path:
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in consumer)
        return self.directory / f"{safe}.json"

    def load(self, consumer: str, default: int) -> Cursor:
        path = self._path(consumer)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            return Cursor(default)
        inflight = data.get("inflight")
        return Cursor(int(data["next"]), (int(inflight[0]), int(inflight[1])) if inflight else None)

    def save(self, consumer: str, cursor: Cursor) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        body = json.dumps(
            {"next": cursor.next, "inflight": list(cursor.inflight) if cursor.inflight else None}
        )
        write_atomically(self._path(consumer), body.encode(), self.sync)


class WriteAheadLog:
    """A durable log of accepted requests with group commit and per-consumer cursors."""

    def __init__(
        self,
        directory: Path,
        *,
        segment_bytes: int = 64 << 20,
        max_bytes: int = 2 << 30,
        max_pending_bytes: int = 64 << 20,
        sync: bool = True,
        telemetry: Telemetry | None = None,
    ) -> None:
        self.directory = directory
        self.segment_bytes = segment_bytes
        self.max_bytes = max_bytes
        self.max_pending_bytes = max_pending_bytes
        self.sync = sync
        self._telemetry = telemetry
        self._segments: list[_Segment] = []
        self._bases: list[int] = []
        self._lock = threading.Lock()  # guards segments, bases and the durable head
        self._head = 1
        self._size = 0
        self._pending: deque[_Pending] = deque()
        self._pending_bytes = 0
        self._wake = threading.Condition()
        self._writer: threading.Thread | None = None
        self._fd = -1
        self._closing = False
        self._waiters = Notifier()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._cursors = _CursorFiles(directory / "cursors", sync)
        self._write_error: str | None = None

    # --- lifecycle ---------------------------------------------------------------------------------

    async def open(self) -> None:
        """Recover the segments on disk (cutting a torn tail) and start the writer thread."""
        if self._writer is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._waiters.bind()
        await asyncio.to_thread(self._recover)
        self._writer = threading.Thread(target=self._write_loop, name="wal-writer", daemon=True)
        self._writer.start()
        if self._telemetry is not None:
            self._telemetry.health.register("wal", self.problem)

    def problem(self) -> str | None:
        """What /health reports: the WAL refusing writes (full, or the disk failing), else None."""
        if self._write_error is not None:
            return f"the WAL cannot write, ingest is refused: {self._write_error}"
        if self._size >= self.max_bytes:
            return (
                f"the WAL is full ({self._size} of {self.max_bytes} bytes), ingest is refused until "
                "exporters catch up"
            )
        return None

    async def close(self) -> None:
        """Write and sync what is pending, then stop the writer. Idempotent."""
        writer = self._writer
        if writer is None:
            return
        with self._wake:
            self._closing = True
            self._wake.notify()
        await asyncio.to_thread(writer.join)
        self._writer = None
        if self._telemetry is not None:
            self._telemetry.health.unregister("wal")
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def _recover(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        paths = sorted(p for p in self.directory.iterdir() if p.suffix == _SUFFIX and p.stem.isdigit())
        for index, path in enumerate(paths):
            segment = _Segment(path, int(path.stem))
            data = path.read_bytes()
            pos = 0
            while pos + _HEADER.size <= len(data):
                length, crc, _signal, meta_len = _HEADER.unpack_from(data, pos)
                body_end = pos + _HEADER.size + length
                if body_end > len(data) or meta_len > length:
                    break
                if zlib.crc32(data[pos + 8 : body_end]) != crc:
                    break
                segment.offsets.append(pos)
                pos = body_end
            if pos != len(data):
                lost = len(data) - pos
                if index == len(paths) - 1:
                    logger.warning("WAL segment %s had a torn tail of %d bytes; cut it off", path.name, lost)
                else:
                    logger.error(
                        "WAL segment %s is corrupt after byte %d; %d bytes lost", path.name, pos, lost
                    )
                with open(path, "r+b") as fh:
                    fh.truncate(pos)
                    os.fsync(fh.fileno())
            segment.size = pos
            self._segments.append(segment)
            self._bases.append(segment.base)
        if self._segments:
            last = self._segments[-1]
            self._head = last.end
            self._size = sum(s.size for s in self._segments)
        else:
            self._new_segment(1)
        self._fd = os.open(self._segments[-1].path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._report_size()

    def _new_segment(self, base: int) -> _Segment:
        path = self.directory / f"{base:020d}{_SUFFIX}"
        path.touch()
        if self.sync:
            dir_fd = os.open(self.directory, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        segment = _Segment(path, base)
        with self._lock:
            self._segments.append(segment)
            self._bases.append(base)
        return segment

    # --- appending -----------------------------------------------------------------------------------

    @property
    def head(self) -> int:
        return self._head

    @property
    def first(self) -> int:
        with self._lock:
            return self._segments[0].base if self._segments else self._head

    def size_bytes(self) -> int:
        return self._size

    async def append(self, signal: int, payload: bytes, meta: IngestMeta | None = None) -> int:
        """Append one record; returns its LSN once it is durable. Raises ``Backpressure`` when full."""
        if self._writer is None:
            raise RuntimeError("WAL is not open")
        if self._size >= self.max_bytes:
            raise Backpressure("wal_size", retry_after=2.0)
        if self._pending_bytes >= self.max_pending_bytes:
            raise Backpressure("wal_pending", retry_after=0.5)
        # Framing and checksumming happen on the writer thread: the checksum of a large request releases the
        # GIL, and on the event loop, which acknowledges clients, taking it back waited a switch interval
        # behind the batch threads (~1 ms per request under load, 20x the checksum itself).
        entry = _Pending(signal, encode_meta(meta), payload, asyncio.get_running_loop().create_future())
        with self._wake:
            self._pending.append(entry)
            self._pending_bytes += entry.size
            self._wake.notify()
        return await entry.future

    def _write_loop(self) -> None:
        name_native_thread()
        while True:
            with self._wake:
                while not self._pending and not self._closing:
                    self._wake.wait()
                if not self._pending and self._closing:
                    return
                batch = list(self._pending)
                self._pending.clear()
            try:
                lsns = self._write(batch)
            except OSError as exc:
                if self._write_error is None:
                    logger.error("WAL write failed; requests are refused until it succeeds: %s", exc)
                self._write_error = str(exc)
                try:
                    self._discard_partial_write()
                except OSError as cut:
                    logger.error("cannot repair the WAL after a failed write: %s", cut)
                self._finish(batch, None, exc)
                continue
            if self._write_error is not None:
                logger.info("WAL writes succeed again")
                self._write_error = None
            self._finish(batch, lsns, None)

    def _write(self, batch: list[_Pending]) -> list[int]:
        started = time.perf_counter()
        segment = self._segments[-1]
        if self._fd < 0:
            # A failed write (a full disk) left no segment open: reopen the last one, as recovery would.
            self._fd = os.open(segment.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            os.ftruncate(self._fd, segment.size)
        total = sum(entry.size for entry in batch)
        if segment.size > 0 and segment.size + total > self.segment_bytes:
            if self.sync:
                os.fdatasync(self._fd)
            os.close(self._fd)
            self._fd = -1
            segment = self._new_segment(self._head)
            self._fd = os.open(segment.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        data = b"".join(part for entry in batch for part in entry.frame())
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        if self.sync:
            os.fdatasync(self._fd)
        offset = segment.size
        first = self._head
        with self._lock:
            for entry in batch:
                segment.offsets.append(offset)
                offset += entry.size
            segment.size = offset
            self._head = first + len(batch)
            self._size += total
        if self._telemetry is not None:
            self._telemetry.wal_sync_seconds.observe(time.perf_counter() - started)
        return list(range(first, first + len(batch)))

    def _discard_partial_write(self) -> None:
        """Cut whatever a failed write left past the last durable record, so that nothing refused is ever
        read back (as part of a later record) and nothing acknowledged is later mistaken for a torn tail."""
        segment = self._segments[-1]
        if self._fd < 0:
            return  # nothing open to repair: the next write reopens the segment and cuts it
        try:
            os.ftruncate(self._fd, segment.size)
        except OSError as exc:
            # The segment cannot be repaired in place: start a new one; the damaged tail is cut on recovery.
            logger.error(
                "cannot cut a failed WAL write off %s (%s); starting a new segment", segment.path.name, exc
            )
            os.close(self._fd)
            self._fd = -1
            segment = self._new_segment(self._head)
            self._fd = os.open(segment.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def _finish(self, batch: list[_Pending], lsns: list[int] | None, error: Exception | None) -> None:
        with self._wake:
            self._pending_bytes -= sum(entry.size for entry in batch)
        futures = [entry.future for entry in batch]

        def resolve() -> None:
            for index, future in enumerate(futures):
                if future.done():
                    continue
                if lsns is not None:
                    future.set_result(lsns[index])
                else:
                    future.set_exception(Backpressure("wal_io", retry_after=5.0))
            self._waiters.notify()

        assert self._loop is not None
        self._loop.call_soon_threadsafe(resolve)
        self._report_size()

    # --- reading -------------------------------------------------------------------------------------

    async def wait_beyond(self, lsn: int, timeout: float) -> bool:
        """Wait until a record with LSN ``>= lsn`` is durable (or ``timeout`` passes); True if one is."""
        return await self._waiters.wait_until(lambda: self._head > lsn, timeout)

    def read(self, start: int, end: int, max_bytes: int) -> list[Record]:
        """Records with LSN in ``[start, end)`` (at least one if any, then up to ``max_bytes`` of them)."""
        out: list[Record] = []
        budget = max_bytes
        lsn = max(start, self.first)
        end = min(end, self._head)
        while lsn < end and (budget > 0 or not out):
            with self._lock:
                index = bisect.bisect_right(self._bases, lsn) - 1
                if index < 0:
                    break
                segment = self._segments[index]
                if lsn >= segment.end:
                    if index + 1 < len(self._segments):
                        lsn = self._segments[index + 1].base  # a gap left by a corrupt segment
                        continue
                    break
                last = min(end, segment.end)
                begin_off = segment.offsets[lsn - segment.base]
                stop = lsn + 1
                while stop < last and segment.offsets[stop - segment.base] - begin_off < budget:
                    stop += 1
                end_off = segment.offsets[stop - segment.base] if stop < segment.end else segment.size
                path = segment.path
            with open(path, "rb") as fh:
                data = os.pread(fh.fileno(), end_off - begin_off, begin_off)
            pos = 0
            for number in range(lsn, stop):
                length, _crc, signal, meta_len = _HEADER.unpack_from(data, pos)
                body = pos + _HEADER.size
                meta = decode_meta(data[body : body + meta_len]) if meta_len else None
                out.append(Record(number, signal, meta, data[body + meta_len : body + length]))
                pos = body + length
            budget -= end_off - begin_off
            lsn = stop
        return out

    def bytes_between(self, start: int, end: int) -> int:
        """Approximate bytes of the records in ``[start, end)`` (for lag reporting)."""
        total = 0
        with self._lock:
            for segment in self._segments:
                lo, hi = max(start, segment.base), min(end, segment.end)
                if lo >= hi:
                    continue
                begin = segment.offsets[lo - segment.base]
                finish = segment.offsets[hi - segment.base] if hi < segment.end else segment.size
                total += finish - begin
        return total

    # --- cursors and retention ---------------------------------------------------------------------

    def load_cursor(self, consumer: str) -> Cursor:
        return self._cursors.load(consumer, self.first)

    def save_cursor(self, consumer: str, cursor: Cursor) -> None:
        self._cursors.save(consumer, cursor)

    def release(self, upto: int) -> None:
        """Delete whole segments whose records all have LSN ``< upto`` (never the active one)."""
        doomed: list[_Segment] = []
        with self._lock:
            while len(self._segments) > 1 and self._segments[1].base <= upto:
                doomed.append(self._segments.pop(0))
                self._bases.pop(0)
            self._size -= sum(s.size for s in doomed)
        for segment in doomed:
            segment.path.unlink(missing_ok=True)
        if doomed:
            self._report_size()

    def _report_size(self) -> None:
        if self._telemetry is not None:
            self._telemetry.wal_size_bytes.set(self._size)


class MemoryLog:
    """The WAL's interface without disk: LOSSY (a crash loses everything not yet exported). Benchmarks only."""

    def __init__(self, *, max_bytes: int = 512 << 20, telemetry: Telemetry | None = None) -> None:
        self.max_bytes = max_bytes
        self._records: deque[Record] = deque()
        self._first = 1
        self._head = 1
        self._size = 0
        self._cursors: dict[str, Cursor] = {}
        self._waiters = Notifier()
        self._telemetry = telemetry

    @property
    def head(self) -> int:
        return self._head

    @property
    def first(self) -> int:
        return self._first

    def size_bytes(self) -> int:
        return self._size

    async def open(self) -> None:
        self._waiters.bind()

    async def close(self) -> None:
        return None

    async def append(self, signal: int, payload: bytes, meta: IngestMeta | None = None) -> int:
        if self._size >= self.max_bytes:
            raise Backpressure("memory_log_size", retry_after=1.0)
        lsn = self._head
        self._records.append(Record(lsn, signal, meta, payload))
        self._head += 1
        self._size += len(payload)
        self._waiters.notify()
        return lsn

    def read(self, start: int, end: int, max_bytes: int) -> list[Record]:
        out: list[Record] = []
        budget = max_bytes
        for lsn in range(max(start, self._first), min(end, self._head)):
            record = self._records[lsn - self._first]
            if out and budget <= 0:
                break
            out.append(record)
            budget -= len(record.payload)
        return out

    def bytes_between(self, start: int, end: int) -> int:
        return sum(
            len(self._records[lsn - self._first].payload)
            for lsn in range(max(start, self._first), min(end, self._head))
        )

    async def wait_beyond(self, lsn: int, timeout: float) -> bool:
        return await self._waiters.wait_until(lambda: self._head > lsn, timeout)

    def load_cursor(self, consumer: str) -> Cursor:
        return self._cursors.get(consumer, Cursor(self._first))

    def save_cursor(self, consumer: str, cursor: Cursor) -> None:
        self._cursors[consumer] = cursor

    def release(self, upto: int) -> None:
        while self._records and self._first < upto:
            self._size -= len(self._records.popleft().payload)
            self._first += 1
