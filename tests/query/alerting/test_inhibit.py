"""Inhibition among firing alerts of one organization, with ``equal`` labels."""

from __future__ import annotations

from llm_observer.query.alerting.config import InhibitRule
from llm_observer.query.alerting.inhibit import Inhibitor
from tests.query.alerting.notify_support import alert


def outage_rule(**extra: object) -> InhibitRule:
    return InhibitRule.model_validate(
        {
            "source_matchers": ['alertname="ProviderOutage"'],
            "target_matchers": ['severity="warning"'],
            "equal": ["provider"],
            **extra,
        }
    )


def test_inhibit_source_mutes_targets_with_equal_labels() -> None:
    source = alert("ProviderOutage", provider="openai")
    same = alert("HighLatency", provider="openai", severity="warning")
    other_provider = alert("HighLatency", provider="anthropic", severity="warning")
    not_target = alert("CostSpike", provider="openai", severity="page")
    muted = Inhibitor([outage_rule()]).inhibited([source, same, other_provider, not_target])
    assert muted == {same.fingerprint: source.fingerprint}


def test_inhibit_only_firing_sources_of_the_same_organization() -> None:
    resolved_source = alert("ProviderOutage", state="resolved", provider="openai")
    target = alert("HighLatency", provider="openai", severity="warning")
    assert Inhibitor([outage_rule()]).inhibited([resolved_source, target]) == {}
    other_org_source = alert("ProviderOutage", org="globex", provider="openai")
    assert Inhibitor([outage_rule()]).inhibited([other_org_source, target]) == {}


def test_inhibit_alert_matching_both_sides_does_not_mute_its_peer() -> None:
    rule = InhibitRule.model_validate(
        {
            "source_matchers": ['severity="warning"'],
            "target_matchers": ['severity="warning"'],
            "equal": ["team"],
        }
    )
    a = alert("A", severity="warning", team="ml")
    b = alert("B", severity="warning", team="ml")
    assert Inhibitor([rule]).inhibited([a, b]) == {}


def test_inhibit_missing_equal_label_counts_as_equal() -> None:
    source = alert("ProviderOutage")
    target = alert("HighLatency", severity="warning")
    assert Inhibitor([outage_rule()]).inhibited([source, target]) == {target.fingerprint: source.fingerprint}
    assert Inhibitor([]).inhibited([source, target]) == {}
