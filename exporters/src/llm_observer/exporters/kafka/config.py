"""Configuration of the Kafka exporter: the shared client settings plus what a producer needs."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from llm_observer.kernel.config import ComponentConfig
from llm_observer.kernel.kafka import KafkaClientSettings

Encoding = Literal["otlp_proto", "otlp_json"]
"""How a message's value is written: OTLP protobuf (``TracesData``, ``LogsData``, ``MetricsData``) or the
same as OTLP/JSON; the names the OpenTelemetry Collector's Kafka components use."""


class KafkaProducerSettings(ComponentConfig):
    """``producer``: what the OpenTelemetry Collector's Kafka exporter calls its producer settings."""

    compression: Literal["none", "gzip", "snappy", "lz4", "zstd"] = "lz4"
    max_message_bytes: int = Field(
        1_000_000,
        gt=0,
        description="the largest message produced; a trace that encodes bigger is refused (dead-lettered)",
    )
    linger_ms: float = Field(
        5, ge=0, description="how long the producer waits to fill a request batch to a partition"
    )


class KafkaExporterConfig(KafkaClientSettings):
    """Where processed spans, log and metric requests are produced, and how."""

    topic: str = Field("otlp_spans", min_length=1, description="the topic of spans, one message per trace")
    logs_topic: str = Field("otlp_logs", min_length=1)
    metrics_topic: str = Field("otlp_metrics", min_length=1)
    encoding: Encoding = "otlp_proto"
    producer: KafkaProducerSettings = KafkaProducerSettings()
    timeout: float = Field(
        10,
        gt=0,
        description="seconds a message may wait for the brokers before the send fails and is retried; keep it "
        "below the collector's delivery timeout_seconds so a send ends on its own",
    )
