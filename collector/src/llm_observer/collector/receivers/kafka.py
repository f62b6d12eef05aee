"""The Kafka receiver: a consumer group reading OTLP from Kafka topics into the WAL.

With the Kafka exporter this is the scale-out path: edge collectors produce processed spans (one message
per trace, keyed by trace id) and any number of storage collectors in one consumer group read them. A
partition's messages become WAL records (chunks) named by topic, partition and offsets; the group's offset
moves past a chunk only once every pipeline has delivered it, and the chunks in between are named in the
commit so that whoever reads the partition next re-forms them exactly and storage's insert deduplication
drops what was stored already (see ``kafka_chunks``). A member that dies for good therefore loses nothing:
the survivors re-read what it had not delivered.

The blocking consumer runs on a thread of its own; each chunk is handed to the event loop's ``Ingest`` and
the thread waits for it. When the collector is over its limits (``Backpressure``) the partition is paused
and the chunk retried later: nothing is dropped, and no offset is committed past the WAL.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Iterable
from typing import Literal

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition
from pydantic import Field, model_validator

from llm_observer.collector.receivers.ingest_core import (
    REQUEST_TYPES,
    IngestCore,
    Parsed,
    parse_json,
    parse_protobuf,
)
from llm_observer.collector.receivers.kafka_chunks import Chunk, InFlight, PartitionState
from llm_observer.kernel.component import (
    SIGNAL_LOGS,
    SIGNAL_METRICS,
    SIGNAL_TRACES,
    CreateContext,
    Factory,
    IngestMeta,
    Receiver,
)
from llm_observer.kernel.errors import Backpressure, ConfigError, PermanentError
from llm_observer.kernel.kafka import ClientValue, ConsumerLag, KafkaClientSettings, with_passthrough

logger = logging.getLogger(__name__)
client_logger = logging.getLogger("llm_observer.kafka.librdkafka")

_MIB = 1 << 20
_LAG_EVERY_SECONDS = 1.0
_COMMIT_RETRY_SECONDS = 1.0
_DELIVERED_EVERY_SECONDS = 0.2


class KafkaReceiverConfig(KafkaClientSettings):
    """Which topics to read (``null`` skips one), as which consumer group, from where."""

    topic: str | None = Field("otlp_spans", min_length=1, description="OTLP spans (TracesData)")
    logs_topic: str | None = Field("otlp_logs", min_length=1, description="OTLP logs (LogsData)")
    metrics_topic: str | None = Field("otlp_metrics", min_length=1, description="OTLP metrics (MetricsData)")
    encoding: Literal["otlp_proto", "otlp_json"] = "otlp_proto"
    group_id: str = Field("llm-observer", min_length=1)
    initial_offset: Literal["earliest", "latest"] = Field(
        "earliest",
        description="where a group with no committed offset starts; earliest, so that a new storage tier "
        "stores what the edge produced before it joined",
    )
    session_timeout: float = Field(10, gt=0, description="seconds before a silent member is dropped")
    heartbeat_interval: float = Field(3, gt=0)
    max_poll_messages: int = Field(1000, gt=0, description="messages taken from the consumer at a time")
    max_chunk_mib: float = Field(4, gt=0, description="the largest WAL record a partition's messages form")
    organization_id: str | None = Field(None, description="the tenant of every record (default: the data's)")
    project_id: str | None = None

    @model_validator(mode="after")
    def _topics(self) -> KafkaReceiverConfig:
        topics = [t for t in (self.topic, self.logs_topic, self.metrics_topic) if t is not None]
        if not topics:
            raise ValueError("no topic to read: set topic, logs_topic or metrics_topic")
        if len(set(topics)) != len(topics):
            raise ValueError("topic, logs_topic and metrics_topic must differ: the topic says the signal")
        if self.heartbeat_interval >= self.session_timeout:
            raise ValueError("heartbeat_interval must be shorter than session_timeout")
        return self

    def signals(self) -> dict[str, int]:
        """Topic → the signal its messages carry."""
        pairs = (
            (self.topic, SIGNAL_TRACES),
            (self.logs_topic, SIGNAL_LOGS),
            (self.metrics_topic, SIGNAL_METRICS),
        )
        return {topic: signal for topic, signal in pairs if topic is not None}


def consumer_config(config: KafkaReceiverConfig) -> dict[str, ClientValue]:
    """librdkafka consumer settings: offsets only ever committed by the receiver, after the WAL append."""
    return with_passthrough(
        config,
        {
            "group.id": config.group_id,
            "auto.offset.reset": config.initial_offset,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "session.timeout.ms": int(config.session_timeout * 1000),
            "heartbeat.interval.ms": int(config.heartbeat_interval * 1000),
            "isolation.level": "read_committed",
        },
    )


class KafkaReceiver:
    """Consumes the configured topics in a consumer group and hands each chunk to the WAL."""

    def __init__(self, ctx: CreateContext, config: KafkaReceiverConfig) -> None:
        if ctx.ingest is None:
            raise ValueError("the kafka receiver needs an ingest")
        self.config = config
        self.component_id = ctx.component_id
        self.telemetry = ctx.telemetry
        self.metrics = ctx.telemetry.component(ctx.component_id)
        self.core = IngestCore(ctx.component_id, ctx.ingest, ctx.telemetry, None, ctx.time_limits)
        # Without the WAL's progress (a bare ingest), a chunk counts as delivered once it is written.
        self.wal_progress = ctx.wal_progress or (lambda: (0, 0))
        self.signals = config.signals()
        self.lag = ConsumerLag.of(ctx.telemetry.registry)
        self.partitions: dict[tuple[str, int], PartitionState] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._consumer: Consumer | None = None
        self._errors_logged: set[int] = set()

    # --- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        if self._thread is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._stop.clear()
        self._consumer = self._new_consumer()  # bad settings fail the start, not the thread
        self._thread = threading.Thread(
            target=self._run, name=f"kafka-receiver-{self.component_id}", daemon=True
        )
        self._thread.start()
        logger.info(
            "%s: reading %s as group %s", self.component_id, ", ".join(self.signals), self.config.group_id
        )

    async def shutdown(self) -> None:
        """Stop consuming: the chunk in hand is finished, what is in the WAL committed, the group left."""
        thread, self._thread = self._thread, None
        if thread is not None:
            self._stop.set()
            await asyncio.to_thread(thread.join)
        self.lag.clear(self.component_id)

    def _new_consumer(self) -> Consumer:
        settings: dict[str, object] = {
            **consumer_config(self.config),
            "logger": client_logger,
            "error_cb": self._on_error,
        }
        try:
            return Consumer(settings)
        except (KafkaException, ValueError, TypeError) as exc:
            raise ConfigError(
                [(f"receivers.{self.component_id}", f"the Kafka consumer refused its settings: {exc}")]
            ) from exc

    def _on_error(self, error: KafkaError) -> None:
        self.metrics.event(f"client_error_{error.name().lower().lstrip('_')}")

    # --- the consumer thread -----------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            consumer = self._consumer or self._new_consumer()
            self._consumer = consumer
            try:
                self._consume(consumer)
            except Exception:
                # Whatever it was, the commits in Kafka say where to resume; a fresh consumer does.
                logger.exception("%s: the Kafka consumer failed; restarting it", self.component_id)
                self.metrics.event("consumer_restarted")
                self._stop.wait(1.0)
            finally:
                self._close(consumer)
                self._consumer = None

    def _consume(self, consumer: Consumer) -> None:
        consumer.subscribe(
            list(self.signals), on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost
        )
        max_bytes = int(self.config.max_chunk_mib * _MIB)
        next_lag = next_delivered = 0.0
        while not self._stop.is_set():
            for assigned in list(self.partitions.values()):
                self._drain(consumer, assigned)
            messages = consumer.consume(self.config.max_poll_messages, 0.2)
            by_partition: dict[tuple[str, int], list[Message]] = {}
            for message in messages:
                error = message.error()
                if error is not None:
                    self._consumer_error(error)
                    continue
                topic, partition = message.topic(), message.partition()
                assert topic is not None and partition is not None
                by_partition.setdefault((topic, partition), []).append(message)
            for key, batch in by_partition.items():
                state = self.partitions.get(key)
                if state is None:  # revoked while these were on their way
                    continue
                position = None
                if state.replaying:
                    position = consumer.position([TopicPartition(*key)])[0].offset
                state.waiting.extend(state.form(list(batch), max_bytes, position))
                self._drain(consumer, state)
            now = time.monotonic()
            if now >= next_delivered:
                self._commit_delivered(consumer, list(self.partitions.values()))
                next_delivered = now + _DELIVERED_EVERY_SECONDS
            if now >= next_lag:
                self._update_lag(consumer)
                next_lag = now + _LAG_EVERY_SECONDS
        self._commit_delivered(consumer, list(self.partitions.values()))

    def _close(self, consumer: Consumer) -> None:
        try:
            consumer.close()
        except (KafkaException, RuntimeError):
            self.metrics.event("consumer_close_failed")
        self.partitions.clear()
        self.lag.clear(self.component_id)

    def _consumer_error(self, error: KafkaError) -> None:
        name = error.name().lower().lstrip("_")
        self.metrics.event(f"consumer_error_{name}")
        if error.code() not in self._errors_logged:
            self._errors_logged.add(error.code())
            logger.warning("%s: Kafka consumer: %s (counted from now on)", self.component_id, error.str())

    # --- rebalances ----------------------------------------------------------------------------------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for tp in self._committed(consumer, partitions):
            # The chunks the last owner named in its commit, maybe stored, are re-formed exactly first.
            state = PartitionState.assigned(
                tp.topic, tp.partition, self.signals[tp.topic], tp.offset, tp.metadata
            )
            self.partitions[(tp.topic, tp.partition)] = state
            if state.planned:
                logger.info(
                    "%s: %s/%d: re-reading %d chunks (offsets %d-%d) its last reader had not delivered",
                    self.component_id,
                    tp.topic,
                    tp.partition,
                    len(state.planned),
                    tp.offset,
                    state.planned[-1],
                )

    def _committed(self, consumer: Consumer, partitions: list[TopicPartition]) -> list[TopicPartition]:
        """The group's commits for ``partitions``, with metadata. Without them a pending replay could not
        be re-formed, so this insists (the group coordinator may be moving)."""
        deadline = time.monotonic() + 60
        while True:
            try:
                return list(consumer.committed(partitions, timeout=10))
            except KafkaException as exc:
                if time.monotonic() > deadline or self._stop.is_set():
                    raise
                logger.warning("%s: reading committed offsets failed (%s); retrying", self.component_id, exc)
                time.sleep(_COMMIT_RETRY_SECONDS)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        states = [self.partitions.pop((tp.topic, tp.partition), None) for tp in partitions]
        self._commit_delivered(consumer, [s for s in states if s is not None])
        for tp in partitions:
            self.lag.values.pop((self.component_id, tp.topic, tp.partition), None)

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Another member may own them already: commit nothing; our last commits name the chunks it re-forms.
        for tp in partitions:
            self.partitions.pop((tp.topic, tp.partition), None)
            self.lag.values.pop((self.component_id, tp.topic, tp.partition), None)

    # --- chunks --------------------------------------------------------------------------------------

    def _drain(self, consumer: Consumer, state: PartitionState) -> None:
        """Append the partition's waiting chunks to the WAL, in order, as far as it takes them; pause the
        partition while any wait, resume it once none does."""
        was_waiting = bool(state.waiting)
        if state.waiting and state.retry_at <= time.monotonic():
            while state.waiting and not state.full():
                if not self._append(consumer, state, state.waiting[0]):
                    break
                state.waiting.pop(0)
        key = [TopicPartition(state.topic, state.partition)]
        try:
            if state.waiting:
                consumer.pause(key)
            elif was_waiting:
                consumer.resume(key)
        except KafkaException:
            self.metrics.event("pause_failed")

    def _append(self, consumer: Consumer, state: PartitionState, chunk: Chunk) -> bool:
        """Name the chunk in the group's commit, then hand it to the WAL. False: try again later
        (``state.retry_at`` says when)."""
        if not self._commit_states(consumer, [state]):
            state.retry_at = time.monotonic() + _COMMIT_RETRY_SECONDS
            return False
        parsed = self._parse(state.signal, chunk)
        mark = 0
        if parsed is not None:
            meta = IngestMeta(self.config.organization_id, self.config.project_id, source=chunk.source)
            assert self._loop is not None
            future = asyncio.run_coroutine_threadsafe(
                self.core.export(state.signal, parsed, meta), self._loop
            )
            try:
                future.result()
            except Backpressure as exc:
                self.metrics.event("paused_backpressure")
                state.retry_at = time.monotonic() + (exc.retry_after or 1.0)
                return False
            except PermanentError:
                self.metrics.event("chunk_refused")  # checked message by message already: not expected
            except Exception:
                logger.exception(
                    "%s: writing %s to the WAL failed; retrying", self.component_id, chunk.source
                )
                state.retry_at = time.monotonic() + 1.0
                return False
            mark = self.wal_progress()[0]  # the head just after the append: delivered once reached
        state.in_flight.append(InFlight(chunk.first, chunk.end, mark))
        return True

    def _parse(self, signal: int, chunk: Chunk) -> Parsed | None:
        """The chunk as one OTLP request (None when no message holds any), malformed messages left out
        and counted. Protobuf messages concatenate into one (repeated fields append); JSON ones merge."""
        values = [v for v in chunk.values if v]
        if not values:
            return None
        if self.config.encoding == "otlp_proto":
            try:
                return parse_protobuf(signal, b"".join(values))
            except PermanentError:
                good = [v for v in values if self._valid_protobuf(signal, v)]
                return parse_protobuf(signal, b"".join(good)) if good else None
        merged = REQUEST_TYPES[signal]()
        found = False
        for value in values:
            try:
                merged.MergeFrom(parse_json(signal, value).message)
                found = True
            except PermanentError:
                self.metrics.event("malformed_message")
        return Parsed(merged, None) if found else None

    def _valid_protobuf(self, signal: int, value: bytes) -> bool:
        try:
            parse_protobuf(signal, value)
        except PermanentError:
            self.metrics.event("malformed_message")
            return False
        return True

    # --- commits and lag -------------------------------------------------------------------------------

    def _commit(self, consumer: Consumer, offsets: list[TopicPartition]) -> bool:
        try:
            consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            self._consumer_error(exc.args[0])
            return False
        return True

    def _commit_states(self, consumer: Consumer, states: Iterable[PartitionState]) -> bool:
        """Commit each partition's delivered offset with the chunks after it; False if Kafka refused."""
        ready = [(s, s.commit_point()) for s in states]
        offsets = [
            TopicPartition(s.topic, s.partition, point[0], metadata=point[1])
            for s, point in ready
            if point is not None
        ]
        if not offsets:
            return True
        if not self._commit(consumer, offsets):
            return False
        for state, point in ready:
            if point is not None:
                state.last_commit = point
        return True

    def _commit_delivered(self, consumer: Consumer, states: list[PartitionState]) -> None:
        delivered = self.wal_progress()[1]
        moved = [s for s in states if s.delivered(delivered)]
        if moved:
            self._commit_states(consumer, moved)

    def _update_lag(self, consumer: Consumer) -> None:
        for key, state in list(self.partitions.items()):
            try:
                low, high = consumer.get_watermark_offsets(TopicPartition(*key), cached=True)
            except KafkaException:
                continue
            if high is None or high < 0:
                continue
            done = state.next_first if state.next_first is not None else state.committed
            self.lag.values[(self.component_id, *key)] = max(
                0, high - (done if done is not None and done >= 0 else low)
            )


def create(ctx: CreateContext, config: KafkaReceiverConfig) -> Receiver:
    return KafkaReceiver(ctx, config)


factory: Factory[KafkaReceiverConfig, Receiver] = Factory("kafka", KafkaReceiverConfig, create)

__all__ = ["KafkaReceiver", "KafkaReceiverConfig", "consumer_config", "create", "factory"]
