"""The alert engine: every ``evaluation_interval``, evaluate the rules, move each alert's state, persist the
round, correlate firing alerts into incidents, and hand what is firing (and what just resolved) to the
dispatcher.

Order matters for "a restart neither forgets a firing alert nor notifies twice": a round's changes are
written to the state file in one transaction *before* the dispatcher hears of them, and the dispatcher keeps
its own notification log. A round whose write fails tells the dispatcher nothing; its changes stay marked and
are written by the next round.

The evaluator is synchronous (ClickHouse queries) and runs in a thread; the clock and the sleep between
rounds are injected, so tests drive rounds with ``run_once(now_ns)`` or a fake sleep. An evaluation that
fails, for one rule or all of them, is counted and logged once per episode (when it starts and when it ends),
and never stops the loop; the alerts of a rule that failed keep their state (no data is not "clear" when the
query did not run).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlencode

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from llm_observer.query.alerting.config import AlertingConfig, Rule
from llm_observer.query.alerting.incidents import correlate
from llm_observer.query.alerting.model import Alert, Incident, Sample, fingerprint
from llm_observer.query.alerting.state import RETENTION_S, AlertStateStore
from llm_observer.query.alerting.transitions import advance, vanished

logger = logging.getLogger(__name__)

ALL_RULES = "*"
"""The ``rule`` label of a failure that was not one rule's (the whole evaluation failed)."""

# Alert labels that name a filter of the web view's trace list (``#/traces?…``), for default links.
_TRACE_FILTERS = {
    "model": "model",
    "provider": "provider",
    "project": "project_id",
    "team": "team_id",
    "user": "user_id",
    "service": "service",
    "operation": "operation",
}


class EvaluationResult(Protocol):
    @property
    def samples(self) -> tuple[Sample, ...]: ...

    @property
    def errors(self) -> dict[str, str]: ...


class RuleEvaluator(Protocol):
    """What the engine needs of ``evaluate.Evaluator``: one synchronous evaluation of every rule."""

    def evaluate(self, rules: Sequence[Rule], now_ns: int) -> EvaluationResult: ...


class AlertSink(Protocol):
    """What the engine needs of ``dispatch.Dispatcher``."""

    def update(self, alerts: Sequence[Alert], incidents: Sequence[Incident], now_ns: int) -> None: ...


@dataclass(frozen=True, slots=True)
class RuleStatus:
    """A rule's last evaluation: when, and the error it ended with (None: it succeeded)."""

    last_evaluated_ns: int
    last_error: str | None


