"""Every registered component type honours the lifecycle contract of ``llm_observer.kernel.component``.

Components come from the entry-point groups, as the collector finds them: one that cannot be imported fails
here (it is not skipped). Each is created from its default config (listen endpoints moved to port 0, data
under the test's directory; the components it names get their defaults too) and goes through create → start
→ start → shutdown → shutdown twice, leaving no task running; ``shutdown`` before ``start`` is safe.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from llm_observer.collector.config import ENTRY_POINT_GROUPS, _resolve, discover_factories
from llm_observer.kernel.batch import SpanBatch
from llm_observer.kernel.component import (
    SIGNAL_LOGS,
    SIGNAL_METRICS,
    Component,
    CreateContext,
    Factory,
    IngestMeta,
    signals_of,
)
from llm_observer.kernel.endpoints import parse_endpoint
from llm_observer.kernel.signals import SignalBatch
from llm_observer.kernel.telemetry import Telemetry
from tests.support import span_batch, wait_for

REGISTERED = [(kind, name) for kind, found in discover_factories().items() for name in sorted(found)]


def _listen_anywhere(value: Any) -> Any:
    """The config with every ``host:port`` endpoint moved to ``127.0.0.1:0`` (URLs and paths untouched)."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if key == "endpoint" and isinstance(item, str) and "://" not in item:
                try:
                    parse_endpoint(item)
                except ValueError:
                    out[key] = item
                else:
                    out[key] = "127.0.0.1:0"
            else:
                out[key] = _listen_anywhere(item)
        return out
    if isinstance(value, list):
        return [_listen_anywhere(item) for item in value]
    return value


def _default_config(model: type[BaseModel]) -> BaseModel:
    default = model()
    return model.model_validate(_listen_anywhere(default.model_dump()))


class _Ingest:
    def __init__(self) -> None:
        self.requests: list[tuple[int, bytes, IngestMeta | None]] = []

    async def __call__(self, signal: int, payload: bytes, meta: IngestMeta | None = None) -> None:
        self.requests.append((signal, payload, meta))


def _named_configs(factory: Factory[Any, Any], config: BaseModel) -> dict[str, dict[str, BaseModel]]:
    """The default config of every component ``config`` names (the query extension reads its stores'
    settings from the exporters it names), by kind then id, as the service hands them over."""
    configs: dict[str, dict[str, BaseModel]] = {}
    for ref in factory.references(config) if factory.references else ():
        named = _resolve(discover_factories()[ref.kind][ref.component_id.split("/", 1)[0]])
        configs.setdefault(ref.kind, {})[ref.component_id] = _default_config(named.config_model)
    return configs


def _context(
    kind: str, name: str, data_dir: Path, factory: Factory[Any, Any], config: BaseModel
) -> CreateContext:
    return CreateContext(
        component_id=name,
        data_dir=data_dir,
        telemetry=Telemetry(),
        logger=logging.getLogger(f"tests.conformance.{name}"),
        ingest=_Ingest() if kind in ("receivers", "extensions") else None,
        configs=_named_configs(factory, config),
        extras={"authenticate": None} if kind == "receivers" else {},
    )


def _one_span() -> SpanBatch:
    now = time.time_ns()
    attributes = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.usage.input_tokens": 10,
        "gen_ai.usage.output_tokens": 5,
    }
    return span_batch(
        attributes,
        resource={"service.name": "conformance"},
        trace_id=os.urandom(16),
        span_id=os.urandom(8),
        start=now - 1_000_000_000,
        end=now,
        scope_name="tests",
    )


async def _no_task_left(before: set[asyncio.Task[Any]], what: str) -> None:
    """Tasks a component started must be finished once its ``shutdown`` returned (brief grace to settle)."""

    def left() -> set[asyncio.Task[Any]]:
        return {t for t in asyncio.all_tasks() - before if t is not asyncio.current_task() and not t.done()}

    await wait_for(
        lambda: not left(),
        timeout=2.0,
        what=lambda: f"{what} to finish its tasks: {sorted(t.get_name() for t in left())} still run",
    )


def test_conformance_every_kind_has_registered_components() -> None:
    kinds = {kind for kind, _ in REGISTERED}
    assert kinds == set(ENTRY_POINT_GROUPS)
    assert ("receivers", "otlp") in REGISTERED
    assert ("exporters", "debug") in REGISTERED


@pytest.mark.parametrize(("kind", "name"), REGISTERED, ids=[f"{k}/{n}" for k, n in REGISTERED])
async def test_conformance_create_start_shutdown_twice(tmp_path: Path, kind: str, name: str) -> None:
    factory = _resolve(discover_factories()[kind][name])  # an import error fails the test here
    assert factory.type_name == name
    config = _default_config(factory.config_model)
    before = asyncio.all_tasks()

    for round_ in (1, 2):
        component: Any = factory.create(_context(kind, name, tmp_path, factory, config), config)
        has_lifecycle = isinstance(component, Component)
        if kind == "processors":
            out = component(SpanBatch())
            assert isinstance(out, SpanBatch) and len(out) == 0
            if not has_lifecycle:  # a plain function: nothing to start
                out = component(_one_span())
                assert isinstance(out, SpanBatch) and len(out) == 1
                continue
        assert has_lifecycle, f"{kind[:-1]} {name} has no start/shutdown"
        await component.start()
        await component.start()  # idempotent
        takes = signals_of(factory)
        if kind in ("exporters", "connectors") and "traces" in takes:
            await component.send(SpanBatch())
        if kind == "exporters" and "logs" in takes:
            await component.send_logs(SignalBatch(SIGNAL_LOGS))
        if kind == "exporters" and "metrics" in takes and factory.push_metrics:
            await component.send_metrics(SignalBatch(SIGNAL_METRICS))
        if kind == "processors":
            out = component(_one_span())
            assert isinstance(out, SpanBatch) and len(out) == 1
        await component.shutdown()
        await component.shutdown()  # idempotent
        await _no_task_left(before, f"{kind[:-1]} {name} (round {round_})")


@pytest.mark.parametrize(("kind", "name"), REGISTERED, ids=[f"{k}/{n}" for k, n in REGISTERED])
async def test_conformance_shutdown_before_start_is_safe(tmp_path: Path, kind: str, name: str) -> None:
    factory = _resolve(discover_factories()[kind][name])
    config = _default_config(factory.config_model)
    component = factory.create(_context(kind, name, tmp_path, factory, config), config)
    if isinstance(component, Component):
        await component.shutdown()
        await component.shutdown()
        # ... and leaves the component startable.
        await component.start()
        await component.shutdown()
