"""Similar-prompt search for the query service: nearest neighbours of a text, within one organization."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from llm_observer.storage.vectors.embed import (
    BUNDLED_MODEL,
    DEFAULT_THREADS,
    Embedder,
    normalize_text,
    release_embedder,
    shared_embedder,
)
from llm_observer.storage.vectors.store import VectorStore, open_vector_store

DEFAULT_COLLECTION = "llm_observer_prompts"
_RESULT_FIELDS = (
    "trace_id",
    "span_id",
    "text",
    "model",
    "provider",
    "organization_id",
    "project_id",
    "time",
    "kind",
)


def _unix(moment: datetime) -> float:
    # A time without a zone is taken as UTC, as everywhere in the API.
    return (moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)).timestamp()


def search_filter(
    organization_id: str,
    project_id: str | None = None,
    model: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    kind: str | None = "prompt",
) -> Any:
    """The Qdrant filter of a search: the organization always, the rest when given (``end`` is exclusive)."""
    from qdrant_client import models as qm

    if not organization_id:
        raise ValueError("a vector search needs an organization_id")
    must: list[Any] = [qm.FieldCondition(key="organization_id", match=qm.MatchValue(value=organization_id))]
    for key, value in (("project_id", project_id), ("kind", kind)):
        if value:
            must.append(qm.FieldCondition(key=key, match=qm.MatchValue(value=value)))
    if model:
        # The model asked for (``gpt-4o``) or the one that answered (``gpt-4o-2024-08-06``).
        must.append(
            qm.Filter(
                should=[
                    qm.FieldCondition(key="model", match=qm.MatchValue(value=model)),
                    qm.FieldCondition(key="request_model", match=qm.MatchValue(value=model)),
                ]
            )
        )
    if start is not None or end is not None:
        must.append(
            qm.FieldCondition(
                key="time_unix",
                range=qm.Range(
                    gte=_unix(start) if start is not None else None,
                    lt=_unix(end) if end is not None else None,
                ),
            )
        )
    return qm.Filter(must=must)


class VectorSearch:
    """Nearest stored prompts (or outputs) of a text. Thread-safe and blocking: call it from a worker thread.

    ``open`` shares the store and the model with an exporter in the same process; ``close`` releases
    the store.
    """

    def __init__(self, store: VectorStore, embedder: Embedder, collection: str = DEFAULT_COLLECTION) -> None:
        self.store = store
        self.embedder = embedder
        self.collection = collection
        self._shared_embedder = False
        self._closed = False

    @classmethod
    def open(
        cls,
        url: str = "qdrant",
        data_dir: Path = Path(".llm-observer"),
        collection: str = DEFAULT_COLLECTION,
        model: str = BUNDLED_MODEL,
        api_key: str | None = None,
        threads: int | None = DEFAULT_THREADS,
    ) -> VectorSearch:
        """Open the store at ``url`` (as the exporter's config names it) and load ``model``."""
        embedder = shared_embedder(model, data_dir / "models", threads=threads)
        try:
            store = open_vector_store(url, data_dir, api_key)
        except BaseException:
            release_embedder(embedder)
            raise
        search = cls(store, embedder, collection)
        search._shared_embedder = True
        return search

    def search(
        self,
        text: str,
        k: int = 10,
        *,
        organization_id: str,
        project_id: str | None = None,
        model: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        kind: str | None = "prompt",
        max_chars: int = 2000,
    ) -> list[dict[str, Any]]:
        """Up to ``k`` hits, nearest first.

        Each hit: ``{trace_id, span_id, score, text, model, provider, project_id, time, organization_id,
        kind}`` (``time`` in RFC 3339, ``score`` the cosine similarity). Only points of ``organization_id``
        are ever considered; ``kind=None`` searches prompts and outputs.
        """
        query = normalize_text(text, max_chars)
        if not query or k <= 0:
            return []
        vector = self.embedder.embed([query])[0]
        flt = search_filter(organization_id, project_id, model, start, end, kind)
        hits = self.store.query(self.collection, vector, flt, k)
        out: list[dict[str, Any]] = []
        for hit in hits:
            body = hit.payload or {}
            result: dict[str, Any] = {name: body.get(name) for name in _RESULT_FIELDS}
            result["score"] = float(hit.score)
            out.append(result)
        return out

    def close(self) -> None:
        """Release the store (and the model, when ``open`` loaded it). Idempotent."""
        if self._closed:
            return
        self._closed = True
        self.store.close()
        if self._shared_embedder:
            self._shared_embedder = False
            release_embedder(self.embedder)


def search(
    store: VectorStore,
    embedder: Embedder,
    text: str,
    k: int = 10,
    *,
    organization_id: str,
    collection: str = DEFAULT_COLLECTION,
    **filters: Any,
) -> list[dict[str, Any]]:
    """``VectorSearch(store, embedder, collection).search(...)`` as a function."""
    return VectorSearch(store, embedder, collection).search(
        text, k, organization_id=organization_id, **filters
    )
