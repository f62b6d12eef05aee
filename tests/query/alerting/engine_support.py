"""Fixtures of the engine, incident, component and reload tests: a real chDB store written through the real
ClickHouse exporter, synthetic model calls at chosen times, an injected clock and an injected sleep that lets
a test run the evaluation loop one round at a time, and a webhook receiver on loopback."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from llm_observer.exporters.clickhouse import ClickHouseExporterConfig
from llm_observer.exporters.clickhouse import create as create_exporter
from llm_observer.kernel.batch import STATUS_ERROR, STATUS_OK, SpanBatch
from llm_observer.kernel.component import CreateContext, Exporter
from llm_observer.kernel.telemetry import Telemetry
from llm_observer.query.alerting.component import AlertingService, factory
from llm_observer.query.alerting.config import AlertingConfig
from tests.support.spans import add_span

S = 10**9
MINUTE = 60 * S

_seq = itertools.count()


def minute_floor(ns: int) -> int:
    return ns - ns % MINUTE


class Clock:
    """An injected clock in nanoseconds, moved by the test."""

    def __init__(self, now_ns: int) -> None:
        self.now_ns = now_ns

    def __call__(self) -> int:
        return self.now_ns


class Ticks:
    """An injected sleep: the evaluation loop waits in it until the test lets one more round run."""

    def __init__(self) -> None:
        self.waiting = 0
        self._go = asyncio.Semaphore(0)

    async def sleep(self, seconds: float) -> None:
        self.waiting += 1
        try:
            await self._go.acquire()
        finally:
            self.waiting -= 1

    def release(self) -> None:
        self._go.release()


async def open_store(data_dir: Path) -> Exporter:
    """The real ClickHouse exporter over a chDB store in ``data_dir`` (started)."""
    ctx = CreateContext("clickhouse", data_dir, Telemetry(), logging.getLogger("test.clickhouse"))
    exporter = create_exporter(ctx, ClickHouseExporterConfig())
    await exporter.start()
    return exporter


def calls(
    batch: SpanBatch,
    *,
    start_ns: int,
    end_ns: int,
    every_ns: int = 10 * S,
    latency_ms: float = 200.0,
    error: bool = False,
    cost_usd: float = 0.001,
    org: str = "org-a",
    provider: str = "openai",
    model: str = "gpt-4o",
    service: str = "chatbot",
) -> SpanBatch:
    """Append a model call every ``every_ns`` in ``[start_ns, end_ns)``, each ``latency_ms`` long."""
    resource = {"service.name": service, "llm_observer.organization.id": org, "llm_observer.project.id": "p"}
    for start in range(start_ns, end_ns, every_ns):
        n = next(_seq)
        trace_id = hashlib.sha256(f"trace/{n}".encode()).digest()[:16]
        add_span(
            batch,
            {
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": provider,
                "gen_ai.request.model": model,
                "gen_ai.usage.input_tokens": 100,
                "gen_ai.usage.output_tokens": 20,
                "llm_observer.cost.usd": cost_usd,
            },
            resource=resource,
            trace_id=trace_id,
            span_id=hashlib.sha256(f"span/{n}".encode()).digest()[:8],
            name=f"chat {model}",
            start=start,
            end=start + round(latency_ms * 1e6),
            status_code=STATUS_ERROR if error else STATUS_OK,
            status_message="boom" if error else "",
        )
    return batch


async def write(exporter: Exporter, batch: SpanBatch) -> None:
    batch.origin = f"test:engine:{next(_seq)}"
    await exporter.send(batch)


def alerting_config(**settings: Any) -> AlertingConfig:
    """An ``alerting:`` section as the YAML would give it (no evaluation delay unless set)."""
    return AlertingConfig.model_validate({"evaluation_delay": 0, **settings})


def make_alerting(
    data_dir: Path,
    config: AlertingConfig,
    clock: Clock,
    ticks: Ticks | None = None,
    telemetry: Telemetry | None = None,
) -> AlertingService:
    """An ``AlertingService`` made by the extension factory, as the collector's runtime makes it, with the
    injected clock (and sleep)."""
    telemetry = telemetry if telemetry is not None else Telemetry()
    ctx = CreateContext(
        "alerting",
        data_dir,
        telemetry,
        logging.getLogger("test.alerting"),
        configs={"exporters": {"clickhouse": ClickHouseExporterConfig()}},
        extras={"clock": clock, **({"sleep": ticks.sleep} if ticks is not None else {})},
    )
    return factory.create(ctx, config)


@dataclass
class Webhook:
    """A real HTTP server on 127.0.0.1 recording every JSON body POSTed to it."""

    server: ThreadingHTTPServer
    bodies: list[dict[str, Any]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def statuses(self) -> list[tuple[str, tuple[str, ...]]]:
        """``(status, alertnames)`` of each notification received, in order."""
        return [
            (body["status"], tuple(sorted(a["labels"]["alertname"] for a in body["alerts"])))
            for body in self.bodies
        ]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def start_webhook() -> Webhook:
    hook: Webhook

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            hook.bodies.append(json.loads(self.rfile.read(length)))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    hook = Webhook(server)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return hook


def sample_value(telemetry: Telemetry, name: str, labels: Mapping[str, str] | None = None) -> float:
    value = telemetry.registry.get_sample_value(name, dict(labels or {}))
    return 0.0 if value is None else value
