"""confluent-kafka's producer with deliveries an event loop can await.

librdkafka queues a produced message and reports its fate later, from ``poll``; here one thread polls for
as long as the producer lives, and each call of ``deliver`` gets a future that resolves once every one of
its messages has been confirmed by the brokers or has failed.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from llm_observer.kernel.errors import ConfigError, RetryableError
from llm_observer.kernel.kafka import ClientValue, describe

logger = logging.getLogger(__name__)
# librdkafka's own log lines (connection failures while brokers are away…), through Python logging.
client_logger = logging.getLogger("llm_observer.kafka.librdkafka")

# Broker answers that no retry can turn into a success for this message as it is.
PERMANENT_CODES = frozenset(
    {
        KafkaError.MSG_SIZE_TOO_LARGE,
        KafkaError.INVALID_MSG_SIZE,
        KafkaError.RECORD_LIST_TOO_LARGE,
        KafkaError.INVALID_MSG,  # the broker's CORRUPT_MESSAGE
        KafkaError.INVALID_RECORD,
    }
)


@dataclass(frozen=True, slots=True)
class OutMessage:
    topic: str
    key: bytes | None
    value: bytes


class _Deliveries:
    """The fates of one ``deliver`` call's messages, reported from librdkafka's threads."""

    def __init__(self, loop: asyncio.AbstractEventLoop, count: int) -> None:
        self.loop = loop
        self.errors: list[KafkaError | None] = [None] * count
        self.remaining = count
        self.lock = threading.Lock()
        self.done: asyncio.Future[None] = loop.create_future()
        if count == 0:
            self.done.set_result(None)

    def report(self, index: int, error: KafkaError | None, _message: Message | None = None) -> None:
        with self.lock:
            self.errors[index] = error
            self.remaining -= 1
            last = self.remaining == 0
        if last:
            self.loop.call_soon_threadsafe(self._resolve)

    def _resolve(self) -> None:
        if not self.done.done():
            self.done.set_result(None)


class AsyncProducer:
    """One librdkafka producer and the thread that serves its delivery reports."""

    def __init__(self, config: dict[str, ClientValue], component_id: str) -> None:
        self.config = config
        self.component_id = component_id
        self._producer: Producer | None = None
        self._poller: threading.Thread | None = None
        self._stop = threading.Event()

    def start(self) -> None:
        if self._producer is not None:
            return
        try:
            self._producer = Producer({**self.config, "logger": client_logger})
        except (KafkaException, ValueError, TypeError) as exc:
            raise ConfigError(
                [(f"exporters.{self.component_id}", f"the Kafka producer refused its settings: {exc}")]
            ) from exc
        logger.info("%s: producing to %s", self.component_id, describe(self.config)["bootstrap.servers"])
        self._stop.clear()
        self._poller = threading.Thread(
            target=self._poll, args=(self._producer,), name=f"kafka-producer-{self.component_id}", daemon=True
        )
        self._poller.start()

    def _poll(self, producer: Producer) -> None:
        while not self._stop.is_set():
            producer.poll(0.1)

    def close(self, timeout: float) -> int:
        """Wait up to ``timeout`` seconds for queued messages, then stop; returns how many were left."""
        producer, self._producer = self._producer, None
        if producer is None:
            return 0
        left = producer.flush(timeout)
        self._stop.set()
        if self._poller is not None:
            self._poller.join()
            self._poller = None
        if left:
            # Their sends failed (or were cancelled) already, so the WAL still holds them: nothing is lost.
            producer.purge()
            producer.poll(0)
        return int(left)

    def restart(self) -> None:
        """A fresh producer after a fatal error (an idempotent producer that lost its sequence)."""
        self.close(0)
        self.start()

    async def deliver(self, messages: Sequence[OutMessage], timeout: float) -> list[KafkaError | None]:
        """Produce ``messages`` and wait until each is confirmed or failed; one error (or None) per message.

        Raises ``RetryableError`` when the brokers have not answered for all of them ``timeout`` seconds
        after the last was queued (librdkafka's ``message.timeout.ms`` normally reports them first)."""
        producer = self._producer
        if producer is None:
            raise RetryableError("the Kafka producer is not running")
        deliveries = _Deliveries(asyncio.get_running_loop(), len(messages))
        await asyncio.to_thread(self._produce_all, producer, messages, deliveries, timeout)
        try:
            async with asyncio.timeout(timeout + 5):
                await asyncio.shield(deliveries.done)
        except TimeoutError as exc:
            raise RetryableError(
                f"Kafka did not confirm {deliveries.remaining} of {len(messages)} messages in {timeout:g}s"
            ) from exc
        return deliveries.errors

    @staticmethod
    def _produce_all(
        producer: Producer, messages: Sequence[OutMessage], deliveries: _Deliveries, timeout: float
    ) -> None:
        deadline = time.monotonic() + timeout
        for index, message in enumerate(messages):
            callback = functools.partial(deliveries.report, index)
            while True:
                try:
                    producer.produce(message.topic, message.value, message.key, on_delivery=callback)
                    break
                except BufferError:
                    # The local queue is full (the brokers are slow or away): wait for room, not for ever.
                    if time.monotonic() > deadline:
                        deliveries.report(index, KafkaError(KafkaError._QUEUE_FULL))
                        break
                    producer.poll(0.05)
                except KafkaException as exc:
                    deliveries.report(index, exc.args[0])
                    break
