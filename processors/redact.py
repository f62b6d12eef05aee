"""The ``redact`` processor (opt-in): masks PII and secrets in prompts and outputs, or drops content.

Content is every attribute that carries prompts, outputs, system instructions or tool definitions —
``gen_ai.input.messages``, ``gen_ai.output.messages``, ``gen_ai.system_instructions``,
``gen_ai.tool.definitions`` and the legacy keys still present after normalising (``gen_ai.prompt*``,
``gen_ai.completion*``, ``llm.input_messages.*``, ``llm.output_messages.*``, ``input.value``,
``output.value``...) — plus the attributes of content events (``gen_ai.*`` events) and the content keys of
any other event.

Each match becomes ``[REDACTED:<kind>]`` and is counted as the event ``redacted:<kind>``. Kinds:
``email``, ``phone``, ``card`` (13–19 digits passing the Luhn check), ``api_key`` (``sk-…``, ``AKIA…``,
``ghp_…``, ``AIza…``, ``xox…-``), ``bearer_token``, ``jwt``, ``private_key``, ``ip`` (off by default) and
the configured ``patterns`` by name. JSON values stay valid JSON: they are parsed, their strings masked,
and written back only when something was masked. With ``drop_content`` (or for the projects in
``drop_content_projects``) content attributes and content events are removed instead (event
``dropped_content``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from pydantic import Field, field_validator

from llm_observer.collector.batch import Attributes, Event, SpanBatch
from llm_observer.collector.component import ComponentConfig, CreateContext, Factory, Processor
from llm_observer.semconv.attributes import (
    DEFAULT_PROJECT,
    GEN_AI_INPUT_MESSAGES,
    GEN_AI_OUTPUT_MESSAGES,
    GEN_AI_SYSTEM_INSTRUCTIONS,
    GEN_AI_TOOL_DEFINITIONS,
    PROJECT_ID,
)

CONTENT_KEYS: frozenset[str] = frozenset(
    {
        GEN_AI_INPUT_MESSAGES,
        GEN_AI_OUTPUT_MESSAGES,
        GEN_AI_SYSTEM_INSTRUCTIONS,
        GEN_AI_TOOL_DEFINITIONS,
        "gen_ai.prompt",
        "gen_ai.completion",
        "input.value",
        "output.value",
        "llm.prompts",
        "llm.completions",
        "traceloop.entity.input",
        "traceloop.entity.output",
        "gen_ai.tool.call.arguments",
        "gen_ai.tool.call.result",
        "tool.parameters",
        "content",
        "message",
        "tool_calls",
    }
)
CONTENT_PREFIXES: tuple[str, ...] = (
    "gen_ai.prompt.",
    "gen_ai.completion.",
    "llm.input_messages.",
    "llm.output_messages.",
    "llm.prompt_template.",
    "llm.tools.",
    "gen_ai.content.",
)
# Events that carry content as a whole (GenAI v1.28–1.36 message events, OpenLIT content events, the
# newer inference-details event); their attributes are all treated as content.
CONTENT_EVENT_PREFIX = "gen_ai."

# Built-in patterns, tried left to right at each position. None may match a JSON quote or backslash.
_BUILTIN: tuple[tuple[str, str], ...] = (
    (
        "private_key",
        r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----",
    ),
    ("jwt", r"\beyJ[A-Za-z0-9_-]{4,}\.eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{8,}"),
    ("bearer_token", r"(?i:\bbearer)\s+[A-Za-z0-9._~+/=-]{8,}"),
    (
        "api_key",
        r"\b(?:sk-[A-Za-z0-9_-]{16,}"
        r"|(?:AKIA|ASIA)[0-9A-Z]{16}"
        r"|gh[pousr]_[A-Za-z0-9]{30,}"
        r"|github_pat_[A-Za-z0-9_]{20,}"
        r"|AIza[0-9A-Za-z_-]{35}"
        r"|xox[abposr]-[A-Za-z0-9-]{10,})",
    ),
    ("email", r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b"),
    # Card numbers: 13-19 digits, optionally grouped by spaces or dashes, starting 2-6 (the issuer ranges
    # of Visa, Mastercard, Amex, Discover, JCB, Diners, UnionPay, Maestro); the Luhn check decides.
    ("card", r"(?<![\w.])[2-6]\d(?:[ -]?\d){11,17}(?![\w])"),
    # Phone numbers: E.164 (+ and 8-15 digits), or grouped numbers with separators, e.g. (415) 555-0100,
    # +44 20 7946 0958, 415-555-0100. Bare digit runs are not phones (ids, timestamps, amounts).
    (
        "phone",
        r"(?<![\w+])(?:\+\d{8,15}"
        r"|(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,4}\)[ .-]?|\d{2,4}[ .-])\d{2,4}[ .-]\d{3,4}(?:[ .-]\d{2,4})?)(?![\w])",
    ),
)
_IP = (
    "ip",
    r"(?<![\w.])(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?![\w.])"
    r"|(?<![\w:])(?:[0-9A-Fa-f]{1,4}:){7}[0-9A-Fa-f]{1,4}(?![\w:])",
)


class PatternConfig(ComponentConfig):
    """An extra pattern: each match becomes ``[REDACTED:<name>]``."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    regex: str

    @field_validator("regex")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            compiled = re.compile(value)
        except re.error as exc:
            raise ValueError(f"invalid regex: {exc}") from exc
        if compiled.match(""):
            raise ValueError("the regex matches the empty string")
        return value


