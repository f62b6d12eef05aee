"""Fixtures for the query service tests: a real chDB store filled through the real ClickHouse exporter, and a
running QueryService (HTTP + gRPC on ephemeral ports) serving the JSON ingest routes of a real ``rest``
receiver, whose ingest feeds the same exporter (as ``llm-observer up`` composes them).

Services are made as the collector's runtime makes them: by the extension factory, from a ``CreateContext``
holding the configs of the exporters whose stores they read."""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from llm_observer.collector.receivers.rest import RestReceiverConfig
from llm_observer.collector.receivers.rest import factory as rest_factory
from llm_observer.collector.service import make_authenticate
from llm_observer.exporters.clickhouse import ClickHouseExporterConfig
from llm_observer.exporters.clickhouse import create as create_exporter
from llm_observer.exporters.qdrant import QdrantExporterConfig
from llm_observer.exporters.vectors import VectorsExporterConfig
from llm_observer.kernel.auth import ApiKeyConfig, AuthConfig, UserConfig, hash_api_key, hash_password
from llm_observer.kernel.batch import STATUS_ERROR, STATUS_OK, Event, SpanBatch
from llm_observer.kernel.component import CreateContext, HttpRoutes, Ingest, IngestMeta
from llm_observer.kernel.otlp_codec import decode_traces
from llm_observer.kernel.telemetry import Telemetry
from llm_observer.query.component import factory
from llm_observer.query.config import GrpcConfig, HttpConfig, QueryConfig
from llm_observer.query.service import QueryService

KEY_A = "key-for-org-a"
KEY_A_WEB = "key-for-org-a-web-only"
KEY_B = "key-for-org-b"
KEY_INGEST_ONLY = "key-ingest-only"
KEY_REVOKED = "key-revoked"
PASSWORD = "correct horse battery staple"
JWT_SECRET = "0123456789abcdef0123456789abcdef-test-secret"

# A fixed "now" for the planted data: an hour ago, so the default 24 h window holds it.
HOUR = 3600 * 10**9


@dataclass
class Planted:
    """What the tests planted, so expectations are computed from it independently of the service."""

    batch: SpanBatch
    base_ns: int
    traces: dict[str, list[int]] = field(default_factory=dict)  # trace id hex -> row indexes

    def rows(self, **match: Any) -> list[int]:
        out = []
        for i in range(len(self.batch)):
            attrs, res = self.batch.attributes[i], self.batch.resource[i]
            ok = True
            for key, value in match.items():
                have = attrs.get(key, res.get(key))
                if have != value:
                    ok = False
            if ok:
                out.append(i)
        return out


def _id(*parts: object, size: int) -> bytes:
    return hashlib.sha256("/".join(map(str, parts)).encode()).digest()[:size]


