"""The OTLP exporter: forwards processed spans, and OTLP logs and metrics as received, to any OTLP backend
(another collector, Jaeger, Tempo...).

One send may take several requests (``max_request_size_mib``). When one of them fails with a passing error
the send fails with it, and the exporter remembers which requests of that batch were delivered: the
delivery helper retries the same batch (same WAL range, same bytes), and the retry sends only the rest, so
a backend never sees a request twice because a later one failed. A request the backend refuses for good
costs only the rows it carried (``PartialFailure``); the others are delivered. Spans a backend accepts
only in part (``partial_success``) are counted (``rejected_spans`` and the like) and logged at most once a
minute: the backend has said it will never take them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

from llm_observer.exporters.otlp.requests import Request, record_requests, span_requests
from llm_observer.exporters.otlp.transport import Transport
from llm_observer.exporters.otlp.wire import LOGS, METRICS, TRACES, OtlpSignal, rejected
from llm_observer.kernel.batch import SpanBatch
from llm_observer.kernel.component import CreateContext
from llm_observer.kernel.errors import PartialFailure, PermanentError, RetryableError
from llm_observer.kernel.signals import SignalBatch

logger = logging.getLogger(__name__)

_LOG_EVERY_SECONDS = 60.0

# What identifies "the same batch again": its WAL range, its size and its first and last item.
_BatchKey = tuple[str, int, bytes | int, bytes | int]


class OtlpExporter:
    """Sends ``SpanBatch`` es and OTLP log / metric batches through a ``Transport``.

    Counts (component events): ``requests_sent``, ``rejected_spans`` / ``rejected_log_records`` /
    ``rejected_data_points`` (refused by the backend in a ``partial_success``), ``requests_resumed``
    (requests a retry skipped because they were delivered before) and ``spans_too_big`` (a span whose
    request alone exceeds ``max_request_size_mib``; refused, and dead-lettered by the delivery helper).
    """

    def __init__(self, ctx: CreateContext, transport: Transport, max_request_bytes: int) -> None:
        self.transport = transport
        self.max_request_bytes = max_request_bytes
        self._id = ctx.component_id
        self._metrics = ctx.telemetry.component(ctx.component_id)
        self._lock = asyncio.Lock()
        self._started = False
        # Per signal: the batch last failed with a passing error, and which of its requests were delivered.
        self._resume: dict[str, tuple[_BatchKey, set[int]]] = {}
        self._last_logged = -_LOG_EVERY_SECONDS

    async def start(self) -> None:
        async with self._lock:
            if not self._started:
                await self.transport.start()
                self._started = True
                logger.info("Exporter %s forwards OTLP to %s.", self._id, self.transport.endpoint)

    async def shutdown(self) -> None:
        async with self._lock:
            if self._started:
                self._started = False
                await self.transport.close()

    async def send(self, batch: SpanBatch) -> None:
        """Deliver the processed spans; ``PartialFailure`` names the rows refused, if only some were."""
        count = len(batch)
        if not count:
            return
        # Encoding a large batch takes a while: off the event loop that answers the receivers. The batch is
        # only read, as every exporter must.
        requests, too_big = await asyncio.to_thread(span_requests, batch, self.max_request_bytes)
        if too_big:
            self._metrics.event("spans_too_big", len(too_big))
        key: _BatchKey = (batch.origin, count, batch.span_id[0], batch.span_id[-1])
        refused = await self._deliver(TRACES, key, requests, count, too_big)
        if refused is not None:
            raise refused

    async def send_logs(self, batch: SignalBatch) -> None:
        """Deliver the batch's OTLP log requests, merged where they fit in one request."""
        await self._send_records(LOGS, batch)

    async def send_metrics(self, batch: SignalBatch) -> None:
        """Deliver the batch's OTLP metric requests, merged where they fit in one request."""
        await self._send_records(METRICS, batch)

    async def _send_records(self, signal: OtlpSignal, batch: SignalBatch) -> None:
        records = batch.records
        if not records:
            return
        payloads = [record.payload for record in records]
        requests = record_requests(payloads, self.max_request_bytes, signal.request_type)
        key: _BatchKey = (batch.origin, len(records), records[0].lsn, records[-1].lsn)
        refused = await self._deliver(signal, key, requests, len(records), [])
        if refused is not None:
            raise refused

    async def _deliver(
        self,
        signal: OtlpSignal,
        key: _BatchKey,
        requests: Sequence[Request],
        rows: int,
        unsendable: list[int],
    ) -> PermanentError | None:
        """Send every request not yet delivered; the error for the rows refused for good (None: none).

        A passing error ends the send at once (raised), after noting what was delivered so far."""
        # A batch without an origin (a narrowed-down part) cannot be told apart from another: no resuming.
        resume = self._resume.get(signal.name)
        done: set[int] = resume[1] if resume is not None and resume[0] == key and key[0] else set()
        if done:
            self._metrics.event("requests_resumed", len(done))
        self._resume.pop(signal.name, None)
        refused_rows = list(unsendable)
        first: PermanentError | None = None
        for index, request in enumerate(requests):
            if index in done:
                continue
            try:
                response = await self.transport.export(signal, request.body)
            except RetryableError as exc:
                if done:
                    self._resume[signal.name] = (key, done)
                    raise RetryableError(
                        f"{exc} ({len(done)} of the send's {len(requests)} requests were delivered; "
                        "the retry sends the rest)",
                        exc.retry_after,
                    ) from exc
                raise
            except PermanentError as exc:
                first = first or exc
                refused_rows.extend(request.rows)
                continue
            done.add(index)
            self._metrics.event("requests_sent")
            count, message = rejected(signal, response)
            if count:
                self._note_rejected(signal, count, message)
        if not refused_rows:
            return None
        if first is not None and len(refused_rows) == rows:
            return first  # nothing was delivered: the delivery helper narrows the batch down itself
        reason = first.reason if first is not None else "too_big"
        message = (
            f"exporter {self._id}: {len(refused_rows)} of {rows} {signal.item} were refused"
            + (f" ({first})" if first is not None else "")
            + (
                f"; {len(unsendable)} do not fit in a request of max_request_size_mib "
                f"({self.max_request_bytes / (1 << 20):g})"
                if unsendable
                else ""
            )
        )
        return PartialFailure(message, sorted(refused_rows), reason)

    def _note_rejected(self, signal: OtlpSignal, count: int, message: str) -> None:
        self._metrics.event(f"rejected_{signal.item}", count)
        now = time.monotonic()
        if now - self._last_logged >= _LOG_EVERY_SECONDS:
            self._last_logged = now
            logger.warning(
                "Exporter %s: the backend at %s rejected %d %s of a request (%s); they are counted in "
                'llm_observer_component_events{event="rejected_%s"} and not sent again.',
                self._id,
                self.transport.endpoint,
                count,
                signal.item.replace("_", " "),
                message or "no message",
                signal.item,
            )