class RedactConfig(ComponentConfig):
    """Config of the ``redact`` processor."""

    emails: bool = True
    phone_numbers: bool = True
    card_numbers: bool = True
    secrets: bool = True  # API keys, bearer tokens, JWTs, private keys
    ip_addresses: bool = False
    patterns: tuple[PatternConfig, ...] = ()
    drop_content: bool = False
    drop_content_projects: tuple[str, ...] = ()
    # More attribute keys to treat as content.
    extra_content_keys: tuple[str, ...] = ()


def luhn_valid(digits: str) -> bool:
    """Whether a string of digits passes the Luhn checksum."""
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if index % 2:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


class Redactor:
    """Masks text; counts what it masked by kind in ``counts``."""

    def __init__(self, config: RedactConfig) -> None:
        enabled = {
            "private_key": config.secrets,
            "jwt": config.secrets,
            "bearer_token": config.secrets,
            "api_key": config.secrets,
            "email": config.emails,
            "card": config.card_numbers,
            "phone": config.phone_numbers,
        }
        builtin = [(kind, regex) for kind, regex in _BUILTIN if enabled[kind]]
        if config.ip_addresses:
            builtin.append(_IP)
        self._builtin = (
            re.compile("|".join(f"(?P<{kind}>{regex})" for kind, regex in builtin)) if builtin else None
        )
        self._custom = [(p.name, re.compile(p.regex)) for p in config.patterns]
        self.counts: dict[str, int] = {}

    def _replace(self, match: re.Match[str]) -> str:
        kind = match.lastgroup or ""
        if kind == "card":
            digits = re.sub(r"[ -]", "", match.group(0))
            if not 13 <= len(digits) <= 19 or not luhn_valid(digits):
                return match.group(0)
        self.counts[kind] = self.counts.get(kind, 0) + 1
        return f"[REDACTED:{kind}]"

    def _custom_replacer(self, name: str) -> Callable[[re.Match[str]], str]:
        def replace(match: re.Match[str]) -> str:
            self.counts[name] = self.counts.get(name, 0) + 1
            return f"[REDACTED:{name}]"

        return replace

    def text(self, value: str) -> str:
        """``value`` with every match masked."""
        if self._builtin is not None:
            value = self._builtin.sub(self._replace, value)
        for name, pattern in self._custom:
            value = pattern.sub(self._custom_replacer(name), value)
        return value

    def value(self, value: Any) -> Any:
        """An attribute value with its strings masked: JSON strings stay valid JSON."""
        if isinstance(value, str):
            return self._string(value)
        if isinstance(value, list):
            return [self.value(v) for v in value]
        if isinstance(value, dict):
            return {k: self.value(v) for k, v in value.items()}
        return value

    def _string(self, value: str) -> str:
        masked = self.text(value)
        # Escaped characters (``\u0040``) could hide a match from the raw text: look inside such JSON too.
        if masked is value and "\\u" not in value:
            return value
        head = value.lstrip()[:1]
        if head in ("{", "[", '"'):
            try:
                parsed = json.loads(value)
            except ValueError:
                return masked
            walked = self._walk(parsed)
            if walked == parsed:
                return value if masked is value else masked
            compact = ", " not in value and '": ' not in value
            return json.dumps(
                walked, ensure_ascii=False, separators=(",", ":") if compact else (", ", ": ")
            )
        return masked

    def _walk(self, node: Any) -> Any:
        if isinstance(node, str):
            return self.text(node)
        if isinstance(node, list):
            return [self._walk(v) for v in node]
        if isinstance(node, dict):
            return {k: self._walk(v) for k, v in node.items()}
        return node


def create(ctx: CreateContext, config: RedactConfig) -> Processor:
    redactor = Redactor(config)
    metrics = ctx.telemetry.component(ctx.component_id)
    drop_all = config.drop_content
    drop_projects = frozenset(config.drop_content_projects)
    extra_keys = frozenset(config.extra_content_keys)

    def is_content(key: str) -> bool:
        return key in CONTENT_KEYS or key in extra_keys or key.startswith(CONTENT_PREFIXES)

    def drops(attrs: Attributes, resource: Attributes) -> bool:
        if drop_all:
            return True
        if not drop_projects:
            return False
        project = attrs.get(PROJECT_ID) or resource.get(PROJECT_ID) or DEFAULT_PROJECT
        return project in drop_projects

    def process(batch: SpanBatch) -> SpanBatch:
        dropped = 0
        for row, attrs in enumerate(batch.attributes):
            events = batch.events[row]
            if drops(attrs, batch.resource[row]):
                keys = [key for key in attrs if is_content(key)]
                for key in keys:
                    del attrs[key]
                kept = [e for e in events if not e.name.startswith(CONTENT_EVENT_PREFIX)]
                for event in kept:
                    for key in [k for k in event.attributes if is_content(k)]:
                        del event.attributes[key]
                if keys or len(kept) != len(events):
                    dropped += 1
                    batch.events[row] = kept
                continue
            for key, value in attrs.items():
                if is_content(key):
                    masked = redactor.value(value)
                    if masked is not value:
                        attrs[key] = masked
            for event in events:
                whole = event.name.startswith(CONTENT_EVENT_PREFIX)
                ev_attrs = event.attributes
                for key, value in ev_attrs.items():
                    if whole or is_content(key):
                        masked = redactor.value(value)
                        if masked is not value:
                            ev_attrs[key] = masked
        for kind, count in redactor.counts.items():
            metrics.event(f"redacted:{kind}", count)
        redactor.counts.clear()
        if dropped:
            metrics.event("dropped_content", dropped)
        return batch

    return process


def _event_with(event: Event, attributes: Attributes) -> Event:
    return Event(event.time_unix_nano, event.name, attributes)


factory = Factory("redact", RedactConfig, create)