def plant(base_ns: int) -> Planted:
    """Traces for org-a (projects web, api) and org-b, with known tokens, costs, durations and errors."""
    batch = SpanBatch()
    planted = Planted(batch=batch, base_ns=base_ns)
    models = ["gpt-4o", "claude-sonnet-4", "gpt-4o-mini"]
    providers = {"gpt-4o": "openai", "gpt-4o-mini": "openai", "claude-sonnet-4": "anthropic"}
    counter = itertools.count()
    for org, project, service, n in (
        ("org-a", "web", "chatbot", 12),
        ("org-a", "api", "agent-svc", 6),
        ("org-b", "default", "chatbot", 8),
    ):
        resource = {
            "service.name": service,
            "llm_observer.organization.id": org,
            "llm_observer.project.id": project,
            "llm_observer.team.id": f"team-{project}",
        }
        for t in range(n):
            tid = _id(org, project, t, size=16)
            start = base_ns + (next(counter)) * 60 * 10**9  # one trace a minute
            rows = planted.traces.setdefault(tid.hex(), [])
            root = _id(tid, "root", size=8)
            # root span (no model)
            rows.append(len(batch))
            _append(
                batch,
                tid,
                root,
                b"",
                f"{service} request",
                2,
                start,
                start + (500 + 40 * t) * 10**6,
                STATUS_OK,
                "",
                {"user.id": f"user-{t % 3}"},
                resource,
                [],
            )
            for c in range(2):
                model = models[(t + c) % 3]
                input_tokens, output_tokens = 100 + 10 * t + c, 20 + t + 3 * c
                cost = round(0.001 * input_tokens + 0.002 * output_tokens, 6)
                failed = (t % 5 == 4) and c == 1
                attrs: dict[str, Any] = {
                    "gen_ai.operation.name": "chat",
                    "gen_ai.provider.name": providers[model],
                    "gen_ai.request.model": model,
                    "gen_ai.response.model": model + "-2025",
                    "gen_ai.usage.input_tokens": input_tokens,
                    "gen_ai.usage.output_tokens": output_tokens,
                    "llm_observer.cost.usd": cost,
                    "llm_observer.cost.input_usd": round(0.001 * input_tokens, 6),
                    "llm_observer.cost.output_usd": round(0.002 * output_tokens, 6),
                    "user.id": f"user-{t % 3}",
                    "gen_ai.input.messages": f'[{{"role":"user","parts":[{{"type":"text","content":"question {org} {t} {c}"}}]}}]',
                    "gen_ai.output.messages": f'[{{"role":"assistant","parts":[{{"type":"text","content":"answer {t} {c}"}}]}}]',
                }
                if t == 3 and c == 0:
                    attrs["customer.tier"] = "gold"
                s0 = start + (10 + 200 * c) * 10**6
                duration = (100 + 37 * t + 11 * c) * 10**6
                events = [Event(s0 + 5 * 10**6, "gen_ai.choice", {"index": 0})] if c == 0 else []
                rows.append(len(batch))
                _append(
                    batch,
                    tid,
                    _id(tid, c, size=8),
                    root,
                    f"chat {model}",
                    3,
                    s0,
                    s0 + duration,
                    STATUS_ERROR if failed else STATUS_OK,
                    "rate limited" if failed else "",
                    attrs,
                    resource,
                    events,
                )
    return planted


def _append(
    batch: SpanBatch,
    tid: bytes,
    sid: bytes,
    parent: bytes,
    name: str,
    kind: int,
    start: int,
    end: int,
    status: int,
    message: str,
    attrs: dict[str, Any],
    resource: dict[str, Any],
    events: list[Event],
) -> None:
    batch.trace_id.append(tid)
    batch.span_id.append(sid)
    batch.parent_span_id.append(parent)
    batch.trace_state.append("")
    batch.name.append(name)
    batch.kind.append(kind)
    batch.start_time_unix_nano.append(start)
    batch.end_time_unix_nano.append(end)
    batch.status_code.append(status)
    batch.status_message.append(message)
    batch.attributes.append(attrs)
    batch.resource.append(resource)
    batch.scope_name.append("tests")
    batch.scope_version.append("1")
    batch.events.append(events)
    batch.links.append([])


def auth_config(**extra: Any) -> AuthConfig:
    return AuthConfig(
        enabled=True,
        api_keys=[
            ApiKeyConfig(id="a", key_sha256=hash_api_key(KEY_A), organization_id="org-a"),
            ApiKeyConfig(
                id="a-web", key_sha256=hash_api_key(KEY_A_WEB), organization_id="org-a", projects=["web"]
            ),
            ApiKeyConfig(id="b", key_sha256=hash_api_key(KEY_B), organization_id="org-b"),
            ApiKeyConfig(
                id="ingest",
                key_sha256=hash_api_key(KEY_INGEST_ONLY),
                organization_id="org-a",
                scopes=["ingest"],
            ),
            ApiKeyConfig(
                id="old", key_sha256=hash_api_key(KEY_REVOKED), organization_id="org-a", revoked=True
            ),
        ],
        users=[
            UserConfig(
                username="alice",
                password_hash=hash_password(PASSWORD, iterations=1000),
                organization_id="org-a",
            )
        ],
        jwt_secret=JWT_SECRET,
        **extra,
    )


def exporter_configs() -> dict[str, dict[str, Any]]:
    """What ``ctx.configs`` holds for the default pipeline (and a Qdrant exporter): the exporters whose
    stores the service reads."""
    return {
        "exporters": {
            "clickhouse": ClickHouseExporterConfig(),
            "vectors": VectorsExporterConfig(),
            "qdrant": QdrantExporterConfig(),
        }
    }


