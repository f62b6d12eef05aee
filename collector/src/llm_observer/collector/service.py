"""Assembles a running collector (and, for ``up``, the query service) from a validated ``Config``.

Start order: WAL → exporters → pipelines → receivers → query service. Shutdown runs backwards: receivers
stop taking data, the pipelines drain what the WAL holds (bounded by ``service.delivery.drain_timeout_seconds``;
whatever is left is replayed at the next start), then exporters and the WAL close.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import signal
from pathlib import Path
from typing import Any

from llm_observer.collector.config import Config
from llm_observer.collector.pipeline import Decoder, DeliverySettings, LogEventsDecoder, Pipeline
from llm_observer.collector.receivers.ingest_core import Authenticate
from llm_observer.collector.wal import Log, MemoryLog, WriteAheadLog
from llm_observer.kernel.component import (
    SIGNAL_TRACES,
    CreateContext,
    Exporter,
    IngestMeta,
    Processor,
    Receiver,
)
from llm_observer.kernel.errors import ConfigError
from llm_observer.kernel.telemetry import Telemetry

logger = logging.getLogger(__name__)

_MIB = 1 << 20


def make_authenticate(auth_config: Any) -> Authenticate | None:
    """The receivers' view of auth: the tenant an ingest key is bound to, or None when auth is off."""
    if auth_config is None or not getattr(auth_config, "enabled", False):
        return None
    from llm_observer.kernel.auth import Authenticator

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


def _log_events_decoder() -> LogEventsDecoder | None:
    try:
        from llm_observer.processors.normalize_logs import content_events_by_span
    except ImportError:
        return None
    return content_events_by_span


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


class Service:
    """The collector: receivers → WAL → pipelines → exporters, plus the query service when asked."""

    def __init__(self, config: Config, *, collector: bool = True, query: bool = False) -> None:
        self.config = config
        self.run_collector = collector
        self.run_query = query
        self.data_dir = config.data_dir.resolve()
        self.telemetry = Telemetry()
        self.log: Log | None = None
        self.receivers: dict[str, Receiver] = {}
        self.exporters: dict[str, Exporter] = {}
        self.pipelines: list[Pipeline] = []
        self.query_service: Any = None
        self._lock = DataDirLock(self.data_dir)
        self._started = False
        self._stopped = asyncio.Event()

    def _ctx(self, component_id: str, **kwargs: Any) -> CreateContext:
        return CreateContext(
            component_id=component_id,
            data_dir=self.data_dir,
            telemetry=self.telemetry,
            logger=logging.getLogger(f"llm_observer.component.{component_id}"),
            **kwargs,
        )

    async def ingest(self, signal: int, payload: bytes, meta: IngestMeta | None = None) -> None:
        """The ``Ingest`` every receiver (and the REST ingest) hands accepted requests to."""
        assert self.log is not None
        await self.log.append(signal, payload, meta)

    def _release_wal(self) -> None:
        if self.log is None or not self.pipelines:
            return
        self.log.release(min(p.min_cursor() for p in self.pipelines))

    async def start(self) -> None:
        if self._started:
            return
        self._started = True
        self._lock.acquire()
        try:
            await self._start()
        except BaseException:
            await self.shutdown()
            raise

    async def _start(self) -> None:
        cfg = self.config
        svc = cfg.service
        if self.run_collector:
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
            used = {ref for p in svc.pipelines.values() for ref in p.exporters}
            for exporter_id in used:
                spec = cfg.exporters[exporter_id]
                exporter = spec.factory.create(self._ctx(exporter_id), spec.config)
                await exporter.start()
                self.exporters[exporter_id] = exporter
            d = svc.delivery
            settings = DeliverySettings(
                max_batch_bytes=int(d.max_batch_mib * _MIB),
                min_batch_bytes=int(d.min_batch_mib * _MIB),
                linger_seconds=d.linger_seconds,
                timeout_seconds=d.timeout_seconds,
                initial_backoff_seconds=d.initial_backoff_seconds,
                max_backoff_seconds=d.max_backoff_seconds,
            )
            log_events = _log_events_decoder()
            for name, pipeline_cfg in svc.pipelines.items():
                processors: list[tuple[str, Processor]] = []
                for processor_id in pipeline_cfg.processors:
                    spec = cfg.processors[processor_id]
                    processors.append(
                        (processor_id, spec.factory.create(self._ctx(processor_id), spec.config))
                    )
                pipeline = Pipeline(
                    name,
                    self.log,
                    Decoder(name, processors, self.telemetry, log_events),
                    [(e, self.exporters[e]) for e in pipeline_cfg.exporters],
                    self.telemetry,
                    settings,
                    self._release_wal,
                )
                await pipeline.start()
                self.pipelines.append(pipeline)
            authenticate = make_authenticate(cfg.auth)
            used_receivers = {ref for p in svc.pipelines.values() for ref in p.receivers}
            for receiver_id in used_receivers:
                spec = cfg.receivers[receiver_id]
                ctx = self._ctx(receiver_id, ingest=self.ingest, extras={"authenticate": authenticate})
                receiver = spec.factory.create(ctx, spec.config)
                await receiver.start()
                self.receivers[receiver_id] = receiver
        if self.run_query:
            from llm_observer.query.service import QueryService

            self.query_service = QueryService(
                cfg.query,
                cfg.auth,
                self.data_dir,
                self.ingest if self.run_collector else None,
                self.telemetry,
            )
            await self.query_service.start()
        logger.info("llm-observer started (data dir %s)", self.data_dir)

    async def shutdown(self) -> None:
        """Stop taking data, drain what was accepted, close everything. Idempotent."""
        for receiver_id, receiver in list(self.receivers.items()):
            with contextlib.suppress(Exception):
                await receiver.shutdown()
            self.receivers.pop(receiver_id, None)
        if self.query_service is not None:
            with contextlib.suppress(Exception):
                await self.query_service.shutdown()
            self.query_service = None
        timeout = self.config.service.delivery.drain_timeout_seconds
        for pipeline in self.pipelines:
            if not await pipeline.drain(timeout):
                logger.warning(
                    "pipeline %s did not drain in %.0fs; the rest is replayed at next start",
                    pipeline.name,
                    timeout,
                )
        for pipeline in self.pipelines:
            await pipeline.shutdown()
        self._release_wal()
        self.pipelines.clear()
        for exporter_id, exporter in list(self.exporters.items()):
            try:
                await exporter.shutdown()
            except Exception:
                logger.exception("exporter %s failed to shut down cleanly", exporter_id)
            self.exporters.pop(exporter_id, None)
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


async def run_until_signalled(service: Service) -> None:
    """Start, then run until SIGINT / SIGTERM, then shut down cleanly."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await service.start()
    try:
        await stop.wait()
        logger.info("shutting down: draining accepted data")
    finally:
        await service.shutdown()


__all__ = ["SIGNAL_TRACES", "Service", "run_until_signalled"]
