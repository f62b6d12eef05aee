"""The query service: REST + Jaeger API over HTTP (uvicorn) and the gRPC API, in the caller's event loop."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import grpc.aio

from llm_observer.kernel.auth import AuthConfig, Authenticator
from llm_observer.kernel.component import HttpRoutes
from llm_observer.kernel.servers import AsgiServer, serve_asgi
from llm_observer.kernel.telemetry import Telemetry
from llm_observer.query.app import create_app
from llm_observer.query.backend import QueryBackend
from llm_observer.query.config import QueryConfig
from llm_observer.query.grpc_api import start_grpc_server
from llm_observer.storage.clickhouse.client import ClickHouseClient, open_client_for
from llm_observer.storage.clickhouse.reads import TraceStore
from llm_observer.storage.clickhouse.settings import ClickHouseSettings
from llm_observer.storage.clickhouse.signal_reads import SignalStore
from llm_observer.storage.vectors.settings import VectorSettings

logger = logging.getLogger(__name__)


class QueryService:
    """Serves every read API over the store ``storage`` names (and the routes of the JSON ingest receiver,
    ``ingest_routes``, when it runs in the same process); ``vectors`` None disables semantic search.
    ``extensions`` is the process's live mapping of running extensions, where the alerting API is found at
    request time (none serving it: the alert endpoints answer 404).

    ``start`` opens the (shared) ClickHouse client and starts both listeners in the running loop; ``shutdown``
    stops them and closes the client. Both are idempotent and ``shutdown`` is safe before ``start``. A port
    that cannot be bound is a ``ConfigError`` naming ``query.http.endpoint`` / ``query.grpc.endpoint``.
    """

    def __init__(
        self,
        config: QueryConfig,
        storage: ClickHouseSettings,
        vectors: VectorSettings | None,
        *,
        data_dir: Path,
        auth: AuthConfig | None = None,
        ingest_routes: Sequence[HttpRoutes] = (),
        telemetry: Telemetry | None = None,
        component_id: str = "query",
        extensions: Mapping[str, Any] | None = None,
        replay_otlp_endpoint: str | None = None,
    ) -> None:
        self.config = config
        self.replay_otlp_endpoint = replay_otlp_endpoint
        self.extensions: Mapping[str, Any] = extensions if extensions is not None else {}
        self.storage = storage
        self.vectors = vectors
        self.auth_config = auth if auth is not None else AuthConfig()
        self.data_dir = data_dir
        self.ingest_routes = tuple(ingest_routes)
        self.telemetry = telemetry
        self.component_id = component_id
        self.backend: QueryBackend | None = None
        self.http_port: int | None = None
        self.grpc_port: int | None = None
        self._client: ClickHouseClient | None = None
        self._http: AsgiServer | None = None
        self._grpc: grpc.aio.Server | None = None
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        async with self._lock:
            if self.backend is not None:
                return
            storage = self.storage
            client = await asyncio.to_thread(open_client_for, storage, self.data_dir)
            self._client = client
            try:
                backend = QueryBackend(
                    self.config,
                    TraceStore(client, storage.database),
                    Authenticator(self.auth_config),
                    self.ingest_routes,
                    self.data_dir,
                    vectors=self.vectors,
                    telemetry=self.telemetry,
                    component_id=self.component_id,
                    signals=SignalStore(client, storage.database),
                    extensions=self.extensions,
                )
                backend.replay_otlp_endpoint = self.replay_otlp_endpoint
                self._http = await serve_asgi(
                    create_app(backend),
                    self.config.http.endpoint,
                    "query.http.endpoint",
                    f"For the query API over gRPC use {self.config.grpc.endpoint} (query.grpc.endpoint); "
                    "for OTLP/gRPC, the collector's receivers.otlp.protocols.grpc.endpoint.",
                )
                self.http_port = self._http.port
                self._grpc, self.grpc_port = await start_grpc_server(
                    backend, self.config.grpc.endpoint, "query.grpc.endpoint"
                )
            except BaseException:
                await self._stop(None)
                raise
            self.backend = backend
            logger.info(
                "Query service listening: HTTP on %s (port %s), gRPC on %s (port %s)",
                self.config.http.endpoint,
                self.http_port,
                self.config.grpc.endpoint,
                self.grpc_port,
            )

    async def _stop(self, backend: QueryBackend | None) -> None:
        grpc_server, self._grpc = self._grpc, None
        if grpc_server is not None:
            await grpc_server.stop(grace=1.0)
        http, self._http = self._http, None
        if http is not None:
            await http.stop()
        if backend is not None:
            await backend.close()
        client, self._client = self._client, None
        if client is not None:
            await asyncio.to_thread(client.close)

    async def shutdown(self) -> None:
        async with self._lock:
            backend, self.backend = self.backend, None
            if backend is None and self._client is None:
                return
            await self._stop(backend)
            logger.info("Query service stopped")
