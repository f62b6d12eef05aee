"""The write-ahead log on a real directory (and ``MemoryLog``, its lossy twin), driven directly."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from llm_observer.collector.wal import Cursor, MemoryLog, WriteAheadLog
from llm_observer.kernel.component import SIGNAL_LOGS, SIGNAL_METRICS, SIGNAL_TRACES, IngestMeta
from llm_observer.kernel.errors import Backpressure
from llm_observer.kernel.telemetry import Telemetry

HEADER = 11  # <u32 length><u32 crc><u8 signal><u16 meta length>


def _segments(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.wal"))


@pytest.fixture
async def open_wal(tmp_path: Path) -> AsyncIterator[Callable[..., Awaitable[WriteAheadLog]]]:
    """``await open_wal(**kwargs)`` opens a WAL on ``tmp_path/wal``; all are closed at the end."""
    opened: list[WriteAheadLog] = []

    async def open_(**kwargs: Any) -> WriteAheadLog:
        wal = WriteAheadLog(tmp_path / "wal", **kwargs)
        await wal.open()
        opened.append(wal)
        return wal

    yield open_
    for wal in opened:
        await wal.close()


async def test_wal_round_trip_keeps_signal_meta_and_payload(open_wal: Any) -> None:
    wal = await open_wal()
    meta = IngestMeta(organization_id="acme", project_id="chatbot")
    written = [
        (SIGNAL_TRACES, b"trace-bytes", meta),
        (SIGNAL_METRICS, b"metric-bytes", None),
        (SIGNAL_LOGS, b"", IngestMeta(organization_id="acme")),
    ]
    lsns = [await wal.append(signal, payload, m) for signal, payload, m in written]
    assert lsns == [1, 2, 3]
    assert (wal.first, wal.head) == (1, 4)

    def check(records: list[Any]) -> None:
        assert [(r.lsn, r.signal, r.payload, r.meta) for r in records] == [
            (lsn, signal, payload, m) for lsn, (signal, payload, m) in zip(lsns, written, strict=True)
        ]

    check(wal.read(1, wal.head, 1 << 20))
    assert [r.lsn for r in wal.read(2, 3, 1 << 20)] == [2]
    await wal.close()

    reopened = await open_wal()  # what was acknowledged is on disk
    check(reopened.read(1, reopened.head, 1 << 20))
    assert await reopened.append(SIGNAL_TRACES, b"next") == 4


async def test_wal_read_honours_max_bytes_but_returns_at_least_one(open_wal: Any) -> None:
    wal = await open_wal()
    for i in range(10):
        await wal.append(SIGNAL_TRACES, bytes([i]) * 100)
    assert [r.lsn for r in wal.read(1, wal.head, 1)] == [1]
    some = wal.read(1, wal.head, 350)
    assert 2 <= len(some) < 10
    assert [r.lsn for r in some] == list(range(1, len(some) + 1))
    assert wal.read(wal.head, wal.head + 5, 1 << 20) == []
    assert wal.bytes_between(1, wal.head) == 10 * (HEADER + 100)


async def test_wal_group_commit_batches_concurrent_appends(open_wal: Any) -> None:
    telemetry = Telemetry()
    wal = await open_wal(telemetry=telemetry)
    count = 500
    payloads = [f"request-{i}".encode() * 20 for i in range(count)]
    lsns = await asyncio.gather(*(wal.append(SIGNAL_TRACES, p) for p in payloads))

    # Appends are numbered in the order they were made, every LSN once.
    assert lsns == list(range(1, count + 1))
    groups = telemetry.registry.get_sample_value("llm_observer_wal_sync_seconds_count")
    assert groups is not None
    assert 1 <= groups <= count / 4, f"{groups:.0f} fsync groups for {count} concurrent appends"
    assert [r.payload for r in wal.read(1, wal.head, 1 << 30)] == payloads


async def test_wal_cuts_a_torn_tail_and_keeps_complete_records(open_wal: Any, tmp_path: Path) -> None:
    wal = await open_wal()
    for i in range(5):
        await wal.append(SIGNAL_TRACES, f"record-{i}".encode() * 10, IngestMeta(project_id=f"p{i}"))
    await wal.close()
    (segment,) = _segments(tmp_path / "wal")
    size = segment.stat().st_size
    os.truncate(segment, size - 3)  # a crash in the middle of the last record

    wal = await open_wal()
    records = wal.read(1, wal.head, 1 << 20)
    assert [r.payload for r in records] == [f"record-{i}".encode() * 10 for i in range(4)]
    assert [r.meta for r in records] == [IngestMeta(project_id=f"p{i}") for i in range(4)]
    assert wal.head == 5
    assert segment.stat().st_size < size - 3  # the partial record is gone from the file
    assert await wal.append(SIGNAL_TRACES, b"after") == 5
    await wal.close()

    wal = await open_wal()
    assert [r.payload for r in wal.read(5, 6, 1 << 20)] == [b"after"]


@pytest.mark.parametrize(
    "garbage",
    [
        pytest.param(b"\x00\x01\x02", id="shorter-than-a-header"),
        pytest.param(b"\xff" * 40, id="header-claims-a-huge-body"),
        pytest.param((20).to_bytes(4, "little") + b"\x00" * 4 + b"\x01\x00\x00" + b"x" * 20, id="bad-crc"),
    ],
)
async def test_wal_cuts_garbage_after_the_last_record(open_wal: Any, tmp_path: Path, garbage: bytes) -> None:
    wal = await open_wal()
    for i in range(3):
        await wal.append(SIGNAL_TRACES, f"record-{i}".encode())
    await wal.close()
    (segment,) = _segments(tmp_path / "wal")
    clean_size = segment.stat().st_size
    segment.write_bytes(segment.read_bytes() + garbage)

    wal = await open_wal()
    assert [r.payload for r in wal.read(1, wal.head, 1 << 20)] == [b"record-0", b"record-1", b"record-2"]
    assert segment.stat().st_size == clean_size
    assert await wal.append(SIGNAL_LOGS, b"fresh") == 4
    assert wal.read(4, 5, 1 << 20)[0].signal == SIGNAL_LOGS


async def test_wal_corrupt_middle_segment_loses_only_its_damaged_records(
    open_wal: Any, tmp_path: Path
) -> None:
    wal = await open_wal(segment_bytes=1000)
    payloads = [bytes([i]) * 200 for i in range(15)]
    for payload in payloads:
        await wal.append(SIGNAL_TRACES, payload)
    await wal.close()
    segments = _segments(tmp_path / "wal")
    assert len(segments) >= 3
    middle = segments[1]
    base, following = int(middle.stem), int(segments[2].stem)
    data = bytearray(middle.read_bytes())
    data[HEADER + 200 + HEADER + 5] ^= 0xFF  # a flipped bit in the middle segment's second record
    middle.write_bytes(bytes(data))

    wal = await open_wal(segment_bytes=1000)
    lsns = [r.lsn for r in wal.read(1, wal.head, 1 << 20)]
    # The first record of the damaged segment survives; the rest of it is gone; later segments are intact.
    assert lsns == [*range(1, base + 1), *range(following, 16)]
    assert all(r.payload == payloads[r.lsn - 1] for r in wal.read(1, wal.head, 1 << 20))
    assert wal.head == 16


async def test_wal_rolls_segments_over_and_reads_across_them(open_wal: Any, tmp_path: Path) -> None:
    wal = await open_wal(segment_bytes=1000)
    payloads = [os.urandom(200) for _ in range(20)]
    for payload in payloads:
        await wal.append(SIGNAL_TRACES, payload)
    segments = _segments(tmp_path / "wal")
    assert len(segments) >= 4
    # Named by the LSN of their first record, each no larger than the limit (records here are smaller).
    bases = [int(p.stem) for p in segments]
    assert bases[0] == 1 and bases == sorted(bases)
    assert all(p.stat().st_size <= 1000 for p in segments)
    assert [r.payload for r in wal.read(1, wal.head, 1 << 20)] == payloads
    await wal.close()

    wal = await open_wal(segment_bytes=1000)
    assert wal.head == 21
    assert [r.payload for r in wal.read(1, wal.head, 1 << 20)] == payloads
    first_of_third = bases[2]
    assert [r.lsn for r in wal.read(first_of_third - 1, first_of_third + 2, 1 << 20)] == [
        first_of_third - 1,
        first_of_third,
        first_of_third + 1,
    ]


async def test_wal_release_deletes_only_fully_consumed_segments(open_wal: Any, tmp_path: Path) -> None:
    telemetry = Telemetry()
    wal = await open_wal(segment_bytes=1000, telemetry=telemetry)
    for _ in range(20):
        await wal.append(SIGNAL_TRACES, os.urandom(200))
    bases = [int(p.stem) for p in _segments(tmp_path / "wal")]
    size = wal.size_bytes()

    wal.release(bases[1] - 1)  # the first segment's last record is still needed
    assert [int(p.stem) for p in _segments(tmp_path / "wal")] == bases
    assert wal.first == 1

    wal.release(bases[1])  # every record of the first segment is consumed
    assert [int(p.stem) for p in _segments(tmp_path / "wal")] == bases[1:]
    assert wal.first == bases[1]
    assert wal.size_bytes() < size
    assert telemetry.registry.get_sample_value("llm_observer_wal_size_bytes") == wal.size_bytes()
    assert wal.read(1, wal.head, 1 << 20)[0].lsn == bases[1]

    wal.release(wal.head + 100)  # past everything: the active segment stays
    assert [int(p.stem) for p in _segments(tmp_path / "wal")] == bases[-1:]
    assert await wal.append(SIGNAL_TRACES, b"still writable") == 21
    await wal.close()

    wal = await open_wal(segment_bytes=1000)
    assert wal.first == bases[-1]
    assert [r.lsn for r in wal.read(1, wal.head, 1 << 20)] == list(range(bases[-1], 22))


async def test_wal_cursors_persist_with_inflight_ranges(open_wal: Any, tmp_path: Path) -> None:
    wal = await open_wal()
    for _ in range(9):
        await wal.append(SIGNAL_TRACES, b"x")
    assert wal.load_cursor("traces/clickhouse") == Cursor(1, None)  # a new consumer starts at the start
    wal.save_cursor("traces/clickhouse", Cursor(4, (4, 9)))
    wal.save_cursor("traces/prometheus", Cursor(10))
    wal.save_cursor("traces/prometheus", Cursor(7))  # overwrites
    await wal.close()

    wal = await open_wal()
    assert wal.load_cursor("traces/clickhouse") == Cursor(4, (4, 9))
    assert wal.load_cursor("traces/prometheus") == Cursor(7, None)
    assert not list((tmp_path / "wal" / "cursors").glob("*.tmp"))


async def test_wal_refuses_appends_over_max_bytes(open_wal: Any) -> None:
    wal = await open_wal(max_bytes=2000)
    accepted = 0
    with pytest.raises(Backpressure) as refused:
        for _ in range(100):
            await wal.append(SIGNAL_TRACES, b"y" * 500)
            accepted += 1
    assert refused.value.reason == "wal_size"
    assert refused.value.retry_after is not None and refused.value.retry_after > 0
    assert 2000 // (500 + HEADER) <= accepted <= 2000 // (500 + HEADER) + 1
    assert wal.head == accepted + 1  # nothing refused was written


async def test_wal_refuses_appends_over_max_pending_bytes(open_wal: Any) -> None:
    wal = await open_wal(max_pending_bytes=2000)
    results = await asyncio.gather(
        *(wal.append(SIGNAL_TRACES, b"z" * 600) for _ in range(50)), return_exceptions=True
    )
    refused = [r for r in results if isinstance(r, BaseException)]
    lsns = [r for r in results if isinstance(r, int)]
    assert refused, "50 concurrent appends of 600 bytes stayed under a 2000-byte pending limit"
    assert all(isinstance(r, Backpressure) and r.reason == "wal_pending" for r in refused)
    assert lsns == list(range(1, len(lsns) + 1))
    # Once the queue is written the log takes appends again.
    assert await wal.append(SIGNAL_TRACES, b"later") == len(lsns) + 1


@pytest.mark.parametrize("kind", ["wal", "memory"])
async def test_wal_wait_beyond_wakes_when_a_record_is_durable(open_wal: Any, kind: str) -> None:
    log: WriteAheadLog | MemoryLog
    if kind == "wal":
        log = await open_wal()
    else:
        log = MemoryLog()
        await log.open()
    await log.append(SIGNAL_TRACES, b"a")
    assert await log.wait_beyond(1, 0.01)  # LSN 1 is already there
    assert not await log.wait_beyond(2, 0.01)  # a timeout, not a wait for something to happen
    waiter = asyncio.create_task(log.wait_beyond(2, 10.0))
    await log.append(SIGNAL_TRACES, b"b")
    assert await asyncio.wait_for(waiter, 5.0)


# Run in a child process: RLIMIT_FSIZE applies to every file the process writes.
_FAILED_WRITE_SCRIPT = """
import asyncio, json, resource, signal, sys
from pathlib import Path
from llm_observer.kernel.errors import Backpressure
from llm_observer.collector.wal import WriteAheadLog

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # over the limit, write() fails with EFBIG instead

