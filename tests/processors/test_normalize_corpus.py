"""The normalize processor over the cross-scheme corpus: real spans of every instrumentation scheme, each
with the attributes it must end with (``corpus/README.md``)."""

from __future__ import annotations

import copy
import json

import pytest

from llm_observer.kernel.batch import SpanBatch
from llm_observer.kernel.otlp_codec import decode_traces
from llm_observer.processors.logjoin import attach_events, content_events_by_span
from llm_observer.processors.normalize import normalize_batch
from tests.processors.corpus import corpus


def _batch(case: corpus.Case) -> SpanBatch:
    batch = decode_traces(case.traces)
    if case.logs is not None:
        events = content_events_by_span(case.logs)
        assert attach_events(batch, events) == sum(len(found) for found in events.values())
    return batch


def test_normalize_corpus_has_every_scheme():
    schemes = {name.split("__")[0] for name in corpus.case_names()}
    assert {
        "openllmetry_old",
        "openllmetry_new",
        "openinference",
        "openlit",
        "openlit_old",
        "otel_events",
        "otel_latest",
        "otel_latest_events",
        "handwritten",
    } <= schemes


@pytest.mark.parametrize("name", corpus.case_names())
def test_normalize_corpus_case_matches_expected(name):
    case = corpus.load_case(name)
    batch = normalize_batch(_batch(case))
    assert [s["name"] for s in case.expected] == batch.name
    for row, expected in enumerate(case.expected):
        assert corpus.checked(batch.attributes[row]) == expected["attributes"], batch.name[row]


@pytest.mark.parametrize("name", corpus.case_names())
def test_normalize_corpus_case_is_idempotent(name):
    once = normalize_batch(_batch(corpus.load_case(name)))
    snapshot = copy.deepcopy(once.attributes)
    twice = normalize_batch(once)
    assert twice.attributes == snapshot


@pytest.mark.parametrize("name", corpus.case_names())
def test_normalize_corpus_keep_original_false_is_idempotent_and_keeps_results(name):
    case = corpus.load_case(name)
    kept = normalize_batch(_batch(case))
    dropped = normalize_batch(_batch(case), keep_original=False)
    for row in range(len(kept)):
        assert corpus.checked(dropped.attributes[row]) == corpus.checked(kept.attributes[row])
        assert not any(
            key.startswith(("gen_ai.prompt.", "llm.input_messages.")) for key in dropped.attributes[row]
        )
    snapshot = copy.deepcopy(dropped.attributes)
    assert normalize_batch(dropped, keep_original=False).attributes == snapshot


def test_normalize_corpus_non_genai_span_untouched():
    case = corpus.load_case("openlit__anthropic_cache")
    batch = _batch(case)
    before = copy.deepcopy(batch.attributes[0])
    assert batch.name[0] == "POST"
    normalize_batch(batch)
    assert batch.attributes[0] == before


def test_normalize_corpus_messages_are_compact_json():
    batch = normalize_batch(_batch(corpus.load_case("openllmetry_old__openai_chat_tool_call")))
    raw = batch.attributes[0]["gen_ai.input.messages"]
    assert json.loads(raw)[0]["role"] == "system"
