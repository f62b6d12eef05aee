"""The query service as an extension: entry points, the stores its config names, its lifecycle."""

from __future__ import annotations

import logging
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import httpx
import pydantic
import pytest

from llm_observer.exporters.clickhouse import ClickHouseExporterConfig
from llm_observer.exporters.qdrant import QdrantExporterConfig
from llm_observer.exporters.vectors import VectorsExporterConfig
from llm_observer.kernel.component import Component, CreateContext, Factory, Reference
from llm_observer.kernel.errors import ConfigError
from llm_observer.kernel.telemetry import Telemetry
from llm_observer.query.cli_commands import add_traces_commands
from llm_observer.query.component import factory
from llm_observer.query.config import GrpcConfig, HttpConfig, QueryConfig, VectorsConfig
from llm_observer.query.service import QueryService
from llm_observer.storage.clickhouse.settings import ClickHouseSettings
from llm_observer.storage.vectors.settings import ClickHouseVectorSettings, VectorSettings


def _config(**fields: Any) -> QueryConfig:
    return QueryConfig(
        http=HttpConfig(endpoint="127.0.0.1:0"), grpc=GrpcConfig(endpoint="127.0.0.1:0"), **fields
    )


def _context(data_dir: Path, exporters: dict[str, Any], **fields: Any) -> CreateContext:
    return CreateContext(
        "query", data_dir, Telemetry(), logging.getLogger("test"), configs={"exporters": exporters}, **fields
    )


def test_component_is_registered_through_entry_points() -> None:
    (extension,) = entry_points(group="llm_observer.extensions", name="query")
    assert extension.load() is factory
    assert (
        isinstance(factory, Factory) and factory.type_name == "query" and factory.config_model is QueryConfig
    )
    (command,) = entry_points(group="llm_observer.commands", name="traces")
    assert command.load() is add_traces_commands


def test_component_config_names_the_stores_it_reads() -> None:
    config = QueryConfig.model_validate(
        {"storage": "clickhouse/server", "vectors": {"enabled": True, "exporter": "qdrant/prompts"}}
    )
    assert factory.references is not None
    assert list(factory.references(config)) == [
        Reference("storage", "exporters", "clickhouse/server", ClickHouseSettings),
        Reference("vectors.exporter", "exporters", "qdrant/prompts", VectorSettings),
    ]
    without_vectors = QueryConfig(vectors=VectorsConfig(enabled=False))
    assert list(factory.references(without_vectors)) == [
        Reference("storage", "exporters", "clickhouse", ClickHouseSettings)
    ]
    # The settings live with the exporter: the old inline shape is refused, as are bad endpoints.
    for bad in (
        {"storage": {"endpoint": "chdb://clickhouse"}},
        {"vectors": {"url": "qdrant"}},
        {"http": {"endpoint": "localhost"}},
        {"grpc": {"endpoint": "127.0.0.1:99999"}},
    ):
        with pytest.raises(pydantic.ValidationError):
            QueryConfig.model_validate(bad)


def test_component_refuses_a_store_it_cannot_read(tmp_path: Path) -> None:
    good = {"clickhouse": ClickHouseExporterConfig(), "qdrant": QdrantExporterConfig()}
    cases: list[tuple[QueryConfig, dict[str, Any], str]] = [
        (_config(), {"qdrant": QdrantExporterConfig()}, "query.storage"),
        (_config(storage="qdrant"), good, "query.storage"),
        (_config(vectors=VectorsConfig(exporter="clickhouse")), good, "query.vectors.exporter"),
        (_config(vectors=VectorsConfig(exporter="missing")), good, "query.vectors.exporter"),
    ]
    for config, exporters, path in cases:
        with pytest.raises(ConfigError) as info:
            factory.create(_context(tmp_path, exporters), config)
        assert [problem[0] for problem in info.value.problems] == [path]
    # Vectors off: no vector store is needed; any ClickHouseSettings is a store it reads.
    service = factory.create(
        _context(tmp_path, {"ch": ClickHouseSettings(database="spans")}),
        _config(storage="ch", vectors=VectorsConfig(enabled=False)),
    )
    assert service.storage.database == "spans" and service.vectors is None


async def test_component_starts_and_shuts_down_twice(tmp_path: Path) -> None:
    exporters = {"clickhouse": ClickHouseExporterConfig(), "qdrant": QdrantExporterConfig(collection="c1")}
    service = factory.create(_context(tmp_path, exporters), _config(vectors=VectorsConfig(exporter="qdrant")))
    assert isinstance(service, QueryService) and isinstance(service, Component)
    assert service.vectors is not None and service.vectors.collection == "c1"
    await service.shutdown()  # before start
    for _ in range(2):
        await service.start()
        await service.start()
        assert service.http_port and service.grpc_port
        # ctx.auth None: auth is off, the caller needs no credential.
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{service.http_port}") as http:
            response = await http.get("/api/v1/traces")
            assert response.status_code == 200, response.text
            health = (await http.get("/health")).json()
            assert health == {"status": "ok", "storage": "chdb://clickhouse", "ingest": False}
        await service.shutdown()
        await service.shutdown()


def test_component_reads_vectors_from_the_clickhouse_store_the_vectors_exporter_names(tmp_path: Path) -> None:
    spans = ClickHouseExporterConfig(database="spans")
    exporters = {"ch": spans, "vectors": VectorsExporterConfig(storage="ch")}
    service = factory.create(_context(tmp_path, exporters), _config(storage="ch"))
    assert isinstance(service.vectors, ClickHouseVectorSettings)
    assert service.vectors.clickhouse is spans
    # Its storage must be a ClickHouse store.
    bad = {"ch": spans, "vectors": VectorsExporterConfig(storage="qdrant"), "qdrant": QdrantExporterConfig()}
    with pytest.raises(ConfigError) as info:
        factory.create(_context(tmp_path, bad), _config(storage="ch"))
    assert [problem[0] for problem in info.value.problems] == ["query.vectors.exporter"]
