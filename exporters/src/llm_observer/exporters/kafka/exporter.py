"""The Kafka exporter: a batch becomes one message per trace, and ``send`` returns once Kafka holds them.

Errors follow the exporter contract: brokers away or slow → ``RetryableError`` (the delivery helper holds
this exporter's WAL cursor and retries; the other exporters go on); a trace whose message Kafka can never
take (bigger than ``producer.max_message_bytes`` or the topic's limit) → ``PartialFailure`` naming its
rows, which the helper dead-letters while the rest counts as delivered.

A retried batch does not produce twice what Kafka already confirmed: the exporter remembers, per batch
origin, a digest of each confirmed message, and skips those on the retry. The producer is idempotent with
``acks=all``, so librdkafka's own retries add no duplicates either.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import OrderedDict
from collections.abc import Sequence

from confluent_kafka import KafkaError
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

from llm_observer.exporters.kafka.config import KafkaExporterConfig
from llm_observer.exporters.kafka.producer import PERMANENT_CODES, AsyncProducer, OutMessage
from llm_observer.kernel.batch import SpanBatch
from llm_observer.kernel.component import CreateContext
from llm_observer.kernel.errors import PartialFailure, PermanentError, RetryableError
from llm_observer.kernel.kafka import ClientValue, with_passthrough
from llm_observer.kernel.otlp_codec import encode_traces, to_otlp_json
from llm_observer.kernel.signals import SIGNAL_LOGS, SignalBatch
from llm_observer.kernel.telemetry import ComponentMetrics

# How many batch origins' confirmed messages are remembered for retries. One worker retries one batch
# at a time; a few pipelines (traces, logs, metrics) may share the exporter.
_REMEMBERED_ORIGINS = 64


def producer_config(config: KafkaExporterConfig) -> dict[str, ClientValue]:
    """The librdkafka producer settings for ``config``: idempotent, ``acks=all``, failing a message after
    ``timeout`` seconds so that a send always ends on its own."""
    producer = config.producer
    return with_passthrough(
        config,
        {
            "enable.idempotence": True,
            "acks": "all",
            "compression.type": producer.compression,
            "message.max.bytes": producer.max_message_bytes,
            "linger.ms": producer.linger_ms,
            "message.timeout.ms": int(config.timeout * 1000),
        },
    )


def messages_by_trace(batch: SpanBatch) -> list[tuple[bytes, list[int]]]:
    """The batch's rows grouped by trace id, in order of each trace's first row."""
    groups: dict[bytes, list[int]] = {}
    for row, trace_id in enumerate(batch.trace_id):
        groups.setdefault(trace_id, []).append(row)
    return list(groups.items())


def _digest(message: OutMessage) -> bytes:
    h = hashlib.blake2b(digest_size=16)
    h.update(message.topic.encode())
    h.update(b"\0")
    h.update(message.key or b"")
    h.update(b"\0")
    h.update(message.value)
    return h.digest()


def _describe(error: KafkaError) -> str:
    return f"{error.name()}: {error.str()}"


class KafkaExporter:
    """Produces spans per trace to ``topic``, and OTLP log / metric requests to their topics."""

    def __init__(self, ctx: CreateContext, config: KafkaExporterConfig) -> None:
        self.config = config
        self.component_id = ctx.component_id
        self.metrics: ComponentMetrics = ctx.telemetry.component(ctx.component_id)
        self.producer = AsyncProducer(producer_config(config), ctx.component_id)
        self._confirmed: OrderedDict[str, set[bytes]] = OrderedDict()

    async def start(self) -> None:
        self.producer.start()

    async def shutdown(self) -> None:
        self.producer.close(self.config.timeout)

    # --- encoding ----------------------------------------------------------------------------------

    def _encode_spans(self, batch: SpanBatch) -> bytes:
        request = encode_traces(batch)
        if self.config.encoding == "otlp_json":
            return to_otlp_json(request)
        # ExportTraceServiceRequest and TracesData are the same message on the wire.
        return request.SerializeToString()

    def _encode_request(self, signal_batch: SignalBatch, payload: bytes) -> bytes:
        if self.config.encoding == "otlp_proto":
            return payload  # stored as received: Export*ServiceRequest is *Data on the wire
        kind = signal_batch.signal
        request = (
            ExportLogsServiceRequest.FromString(payload)
            if kind == SIGNAL_LOGS
            else ExportMetricsServiceRequest.FromString(payload)
        )
        return to_otlp_json(request)

    # --- sending -----------------------------------------------------------------------------------

    async def send(self, batch: SpanBatch) -> None:
        if not len(batch):
            return
        # Encoding is Python work over every span: off the event loop, so receivers keep acknowledging.
        groups, messages = await asyncio.to_thread(self._messages, batch)
        refused = await self._deliver(batch.origin, messages)
        if refused:
            rows = sorted(row for index in refused for row in groups[index][1])
            problems = {row: refused[index] for index in refused for row in groups[index][1]}
            raise PartialFailure(
                f"Kafka refused {len(refused)} trace message(s) of {len(messages)}; first: "
                f"{refused[min(refused)]}",
                rows,
                reason="message_refused",
                problems=problems,
            )

    def _messages(self, batch: SpanBatch) -> tuple[list[tuple[bytes, list[int]]], list[OutMessage]]:
        groups = messages_by_trace(batch)
        messages = [
            OutMessage(self.config.topic, trace_id, self._encode_spans(batch.take(rows)))
            for trace_id, rows in groups
        ]
        return groups, messages

    async def send_logs(self, batch: SignalBatch) -> None:
        await self._send_requests(batch, self.config.logs_topic)

    async def send_metrics(self, batch: SignalBatch) -> None:
        await self._send_requests(batch, self.config.metrics_topic)

    async def _send_requests(self, batch: SignalBatch, topic: str) -> None:
        if not len(batch):
            return
        try:
            messages = [
                OutMessage(topic, None, self._encode_request(batch, r.payload)) for r in batch.records
            ]
        except Exception as exc:  # a record the WAL holds that is not the OTLP it claims to be
            raise PermanentError(f"cannot re-encode an OTLP request as JSON: {exc}", "invalid_data") from exc
        refused = await self._deliver(batch.origin, messages)
        if refused:
            raise PartialFailure(
                f"Kafka refused {len(refused)} message(s) of {len(messages)}; first: {refused[min(refused)]}",
                sorted(refused),
                reason="message_refused",
                problems=dict(refused),
            )

    async def _deliver(self, origin: str, messages: Sequence[OutMessage]) -> dict[int, str]:
        """Produce what Kafka has not confirmed yet for this origin; the messages refused for good, by index.

        Raises ``RetryableError`` when any message failed for a passing reason (after remembering the
        ones that made it, so the retry produces only the rest)."""
        confirmed = self._confirmed.get(origin, set()) if origin else set()
        digests = [_digest(m) for m in messages]
        pending = [i for i, d in enumerate(digests) if d not in confirmed]
        if not pending:
            self._forget(origin)
            return {}
        errors = await self.producer.deliver([messages[i] for i in pending], self.config.timeout)
        refused: dict[int, str] = {}
        passing: list[KafkaError] = []
        newly: set[bytes] = set()
        for index, error in zip(pending, errors, strict=True):
            if error is None:
                newly.add(digests[index])
            elif error.code() in PERMANENT_CODES:
                refused[index] = _describe(error)
            else:
                passing.append(error)
        if passing:
            if any(error.fatal() for error in passing):
                # An idempotent producer that hit a fatal error cannot produce again; a new one can.
                self.metrics.event("producer_restarted")
                self.producer.restart()
            if origin:
                self._remember(origin, confirmed | newly)
            raise RetryableError(
                f"Kafka did not take {len(passing)} of {len(messages)} messages; first: {_describe(passing[0])}"
            )
        self._forget(origin)
        return refused

    def _remember(self, origin: str, digests: set[bytes]) -> None:
        self._confirmed[origin] = digests
        self._confirmed.move_to_end(origin)
        while len(self._confirmed) > _REMEMBERED_ORIGINS:
            self._confirmed.popitem(last=False)

    def _forget(self, origin: str) -> None:
        self._confirmed.pop(origin, None)


def create(ctx: CreateContext, config: KafkaExporterConfig) -> KafkaExporter:
    return KafkaExporter(ctx, config)
