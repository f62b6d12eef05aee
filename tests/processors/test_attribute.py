"""The attribute processor: tenant from the resource only, mapping rules, defaults, team, user and
conversation ids, shared resource maps, idempotence."""

from __future__ import annotations

import copy
import logging
import time
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from llm_observer.kernel.batch import SpanBatch
from llm_observer.kernel.component import CreateContext, Processor
from llm_observer.kernel.telemetry import Telemetry
from llm_observer.processors import attribute
from llm_observer.semconv.attributes import (
    GEN_AI_CONVERSATION_ID,
    ORGANIZATION_ID,
    PROJECT_ID,
    TEAM_ID,
    USER_ID,
)
from tests.support import add_span


def make_processor(tmp_path: Path, **config: Any) -> tuple[Processor, Telemetry]:
    telemetry = Telemetry()
    ctx = CreateContext("attribute", tmp_path, telemetry, logging.getLogger("test.attribute"))
    return attribute.factory.create(ctx, attribute.AttributeConfig.model_validate(config)), telemetry


def batch_of(*rows: tuple[dict[str, Any], dict[str, Any]]) -> SpanBatch:
    """Rows of (resource, span attributes); pass the same resource dict to share it like OTLP does."""
    batch = SpanBatch()
    for resource, attrs in rows:
        add_span(batch, attrs, resource=resource)
    return batch


def tenant(attrs: dict[str, Any]) -> tuple[Any, Any, Any]:
    return attrs.get(ORGANIZATION_ID), attrs.get(PROJECT_ID), attrs.get(TEAM_ID)


def test_attribute_tenant_comes_from_the_resource(tmp_path: Path) -> None:
    process, _ = make_processor(tmp_path)
    resource = {"service.name": "chatbot", ORGANIZATION_ID: "acme", PROJECT_ID: "support", TEAM_ID: "ml"}
    batch = process(batch_of((resource, {}), (resource, {"gen_ai.operation.name": "chat"})))
    assert [tenant(a) for a in batch.attributes] == [("acme", "support", "ml")] * 2


def test_attribute_span_attributes_cannot_move_a_span_to_another_tenant(tmp_path: Path) -> None:
    # The collector stamped the ingest key's tenant into the resource; the client's span says otherwise.
    process, telemetry = make_processor(tmp_path)
    resource = {ORGANIZATION_ID: "acme", PROJECT_ID: "support"}
    spoofed = {ORGANIZATION_ID: "victim-org", PROJECT_ID: "victim-project"}
    only_project = {PROJECT_ID: "victim-project"}
    honest = {ORGANIZATION_ID: "acme", PROJECT_ID: "support"}
    batch = process(batch_of((resource, spoofed), (resource, only_project), (resource, honest)))
    assert [tenant(a)[:2] for a in batch.attributes] == [("acme", "support")] * 3
    value = telemetry.registry.get_sample_value(
        "llm_observer_component_events_total", {"component": "attribute", "event": "tenant_overwritten"}
    )
    assert value == 2


def test_attribute_span_attributes_cannot_choose_a_tenant_even_without_one_on_the_resource(
    tmp_path: Path,
) -> None:
    process, _ = make_processor(tmp_path, default_organization="org-d", default_project="proj-d")
    batch = process(batch_of(({"service.name": "x"}, {ORGANIZATION_ID: "other", PROJECT_ID: "other"})))
    assert tenant(batch.attributes[0])[:2] == ("org-d", "proj-d")


def test_attribute_defaults(tmp_path: Path) -> None:
    process, _ = make_processor(tmp_path)
    batch = process(batch_of(({}, {})))
    assert batch.attributes[0] == {ORGANIZATION_ID: "default", PROJECT_ID: "default"}


def test_attribute_rules_exact_map_and_regex(tmp_path: Path) -> None:
    process, _ = make_processor(
        tmp_path,
        rules=[
            {"target": "project", "map": {"checkout-api": "payments"}},
            {"target": "project", "regex": r"^svc-(\w+)-(?:prod|dev)$"},
            {
                "target": "organization",
                "source": "deployment.environment",
                "regex": r"^(\w+)-",
                "value": r"org-\1",
            },
            {"target": "team", "source": "k8s.namespace.name", "regex": r"^team-[a-z]+$"},
        ],
    )
    rows = [
        ({"service.name": "checkout-api"}, {}),
        ({"service.name": "svc-search-prod", "deployment.environment": "eu-prod"}, {}),
        ({"service.name": "svc-search-prod", "k8s.namespace.name": "team-ml"}, {}),
        ({"service.name": "unmatched"}, {}),
        # the resource's own tenant wins over every rule
        ({"service.name": "checkout-api", PROJECT_ID: "explicit"}, {}),
    ]
    batch = process(batch_of(*rows))
    assert [tenant(a) for a in batch.attributes] == [
        ("default", "payments", None),
        ("org-eu", "search", None),
        ("default", "search", "team-ml"),
        ("default", "default", None),
        ("default", "explicit", None),
    ]


def test_attribute_team_from_resource_then_span_then_rule_then_default(tmp_path: Path) -> None:
    process, _ = make_processor(
        tmp_path, default_team="unassigned", rules=[{"target": "team", "map": {"svc-r": "team-from-rule"}}]
    )
    rows = [
        ({TEAM_ID: "res-team"}, {TEAM_ID: "span-team"}),
        ({}, {TEAM_ID: "span-team"}),
        ({"service.name": "svc-r"}, {}),
        ({}, {TEAM_ID: "  "}),
    ]
    batch = process(batch_of(*rows))
    assert [a[TEAM_ID] for a in batch.attributes] == ["res-team", "span-team", "team-from-rule", "unassigned"]


