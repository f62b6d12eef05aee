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
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar, runtime_checkable

from pydantic import BaseModel, ConfigDict

from llm_observer.kernel.batch import SpanBatch

if TYPE_CHECKING:
    from llm_observer.kernel.auth import AuthConfig
    from llm_observer.kernel.telemetry import Telemetry


class ComponentConfig(BaseModel):
    """Base of every component config: unknown keys are errors, values are frozen after load."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@runtime_checkable
class Component(Protocol):
    """Lifecycle: ``start`` and ``shutdown`` are idempotent, and ``shutdown`` is safe before ``start``."""

    async def start(self) -> None: ...

    async def shutdown(self) -> None: ...


Processor = Callable[[SpanBatch], SpanBatch]


class Exporter(Component, Protocol):
    async def send(self, batch: SpanBatch) -> None:
        """Deliver the whole batch, or raise ``RetryableError`` / ``PermanentError``."""
        ...


# Signals carried in the WAL record header.
SIGNAL_TRACES = 1
SIGNAL_METRICS = 2
SIGNAL_LOGS = 3
SIGNAL_NAMES = {SIGNAL_TRACES: "traces", SIGNAL_METRICS: "metrics", SIGNAL_LOGS: "logs"}


@dataclass(frozen=True, slots=True)
class IngestMeta:
    """What the receiver knows about a request beyond its bytes (kept in the WAL beside them)."""

    organization_id: str | None = None
    project_id: str | None = None
    # When the key may write to several projects: the data's own project must be one of them.
    allowed_projects: tuple[str, ...] | None = None


class Ingest(Protocol):
    """Where receivers hand accepted requests. Returns once the request is durable.

    Raises ``Backpressure`` when over a limit; the receiver answers RESOURCE_EXHAUSTED / 429.
    """

    async def __call__(self, signal: int, payload: bytes, meta: IngestMeta | None = None) -> None: ...


class Receiver(Component, Protocol):
    pass


class Extension(Component, Protocol):
    pass


@dataclass(frozen=True, slots=True)
class Reference:
    """A config field that names another component: validated before anything starts."""

    field: str  # the field's path inside the component's config, e.g. ``storage``
    kind: str  # receivers | processors | exporters | connectors | extensions
    component_id: str


@dataclass(slots=True)
class CreateContext:
    """What a factory's create function is given besides its config."""

    component_id: str
    data_dir: Path
    telemetry: Telemetry
    logger: logging.Logger
    ingest: Ingest | None = None  # receivers and extensions that accept data
    auth: AuthConfig | None = None  # the top-level ``auth:`` section
    # The validated config of every component the file defines, by ``kind`` then id: how a component reads
    # the settings of one it names (the query service reads its storage's settings from the exporter).
    configs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)


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


ReceiverFactory = Factory[Any, Receiver]
ProcessorFactory = Factory[Any, Processor]
ExporterFactory = Factory[Any, Exporter]
ExtensionFactory = Factory[Any, Extension]

AsyncCallback = Callable[[], Awaitable[None]]
