"""From alerts to notifications, as Alertmanager's dispatcher does it, inside the service.

Each alert the engine hands over is routed (``routing``) into one **aggregation group** per route that takes
it. A new group waits ``group_wait`` (so alerts that fire together go out together), then is looked at every
``group_interval``; each time, per integration of the route's receiver, the notification log decides whether
anything is owed: alerts firing that were not told yet, alerts resolved since (``send_resolved``), or an
unchanged firing group whose ``repeat_interval`` has passed. Silenced and inhibited alerts are left out (and
counted). Alerts that share an incident join the group where the first of them was routed, and the message
names the incident's root-cause hint: one page, not one per alert.

Every decision (the notification log's new entry and the message itself) is written to the state file before
it is sent; the outbox then delivers, in order per group and integration, retrying a receiver that fails
with exponential backoff (``alerting.retry``) until ``max_elapsed``. A restart therefore neither sends again
what was delivered nor loses what was not.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import httpx
from prometheus_client import CollectorRegistry, Counter, Gauge

from llm_observer.kernel.errors import PermanentError, RetryableError
from llm_observer.query.alerting.config import AlertingConfig, Receiver
from llm_observer.query.alerting.db import StateDb
from llm_observer.query.alerting.inhibit import Inhibitor
from llm_observer.query.alerting.model import Alert, Incident
from llm_observer.query.alerting.outbox import DispatchStore, LogEntry, Member, OutboxItem, Write
from llm_observer.query.alerting.payloads import AlertView, IncidentView, Notification
from llm_observer.query.alerting.receivers import Integration, integrations
from llm_observer.query.alerting.receivers.base import NotifierConfig
from llm_observer.query.alerting.routing import RouteNode, build_tree
from llm_observer.query.alerting.silences import SilenceStore

logger = logging.getLogger(__name__)

TICK_SECONDS = 1.0
# Streams (group x integration) sent at once: a storm of groups neither floods a receiver's endpoint (Slack
# and PagerDuty rate-limit) nor opens hundreds of connections.
MAX_CONCURRENT_SENDS = 16
LOG_RETENTION_NS = (
    5 * 86400 * 10**9
)  # as Alertmanager's nflog: entries of groups gone that long are forgotten
_PRUNE_EVERY_NS = 3600 * 10**9


@dataclass(slots=True)
class _Group:
    route: RouteNode
    key: str
    labels: dict[str, str]
    next_flush_ns: int
    alerts: dict[str, Alert] = field(default_factory=dict)


@dataclass(slots=True)
class _Index:
    """Where the alerts of the groups are, by route: built once per update, not searched per alert."""

    members: dict[tuple[str, str], _Group]
    incidents: dict[tuple[str, str], _Group]

    @classmethod
    def of(cls, groups: dict[tuple[str, str], _Group]) -> _Index:
        index = cls({}, {})
        for (route_key, _), group in groups.items():
            for alert in group.alerts.values():
                index.add(route_key, alert, group)
        return index

    def add(self, route_key: str, alert: Alert, group: _Group) -> None:
        self.members[(route_key, alert.fingerprint)] = group
        if alert.incident_id is not None:
            self.incidents.setdefault((route_key, alert.incident_id), group)


def _first_flush(route: RouteNode, alerts: Iterable[Alert], now_ns: int) -> int:
    """When a new group is first looked at: after ``group_wait`` — or right away when an alert of it fired
    longer ago than that (after a restart, say), as Alertmanager; the notification log knows what was
    already told."""
    wait_ns = int(route.group_wait * 1e9)
    oldest = min((a.fired_at_ns or a.active_since_ns for a in alerts), default=now_ns)
    return now_ns if oldest + wait_ns <= now_ns else now_ns + wait_ns


def _needs_update(
    entry: LogEntry | None,
    firing: set[str],
    resolved: set[str],
    send_resolved: bool,
    repeat_ns: int,
    now_ns: int,
) -> bool:
    """Alertmanager's de-duplication: is something owed to this integration about this group?"""
    if entry is None:
        return bool(firing)
    if not firing <= entry.firing:
        return True
    if not firing:
        # All resolved: tell it (or, without send_resolved, just clear the log) when it was told of any; alerts
        # that fired and resolved between two looks were never told, so nothing is owed about them.
        return bool(entry.firing)
    if send_resolved and not resolved <= entry.resolved:
        return True
    return entry.sent_at_ns <= now_ns - repeat_ns


