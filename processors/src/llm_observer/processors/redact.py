"""The ``redact`` processor (opt-in): masks PII and secrets in prompts and outputs, or drops content.

Content is every attribute that carries prompts, outputs, system instructions or tool definitions —
``gen_ai.input.messages``, ``gen_ai.output.messages``, ``gen_ai.system_instructions``,
``gen_ai.tool.definitions`` and the legacy keys still present after normalising (``gen_ai.prompt*``,
``gen_ai.completion*``, ``llm.input_messages.*``, ``llm.output_messages.*``, ``input.value``,
``output.value``...) — plus the attributes of content events (``gen_ai.*`` events) and the content keys of
any other event.

Each match becomes ``[REDACTED:<kind>]`` and is counted as the event ``redacted:<kind>``. Kinds:
``email``, ``phone``, ``card`` (13-19 digits passing the Luhn check), ``api_key`` (``sk-…``, ``AKIA…``,
``ghp_…``, ``AIza…``, ``xox…-``), ``bearer_token``, ``jwt``, ``private_key``, ``ip`` (off by default) and
the configured ``patterns`` by name. JSON values stay valid JSON: they are parsed, their strings masked,
and written back only when something was masked. With ``drop_content`` (or for the projects in
``drop_content_projects``) content attributes and content events are removed instead (event
``dropped_content``).
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import Field, field_validator

from llm_observer.kernel.batch import Attributes, SpanBatch
from llm_observer.kernel.component import ComponentConfig, CreateContext, Factory, Processor
from llm_observer.semconv.attributes import (
    DEFAULT_PROJECT,
    GEN_AI_INPUT_MESSAGES,
    GEN_AI_OUTPUT_MESSAGES,
    GEN_AI_SYSTEM_INSTRUCTIONS,
    GEN_AI_TOOL_DEFINITIONS,
    PROJECT_ID,
)
from llm_observer.semconv.mappings import PROMPT_IDENTITY_KEYS

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
# Events that carry content as a whole (GenAI v1.28-1.36 message events, OpenLIT content events, the
# newer inference-details event); their attributes are all treated as content.
CONTENT_EVENT_PREFIX = "gen_ai."


@dataclass(frozen=True, slots=True)
class _Pass:
    """One masking pass: ``pattern`` runs only when the text holds one of ``triggers`` (None: always);
    ``check`` may reject a match (Luhn, digit counts, address syntax)."""

    kind: str
    pattern: re.Pattern[str]
    triggers: tuple[str, ...] | None = None
    check: Callable[[str], bool] | None = None


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


def _card(text: str) -> bool:
    digits = text.replace(" ", "").replace("-", "")
    return 13 <= len(digits) <= 19 and luhn_valid(digits)


def _phone(text: str) -> bool:
    return 7 <= sum(c.isdigit() for c in text) <= 15


def _ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


# The built-in passes, in order (a masked value cannot match a later pass). Each pattern starts with a
# literal or a character class, with its boundary look-behinds after that first character: Python's
# regex engine scans for such a prefix quickly, while a leading look-behind makes it try every position.
# No pattern can match a JSON quote or backslash.
_SECRETS = (
    _Pass(
        "private_key",
        re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----"),
        ("PRIVATE KEY",),
    ),
    _Pass(
        "jwt",
        re.compile(r"eyJ(?<![\w-]eyJ)[A-Za-z0-9_-]{4,}\.eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{8,}"),
        ("eyJ",),
    ),
    _Pass(
        "bearer_token",
        re.compile(r"[Bb](?<!\w[Bb])(?i:earer)[ \t]+[A-Za-z0-9._~+/=-]{8,}"),
        ("earer", "EARER"),
    ),
    _Pass(
        "api_key",
        re.compile(
            r"(?<![A-Za-z0-9_-])(?:sk-[A-Za-z0-9_-]{16,}"
            r"|(?:AKIA|ASIA)[0-9A-Z]{16}(?![0-9A-Za-z])"
            r"|gh[pousr]_[A-Za-z0-9]{30,}"
            r"|github_pat_[A-Za-z0-9_]{20,}"
            r"|AIza[0-9A-Za-z_-]{35}"
            r"|xox[abposr]-[A-Za-z0-9-]{10,})"
        ),
        ("sk-", "AKIA", "ASIA", "ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_", "AIza", "xox"),
    ),
)
_EMAIL = _Pass(
    "email",
    re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}(?![A-Za-z0-9-])"),
    ("@",),
)
# Card numbers: 13-19 digits, optionally grouped by spaces or dashes, starting 2-6 (the issuer ranges of
# Visa, Mastercard, Amex, Discover, JCB, Diners, UnionPay, Maestro); the Luhn check decides.
_CARD = _Pass("card", re.compile(r"[2-6](?<![\w.][2-6])[0-9](?:[ -]?[0-9]){11,17}(?!\w)"), None, _card)
# Phone numbers: international ones written with +, or grouped national ones such as (415) 555-0100,
# 415-555-0100, 020 7946 0958; 7-15 digits. Bare digit runs are not phones (ids, timestamps, amounts), nor
# are parts of longer digit groups.
_PHONE = _Pass(
    "phone",
    re.compile(
        r"[+(0-9](?<![\w+][+(0-9])(?<![0-9][ .-][+(0-9])"
        r"(?:(?<=\+)[0-9]{1,3}[ .-]?(?:\([0-9]{1,4}\)[ .-]?)?[0-9]{1,4}(?:[ .-]?[0-9]{2,4}){1,4}"
        r"|(?<=\()[0-9]{2,5}\)[ .-]?[0-9]{3,4}[ .-]?[0-9]{3,4}"
        r"|(?<=[0-9])[0-9]{2,4}[ .-][0-9]{3,4}[ .-][0-9]{4})"
        r"(?!\w|[ .-][0-9])"
    ),
    None,
    _phone,
)
_IPS = (
    _Pass("ip", re.compile(r"[0-9](?<![\w.][0-9])[0-9]{0,2}(?:\.[0-9]{1,3}){3}(?![\w.]|\.[0-9])"), None, _ip),
    _Pass(
        "ip",
        re.compile(
            r"[0-9A-Fa-f:](?<![\w:.][0-9A-Fa-f:])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?![\w:.])"
        ),
        ("::", *(f":{digit}" for digit in "0123456789abcdefABCDEF")),
        _ip,
    ),
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


class Redactor:
    """Masks text; counts what it masked by kind in ``counts``."""

    def __init__(self, config: RedactConfig) -> None:
        passes: list[_Pass] = []
        if config.secrets:
            passes.extend(_SECRETS)
        if config.emails:
            passes.append(_EMAIL)
        if config.card_numbers:
            passes.append(_CARD)
        if config.phone_numbers:
            passes.append(_PHONE)
        if config.ip_addresses:
            passes.extend(_IPS)
        passes.extend(_Pass(p.name, re.compile(p.regex)) for p in config.patterns)
        self._passes = tuple(passes)
        # One scan for every trigger literal: most text holds none, and then no triggered pass runs.
        literals = sorted({t for step in passes if step.triggers is not None for t in step.triggers})
        self._gate = re.compile("|".join(re.escape(t) for t in literals)) if literals else None
        self.counts: dict[str, int] = {}
        self.hits = 0

    def _replacer(self, step: _Pass) -> Callable[[re.Match[str]], str]:
        kind, check = step.kind, step.check

        def replace(match: re.Match[str]) -> str:
            if check is not None and not check(match.group(0)):
                return match.group(0)
            self.hits += 1
            self.counts[kind] = self.counts.get(kind, 0) + 1
            return f"[REDACTED:{kind}]"

        return replace

    def text(self, value: str) -> str:
        """``value`` with every match masked (the same object when nothing was masked)."""
        before = self.hits
        masked = value
        gated = self._gate is not None and self._gate.search(value) is not None
        for step in self._passes:
            if step.triggers is not None and not (gated and _has_any(masked, step.triggers)):
                continue
            masked = step.pattern.sub(self._replacer(step), masked)
        return value if self.hits == before else masked

    def value(self, value: Any) -> Any:
        """An attribute value with its strings masked (the same object when nothing matched). A JSON
        string stays valid JSON."""
        if isinstance(value, str):
            return self._string(value)
        if isinstance(value, (list, dict)):
            before = self.hits
            walked = self._walk(value, self._string)
            return value if self.hits == before else walked
        return value

    def _string(self, value: str) -> str:
        head = value[:1]
        if head.isspace():
            head = value.lstrip()[:1]
        if head != "{" and head != "[":
            return self.text(value)
        # JSON: mask the decoded strings, so the result is valid JSON whatever the patterns match, and
        # escaped characters (``\\u0040``) cannot hide a match. Parse only when something may match.
        if "\\u" not in value and not self._may_match(value):
            return value
        try:
            parsed = json.loads(value)
        except ValueError:
            return self.text(value)
        before = self.hits
        walked = self._walk(parsed, self.text)
        if self.hits == before:
            return value
        compact = _is_compact(value)
        return json.dumps(walked, ensure_ascii=False, separators=(",", ":") if compact else (", ", ": "))

    def _may_match(self, value: str) -> bool:
        gated = self._gate is not None and self._gate.search(value) is not None
        for step in self._passes:
            if step.triggers is not None and not (gated and _has_any(value, step.triggers)):
                continue
            if step.pattern.search(value) is not None:
                return True
        return False

    def _walk(self, node: Any, leaf: Callable[[str], str]) -> Any:
        if isinstance(node, str):
            return leaf(node)
        if isinstance(node, list):
            return [self._walk(v, leaf) for v in node]
        if isinstance(node, dict):
            return {k: self._walk(v, leaf) for k, v in node.items()}
        return node


def _has_any(text: str, literals: tuple[str, ...]) -> bool:
    return any(literal in text for literal in literals)


def _is_compact(value: str) -> bool:
    """Whether JSON text was written without spaces after separators (judged by its first one)."""
    index, end = 0, len(value)
    while index < end:
        char = value[index]
        if char == '"':  # skip the string: separators inside it say nothing
            index += 1
            while index < end and value[index] != '"':
                index += 2 if value[index] == "\\" else 1
        elif char in ",:":
            return index + 1 < end and value[index + 1] not in " \n"
        index += 1
    return True


def create(ctx: CreateContext, config: RedactConfig) -> Processor:
    redactor = Redactor(config)
    metrics = ctx.telemetry.component(ctx.component_id)
    drop_all = config.drop_content
    drop_projects = frozenset(config.drop_content_projects)
    extra_keys = frozenset(config.extra_content_keys)

    def is_content(key: str) -> bool:
        if key in PROMPT_IDENTITY_KEYS:  # which prompt version, not what it said
            return False
        return key in CONTENT_KEYS or key in extra_keys or key.startswith(CONTENT_PREFIXES)

    def drops(attrs: Attributes, resource: Attributes) -> bool:
        if drop_all:
            return True
        if not drop_projects:
            return False
        project = attrs.get(PROJECT_ID) or resource.get(PROJECT_ID) or DEFAULT_PROJECT
        return isinstance(project, str) and project in drop_projects

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


factory = Factory("redact", RedactConfig, create)
