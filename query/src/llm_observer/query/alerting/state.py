"""Alert states and incidents in the state file, so a restart neither forgets a firing alert nor starts its
``for:`` clock again.

The engine writes every change of a round in one transaction (``save``) before it tells the dispatcher, and
reads everything back once at start (``load``). Resolved alerts and incidents stay for ``retention`` (the
API lists what resolved recently), then ``purge`` deletes them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any, cast

from llm_observer.query.alerting.db import StateDb
from llm_observer.query.alerting.model import Alert, AlertState, Incident

RETENTION_S = 7 * 86400.0
"""How long resolved alerts and incidents are kept for the API."""

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS alert_states (
        fingerprint TEXT PRIMARY KEY,
        rule TEXT NOT NULL,
        organization_id TEXT NOT NULL,
        labels TEXT NOT NULL,
        annotations TEXT NOT NULL,
        state TEXT NOT NULL,
        value REAL NOT NULL,
        active_since_ns INTEGER NOT NULL,
        fired_at_ns INTEGER,
        resolved_at_ns INTEGER,
        last_evaluated_ns INTEGER NOT NULL,
        last_active_ns INTEGER NOT NULL,
        incident_id TEXT,
        generator_url TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS alert_states_resolved ON alert_states (resolved_at_ns)",
    """CREATE TABLE IF NOT EXISTS alert_incidents (
        id TEXT PRIMARY KEY,
        organization_id TEXT NOT NULL,
        dimension TEXT NOT NULL,
        value TEXT NOT NULL,
        started_at_ns INTEGER NOT NULL,
        resolved_at_ns INTEGER,
        alert_fingerprints TEXT NOT NULL,
        rules TEXT NOT NULL,
        summary TEXT NOT NULL
    )""",
)

_ALERT_COLUMNS = (
    "fingerprint, rule, organization_id, labels, annotations, state, value, active_since_ns, fired_at_ns, "
    "resolved_at_ns, last_evaluated_ns, last_active_ns, incident_id, generator_url"
)
_INCIDENT_COLUMNS = (
    "id, organization_id, dimension, value, started_at_ns, resolved_at_ns, alert_fingerprints, rules, summary"
)


class AlertStateStore:
    """The ``alert_states`` and ``alert_incidents`` tables of a ``StateDb``."""

    def __init__(self, db: StateDb) -> None:
        self.db = db
        db.ensure(_SCHEMA)

    def load(self) -> tuple[dict[str, Alert], dict[str, Incident]]:
        """Every stored alert by fingerprint and incident by id."""
        alerts = {
            row["fingerprint"]: _alert(row)
            for row in self.db.query(f"SELECT {_ALERT_COLUMNS} FROM alert_states")
        }
        incidents = {
            row["id"]: _incident(row)
            for row in self.db.query(f"SELECT {_INCIDENT_COLUMNS} FROM alert_incidents")
        }
        return alerts, incidents

    def save(
        self,
        alerts: Iterable[Alert],
        forgotten: Iterable[str] = (),
        incidents: Iterable[Incident] = (),
    ) -> None:
        """Write ``alerts`` and ``incidents`` (insert or replace) and delete the ``forgotten`` fingerprints, all
        in one transaction: a crash leaves the round's state either wholly before or wholly after."""
        writes: list[tuple[str, Sequence[Any]]] = []
        alert_sql = f"INSERT OR REPLACE INTO alert_states ({_ALERT_COLUMNS}) VALUES ({_marks(14)})"
        for a in alerts:
            writes.append(
                (
                    alert_sql,
                    (
                        a.fingerprint,
                        a.rule,
                        a.organization_id,
                        json.dumps(a.labels, sort_keys=True),
                        json.dumps(a.annotations, sort_keys=True),
                        a.state,
                        a.value,
                        a.active_since_ns,
                        a.fired_at_ns,
                        a.resolved_at_ns,
                        a.last_evaluated_ns,
                        a.last_active_ns,
                        a.incident_id,
                        a.generator_url,
                    ),
                )
            )
        writes.extend(("DELETE FROM alert_states WHERE fingerprint = ?", (f,)) for f in forgotten)
        incident_sql = f"INSERT OR REPLACE INTO alert_incidents ({_INCIDENT_COLUMNS}) VALUES ({_marks(9)})"
        for i in incidents:
            writes.append(
                (
                    incident_sql,
                    (
                        i.id,
                        i.organization_id,
                        i.dimension,
                        i.value,
                        i.started_at_ns,
                        i.resolved_at_ns,
                        json.dumps(list(i.alert_fingerprints)),
                        json.dumps(list(i.rules)),
                        i.summary,
                    ),
                )
            )
        if writes:
            self.db.transaction(writes)

    def purge(self, before_ns: int) -> tuple[list[str], list[str]]:
        """Delete alerts and incidents resolved before ``before_ns``; their fingerprints and ids."""
        alerts = [
            row["fingerprint"]
            for row in self.db.query(
                "SELECT fingerprint FROM alert_states WHERE state = 'resolved' AND resolved_at_ns < ?",
                (before_ns,),
            )
        ]
        incidents = [
            row["id"]
            for row in self.db.query(
                "SELECT id FROM alert_incidents WHERE resolved_at_ns IS NOT NULL AND resolved_at_ns < ?",
                (before_ns,),
            )
        ]
        writes: list[tuple[str, Sequence[Any]]] = [
            ("DELETE FROM alert_states WHERE fingerprint = ?", (f,)) for f in alerts
        ]
        writes.extend(("DELETE FROM alert_incidents WHERE id = ?", (i,)) for i in incidents)
        if writes:
            self.db.transaction(writes)
        return alerts, incidents


def _marks(n: int) -> str:
    return ", ".join("?" * n)


def _alert(row: Any) -> Alert:
    return Alert(
        fingerprint=row["fingerprint"],
        rule=row["rule"],
        organization_id=row["organization_id"],
        labels=json.loads(row["labels"]),
        annotations=json.loads(row["annotations"]),
        state=cast(AlertState, row["state"]),
        value=float(row["value"]),
        active_since_ns=row["active_since_ns"],
        fired_at_ns=row["fired_at_ns"],
        resolved_at_ns=row["resolved_at_ns"],
        last_evaluated_ns=row["last_evaluated_ns"],
        last_active_ns=row["last_active_ns"],
        incident_id=row["incident_id"],
        generator_url=row["generator_url"],
    )


def _incident(row: Any) -> Incident:
    return Incident(
        id=row["id"],
        organization_id=row["organization_id"],
        dimension=row["dimension"],
        value=row["value"],
        started_at_ns=row["started_at_ns"],
        resolved_at_ns=row["resolved_at_ns"],
        alert_fingerprints=tuple(json.loads(row["alert_fingerprints"])),
        rules=tuple(json.loads(row["rules"])),
        summary=row["summary"],
    )