class Dispatcher:
    """Aggregation groups, the notification log and the outbox, and the loop that sends.

    ``update`` and ``reconfigure`` may be called from any thread; ``flush`` runs in the event loop that
    ``start`` ran in. Before ``start`` (and after ``shutdown``) ``flush`` still decides and records what is
    owed, and delivers nothing.
    """

    def __init__(
        self,
        config: AlertingConfig,
        db: StateDb,
        silences: SilenceStore,
        *,
        registry: CollectorRegistry | None = None,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self._silences = silences
        self._clock = clock
        self._store = DispatchStore(db)
        self._lock = threading.RLock()
        self._flushing = asyncio.Lock()
        self._groups: dict[tuple[str, str], _Group] = {}
        self._incidents: dict[str, Incident] = {}
        self._muted: dict[str, str] = {}  # fingerprint → silenced / inhibited, while it is
        self._client: httpx.AsyncClient | None = None
        self._integrations: dict[tuple[str, str], Integration] = {}
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._failing = False
        self._last_prune_ns = 0
        registry = registry if registry is not None else CollectorRegistry()
        self._notifications = Counter(
            "llm_observer_alert_notifications",
            "Alert notifications by receiver, integration kind and outcome (sent, failed, retried, dropped)",
            ["receiver", "integration", "outcome"],
            registry=registry,
        )
        self._suppressed = Counter(
            "llm_observer_alerts_suppressed",
            "Alerts kept out of notifications when they became silenced or inhibited",
            ["reason"],
            registry=registry,
        )
        self._depth = Gauge(
            "llm_observer_alert_outbox_depth",
            "Notifications decided but not yet delivered",
            registry=registry,
        )
        self._apply(config)
        self._restore(clock())

    # --- lifecycle ----------------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the HTTP client, make the integrations and start the loop that flushes every second."""
        if self._client is not None:
            return
        self._client = httpx.AsyncClient(follow_redirects=False)
        with self._lock:
            self._integrations = self._make_integrations(self._receivers)
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name="alert-dispatcher")
        logger.info("alert dispatcher started with %d receivers", len(self._receivers))

    async def shutdown(self) -> None:
        """Stop the loop and close the client; what is not delivered stays in the outbox for next time."""
        task, self._task = self._task, None
        self._stop.set()
        # Sends in flight finish first (within the integrations' timeouts): one cut off after the receiver
        # took it but before it answered would stay in the outbox and be sent again after a restart.
        grace = max([c.timeout for r in self._receivers.values() for c in _configs(r)], default=0.0) + 1.0
        if task is not None:
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(task, grace)  # cancelled when the grace runs out
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._flushing.acquire(), grace)  # a flush a caller started
            self._flushing.release()
        client, self._client = self._client, None
        with self._lock:
            self._integrations = {}
        if client is not None:
            await client.aclose()

    async def _run(self) -> None:
        while not self._stop.is_set():
            try:
                await self.flush(self._clock())
                if self._failing:
                    logger.info("alert dispatcher recovered")
                    self._failing = False
            except Exception:
                if not self._failing:  # once per episode, not once a second
                    logger.exception("alert dispatcher failed to flush; retrying every %.0fs", TICK_SECONDS)
                    self._failing = True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), TICK_SECONDS)

    def reconfigure(self, config: AlertingConfig) -> None:
        """Take a new routing tree, inhibit rules, receivers and retry policy. Groups keep their alerts and
        timers where their route still exists; alerts of routes that are gone are routed anew."""
        with self._lock:
            known = {a.fingerprint: a for g in self._groups.values() for a in g.alerts.values()}
            self._apply(config)
            if self._client is not None:
                self._integrations = self._make_integrations(self._receivers)
            routes = {node.key: node for node in self._tree.walk()}
            writes: list[Write] = []
            for gid, group in list(self._groups.items()):
                node = routes.get(group.route.key)
                if node is None:
                    del self._groups[gid]
                    writes += [DispatchStore.member_delete(gid[0], fp) for fp in group.alerts]
                else:
                    group.route = node
            now_ns = self._clock()
            index = _Index.of(self._groups)
            for alert in known.values():
                writes += self._place(alert, now_ns, index)
        self._store.write(writes)

    def _apply(self, config: AlertingConfig) -> None:
        self._config = config
        self._tree = build_tree(config.route)
        self._inhibitor = Inhibitor(config.inhibit_rules)
        self._receivers: dict[str, Receiver] = {r.name: r for r in config.receivers}

    def _make_integrations(self, receivers: dict[str, Receiver]) -> dict[tuple[str, str], Integration]:
        assert self._client is not None
        return {
            (name, integration_id): integration
            for name, receiver in receivers.items()
            for integration_id, integration in integrations(receiver, self._client).items()
        }

    def _restore(self, now_ns: int) -> None:
        """Rebuild the groups of the last run from their members (their timers start again)."""
        routes = {node.key: node for node in self._tree.walk()}
        stale: list[Write] = []
        for member in self._store.members():
            node = routes.get(member.route_key)
            if node is None:
                stale.append(DispatchStore.member_delete(member.route_key, member.alert.fingerprint))
                continue
            group = self._groups.get((node.key, member.group_key))
            if group is None:
                group = _Group(node, member.group_key, member.group_labels, next_flush_ns=now_ns)
                self._groups[(node.key, member.group_key)] = group
            group.alerts[member.alert.fingerprint] = member.alert
        for group in self._groups.values():
            group.next_flush_ns = _first_flush(group.route, group.alerts.values(), now_ns)
        self._store.write(stale)
        self._depth.set(self._store.outbox_depth())

    # --- alerts in ----------------------------------------------------------------------------------

    def update(self, alerts: Sequence[Alert], incidents: Sequence[Incident], now_ns: int) -> None:
        """Take the engine's view: every alert firing now, plus each that resolved since the last call. An
        alert a group holds as firing that is in neither is taken as resolved now (its rule was removed, or
        its state was lost)."""
        writes: list[Write] = []
        with self._lock:
            for incident in incidents:
                self._incidents[incident.id] = incident
            seen: set[str] = set()
            index = _Index.of(self._groups)
            for alert in alerts:
                if alert.state == "pending":
                    continue
                seen.add(alert.fingerprint)
                writes += self._place(alert, now_ns, index)
            for group in self._groups.values():
                for fp, held in list(group.alerts.items()):
                    if fp not in seen and held.state == "firing":
                        gone = dataclasses.replace(held, state="resolved", resolved_at_ns=now_ns)
                        group.alerts[fp] = gone
                        writes.append(
                            DispatchStore.member_write(Member(group.route.key, group.key, group.labels, gone))
                        )
            live = {a.incident_id for g in self._groups.values() for a in g.alerts.values() if a.incident_id}
            self._incidents = {k: v for k, v in self._incidents.items() if k in live}
        self._store.write(writes)

    def _place(self, alert: Alert, now_ns: int, index: _Index) -> list[Write]:
        """Put the alert in its group on each route that takes it; the writes that record that."""
        writes: list[Write] = []
        for node in self._tree.match(alert.labels):
            group = self._group_of(node, alert, now_ns, index)
            previous = group.alerts.get(alert.fingerprint)
            group.alerts[alert.fingerprint] = alert
            if previous is None or _changed(previous, alert):
                writes.append(DispatchStore.member_write(Member(node.key, group.key, group.labels, alert)))
        return writes

    def _group_of(self, node: RouteNode, alert: Alert, now_ns: int, index: _Index) -> _Group:
        # An alert stays in the group it joined; one of an incident joins the group of the incident's first
        # alert on this route; any other goes to the group its labels name.
        group = index.members.get((node.key, alert.fingerprint))
        if group is None and alert.incident_id is not None:
            group = index.incidents.get((node.key, alert.incident_id))
        if group is None:
            labels = node.group_labels(alert.labels)
            key = node.group_key(labels)
            group = self._groups.get((node.key, key))
            if group is None:
                group = _Group(node, key, labels, next_flush_ns=_first_flush(node, [alert], now_ns))
                self._groups[(node.key, key)] = group
        index.add(node.key, alert, group)
        return group

    # --- deciding -----------------------------------------------------------------------------------

    async def flush(self, now_ns: int) -> None:
        """Decide what is owed for every group whose timer is due, record it, then deliver what the outbox
        holds that is due (when started)."""
        async with self._flushing:
            await asyncio.to_thread(self._decide_and_record, now_ns)
            if self._client is not None:
                await self._deliver(now_ns)
            self._depth.set(await asyncio.to_thread(self._store.outbox_depth))

    def _decide_and_record(self, now_ns: int) -> None:
        with self._lock:
            writes = self._decide(now_ns)
        self._store.write(writes)
        if now_ns - self._last_prune_ns > _PRUNE_EVERY_NS:
            self._last_prune_ns = now_ns
            self._store.prune_log(now_ns - LOG_RETENTION_NS)

    def _decide(self, now_ns: int) -> list[Write]:
        due = [g for g in self._groups.values() if g.next_flush_ns <= now_ns]
        if not due:
            return []
        muted = self._mute(now_ns)
        writes: list[Write] = []
        for group in due:
            writes += self._decide_group(group, muted, now_ns)
            group.next_flush_ns = now_ns + int(group.route.group_interval * 1e9)
            # Resolved alerts have had their say; the group forgets them (and itself, once empty).
            for fp in [fp for fp, a in group.alerts.items() if a.state == "resolved"]:
                del group.alerts[fp]
                writes.append(DispatchStore.member_delete(group.route.key, fp))
            if not group.alerts:
                del self._groups[(group.route.key, group.key)]
        return writes

    def _mute(self, now_ns: int) -> dict[str, str]:
        """Fingerprint → why it is not notified now, counting each alert once when it becomes muted."""
        alerts = {a.fingerprint: a for g in self._groups.values() for a in g.alerts.values()}
        muted: dict[str, str] = dict.fromkeys(self._inhibitor.inhibited(list(alerts.values())), "inhibited")
        for fp, alert in alerts.items():
            if fp not in muted and self._silences.silencing(alert, now_ns) is not None:
                muted[fp] = "silenced"
        for fp, reason in muted.items():
            if self._muted.get(fp) != reason:
                self._suppressed.labels(reason).inc()
        self._muted = muted
        return muted

    def _decide_group(self, group: _Group, muted: dict[str, str], now_ns: int) -> list[Write]:
        alerts = sorted(
            (a for fp, a in group.alerts.items() if fp not in muted),
            key=lambda a: (a.fired_at_ns or a.active_since_ns, a.fingerprint),
        )
        if not alerts:
            return []
        firing = {a.fingerprint for a in alerts if a.state == "firing"}
        resolved = {a.fingerprint for a in alerts if a.state == "resolved"}
        receiver = self._receivers.get(group.route.receiver)
        if receiver is None:
            return []
        writes: list[Write] = []
        for integration_id, send_resolved, resend in _integration_settings(receiver):
            interval = group.route.group_interval if resend else group.route.repeat_interval
            entry = self._store.log_entry(receiver.name, integration_id, group.key)
            if not _needs_update(entry, firing, resolved, send_resolved, int(interval * 1e9), now_ns):
                continue
            writes.append(
                DispatchStore.log_write(
                    receiver.name,
                    integration_id,
                    group.key,
                    LogEntry(frozenset(firing), frozenset(resolved), now_ns),
                )
            )
            told = [a for a in alerts if a.state == "firing" or send_resolved]
            if told:
                notification = self._notification(group, receiver.name, integration_id, told, now_ns)
                writes.append(DispatchStore.outbox_write(notification, now_ns))
        return writes

    def _notification(
        self, group: _Group, receiver: str, integration_id: str, alerts: list[Alert], now_ns: int
    ) -> Notification:
        incident_ids = sorted({a.incident_id for a in alerts if a.incident_id})
        return Notification(
            receiver=receiver,
            integration=integration_id,
            group_key=group.key,
            group_labels=dict(group.labels),
            alerts=tuple(AlertView.of(a, "firing" if a.state == "firing" else "resolved") for a in alerts),
            external_url=self._config.external_url,
            created_ns=now_ns,
            group_interval_s=group.route.group_interval,
            incidents=tuple(
                IncidentView.of(self._incidents[i]) for i in incident_ids if i in self._incidents
            ),
        )

    # --- delivering ---------------------------------------------------------------------------------

    async def _deliver(self, now_ns: int) -> None:
        streams: dict[tuple[str, str, str], list[OutboxItem]] = {}
        for item in await asyncio.to_thread(self._store.outbox):
            streams.setdefault(item.stream, []).append(item)
        slots = asyncio.Semaphore(MAX_CONCURRENT_SENDS)
        runs = [
            self._deliver_stream(items, now_ns, slots)
            for items in streams.values()
            if items[0].next_attempt_ns <= now_ns
        ]
        if runs:
            await asyncio.gather(*runs)

    async def _deliver_stream(self, items: list[OutboxItem], now_ns: int, slots: asyncio.Semaphore) -> None:
        """Deliver a stream's items in order, stopping at the first that must wait."""
        async with slots:
            for item in items:
                if item.next_attempt_ns > now_ns or not await self._attempt(item, now_ns):
                    return

    async def _attempt(self, item: OutboxItem, now_ns: int) -> bool:
        """One try; True when the item is done with (delivered or dropped)."""
        kind = item.integration.split("/", 1)[0]
        counter = self._notifications
        integration = self._integrations.get((item.receiver, item.integration))
        if integration is None:
            await asyncio.to_thread(self._store.delivered, item.id)
            counter.labels(item.receiver, kind, "dropped").inc()
            logger.error(
                "dropped a notification to %s %s: the receiver is no longer configured",
                item.receiver,
                item.integration,
            )
            return True
        try:
            await integration.send(item.notification, now_ns)
        except Exception as exc:
            counter.labels(item.receiver, kind, "failed").inc()
            return await self._failed(item, exc, now_ns)
        await asyncio.to_thread(self._store.delivered, item.id)
        counter.labels(item.receiver, kind, "sent").inc()
        return True

    async def _failed(self, item: OutboxItem, exc: Exception, now_ns: int) -> bool:
        kind = item.integration.split("/", 1)[0]
        retry = self._config.retry
        attempts = item.attempts + 1
        delay = min(retry.initial * 2 ** (attempts - 1), retry.max)
        if isinstance(exc, RetryableError) and exc.retry_after is not None:
            delay = min(max(delay, exc.retry_after), retry.max)
        next_ns = now_ns + int(delay * 1e9)
        permanent = isinstance(exc, PermanentError)
        if permanent or next_ns - item.created_ns > retry.max_elapsed * 1e9:
            await asyncio.to_thread(self._store.delivered, item.id)
            self._notifications.labels(item.receiver, kind, "dropped").inc()
            why = "it was refused" if permanent else f"{attempts} attempts over {retry.max_elapsed:g}s failed"
            logger.error(
                "dropped a %s notification to %s %s about %s: %s; last error: %s",
                item.notification.status,
                item.receiver,
                item.integration,
                item.group_key,
                why,
                exc,
            )
            return True
        await asyncio.to_thread(self._store.reschedule, item.id, attempts, next_ns, str(exc))
        self._notifications.labels(item.receiver, kind, "retried").inc()
        return False

    # --- for the API and tests -----------------------------------------------------------------------

    def groups(self) -> dict[str, list[str]]:
        """Group key → the fingerprints it holds (for inspection)."""
        with self._lock:
            return {g.key: sorted(g.alerts) for g in self._groups.values()}

    def outbox_depth(self) -> int:
        return self._store.outbox_depth()


