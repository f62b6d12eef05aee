"""The embed step: which text of a span is embedded, and the real bundled model behind its content-hash cache."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pytest

from llm_observer.kernel.batch import SpanBatch
from llm_observer.storage.vectors.embed import (
    BUNDLED_MODEL,
    BUNDLED_MODEL_DIM,
    EmbedCounts,
    Embedder,
    Vector,
    content_hash,
    normalize_text,
    output_text,
    prompt_text,
    span_texts,
)


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


def _messages(*pairs: tuple[str, str]) -> str:
    return json.dumps([{"role": role, "parts": [{"type": "text", "content": text}]} for role, text in pairs])


def test_embed_prompt_text_reads_current_parts_format() -> None:
    attrs = {
        "gen_ai.input.messages": _messages(
            ("system", "You are a support agent."),
            ("user", "Hi"),
            ("assistant", "Hello! How can I help?"),
            ("user", "How do I reset my password?"),
        )
    }
    assert prompt_text(attrs) == "How do I reset my password?"
    assert prompt_text(attrs, scope="all") == "Hi\nHow do I reset my password?"
    assert prompt_text(attrs, roles=("system", "user"), scope="all") == (
        "You are a support agent.\nHi\nHow do I reset my password?"
    )


def test_embed_prompt_text_skips_non_text_parts() -> None:
    attrs = {
        "gen_ai.input.messages": json.dumps(
            [
                {
                    "role": "user",
                    "parts": [
                        {"type": "uri", "modality": "image", "uri": "https://example.com/cat.png"},
                        {"type": "text", "content": "What is in this picture?"},
                    ],
                },
                {"role": "tool", "parts": [{"type": "tool_call_response", "id": "1", "response": "42"}]},
            ]
        )
    }
    assert prompt_text(attrs) == "What is in this picture?"


def test_embed_prompt_text_system_instructions_count_when_system_is_a_role() -> None:
    attrs = {
        "gen_ai.system_instructions": json.dumps([{"type": "text", "content": "Answer in French."}]),
        "gen_ai.input.messages": _messages(("user", "What time is it?")),
    }
    assert prompt_text(attrs) == "What time is it?"
    assert prompt_text(attrs, roles=("system", "user"), scope="all") == "Answer in French.\nWhat time is it?"


def test_embed_prompt_text_falls_back_when_normalize_did_not_run() -> None:
    # Semantic conventions v1.26 and earlier: gen_ai.prompt as a JSON list of {role, content}.
    old = {"gen_ai.prompt": json.dumps([{"role": "user", "content": "Summarise this article."}])}
    assert prompt_text(old) == "Summarise this article."
    # OpenInference: input.value holds the whole request body.
    body = {
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Translate 'cat'"}]}],
    }
    assert (
        prompt_text({"input.value": json.dumps(body), "input.mime_type": "application/json"})
        == "Translate 'cat'"
    )
    responses = {
        "model": "gpt-4.1",
        "input": [{"role": "user", "content": [{"type": "input_text", "text": "Hi!"}]}],
    }
    assert prompt_text({"input.value": json.dumps(responses)}) == "Hi!"
    # A bare string prompt.
    assert prompt_text({"input.value": "plain question?"}) == "plain question?"
    # Current conventions win over the fallbacks.
    both = {"gen_ai.input.messages": _messages(("user", "new")), "gen_ai.prompt": "old"}
    assert prompt_text(both) == "new"
    assert prompt_text({"gen_ai.request.model": "gpt-4o"}) == ""
    assert prompt_text({"input.value": "{not json"}) == "{not json"


def test_embed_output_text_joins_choices_and_falls_back() -> None:
    attrs = {
        "gen_ai.output.messages": json.dumps(
            [
                {"role": "assistant", "parts": [{"type": "text", "content": "One"}], "finish_reason": "stop"},
                {"role": "assistant", "parts": [{"type": "text", "content": "Two"}], "finish_reason": "stop"},
            ]
        )
    }
    assert output_text(attrs) == "One\nTwo"
    assert output_text({"output.value": "done"}) == "done"
    assert output_text({"gen_ai.completion": json.dumps([{"role": "assistant", "content": "ok"}])}) == "ok"


def test_embed_normalize_text_and_hash_treat_whitespace_variants_as_one_text() -> None:
    a = normalize_text("  How do I\n reset   my password?\t", 100)
    b = normalize_text("How do I reset my password?", 100)
    assert a == b == "How do I reset my password?"
    assert content_hash(a) == content_hash(b)
    assert content_hash(a) != content_hash("How do I reset my Password?")
    assert normalize_text("x" * 50, 10) == "x" * 10
    assert len(content_hash(a)) == 32


def test_embed_span_texts_one_prompt_and_optional_output_per_span() -> None:
    batch = SpanBatch(
        attributes=[
            {
                "gen_ai.input.messages": _messages(("user", "Question one")),
                "gen_ai.output.messages": json.dumps(
                    [{"role": "assistant", "parts": [{"type": "text", "content": "A1"}]}]
                ),
            },
            {"http.method": "GET"},
            {"gen_ai.input.messages": _messages(("user", "Question   two"))},
        ]
    )
    items = span_texts(batch, max_chars=100)
    assert [(i.row, i.kind, i.text) for i in items] == [
        (0, "prompt", "Question one"),
        (2, "prompt", "Question two"),
    ]
    items = span_texts(batch, max_chars=100, embed_outputs=True)
    assert [(i.row, i.kind, i.text) for i in items] == [
        (0, "prompt", "Question one"),
        (0, "output", "A1"),
        (2, "prompt", "Question two"),
    ]
    assert all(i.hash == content_hash(i.text) for i in items)


def test_embed_span_texts_of_repeated_content_equal_each_spans_own() -> None:
    shared = _messages(("user", "Where is my order?"))
    attributes = [
        {"gen_ai.input.messages": shared},
        {"gen_ai.input.messages": shared, "gen_ai.system_instructions": "Be brief."},
        {"gen_ai.input.messages": shared, "gen_ai.system_instructions": "Be kind."},
        {"gen_ai.prompt": "Where is my order?"},
        {"input.value": ["not", "a", "string"]},  # an array attribute: read, never remembered
        {"input.value": ["still", "not"]},
        {"gen_ai.input.messages": shared},
    ]
    for roles in (("user",), ("system", "user")):
        for scope in ("last", "all"):
            items = span_texts(SpanBatch(attributes=attributes), max_chars=100, roles=roles, scope=scope)
            expected = [
                (row, normalize_text(prompt_text(attrs, roles, scope), 100))
                for row, attrs in enumerate(attributes)
            ]
            assert [(i.row, i.text) for i in items] == [(row, text) for row, text in expected if text]
            assert all(i.hash == content_hash(i.text) for i in items)


def test_embed_embedder_bundled_model_ranks_paraphrases_nearest(models_dir: Path) -> None:
    embedder = Embedder(BUNDLED_MODEL, models_dir)
    assert embedder.dim == BUNDLED_MODEL_DIM
    texts = [
        "How do I reset my password?",
        "I forgot my password, how can I change it?",
        "What's the weather in Paris tomorrow?",
        "Write a haiku about autumn leaves",
        "Steps to recover access when I can't remember my login credentials",
    ]
    vectors = np.array(embedder.embed(texts))
    assert vectors.shape == (5, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-3)
    sims = vectors @ vectors[0]
    assert sims[1] > 0.7
    assert sims[1] > sims[2] + 0.4 and sims[1] > sims[3] + 0.4
    # A paraphrase sharing no content word still beats the unrelated prompts (a word hash would not).
    assert sims[4] > max(sims[2], sims[3]) + 0.3


def test_embed_embedder_embeds_identical_texts_once(models_dir: Path) -> None:
    embedder = Embedder(BUNDLED_MODEL, models_dir, cache_size=100)
    system = "You are a helpful assistant. Answer briefly and politely."
    counts = EmbedCounts()
    first = embedder.embed([system, "alpha question", system, " alpha   question ", system], counts=counts)
    assert counts.texts == 5 and counts.embedded == 2 and counts.memory_hits == 3 and counts.model_calls == 1
    assert first[0] == first[2] == first[4] and first[1] == first[3]
    again = EmbedCounts()
    second = embedder.embed([system, "beta question"], counts=again)
    assert again.embedded == 1 and again.memory_hits == 1
    assert second[0] == first[0]
    assert embedder.totals.embedded == 3


def test_embed_embedder_lru_is_bounded(models_dir: Path) -> None:
    embedder = Embedder(BUNDLED_MODEL, models_dir, cache_size=2)
    embedder.embed(["one", "two", "three"])
    counts = EmbedCounts()
    embedder.embed(["one"], counts=counts)  # evicted: the oldest of three with room for two
    assert counts.embedded == 1
    counts = EmbedCounts()
    embedder.embed(["three"], counts=counts)
    assert counts.memory_hits == 1 and counts.embedded == 0


class DictCache:
    """A plain in-memory ``VectorCache`` (the Qdrant one is tested in tests/exporters)."""

    def __init__(self) -> None:
        self.vectors: dict[tuple[str, str], Vector] = {}
        self.gets = 0

    def get_vectors(self, model: str, hashes: Sequence[str]) -> dict[str, Vector]:
        self.gets += 1
        return {h: self.vectors[(model, h)] for h in hashes if (model, h) in self.vectors}

    def put_vectors(self, model: str, vectors: Mapping[str, Vector]) -> None:
        self.vectors.update({(model, h): v for h, v in vectors.items()})


def test_embed_embedder_persistent_cache_counts_as_cached(models_dir: Path) -> None:
    store = DictCache()
    first = Embedder(BUNDLED_MODEL, models_dir)
    texts = ["Reset my password please", "Cancel my subscription"]
    vectors = first.embed(texts, store=store)
    assert len(store.vectors) == 2
    # A new process (a fresh embedder, empty LRU) finds them in the store and runs the model on nothing.
    second = Embedder(BUNDLED_MODEL, models_dir)
    counts = EmbedCounts()
    assert second.embed(texts, store=store, counts=counts) == vectors
    assert counts.store_hits == 2 and counts.embedded == 0 and counts.model_calls == 0


def test_embed_embedder_batches_model_calls(models_dir: Path) -> None:
    embedder = Embedder(BUNDLED_MODEL, models_dir, cache_size=0)
    counts = EmbedCounts()
    embedder.embed([f"distinct prompt number {i}" for i in range(10)], batch_size=4, counts=counts)
    assert counts.model_calls == 3 and counts.embedded == 10


def test_embed_embedder_unknown_model_is_a_config_error(models_dir: Path) -> None:
    from llm_observer.kernel.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        Embedder("no-such-org/no-such-embedding-model", models_dir)
    assert info.value.problems[0][0] == "model"


def test_embed_prepare_bundled_model_assembles_five_files_once(tmp_path: Path) -> None:
    from llm_observer.storage.vectors.embed import prepare_bundled_model

    folder = prepare_bundled_model(tmp_path)
    names = sorted(p.name for p in folder.iterdir())
    assert names == [
        "config.json",
        "model.onnx",
        "special_tokens_map.json",
        "tokenizer.json",
        "tokenizer_config.json",
    ]
    # Inputs are cut at the length the model was trained on.
    assert json.loads((folder / "tokenizer_config.json").read_text())["max_length"] == 128
    stamp = (folder / "model.onnx").stat().st_mtime_ns, (folder / "tokenizer_config.json").stat().st_mtime_ns
    assert prepare_bundled_model(tmp_path) == folder
    assert (
        (folder / "model.onnx").stat().st_mtime_ns,
        (folder / "tokenizer_config.json").stat().st_mtime_ns,
    ) == stamp


def test_embed_embedder_cuts_inputs_at_128_word_pieces(models_dir: Path) -> None:
    embedder = Embedder(BUNDLED_MODEL, models_dir, cache_size=0)
    head = " ".join(f"word{i}" for i in range(200))  # well over 128 word pieces
    cut, longer, other = embedder.embed([head, head + " and a different ending about cooking", "word0 word1"])
    # Whatever follows the first 128 word pieces does not change the vector: the model never sees it.
    assert cut == longer
    assert cut != other


def test_embed_embedder_files_cached_vectors_under_model_and_input_length(models_dir: Path) -> None:
    store = DictCache()
    embedder = Embedder(BUNDLED_MODEL, models_dir)
    assert embedder.cache_key == f"{BUNDLED_MODEL}@128"
    embedder.embed(["Where is my parcel?"], store=store)
    # Vectors made when inputs were cut at another length are never served for these.
    assert {model for model, _ in store.vectors} == {embedder.cache_key}


def test_embed_embedder_answers_in_input_order_when_it_runs_texts_by_length(models_dir: Path) -> None:
    embedder = Embedder(BUNDLED_MODEL, models_dir, cache_size=0)
    short = [f"short question {i}" for i in range(4)]
    long = [" ".join(f"context{i} line{j}" for j in range(40)) for i in range(4)]
    mixed = [t for pair in zip(short, long, strict=True) for t in pair]
    counts = EmbedCounts()
    vectors = embedder.embed(mixed, batch_size=4, counts=counts)
    assert counts.model_calls == 2
    # Order in, order out, whatever order the model ran them in; each text as when embedded alone.
    alone = embedder.embed([mixed[0]]) + embedder.embed([mixed[1]])
    assert np.allclose(vectors[0], alone[0], atol=1e-4) and np.allclose(vectors[1], alone[1], atol=1e-4)
