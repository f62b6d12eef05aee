"""The scale-out path, all real: an edge collector (OTLP in, WAL, processors, Kafka out) → a Kafka topic of four
partitions → two storage collectors in one consumer group → one ClickHouse store (chDB behind ClickHouse's
HTTP interface, ``tests/support/chdb_http.py``, since no ClickHouse server installs here).

A storage collector is SIGKILLed mid-stream and never comes back: the survivor takes its partitions over,
re-reads what the dead one had not delivered, and every acknowledged span is stored exactly once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from confluent_kafka import Consumer, TopicPartition

from llm_observer.collector.testing import genai_request
from tests.support import free_port, wait_until
from tests.support.chdb_http import serving
from tests.support.kafka import KafkaBroker, kafka_broker

__all__ = ["kafka_broker"]  # the fixture, used by name

_COMMAND = (sys.executable, "-m", "llm_observer.collector.cli", "collector")
EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
# Only the spans pipeline under test runs in each process (the default's other pipelines would all want the
# same Prometheus port).
_NO_OTHER_PIPELINES = {"metrics/genai": None, "logs": None, "metrics/otlp": None}


class _Collector:
    def __init__(self, root: Path, name: str, config: dict[str, Any]) -> None:
        root.mkdir(parents=True, exist_ok=True)
        path = root / "collector.yaml"
        path.write_text(yaml.safe_dump(config))
        self.log = root / "collector.log"
        self.name = name
        self.proc = subprocess.Popen(
            [*_COMMAND, "--config", str(path), "--data-dir", str(root / "data")],
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
        )

    def alive(self) -> bool:
        assert self.proc.poll() is None, f"{self.name} exited:\n{self.log.read_text()[-3000:]}"
        return True

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _query(url: str, sql: str) -> list[dict[str, Any]]:
    request = urllib.request.Request(
        f"{url}/?{urllib.parse.urlencode({'query': sql + ' FORMAT JSONEachRow'})}", method="POST"
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        return [json.loads(line) for line in answer.read().decode().splitlines() if line]


def _listening(port: int, collector: _Collector) -> bool:
    collector.alive()
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        try:
            grpc.channel_ready_future(channel).result(timeout=0.5)
        except grpc.FutureTimeoutError:
            return False
        return True


@pytest.fixture
def store(tmp_path: Path) -> Iterator[str]:
    with serving(tmp_path / "clickhouse") as url:
        yield url


def test_a_storage_collector_killed_mid_stream_loses_and_duplicates_nothing(
    tmp_path: Path, kafka_broker: KafkaBroker, store: str
) -> None:
    topic = "otlp_spans_scale_out"
    kafka_broker.create_topic(topic, partitions=4)
    kafka = {"brokers": [kafka_broker.bootstrap], "topic": topic}
    grpc_port = free_port()
    edge = _Collector(
        tmp_path / "edge",
        "edge",
        {
            "receivers": {
                "otlp": {
                    "protocols": {"grpc": {"endpoint": f"127.0.0.1:{grpc_port}"}, "http": {"enabled": False}}
                }
            },
            "exporters": {"kafka": kafka, "prometheus": {"endpoint": "127.0.0.1:0"}},
            # The edge processes (normalise, cost, tenant...) as by default and produces to Kafka.
            "service": {
                "pipelines": {
                    "traces": {"receivers": ["otlp"], "exporters": ["kafka"]},
                    **_NO_OTHER_PIPELINES,
                }
            },
        },
    )

    def storage(name: str) -> _Collector:
        return _Collector(
            tmp_path / name,
            name,
            {
                "receivers": {
                    "kafka": {
                        **kafka,
                        "logs_topic": None,
                        "metrics_topic": None,
                        "group_id": "storage",
                        # A dead member is noticed quickly, so the test does not wait long for the takeover.
                        "session_timeout": 6,
                        "heartbeat_interval": 1,
                    }
                },
                "exporters": {"clickhouse": {"endpoint": store}, "prometheus": {"endpoint": "127.0.0.1:0"}},
                "service": {
                    "delivery": {"linger_seconds": 0.05, "min_batch_mib": 0.2},
                    "pipelines": {
                        # Processed at the edge already: the storage tier stores.
                        "traces": {"receivers": ["kafka"], "processors": [], "exporters": ["clickhouse"]},
                        **_NO_OTHER_PIPELINES,
                    },
                },
            },
        )

    count = lambda: _query(store, "SELECT count() AS n FROM otel.otel_traces")[0]["n"]  # noqa: E731
    first = storage("storage-a")
    collectors = [edge, first]
    acked: list[bytes] = []
    stop = threading.Event()
    try:
        # One at a time: the first creates the schema, the second finds it.
        wait_until(
            lambda: first.alive() and bool(_query(store, "EXISTS TABLE otel.otel_traces")[0]["result"]),
            timeout=90,
            what="the first storage collector's schema",
        )
        second = storage("storage-b")
        collectors.append(second)
        wait_until(lambda: _listening(grpc_port, edge), timeout=90, what="the edge collector to listen")

        def send() -> None:
            with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
                export = channel.unary_unary(EXPORT)
                while not stop.is_set() and len(acked) < 12_000:
                    request = genai_request(traces=20)
                    ids = [
                        s.span_id for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans
                    ]
                    export(request.SerializeToString(), timeout=30)
                    acked.extend(ids)

        sender = threading.Thread(target=send)
        sender.start()
        wait_until(lambda: second.alive() and count() >= 2_000, timeout=120, what="storage under way")
        os.kill(first.proc.pid, signal.SIGKILL)  # for good: its WAL is never read again
        first.proc.wait()
        sender.join(timeout=300)
        assert not sender.is_alive() and len(acked) >= 12_000

        wanted = {span_id.hex() for span_id in acked}

        def all_stored() -> bool:
            second.alive()
            return int(_query(store, "SELECT uniqExact(SpanId) AS n FROM otel.otel_traces")[0]["n"]) >= len(
                wanted
            )

        wait_until(all_stored, timeout=180, interval=0.5, what="every acknowledged span stored")

        # The survivor reads all four partitions to their ends, and every chunk it reads is delivered: the
        # group's offsets reach the ends with no chunk left named in flight. Waited for while it runs: the dead
        # member may have stored its last chunks itself before the kill, so everything can be stored before the
        # group (after its 6 s session timeout) hands the survivor the dead member's partitions.
        def ends() -> list[tuple[int, str]]:
            consumer = Consumer({"bootstrap.servers": kafka_broker.bootstrap, "group.id": "scale-out-check"})
            try:
                return [
                    (consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1], "")
                    for p in range(4)
                ]
            finally:
                consumer.close()

        def offsets() -> list[tuple[int, str]]:
            second.alive()
            return [(tp.offset, tp.metadata or "") for tp in kafka_broker.committed("storage", topic, 4)]

        wait_until(
            lambda: offsets() == ends(),
            timeout=120,
            interval=0.5,
            what=lambda: f"the group's offsets {offsets()} at the partitions' ends {ends()}",
        )
    finally:
        stop.set()
        for collector in collectors:
            collector.stop()
    stored = _query(store, "SELECT lower(SpanId) AS id, count() AS n FROM otel.otel_traces GROUP BY id")
    twice = [row for row in stored if int(row["n"]) > 1]
    assert not twice, f"{len(twice)} spans stored more than once"
    assert wanted <= {row["id"] for row in stored}
