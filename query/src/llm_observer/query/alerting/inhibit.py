"""Inhibition: while an alert matching an inhibit rule's ``source_matchers`` fires, alerts matching its
``target_matchers`` that carry the same values of the ``equal`` labels are not notified (a provider outage
mutes the error-rate alerts of that provider's models).

As in Alertmanager: only firing sources inhibit (silenced ones too: a silence hides a page, not a fact); a
label missing from both alerts counts as equal; an alert matching both sides of a rule is not muted by another
alert that also matches both (two alerts never mute each other). Unlike Alertmanager, which has one tenant,
a source only inhibits alerts of its own organization.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from llm_observer.query.alerting.config import InhibitRule
from llm_observer.query.alerting.matchers import Matchers, compile_matchers, match_all
from llm_observer.query.alerting.model import Alert


@dataclass(frozen=True, slots=True)
class _Rule:
    source: Matchers
    target: Matchers
    equal: tuple[str, ...]


class Inhibitor:
    """The config's inhibit rules, compiled."""

    def __init__(self, rules: Sequence[InhibitRule]) -> None:
        self._rules = tuple(
            _Rule(compile_matchers(r.source_matchers), compile_matchers(r.target_matchers), tuple(r.equal))
            for r in rules
        )

    def inhibited(self, alerts: Sequence[Alert]) -> dict[str, str]:
        """Of ``alerts``, those inhibited: fingerprint → the fingerprint of a firing alert that inhibits it."""
        if not self._rules:
            return {}
        firing = [a for a in alerts if a.state == "firing"]
        muted: dict[str, str] = {}
        for rule in self._rules:
            # Index the sources by (organization, equal values): one pass over sources, one over targets.
            sources: dict[tuple[str, ...], list[Alert]] = {}
            for alert in firing:
                if match_all(rule.source, alert.labels):
                    key = (alert.organization_id, *(alert.labels.get(n, "") for n in rule.equal))
                    sources.setdefault(key, []).append(alert)
            if not sources:
                continue
            for alert in alerts:
                if alert.fingerprint in muted or not match_all(rule.target, alert.labels):
                    continue
                key = (alert.organization_id, *(alert.labels.get(n, "") for n in rule.equal))
                both_sides = match_all(rule.source, alert.labels)
                for source in sources.get(key, ()):
                    if source.fingerprint == alert.fingerprint:
                        continue
                    if both_sides and match_all(rule.target, source.labels):
                        continue
                    muted[alert.fingerprint] = source.fingerprint
                    break
        return muted
