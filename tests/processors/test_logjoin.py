"""The logjoin processor's waiting content: kept once per WAL record, in WAL order, bounded and expiring."""

from __future__ import annotations

from llm_observer.kernel.batch import Event
from llm_observer.processors.logjoin import PendingEvents


def test_logjoin_pending_are_kept_once_per_record_and_expire() -> None:
    pending = PendingEvents(max_spans=2, max_age_seconds=10)
    key = (b"t" * 16, b"s" * 8)
    event = Event(1, "gen_ai.user.message", {"gen_ai.event.content": "{}"})
    pending.add(7, {key: [event]}, now=0.0)
    pending.add(7, {key: [event]}, now=1.0)  # the same WAL record decoded again (a worker catching up)
    assert pending.take(key) == [event]
    pending.add(3, {key: [event._replace(time_unix_nano=0)]}, now=1.0)
    assert [e.time_unix_nano for e in pending.take(key)] == [0, 1]  # WAL order
    pending.add(9, {(b"a" * 16, b"b" * 8): [event], (b"c" * 16, b"d" * 8): [event]}, now=2.0)
    assert len(pending) == 2 and pending.take(key) == []  # the oldest span made room
    pending.expire(now=12.5)
    assert len(pending) == 0
