"""Loading and validating the YAML config.

The file has the OpenTelemetry Collector's shape (``receivers``, ``processors``, ``exporters``,
``service.pipelines``) plus ``data_dir``, ``query`` and ``auth``. It is merged over the built-in default
(mappings merge key by key, lists and scalars replace), so a file that only moves an endpoint keeps the
default pipeline. ``${VAR}``, ``${env:VAR}`` and ``${VAR:-default}`` in string values are expanded once, here.
Every problem is reported with the YAML path of the bad key, before anything starts.
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field, ValidationError

from llm_observer.kernel.component import ComponentConfig, Factory
from llm_observer.kernel.errors import ConfigError

KINDS = ("receivers", "processors", "exporters")
ENTRY_POINT_GROUPS = {kind: f"llm_observer.{kind}" for kind in KINDS}

DEFAULT_CONFIG_YAML = """
data_dir: ./.llm-observer
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:4317
      http:
        endpoint: 127.0.0.1:4318
processors:
  normalize: {}
  attribute: {}
  cost: {}
exporters:
  clickhouse:
    endpoint: chdb://clickhouse
  prometheus:
    endpoint: 127.0.0.1:9464
  qdrant:
    url: qdrant
service:
  wal:
    mode: disk
  pipelines:
    traces:
      receivers: [otlp]
      processors: [normalize, attribute, cost]
      exporters: [clickhouse, prometheus, qdrant]
query:
  http:
    endpoint: 127.0.0.1:8080
  grpc:
    endpoint: 127.0.0.1:8081
auth:
  enabled: false
