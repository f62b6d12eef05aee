"""Alert states and incidents written to the state file and read back by a new process's store."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from llm_observer.query.alerting.db import StateDb
from llm_observer.query.alerting.model import Alert, Incident, fingerprint
from llm_observer.query.alerting.state import AlertStateStore

S = 10**9


def alert(name: str, state: str, **extra: object) -> Alert:
    labels = {"alertname": name, "organization_id": "org-a", "model": "gpt-4o"}
    values: dict[str, object] = {
        "fingerprint": fingerprint(labels),
        "rule": name,
        "organization_id": "org-a",
        "labels": labels,
        "annotations": {"summary": f"{name} is bad: ünïcode ✓"},
        "state": state,
        "value": 0.25,
        "active_since_ns": 100 * S,
        "last_evaluated_ns": 160 * S,
        "last_active_ns": 160 * S,
        "generator_url": "http://127.0.0.1:8080/#/traces?model=gpt-4o",
    }
    values.update(extra)
    return Alert(**values)  # type: ignore[arg-type]


def incident(resolved_at_ns: int | None = None) -> Incident:
    return Incident(
        id="0123456789abcdef",
        organization_id="org-a",
        dimension="model",
        value="gpt-4o",
        started_at_ns=130 * S,
        resolved_at_ns=resolved_at_ns,
        alert_fingerprints=("aaaa", "bbbb"),
        rules=("Errors", "Slow"),
        summary="model gpt-4o: error rate and p95 latency together since 00:02 UTC",
    )


def test_state_survives_reopening_the_file(tmp_path: Path) -> None:
    path = tmp_path / "alerting.sqlite"
    firing = alert("Slow", "firing", fired_at_ns=130 * S, incident_id="0123456789abcdef")
    pending = alert("Errors", "pending")
    db = StateDb(path)
    AlertStateStore(db).save([firing, pending], incidents=[incident()])
    db.close()

    db = StateDb(path)
    alerts, incidents = AlertStateStore(db).load()
    db.close()
    assert alerts == {firing.fingerprint: firing, pending.fingerprint: pending}
    assert incidents == {"0123456789abcdef": incident()}


def test_state_save_replaces_and_forgets(tmp_path: Path) -> None:
    db = StateDb(tmp_path / "s.sqlite")
    store = AlertStateStore(db)
    pending = alert("Slow", "pending")
    other = alert("Errors", "firing", fired_at_ns=120 * S)
    store.save([pending, other])
    firing = alert("Slow", "firing", fired_at_ns=220 * S, value=0.5)
    store.save([firing], forgotten=[other.fingerprint], incidents=[incident(resolved_at_ns=300 * S)])
    alerts, incidents = store.load()
    assert alerts == {firing.fingerprint: firing}
    assert incidents["0123456789abcdef"].resolved_at_ns == 300 * S


def test_state_save_is_all_or_nothing(tmp_path: Path) -> None:
    db = StateDb(tmp_path / "s.sqlite")
    store = AlertStateStore(db)
    before = alert("Slow", "firing", fired_at_ns=130 * S)
    store.save([before])
    # The second row breaks a NOT NULL constraint inside the transaction, after the first was written.
    broken = alert("Errors", "firing", fired_at_ns=130 * S, rule=None)
    with pytest.raises(sqlite3.IntegrityError, match="NOT NULL"):
        store.save([alert("Slow", "resolved", resolved_at_ns=500 * S), broken])
    assert store.load()[0] == {before.fingerprint: before}


def test_state_purge_deletes_only_what_resolved_before(tmp_path: Path) -> None:
    db = StateDb(tmp_path / "s.sqlite")
    store = AlertStateStore(db)
    old = alert("Old", "resolved", fired_at_ns=110 * S, resolved_at_ns=200 * S)
    recent = alert("Recent", "resolved", fired_at_ns=110 * S, resolved_at_ns=900 * S)
    firing = alert("Firing", "firing", fired_at_ns=110 * S)
    store.save([old, recent, firing], incidents=[incident(resolved_at_ns=200 * S)])
    assert store.purge(500 * S) == ([old.fingerprint], ["0123456789abcdef"])
    alerts, incidents = store.load()
    assert set(alerts) == {recent.fingerprint, firing.fingerprint} and incidents == {}
