"""Semantic search and prompt points over the ``vectors`` exporter's ClickHouse tables.

A search ranks the *unique texts* a tenant may see, then returns their spans: the span rows filtered by
organization (always), project, kind, model and time give the set of hashes in scope; the vectors of those
hashes are scored exactly (dot product of unit vectors = cosine similarity) and the best ``k`` kept; their span
rows, newest first, are the hits. The ``k`` best spans always come from the ``k`` best texts, since every
text in scope has at least one span in scope. The tenant filter is on the span rows, never the vector rows:
two organizations that sent the same text share its vector but never see each other's spans.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from llm_observer.storage.clickhouse.client import ClickHouseClient, open_client_for
from llm_observer.storage.clickhouse.settings import ClickHouseSettings
from llm_observer.storage.clickhouse.vector_schema import VECTOR_SPANS_TABLE, VECTORS_TABLE
from llm_observer.storage.vectors.embed import (
    BUNDLED_MODEL,
    DEFAULT_THREADS,
    Embedder,
    normalize_text,
    release_embedder,
    shared_embedder,
)

# A scope holding this share of the store's span rows is broad: its search ranks the store's best texts first,
# ``_CANDIDATES`` per hit asked for, divided by that share (at most ``_MAX_CANDIDATES``); see ``search_vector``.
_BROAD_SHARE = 0.05
_CANDIDATES = 2
_MAX_CANDIDATES = 2000


def _nanos(moment: datetime) -> int:
    # A time without a zone is taken as UTC, as everywhere in the API.
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return round(aware.timestamp() * 1e9)


def rfc3339(unix_nano: int) -> str:
    """``2026-01-02T03:04:05.123456Z``."""
    moment = datetime.fromtimestamp(unix_nano / 1e9, UTC)
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def span_filter(
    embedding_model: str,
    organization_id: str,
    project_id: str | None = None,
    model: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    kind: str | None = "prompt",
) -> tuple[str, dict[str, Any]]:
    """The ``WHERE`` condition on span rows and its parameters: the organization always, the rest when
    given (``end`` is exclusive; ``model`` matches the model asked for or the one that answered)."""
    if not organization_id:
        raise ValueError("a vector search needs an organization_id")
    conditions = ["EmbeddingModel = {em:String}", "OrganizationId = {org:String}"]
    params: dict[str, Any] = {"em": embedding_model, "org": organization_id}
    if project_id:
        conditions.append("ProjectId = {project:String}")
        params["project"] = project_id
    if kind:
        conditions.append("Kind = {kind:String}")
        params["kind"] = kind
    if model:
        conditions.append("(Model = {model:String} OR RequestModel = {model:String})")
        params["model"] = model
    if start is not None:
        conditions.append("Time >= fromUnixTimestamp64Nano({start:Int64})")
        params["start"] = _nanos(start)
    if end is not None:
        conditions.append("Time < fromUnixTimestamp64Nano({end:Int64})")
        params["end"] = _nanos(end)
    return " AND ".join(conditions), params


@dataclass(frozen=True, slots=True)
class PromptVectors:
    """Prompt vectors of a project's spans, one row of ``vectors`` per span (unit length)."""

    trace_ids: tuple[str, ...]
    span_ids: tuple[str, ...]
    times_ns: tuple[int, ...]
    texts: tuple[str, ...]
    vectors: npt.NDArray[np.float32]
    truncated: bool


