"""Silences: people mute the alerts of their own organization that match every matcher of a silence, for a
while. Kept in the state file, so they outlive a restart; an expired silence keeps its row (``ends_at`` moved
to when it was expired), so the API can show who muted what.

A silence only ever mutes alerts of its ``organization_id``: the labels of another organization's alert may
match it, its organization never does.
"""

from __future__ import annotations

import builtins
import dataclasses
import json
import threading
import uuid
from collections.abc import Sequence

from llm_observer.query.alerting.db import StateDb
from llm_observer.query.alerting.matchers import Matchers, compile_matchers, match_all
from llm_observer.query.alerting.model import Alert, Silence

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS silences (
        id TEXT PRIMARY KEY,
        organization_id TEXT NOT NULL,
        matchers TEXT NOT NULL,
        starts_at_ns INTEGER NOT NULL,
        ends_at_ns INTEGER NOT NULL,
        created_by TEXT NOT NULL,
        comment TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS silences_by_organization ON silences (organization_id, ends_at_ns)",
)

_COLUMNS = "id, organization_id, matchers, starts_at_ns, ends_at_ns, created_by, comment"


class SilenceStore:
    """The silences of every organization. Thread-safe; the ones not yet expired are also held compiled in
    memory, since the dispatcher asks about every alert of every group it sends."""

    def __init__(self, db: StateDb) -> None:
        self._db = db
        db.ensure(_SCHEMA)
        self._lock = threading.Lock()
        self._live: dict[str, tuple[Silence, Matchers]] = {}
        for silence in self._rows("SELECT " + _COLUMNS + " FROM silences", ()):
            self._live[silence.id] = (silence, compile_matchers(silence.matchers))

    def add(
        self,
        organization_id: str,
        matchers: Sequence[str],
        starts_at_ns: int,
        ends_at_ns: int,
        created_by: str,
        comment: str,
    ) -> Silence:
        """A new silence, stored. ``ValueError`` for no organization, no matchers, a bad matcher, matchers
        that would mute every alert (each matches an empty label), or an end not after the start."""
        if not organization_id:
            raise ValueError("a silence belongs to an organization: organization_id is empty")
        if isinstance(matchers, str) or not matchers:
            raise ValueError('a silence needs at least one matcher, such as alertname="HighErrorRate"')
        compiled = compile_matchers(matchers)
        if all(m.matches({}) for m in compiled):
            raise ValueError(
                "at least one matcher of a silence must not match an empty label (it would mute every alert)"
            )
        if ends_at_ns <= starts_at_ns:
            raise ValueError("a silence must end after it starts")
        silence = Silence(
            id=str(uuid.uuid4()),
            organization_id=organization_id,
            matchers=tuple(str(m) for m in compiled),
            starts_at_ns=int(starts_at_ns),
            ends_at_ns=int(ends_at_ns),
            created_by=created_by,
            comment=comment,
        )
        self._db.execute(
            f"INSERT INTO silences ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                silence.id,
                silence.organization_id,
                json.dumps(list(silence.matchers)),
                silence.starts_at_ns,
                silence.ends_at_ns,
                silence.created_by,
                silence.comment,
            ),
        )
        with self._lock:
            self._live[silence.id] = (silence, compiled)
        return silence

    def expire(self, organization_id: str | None, silence_id: str, now_ns: int) -> Silence | None:
        """End a silence now (one not yet started ends before it starts); the silence as it is now. None when
        ``organization_id`` (None: any) has no silence of that id. Expiring an expired silence changes
        nothing."""
        found = self._get(organization_id, silence_id)
        if found is None or found.ends_at_ns <= now_ns:
            return found
        starts = min(found.starts_at_ns, now_ns)
        expired = dataclasses.replace(found, starts_at_ns=starts, ends_at_ns=now_ns)
        self._db.execute(
            "UPDATE silences SET starts_at_ns = ?, ends_at_ns = ? WHERE id = ?", (starts, now_ns, found.id)
        )
        with self._lock:
            self._live.pop(found.id, None)
        return expired

    def list(self, organization_id: str | None) -> list[Silence]:
        """The silences of ``organization_id`` (None: of every organization), newest first, expired ones
        included."""
        if organization_id is None:
            return self._rows(f"SELECT {_COLUMNS} FROM silences ORDER BY starts_at_ns DESC, id", ())
        return self._rows(
            f"SELECT {_COLUMNS} FROM silences WHERE organization_id = ? ORDER BY starts_at_ns DESC, id",
            (organization_id,),
        )

    def silencing(self, alert: Alert, now_ns: int) -> Silence | None:
        """An active silence of the alert's own organization whose matchers all match its labels, or None."""
        with self._lock:
            live = list(self._live.values())
        expired: list[str] = []
        found: Silence | None = None
        for silence, matchers in live:
            if silence.ends_at_ns <= now_ns:
                expired.append(silence.id)
                continue
            if (
                found is None
                and silence.organization_id == alert.organization_id
                and silence.starts_at_ns <= now_ns
                and match_all(matchers, alert.labels)
            ):
                found = silence
        if expired:
            # Past its end a silence can never mute again: stop looking at it.
            with self._lock:
                for silence_id in expired:
                    self._live.pop(silence_id, None)
        return found

    def _get(self, organization_id: str | None, silence_id: str) -> Silence | None:
        if organization_id is None:
            rows = self._rows(f"SELECT {_COLUMNS} FROM silences WHERE id = ?", (silence_id,))
        else:
            rows = self._rows(
                f"SELECT {_COLUMNS} FROM silences WHERE id = ? AND organization_id = ?",
                (silence_id, organization_id),
            )
        return rows[0] if rows else None

    def _rows(self, sql: str, params: Sequence[object]) -> builtins.list[Silence]:
        return [
            Silence(
                id=row["id"],
                organization_id=row["organization_id"],
                matchers=tuple(json.loads(row["matchers"])),
                starts_at_ns=row["starts_at_ns"],
                ends_at_ns=row["ends_at_ns"],
                created_by=row["created_by"],
                comment=row["comment"],
            )
            for row in self._db.query(sql, params)
        ]
