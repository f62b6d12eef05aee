"""Cutting what one send delivers into OTLP requests no bigger than ``max_request_size_mib``.

Spans are encoded from the processed batch (``encode_traces``); a batch whose encoding is too big is cut
into runs of consecutive rows, each encoded again, until every run fits. Logs and metrics arrive as the
OTLP requests the receiver got: consecutive records are merged by concatenating their bytes (repeated
protobuf fields concatenate, so two serialized requests side by side are one request holding both), and a
record too big on its own is cut between its resource entries.

Every request remembers which rows (spans, or records) it carries, so that a request the backend refuses
costs those rows only, and the retry of a half-delivered send can skip what was delivered.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from google.protobuf.message import Message

from llm_observer.kernel.batch import SpanBatch
from llm_observer.kernel.otlp_codec import encode_traces


@dataclass(frozen=True, slots=True)
class Request:
    """One OTLP export request: its serialized protobuf and the rows of the send it carries."""

    body: bytes
    rows: Sequence[int]


def span_requests(batch: SpanBatch, limit: int) -> tuple[list[Request], list[int]]:
    """The batch as requests of at most ``limit`` bytes, in row order, and the rows too big to send even
    alone."""
    requests: list[Request] = []
    too_big: list[int] = []
    pending: list[range] = [range(len(batch))]
    while pending:
        rows = pending.pop()
        part = batch if len(rows) == len(batch) else batch.take(rows)
        body = encode_traces(part).SerializeToString()
        if len(body) <= limit:
            requests.append(Request(body, rows))
            continue
        if len(rows) == 1:
            too_big.append(rows[0])
            continue
        # Cut a little finer than the average says, so that uneven spans rarely need a second round.
        pieces = min(len(rows), math.ceil(len(body) * 1.2 / limit))
        step = math.ceil(len(rows) / pieces)
        runs = [rows[i : i + step] for i in range(0, len(rows), step)]
        pending.extend(reversed(runs))  # popped from the end: keeps row order
    return requests, too_big


def record_requests(payloads: Sequence[bytes], limit: int, request_type: type[Message]) -> list[Request]:
    """Consecutive records merged into requests of at most ``limit`` bytes where they fit, in order; a
    record bigger than ``limit`` is cut between its resource entries (an entry bigger than ``limit`` on its
    own is sent as it is: only the backend can say whether it takes it)."""
    requests: list[Request] = []
    run: list[int] = []
    size = 0

    def flush() -> None:
        nonlocal run, size
        if run:
            requests.append(Request(b"".join(payloads[i] for i in run), tuple(run)))
        run, size = [], 0

    for index, payload in enumerate(payloads):
        if len(payload) > limit:
            flush()
            requests.extend(Request(body, (index,)) for body in _cut(payload, limit, request_type))
            continue
        if size + len(payload) > limit:
            flush()
        run.append(index)
        size += len(payload)
    flush()
    return requests


def _cut(payload: bytes, limit: int, request_type: type[Message]) -> list[bytes]:
    """A request's resource entries (its one repeated field) regrouped into requests of at most ``limit``."""
    request = request_type.FromString(payload)
    field = request.DESCRIPTOR.fields_by_number[1].name  # resource_spans / resource_logs / resource_metrics
    out: list[bytes] = []
    current = request_type()
    size = 0
    for entry in getattr(request, field):
        entry_size = entry.ByteSize() + 8  # the field's tag and length prefix, generously
        if size and size + entry_size > limit:
            out.append(current.SerializeToString())
            current, size = request_type(), 0
        getattr(current, field).add().CopyFrom(entry)
        size += entry_size
    if size:
        out.append(current.SerializeToString())
    return out
