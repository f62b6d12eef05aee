"""Model-call spans with prompts, written to a real chDB store through the real ClickHouse exporter, for the
prompt-version and prompt-cluster tests."""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from llm_observer.exporters.clickhouse import ClickHouseExporterConfig
from llm_observer.exporters.clickhouse import create as create_exporter
from llm_observer.kernel.batch import STATUS_ERROR, STATUS_OK, SpanBatch
from llm_observer.kernel.component import CreateContext
from llm_observer.kernel.telemetry import Telemetry
from llm_observer.storage.clickhouse.prompt_reads import PromptStore
from tests.support import add_span

S = 10**9
MINUTE = 60 * S
HOUR = 3600 * S
DAY = 86_400 * S

_ids = itertools.count(1)


@dataclass(frozen=True)
class PromptCall:
    """One model call to plant; ``user`` / ``system`` become ``gen_ai.input.messages`` (empty: none)."""

    start_ns: int
    user: str = ""
    system: str = ""
    prompt_name: str = ""
    prompt_version: str = ""
    org: str = "org-a"
    project: str = "default"
    model: str = "gpt-4o"
    duration_ms: float = 100.0
    error: bool = False
    cost_usd: float = 0.001
    input_tokens: int = 100
    output_tokens: int = 20
    extra: dict[str, Any] = field(default_factory=dict)


def messages(user: str, system: str = "") -> str:
    out = []
    if system:
        out.append({"role": "system", "parts": [{"type": "text", "content": system}]})
    out.append({"role": "user", "parts": [{"type": "text", "content": user}]})
    return json.dumps(out)


def batch_of(calls: Iterable[PromptCall]) -> tuple[SpanBatch, list[tuple[str, str]]]:
    """The calls as client spans of one batch, each its own trace; with the (trace id, span id) of each."""
    batch = SpanBatch(origin=f"prompt-test-{next(_ids)}")
    ids = []
    for call in calls:
        n = next(_ids)
        attrs: dict[str, Any] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": call.model,
            "gen_ai.usage.input_tokens": call.input_tokens,
            "gen_ai.usage.output_tokens": call.output_tokens,
            "llm_observer.cost.usd": call.cost_usd,
            **call.extra,
        }
        if call.user:
            attrs["gen_ai.input.messages"] = messages(call.user, call.system)
        if call.prompt_name:
            attrs["gen_ai.prompt.name"] = call.prompt_name
        if call.prompt_version:
            attrs["gen_ai.prompt.version"] = call.prompt_version
        resource = {
            "service.name": "svc",
            "llm_observer.organization.id": call.org,
            "llm_observer.project.id": call.project,
        }
        trace_id, span_id = n.to_bytes(16, "big"), n.to_bytes(8, "big")
        add_span(
            batch,
            attrs,
            resource=resource,
            trace_id=trace_id,
            span_id=span_id,
            name=f"chat {call.model}",
            start=call.start_ns,
            end=call.start_ns + int(call.duration_ms * 1e6),
            status_code=STATUS_ERROR if call.error else STATUS_OK,
        )
        ids.append((trace_id.hex(), span_id.hex()))
    return batch, ids


class PromptPlant:
    """A started ClickHouse exporter over a chDB store in a temporary directory, and its prompt reads."""

    def __init__(self, data_dir: Path) -> None:
        ctx = CreateContext("clickhouse", data_dir, Telemetry(), logging.getLogger("test.prompts"))
        self.config = ClickHouseExporterConfig()
        self.exporter = create_exporter(ctx, self.config)

    async def start(self) -> None:
        await self.exporter.start()
        client = self.exporter.client
        assert client is not None
        self.store = PromptStore(client, self.config.database)

    async def write(self, calls: Iterable[PromptCall]) -> list[tuple[str, str]]:
        batch, ids = batch_of(calls)
        await self.exporter.send(batch)
        return ids


@pytest.fixture
async def prompt_plant(tmp_path: Path) -> AsyncIterator[PromptPlant]:
    """An empty store written through the real ClickHouse exporter (import this fixture into a test module)."""
    plant = PromptPlant(tmp_path)
    await plant.start()
    try:
        yield plant
    finally:
        await plant.exporter.shutdown()
