"""The ``normalize`` processor: every GenAI span rewritten to the current OpenTelemetry GenAI conventions.

Whatever produced a span (OpenLLMetry old or new, OpenInference, OpenLIT, the official OTel GenAI
instrumentations v1.28 to v1.41, hand-written code), after this processor it carries
``gen_ai.provider.name``, ``gen_ai.operation.name``, request/response model, the usage counts under their
current names (input tokens including cached tokens), request parameters, ``user.id`` /
``gen_ai.conversation.id``, and its content as ``gen_ai.input.messages`` / ``gen_ai.output.messages``
(/ ``gen_ai.system_instructions``) JSON. Content sent as log events is attached to spans by the ``logjoin``
processor before this runs, and is read from the span's events (which stay on the span).

Spans that are not GenAI pass untouched. Normalising twice changes nothing. Original attributes are kept
unless ``keep_original`` is false, in which case the legacy keys that were mapped are removed.
"""

from __future__ import annotations

from llm_observer.kernel.batch import SpanBatch
from llm_observer.kernel.component import ComponentConfig, CreateContext, Factory, Processor
from llm_observer.processors.normalize.span import drop_legacy, normalize_attributes
from llm_observer.semconv import mappings as M

__all__ = ["NormalizeConfig", "factory", "normalize_batch", "normalize_rows"]


class NormalizeConfig(ComponentConfig):
    """``keep_original``: keep the legacy attributes beside the normalised ones (default true).
    ``convert_messages``: build ``gen_ai.input.messages`` / ``gen_ai.output.messages`` /
    ``gen_ai.system_instructions`` from legacy content (default true); false saves most of the normaliser's
    CPU on legacy spans, and their content stays in its legacy attributes."""

    keep_original: bool = True
    convert_messages: bool = True


_TRIGGERS = M.EXACT_TRIGGER_KEYS
_CONTENT_EVENTS = M.CONTENT_EVENT_NAMES


def normalize_batch(batch: SpanBatch, keep_original: bool = True, convert_messages: bool = True) -> SpanBatch:
    """Normalise every GenAI span of ``batch`` in place and return it (see ``normalize_rows``)."""
    normalize_rows(batch, keep_original, convert_messages)
    return batch


def normalize_rows(batch: SpanBatch, keep_original: bool = True, convert_messages: bool = True) -> int:
    """Normalise every GenAI span of ``batch`` in place; returns how many spans could not be normalised.

    A span whose data makes the normaliser fail is passed on (possibly partly normalised) rather than
    stopping the pipeline; the processor counts such spans as the component event ``span_not_normalized``.
    """
    attributes, events, names, scopes = batch.attributes, batch.events, batch.name, batch.scope_name
    failed = 0
    for row, attrs in enumerate(attributes):
        # The fast path: one set test tells a non-GenAI span (HTTP, DB...) apart.
        if attrs.keys().isdisjoint(_TRIGGERS):
            span_events = events[row]
            if not span_events or all(e.name not in _CONTENT_EVENTS for e in span_events):
                continue
        try:
            normalize_attributes(attrs, names[row], scopes[row], events[row], convert_messages)
            if not keep_original:
                drop_legacy(attrs, convert_messages)
        except Exception:  # data we did not foresee must not stop the pipeline; the span goes on as is
            failed += 1
    return failed


def create(ctx: CreateContext, config: NormalizeConfig) -> Processor:
    keep_original, convert_messages = config.keep_original, config.convert_messages
    metrics = ctx.telemetry.component(ctx.component_id)

    def normalize(batch: SpanBatch) -> SpanBatch:
        failed = normalize_rows(batch, keep_original, convert_messages)
        if failed:
            metrics.event("span_not_normalized", failed)
        return batch

    return normalize


factory = Factory("normalize", NormalizeConfig, create)