async def main() -> None:
    directory = Path(sys.argv[1])
    out = {}
    wal = WriteAheadLog(directory)
    await wal.open()
    await wal.append(1, b"A" * 500)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1000, hard))  # the disk is full after ~1000 bytes
    try:
        await wal.append(1, b"B" * 800)
        out["refused"] = None
    except Backpressure as exc:
        out["refused"] = exc.reason
    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))  # space again
    out["c_lsn"] = await wal.append(1, b"C" * 300)
    out["read"] = [r.payload.decode() for r in wal.read(1, wal.head, 1 << 20)]
    await wal.close()
    wal = WriteAheadLog(directory)
    await wal.open()
    out["reopened"] = [r.payload.decode() for r in wal.read(1, wal.head, 1 << 20)]
    await wal.close()
    print(json.dumps(out))

asyncio.run(main())
"""


def test_wal_failed_write_does_not_corrupt_later_records(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", _FAILED_WRITE_SCRIPT, str(tmp_path / "wal")],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["refused"] == "wal_io"  # the request that hit the full disk was refused, not acknowledged
    assert out["c_lsn"] == 2
    assert out["read"] == ["A" * 500, "C" * 300]  # the acknowledged record, not the refused one
    assert out["reopened"] == ["A" * 500, "C" * 300]  # and it survives a restart


async def test_wal_append_before_open_fails(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError):
        await WriteAheadLog(tmp_path / "wal").append(SIGNAL_TRACES, b"x")


async def test_memory_log_reads_and_keeps_cursors_like_the_wal() -> None:
    log = MemoryLog(max_bytes=1000)
    await log.open()
    meta = IngestMeta(organization_id="acme")
    assert [await log.append(SIGNAL_TRACES, bytes([i]) * 100, meta) for i in range(5)] == [1, 2, 3, 4, 5]
    records = log.read(1, log.head, 1 << 20)
    assert [(r.lsn, r.signal, r.meta, r.payload) for r in records] == [
        (i + 1, SIGNAL_TRACES, meta, bytes([i]) * 100) for i in range(5)
    ]
    assert [r.lsn for r in log.read(1, log.head, 1)] == [1]
    assert [r.lsn for r in log.read(2, 4, 1 << 20)] == [2, 3]
    assert log.bytes_between(1, log.head) == 500

    assert log.load_cursor("traces/debug") == Cursor(1, None)
    log.save_cursor("traces/debug", Cursor(3, (3, 5)))
    assert log.load_cursor("traces/debug") == Cursor(3, (3, 5))

    log.release(3)
    assert log.first == 3
    assert [r.lsn for r in log.read(1, log.head, 1 << 20)] == [3, 4, 5]
    assert log.load_cursor("traces/new") == Cursor(3, None)

    # 300 bytes held; 7 more appends reach the 1000-byte limit, the 8th is refused.
    for _ in range(7):
        await log.append(SIGNAL_TRACES, b"q" * 100)
    with pytest.raises(Backpressure) as refused:
        await log.append(SIGNAL_TRACES, b"q" * 100)
    assert refused.value.reason == "memory_log_size"
    assert log.head == 13
    await log.close()
