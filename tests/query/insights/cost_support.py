"""A real chDB store written through the real ClickHouse exporter, with model-call spans priced by the real
``cost`` processor (genai-prices), for the cost insight tests and the benchmark.

``LlmCall`` describes one call; ``CostPlant.write`` turns calls into spans (parent/child links as given),
runs the cost processor over them as the collector does, and exports them.
"""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from llm_observer.exporters.clickhouse import ClickHouseExporterConfig
from llm_observer.exporters.clickhouse import create as create_exporter
from llm_observer.kernel.batch import STATUS_ERROR, STATUS_OK, SpanBatch
from llm_observer.kernel.component import CreateContext
from llm_observer.kernel.telemetry import Telemetry
from llm_observer.processors.cost import CostConfig
from llm_observer.processors.cost import create as create_cost
from llm_observer.storage.clickhouse.cost_reads import CostStore
from llm_observer.storage.clickhouse.reads import TraceStore
from tests.support import add_span

S = 10**9
MINUTE = 60 * S
HOUR = 3600 * S
DAY = 86400 * S

_ids = itertools.count(1)


def messages(*pairs: tuple[str, str]) -> str:
    """``gen_ai.input.messages`` JSON of ``(role, text)`` pairs."""
    return json.dumps([{"role": r, "parts": [{"type": "text", "content": t}]} for r, t in pairs])


def output(text: str, finish: str = "stop") -> str:
    return json.dumps(
        [{"role": "assistant", "parts": [{"type": "text", "content": text}], "finish_reason": finish}]
    )


@dataclass
class LlmCall:
    """One model call (or, with ``model=""``, a plain span such as an agent step)."""

    start_ns: int
    model: str = "gpt-4o"
    provider: str = "openai"
    org: str = "org-a"
    project: str = "default"
    team: str = ""
    input_tokens: int = 100
    output_tokens: int = 20
    cache_read_tokens: int = 0
    user: str = ""
    system: str = ""
    tools: str = ""
    output: str = ""
    finish: str = "stop"
    temperature: float | None = None
    max_tokens: int | None = None
    error: bool = False
    duration_ms: float = 500.0
    cost_usd: float | None = None  # set: this cost as is (no pricing)
    trace: int | None = None  # calls sharing a trace number share a trace
    span: int = field(default_factory=lambda: next(_ids))
    parent: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def trace_id(self) -> str:
        return (self.trace if self.trace is not None else self.span).to_bytes(16, "big").hex()

    @property
    def span_id(self) -> str:
        return self.span.to_bytes(8, "big").hex()


def batch_of(calls: Iterable[LlmCall]) -> SpanBatch:
    batch = SpanBatch(origin=f"cost-test-{next(_ids)}")
    for call in calls:
        attrs: dict[str, Any] = dict(call.extra)
        if call.model:
            attrs.update(
                {
                    "gen_ai.operation.name": "chat",
                    "gen_ai.provider.name": call.provider,
                    "gen_ai.request.model": call.model,
                    "gen_ai.response.model": call.model,
                    "gen_ai.usage.input_tokens": call.input_tokens,
                    "gen_ai.usage.output_tokens": call.output_tokens,
                    "gen_ai.response.finish_reasons": [call.finish],
                }
            )
            if call.cache_read_tokens:
                attrs["gen_ai.usage.cache_read.input_tokens"] = call.cache_read_tokens
        if call.user:
            attrs["gen_ai.input.messages"] = messages(("user", call.user))
        if call.system:
            attrs["gen_ai.system_instructions"] = json.dumps([{"type": "text", "content": call.system}])
        if call.tools:
            attrs["gen_ai.tool.definitions"] = call.tools
        if call.output:
            attrs["gen_ai.output.messages"] = output(call.output, call.finish)
        if call.temperature is not None:
            attrs["gen_ai.request.temperature"] = call.temperature
        if call.max_tokens is not None:
            attrs["gen_ai.request.max_tokens"] = call.max_tokens
        if call.cost_usd is not None:
            attrs["llm_observer.cost.usd"] = call.cost_usd
        resource: dict[str, Any] = {
            "service.name": "svc",
            "llm_observer.organization.id": call.org,
            "llm_observer.project.id": call.project,
        }
        if call.team:
            resource["llm_observer.team.id"] = call.team
        add_span(
            batch,
            attrs,
            resource=resource,
            trace_id=bytes.fromhex(call.trace_id),
            span_id=bytes.fromhex(call.span_id),
            parent_span_id=call.parent.to_bytes(8, "big") if call.parent is not None else b"",
            name=f"chat {call.model}" if call.model else "agent step",
            start=call.start_ns,
            end=call.start_ns + int(call.duration_ms * 1e6),
            status_code=STATUS_ERROR if call.error else STATUS_OK,
        )
    return batch


class CostPlant:
    """A started exporter over a chDB store in a directory, the cost processor, and the reads."""

    def __init__(self, data_dir: Path) -> None:
        telemetry = Telemetry()
        ctx = CreateContext("clickhouse", data_dir, telemetry, logging.getLogger("test.cost"))
        self.config = ClickHouseExporterConfig()
        self.exporter = create_exporter(ctx, self.config)
        self.price = create_cost(
            CreateContext("cost", data_dir, telemetry, logging.getLogger("test.cost")), CostConfig()
        )

    async def start(self) -> None:
        await self.exporter.start()
        client = self.exporter.client
        assert client is not None
        self.traces = TraceStore(client, self.config.database)
        self.store = CostStore.of(self.traces)

    async def write(self, calls: Sequence[LlmCall], chunk: int = 50_000) -> None:
        for begin in range(0, len(calls), chunk):
            part = calls[begin : begin + chunk]
            batch = batch_of(part)
            batch = self.price(batch)
            for row, call in enumerate(part):
                if call.cost_usd is not None:  # a given cost stays as given
                    batch.attributes[row]["llm_observer.cost.usd"] = call.cost_usd
            await self.exporter.send(batch)

    async def close(self) -> None:
        await self.exporter.shutdown()


@pytest.fixture
async def cost_plant(tmp_path: Path) -> AsyncIterator[CostPlant]:
    """An empty store (import this fixture into a test module)."""
    plant = CostPlant(tmp_path)
    await plant.start()
    try:
        yield plant
    finally:
        await plant.close()
