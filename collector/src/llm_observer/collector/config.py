"""Loading and validating the YAML config.

The file has the OpenTelemetry Collector's shape (``receivers``, ``processors``, ``exporters``, ``connectors``,
``service.pipelines``, ``service.extensions``) plus ``data_dir`` and ``auth``. An extension is configured under
the top-level key of its type (``query:`` for the query service) and runs when ``service.extensions`` lists it. It is merged over the built-in default
(mappings merge key by key, lists and scalars replace, ``null`` over a mapping removes it), so a file that only moves an endpoint keeps the
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

from llm_observer.kernel.auth import AuthConfig
from llm_observer.kernel.component import ComponentConfig, Factory, signals_of
from llm_observer.kernel.errors import ConfigError

KINDS = ("receivers", "processors", "exporters", "connectors")
"""Sections of named components (``type[/name]`` ids)."""
EXTENSIONS = "extensions"
ENTRY_POINT_GROUPS = {kind: f"llm_observer.{kind}" for kind in (*KINDS, EXTENSIONS)}
PIPELINE_SIGNALS = ("traces", "metrics", "logs")

DEFAULT_CONFIG_YAML = """
data_dir: ./.llm-observer
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:4317
      http:
        endpoint: 127.0.0.1:4318
  rest: {}
processors:
  tenant: {}
  logjoin: {}
  normalize: {}
  attribute: {}
  cost: {}
  rollup: {}
connectors:
  spanmetrics: {}
exporters:
  clickhouse:
    endpoint: chdb://clickhouse
  prometheus:
    endpoint: 127.0.0.1:9464
  # Prompt embeddings, each unique text once, in ClickHouse beside the spans (the qdrant exporter is the
  # option for a Qdrant server).
  vectors:
    storage: clickhouse
    # Semantic search is optional: it must never hold the WAL, and so ingest, hostage.
    sending_queue:
      on_overflow: drop
service:
  # alerting: rules from the top-level ``alerting:`` key, evaluated in the service, alerts served by the query API
  extensions: [query, alerting]
  telemetry:
    metrics:
      exporters: [prometheus]
  wal:
    mode: disk
  pipelines:
    traces:
      receivers: [otlp, rest]
      processors: [tenant, logjoin, normalize, attribute, cost, rollup]
      exporters: [clickhouse, spanmetrics, vectors]
    metrics/genai:
      receivers: [spanmetrics]
      exporters: [prometheus]
    logs:
      receivers: [otlp]
      exporters: [clickhouse]
    metrics/otlp:
      receivers: [otlp]
      exporters: [clickhouse]
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
    max_elapsed_seconds: float = Field(
        300,
        ge=0,
        description="retry a failing batch this long, then quarantine it in the dead-letter store (0: for ever)",
    )
    stall_seconds: float = Field(
        60, gt=0, description="/health reports an exporter with data waiting and no progress for this long"
    )
    drain_timeout_seconds: float = Field(30, ge=0)


class RetryOnFailureConfig(ComponentConfig):
    """An exporter's ``retry_on_failure``; unset keys take ``service.delivery``'s values."""

    initial_interval_seconds: float | None = Field(None, gt=0)
    max_interval_seconds: float | None = Field(None, gt=0)
    max_elapsed_seconds: float | None = Field(None, ge=0)


class SendingQueueConfig(ComponentConfig):
    """An exporter's ``sending_queue``: how far it may fall behind the WAL head."""

    on_overflow: Literal["block", "drop"] = Field(
        "block",
        description="block: keep the backlog (a full WAL refuses ingest); drop: skip ahead, counted",
    )
    max_lag_mib: float = Field(
        256, ge=0, description="drop: bound on the WAL bytes not yet delivered (0: none)"
    )
    max_lag_seconds: float = Field(900, ge=0, description="drop: bound on the age of the oldest (0: none)")


