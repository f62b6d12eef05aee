"""The ``prometheus`` exporter: serves ``/metrics`` in the Prometheus text format, with whatever the metrics
pipelines route to it (the ``spanmetrics`` connector's GenAI metrics) and, when ``service.telemetry.metrics``
names it, the collector's own metrics. It derives nothing itself.

With ``auth.enabled`` a scrape needs ``Authorization: Bearer <api key or JWT>`` (401 without one). A
credential with the ``metrics`` scope (the operator's) sees everything; one with only the ``query`` scope sees
the GenAI series of its own organization (and projects, when it is bound to some) and none of the collector's
own metrics; any other is refused (403). Prometheus sends the key with ``authorization: {type: Bearer,
credentials_file: …}`` in the scrape config."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from typing import Any, cast

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.metrics_core import Metric

from llm_observer.kernel.auth import Authenticator, Principal
from llm_observer.kernel.component import (
    ComponentConfig,
    CreateContext,
    Factory,
    MetricsExporter,
    MetricsSource,
)
from llm_observer.kernel.endpoints import Endpoint
from llm_observer.kernel.errors import AuthError, PermissionDenied
from llm_observer.kernel.servers import AsgiServer, serve_asgi

ORGANIZATION_LABEL = "organization"
PROJECT_LABEL = "project"


class PrometheusExporterConfig(ComponentConfig):
    endpoint: Endpoint = "127.0.0.1:9464"


class TenantView:
    """The series of ``sources`` labelled with one organization (and, when given, one of ``projects``)."""

    def __init__(self, sources: Sequence[MetricsSource], principal: Principal) -> None:
        self.sources = sources
        self.organization = principal.organization_id
        self.projects = principal.project_ids

    def collect(self) -> Iterator[Metric]:
        organization, projects = self.organization, self.projects
        for source in self.sources:
            for family in source.collect():
                samples = [
                    sample
                    for sample in family.samples
                    if sample.labels.get(ORGANIZATION_LABEL) == organization
                    and (projects is None or sample.labels.get(PROJECT_LABEL) in projects)
                ]
                if samples:
                    kept = Metric(family.name, family.documentation, family.type, family.unit)
                    kept.samples = samples
                    yield kept


class PrometheusExporter:
    """Serves ``/metrics`` from the sources it was given, in the order given."""

    def __init__(self, config: PrometheusExporterConfig, authenticator: Authenticator | None = None) -> None:
        self.config = config
        self.authenticator = authenticator if authenticator is not None and authenticator.enabled else None
        self.sources: list[MetricsSource] = []
        self.port = 0
        self._server: AsgiServer | None = None

    def expose(self, source: MetricsSource) -> None:
        if source not in self.sources:
            self.sources.append(source)

    def render(self, principal: Principal | None = None) -> bytes:
        """Every series, or only those of ``principal``'s organization when it is given."""
        if principal is not None:
            return generate_latest(cast(CollectorRegistry, TenantView(self.sources, principal)))
        # generate_latest only iterates ``collect()``: any source will do.
        return b"".join(generate_latest(cast(CollectorRegistry, source)) for source in self.sources)

    def scraper(self, authorization: str | None) -> Principal | None:
        """Whose series a scrape may read: None for every series (auth off, or the ``metrics`` scope), else
        the ``query``-scoped principal whose organization's series it sees. Raises ``AuthError``."""
        if self.authenticator is None:
            return None
        try:
            self.authenticator.authenticate(authorization, "metrics")
            return None
        except PermissionDenied as denied:
            try:
                return self.authenticator.authenticate(authorization, "query")
            except PermissionDenied:
                raise denied from None

    async def _app(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        extra: list[tuple[bytes, bytes]] = []
        if scope["path"] != "/metrics":
            status, body, content_type = 404, b"see /metrics\n", "text/plain"
        else:
            authorization = next(
                (value.decode("latin-1") for key, value in scope["headers"] if key == b"authorization"), None
            )
            try:
                principal = self.scraper(authorization)
            except AuthError as exc:
                status, body, content_type = exc.status, f"{exc}\n".encode(), "text/plain"
                if exc.status == 401:
                    extra.append((b"www-authenticate", b"Bearer"))
            else:
                # Off the event loop, which acknowledges OTLP clients: rendering every series of a busy
                # collector is tens of milliseconds of Python.
                body = await asyncio.to_thread(self.render, principal)
                status, content_type = 200, CONTENT_TYPE_LATEST
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", content_type.encode()),
                    (b"content-length", str(len(body)).encode()),
                    *extra,
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
    authenticator = Authenticator(ctx.auth) if ctx.auth is not None and ctx.auth.enabled else None
    return PrometheusExporter(config, authenticator)


factory = Factory("prometheus", PrometheusExporterConfig, _create, signal="metrics")