class ClickHouseVectorSearch:
    """Nearest stored prompts (or outputs) of a text. Thread-safe and blocking: call it from a worker thread.

    Same contract as ``storage.vectors.search.VectorSearch``; ``open`` shares the ClickHouse client and the
    model with the exporters of the same process.
    """

    def __init__(
        self,
        client: ClickHouseClient,
        database: str,
        embedder: Embedder,
        *,
        owns_client: bool = False,
        owns_embedder: bool = False,
    ) -> None:
        self.client = client
        self.database = database
        self.embedder = embedder
        self._owns_client = owns_client
        self._owns_embedder = owns_embedder
        self._closed = False

    @classmethod
    def open(
        cls,
        clickhouse: ClickHouseSettings,
        data_dir: Path = Path(".llm-observer"),
        model: str = BUNDLED_MODEL,
        threads: int | None = DEFAULT_THREADS,
    ) -> ClickHouseVectorSearch:
        """Open the store ``clickhouse`` names and load ``model``."""
        embedder = shared_embedder(model, data_dir / "models", threads=threads)
        try:
            client = open_client_for(clickhouse, data_dir)
        except BaseException:
            release_embedder(embedder)
            raise
        return cls(client, clickhouse.database, embedder, owns_client=True, owns_embedder=True)

    def _tables_exist(self) -> bool:
        rows = self.client.rows(
            "SELECT count() AS n FROM system.tables WHERE database = {db:String} AND name IN "
            "({vectors:String}, {spans:String})",
            {"db": self.database, "vectors": VECTORS_TABLE, "spans": VECTOR_SPANS_TABLE},
        )
        return bool(rows) and int(rows[0]["n"]) == 2

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
        """Up to ``k`` hits, nearest first, one per span and kind.

        Each hit: ``{trace_id, span_id, score, text, model, provider, project_id, time, organization_id,
        kind}`` (``time`` in RFC 3339, ``score`` the cosine similarity) and ``request_model``,
        ``service_name``, ``span_name``, ``content_hash``. Only spans of ``organization_id`` are ever
        considered; ``kind=None`` searches prompts and outputs.
        """
        if not organization_id:
            raise ValueError("a vector search needs an organization_id")
        query = normalize_text(text, max_chars)
        if not query or k <= 0 or not self._tables_exist():
            return []
        vector = self.embedder.embed([query])[0]
        return self.search_vector(
            vector,
            k,
            organization_id=organization_id,
            project_id=project_id,
            model=model,
            start=start,
            end=end,
            kind=kind,
        )

    def search_vector(
        self,
        query: Sequence[float],
        k: int = 10,
        *,
        organization_id: str,
        project_id: str | None = None,
        model: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        kind: str | None = "prompt",
    ) -> list[dict[str, Any]]:
        """``search`` for an already embedded, unit-length ``query`` vector (of this search's model)."""
        where, params = span_filter(
            self.embedder.cache_key, organization_id, project_id, model, start, end, kind
        )
        vector = [float(x) for x in query]
        db = f"`{self.database}`"
        score = "dotProduct(Vector, CAST({q:Array(Float32)} AS Array(BFloat16)))"
        # Two ways to the same exact answer, picked by how much of the store the scope holds. A broad scope
        # ranks the store's best texts first and looks up their spans in scope: exact as soon as k spans
        # are found among them, since every other text scores lower. A narrow scope ranks only the texts
        # its own spans name. Either way the vectors are read once.
        (counted,) = self.client.rows(
            f"SELECT (SELECT count() FROM {db}.{VECTOR_SPANS_TABLE} WHERE {where}) AS scope, "
            f"(SELECT count() FROM {db}.{VECTOR_SPANS_TABLE}) AS total",
            params,
        )
        scope, total = int(counted["scope"]), max(1, int(counted["total"]))
        if scope == 0:
            return []
        hits: list[dict[str, Any]] = []
        ranked_all = False
        if scope >= _BROAD_SHARE * total:
            wanted = min(_MAX_CANDIDATES, math.ceil(_CANDIDATES * k * total / scope))
            # No LIMIT 1 BY here: over the whole store it costs a full sort (+30 ms at 100k texts). A text
            # stored twice (not merged yet) takes two places, which leaves the answer exact: every text left
            # out still scores lower than every one kept.
            candidates = self.client.rows(
                f"SELECT lower(hex(Hash)) AS h, score FROM (SELECT Hash, {score} AS score "
                f"FROM {db}.{VECTORS_TABLE} WHERE EmbeddingModel = {{em:String}} "
                "ORDER BY score DESC LIMIT {n:UInt32})",
                {"em": params["em"], "q": vector, "n": wanted},
            )
            scores = {str(row["h"]): float(row["score"]) for row in candidates}
            hits = self._spans(db, where, params, scores, k) if scores else []
            ranked_all = len(candidates) < wanted
        if len(hits) < k and not ranked_all:
            best = self.client.rows(
                f"SELECT lower(hex(Hash)) AS h, score FROM (SELECT Hash, {score} AS score "
                f"FROM {db}.{VECTORS_TABLE} WHERE EmbeddingModel = {{em:String}} "
                f"AND Hash IN (SELECT Hash FROM {db}.{VECTOR_SPANS_TABLE} WHERE {where}) "
                "ORDER BY score DESC, Hash LIMIT 1 BY Hash LIMIT {k:UInt32})",
                {**params, "q": vector, "k": k},
            )
            scores = {str(row["h"]): float(row["score"]) for row in best}
            hits = self._spans(db, where, params, scores, k) if scores else []
        if hits:
            texts = self.client.rows(
                f"SELECT lower(hex(Hash)) AS h, any(Text) AS text FROM {db}.{VECTORS_TABLE} "
                "WHERE EmbeddingModel = {em:String} "
                "AND Hash IN (SELECT unhex(arrayJoin(splitByChar(',', {hashes:String})))) GROUP BY h",
                {"em": params["em"], "hashes": ",".join({hit["content_hash"] for hit in hits})},
            )
            found = {str(row["h"]): str(row["text"]) for row in texts}
            for hit in hits:
                hit["text"] = found.get(hit["content_hash"], "")
        return hits

    def _spans(
        self, db: str, where: str, params: Mapping[str, Any], scores: Mapping[str, float], k: int
    ) -> list[dict[str, Any]]:
        """The best ``k`` spans in scope of the texts ``scores`` ranks (by hash): best text first, a text's
        spans newest first, one per span and kind. Their ``text`` is left empty."""
        spans = self.client.rows(
            "SELECT trace_id, span_id, h, t, organization_id, project_id, kind, model, request_model, "
            "provider, service_name, span_name FROM ("
            "SELECT lower(hex(TraceId)) AS trace_id, lower(hex(SpanId)) AS span_id, lower(hex(Hash)) AS h, "
            "toUnixTimestamp64Nano(Time) AS t, OrganizationId AS organization_id, ProjectId AS project_id, "
            "Kind AS kind, Model AS model, RequestModel AS request_model, Provider AS provider, "
            "ServiceName AS service_name, SpanName AS span_name "
            f"FROM {db}.{VECTOR_SPANS_TABLE} WHERE {where} "
            "AND Hash IN (SELECT unhex(arrayJoin(splitByChar(',', {hashes:String})))) "
            "ORDER BY t DESC LIMIT 1 BY trace_id, span_id, kind"
            ") ORDER BY t DESC, trace_id, span_id LIMIT {k:UInt32} BY h",
            {**params, "hashes": ",".join(scores), "k": k},
        )
        hits = [_hit(row, scores[str(row["h"])]) for row in spans]
        # A stable sort: a text's spans stay newest first.
        hits.sort(key=lambda hit: -float(hit["score"]))
        return hits[:k]

    def prompt_vectors(
        self,
        organization_id: str,
        project_id: str,
        start_ns: int,
        end_ns: int,
        max_prompts: int,
    ) -> PromptVectors:
        """The prompt vectors of one project's spans started in ``[start_ns, end_ns)``; at most
        ``max_prompts``, an unbiased sample (by a hash of the span ids) when there are more."""
        dim = self.embedder.dim
        empty = PromptVectors((), (), (), (), np.zeros((0, dim), dtype=np.float32), False)
        if not self._tables_exist():
            return empty
        db = f"`{self.database}`"
        params = {
            "em": self.embedder.cache_key,
            "org": organization_id,
            "project": project_id,
            "start": start_ns,
            "end": end_ns,
            "n": max_prompts + 1,
        }
        table = self.client.arrow(
            "SELECT lower(hex(s.TraceId)) AS trace_id, lower(hex(s.SpanId)) AS span_id, "
            "toUnixTimestamp64Nano(s.Time) AS t, v.Text AS text, CAST(v.Vector AS Array(Float32)) AS vector FROM ("
            f"SELECT TraceId, SpanId, Time, Hash FROM {db}.{VECTOR_SPANS_TABLE} "
            "WHERE EmbeddingModel = {em:String} AND OrganizationId = {org:String} "
            "AND ProjectId = {project:String} AND Kind = 'prompt' "
            "AND Time >= fromUnixTimestamp64Nano({start:Int64}) AND Time < fromUnixTimestamp64Nano({end:Int64}) "
            f"AND Hash IN (SELECT Hash FROM {db}.{VECTORS_TABLE} WHERE EmbeddingModel = {{em:String}}) "
            "ORDER BY sipHash64(TraceId, SpanId), TraceId, SpanId LIMIT 1 BY TraceId, SpanId LIMIT {n:UInt32}"
            ") AS s INNER JOIN ("
            f"SELECT Hash, any(Text) AS Text, any(Vector) AS Vector FROM {db}.{VECTORS_TABLE} "
            "WHERE EmbeddingModel = {em:String} GROUP BY Hash"
            ") AS v ON s.Hash = v.Hash "
            "ORDER BY sipHash64(s.TraceId, s.SpanId), trace_id, span_id",
            params,
        )
        if table.num_rows == 0:
            return empty
        truncated = table.num_rows > max_prompts
        table = table.slice(0, max_prompts)
        flat = table.column("vector").combine_chunks().flatten().to_numpy(zero_copy_only=False)
        vectors = np.asarray(flat, dtype=np.float32).reshape(table.num_rows, -1)
        return PromptVectors(
            tuple(str(x) for x in table.column("trace_id").to_pylist()),
            tuple(str(x) for x in table.column("span_id").to_pylist()),
            tuple(int(x) for x in table.column("t").to_pylist()),
            tuple(str(x) for x in table.column("text").to_pylist()),
            vectors,
            truncated,
        )

    def close(self) -> None:
        """Release the client and the model when ``open`` took them. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._owns_client:
            self.client.close()
        if self._owns_embedder:
            release_embedder(self.embedder)


def _hit(row: Mapping[str, Any], score: float) -> dict[str, Any]:
    return {
        "trace_id": str(row["trace_id"]),
        "span_id": str(row["span_id"]),
        "score": score,
        "text": "",
        "model": str(row["model"]),
        "request_model": str(row["request_model"]),
        "provider": str(row["provider"]),
        "organization_id": str(row["organization_id"]),
        "project_id": str(row["project_id"]),
        "service_name": str(row["service_name"]),
        "span_name": str(row["span_name"]),
        "time": rfc3339(int(row["t"])),
        "kind": str(row["kind"]),
        "content_hash": str(row["h"]),
    }