class ExporterDeliveryConfig(ComponentConfig):
    """The delivery keys every exporter and connector accepts beside its own (as the Collector's
    exporterhelper adds them): the pipeline applies them, the component never sees them."""

    retry_on_failure: RetryOnFailureConfig = RetryOnFailureConfig()
    sending_queue: SendingQueueConfig = SendingQueueConfig()


DELIVERY_KEYS = tuple(ExporterDeliveryConfig.model_fields)


class PipelineConfig(ComponentConfig):
    receivers: list[str] = Field(min_length=1)
    processors: list[str] = []
    exporters: list[str] = Field(min_length=1)


class LogsConfig(ComponentConfig):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["text", "json"] = "text"


class MetricsTelemetryConfig(ComponentConfig):
    exporters: list[str] = Field(
        default_factory=list, description="metrics exporters that expose the collector's own metrics"
    )


class TelemetryConfig(ComponentConfig):
    logs: LogsConfig = LogsConfig()
    metrics: MetricsTelemetryConfig = MetricsTelemetryConfig()


class ServiceConfig(ComponentConfig):
    pipelines: dict[str, PipelineConfig]
    wal: WalConfig = WalConfig()
    delivery: DeliveryConfig = DeliveryConfig()
    telemetry: TelemetryConfig = TelemetryConfig()
    extensions: list[str] = []


class _Root(BaseModel):
    """The fixed top-level keys; extension sections (``query``) are validated by their own factories."""

    model_config = {"extra": "forbid"}
    data_dir: str = "./.llm-observer"
    receivers: dict[str, Any] = {}
    processors: dict[str, Any] = {}
    exporters: dict[str, Any] = {}
    connectors: dict[str, Any] = {}
    service: dict[str, Any] = {}
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
    connectors: dict[str, ComponentSpec]
    extensions: dict[str, ComponentSpec]  # by type name, whether or not service.extensions runs them
    service: ServiceConfig
    auth: AuthConfig
    source: str = "<default>"
    factories: dict[str, dict[str, Factory[Any, Any]]] = field(default_factory=dict)
    # Exporters' and connectors' ``retry_on_failure`` / ``sending_queue``, by id (defaults when absent).
    delivery: dict[str, ExporterDeliveryConfig] = field(default_factory=dict)


# --- factories -------------------------------------------------------------------------------------


def discover_factories(
    extra: Mapping[str, Mapping[str, Factory[Any, Any]]] | None = None,
) -> dict[str, dict[str, Factory[Any, Any]]]:
    """Factories by kind and type name, from the entry-point groups (plus ``extra``, for tests)."""
    found: dict[str, dict[str, Factory[Any, Any]]] = {kind: {} for kind in ENTRY_POINT_GROUPS}
    for kind, group in ENTRY_POINT_GROUPS.items():
        for ep in entry_points(group=group):
            found[kind][ep.name] = _LazyFactory(ep.name, ep)  # type: ignore[assignment]
    for kind, factories in (extra or {}).items():
        found.setdefault(kind, {}).update(factories)
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
    """``override`` over ``base``: mappings merge key by key; anything else replaces; a key set to ``null``
    over a mapping of the base removes it (``metrics/genai: null`` drops that default pipeline)."""
    if isinstance(base, dict) and isinstance(override, dict):
        out = dict(base)
        for key, value in override.items():
            if value is None and isinstance(base.get(key), dict):
                del out[key]
            else:
                out[key] = deep_merge(base[key], value) if key in base else copy.deepcopy(value)
        return out
    return copy.deepcopy(override)


