"""A real Apache Kafka broker for the tests: KRaft combined mode (one process is broker and controller) on
free loopback ports, with its own log dir.

The jars come from Maven Central through ``tests/support/kafka/pom.xml`` (``kafka_2.13`` and
``kafka-tools``, 4.1.1) and are cached outside the clone, in ``~/.cache/llm-observer/kafka-4.1.1/lib``;
``kafka_lib()`` installs them when missing (the test command runs it first:
``python -c "from tests.support.kafka import kafka_lib; kafka_lib()"``).

- ``kafka_broker`` (a fixture: import it into the test module's conftest or module) → a started
  ``KafkaBroker``, stopped when the module's tests end. These tests are slow: they run when
  ``LLM_OBSERVER_SLOW_TESTS=1``.
- ``broker.create_topic(name, partitions)``, ``broker.stop()`` (graceful), ``broker.kill()`` (SIGKILL),
  ``broker.start()`` again on the same ports and data, ``broker.consume_all(topic)``.
"""

from __future__ import annotations

import base64
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from tests.support.ports import free_port

KAFKA_VERSION = "4.1.1"
POM = Path(__file__).resolve().parent / "kafka" / "pom.xml"
SLOW = os.environ.get("LLM_OBSERVER_SLOW_TESTS") != "1"
SKIP_SLOW = pytest.mark.skipif(SLOW, reason="slow (starts a Kafka broker): set LLM_OBSERVER_SLOW_TESTS=1")


def cache_dir() -> Path:
    return Path.home() / ".cache" / "llm-observer" / f"kafka-{KAFKA_VERSION}"


def kafka_lib() -> Path:
    """The folder of Kafka's jars, copied from Maven Central by ``mvn`` the first time (cached)."""
    lib = cache_dir() / "lib"
    if (lib / ".complete").exists():
        return lib
    if shutil.which("mvn") is None:
        raise RuntimeError("Maven (mvn) is needed once, to fetch the Kafka jars into " + str(lib))
    staging = Path(tempfile.mkdtemp(prefix="kafka-lib-", dir=lib.parent if lib.parent.exists() else None))
    try:
        done = subprocess.run(
            [
                "mvn",
                "-q",
                "-B",
                "-f",
                str(POM),
                "dependency:copy-dependencies",
                f"-DoutputDirectory={staging}",
            ],
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"mvn could not fetch the Kafka jars:\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
            )
        (staging / ".complete").touch()
        lib.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(lib, ignore_errors=True)
        staging.rename(lib)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return lib


def _cluster_id() -> str:
    # Kafka's cluster ids are a UUID in URL-safe base64 without padding (what `random-uuid` prints); one may
    # start with '-', hence `--cluster-id=ID` on the command line.
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()


@dataclass(frozen=True, slots=True)
class Consumed:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes


