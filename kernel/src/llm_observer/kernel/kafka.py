"""Kafka client settings shared by the Kafka exporter and the Kafka receiver.

Keys follow the OpenTelemetry Collector's Kafka components (``brokers``, ``client_id``, ``auth.tls``,
``auth.sasl``), so a Collector user can move a config over; ``librdkafka`` passes any other client setting
through unchanged (``{"socket.keepalive.enable": true}``), since both sides run on librdkafka through
confluent-kafka. ``client_config`` turns the settings into the dict librdkafka takes. ``ConsumerLag`` is
the receiver's lag gauge, kept here beside the process's other self-metrics helpers.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Literal
from weakref import WeakKeyDictionary

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from pydantic import Field, field_validator, model_validator

from llm_observer.kernel.config import ComponentConfig
from llm_observer.kernel.endpoints import parse_endpoint

ClientValue = str | int | float | bool
"""A librdkafka setting's value (confluent-kafka takes native types and strings alike)."""


class KafkaTlsSettings(ComponentConfig):
    """``auth.tls``: encrypt the connection; with ``cert_file`` and ``key_file`` also authenticate by
    client certificate (mutual TLS)."""

    ca_file: Path | None = Field(None, description="PEM CA bundle that signs the brokers' certificates")
    cert_file: Path | None = Field(None, description="PEM client certificate (mutual TLS)")
    key_file: Path | None = Field(None, description="PEM private key of cert_file")
    insecure_skip_verify: bool = Field(
        False, description="accept any broker certificate and host name (tests only: no protection)"
    )

    @model_validator(mode="after")
    def _cert_and_key_together(self) -> KafkaTlsSettings:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together (mutual TLS needs both)")
        return self


class KafkaSaslSettings(ComponentConfig):
    """``auth.sasl``: user name and password, sent with the mechanism the brokers' listener expects."""

    mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "PLAIN"
    username: str = Field(min_length=1)
    password: str


class KafkaAuthSettings(ComponentConfig):
    tls: KafkaTlsSettings | None = None
    sasl: KafkaSaslSettings | None = None


class KafkaClientSettings(ComponentConfig):
    """Where the brokers are and how to reach them: the part of a Kafka component's config that is the same
    for producing and consuming."""

    brokers: list[str] = Field(
        default_factory=lambda: ["127.0.0.1:9092"], min_length=1, description="bootstrap brokers, host:port"
    )
    client_id: str = Field("llm-observer", min_length=1, description="the client.id brokers log and quota by")
    auth: KafkaAuthSettings = KafkaAuthSettings()
    librdkafka: dict[str, ClientValue] = Field(
        default_factory=dict,
        description="any other librdkafka setting, passed through as given (it wins over ours)",
    )

    @field_validator("brokers")
    @classmethod
    def _brokers_are_endpoints(cls, brokers: list[str]) -> list[str]:
        for broker in brokers:
            parse_endpoint(broker)
        return brokers

    @field_validator("librdkafka")
    @classmethod
    def _keys_are_names(cls, settings: dict[str, ClientValue]) -> dict[str, ClientValue]:
        for key in settings:
            if not key or key.strip() != key or " " in key:
                raise ValueError(f"{key!r} is not a librdkafka setting name")
        return settings


def security_protocol(auth: KafkaAuthSettings) -> str:
    """librdkafka's ``security.protocol`` for what ``auth`` configures."""
    if auth.sasl is not None:
        return "SASL_SSL" if auth.tls is not None else "SASL_PLAINTEXT"
    return "SSL" if auth.tls is not None else "PLAINTEXT"


def client_config(settings: KafkaClientSettings) -> dict[str, ClientValue]:
    """The librdkafka settings for ``settings``; a component adds its own producer or consumer keys and then
    ``settings.librdkafka`` over them (see ``with_passthrough``)."""
    out: dict[str, ClientValue] = {
        "bootstrap.servers": ",".join(settings.brokers),
        "client.id": settings.client_id,
        "security.protocol": security_protocol(settings.auth),
    }
    tls = settings.auth.tls
    if tls is not None:
        if tls.ca_file is not None:
            out["ssl.ca.location"] = str(tls.ca_file)
        if tls.cert_file is not None and tls.key_file is not None:
            out["ssl.certificate.location"] = str(tls.cert_file)
            out["ssl.key.location"] = str(tls.key_file)
        if tls.insecure_skip_verify:
            out["enable.ssl.certificate.verification"] = False
            out["ssl.endpoint.identification.algorithm"] = "none"
    sasl = settings.auth.sasl
    if sasl is not None:
        out["sasl.mechanism"] = sasl.mechanism
        out["sasl.username"] = sasl.username
        out["sasl.password"] = sasl.password
    return out


def with_passthrough(
    settings: KafkaClientSettings, component: dict[str, ClientValue]
) -> dict[str, ClientValue]:
    """``client_config(settings)``, then a component's own keys, then the user's ``librdkafka`` keys, which
    win: the escape hatch must be able to override anything we chose."""
    return {**client_config(settings), **component, **settings.librdkafka}


def describe(config: dict[str, ClientValue]) -> dict[str, ClientValue]:
    """``config`` fit for a log line or an error message: secrets masked."""
    return {key: ("***" if "password" in key or "secret" in key else value) for key, value in config.items()}


class ConsumerLag:
    """``llm_observer_kafka_consumer_lag{component,topic,partition}``: messages in Kafka not yet in the WAL,
    per assigned partition. One per metrics registry (a prometheus_client collector), shared by the
    process's Kafka receivers, each of which sets and clears its own partitions."""

    _by_registry: WeakKeyDictionary[CollectorRegistry, ConsumerLag] = WeakKeyDictionary()

    def __init__(self) -> None:
        self.values: dict[tuple[str, str, int], int] = {}

    @classmethod
    def of(cls, registry: CollectorRegistry) -> ConsumerLag:
        lag = cls._by_registry.get(registry)
        if lag is None:
            lag = cls._by_registry[registry] = cls()
            registry.register(lag)
        return lag

    def clear(self, component_id: str) -> None:
        for key in [k for k in self.values if k[0] == component_id]:
            self.values.pop(key, None)

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "llm_observer_kafka_consumer_lag",
            "Messages of an assigned Kafka partition not yet written to the WAL (high watermark minus the "
            "end of the last chunk appended).",
            labels=["component", "topic", "partition"],
        )
        for (component_id, topic, partition), lag in sorted(self.values.items()):
            family.add_metric([component_id, topic, str(partition)], lag)
        yield family


__all__ = [
    "ClientValue",
    "ConsumerLag",
    "KafkaAuthSettings",
    "KafkaClientSettings",
    "KafkaSaslSettings",
    "KafkaTlsSettings",
    "client_config",
    "describe",
    "security_protocol",
    "with_passthrough",
]