def default_raw(installed: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """The built-in default. Given the installed factories, it leaves out the components (and the
    extensions) whose distribution is not installed, and every reference to them."""
    data = yaml.safe_load(DEFAULT_CONFIG_YAML)
    assert isinstance(data, dict)
    if installed is None:
        return data
    missing: set[str] = set()
    for kind in KINDS:
        for component_id in list(data.get(kind, {})):
            if component_id.split("/", 1)[0] not in installed.get(kind, {}):
                del data[kind][component_id]
                missing.add(component_id)
    service = data["service"]
    for extension_id in list(service.get("extensions", [])):
        if extension_id not in installed.get(EXTENSIONS, {}):
            service["extensions"].remove(extension_id)
            data.pop(extension_id, None)
    metrics = service["telemetry"]["metrics"]
    metrics["exporters"] = [e for e in metrics["exporters"] if e not in missing]
    for name, pipeline in list(service["pipelines"].items()):
        for key in ("receivers", "processors", "exporters"):
            pipeline[key] = [ref for ref in pipeline.get(key, []) if ref not in missing]
        if not pipeline["receivers"] or not pipeline["exporters"]:
            del service["pipelines"][name]
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
    factories = discover_factories(extra_factories)
    raw = default_raw(factories)
    if path is not None:
        raw = deep_merge(raw, read_yaml(Path(path)))
    if overrides:
        raw = deep_merge(raw, overrides)
    if data_dir is not None:
        raw["data_dir"] = str(data_dir)
    config = validate(raw, factories)
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


def validate(raw: dict[str, Any], factories: Mapping[str, Mapping[str, Any]]) -> Config:
    """Validate a whole raw config against the factories ``discover_factories`` found."""
    problems: list[tuple[str, str]] = []
    raw = _expand(raw, "", problems)
    fixed = set(_Root.model_fields)
    extension_types = set(factories[EXTENSIONS])
    problems.extend(
        (str(key), "unknown key") for key in raw if key not in fixed and key not in extension_types
    )
    root = _model("", _Root, {k: v for k, v in raw.items() if k in fixed}, problems)
    if root is None:
        raise ConfigError(problems)
    specs: dict[str, dict[str, ComponentSpec]] = {kind: {} for kind in KINDS}
    delivery: dict[str, ExporterDeliveryConfig] = {}
    for kind in KINDS:
        for component_id, body in (getattr(root, kind) or {}).items():
            if kind in ("exporters", "connectors") and isinstance(body, dict):
                keys = {key: body[key] for key in DELIVERY_KEYS if key in body}
                body = {key: value for key, value in body.items() if key not in DELIVERY_KEYS}
                policy = _model(f"{kind}.{component_id}", ExporterDeliveryConfig, keys, problems)
                if policy is not None:
                    delivery[str(component_id)] = policy
            spec = _spec(kind, f"{kind}.{component_id}", str(component_id), body, factories[kind], problems)
            if spec is not None:
                specs[kind][spec.id] = spec
    extensions: dict[str, ComponentSpec] = {}
    for type_name in sorted(extension_types):
        if type_name in raw:
            spec = _spec(EXTENSIONS, type_name, type_name, raw[type_name], factories[EXTENSIONS], problems)
            if spec is not None:
                extensions[type_name] = spec
    service = _model("service", ServiceConfig, root.service, problems)
    auth = _model("auth", AuthConfig, root.auth, problems)
    if service is not None:
        _check_service(service, root, extension_types, problems)
        for extension_id in service.extensions:
            if extension_id not in extensions and extension_id in extension_types:
                spec = _spec(EXTENSIONS, extension_id, extension_id, {}, factories[EXTENSIONS], problems)
                if spec is not None:
                    extensions[extension_id] = spec
        _check_signals(service, specs, problems)
        if auth is not None and auth.enabled:
            _check_tenant_stamping(service, specs, problems)
    _check_references(specs, extensions, problems)
    if problems:
        raise ConfigError(problems)
    assert service is not None and auth is not None
    return Config(
        raw=raw,
        data_dir=Path(root.data_dir),
        receivers=specs["receivers"],
        processors=specs["processors"],
        exporters=specs["exporters"],
        connectors=specs["connectors"],
        extensions=extensions,
        service=service,
        auth=auth,
        factories={kind: dict(f) for kind, f in factories.items()},
        delivery=delivery,
    )


def _spec(
    kind: str,
    path: str,
    component_id: str,
    body: Any,
    factories: Mapping[str, Factory[Any, Any]],
    problems: list[tuple[str, str]],
) -> ComponentSpec | None:
    type_name = component_id.split("/", 1)[0]
    lazy = factories.get(type_name)
    if lazy is None:
        known_types = ", ".join(sorted(factories)) or "none"
        problems.append((path, f"unknown {kind[:-1]} type {type_name!r} (known: {known_types})"))
        return None
    try:
        factory = _resolve(lazy)
    except Exception as exc:
        problems.append((path, f"component type {type_name!r} cannot be loaded: {exc}"))
        return None
    cfg = _model(path, factory.config_model, body, problems)
    return None if cfg is None else ComponentSpec(component_id, factory, cfg)


def _check_service(
    service: ServiceConfig, root: _Root, extension_types: set[str], problems: list[tuple[str, str]]
) -> None:
    """Every id a pipeline, the telemetry or the extension list names exists, in a kind that fits."""

    def check(path: str, ref: str, kinds: tuple[str, ...]) -> None:
        if not any(ref in (getattr(root, kind) or {}) for kind in kinds):
            problems.append((path, f"{ref!r} is not defined under {' or '.join(kinds)}"))

    for name, pipeline in service.pipelines.items():
        signal = name.split("/", 1)[0]
        path = f"service.pipelines.{name}"
        if signal not in PIPELINE_SIGNALS:
            problems.append((path, "pipelines are traces, metrics or logs (traces[/NAME], ...)"))
            continue
        if signal != "traces" and pipeline.processors:
            problems.append((f"{path}.processors", f"{signal} pipelines take no processors"))
        if signal == "traces":
            receiver_kinds: tuple[str, ...] = ("receivers",)
        elif signal == "logs":
            receiver_kinds = ("receivers",)
        else:
            # Metrics come from receivers (OTLP metrics, pushed to the exporters) or from connectors
            # (derived metrics, exposed by the exporters): one pipeline takes one kind.
            receiver_kinds = ("receivers", "connectors")
            fed = {
                "connectors" if ref in (root.connectors or {}) else "receivers"
                for ref in pipeline.receivers
                if ref in (root.connectors or {}) or ref in (root.receivers or {})
            }
            if len(fed) > 1:
                problems.append(
                    (
                        f"{path}.receivers",
                        "a metrics pipeline takes OTLP metrics from receivers or derived metrics from "
                        "connectors, not both: make it two pipelines",
                    )
                )
        for index, ref in enumerate(pipeline.receivers):
            check(f"{path}.receivers[{index}]", ref, receiver_kinds)
        for index, ref in enumerate(pipeline.processors):
            check(f"{path}.processors[{index}]", ref, ("processors",))
        exporter_kinds = ("exporters", "connectors") if signal == "traces" else ("exporters",)
        for index, ref in enumerate(pipeline.exporters):
            check(f"{path}.exporters[{index}]", ref, exporter_kinds)
    for index, ref in enumerate(service.telemetry.metrics.exporters):
        check(f"service.telemetry.metrics.exporters[{index}]", ref, ("exporters",))
    for index, ref in enumerate(service.extensions):
        if ref not in extension_types:
            known = ", ".join(sorted(extension_types)) or "none"
            problems.append((f"service.extensions[{index}]", f"unknown extension {ref!r} (known: {known})"))


def pushes_metrics(pipeline: PipelineConfig, connectors: Mapping[str, Any]) -> bool:
    """Whether a metrics pipeline carries OTLP metrics from receivers (sent to its exporters) rather than
    what connectors derive (exposed by its exporters)."""
    return not any(ref in connectors for ref in pipeline.receivers)


def _check_signals(
    service: ServiceConfig, specs: dict[str, dict[str, ComponentSpec]], problems: list[tuple[str, str]]
) -> None:
    """Each exporter takes the signal of the place that names it: spans in traces pipelines, logs in logs
    pipelines, metrics in metrics pipelines and in the self-telemetry, and metrics the way the pipeline
    carries them (sent OTLP metrics from receivers, or derived metrics it exposes from connectors)."""

    def check(path: str, ref: str, signal: str, pushed: bool | None = None) -> None:
        spec = specs["exporters"].get(ref) or specs["connectors"].get(ref)
        if spec is None:
            return
        takes = signals_of(spec.factory)
        if signal not in takes:
            problems.append((path, f"{ref!r} takes {', '.join(takes)}, not {signal}"))
        elif pushed is not None and spec.factory.push_metrics != pushed:
            if pushed:
                problems.append(
                    (path, f"{ref!r} takes metrics from connectors, not OTLP metrics from receivers")
                )
            else:
                problems.append(
                    (
                        path,
                        f"{ref!r} is sent OTLP metrics by receivers, it does not expose metrics to be scraped",
                    )
                )

    for name, pipeline in service.pipelines.items():
        signal = name.split("/", 1)[0]
        if signal in PIPELINE_SIGNALS:
            pushed = pushes_metrics(pipeline, specs["connectors"]) if signal == "metrics" else None
            for index, ref in enumerate(pipeline.exporters):
                check(f"service.pipelines.{name}.exporters[{index}]", ref, signal, pushed)
    for index, ref in enumerate(service.telemetry.metrics.exporters):
        check(f"service.telemetry.metrics.exporters[{index}]", ref, "metrics", False)


def _check_tenant_stamping(
    service: ServiceConfig, specs: dict[str, dict[str, ComponentSpec]], problems: list[tuple[str, str]]
) -> None:
    """With ingest keys on, the key decides the tenant: a traces pipeline without ``tenant`` would let a
    client write into any organization."""
    for name, pipeline in service.pipelines.items():
        if not name.startswith("traces"):
            continue
        types = {
            specs["processors"][p].factory.type_name for p in pipeline.processors if p in specs["processors"]
        }
        if "tenant" not in types:
            problems.append(
                (
                    f"service.pipelines.{name}.processors",
                    "auth is enabled: the pipeline needs the tenant processor, which applies the ingest key's tenant",
                )
            )


def _check_references(
    specs: dict[str, dict[str, ComponentSpec]],
    extensions: dict[str, ComponentSpec],
    problems: list[tuple[str, str]],
) -> None:
    everything = {**specs, EXTENSIONS: extensions}
    for kind, by_id in everything.items():
        for component_id, spec in by_id.items():
            if spec.factory.references is None:
                continue
            prefix = component_id if kind == EXTENSIONS else f"{kind}.{component_id}"
            for ref in spec.factory.references(spec.config):
                target = everything.get(ref.kind, {}).get(ref.component_id)
                if target is None:
                    problems.append(
                        (f"{prefix}.{ref.field}", f"{ref.component_id!r} is not defined under {ref.kind}")
                    )
                elif ref.expects is not None and not isinstance(target.config, ref.expects):
                    problems.append(
                        (
                            f"{prefix}.{ref.field}",
                            f"{ref.kind[:-1]} {ref.component_id!r} has no {ref.expects.__name__}",
                        )
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
        if kind in ("exporters", "connectors"):
            for cid, body in out[kind].items():
                body.update(config.delivery.get(cid, ExporterDeliveryConfig()).model_dump(mode="json"))
    out["service"] = config.service.model_dump(mode="json")
    for type_name, spec in config.extensions.items():
        out[type_name] = spec.config.model_dump(mode="json")
    out["auth"] = config.auth.model_dump(mode="json")
    return yaml.safe_dump(_mask_secrets(out), sort_keys=False)
