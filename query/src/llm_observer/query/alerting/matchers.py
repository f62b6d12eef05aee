"""Label matchers as Alertmanager evaluates them, compiled once: routes, silences and inhibit rules share them.

``name="value"`` and ``name!=value`` compare strings; ``name=~re`` and ``name!~re`` match a regular expression
against the *whole* value (Alertmanager anchors every regex: ``model=~"gpt"`` does not match ``gpt-4o``). A
label an alert lacks reads as the empty string, so ``team=""`` matches alerts without a ``team``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from llm_observer.query.alerting.config import parse_matcher


@dataclass(frozen=True, slots=True)
class LabelMatcher:
    """One compiled matcher; ``str()`` gives it back as written in the config."""

    name: str
    op: str  # "=", "!=", "=~" or "!~"
    value: str
    pattern: re.Pattern[str] | None = None

    def matches(self, labels: Mapping[str, str]) -> bool:
        actual = labels.get(self.name, "")
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        assert self.pattern is not None
        found = self.pattern.fullmatch(actual) is not None
        return found if self.op == "=~" else not found

    def __str__(self) -> str:
        escaped = self.value.replace("\\", "\\\\").replace('"', '\\"')
        return f'{self.name}{self.op}"{escaped}"'


def compile_matcher(text: str) -> LabelMatcher:
    """The matcher written ``text``; ``ValueError`` naming it when it is not one or its regex is bad."""
    if not isinstance(text, str):
        raise ValueError(f'{text!r} is not a matcher such as severity="page"')
    try:
        name, op, value = parse_matcher(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(
            f'{text!r} is not a matcher such as severity="page", team!=ml or model=~"gpt-.*"'
        ) from exc
    if op in ("=~", "!~"):
        try:
            return LabelMatcher(name, op, value, re.compile(value))
        except re.error as exc:
            raise ValueError(f"{text!r}: bad regular expression: {exc}") from exc
    return LabelMatcher(name, op, value)


Matchers = tuple[LabelMatcher, ...]


def compile_matchers(texts: Iterable[str]) -> Matchers:
    """Every matcher of ``texts``, compiled; the first bad one raises ``ValueError``."""
    return tuple(compile_matcher(text) for text in texts)


def match_all(matchers: Matchers, labels: Mapping[str, str]) -> bool:
    """True when every matcher matches (an empty list matches everything, as a route without matchers)."""
    return all(m.matches(labels) for m in matchers)