def _kinds(receiver: Receiver) -> list[tuple[str, Sequence[NotifierConfig]]]:
    return [
        ("slack", receiver.slack_configs),
        ("pagerduty", receiver.pagerduty_configs),
        ("email", receiver.email_configs),
        ("webhook", receiver.webhook_configs),
        ("alertmanager", receiver.alertmanager_configs),
    ]


def _configs(receiver: Receiver) -> list[NotifierConfig]:
    return [config for _, configs in _kinds(receiver) for config in configs]


def _integration_settings(receiver: Receiver) -> list[tuple[str, bool, bool]]:
    """``(integration id, send_resolved, re-send every group_interval while firing)`` for each integration
    of a receiver, from its config alone (the decision does not need the integrations to exist)."""
    return [
        (f"{kind}/{index}", config.send_resolved, kind == "alertmanager")
        for kind, configs in _kinds(receiver)
        for index, config in enumerate(configs)
    ]


def _changed(before: Alert, after: Alert) -> bool:
    """Worth writing down again (the value alone changes at every evaluation and is not)."""
    return (
        before.state != after.state
        or before.incident_id != after.incident_id
        or before.annotations != after.annotations
        or before.resolved_at_ns != after.resolved_at_ns
        or before.fired_at_ns != after.fired_at_ns
    )
