"""The contracts every component implements, and the factories that create them.

A component type is a *factory*: a type name, a pydantic config model (its defaults are the component's
defaults) and a create function. Factories are found through the entry-point groups
``llm_observer.receivers``, ``llm_observer.processors`` and ``llm_observer.exporters``.

* A processor is a plain function ``SpanBatch -> SpanBatch`` (it may change the batch in place and
  return it). A stateful one may also implement ``Component``.
* An exporter implements ``send(batch)``; the collector's exporter helper adds the WAL cursor, retry with
  backoff, timeout and self-metrics. ``send`` raises ``RetryableError`` for passing failures and
  ``PermanentError`` for data that can never be accepted.
* A receiver accepts data from the outside and hands each request to an ``Ingest`` (the WAL).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar, runtime_checkable

from pydantic import BaseModel, ConfigDict

from llm_observer.kernel.batch import SpanBatch

if TYPE_CHECKING:
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


@dataclass(slots=True)
class CreateContext:
    """What a factory's create function is given besides its config."""

    component_id: str
    data_dir: Path
    telemetry: Telemetry
    logger: logging.Logger
    ingest: Ingest | None = None  # receivers only
    extras: dict[str, Any] = field(default_factory=dict)


C = TypeVar("C", bound=ComponentConfig)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Factory(Generic[C, T]):
    """A component type: name, config model (its defaults are the defaults) and create function."""

    type_name: str
    config_model: type[C]
    create: Callable[[CreateContext, C], T]


ReceiverFactory = Factory[Any, Receiver]
ProcessorFactory = Factory[Any, Processor]
ExporterFactory = Factory[Any, Exporter]

AsyncCallback = Callable[[], Awaitable[None]]