"""


class WalConfig(ComponentConfig):
    mode: Literal["disk", "memory"] = Field(
        "disk", description="disk: durable before ack. memory: LOSSY, for benchmarks only."
    )
    dir: str = "wal"
    sync: bool = True
    segment_size_mib: int = Field(64, gt=0)
    max_size_mib: int = Field(2048, gt=0)
    max_pending_mib: int = Field(64, gt=0)


class DeliveryConfig(ComponentConfig):
    max_batch_mib: float = Field(
        4, gt=0, description="WAL bytes processed and exported as one batch, at most"
    )
    min_batch_mib: float = Field(1, ge=0, description="wait up to linger_seconds for this much")
    linger_seconds: float = Field(0.2, ge=0)
    timeout_seconds: float = Field(30, gt=0)
    initial_backoff_seconds: float = Field(0.1, gt=0)
    max_backoff_seconds: float = Field(10, gt=0)
    drain_timeout_seconds: float = Field(30, ge=0)


class PipelineConfig(ComponentConfig):
    receivers: list[str] = Field(min_length=1)
    processors: list[str] = []
    exporters: list[str] = Field(min_length=1)


class LogsConfig(ComponentConfig):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["text", "json"] = "text"


class TelemetryConfig(ComponentConfig):
    logs: LogsConfig = LogsConfig()


class ServiceConfig(ComponentConfig):
    pipelines: dict[str, PipelineConfig]
    wal: WalConfig = WalConfig()
    delivery: DeliveryConfig = DeliveryConfig()
    telemetry: TelemetryConfig = TelemetryConfig()
    extensions: list[str] = []


class _Root(BaseModel):
    model_config = {"extra": "forbid"}
    data_dir: str = "./.llm-observer"
    receivers: dict[str, Any] = {}
    processors: dict[str, Any] = {}
    exporters: dict[str, Any] = {}
    extensions: dict[str, Any] = {}
    connectors: dict[str, Any] = {}
    service: dict[str, Any] = {}
    query: dict[str, Any] = {}
    auth: dict[str, Any] = {}


@dataclass(frozen=True, slots=True)
class ComponentSpec:
    """A configured component: its id (``type[/name]``), factory and validated config."""

    id: str
    factory: Factory[Any, Any]
    config: Any


@dataclass(slots=True)
class Config:
    """The effective, validated configuration."""

    raw: dict[str, Any]
    data_dir: Path
    receivers: dict[str, ComponentSpec]
    processors: dict[str, ComponentSpec]
    exporters: dict[str, ComponentSpec]
    service: ServiceConfig
    query: Any
    auth: Any
    source: str = "<default>"
    factories: dict[str, dict[str, Factory[Any, Any]]] = field(default_factory=dict)


# --- factories -------------------------------------------------------------------------------------


def discover_factories(
    extra: Mapping[str, Mapping[str, Factory[Any, Any]]] | None = None,
) -> dict[str, dict[str, Factory[Any, Any]]]:
    """Factories by kind and type name, from the entry-point groups (plus ``extra``, for tests)."""
    found: dict[str, dict[str, Factory[Any, Any]]] = {kind: {} for kind in KINDS}
    for kind, group in ENTRY_POINT_GROUPS.items():
        for ep in entry_points(group=group):
            found[kind][ep.name] = _LazyFactory(ep.name, ep)  # type: ignore[assignment]
    for kind, factories in (extra or {}).items():
        found[kind].update(factories)
    return found


class _LazyFactory:
    """Loads an entry point only when its component is configured (so unused heavy deps stay unloaded)."""

    def __init__(self, name: str, ep: Any) -> None:
        self.name = name
        self._ep = ep
        self._factory: Factory[Any, Any] | None = None

    def load(self) -> Factory[Any, Any]:
        if self._factory is None:
            loaded = self._ep.load()
            if not isinstance(loaded, Factory):
                raise TypeError(f"entry point {self._ep.value} is not a Factory")
            self._factory = loaded
        return self._factory


def _resolve(factory: Any) -> Factory[Any, Any]:
    return factory.load() if isinstance(factory, _LazyFactory) else factory


# --- loading ---------------------------------------------------------------------------------------

_ENV = re.compile(r"\$\{(?:env:)?([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _expand(node: Any, path: str, problems: list[tuple[str, str]]) -> Any:
    if isinstance(node, dict):
        return {k: _expand(v, f"{path}.{k}" if path else str(k), problems) for k, v in node.items()}
    if isinstance(node, list):
        return [_expand(v, f"{path}[{i}]", problems) for i, v in enumerate(node)]
    if isinstance(node, str) and "${" in node:

        def sub(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            value = os.environ.get(name)
            if value is None:
                if default is None:
                    problems.append((path, f"environment variable {name} is not set"))
                    return ""
                return default
            return value

        return _ENV.sub(sub, node)
    return node


def deep_merge(base: Any, override: Any) -> Any:
    """``override`` over ``base``: mappings merge key by key; anything else replaces."""
    if isinstance(base, dict) and isinstance(override, dict):
        out = dict(base)
        for key, value in override.items():
            out[key] = deep_merge(base[key], value) if key in base else copy.deepcopy(value)
        return out
    return copy.deepcopy(override)


def default_raw() -> dict[str, Any]:
    data = yaml.safe_load(DEFAULT_CONFIG_YAML)
    assert isinstance(data, dict)
    return data


def read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError([("<file>", f"cannot read {path}: {exc.strerror}")]) from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError([("<file>", f"{path} is not valid YAML: {exc}")]) from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError([("<root>", "the config must be a mapping")])
    return data


def load_config(
    path: Path | str | None = None,
    *,
    data_dir: Path | str | None = None,
    overrides: dict[str, Any] | None = None,
    extra_factories: Mapping[str, Mapping[str, Factory[Any, Any]]] | None = None,
) -> Config:
    """Read, merge over the default, expand, and validate; raises ``ConfigError`` naming each bad key."""
    raw = default_raw()
    if path is not None:
        raw = deep_merge(raw, read_yaml(Path(path)))
    if overrides:
        raw = deep_merge(raw, overrides)
    if data_dir is not None:
        raw["data_dir"] = str(data_dir)
    config = validate(raw, extra_factories)
    config.source = str(path) if path is not None else "<default>"
    return config


def _pydantic_problems(prefix: str, exc: ValidationError) -> list[tuple[str, str]]:
    out = []
    for err in exc.errors():
        loc = ".".join(str(part) for part in err["loc"])
        where = f"{prefix}.{loc}" if prefix and loc else (prefix or loc)
        message = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
        out.append((where, message))
    return out


def _model(prefix: str, model: type[BaseModel], data: Any, problems: list[tuple[str, str]]) -> Any:
    try:
        return model.model_validate(data if data is not None else {})
    except ValidationError as exc:
        problems.extend(_pydantic_problems(prefix, exc))
        return None


def validate(
    raw: dict[str, Any], extra_factories: Mapping[str, Mapping[str, Factory[Any, Any]]] | None = None
) -> Config:
    problems: list[tuple[str, str]] = []
    raw = _expand(raw, "", problems)
    known = set(_Root.model_fields)
    problems.extend((str(key), "unknown key") for key in raw if key not in known)
    root = _model("", _Root, {k: v for k, v in raw.items() if k in known}, problems)
    if root is None:
        raise ConfigError(problems)
    factories = discover_factories(extra_factories)
    specs: dict[str, dict[str, ComponentSpec]] = {kind: {} for kind in KINDS}
    for kind in KINDS:
        for component_id, body in (getattr(root, kind) or {}).items():
            type_name = str(component_id).split("/", 1)[0]
            path = f"{kind}.{component_id}"
            lazy = factories[kind].get(type_name)
            if lazy is None:
                known_types = ", ".join(sorted(factories[kind])) or "none"
                problems.append((path, f"unknown {kind[:-1]} type {type_name!r} (known: {known_types})"))
                continue
            try:
                factory = _resolve(lazy)
            except Exception as exc:
                problems.append((path, f"component type {type_name!r} cannot be loaded: {exc}"))
                continue
            cfg = _model(path, factory.config_model, body, problems)
            if cfg is not None:
                specs[kind][str(component_id)] = ComponentSpec(str(component_id), factory, cfg)
    service = _model("service", ServiceConfig, root.service, problems)
    if service is not None:
        for name, pipeline in service.pipelines.items():
            signal = name.split("/", 1)[0]
            if signal != "traces":
                problems.append(
                    (
                        f"service.pipelines.{name}",
                        "only traces pipelines exist so far (metrics and logs are received and counted)",
                    )
                )
            for kind in KINDS:
                for index, ref in enumerate(getattr(pipeline, kind)):
                    if ref not in (getattr(root, kind) or {}):
                        problems.append(
                            (
                                f"service.pipelines.{name}.{kind}[{index}]",
                                f"{kind[:-1]} {ref!r} is not defined under {kind}",
                            )
                        )
    query = auth = None
    try:
        from llm_observer.kernel.auth import AuthConfig

        auth = _model("auth", AuthConfig, root.auth, problems)
    except ImportError:
        auth = root.auth
    try:
        from llm_observer.query.config import QueryConfig

        query = _model("query", QueryConfig, root.query, problems)
    except ImportError:
        query = root.query
    if problems:
        raise ConfigError(problems)
    assert service is not None
    return Config(
        raw=raw,
        data_dir=Path(root.data_dir),
        receivers=specs["receivers"],
        processors=specs["processors"],
        exporters=specs["exporters"],
        service=service,
        query=query,
        auth=auth,
        factories={kind: dict(f) for kind, f in factories.items()},
    )


_SECRET_KEY = re.compile(r"(password|secret|api_key|token)", re.IGNORECASE)


def _mask_secrets(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            k: ("<redacted>" if isinstance(v, str) and v and _SECRET_KEY.search(str(k)) else _mask_secrets(v))
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_mask_secrets(v) for v in node]
    return node


def effective_yaml(config: Config) -> str:
    """The effective config as YAML, every component with its defaults filled in (secrets masked)."""
    out: dict[str, Any] = {"data_dir": str(config.data_dir)}
    for kind in KINDS:
        out[kind] = {cid: spec.config.model_dump(mode="json") for cid, spec in getattr(config, kind).items()}
    out["service"] = config.service.model_dump(mode="json")
    for key in ("query", "auth"):
        value = getattr(config, key)
        out[key] = value.model_dump(mode="json") if isinstance(value, BaseModel) else value
    return yaml.safe_dump(_mask_secrets(out), sort_keys=False)