def make_service(
    data_dir: Path,
    config: QueryConfig | None = None,
    auth: AuthConfig | None = None,
    ingest: Ingest | None = None,
    telemetry: Telemetry | None = None,
) -> QueryService:
    """A QueryService listening on ephemeral ports (unless ``config`` says otherwise), made by the factory;
    with ``ingest``, it serves the JSON ingest routes of a ``rest`` receiver handing to it."""
    if config is None:
        config = local_config()
    telemetry = telemetry if telemetry is not None else Telemetry()
    routes = () if ingest is None else (rest_receiver(data_dir, ingest, auth, telemetry),)
    ctx = CreateContext(
        "query",
        data_dir,
        telemetry,
        logging.getLogger("test.query"),
        auth=auth,
        configs=exporter_configs(),
        http_routes=routes,
    )
    return factory.create(ctx, config)


def rest_receiver(
    data_dir: Path, ingest: Ingest, auth: AuthConfig | None, telemetry: Telemetry
) -> HttpRoutes:
    """A ``rest`` receiver that hands what it accepts to ``ingest``."""
    authenticate = make_authenticate(auth if auth is not None else AuthConfig())
    ctx = CreateContext(
        "rest",
        data_dir,
        telemetry,
        logging.getLogger("test.rest"),
        ingest=ingest,
        extras={"authenticate": authenticate},
    )
    receiver = rest_factory.create(ctx, RestReceiverConfig())
    assert isinstance(receiver, HttpRoutes)
    return receiver


def local_config(**query: Any) -> QueryConfig:
    """A query config on ephemeral loopback ports."""
    return QueryConfig(
        http=HttpConfig(endpoint="127.0.0.1:0"), grpc=GrpcConfig(endpoint="127.0.0.1:0"), **query
    )


@dataclass
class Running:
    service: QueryService
    planted: Planted
    http: httpx.AsyncClient
    grpc_target: str
    ingested: list[tuple[ExportTraceServiceRequest, IngestMeta | None]]
    exporter: Any

    def headers(self, key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"}


async def _running(tmp_path: Path, auth: AuthConfig, **query: Any) -> AsyncGenerator[Running]:
    import time

    telemetry = Telemetry()
    ctx = CreateContext("clickhouse", tmp_path, telemetry, logging.getLogger("test"))
    exporter = create_exporter(ctx, ClickHouseExporterConfig())
    await exporter.start()
    planted = plant(time.time_ns() - 3 * HOUR)
    planted.batch.origin = "test:plant"
    await exporter.send(planted.batch)
    ingested: list[tuple[ExportTraceServiceRequest, IngestMeta | None]] = []
    seq = itertools.count()

    async def ingest(signal: int, payload: bytes, meta: IngestMeta | None = None) -> None:
        request = ExportTraceServiceRequest.FromString(payload)
        ingested.append((request, meta))
        batch = decode_traces(request)
        batch.origin = f"test:ingest:{next(seq)}"
        await exporter.send(batch)

    service = make_service(tmp_path, local_config(**query), auth, ingest, telemetry)
    await service.start()
    client = httpx.AsyncClient(base_url=f"http://127.0.0.1:{service.http_port}", timeout=30)
    try:
        yield Running(service, planted, client, f"127.0.0.1:{service.grpc_port}", ingested, exporter)
    finally:
        await client.aclose()
        await service.shutdown()
        await exporter.shutdown()


@pytest.fixture
async def start_running(tmp_path: Path) -> AsyncIterator[Callable[..., Awaitable[Running]]]:
    """``await start_running(auth=None, **query_settings)``: a service like ``running``'s (auth on with
    ``auth_config()`` unless given) with other query settings; stopped when the test ends."""
    async with contextlib.AsyncExitStack() as stack:

        async def start(auth: AuthConfig | None = None, **query: Any) -> Running:
            run = _running(tmp_path, auth if auth is not None else auth_config(), **query)
            item = await anext(run)
            stack.push_async_callback(run.aclose)
            return item

        yield start


@pytest.fixture
def new_service() -> Any:
    """``make_service``: a QueryService made by the extension factory (not started)."""
    return make_service


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[Running]:
    """Auth on (keys for org-a, org-a/web, org-b, ingest-only, revoked; user alice)."""
    async for item in _running(tmp_path, auth_config(), cache_ttl_seconds=0):
        yield item


@pytest.fixture
async def open_running(tmp_path: Path) -> AsyncIterator[Running]:
    """Auth off: every caller sees every organization."""
    async for item in _running(tmp_path, AuthConfig(), tail_poll_interval_seconds=0.1):
        yield item
