"""The Kafka exporter (entry point ``kafka``): processed spans, and OTLP logs and metrics, to Kafka topics.

One message per trace (key: the trace id, so a trace stays on one partition and in order) holding OTLP
``TracesData`` of the spans as the pipeline's processors left them; logs and metrics go to their own topics
as the requests were received. A send returns only once the brokers confirmed every message, so the
exporter's WAL cursor never passes what Kafka does not hold.
"""

from __future__ import annotations

from llm_observer.exporters.kafka.config import KafkaExporterConfig, KafkaProducerSettings
from llm_observer.exporters.kafka.exporter import KafkaExporter, create, messages_by_trace
from llm_observer.kernel.component import Factory

factory: Factory[KafkaExporterConfig, KafkaExporter] = Factory(
    "kafka", KafkaExporterConfig, create, signal=("traces", "logs", "metrics"), push_metrics=True
)

__all__ = [
    "KafkaExporter",
    "KafkaExporterConfig",
    "KafkaProducerSettings",
    "create",
    "factory",
    "messages_by_trace",
]
