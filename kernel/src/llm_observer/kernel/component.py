"""The contracts every component implements, and the factories that create them.

A component type is a *factory*: a type name, a pydantic config model (its defaults are the component's
defaults) and a create function. Factories are found through the entry-point groups
``llm_observer.receivers``, ``.processors``, ``.exporters``, ``.connectors`` and ``.extensions``; the
collector's runtime imports none of them.

* A receiver accepts data from the outside and hands each request to an ``Ingest`` (the WAL).
* A processor is a function ``SpanBatch -> SpanBatch`` (it may change the batch in place and return it). It
  must be **deterministic**: the same WAL range gives the same batch, because an exporter that fell behind
  re-processes its range on its own. A stateful one also implements ``Component`` and is started before,
  and shut down after, the pipeline that runs it.
* An exporter implements ``send(batch)``; the collector's exporter helper adds the WAL cursor, retry with
  backoff, timeout and self-metrics. ``send`` raises ``RetryableError`` for passing failures and
  ``PermanentError`` for data that can never be accepted. Exporters share one batch: they **must not
  change it** (every exporter of a pipeline receives the same object).
* A connector consumes spans as an exporter of one pipeline and produces another signal for the pipelines
  that name it as a receiver (``spanmetrics`` derives metrics from spans).
* An extension runs beside the pipelines (the query service); ``service.extensions`` lists which run.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar, runtime_checkable

from prometheus_client.metrics_core import Metric

from llm_observer.kernel.batch import IngestMeta as IngestMeta
from llm_observer.kernel.batch import SpanBatch
from llm_observer.kernel.config import ComponentConfig as ComponentConfig
from llm_observer.kernel.limits import UNLIMITED, TimeLimits

if TYPE_CHECKING:
    from llm_observer.kernel.auth import AuthConfig
    from llm_observer.kernel.telemetry import Telemetry


@runtime_checkable
class Component(Protocol):
    """Lifecycle: ``start`` and ``shutdown`` are idempotent, and ``shutdown`` is safe before ``start``."""

    async def start(self) -> None: ...

    async def shutdown(self) -> None: ...


Processor = Callable[[SpanBatch], SpanBatch]


@runtime_checkable
class Exporter(Component, Protocol):
    async def send(self, batch: SpanBatch) -> None:
        """Deliver the whole batch, or raise ``RetryableError`` / ``PermanentError``."""
        ...


# Signals carried in the WAL record header.
SIGNAL_TRACES = 1
SIGNAL_METRICS = 2
SIGNAL_LOGS = 3
SIGNAL_NAMES = {SIGNAL_TRACES: "traces", SIGNAL_METRICS: "metrics", SIGNAL_LOGS: "logs"}


class Ingest(Protocol):
    """Where receivers hand accepted requests. Returns once the request is durable.

    Raises ``Backpressure`` when over a limit; the receiver answers RESOURCE_EXHAUSTED / 429.
    """

    async def __call__(self, signal: int, payload: bytes, meta: IngestMeta | None = None) -> None: ...


Authenticate = Callable[[str | None], IngestMeta | None]
"""Given the Authorization header value, the tenant the data must go to (None: take it from the data).
Raises ``Unauthenticated`` / ``PermissionDenied``."""


class Receiver(Component, Protocol):
    pass


AsgiApp = Callable[
    [dict[str, Any], Callable[[], Awaitable[dict[str, Any]]], Callable[[dict[str, Any]], Awaitable[None]]],
    Awaitable[None],
]


@runtime_checkable
class HttpRoutes(Protocol):
    """A receiver whose HTTP routes other listeners of the same process also serve: the query service
    serves the ``rest`` receiver's JSON ingest on its own port."""

    def http_routes(self) -> Mapping[str, AsgiApp]: ...

    def openapi(self) -> Mapping[str, Any]:
        """The routes' OpenAPI document: ``{"paths": {...}, "components": {"schemas": {...}}}``."""
        ...


class MetricsSource(Protocol):
    """Metrics to expose, in prometheus_client's collector shape (a ``CollectorRegistry`` is one)."""

    def collect(self) -> Iterable[Metric]: ...


@runtime_checkable
class MetricsExporter(Component, Protocol):
    """An exporter of a metrics pipeline: exposes what its sources hold whenever it is scraped."""

    def expose(self, source: MetricsSource) -> None: ...


