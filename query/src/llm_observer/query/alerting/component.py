"""The ``alerting`` extension (entry point ``llm_observer.extensions`` ``alerting``): rules evaluated inside
the service, alert states in the state file, notifications sent by the dispatcher; and ``AlertingApi``, what
the query service's REST and gRPC APIs call (they find this extension among the running ones).

Its config is the top-level ``alerting:`` key (``config.AlertingConfig``); ``alerting.storage`` names the
exporter whose ClickHouse store the rules read, as ``query.storage`` does for the query service, and the
loader checks that it exists. ``reconfigure`` takes a reloaded config (SIGHUP, ``POST
/api/v1/alerts/reload``): new rules, routes and receivers from the next round on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from prometheus_client import CollectorRegistry

from llm_observer.kernel.component import CreateContext, Factory, Reference
from llm_observer.kernel.errors import ConfigError
from llm_observer.kernel.telemetry import Telemetry
from llm_observer.query.alerting.backtest import backtest
from llm_observer.query.alerting.config import AlertingConfig, Rule
from llm_observer.query.alerting.db import StateDb
from llm_observer.query.alerting.dispatch import Dispatcher
from llm_observer.query.alerting.engine import AlertEngine
from llm_observer.query.alerting.evaluate import Evaluator
from llm_observer.query.alerting.model import Alert, AlertState, BacktestHit, Incident, RuleInfo, Silence
from llm_observer.query.alerting.silences import SilenceStore
from llm_observer.query.alerting.state import AlertStateStore
from llm_observer.query.component import EXPORTERS, _settings
from llm_observer.storage.clickhouse.alert_reads import AlertStore
from llm_observer.storage.clickhouse.client import ClickHouseClient, open_client_for
from llm_observer.storage.clickhouse.settings import ClickHouseSettings

logger = logging.getLogger(__name__)

_STATE_ORDER = {"firing": 0, "pending": 1, "resolved": 2}


@dataclass(slots=True)
class _Parts:
    """What ``start`` opened, closed in reverse by ``shutdown``."""

    client: ClickHouseClient
    db: StateDb
    silences: SilenceStore
    evaluator: Evaluator
    dispatcher: Dispatcher
    engine: AlertEngine


class AlertingService:
    """The running alerting: an ``Extension`` (``start``/``shutdown``, idempotent, ``shutdown`` safe before
    ``start``) and an implementation of ``model.AlertingApi``.

    ``clock`` (nanoseconds) and ``sleep`` drive the evaluation loop; tests inject them. Before ``start``
    the listings are empty, and what needs the store or the state file raises ``RuntimeError``.
    """

    def __init__(
        self,
        config: AlertingConfig,
        storage: ClickHouseSettings,
        *,
        data_dir: Path,
        telemetry: Telemetry | None = None,
        reload_config: Callable[[], Awaitable[None]] | None = None,
        clock: Callable[[], int] = time.time_ns,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.config = config
        self.storage = storage
        self.data_dir = data_dir
        self.registry: CollectorRegistry = (
            telemetry.registry if telemetry is not None else CollectorRegistry()
        )
        self._reload_config = reload_config
        self._clock = clock
        self._sleep = sleep
        self._parts: _Parts | None = None
        self._lock = asyncio.Lock()

    @property
    def state_path(self) -> Path:
        """The state file: ``alerting.state_path``, relative to the data dir."""
        path = Path(self.config.state_path)
        return path if path.is_absolute() else self.data_dir / path

    @property
    def engine(self) -> AlertEngine | None:
        return self._parts.engine if self._parts is not None else None

    @property
    def dispatcher(self) -> Dispatcher | None:
        return self._parts.dispatcher if self._parts is not None else None

    # --- lifecycle -------------------------------------------------------------------------------------

    async def start(self) -> None:
        async with self._lock:
            if self._parts is not None:
                return
            client = await asyncio.to_thread(open_client_for, self.storage, self.data_dir)
            db: StateDb | None = None
            dispatcher: Dispatcher | None = None
            try:
                db = await asyncio.to_thread(StateDb, self.state_path)
                silences = SilenceStore(db)
                evaluator = self._evaluator(client, self.config)
                dispatcher = Dispatcher(self.config, db, silences, registry=self.registry, clock=self._clock)
                engine = AlertEngine(
                    self.config,
                    evaluator,
                    AlertStateStore(db),
                    dispatcher=dispatcher,
                    registry=self.registry,
                    clock=self._clock,
                    sleep=self._sleep,
                )
                await dispatcher.start()
                await engine.start()
            except BaseException:
                if dispatcher is not None:
                    await dispatcher.shutdown()
                if db is not None:
                    db.close()
                await asyncio.to_thread(client.close)
                raise
            self._parts = _Parts(client, db, silences, evaluator, dispatcher, engine)
            logger.info(
                "Alerting started: %d rules every %.0fs, state in %s",
                len(self.config.rules),
                self.config.evaluation_interval,
                self.state_path,
            )

    def _evaluator(self, client: ClickHouseClient, config: AlertingConfig) -> Evaluator:
        return Evaluator(
            AlertStore(client, self.storage.database), evaluation_delay_s=config.evaluation_delay
        )

    async def shutdown(self) -> None:
        async with self._lock:
            parts, self._parts = self._parts, None
            if parts is None:
                return
            try:
                await parts.engine.shutdown()
            finally:
                try:
                    await parts.dispatcher.shutdown()
                finally:
                    parts.db.close()
                    await asyncio.to_thread(parts.client.close)
            logger.info("Alerting stopped")

    async def reconfigure(self, config: AlertingConfig) -> None:
        """Take a reloaded ``alerting:`` section: rules, routes, receivers and timings from the next round on.
        A change of ``storage`` or ``state_path`` takes a restart (logged, and the old ones kept)."""
        async with self._lock:
            if config.storage != self.config.storage or config.state_path != self.config.state_path:
                logger.warning(
                    "alerting.storage and alerting.state_path change only on restart; the rest is reloaded"
                )
                config = config.model_copy(
                    update={"storage": self.config.storage, "state_path": self.config.state_path}
                )
            parts = self._parts
            if parts is not None:
                evaluator = parts.evaluator
                if config.evaluation_delay != self.config.evaluation_delay:
                    evaluator = parts.evaluator = self._evaluator(parts.client, config)
                elif config.rules != self.config.rules:
                    evaluator.forget()  # anomaly histories of rules that may have changed shape
                await parts.engine.reconfigure(config, evaluator)
                parts.dispatcher.reconfigure(config)
            self.config = config
            logger.info("Alerting reconfigured: %d rules", len(config.rules))

    # --- AlertingApi -----------------------------------------------------------------------------------

    def _visible_rules(self, organization_id: str | None) -> list[Rule]:
        return [
            r
            for r in self.config.rules
            if organization_id is None or r.organization is None or r.organization == organization_id
        ]

    def rules(self, organization_id: str | None) -> Sequence[RuleInfo]:
        status = self._parts.engine.rule_status if self._parts is not None else {}
        out = []
        for rule in self._visible_rules(organization_id):
            seen = status.get(rule.name)
            out.append(
                RuleInfo(
                    name=rule.name,
                    kind=rule.kind,
                    organization_id=rule.organization,
                    spec=rule.model_dump(mode="json", by_alias=True, exclude_defaults=False),
                    last_evaluated_ns=seen.last_evaluated_ns if seen is not None else None,
                    last_error=seen.last_error if seen is not None else None,
                )
            )
        return out

    def alerts(self, organization_id: str | None, states: Sequence[AlertState] = ()) -> Sequence[Alert]:
        if self._parts is None:
            return []
        wanted = set(states)
        found = [
            replace(a, labels=dict(a.labels), annotations=dict(a.annotations))
            for a in self._parts.engine.alerts.values()
            if (organization_id is None or a.organization_id == organization_id)
            and (not wanted or a.state in wanted)
        ]
        return sorted(found, key=lambda a: (_STATE_ORDER[a.state], -a.active_since_ns, a.fingerprint))

    def incidents(self, organization_id: str | None, include_resolved: bool = False) -> Sequence[Incident]:
        if self._parts is None:
            return []
        found = [
            i
            for i in self._parts.engine.incidents.values()
            if (organization_id is None or i.organization_id == organization_id)
            and (include_resolved or i.resolved_at_ns is None)
        ]
        return sorted(found, key=lambda i: (i.resolved_at_ns is not None, -i.started_at_ns, i.id))

    def silences(self, organization_id: str | None) -> Sequence[Silence]:
        if self._parts is None:
            return []
        return self._parts.silences.list(organization_id)

    def add_silence(
        self,
        organization_id: str,
        matchers: Sequence[str],
        starts_at_ns: int,
        ends_at_ns: int,
        created_by: str,
        comment: str,
    ) -> Silence:
        return self._running().silences.add(
            organization_id, matchers, starts_at_ns, ends_at_ns, created_by, comment
        )

    def expire_silence(self, organization_id: str | None, silence_id: str) -> Silence | None:
        return self._running().silences.expire(organization_id, silence_id, self._clock())

    async def backtest(
        self, organization_id: str | None, rule_name: str, start_ns: int, end_ns: int, step_ns: int
    ) -> Sequence[BacktestHit]:
        rule = next((r for r in self._visible_rules(organization_id) if r.name == rule_name), None)
        if rule is None:
            raise KeyError(rule_name)
        evaluator = self._running().evaluator
        return await asyncio.to_thread(backtest, evaluator, rule, organization_id, start_ns, end_ns, step_ns)

    async def reload(self) -> None:
        if self._reload_config is None:
            raise ConfigError([("<file>", "this process has no config file to reload")])
        await self._reload_config()

    def _running(self) -> _Parts:
        if self._parts is None:
            raise RuntimeError("alerting is not running")
        return self._parts


def references(config: AlertingConfig) -> Sequence[Reference]:
    """The exporter whose store the rules read."""
    return [Reference("storage", EXPORTERS, config.storage, ClickHouseSettings)]


def create(ctx: CreateContext, config: AlertingConfig) -> AlertingService:
    """An ``AlertingService`` over the store ``alerting.storage`` names; ``ConfigError`` when that exporter
    does not write a ClickHouse store. ``ctx.extras`` may hold ``clock`` (ns) and ``sleep`` for tests."""
    storage = _settings(ctx, "alerting.storage", config.storage, ClickHouseSettings, "a ClickHouse store")
    return AlertingService(
        config,
        storage,
        data_dir=ctx.data_dir,
        telemetry=ctx.telemetry,
        reload_config=ctx.reload_config,
        # Tests drive the evaluation loop with their own clock (ns) and sleep.
        clock=ctx.extras.get("clock", time.time_ns),
        sleep=ctx.extras.get("sleep", asyncio.sleep),
    )


factory: Factory[AlertingConfig, AlertingService] = Factory(
    "alerting", AlertingConfig, create, references=references
)
