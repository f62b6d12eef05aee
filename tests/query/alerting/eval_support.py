"""A real chDB store written through the real ClickHouse exporter, and builders of model-call spans with
known figures, for the evaluation tests (rules → samples).

Times are planted relative to a fixed, injected ``NOW`` a few days before the real clock (inside the
store's retention) and aligned to an hour, so windows, grid buckets and seasons are exact.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from llm_observer.exporters.clickhouse import ClickHouseExporterConfig
from llm_observer.exporters.clickhouse import create as create_exporter
from llm_observer.kernel.batch import STATUS_ERROR, STATUS_OK, SpanBatch
from llm_observer.kernel.component import CreateContext
from llm_observer.kernel.telemetry import Telemetry
from llm_observer.query.alerting.config import Rule
from llm_observer.query.alerting.evaluate import Evaluator
from llm_observer.query.alerting.model import Sample
from llm_observer.storage.clickhouse.alert_reads import AlertStore
from tests.support import add_span

S = 10**9
MINUTE = 60 * S
HOUR = 3600 * S
DAY = 86400 * S
# Two days ago, on the hour: the store keeps it (90-day retention) and no real span can land after it.
NOW = (time.time_ns() - 2 * DAY) // HOUR * HOUR

_ids = itertools.count(1)


@dataclass(frozen=True)
class Call:
    """One model call to plant."""

    start_ns: int
    org: str = "org-a"
    project: str = "default"
    team: str = ""
    service: str = "svc"
    model: str = "gpt-4o"
    provider: str = "openai"
    user: str = ""
    duration_ms: float = 100.0
    error: bool = False
    cost_usd: float = 0.001
    input_tokens: int = 100
    output_tokens: int = 20
    ttft_s: float | None = None


def batch_of(calls: Iterable[Call]) -> SpanBatch:
    """The calls as client spans of one batch, each its own trace, with unique ids."""
    batch = SpanBatch(origin=f"eval-test-{next(_ids)}")
    for call in calls:
        n = next(_ids)
        attrs: dict[str, Any] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": call.provider,
            "gen_ai.request.model": call.model,
            "gen_ai.usage.input_tokens": call.input_tokens,
            "gen_ai.usage.output_tokens": call.output_tokens,
            "llm_observer.cost.usd": call.cost_usd,
        }
        if call.user:
            attrs["user.id"] = call.user
        if call.ttft_s is not None:
            attrs["gen_ai.response.time_to_first_chunk"] = call.ttft_s
        resource: dict[str, Any] = {
            "service.name": call.service,
            "llm_observer.organization.id": call.org,
            "llm_observer.project.id": call.project,
        }
        if call.team:
            resource["llm_observer.team.id"] = call.team
        add_span(
            batch,
            attrs,
            resource=resource,
            trace_id=n.to_bytes(16, "big"),
            span_id=n.to_bytes(8, "big"),
            name=f"chat {call.model}",
            start=call.start_ns,
            end=call.start_ns + int(call.duration_ms * 1e6),
            status_code=STATUS_ERROR if call.error else STATUS_OK,
        )
    return batch


def spread(count: int, start_ns: int, end_ns: int, **fields: Any) -> list[Call]:
    """``count`` calls evenly spread over ``[start_ns, end_ns)``, with the same ``fields``."""
    step = (end_ns - start_ns) // max(1, count)
    return [Call(start_ns=start_ns + i * step, **fields) for i in range(count)]


class Planted:
    """A started exporter over a chDB store in a temporary directory, and the ``AlertStore`` reading it."""

    def __init__(self, data_dir: Path) -> None:
        ctx = CreateContext("clickhouse", data_dir, Telemetry(), logging.getLogger("test.eval"))
        self.config = ClickHouseExporterConfig()
        self.exporter = create_exporter(ctx, self.config)

    async def start(self) -> None:
        await self.exporter.start()
        client = self.exporter.client
        assert client is not None
        self.store = AlertStore(client, self.config.database)

    async def write(self, calls: Iterable[Call], chunk: int = 50_000) -> None:
        pending = list(calls)
        for begin in range(0, len(pending), chunk):
            await self.exporter.send(batch_of(pending[begin : begin + chunk]))

    def evaluator(self, delay_s: float = 0.0) -> Evaluator:
        return Evaluator(self.store, evaluation_delay_s=delay_s)


@pytest.fixture
async def planted(tmp_path: Path) -> AsyncIterator[Planted]:
    """An empty store, written through the real ClickHouse exporter (import this fixture into a test
    module)."""
    store = Planted(tmp_path)
    await store.start()
    try:
        yield store
    finally:
        await store.exporter.shutdown()


def by_labels(samples: Sequence[Sample], **labels: str) -> list[Sample]:
    """The samples whose labels include every ``labels`` item."""
    return [s for s in samples if all(s.labels.get(k) == v for k, v in labels.items())]


def one(samples: Sequence[Sample], **labels: str) -> Sample:
    found = by_labels(samples, **labels)
    assert len(found) == 1, f"expected one sample with {labels}, got {[s.labels for s in found]}"
    return found[0]


def rule_of(spec: Mapping[str, Any]) -> Rule:
    """A rule validated as the config loader validates it."""
    from pydantic import TypeAdapter

    return TypeAdapter(Rule).validate_python(dict(spec))
