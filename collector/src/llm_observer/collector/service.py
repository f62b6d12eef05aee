"""Assembles a running collector (and, for ``up``, its extensions: the query service) from a validated
``Config``. Every component comes from a factory found through entry points; nothing here imports one.

Start order: WAL → exporters and connectors → processors → pipelines (traces, logs, and metrics pipelines
fed by receivers) → metrics pipelines fed by connectors → receivers → extensions. Shutdown runs backwards: receivers and extensions stop taking data, the pipelines drain what the
WAL holds (bounded by ``service.delivery.drain_timeout_seconds``; whatever is left is replayed at the next
start), then processors, exporters and the WAL close.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llm_observer.collector.config import (
    Config,
    ExporterDeliveryConfig,
    PipelineConfig,
    load_config,
    pushes_metrics,
)
from llm_observer.collector.deadletter import DeadLetterStore
from llm_observer.collector.pipeline import (
    Decoder,
    DeliverySettings,
    ExporterPolicy,
    Pipeline,
    QueueSettings,
    RetrySettings,
)
from llm_observer.collector.signal_pipeline import LOGS, METRICS, SignalDecoder, SignalKind
from llm_observer.collector.wal import Log, MemoryLog, WriteAheadLog
from llm_observer.kernel.auth import AuthConfig, Authenticator
from llm_observer.kernel.component import (
    SIGNAL_LOGS,
    SIGNAL_NAMES,
    SIGNAL_TRACES,
    Authenticate,
    Component,
    Connector,
    CreateContext,
    Exporter,
    Extension,
    HttpRoutes,
    IngestMeta,
    MetricsExporter,
    Processor,
    Receiver,
)
from llm_observer.kernel.errors import ConfigError
from llm_observer.kernel.limits import UNLIMITED, TimeLimits
from llm_observer.kernel.servers import check_listeners, listen_endpoints
from llm_observer.kernel.telemetry import Telemetry

logger = logging.getLogger(__name__)

_MIB = 1 << 20
DEADLETTER_DIR = "deadletter"
"""Where quarantined spans are kept, under the data dir (see ``deadletter.py``)."""


def _policy(config: ExporterDeliveryConfig | None, default: RetrySettings) -> ExporterPolicy:
    """An exporter's ``retry_on_failure`` / ``sending_queue`` over ``service.delivery``'s retry."""
    if config is None:
        return ExporterPolicy(default, QueueSettings())
    r, q = config.retry_on_failure, config.sending_queue
    retry = RetrySettings(
        r.initial_interval_seconds if r.initial_interval_seconds is not None else default.initial_interval,
        r.max_interval_seconds if r.max_interval_seconds is not None else default.max_interval,
        r.max_elapsed_seconds if r.max_elapsed_seconds is not None else default.max_elapsed,
    )
    queue = QueueSettings(q.on_overflow, int(q.max_lag_mib * _MIB), q.max_lag_seconds)
    return ExporterPolicy(retry, queue)


def make_authenticate(auth_config: AuthConfig) -> Authenticate | None:
    """The receivers' view of auth: the tenant an ingest key is bound to, or None when auth is off.

    Raises ``Unauthenticated`` / ``PermissionDenied`` (kernel errors) for a missing, bad or read-only key."""
    if not auth_config.enabled:
        return None
    authenticator = Authenticator(auth_config)

    def authenticate(header: str | None) -> IngestMeta | None:
        principal = authenticator.authenticate(header, "ingest")
        projects = principal.project_ids
        if projects is not None and len(projects) == 1:
            return IngestMeta(organization_id=principal.organization_id, project_id=next(iter(projects)))
        return IngestMeta(
            organization_id=principal.organization_id,
            allowed_projects=tuple(sorted(projects)) if projects is not None else None,
        )

    return authenticate


class DataDirLock:
    """One process per data dir: chDB and Qdrant's local mode allow no more, and neither does the WAL."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / ".lock"
        self._fd = -1

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            os.close(fd)
            raise ConfigError(
                [("data_dir", f"{self.path.parent} is in use by another llm-observer process")]
            ) from exc
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd >= 0:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = -1


@dataclass(slots=True)
class _Running:
    """What one start created, in start order, so that shutdown can run it backwards."""

    exporters: dict[str, Exporter] = field(default_factory=dict)  # exporters and connectors, by id
    processors: list[tuple[str, Component]] = field(default_factory=list)
    pipelines: list[Pipeline[Any]] = field(default_factory=list)
    receivers: dict[str, Receiver] = field(default_factory=dict)
    extensions: dict[str, Extension] = field(default_factory=dict)