def test_attribute_no_team_written_without_one(tmp_path: Path) -> None:
    process, _ = make_processor(tmp_path)
    batch = process(batch_of(({}, {TEAM_ID: ""})))
    assert TEAM_ID not in batch.attributes[0]


def test_attribute_user_and_conversation_are_normalised(tmp_path: Path) -> None:
    process, _ = make_processor(tmp_path)
    rows = [
        ({}, {USER_ID: " alice ", GEN_AI_CONVERSATION_ID: "c-1", "session.id": "ignored"}),
        ({}, {"session.id": "s-2", "enduser.id": 42}),
        (
            {},
            {
                "traceloop.association.properties.user_id": "bob",
                "traceloop.association.properties.session_id": "t-3",
            },
        ),
        ({USER_ID: "carol", "session.id": "res-session"}, {}),
        ({}, {USER_ID: "", "langfuse.user.id": "dave"}),
        ({}, {}),
    ]
    batch = process(batch_of(*rows))
    got = [(a.get(USER_ID), a.get(GEN_AI_CONVERSATION_ID)) for a in batch.attributes]
    assert got == [
        ("alice", "c-1"),
        ("42", "s-2"),
        ("bob", "t-3"),
        ("carol", "res-session"),
        ("dave", None),
        (None, None),
    ]


def test_attribute_configured_keys(tmp_path: Path) -> None:
    process, _ = make_processor(tmp_path, user_keys=["app.customer"], conversation_keys=["app.thread"])
    batch = process(batch_of(({}, {"app.customer": "c9", "app.thread": "th", USER_ID: "not-used"})))
    assert (batch.attributes[0][USER_ID], batch.attributes[0][GEN_AI_CONVERSATION_ID]) == ("c9", "th")


def test_attribute_shared_resource_maps_are_not_changed(tmp_path: Path) -> None:
    process, _ = make_processor(tmp_path, rules=[{"target": "project", "regex": r"^(\w+)-svc$"}])
    first = {"service.name": "alpha-svc"}
    second = {"service.name": "beta-svc", ORGANIZATION_ID: "o2"}
    before = (dict(first), dict(second))
    batch = process(batch_of((first, {}), (second, {}), (first, {}), (second, {})))
    assert [tenant(a)[:2] for a in batch.attributes] == [
        ("default", "alpha"),
        ("o2", "beta"),
        ("default", "alpha"),
        ("o2", "beta"),
    ]
    assert (first, second) == before
    assert batch.resource[0] is batch.resource[2]


def test_attribute_is_idempotent(tmp_path: Path) -> None:
    process, _ = make_processor(tmp_path, rules=[{"target": "project", "map": {"a": "pa"}}], default_team="t")
    rows = [
        ({"service.name": "a"}, {"session.id": "s", "enduser.id": "u", PROJECT_ID: "spoof"}),
        ({ORGANIZATION_ID: "acme"}, {TEAM_ID: "x"}),
    ]
    once = process(batch_of(*rows))
    first = copy.deepcopy(once.attributes)
    assert process(once).attributes == first


def test_attribute_config_validation() -> None:
    with pytest.raises(ValidationError):
        attribute.AttributeConfig.model_validate({"rules": [{"target": "project", "map": {}, "regex": "x"}]})
    with pytest.raises(ValidationError):
        attribute.AttributeConfig.model_validate({"rules": [{"target": "project", "regex": "("}]})
    with pytest.raises(ValidationError):
        attribute.AttributeConfig.model_validate({"rules": [{"target": "user", "regex": "x"}]})
    with pytest.raises(ValidationError):
        attribute.AttributeConfig.model_validate({"default_project": ""})
    with pytest.raises(ValidationError):
        attribute.AttributeConfig.model_validate({"defaults": {}})


def test_attribute_factory_is_registered() -> None:
    (entry,) = entry_points(group="llm_observer.processors", name="attribute")
    assert entry.load() is attribute.factory


def test_attribute_10k_span_batch(tmp_path: Path) -> None:
    process, _ = make_processor(tmp_path, rules=[{"target": "project", "regex": r"^(\w+)-svc$"}])
    resources = [{"service.name": f"s{i}-svc"} for i in range(10)]
    rows = [(resources[i % 10], {"session.id": f"s{i}", "user.id": f"u{i % 50}"}) for i in range(10_000)]
    batch = batch_of(*rows)
    started = time.perf_counter()
    process(batch)
    elapsed = time.perf_counter() - started
    print(f"attribute: 10,000 spans in {elapsed * 1000:.1f} ms ({10_000 / elapsed:,.0f} spans/s)")
    assert batch.attributes[1234][PROJECT_ID] == "s4"
    assert batch.attributes[1234][GEN_AI_CONVERSATION_ID] == "s1234"


def test_attribute_odd_attribute_types_never_raise(tmp_path: Path) -> None:
    process, _ = make_processor(tmp_path, rules=[{"target": "project", "regex": "(.+)"}])
    odd_values: list[Any] = [["a"], {"k": "v"}, b"bytes", True, 3.5, 7, "", "  "]
    rows = []
    for value in odd_values:
        resource = {"service.name": value, ORGANIZATION_ID: value, TEAM_ID: value}
        rows.append((resource, {USER_ID: value, "session.id": value, TEAM_ID: value, PROJECT_ID: value}))
    batch = process(batch_of(*rows))
    for attrs in batch.attributes:
        assert isinstance(attrs[ORGANIZATION_ID], str) and attrs[ORGANIZATION_ID]
        assert isinstance(attrs[PROJECT_ID], str) and attrs[PROJECT_ID]
        assert attrs[PROJECT_ID] != "['a']"  # an array names no project
    assert batch.attributes[5][ORGANIZATION_ID] == "7"  # numbers become their text
    assert batch.attributes[5][PROJECT_ID] == "7"
