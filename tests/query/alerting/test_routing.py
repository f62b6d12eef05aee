"""The routing tree and matchers behave as Alertmanager's: first matching child wins, ``continue``,
inherited settings, anchored regexes, group keys."""

from __future__ import annotations

import pytest

from llm_observer.query.alerting.config import Route
from llm_observer.query.alerting.matchers import compile_matcher, compile_matchers, match_all
from llm_observer.query.alerting.routing import build_tree


def test_matchers_compare_and_anchor_regexes() -> None:
    labels = {"model": "gpt-4o", "team": "ml"}
    assert compile_matcher('model="gpt-4o"').matches(labels)
    assert not compile_matcher("model!=gpt-4o").matches(labels)
    assert compile_matcher('model=~"gpt-.*"').matches(labels)
    # Anchored, as Alertmanager: a partial match is no match.
    assert not compile_matcher('model=~"gpt"').matches(labels)
    assert compile_matcher('model!~"claude.*"').matches(labels)
    # A missing label reads as empty.
    assert compile_matcher('severity=""').matches(labels)
    assert not compile_matcher('severity=~".+"').matches(labels)
    assert match_all(compile_matchers(['team="ml"', 'model=~"gpt.*"']), labels)
    assert not match_all(compile_matchers(['team="ml"', 'model="o1"']), labels)


def test_matchers_refuse_bad_input_clearly() -> None:
    with pytest.raises(ValueError, match="not a matcher"):
        compile_matcher("no operator here")
    with pytest.raises(ValueError, match="bad regular expression"):
        compile_matcher('model=~"gpt-("')


def test_routing_first_matching_child_wins() -> None:
    root = build_tree(
        Route.model_validate(
            {
                "receiver": "default",
                "routes": [
                    {"matchers": ['severity="page"'], "receiver": "pager"},
                    {"matchers": ['team="ml"'], "receiver": "ml"},
                ],
            }
        )
    )
    assert [n.receiver for n in root.match({"severity": "page", "team": "ml"})] == ["pager"]
    assert [n.receiver for n in root.match({"severity": "ticket", "team": "ml"})] == ["ml"]
    assert [n.receiver for n in root.match({"team": "web"})] == ["default"]


def test_routing_continue_takes_later_siblings_too() -> None:
    root = build_tree(
        Route.model_validate(
            {
                "receiver": "default",
                "routes": [
                    {"matchers": ['severity="page"'], "receiver": "audit", "continue": True},
                    {"matchers": ['severity="page"'], "receiver": "pager"},
                    {"matchers": ['severity="page"'], "receiver": "never"},
                ],
            }
        )
    )
    assert [n.receiver for n in root.match({"severity": "page"})] == ["audit", "pager"]


def test_routing_inherits_settings_and_nests() -> None:
    root = build_tree(
        Route.model_validate(
            {
                "receiver": "default",
                "group_by": ["alertname"],
                "group_wait": "10s",
                "routes": [
                    {
                        "matchers": ['team="ml"'],
                        "group_interval": "1m",
                        "routes": [{"matchers": ['severity="page"'], "receiver": "ml-pager"}],
                    }
                ],
            }
        )
    )
    (leaf,) = root.match({"team": "ml", "severity": "page", "alertname": "X"})
    assert leaf.receiver == "ml-pager"
    assert (leaf.group_by, leaf.group_wait, leaf.group_interval) == (("alertname",), 10.0, 60.0)
    assert leaf.repeat_interval == 4 * 3600.0  # Alertmanager's default, from the root
    (mid,) = root.match({"team": "ml", "alertname": "X"})
    assert mid.receiver == "default" and mid.key == '{}/{team="ml"}'
    assert leaf.key == '{}/{team="ml"}/{severity="page"}'


def test_routing_group_keys_and_group_by_everything() -> None:
    root = build_tree(Route.model_validate({"receiver": "r", "group_by": ["alertname", "provider"]}))
    labels = {"alertname": "A", "provider": "openai", "model": "gpt-4o"}
    assert root.group_labels(labels) == {"alertname": "A", "provider": "openai"}
    assert root.group_key(root.group_labels(labels)) == '{}:{alertname="A",provider="openai"}'
    every = build_tree(Route.model_validate({"receiver": "r", "group_by": ["..."]}))
    assert every.group_labels(labels) == labels
    single = build_tree(Route.model_validate({"receiver": "r", "group_by": []}))
    assert single.group_key(single.group_labels(labels)) == "{}:{}"


def test_routing_siblings_with_the_same_matchers_get_distinct_keys() -> None:
    root = build_tree(
        Route.model_validate(
            {
                "receiver": "r",
                "routes": [
                    {"matchers": ['a="1"'], "continue": True},
                    {"matchers": ['a="1"']},
                ],
            }
        )
    )
    keys = [n.key for n in root.match({"a": "1"})]
    assert len(set(keys)) == 2