@runtime_checkable
class Connector(Exporter, Protocol):
    """Consumes spans as an exporter of traces pipelines; the metrics pipelines that name it as a receiver
    expose what it derives."""

    def metrics(self) -> MetricsSource: ...


class Extension(Component, Protocol):
    pass


@dataclass(frozen=True, slots=True)
class Reference:
    """A config field that names another component: validated before anything starts."""

    field: str  # the field's path inside the component's config, e.g. ``storage``
    kind: str  # receivers | processors | exporters | connectors | extensions
    component_id: str
    # The config type the named component must have (e.g. storage settings the referrer reads with).
    expects: type[Any] | None = None


@dataclass(slots=True)
class CreateContext:
    """What a factory's create function is given besides its config."""

    component_id: str
    data_dir: Path
    telemetry: Telemetry
    logger: logging.Logger
    ingest: Ingest | None = None  # receivers and extensions that accept data
    auth: AuthConfig | None = None  # the top-level ``auth:`` section
    # Extensions: the running receivers that offer HTTP routes to be served on their listeners.
    http_routes: Sequence[HttpRoutes] = ()
    # The validated config of every component the file defines, by ``kind`` then id: how a component reads
    # the settings of one it names (the query service reads its storage's settings from the exporter).
    configs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)
    # Receivers: the times the stores their pipelines feed can hold (the strictest of the exporters'
    # ``Factory.time_limits``); a receiver refuses a span, event or log record outside them.
    time_limits: TimeLimits = UNLIMITED
    # Receivers: ``(head, delivered)`` of the WAL — the position the next record gets, and the position below
    # which every pipeline has delivered every record. A receiver reading a replayable source (Kafka) lets
    # the source forget a record only once it is delivered, not merely written.
    wal_progress: Callable[[], tuple[int, int]] | None = None
    # Extensions: the running extensions of the process by id — the live dict, so an extension finds another
    # (the query service finds alerting) at use time, whichever order they start in.
    extensions: Mapping[str, Any] = field(default_factory=dict)
    # Extensions: re-read the config file and give every running extension that has ``async def
    # reconfigure(config)`` its new validated config (what SIGHUP does). Raises ``ConfigError`` for a bad
    # file, and the running configs are kept. None: the process has no reload.
    reload_config: Callable[[], Awaitable[None]] | None = None


C = TypeVar("C", bound=ComponentConfig)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Factory(Generic[C, T]):
    """A component type: name, config model (its defaults are the defaults) and create function."""

    type_name: str
    config_model: type[C]
    create: Callable[[CreateContext, C], T]
    # Which other components a config names; the loader checks that each exists, with its YAML path.
    references: Callable[[C], Sequence[Reference]] | None = None
    # What the component takes in: ``traces`` (spans: receivers' output, processors, span exporters and
    # connectors), ``metrics`` or ``logs``; an exporter that takes several names them all, e.g.
    # ``("traces", "logs", "metrics")`` (see ``signals_of``).
    signal: str | tuple[str, ...] = "traces"
    # How an exporter that takes ``metrics`` gets them. False: it exposes what connectors derive, and is
    # scraped (``MetricsExporter.expose``, ``prometheus``). True: it is sent the OTLP metrics receivers
    # accepted (``MetricsPushExporter.send_metrics`` in ``signals.py``: storage, forwarding).
    push_metrics: bool = False
    # A processor that also reads the OTLP log records of its pipeline's WAL range (``batch.logs``): the
    # receivers' logs are then written to the WAL.
    reads_logs: bool = False
    # An exporter that stores spans: the times its store can hold and keeps, given its config (a retention
    # of ``ttl_days``, say). The receivers of the pipelines it is in refuse spans outside them, with a reason,
    # rather than acknowledge what the store would drop.
    time_limits: Callable[[C], TimeLimits] | None = None


def signals_of(factory: Factory[Any, Any]) -> tuple[str, ...]:
    """The signals ``factory`` takes, as a tuple whichever way it declares them."""
    return (factory.signal,) if isinstance(factory.signal, str) else tuple(factory.signal)


ReceiverFactory = Factory[Any, Receiver]
ProcessorFactory = Factory[Any, Processor]
ExporterFactory = Factory[Any, Exporter]
ExtensionFactory = Factory[Any, Extension]
ConnectorFactory = Factory[Any, Connector]

AsyncCallback = Callable[[], Awaitable[None]]
