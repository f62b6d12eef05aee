"""The ``spanmetrics`` aggregate on its own: what each span counts in, and that a batch counts exactly as its
spans would one batch each (a batch looks each of its label sets up once)."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from llm_observer.exporters.spanmetrics import DURATION_BUCKETS, TOKEN_BUCKETS, GenAIMetrics
from llm_observer.kernel.batch import STATUS_ERROR, SpanBatch
from llm_observer.semconv import attributes as A
from tests.support.spans import add_span

_START = 1_700_000_000_000_000_000


def _batch(spans: list[tuple[dict[str, Any], dict[str, Any], int, int]]) -> SpanBatch:
    """(attributes, resource, status code, duration in ns) per span."""
    batch = SpanBatch()
    for attrs, resource, status, duration in spans:
        add_span(batch, attrs, resource=resource, status_code=status, start=_START, end=_START + duration)
    return batch


def _tables(metrics: GenAIMetrics) -> dict[str, Any]:
    def histograms(table: dict[tuple[str, ...], Any]) -> dict[tuple[str, ...], Any]:
        return {key: (list(h.buckets), h.count, h.total) for key, h in table.items()}

    return {
        "tokens": histograms(metrics._tokens),
        "durations": histograms(metrics._durations),
        "cost": dict(metrics._cost),
    }


def test_spanmetrics_counts_tokens_durations_and_cost_by_label_set() -> None:
    metrics = GenAIMetrics(100)
    chat = {
        A.GEN_AI_OPERATION_NAME: "chat",
        A.GEN_AI_PROVIDER_NAME: "openai",
        A.GEN_AI_RESPONSE_MODEL: "gpt-4o-2024",  # no request model: the response model names it
        A.GEN_AI_USAGE_INPUT_TOKENS: 10,
        A.GEN_AI_USAGE_OUTPUT_TOKENS: 3.0,
        A.COST_USD: 0.25,
    }
    resource = {A.ORGANIZATION_ID: "acme"}
    metrics.observe(
        _batch(
            [
                (chat, resource, 0, 30_000_000),
                ({**chat, A.GEN_AI_USAGE_INPUT_TOKENS: True, A.COST_USD: "0.5"}, resource, STATUS_ERROR, 0),
                ({**chat, A.ERROR_TYPE: 429, A.PROJECT_ID: "bot"}, resource, STATUS_ERROR, 5_000_000_000),
                ({A.GEN_AI_PROVIDER_NAME: "openai"}, resource, 0, 1),  # no operation: not a GenAI call
            ]
        )
    )
    labels = ("openai", "gpt-4o-2024", "chat", "acme", A.DEFAULT_PROJECT)
    bot = (*labels[:4], "bot")
    tables = _tables(metrics)
    # A bool is not a token count and a string is not a cost: neither is counted.
    assert tables["tokens"][(*labels, "input")][1:] == (1, 10.0)
    assert tables["tokens"][(*labels, "input")][0][TOKEN_BUCKETS.index(16.0)] == 1
    assert tables["tokens"][(*labels, "output")][1:] == (2, 6.0)
    assert tables["tokens"][(*bot, "input")][1:] == (1, 10.0)
    assert tables["durations"][(*labels, "")][1:] == (1, 0.03)
    assert tables["durations"][(*labels, "")][0][DURATION_BUCKETS.index(0.04)] == 1
    # A failed span without error.type counts as _OTHER; error.type is written as a string.
    assert tables["durations"][(*labels, A.ERROR_TYPE_OTHER)][1:] == (1, 0.0)
    assert tables["durations"][(*bot, "429")][1:] == (1, 5.0)
    assert set(tables["durations"]) == {(*labels, ""), (*labels, A.ERROR_TYPE_OTHER), (*bot, "429")}
    assert tables["cost"] == {labels: 0.25, bot: 0.25}


def test_spanmetrics_keeps_labels_apart_that_compare_equal() -> None:
    """1, 1.0 and True are equal dict keys but three different label values."""
    metrics = GenAIMetrics(100)
    spans: list[tuple[dict[str, Any], dict[str, Any], int, int]] = [
        ({A.GEN_AI_OPERATION_NAME: "chat", A.GEN_AI_PROVIDER_NAME: provider}, {}, 0, 1_000_000)
        for provider in (1, 1.0, True, "1", 1)
    ]
    metrics.observe(_batch(spans))
    providers = {key[0]: h[1] for key, h in _tables(metrics)["durations"].items()}
    assert providers == {"1": 3, "1.0": 1, "True": 1}


_label = st.one_of(
    st.sampled_from(["openai", "anthropic", "acme", "", "gpt-4o"]),
    st.integers(-2, 2),
    st.booleans(),
    st.sampled_from([1.0, 0.0]),
    st.none(),
    st.lists(st.sampled_from(["a", "b"]), max_size=2),
)
_number = st.one_of(
    st.integers(0, 100_000), st.floats(0, 1e9, allow_nan=False), st.booleans(), st.sampled_from(["12", None])
)


@st.composite
def _span(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any], int, int]:
    attrs: dict[str, Any] = {}
    for key, values in (
        (A.GEN_AI_OPERATION_NAME, st.one_of(st.sampled_from(["chat", "embeddings"]), _label)),
        (A.GEN_AI_PROVIDER_NAME, _label),
        (A.GEN_AI_REQUEST_MODEL, _label),
        (A.GEN_AI_RESPONSE_MODEL, _label),
        (A.ORGANIZATION_ID, _label),
        (A.PROJECT_ID, _label),
        (A.ERROR_TYPE, _label),
        (A.GEN_AI_USAGE_INPUT_TOKENS, _number),
        (A.GEN_AI_USAGE_OUTPUT_TOKENS, _number),
        (A.COST_USD, _number),
    ):
        if draw(st.booleans()):
            attrs[key] = draw(values)
    resource = draw(st.dictionaries(st.sampled_from([A.ORGANIZATION_ID, A.PROJECT_ID]), _label, max_size=2))
    return attrs, resource, draw(st.sampled_from([0, 1, STATUS_ERROR])), draw(st.integers(-5, 10**11))


@settings(max_examples=200, deadline=None)
@given(
    batches=st.lists(st.lists(_span(), max_size=30), min_size=1, max_size=4),
    max_series=st.integers(1, 6),
    per_organization=st.integers(1, 6),
)
def test_spanmetrics_a_batch_counts_as_its_spans_one_by_one(
    batches: list[list[tuple[dict[str, Any], dict[str, Any], int, int]]],
    max_series: int,
    per_organization: int,
) -> None:
    """Small caps, so that label sets fold into ``_other`` series part way through a batch."""
    together = GenAIMetrics(max_series, per_organization)
    one_by_one = GenAIMetrics(max_series, per_organization)
    for spans in batches:
        together.observe(_batch(spans))
        for span in spans:
            one_by_one.observe(_batch([span]))
    assert _tables(together) == _tables(one_by_one)
