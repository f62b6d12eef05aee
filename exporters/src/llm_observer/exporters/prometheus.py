"""The ``prometheus`` exporter: serves ``/metrics`` in the Prometheus text format, with whatever the metrics
pipelines route to it (the ``spanmetrics`` connector's GenAI metrics) and, when ``service.telemetry.metrics``
names it, the collector's own metrics. It derives nothing itself."""

from __future__ import annotations

from typing import Any, cast

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from llm_observer.kernel.component import (
    ComponentConfig,
    CreateContext,
    Factory,
    MetricsExporter,
    MetricsSource,
)
from llm_observer.kernel.endpoints import Endpoint
from llm_observer.kernel.servers import AsgiServer, serve_asgi


class PrometheusExporterConfig(ComponentConfig):
    endpoint: Endpoint = "127.0.0.1:9464"


class PrometheusExporter:
    """Serves ``/metrics`` from the sources it was given, in the order given."""

    def __init__(self, config: PrometheusExporterConfig) -> None:
        self.config = config
        self.sources: list[MetricsSource] = []
        self.port = 0
        self._server: AsgiServer | None = None

    def expose(self, source: MetricsSource) -> None:
        if source not in self.sources:
            self.sources.append(source)

    def render(self) -> bytes:
        # generate_latest only iterates ``collect()``: any source will do.
        return b"".join(generate_latest(cast(CollectorRegistry, source)) for source in self.sources)

    async def _app(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] != "/metrics":
            status, body, content_type = 404, b"see /metrics\n", "text/plain"
        else:
            status, body, content_type = 200, self.render(), CONTENT_TYPE_LATEST
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", content_type.encode()),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def start(self) -> None:
        if self._server is None:
            self._server = await serve_asgi(self._app, self.config.endpoint, "exporters.prometheus.endpoint")
            self.port = self._server.port

    async def shutdown(self) -> None:
        if self._server is not None:
            await self._server.stop()
            self._server = None


def _create(ctx: CreateContext, config: PrometheusExporterConfig) -> MetricsExporter:
    return PrometheusExporter(config)


factory = Factory("prometheus", PrometheusExporterConfig, _create, signal="metrics")
