"""What the notification tests share: real HTTP servers on loopback that record what they are sent (standing
in for Slack, PagerDuty, a webhook consumer), alerts made in one line, a clock the test moves, and a
dispatcher wired to a state file."""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from llm_observer.query.alerting.config import AlertingConfig
from llm_observer.query.alerting.db import StateDb
from llm_observer.query.alerting.dispatch import Dispatcher
from llm_observer.query.alerting.model import ALERTNAME, ORGANIZATION, Alert, fingerprint
from llm_observer.query.alerting.silences import SilenceStore

S = 10**9  # one second in nanoseconds
T0 = 1_790_000_000 * S  # a fixed start for the injected clocks


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class RecordingServer:
    """An HTTP server on 127.0.0.1 (port 0) that records every request and answers with the next status of
    its path's ``path_statuses``, else of ``statuses`` (200 once they run out)."""

    statuses: list[int] = field(default_factory=list)
    # Statuses for one path (consumed before ``statuses``), when requests race each other.
    path_statuses: dict[str, list[int]] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> None:
        recorder = self
        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(length)
                with lock:
                    recorder.requests.append(
                        Request("POST", self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                    )
                    queue = recorder.path_statuses.get(self.path) or recorder.statuses
                    status = queue.pop(0) if queue else 200
                payload = b'{"status":"success"}' if status < 300 else b'{"error":"injected"}'
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def bodies(self) -> list[Any]:
        return [r.json() for r in self.requests]


def _serving() -> Iterator[RecordingServer]:
    server = RecordingServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


recorder = pytest.fixture(_serving, name="recorder")
second_recorder = pytest.fixture(_serving, name="second_recorder")


class Clock:
    """Nanoseconds that move only when the test says."""

    def __init__(self, start_ns: int = T0) -> None:
        self.now = start_ns

    def __call__(self) -> int:
        return self.now

    def advance(self, seconds: float) -> int:
        self.now += int(seconds * S)
        return self.now


def alert(
    name: str = "HighErrorRate",
    org: str = "acme",
    *,
    state: str = "firing",
    fired_at: int = T0,
    resolved_at: int | None = None,
    incident: str | None = None,
    value: float = 0.2,
    **labels: str,
) -> Alert:
    """An alert as the engine hands it over; ``labels`` add to ``alertname`` and ``organization_id``."""
    all_labels = {ALERTNAME: name, ORGANIZATION: org, **labels}
    return Alert(
        fingerprint=fingerprint(all_labels),
        rule=name,
        organization_id=org,
        labels=all_labels,
        annotations={"summary": f"{name} is {value:g}"},
        state=state,  # type: ignore[arg-type]
        value=value,
        active_since_ns=fired_at,
        fired_at_ns=fired_at,
        resolved_at_ns=resolved_at if state == "resolved" else None,
        last_evaluated_ns=resolved_at or fired_at,
        incident_id=incident,
        generator_url=f"/traces?alertname={name}",
    )


def resolved(firing: Alert, at_ns: int) -> Alert:
    """The same alert, resolved at ``at_ns``."""
    return dataclasses.replace(firing, state="resolved", resolved_at_ns=at_ns, last_evaluated_ns=at_ns)


def alerting_config(**sections: Any) -> AlertingConfig:
    """An ``alerting:`` section from plain dicts, validated as the config loader does."""
    return AlertingConfig.model_validate(sections)


def webhook_receiver(name: str, url: str, **options: Any) -> dict[str, Any]:
    return {"name": name, "webhook_configs": [{"url": url, **options}]}


@dataclass
class Wired:
    db: StateDb
    silences: SilenceStore
    dispatcher: Dispatcher
    registry: CollectorRegistry
    clock: Clock

    def counter(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0


@asynccontextmanager
async def wired(path: Path, config: AlertingConfig, clock: Clock) -> AsyncIterator[Wired]:
    """A started dispatcher over the state file at ``path``; shut down (and the file closed) on exit."""
    db = StateDb(path)
    silences = SilenceStore(db)
    registry = CollectorRegistry()
    dispatcher = Dispatcher(config, db, silences, registry=registry, clock=clock)
    await dispatcher.start()
    try:
        yield Wired(db, silences, dispatcher, registry, clock)
    finally:
        await dispatcher.shutdown()
        db.close()
