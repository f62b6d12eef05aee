"""Silences: stored in the state file, matchers ANDed, muting only their own organization's alerts, expired
in place."""

from __future__ import annotations

from pathlib import Path

import pytest

from llm_observer.query.alerting.db import StateDb
from llm_observer.query.alerting.silences import SilenceStore
from tests.query.alerting.notify_support import T0, S, alert


def test_silences_mute_matching_alerts_while_active(tmp_path: Path) -> None:
    store = SilenceStore(StateDb(tmp_path / "state.sqlite"))
    silence = store.add(
        "acme", ['alertname="HighErrorRate"', 'provider=~"open.*"'], T0, T0 + 3600 * S, "ana", "deploy"
    )
    openai = alert(provider="openai")
    assert store.silencing(openai, T0 + S) == silence
    # Matchers are ANDed: one not matching is enough to stay loud.
    assert store.silencing(alert(provider="anthropic"), T0 + S) is None
    assert store.silencing(alert("Other", provider="openai"), T0 + S) is None
    # Not before it starts, not after it ends.
    assert store.silencing(openai, T0 - S) is None
    assert store.silencing(openai, T0 + 3600 * S) is None


def test_silences_never_mute_another_organization(tmp_path: Path) -> None:
    store = SilenceStore(StateDb(tmp_path / "state.sqlite"))
    store.add("org-a", ['alertname="HighErrorRate"'], T0, T0 + 3600 * S, "ana", "")
    assert store.silencing(alert(org="org-a"), T0 + S) is not None
    assert store.silencing(alert(org="org-b"), T0 + S) is None
    # Even an alert of org b whose labels claim org a (the label is not what decides).
    forged = alert(org="org-b")
    forged.labels["organization_id"] = "org-a"
    assert store.silencing(forged, T0 + S) is None
    assert [s.organization_id for s in store.list("org-b")] == []
    assert len(store.list("org-a")) == 1 and len(store.list(None)) == 1


def test_silences_expire_keeps_the_row_and_survives_restart(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    store = SilenceStore(StateDb(path))
    silence = store.add("acme", ['alertname="HighErrorRate"'], T0, T0 + 3600 * S, "ana", "maintenance")
    # Another organization cannot expire it.
    assert store.expire("other", silence.id, T0 + 10 * S) is None
    expired = store.expire("acme", silence.id, T0 + 10 * S)
    assert expired is not None and expired.ends_at_ns == T0 + 10 * S
    assert expired.state(T0 + 10 * S) == "expired"
    assert store.silencing(alert(), T0 + 11 * S) is None
    assert store.expire(None, "no-such-id", T0) is None

    reopened = SilenceStore(StateDb(path))
    (kept,) = reopened.list("acme")
    assert kept.id == silence.id and kept.ends_at_ns == T0 + 10 * S and kept.comment == "maintenance"
    assert reopened.silencing(alert(), T0 + 11 * S) is None


def test_silences_loaded_at_start_still_mute(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    SilenceStore(StateDb(path)).add("acme", ['team="ml"'], T0, T0 + 60 * S, "ana", "")
    assert SilenceStore(StateDb(path)).silencing(alert(team="ml"), T0 + S) is not None


def test_silences_pending_silence_expired_before_it_starts(tmp_path: Path) -> None:
    store = SilenceStore(StateDb(tmp_path / "state.sqlite"))
    later = store.add("acme", ['team="ml"'], T0 + 100 * S, T0 + 200 * S, "ana", "")
    expired = store.expire("acme", later.id, T0)
    assert expired is not None and expired.starts_at_ns == expired.ends_at_ns == T0


@pytest.mark.parametrize(
    ("matchers", "start", "end", "message"),
    [
        ([], T0, T0 + S, "at least one matcher"),
        (["bogus"], T0, T0 + S, "not a matcher"),
        (['model=~"("'], T0, T0 + S, "bad regular expression"),
        (['team=~".*"'], T0, T0 + S, "mute every alert"),
        (['team="ml"'], T0, T0, "end after it starts"),
    ],
)
def test_silences_refuse_bad_input(
    tmp_path: Path, matchers: list[str], start: int, end: int, message: str
) -> None:
    store = SilenceStore(StateDb(tmp_path / "state.sqlite"))
    good = store.add("acme", ['team="web"'], T0, T0 + S, "ana", "")
    with pytest.raises(ValueError, match=message):
        store.add("acme", matchers, start, end, "ana", "")
    # Nothing else was lost or added.
    assert [s.id for s in store.list("acme")] == [good.id]