class KafkaBroker:
    """One KRaft broker+controller process on ``127.0.0.1:port`` (controller on ``controller_port``)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.controller_port = free_port()
        self.log_dir = root / "data"
        self.properties = root / "server.properties"
        self.output = root / "broker.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _write_properties(self) -> None:
        settings = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.log_dir),
            "num.partitions": "1",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "4",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            # Tests join consumer groups one after another: no reason to wait for more members.
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "true",
        }
        self.properties.write_text("".join(f"{key}={value}\n" for key, value in settings.items()))

    def _java(self, *args: str, heap: str = "-Xmx512m") -> list[str]:
        return [
            "java",
            heap,
            "-Dlog4j2.level=WARN",
            "-cp",
            f"{kafka_lib()}/*",
            *args,
        ]

    def format(self) -> None:
        """Write the properties and format the log dir (KRaft's storage step), once per broker."""
        self.root.mkdir(parents=True, exist_ok=True)
        self._write_properties()
        done = subprocess.run(
            self._java(
                "kafka.tools.StorageTool",
                "format",
                f"--cluster-id={_cluster_id()}",
                "-c",
                str(self.properties),
            ),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, f"kafka storage format failed:\n{done.stdout}{done.stderr}"

    def start(self, timeout: float = 90) -> None:
        """Start the broker (formatting its storage the first time) and wait until it answers."""
        if self._process is not None and self._process.poll() is None:
            return
        if not (self.log_dir / "meta.properties").exists():
            self.format()
        with self.output.open("ab") as out:
            self._process = subprocess.Popen(
                self._java("kafka.Kafka", str(self.properties)),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.wait_ready(timeout)

    def wait_ready(self, timeout: float) -> None:
        admin = AdminClient({"bootstrap.servers": self.bootstrap, "log_level": 0})
        deadline = time.monotonic() + timeout
        while True:
            assert self._process is not None
            if self._process.poll() is not None:
                raise AssertionError(f"the Kafka broker exited ({self._process.returncode}):\n{self.tail()}")
            try:
                metadata = admin.list_topics(timeout=2)
                if metadata.brokers:
                    return
            except KafkaException:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"the Kafka broker did not start in {timeout:.0f}s:\n{self.tail()}")
            time.sleep(0.2)

    def tail(self, chars: int = 4000) -> str:
        return self.output.read_text(errors="replace")[-chars:] if self.output.exists() else ""

    def stop(self, timeout: float = 60) -> None:
        """A graceful shutdown (SIGTERM), killed if it takes longer than ``timeout``."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(30)

    def kill(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait(30)

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    # --- topics and messages ----------------------------------------------------------------------

    def admin(self) -> AdminClient:
        return AdminClient({"bootstrap.servers": self.bootstrap, "log_level": 0})

    def create_topic(self, name: str, partitions: int = 1, **config: str) -> None:
        admin = self.admin()  # held until the result: a collected client cancels its requests
        futures = admin.create_topics(
            [NewTopic(name, num_partitions=partitions, replication_factor=1, config=config)],
            operation_timeout=30,
        )
        futures[name].result(timeout=60)

    def consume_all(self, topic: str, timeout: float = 30) -> list[Consumed]:
        """Every message of ``topic`` now, in partition then offset order (reads until each partition's end)."""
        consumer = Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": f"tests-{uuid.uuid4().hex}",
                "enable.auto.commit": False,
                "enable.partition.eof": True,
                "auto.offset.reset": "earliest",
            }
        )
        try:
            metadata = consumer.list_topics(topic, timeout=10)
            partitions = sorted(metadata.topics[topic].partitions)
            ends = {}
            for partition in partitions:
                _, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
                ends[partition] = high
            waiting = {p for p in partitions if ends[p] > 0}
            consumer.assign([TopicPartition(topic, p, 0) for p in waiting])
            out: list[Consumed] = []
            deadline = time.monotonic() + timeout
            while waiting:
                if time.monotonic() > deadline:
                    raise AssertionError(
                        f"timed out reading {topic}: partitions {sorted(waiting)} not at their end"
                    )
                message = consumer.poll(0.5)
                if message is None:
                    continue
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        waiting.discard(message.partition())
                        continue
                    raise AssertionError(f"reading {topic}: {error}")
                out.append(
                    Consumed(
                        topic, message.partition(), message.offset(), message.key(), message.value() or b""
                    )
                )
                if message.offset() + 1 >= ends[message.partition()]:
                    waiting.discard(message.partition())
            return sorted(out, key=lambda m: (m.partition, m.offset))
        finally:
            consumer.close()

    def committed(self, group_id: str, topic: str, partitions: int) -> list[TopicPartition]:
        """The offsets (with metadata) ``group_id`` committed for ``topic``'s partitions."""
        consumer = Consumer({"bootstrap.servers": self.bootstrap, "group.id": group_id})
        try:
            return list(consumer.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10))
        finally:
            consumer.close()


@pytest.fixture(scope="module")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    """A started broker for one test module (a fresh log dir), stopped when its tests end."""
    if SLOW:
        pytest.skip("slow (starts a Kafka broker): set LLM_OBSERVER_SLOW_TESTS=1")
    broker = KafkaBroker(tmp_path_factory.mktemp("kafka"))
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


__all__ = ["SKIP_SLOW", "Consumed", "KafkaBroker", "cache_dir", "kafka_broker", "kafka_lib"]
