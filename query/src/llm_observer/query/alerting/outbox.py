"""What the dispatcher must remember across a restart, in the state file:

* the **notification log**: per receiver integration and aggregation group, which alerts it last told as
  firing and as resolved, and when — so a restarted dispatcher does not page again for what was already
  paged, and knows a resolve is still owed;
* the **outbox**: notifications decided but not yet delivered, with their attempts and when to try next —
  so a notification is never lost to a restart or to a receiver that is down for a while;
* the **members**: which aggregation group each routed alert belongs to, with the alert as last seen — so a
  restart rebuilds the same groups (and sends a resolve the engine handed over just before the stop).

A decision is written (log entry and outbox row in one transaction) before the first attempt to send it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from typing import Any

from llm_observer.query.alerting.db import StateDb
from llm_observer.query.alerting.model import Alert
from llm_observer.query.alerting.payloads import Notification

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS alert_notification_log (
        receiver TEXT NOT NULL,
        integration TEXT NOT NULL,
        group_key TEXT NOT NULL,
        firing TEXT NOT NULL,
        resolved TEXT NOT NULL,
        sent_at_ns INTEGER NOT NULL,
        PRIMARY KEY (receiver, integration, group_key)
    )""",
    """CREATE TABLE IF NOT EXISTS alert_outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        receiver TEXT NOT NULL,
        integration TEXT NOT NULL,
        group_key TEXT NOT NULL,
        notification TEXT NOT NULL,
        created_ns INTEGER NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_ns INTEGER NOT NULL,
        last_error TEXT
    )""",
    """CREATE TABLE IF NOT EXISTS alert_group_members (
        route_key TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        group_key TEXT NOT NULL,
        group_labels TEXT NOT NULL,
        alert TEXT NOT NULL,
        PRIMARY KEY (route_key, fingerprint)
    )""",
)

Write = tuple[str, Sequence[Any]]
_ALERT_FIELDS = tuple(f.name for f in fields(Alert))  # ``asdict`` deep-copies: ten times slower here


@dataclass(frozen=True, slots=True)
class LogEntry:
    """What an integration last sent about a group."""

    firing: frozenset[str]
    resolved: frozenset[str]
    sent_at_ns: int


@dataclass(frozen=True, slots=True)
class OutboxItem:
    id: int
    receiver: str
    integration: str
    group_key: str
    notification: Notification
    created_ns: int
    attempts: int
    next_attempt_ns: int

    @property
    def stream(self) -> tuple[str, str, str]:
        """Items of one stream are delivered in order (a resolve never overtakes its trigger)."""
        return (self.receiver, self.integration, self.group_key)


@dataclass(frozen=True, slots=True)
class Member:
    route_key: str
    group_key: str
    group_labels: dict[str, str]
    alert: Alert


class DispatchStore:
    """The notification log, the outbox and the group members, over one ``StateDb``."""

    def __init__(self, db: StateDb) -> None:
        self._db = db
        db.ensure(_SCHEMA)

    # --- notification log ---------------------------------------------------------------------------

    def log_entry(self, receiver: str, integration: str, group_key: str) -> LogEntry | None:
        rows = self._db.query(
            "SELECT firing, resolved, sent_at_ns FROM alert_notification_log"
            " WHERE receiver = ? AND integration = ? AND group_key = ?",
            (receiver, integration, group_key),
        )
        if not rows:
            return None
        row = rows[0]
        return LogEntry(frozenset(json.loads(row[0])), frozenset(json.loads(row[1])), row[2])

    @staticmethod
    def log_write(receiver: str, integration: str, group_key: str, entry: LogEntry) -> Write:
        return (
            "INSERT INTO alert_notification_log (receiver, integration, group_key, firing, resolved, sent_at_ns)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (receiver, integration, group_key) DO UPDATE SET"
            " firing = excluded.firing, resolved = excluded.resolved, sent_at_ns = excluded.sent_at_ns",
            (
                receiver,
                integration,
                group_key,
                json.dumps(sorted(entry.firing)),
                json.dumps(sorted(entry.resolved)),
                entry.sent_at_ns,
            ),
        )

    def prune_log(self, older_than_ns: int) -> int:
        """Forget entries last written before ``older_than_ns`` (groups long gone); how many."""
        return self._db.execute("DELETE FROM alert_notification_log WHERE sent_at_ns < ?", (older_than_ns,))

    # --- outbox -------------------------------------------------------------------------------------

    @staticmethod
    def outbox_write(notification: Notification, now_ns: int) -> Write:
        return (
            "INSERT INTO alert_outbox (receiver, integration, group_key, notification, created_ns,"
            " next_attempt_ns) VALUES (?, ?, ?, ?, ?, ?)",
            (
                notification.receiver,
                notification.integration,
                notification.group_key,
                notification.to_json(),
                now_ns,
                now_ns,
            ),
        )

    def outbox(self) -> list[OutboxItem]:
        """Every undelivered notification, oldest first."""
        return [
            OutboxItem(
                id=row["id"],
                receiver=row["receiver"],
                integration=row["integration"],
                group_key=row["group_key"],
                notification=Notification.from_json(row["notification"]),
                created_ns=row["created_ns"],
                attempts=row["attempts"],
                next_attempt_ns=row["next_attempt_ns"],
            )
            for row in self._db.query(
                "SELECT id, receiver, integration, group_key, notification, created_ns, attempts,"
                " next_attempt_ns FROM alert_outbox ORDER BY id"
            )
        ]

    def outbox_depth(self) -> int:
        return int(self._db.query("SELECT count(*) FROM alert_outbox")[0][0])

    def delivered(self, item_id: int) -> None:
        """Delivered, or given up on: either way not to be sent again."""
        self._db.execute("DELETE FROM alert_outbox WHERE id = ?", (item_id,))

    def reschedule(self, item_id: int, attempts: int, next_attempt_ns: int, error: str) -> None:
        self._db.execute(
            "UPDATE alert_outbox SET attempts = ?, next_attempt_ns = ?, last_error = ? WHERE id = ?",
            (attempts, next_attempt_ns, error[:1000], item_id),
        )

    # --- group members ------------------------------------------------------------------------------

    def members(self) -> list[Member]:
        return [
            Member(row[0], row[1], json.loads(row[2]), Alert(**json.loads(row[3])))
            for row in self._db.query(
                "SELECT route_key, group_key, group_labels, alert FROM alert_group_members"
            )
        ]

    @staticmethod
    def member_write(member: Member) -> Write:
        return (
            "INSERT INTO alert_group_members (route_key, fingerprint, group_key, group_labels, alert)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (route_key, fingerprint) DO UPDATE SET"
            " group_key = excluded.group_key, group_labels = excluded.group_labels, alert = excluded.alert",
            (
                member.route_key,
                member.alert.fingerprint,
                member.group_key,
                json.dumps(member.group_labels, sort_keys=True),
                json.dumps({name: getattr(member.alert, name) for name in _ALERT_FIELDS}, sort_keys=True),
            ),
        )

    @staticmethod
    def member_delete(route_key: str, fingerprint: str) -> Write:
        return (
            "DELETE FROM alert_group_members WHERE route_key = ? AND fingerprint = ?",
            (route_key, fingerprint),
        )

    def write(self, writes: Iterable[Write]) -> None:
        """Several writes in one transaction."""
        batch = list(writes)
        if batch:
            self._db.transaction(batch)
