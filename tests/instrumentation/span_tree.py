"""The finished spans of one trace as a tree, for the agent-framework tests: lookups by name, operation and
parent, and a drawing of the tree for assertion messages."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan


def attribute(span: ReadableSpan, key: str) -> Any:
    return (span.attributes or {}).get(key)


class SpanTree:
    """The finished spans of one trace by id (asserted: one trace), with lookups by name and parent."""

    def __init__(self, spans: Sequence[ReadableSpan]) -> None:
        self.spans = list(spans)
        self.by_id = {span.context.span_id: span for span in spans}
        assert len({span.context.trace_id for span in spans}) == 1, self.describe()

    def named(self, name: str) -> list[ReadableSpan]:
        return [span for span in self.spans if span.name == name]

    def one(self, name: str) -> ReadableSpan:
        found = self.named(name)
        assert len(found) == 1, (name, self.describe())
        return found[0]

    def parent(self, span: ReadableSpan) -> ReadableSpan | None:
        """The span's parent in this trace; None for a root or a parent outside the spans given."""
        return None if span.parent is None else self.by_id.get(span.parent.span_id)

    def children(self, span: ReadableSpan) -> list[ReadableSpan]:
        """The span's children, earliest start first."""
        found = [child for child in self.spans if self.parent(child) is span]
        return sorted(found, key=lambda child: child.start_time or 0)

    def operation(self, name: str) -> list[ReadableSpan]:
        return [span for span in self.spans if attribute(span, "gen_ai.operation.name") == name]

    def llm_spans(self) -> list[ReadableSpan]:
        return self.operation("chat")

    def describe(self) -> str:
        lines: list[str] = []

        def walk(span: ReadableSpan, depth: int) -> None:
            lines.append("  " * depth + span.name)
            for child in self.children(span):
                walk(child, depth + 1)

        for root in (span for span in self.spans if self.parent(span) is None):
            walk(root, 0)
        return "\n".join(lines)