class EngineMetrics:
    """The engine's self-metrics, in the service's registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.evaluations = Counter(
            "llm_observer_alert_evaluations", "Alert evaluation rounds run.", registry=registry
        )
        self.failures = Counter(
            "llm_observer_alert_evaluation_failures",
            "Rules whose evaluation failed, by rule (* when the whole round failed).",
            ["rule"],
            registry=registry,
        )
        self.duration = Histogram(
            "llm_observer_alert_evaluation_duration_seconds",
            "Time one evaluation round of every rule took.",
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=registry,
        )
        self.alerts = Gauge("llm_observer_alerts", "Alerts tracked, by state.", ["state"], registry=registry)
        self.write_failures = Counter(
            "llm_observer_alert_state_write_failures",
            "Rounds whose alert states could not be written to the state file.",
            registry=registry,
        )


class AlertEngine:
    """Runs the rules of an ``AlertingConfig`` on an interval; see the module docstring.

    ``start`` loads the persisted alerts and incidents and starts the loop; ``shutdown`` stops it. Both are
    idempotent. ``alerts``, ``incidents`` and ``rule_status`` are what the API shows.
    """

    def __init__(
        self,
        config: AlertingConfig,
        evaluator: RuleEvaluator,
        store: AlertStateStore,
        *,
        dispatcher: AlertSink | None = None,
        registry: CollectorRegistry | None = None,
        clock: Callable[[], int] = time.time_ns,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        retention_s: float = RETENTION_S,
    ) -> None:
        self._config = config
        self._evaluator = evaluator
        self.store = store
        self.dispatcher = dispatcher
        self.metrics = EngineMetrics(registry if registry is not None else CollectorRegistry())
        self._clock = clock
        self._sleep = sleep
        self._retention_ns = round(retention_s * 1e9)
        self._alerts: dict[str, Alert] = {}
        self._incidents: dict[str, Incident] = {}
        self._public_alerts: Mapping[str, Alert] = {}
        self._public_incidents: Mapping[str, Incident] = {}
        self._rule_status: dict[str, RuleStatus] = {}
        # Written to the state file but not yet successfully: retried by the next round.
        self._dirty_alerts: set[str] = set()
        self._dirty_incidents: set[str] = set()
        self._forgotten: set[str] = set()
        # Resolved since the dispatcher was last told (it hears of each once).
        self._resolved_untold: dict[str, Alert] = {}
        self._failing: dict[str, str] = {}  # rule (or ALL_RULES) -> error, while its failure episode lasts
        self._write_failing = False
        self._loop_failing = False
        self._purge_before = 0  # resolved before this: deleted from the state file by the next write
        self._round = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._current: asyncio.Future[None] | None = None
        self._loaded = False

    # --- what the API reads ----------------------------------------------------------------------------

    @property
    def config(self) -> AlertingConfig:
        return self._config

    @property
    def alerts(self) -> Mapping[str, Alert]:
        """Every tracked alert (pending, firing, and resolved within the retention), by fingerprint, as the
        last round left them. A snapshot, safe to read from any thread: rounds publish a new mapping and
        never change an alert they published."""
        return self._public_alerts

    @property
    def incidents(self) -> Mapping[str, Incident]:
        """Open incidents and those resolved within the retention, by id (a snapshot, as ``alerts``)."""
        return self._public_incidents

    @property
    def rule_status(self) -> Mapping[str, RuleStatus]:
        return self._rule_status

    # --- lifecycle -------------------------------------------------------------------------------------

    async def load(self) -> None:
        """Read the persisted alerts and incidents (once; ``start`` calls it)."""
        if self._loaded:
            return
        alerts, incidents = await asyncio.to_thread(self.store.load)
        self._alerts, self._incidents = alerts, incidents
        self._loaded = True
        self._publish()
        firing = sum(1 for a in alerts.values() if a.state == "firing")
        if alerts:
            logger.info("Alert engine loaded %d alerts (%d firing) from the state file", len(alerts), firing)

    async def start(self) -> None:
        if self._task is not None:
            return
        await self.load()
        self._task = asyncio.create_task(self._loop(), name="alert-engine")

    async def shutdown(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        # A round the loop was running goes on to its end (shielded from the cancel), so what it changed is
        # written before the state file is closed or read again by a restarted engine.
        current, self._current = self._current, None
        if current is not None:
            with contextlib.suppress(Exception):
                await current

    async def reconfigure(self, config: AlertingConfig, evaluator: RuleEvaluator | None = None) -> None:
        """Use new rules from the next round on (between rounds, never during one). Alerts of rules that are
        gone resolve at the next round; those of rules kept keep their state."""
        async with self._round:
            self._config = config
            if evaluator is not None:
                self._evaluator = evaluator
            names = {r.name for r in config.rules}
            for name in [n for n in self._rule_status if n not in names]:
                del self._rule_status[name]

    async def _loop(self) -> None:
        while True:
            started = time.monotonic()
            try:
                self._current = asyncio.ensure_future(self.run_once(self._clock()))
                await asyncio.shield(self._current)
                if self._loop_failing:
                    self._loop_failing = False
                    logger.info("Alert evaluation rounds run again")
            except Exception:
                if not self._loop_failing:
                    self._loop_failing = True
                    logger.exception("An alert evaluation round failed; retrying every interval")
            elapsed = time.monotonic() - started
            await self._sleep(max(0.0, self._config.evaluation_interval - elapsed))

    # --- one round -------------------------------------------------------------------------------------

    async def run_once(self, now_ns: int) -> None:
        """One evaluation round at ``now_ns``: evaluate, advance, persist, correlate, notify."""
        await self.load()
        async with self._round:
            rules = list(self._config.rules)
            began = time.perf_counter()
            try:
                evaluation = await asyncio.to_thread(self._evaluator.evaluate, rules, now_ns)
            except Exception as exc:
                self.metrics.failures.labels(ALL_RULES).inc()
                self._episode(ALL_RULES, f"{type(exc).__name__}: {exc}")
                for rule in rules:
                    self._rule_status[rule.name] = RuleStatus(now_ns, str(exc))
                return
            finally:
                self.metrics.duration.observe(time.perf_counter() - began)
                self.metrics.evaluations.inc()
            self._episode(ALL_RULES, None)
            errors = dict(evaluation.errors)
            for rule in rules:
                error = errors.get(rule.name)
                if error is not None:
                    self.metrics.failures.labels(rule.name).inc()
                self._episode(rule.name, error)
                self._rule_status[rule.name] = RuleStatus(now_ns, error)
            self._advance(rules, evaluation.samples, errors, now_ns)
            self._correlate(rules, now_ns)
            self._purge(now_ns)
            self._publish()
            if await self._persist():
                self._notify(now_ns)

    def _advance(
        self, rules: Sequence[Rule], samples: Sequence[Sample], errors: Mapping[str, str], now_ns: int
    ) -> None:
        by_name = {r.name: r for r in rules}
        seen: set[str] = set()
        for sample in samples:
            rule = by_name.get(sample.rule)
            if rule is None:
                continue
            fp = fingerprint(sample.labels)
            if fp in seen:
                continue
            seen.add(fp)
            before = self._alerts.get(fp)
            after = advance(before, sample, rule, now_ns)
            if after is not None and after is not before:
                after.generator_url = _link(self._config.external_url, rule, sample)
            self._apply(fp, before, after)
        for fp, alert in list(self._alerts.items()):
            if fp in seen or alert.state == "resolved" or alert.rule in errors:
                continue
            self._apply(fp, alert, vanished(alert, by_name.get(alert.rule), now_ns))

    def _apply(self, fp: str, before: Alert | None, after: Alert | None) -> None:
        if after is before:
            return
        if after is None:
            del self._alerts[fp]
            self._forgotten.add(fp)
            self._dirty_alerts.discard(fp)
            return
        self._alerts[fp] = after
        self._dirty_alerts.add(fp)
        self._forgotten.discard(fp)
        if after.state == "resolved" and before is not None and before.state == "firing":
            self._resolved_untold[fp] = after
        elif after.state != "resolved":
            self._resolved_untold.pop(fp, None)

    def _correlate(self, rules: Sequence[Rule], now_ns: int) -> None:
        by_name = {r.name: r for r in rules}
        result = correlate(self._alerts, self._incidents, self._config.correlation, by_name.get, now_ns)
        for fp, alert in result.alerts.items():
            self._alerts[fp] = alert
            self._dirty_alerts.add(fp)
            if fp in self._resolved_untold:
                self._resolved_untold[fp] = alert
        for incident_id, incident in result.incidents.items():
            self._incidents[incident_id] = incident
            self._dirty_incidents.add(incident_id)

    def _purge(self, now_ns: int) -> None:
        """Forget, in memory, what resolved longer than the retention ago (``_persist`` deletes the rows)."""
        before = now_ns - self._retention_ns
        for fp, alert in list(self._alerts.items()):
            if alert.state == "resolved" and (alert.resolved_at_ns or 0) < before:
                del self._alerts[fp]
                self._dirty_alerts.discard(fp)
        for incident_id, incident in list(self._incidents.items()):
            if incident.resolved_at_ns is not None and incident.resolved_at_ns < before:
                del self._incidents[incident_id]
                self._dirty_incidents.discard(incident_id)
        self._purge_before = before

    async def _persist(self) -> bool:
        alerts = [self._alerts[fp] for fp in self._dirty_alerts if fp in self._alerts]
        incidents = [self._incidents[i] for i in self._dirty_incidents if i in self._incidents]
        forgotten = list(self._forgotten)
        before = self._purge_before

        def write() -> None:
            self.store.save(alerts, forgotten, incidents)
            self.store.purge(before)

        try:
            await asyncio.to_thread(write)
        except Exception:
            self.metrics.write_failures.inc()
            if not self._write_failing:
                self._write_failing = True
                logger.exception(
                    "Alert states could not be written to %s; notifications wait until they are",
                    getattr(self.store.db, "path", "the state file"),
                )
            return False
        if self._write_failing:
            self._write_failing = False
            logger.info("Alert states are written to the state file again")
        self._dirty_alerts.clear()
        self._dirty_incidents.clear()
        self._forgotten.clear()
        return True

    def _notify(self, now_ns: int) -> None:
        if self.dispatcher is None:
            self._resolved_untold.clear()
            return
        firing = [a for a in self._alerts.values() if a.state == "firing"]
        told = [*firing, *self._resolved_untold.values()]
        wanted = {a.incident_id for a in told if a.incident_id is not None}
        incidents = [i for i in self._incidents.values() if i.id in wanted]
        try:
            self.dispatcher.update(told, incidents, now_ns)
        except Exception:
            logger.exception("The alert dispatcher refused an update")
            return
        self._resolved_untold.clear()

    def _episode(self, rule: str, error: str | None) -> None:
        """Log a rule's failure when it starts (or changes) and when it ends; nothing in between."""
        previous = self._failing.get(rule)
        if error is None:
            if previous is not None:
                del self._failing[rule]
                what = "every rule" if rule == ALL_RULES else f"rule {rule}"
                logger.info("Evaluation of %s succeeds again", what)
            return
        if previous == error:
            return
        self._failing[rule] = error
        what = "the alert rules" if rule == ALL_RULES else f"alert rule {rule}"
        logger.warning("Evaluation of %s failed (logged once until it recovers): %s", what, error)

    def _publish(self) -> None:
        self._public_alerts = dict(self._alerts)
        self._public_incidents = dict(self._incidents)
        counts = {"pending": 0, "firing": 0, "resolved": 0}
        for alert in self._alerts.values():
            counts[alert.state] += 1
        for state, n in counts.items():
            self.metrics.alerts.labels(state).set(n)


def _link(external_url: str, rule: Rule, sample: Sample) -> str:
    """Where a notification links to: the rule's ``link`` (absolute, or a path of the web view), else the
    web view's trace list filtered to the alert's group and the sample's window."""
    base = external_url.rstrip("/")
    if rule.link:
        return rule.link if "://" in rule.link else f"{base}/{rule.link.lstrip('/')}"
    query: dict[str, str] = {}
    if sample.window_end_ns > sample.window_start_ns:
        query["start_time"] = _rfc3339(sample.window_start_ns)
        query["end_time"] = _rfc3339(sample.window_end_ns)
    for label, name in _TRACE_FILTERS.items():
        value = sample.labels.get(label)
        if value:
            query[name] = value
    return f"{base}/#/traces" + (f"?{urlencode(query)}" if query else "")


def _rfc3339(ns: int) -> str:
    seconds, rest = divmod(ns, 10**9)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{rest // 10**6:03d}Z"
