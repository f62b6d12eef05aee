"""The query service: REST + Jaeger API over HTTP (uvicorn) and the gRPC API, in the caller's event loop."""

from __future__ import annotations

import asyncio
import logging
import socket
from pathlib import Path
from typing import Any

import uvicorn

from llm_observer.kernel.auth import AuthConfig, Authenticator
from llm_observer.kernel.component import Ingest
from llm_observer.kernel.telemetry import Telemetry
from llm_observer.query.backend import QueryBackend
from llm_observer.query.config import QueryConfig, VectorsConfig
from llm_observer.storage.clickhouse.client import ClickHouseClient, open_client
from llm_observer.storage.clickhouse.reads import TraceStore
from llm_observer.storage.vectors.settings import VectorSettings

logger = logging.getLogger(__name__)


class _Server(uvicorn.Server):
    """uvicorn without its signal handlers: the process owner handles signals."""

    def install_signal_handlers(self) -> None:
        pass

    @property
    def started_ok(self) -> bool:
        return bool(self.started)


def _bind(endpoint: str) -> socket.socket:
    host, _, port = endpoint.rpartition(":")
    host = host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted sockets inherit this: without it a keep-alive client waits ~40 ms (Nagle + delayed ACK) for
    # every response that uvicorn writes in two parts.
    if family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, int(port)))
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def _vector_settings(config: VectorsConfig) -> VectorSettings | None:
    """The vector store semantic search reads (None: disabled); unset fields keep the store's defaults."""
    if not config.enabled:
        return None
    given = {"collection": config.collection, "model": config.model, "api_key": config.api_key}
    return VectorSettings(url=config.url, **{key: value for key, value in given.items() if value is not None})


class QueryService:
    """Serves every read API (and the REST JSON ingest when ``ingest`` is given).

    ``start`` opens the (shared) ClickHouse client and starts both listeners in the running loop; ``shutdown``
    stops them and closes the client. Both are idempotent and ``shutdown`` is safe before ``start``.
    """

    def __init__(
        self,
        config: QueryConfig,
        auth: AuthConfig,
        data_dir: Path,
        ingest: Ingest | None = None,
        telemetry: Telemetry | None = None,
    ) -> None:
        self.config = config
        self.auth_config = auth
        self.data_dir = data_dir
        self.ingest = ingest
        self.telemetry = telemetry
        self.backend: QueryBackend | None = None
        self.http_port: int | None = None
        self.grpc_port: int | None = None
        self._client: ClickHouseClient | None = None
        self._http: _Server | None = None
        self._http_task: asyncio.Task[None] | None = None
        self._grpc: Any = None
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        async with self._lock:
            if self.backend is not None:
                return
            storage = self.config.storage
            client = await asyncio.to_thread(
                open_client, storage.endpoint, self.data_dir, storage.username, storage.password
            )
            self._client = client
            try:
                backend = QueryBackend(
                    self.config,
                    TraceStore(client, storage.database),
                    Authenticator(self.auth_config),
                    self.ingest,
                    self.data_dir,
                    vectors=_vector_settings(self.config.vectors),
                    telemetry=self.telemetry,
                )
                await self._start_http(backend)
                await self._start_grpc(backend)
            except BaseException:
                await self._stop()
                raise
            self.backend = backend
            logger.info(
                "Query service listening: HTTP on %s (port %s), gRPC on %s (port %s)",
                self.config.http.endpoint,
                self.http_port,
                self.config.grpc.endpoint,
                self.grpc_port,
            )

    async def _start_http(self, backend: QueryBackend) -> None:
        from llm_observer.query.app import create_app

        app = create_app(backend)
        sock = _bind(self.config.http.endpoint)
        self.http_port = sock.getsockname()[1]
        server = _Server(
            uvicorn.Config(
                app, log_level="warning", access_log=False, lifespan="off", timeout_graceful_shutdown=2
            )
        )
        self._http = server
        self._http_task = asyncio.create_task(server.serve(sockets=[sock]), name="query-http")
        while not server.started:
            if self._http_task.done():
                sock.close()
                self._http_task.result()
                raise RuntimeError(f"the query HTTP server on {self.config.http.endpoint} did not start")
            await asyncio.sleep(0.01)

    async def _start_grpc(self, backend: QueryBackend) -> None:
        from llm_observer.query.grpc_api import start_grpc_server

        self._grpc, self.grpc_port = await start_grpc_server(
            backend, self.config.grpc.endpoint, "query.grpc.endpoint"
        )

    async def _stop(self) -> None:
        grpc_server, self._grpc = self._grpc, None
        if grpc_server is not None:
            await grpc_server.stop(grace=1.0)
        server, task = self._http, self._http_task
        self._http = self._http_task = None
        if server is not None:
            server.should_exit = True
        if task is not None:
            try:
                await asyncio.wait_for(task, timeout=5.0)
            except TimeoutError:
                task.cancel()
        backend, self.backend = self.backend, None
        if backend is not None:
            await backend.close()
        client, self._client = self._client, None
        if client is not None:
            await asyncio.to_thread(client.close)

    async def shutdown(self) -> None:
        async with self._lock:
            await self._stop()
            logger.info("Query service stopped")
