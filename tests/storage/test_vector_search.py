"""Semantic search over the ``vectors`` exporter's ClickHouse tables: real chDB, the real bundled model."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

from llm_observer.exporters.vectors import VectorsExporter
from llm_observer.storage.clickhouse import vector_reads
from llm_observer.storage.clickhouse.vector_reads import ClickHouseVectorSearch
from llm_observer.storage.clickhouse.vector_schema import VECTORS_TABLE
from tests.exporters.test_vectors import make_batch, make_exporter, now

PASSWORD = [
    "How do I reset my password?",
    "I forgot my password, how can I change it?",
    "Can't log in - need to reset the password for my account",
]
OTHER = [
    "What's the weather forecast for Paris tomorrow?",
    "Write a haiku about autumn leaves falling",
    "Give me a recipe for vegan chocolate chip cookies",
    "Explain the difference between TCP and UDP",
    "Which planets in the solar system have rings?",
]


@pytest.fixture
async def filled(tmp_path: Path) -> AsyncIterator[tuple[VectorsExporter, ClickHouseVectorSearch]]:
    exporter = make_exporter(tmp_path, embed_outputs=True)
    await exporter.start()
    old = now() - timedelta(days=3)
    # acme/support: every text, some twice (one vector, two spans); gpt-4o-mini.
    await exporter.send(make_batch([*PASSWORD, *OTHER, PASSWORD[0], OTHER[0]], outputs=["ok"] * 10))
    # acme/sales: two texts with another model, three days ago.
    await exporter.send(
        make_batch(PASSWORD[1:], project="sales", model="claude-3-5-haiku", start=old, first_span=100)
    )
    # globex: the closest possible match to the searches below, which acme must never see.
    await exporter.send(make_batch(["How do I reset my password?"], org="globex", first_span=200))
    assert exporter.client is not None and exporter.embedder is not None
    search = ClickHouseVectorSearch(exporter.client, exporter.database, exporter.embedder)
    try:
        yield exporter, search
    finally:
        search.close()
        await exporter.shutdown()


def _exact(
    exporter: VectorsExporter, query: str, spans: list[tuple[str, str, str, int]], k: int
) -> list[tuple[str, float]]:
    """Span ids of the ``k`` best of ``spans`` ((span id, hash, text, start ns)) by numpy cosine."""
    assert exporter.client is not None and exporter.embedder is not None
    rows = exporter.client.rows(
        "SELECT lower(hex(Hash)) AS h, CAST(Vector AS Array(Float32)) AS v "
        f"FROM `{exporter.database}`.{VECTORS_TABLE} FINAL"
    )
    vectors = {r["h"]: np.asarray(r["v"], dtype=np.float32) for r in rows}
    # The vectors are stored as BFloat16, and the query is compared in that type too.
    embedded = [float(x) for x in exporter.embedder.embed([query])[0]]
    (cast,) = exporter.client.rows(
        "SELECT CAST(CAST({q:Array(Float32)} AS Array(BFloat16)) AS Array(Float32)) AS q", {"q": embedded}
    )
    q = np.asarray(cast["q"], dtype=np.float32)
    assert np.allclose(q, embedded, atol=1e-2)
    scored = [(span, float(vectors[h] @ q), t) for span, h, _, t in spans]
    scored.sort(key=lambda s: (-s[1], -s[2]))
    return [(span, score) for span, score, _ in scored[:k]]


async def test_vector_search_ranks_as_an_exact_numpy_computation(
    filled: tuple[VectorsExporter, ClickHouseVectorSearch],
) -> None:
    exporter, search = filled
    from llm_observer.storage.vectors.embed import content_hash

    prompts = [*PASSWORD, *OTHER, PASSWORD[0], OTHER[0]]
    start = int((now() - timedelta(minutes=1)).timestamp() * 1e9)
    spans = [
        ((i + 1).to_bytes(8, "big").hex(), content_hash(text), text, start + i * 10**9)
        for i, text in enumerate(prompts)
    ]
    for query in ("password reset help", "weather in France", "cookies"):
        hits = search.search(query, 6, organization_id="acme", project_id="support")
        expected = _exact(exporter, query, spans, 6)
        assert [h["span_id"] for h in hits] == [span for span, _ in expected]
        assert [h["score"] for h in hits] == pytest.approx([score for _, score in expected], abs=1e-5)
    hit = search.search("password reset help", 1, organization_id="acme", project_id="support")[0]
    assert hit["text"] in PASSWORD and hit["organization_id"] == "acme"
    assert hit["model"] == "gpt-4o-mini-2024-07-18" and hit["request_model"] == "gpt-4o-mini"
    assert hit["provider"] == "openai" and hit["kind"] == "prompt" and hit["time"].endswith("Z")
    assert len(hit["trace_id"]) == 32 and len(hit["span_id"]) == 16


async def test_vector_search_never_crosses_tenants(
    filled: tuple[VectorsExporter, ClickHouseVectorSearch],
) -> None:
    _, search = filled
    acme = search.search("How do I reset my password?", 50, organization_id="acme")
    assert acme and all(h["organization_id"] == "acme" for h in acme)
    globex = search.search("password", 50, organization_id="globex")
    assert [(h["organization_id"], h["text"]) for h in globex] == [("globex", "How do I reset my password?")]
    assert search.search("password", 5, organization_id="initech") == []
    with pytest.raises(ValueError):
        search.search("password", 5, organization_id="")


async def test_vector_search_filters_by_project_model_kind_and_time(
    filled: tuple[VectorsExporter, ClickHouseVectorSearch],
) -> None:
    _, search = filled
    sales = search.search("password", 10, organization_id="acme", project_id="sales")
    assert {h["text"] for h in sales} == set(PASSWORD[1:]) and len(sales) == 2
    by_model = search.search("password", 10, organization_id="acme", model="claude-3-5-haiku")
    assert {h["project_id"] for h in by_model} == {"sales"}
    answered = search.search("password", 10, organization_id="acme", model="gpt-4o-mini-2024-07-18")
    assert answered and {h["project_id"] for h in answered} == {"support"}
    recent = search.search("password", 50, organization_id="acme", start=now() - timedelta(days=1))
    assert recent and {h["project_id"] for h in recent} == {"support"}
    older = search.search("password", 50, organization_id="acme", end=now() - timedelta(days=1))
    assert {h["project_id"] for h in older} == {"sales"}
    outputs = search.search("ok", 50, organization_id="acme", kind="output")
    assert len(outputs) == 10 and {h["kind"] for h in outputs} == {"output"}
    both = search.search("ok", 100, organization_id="acme", kind=None)
    assert {h["kind"] for h in both} == {"prompt", "output"} and len(both) == 10 + 10 + 2
    # One hit per span and kind, even when a span's row was written twice (a replayed batch).
    assert len({(h["span_id"], h["kind"]) for h in both}) == len(both)


async def test_vector_search_replayed_spans_are_one_hit(
    filled: tuple[VectorsExporter, ClickHouseVectorSearch],
) -> None:
    exporter, search = filled
    await exporter.send(
        make_batch(
            PASSWORD[1:],
            project="sales",
            model="claude-3-5-haiku",
            start=now() - timedelta(days=3),
            first_span=100,
        )
    )
    sales = search.search("password", 10, organization_id="acme", project_id="sales")
    assert len(sales) == 2


async def test_vector_prompt_vectors_for_clusters(
    filled: tuple[VectorsExporter, ClickHouseVectorSearch],
) -> None:
    _, search = filled
    end = int(now().timestamp() * 1e9) + 10**9
    start = end - 86_400 * 10**9
    points = search.prompt_vectors("acme", "support", start, end, 100)
    assert len(points.span_ids) == 10 and points.vectors.shape == (10, 384) and not points.truncated
    assert np.allclose(np.linalg.norm(points.vectors, axis=1), 1.0, atol=1e-2)  # BFloat16
    assert set(points.texts) == {*PASSWORD, *OTHER}
    sample = search.prompt_vectors("acme", "support", start, end, 4)
    assert len(sample.span_ids) == 4 and sample.truncated
    assert set(sample.span_ids) <= set(points.span_ids)
    assert len(search.prompt_vectors("globex", "support", start, end, 100).span_ids) == 1
    assert search.prompt_vectors("acme", "billing", start, end, 100).span_ids == ()


async def test_vector_search_paths_give_the_same_answer(
    filled: tuple[VectorsExporter, ClickHouseVectorSearch], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Broad scopes rank the store's best texts first, narrow ones only their own texts; with a single
    # candidate the store's best text for "password" is another project's, and the broad path must fall
    # back. Every path gives the same answer.
    _, search = filled
    cases = [
        {"organization_id": "acme", "project_id": "sales"},
        {"organization_id": "acme", "kind": None},
        {"organization_id": "globex"},
    ]
    answers = {}
    for broad_share, most in ((0.05, 2000), (0.0, 1), (0.0, 2000), (2.0, 2000)):
        monkeypatch.setattr(vector_reads, "_BROAD_SHARE", broad_share)
        monkeypatch.setattr(vector_reads, "_MAX_CANDIDATES", most)
        answers[broad_share, most] = [
            [
                (h["span_id"], h["kind"], h["text"])
                for h in search.search("How do I reset my password?", 12, **case)
            ]
            for case in cases
        ]
    first = answers[0.05, 2000]
    assert [len(found) for found in first] == [2, 12, 1]
    assert all(found == first for found in answers.values())