class Service:
    """The collector: receivers → WAL → pipelines → exporters; with ``query=True`` also the extensions that
    ``service.extensions`` lists (the query service), and with ``collector=False`` only those."""

    def __init__(self, config: Config, *, collector: bool = True, query: bool = False) -> None:
        self.config = config
        self.run_collector = collector
        self.run_extensions = query
        self.data_dir = config.data_dir.resolve()
        self.telemetry = Telemetry()
        self.log: Log | None = None
        self.consumed_signals: frozenset[int] = frozenset()
        self._delivered = 0  # the WAL position below which every pipeline has delivered (``wal_progress``)
        self._running = _Running()
        self._lock = DataDirLock(self.data_dir)
        self._started = False
        self._stopped = asyncio.Event()
        self._reloading = asyncio.Lock()

    # --- what tests and the CLI look at -----------------------------------------------------------------

    @property
    def receivers(self) -> dict[str, Receiver]:
        return self._running.receivers

    @property
    def exporters(self) -> dict[str, Exporter]:
        return self._running.exporters

    @property
    def pipelines(self) -> list[Pipeline[Any]]:
        return self._running.pipelines

    @property
    def extensions(self) -> dict[str, Extension]:
        return self._running.extensions

    @property
    def query_service(self) -> Any:
        """The running query extension, if any."""
        return self._running.extensions.get("query")

    def _ctx(self, component_id: str, **kwargs: Any) -> CreateContext:
        cfg = self.config
        return CreateContext(
            component_id=component_id,
            data_dir=self.data_dir,
            telemetry=self.telemetry,
            logger=logging.getLogger(f"llm_observer.component.{component_id}"),
            auth=cfg.auth,
            configs={
                kind: {cid: spec.config for cid, spec in getattr(cfg, kind).items()}
                for kind in ("receivers", "processors", "exporters", "connectors", "extensions")
            },
            **kwargs,
        )

    async def ingest(self, signal: int, payload: bytes, meta: IngestMeta | None = None) -> None:
        """The ``Ingest`` every receiver (and the REST ingest) hands accepted requests to.

        A signal that no pipeline consumes is acknowledged and counted, not written to the WAL."""
        if signal not in self.consumed_signals:
            self.telemetry.discarded.labels(SIGNAL_NAMES.get(signal, str(signal)), "no_pipeline").inc()
            return
        assert self.log is not None
        await self.log.append(signal, payload, meta)

    def _release_wal(self) -> None:
        if self.log is None or not self.pipelines:
            return
        self._delivered = min(p.min_cursor() for p in self.pipelines)
        self.log.release(self._delivered)

    def wal_progress(self) -> tuple[int, int]:
        """``(head, delivered)`` of the WAL, for receivers of replayable sources (``CreateContext``).
        Safe from any thread: two reads of values the event loop keeps current."""
        head = self.log.head if self.log is not None else 0
        return head, (self._delivered if self.pipelines else head)

    async def start(self) -> None:
        if self._started:
            return
        self._started = True
        self._lock.acquire()
        try:
            check_listeners(self.listeners())
            await self._start()
        except BaseException:
            await self.shutdown()
            raise

    def _used_receivers(self) -> set[str]:
        """The receivers (not connectors) that the pipelines name."""
        cfg = self.config
        return {ref for p in cfg.service.pipelines.values() for ref in p.receivers if ref in cfg.receivers}

    def listeners(self) -> list[tuple[str, str]]:
        """Every ``(yaml.path, host:port)`` this service will listen on: the endpoints of the receivers the
        pipelines use, of the exporters and connectors started, and of the extensions run."""
        cfg = self.config
        svc = cfg.service
        found: list[tuple[str, str]] = []
        if self.run_collector:
            for receiver_id in sorted(self._used_receivers()):
                found.extend(listen_endpoints(cfg.receivers[receiver_id].config, f"receivers.{receiver_id}"))
            wanted: list[str] = [*svc.telemetry.metrics.exporters]
            for pipeline in svc.pipelines.values():
                wanted.extend(pipeline.exporters)
            for component_id in dict.fromkeys(wanted):
                kind = "connectors" if component_id in cfg.connectors else "exporters"
                spec = cfg.connectors.get(component_id) or cfg.exporters[component_id]
                found.extend(listen_endpoints(spec.config, f"{kind}.{component_id}"))
        if self.run_extensions:
            for extension_id in svc.extensions:
                found.extend(listen_endpoints(cfg.extensions[extension_id].config, extension_id))
        return found

    async def _start(self) -> None:
        if self.run_collector:
            await self._open_wal()
            await self._start_exporters()
            await self._start_pipelines()
            self._wire_metrics()
            await self._start_receivers()
        if self.run_extensions:
            await self._start_extensions()
        logger.info("llm-observer started (data dir %s)", self.data_dir)

    async def _open_wal(self) -> None:
        svc = self.config.service
        wal = svc.wal
        if wal.mode == "memory":
            logger.warning("WAL mode is 'memory': accepted data is LOST if the process dies")
            self.log = MemoryLog(max_bytes=wal.max_size_mib * _MIB, telemetry=self.telemetry)
        else:
            self.log = WriteAheadLog(
                self.data_dir / wal.dir,
                segment_bytes=wal.segment_size_mib * _MIB,
                max_bytes=wal.max_size_mib * _MIB,
                max_pending_bytes=wal.max_pending_mib * _MIB,
                sync=wal.sync,
                telemetry=self.telemetry,
            )
        await self.log.open()

    async def _start_exporters(self) -> None:
        """Every exporter and connector a pipeline or the self-telemetry names, each created once."""
        cfg = self.config
        svc = cfg.service
        wanted: list[str] = []
        for pipeline in svc.pipelines.values():
            wanted.extend(pipeline.exporters)
            wanted.extend(r for r in pipeline.receivers if r in cfg.connectors)
        wanted.extend(svc.telemetry.metrics.exporters)
        for component_id in dict.fromkeys(wanted):
            spec = cfg.connectors.get(component_id) or cfg.exporters[component_id]
            exporter = spec.factory.create(self._ctx(component_id), spec.config)
            await exporter.start()
            self._running.exporters[component_id] = exporter

    def _typed(self, path: str, component_id: str, kind: type[Any], role: str) -> Any:
        component = self._running.exporters[component_id]
        if not isinstance(component, kind):
            raise ConfigError([(path, f"{component_id!r} is not {role}")])
        return component

    async def _start_pipelines(self) -> None:
        cfg = self.config
        svc = cfg.service
        d = svc.delivery
        retry = RetrySettings(d.initial_backoff_seconds, d.max_backoff_seconds, d.max_elapsed_seconds)
        settings = DeliverySettings(
            max_batch_bytes=int(d.max_batch_mib * _MIB),
            min_batch_bytes=int(d.min_batch_mib * _MIB),
            linger_seconds=d.linger_seconds,
            timeout_seconds=d.timeout_seconds,
            retry=retry,
            stall_seconds=d.stall_seconds,
        )
        deadletter = (
            DeadLetterStore(self.data_dir / DEADLETTER_DIR, sync=svc.wal.sync, telemetry=self.telemetry)
            if svc.wal.mode == "disk"
            else None
        )
        assert self.log is not None
        consumed: set[int] = set()
        for name, pipeline_cfg in svc.pipelines.items():
            kind = self._signal_kind(name, pipeline_cfg)
            if kind is not None:
                consumed.add(kind.number)
                await self._start_signal_pipeline(name, pipeline_cfg, kind, settings, retry, deadletter)
                continue
            if not name.startswith("traces"):
                continue
            consumed.add(SIGNAL_TRACES)
            processors: list[tuple[str, Processor]] = []
            read_logs = False
            for processor_id in pipeline_cfg.processors:
                spec = cfg.processors[processor_id]
                processor = spec.factory.create(self._ctx(processor_id), spec.config)
                if isinstance(processor, Component):
                    await processor.start()
                    self._running.processors.append((processor_id, processor))
                processors.append((processor_id, processor))
                read_logs = read_logs or spec.factory.reads_logs
            if read_logs:
                consumed.add(SIGNAL_LOGS)
            exporters = []
            policies: dict[str, ExporterPolicy] = {}
            for index, exporter_id in enumerate(pipeline_cfg.exporters):
                path = f"service.pipelines.{name}.exporters[{index}]"
                exporters.append((exporter_id, self._typed(path, exporter_id, Exporter, "a span exporter")))
                policies[exporter_id] = _policy(cfg.delivery.get(exporter_id), retry)
            pipeline = Pipeline(
                name,
                self.log,
                Decoder(name, processors, self.telemetry, read_logs),
                exporters,
                self.telemetry,
                settings,
                self._release_wal,
                policies,
                deadletter,
            )
            await pipeline.start()
            self._running.pipelines.append(pipeline)
        self.consumed_signals = frozenset(consumed)

    def _signal_kind(self, name: str, pipeline: PipelineConfig) -> SignalKind | None:
        """The kind of a logs pipeline, or of a metrics pipeline fed by receivers (None for the others)."""
        signal = name.split("/", 1)[0]
        if signal == "logs":
            return LOGS
        if signal == "metrics" and pushes_metrics(pipeline, self.config.connectors):
            return METRICS
        return None

    async def _start_signal_pipeline(
        self,
        name: str,
        pipeline_cfg: PipelineConfig,
        kind: SignalKind,
        settings: DeliverySettings,
        retry: RetrySettings,
        deadletter: DeadLetterStore | None,
    ) -> None:
        """A logs or metrics pipeline: the WAL's requests of its signal, unprocessed, to every exporter."""
        assert self.log is not None
        exporters: list[tuple[str, Any]] = []
        policies: dict[str, ExporterPolicy] = {}
        role = "a logs exporter" if kind.number == SIGNAL_LOGS else "an OTLP metrics exporter"
        for index, exporter_id in enumerate(pipeline_cfg.exporters):
            path = f"service.pipelines.{name}.exporters[{index}]"
            exporters.append((exporter_id, self._typed(path, exporter_id, kind.protocol, role)))
            policies[exporter_id] = _policy(self.config.delivery.get(exporter_id), retry)
        pipeline: Pipeline[Any] = Pipeline(
            name,
            self.log,
            SignalDecoder(name, kind.number),
            exporters,
            self.telemetry,
            settings,
            self._release_wal,
            policies,
            deadletter,
            kind,
        )
        await pipeline.start()
        self._running.pipelines.append(pipeline)

    def _wire_metrics(self) -> None:
        """Metrics pipelines are pulled: each exporter exposes what its connectors derive, when scraped."""
        svc = self.config.service
        for name, pipeline_cfg in svc.pipelines.items():
            if not name.startswith("metrics") or self._signal_kind(name, pipeline_cfg) is not None:
                continue
            for r_index, connector_id in enumerate(pipeline_cfg.receivers):
                path = f"service.pipelines.{name}.receivers[{r_index}]"
                connector = self._typed(path, connector_id, Connector, "a connector")
                for e_index, exporter_id in enumerate(pipeline_cfg.exporters):
                    path = f"service.pipelines.{name}.exporters[{e_index}]"
                    exporter = self._typed(path, exporter_id, MetricsExporter, "a metrics exporter")
                    exporter.expose(connector.metrics())
        for index, exporter_id in enumerate(svc.telemetry.metrics.exporters):
            path = f"service.telemetry.metrics.exporters[{index}]"
            self._typed(path, exporter_id, MetricsExporter, "a metrics exporter").expose(
                self.telemetry.registry
            )

    async def _start_receivers(self) -> None:
        cfg = self.config
        authenticate = make_authenticate(cfg.auth)
        for receiver_id in sorted(self._used_receivers()):
            spec = cfg.receivers[receiver_id]
            ctx = self._ctx(
                receiver_id,
                ingest=self.ingest,
                wal_progress=self.wal_progress,
                extras={"authenticate": authenticate},
                time_limits=self._time_limits(receiver_id),
            )
            receiver = spec.factory.create(ctx, spec.config)
            await receiver.start()
            self._running.receivers[receiver_id] = receiver

    def _time_limits(self, receiver_id: str) -> TimeLimits:
        """The strictest time limits the exporters of ``receiver_id``'s traces and logs pipelines declare
        (the times receivers check are those of spans, span events and log records)."""
        cfg = self.config
        limits = UNLIMITED
        for name, pipeline in cfg.service.pipelines.items():
            if not name.startswith(("traces", "logs")) or receiver_id not in pipeline.receivers:
                continue
            for exporter_id in pipeline.exporters:
                spec = cfg.connectors.get(exporter_id) or cfg.exporters[exporter_id]
                if spec.factory.time_limits is not None:
                    limits = limits.narrow(spec.factory.time_limits(spec.config))
        return limits

    async def _start_extensions(self) -> None:
        cfg = self.config
        routes = tuple(r for r in self._running.receivers.values() if isinstance(r, HttpRoutes))
        for extension_id in cfg.service.extensions:
            spec = cfg.extensions[extension_id]
            ingest = self.ingest if self.run_collector else None
            ctx = self._ctx(
                extension_id,
                ingest=ingest,
                http_routes=routes,
                extensions=self._running.extensions,
                reload_config=self.reload,
            )
            extension = spec.factory.create(ctx, spec.config)
            await extension.start()
            self._running.extensions[extension_id] = extension

    async def reload(self) -> None:
        """Re-read the config file and give every running extension that has ``async def
        reconfigure(config)`` its new config (alerting rules, routes, receivers). The whole file is
        validated first: a bad one raises ``ConfigError`` and nothing changes. Changes to anything else
        (endpoints, pipelines) take a restart."""
        async with self._reloading:
            source = self.config.source
            if source == "<default>":
                raise ConfigError([("<file>", "the service was started without --config: nothing to reload")])
            config = await asyncio.to_thread(
                load_config, source, data_dir=self.config.data_dir, extra_factories=self.config.factories
            )
            for extension_id, extension in list(self._running.extensions.items()):
                reconfigure = getattr(extension, "reconfigure", None)
                spec = config.extensions.get(extension_id)
                if reconfigure is None or spec is None:
                    continue
                try:
                    await reconfigure(spec.config)
                except Exception:
                    logger.exception(
                        "%s could not apply the reloaded config; it keeps the old one", extension_id
                    )
                    continue
                self.config.extensions[extension_id] = spec
            logger.info("Config reloaded from %s", source)

    async def shutdown(self) -> None:
        """Stop taking data, drain what was accepted, close everything. Idempotent."""
        running = self._running
        for name, component in [*running.receivers.items(), *running.extensions.items()]:
            try:
                await component.shutdown()
            except Exception:
                logger.exception("%s failed to shut down cleanly", name)
        running.receivers.clear()
        running.extensions.clear()
        timeout = self.config.service.delivery.drain_timeout_seconds
        for pipeline in running.pipelines:
            if not await pipeline.drain(timeout):
                logger.warning(
                    "pipeline %s did not drain in %.0fs; the rest is replayed at next start",
                    pipeline.name,
                    timeout,
                )
        for pipeline in running.pipelines:
            await pipeline.shutdown()
        self._release_wal()
        running.pipelines.clear()
        for name, component in [*reversed(running.processors), *running.exporters.items()]:
            try:
                await component.shutdown()
            except Exception:
                logger.exception("%s failed to shut down cleanly", name)
        running.processors.clear()
        running.exporters.clear()
        if self.log is not None:
            await self.log.close()
            self.log = None
        self._lock.release()
        self._started = False
        self._stopped.set()

    def endpoints(self) -> dict[str, Any]:
        """Where things listen (ports resolved when configured as 0)."""
        out: dict[str, Any] = {}
        for receiver_id, receiver in self.receivers.items():
            grpc_server = getattr(receiver, "grpc", None)
            if grpc_server is not None:
                out[f"{receiver_id}.grpc"] = grpc_server.port
            if getattr(receiver, "http_port", 0):
                out[f"{receiver_id}.http"] = receiver.http_port  # type: ignore[attr-defined]
        return out


async def reload_logged(service: Service) -> bool:
    """``service.reload()``, with a bad file logged (the running config is kept) rather than raised."""
    try:
        await service.reload()
    except ConfigError as exc:
        logger.error("Config reload failed, the running config is kept: %s", exc)
        return False
    return True


async def run_until_signalled(service: Service) -> None:
    """Start, then run until SIGINT / SIGTERM, then shut down cleanly; SIGHUP reloads the config file."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    reloads: set[asyncio.Task[bool]] = set()

    def hangup() -> None:
        task = loop.create_task(reload_logged(service))
        reloads.add(task)  # held until done: the loop keeps only weak references to tasks
        task.add_done_callback(reloads.discard)

    loop.add_signal_handler(signal.SIGHUP, hangup)
    await service.start()
    try:
        await stop.wait()
        logger.info("shutting down: draining accepted data")
    finally:
        await service.shutdown()


__all__ = ["SIGNAL_TRACES", "Service", "reload_logged", "run_until_signalled"]
