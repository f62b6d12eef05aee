"""The ``attribute`` processor: who a span belongs to.

Writes onto every span's attributes:

* ``llm_observer.organization.id`` and ``llm_observer.project.id`` — taken **only** from the resource
  (where the ``tenant`` processor stamps the tenant of the authenticated ingest key), else from the
  configured mapping ``rules`` over resource attributes (e.g. project from ``service.name``), else the
  configured defaults. A span attribute that says otherwise is overwritten. (With ingest keys, isolation
  does not rest on this processor: the pipeline enforces the key's tenant after every processor.)
* ``llm_observer.team.id`` — from the resource, else the span, else the rules, else ``default_team``
  (not written when that is empty).
* ``user.id`` and ``gen_ai.conversation.id`` — normalised to trimmed strings, taken from the first of the
  configured span keys that has a value (``session.id``, OpenLLMetry association properties, ...), then
  from the same keys on the resource.

The tenant depends on the resource alone, and the resource map is shared by every span of one OTLP
``ResourceSpans``, so it is resolved once per resource map per batch.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field, model_validator

from llm_observer.kernel.batch import Attributes, SpanBatch
from llm_observer.kernel.component import ComponentConfig, CreateContext, Factory, Processor
from llm_observer.semconv.attributes import (
    DEFAULT_ORGANIZATION,
    DEFAULT_PROJECT,
    GEN_AI_CONVERSATION_ID,
    ORGANIZATION_ID,
    PROJECT_ID,
    SERVICE_NAME,
    SESSION_ID,
    TEAM_ID,
    USER_ID,
)
from llm_observer.semconv.mappings import (
    ASSOCIATION_SESSION_KEYS,
    ASSOCIATION_USER_KEYS,
    TRACELOOP_ASSOCIATION_PREFIX,
)

Target = Literal["organization", "project", "team"]
_TARGET_KEYS: Mapping[str, str] = {"organization": ORGANIZATION_ID, "project": PROJECT_ID, "team": TEAM_ID}

DEFAULT_USER_KEYS: tuple[str, ...] = (
    USER_ID,
    "enduser.id",
    *(TRACELOOP_ASSOCIATION_PREFIX + key for key in ASSOCIATION_USER_KEYS),
    "langfuse.user.id",
    "gen_ai.user.id",
)
DEFAULT_CONVERSATION_KEYS: tuple[str, ...] = (
    GEN_AI_CONVERSATION_ID,
    SESSION_ID,
    *(TRACELOOP_ASSOCIATION_PREFIX + key for key in ASSOCIATION_SESSION_KEYS),
    "langfuse.session.id",
    "gen_ai.session.id",
)


class MappingRule(ComponentConfig):
    """Derive ``target`` from the resource attribute ``source``.

    With ``map``: the attribute's exact value looked up in it. With ``regex``: the first search match,
    giving ``value`` expanded with the match's groups (``\\1``, ``\\g<name>``), or the first capture
    group, or the whole match. The first rule that yields a non-empty value for a target wins.
    """

    target: Target
    source: str = SERVICE_NAME
    map: dict[str, str] | None = None
    regex: str | None = None
    value: str | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> MappingRule:
        if (self.map is None) == (self.regex is None):
            raise ValueError("a rule needs exactly one of 'map' or 'regex'")
        if self.regex is not None:
            try:
                re.compile(self.regex)
            except re.error as exc:
                raise ValueError(f"invalid regex {self.regex!r}: {exc}") from exc
        elif self.value is not None:
            raise ValueError("'value' goes with 'regex'")
        return self


class AttributeConfig(ComponentConfig):
    """Config of the ``attribute`` processor."""

    default_organization: str = Field(default=DEFAULT_ORGANIZATION, min_length=1)
    default_project: str = Field(default=DEFAULT_PROJECT, min_length=1)
    default_team: str = ""
    rules: tuple[MappingRule, ...] = ()
    user_keys: tuple[str, ...] = DEFAULT_USER_KEYS
    conversation_keys: tuple[str, ...] = DEFAULT_CONVERSATION_KEYS


@dataclass(frozen=True, slots=True)
class _Rule:
    target: str
    source: str
    map: Mapping[str, str] | None
    pattern: re.Pattern[str] | None
    value: str | None

    def apply(self, resource: Attributes) -> str | None:
        text = _text(resource.get(self.source))
        if text is None:
            return None
        if self.map is not None:
            return self.map.get(text)
        assert self.pattern is not None
        match = self.pattern.search(text)
        if match is None:
            return None
        if self.value is not None:
            return match.expand(self.value)
        if match.re.groups:
            return match.group(1)
        return match.group(0)


@dataclass(frozen=True, slots=True)
class _Tenant:
    organization: str
    project: str
    team: str | None  # from the resource or a rule; None lets the span (then the default) decide
    user: str | None  # the resource's user and conversation: fallbacks for its spans
    conversation: str | None


def _text(value: Any) -> str | None:
    """An id as a trimmed, non-empty string."""
    if type(value) is str:
        return value.strip() or None
    if value is None or isinstance(value, (bytes, list, dict)):
        return None
    return str(value).strip() or None


def _first(attrs: Attributes, keys: Sequence[str]) -> str | None:
    """The first of ``keys`` in ``attrs`` with a non-empty id."""
    get = attrs.get
    for key in keys:
        value = get(key)
        if value is not None:
            text = value.strip() if type(value) is str else _text(value)
            if text:
                return text
    return None


def create(ctx: CreateContext, config: AttributeConfig) -> Processor:
    rules = [
        _Rule(
            rule.target,
            rule.source,
            dict(rule.map) if rule.map is not None else None,
            re.compile(rule.regex) if rule.regex is not None else None,
            rule.value,
        )
        for rule in config.rules
    ]
    default_org, default_project = config.default_organization, config.default_project
    default_team = config.default_team or None
    user_keys, conversation_keys = config.user_keys, config.conversation_keys
    # Most spans carry none of these keys: one C-level disjointness test says so before the key loop.
    user_set, conversation_set = frozenset(user_keys), frozenset(conversation_keys)
    metrics = ctx.telemetry.component(ctx.component_id)

    def from_rules(target: str, resource: Attributes) -> str | None:
        for rule in rules:
            if rule.target == target:
                found = _text(rule.apply(resource))
                if found is not None:
                    return found
        return None

    def tenant_of(resource: Attributes) -> _Tenant:
        org = _text(resource.get(ORGANIZATION_ID)) or from_rules("organization", resource) or default_org
        project = _text(resource.get(PROJECT_ID)) or from_rules("project", resource) or default_project
        team = _text(resource.get(TEAM_ID)) or from_rules("team", resource)
        return _Tenant(org, project, team, _first(resource, user_keys), _first(resource, conversation_keys))

    def process(batch: SpanBatch) -> SpanBatch:
        # Keyed by the identity of the shared resource map; ``resources`` keeps every keyed map alive
        # for the whole call so an id cannot be reused by another map.
        tenants: dict[int, _Tenant] = {}
        resources = batch.resource
        overwritten = 0
        for row, attrs in enumerate(batch.attributes):
            resource = resources[row]
            tenant = tenants.get(id(resource))
            if tenant is None:
                tenant = tenants[id(resource)] = tenant_of(resource)
            org_sent = attrs.get(ORGANIZATION_ID, tenant.organization)
            if org_sent != tenant.organization or attrs.get(PROJECT_ID, tenant.project) != tenant.project:
                overwritten += 1
            attrs[ORGANIZATION_ID] = tenant.organization
            attrs[PROJECT_ID] = tenant.project
            team = tenant.team
            if team is None:
                sent = attrs.get(TEAM_ID)
                team = (_text(sent) if sent is not None else None) or default_team
            if team is not None:
                attrs[TEAM_ID] = team
            elif TEAM_ID in attrs:
                del attrs[TEAM_ID]  # present but empty or not a string
            keys = attrs.keys()
            user = (None if keys.isdisjoint(user_set) else _first(attrs, user_keys)) or tenant.user
            if user is not None:
                attrs[USER_ID] = user
            conversation = (
                None if keys.isdisjoint(conversation_set) else _first(attrs, conversation_keys)
            ) or tenant.conversation
            if conversation is not None:
                attrs[GEN_AI_CONVERSATION_ID] = conversation
        if overwritten:
            metrics.event("tenant_overwritten", overwritten)
        return batch

    return process


factory = Factory("attribute", AttributeConfig, create)
