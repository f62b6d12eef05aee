"""Writing the ``vectors`` exporter's tables: which hashes are stored already, new vectors, span rows."""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import pyarrow as pa

from llm_observer.storage.clickhouse.client import ClickHouseClient
from llm_observer.storage.clickhouse.vector_schema import (
    SPAN_COLUMNS,
    VECTOR_COLUMNS,
    VECTOR_SPANS_TABLE,
    VECTORS_TABLE,
)

_HEX32 = re.compile(r"^[0-9a-f]{32}$")
# Hashes per existence query: the list travels as one string parameter.
_LOOKUP_CHUNK = 5000


def _checked(hashes: Iterable[str]) -> list[str]:
    out = list(hashes)
    for h in out:
        if not _HEX32.match(h):
            raise ValueError(f"not a content hash: {h!r}")
    return out


def stored_hashes(client: ClickHouseClient, database: str, model: str, hashes: Sequence[str]) -> set[str]:
    """Those of ``hashes`` (32 hex digits each) that have a vector for ``model``: one query per 5,000."""
    wanted = _checked(dict.fromkeys(hashes))
    found: set[str] = set()
    for first in range(0, len(wanted), _LOOKUP_CHUNK):
        part = wanted[first : first + _LOOKUP_CHUNK]
        rows = client.rows(
            f"SELECT DISTINCT lower(hex(Hash)) AS h FROM `{database}`.{VECTORS_TABLE} "
            "WHERE EmbeddingModel = {model:String} "
            "AND Hash IN (SELECT unhex(arrayJoin(splitByChar(',', {hashes:String}))))",
            {"model": model, "hashes": ",".join(part)},
        )
        found.update(str(row["h"]) for row in rows)
    return found


def insert_vectors(
    client: ClickHouseClient,
    database: str,
    model: str,
    hashes: Sequence[str],
    texts: Sequence[str],
    vectors: Sequence[Sequence[float]],
    first_seen: float | None = None,
) -> None:
    """One row per hash: its vector and text excerpt, first seen at ``first_seen`` (Unix seconds, now)."""
    if not hashes:
        return
    dim = len(vectors[0])
    flat = pa.array([x for vector in vectors for x in vector], pa.float32())
    if len(flat) != dim * len(hashes):
        raise ValueError("every vector must have the same length, one per hash")
    offsets = pa.array(range(0, dim * len(hashes) + 1, dim), pa.int32())
    seen = int(first_seen if first_seen is not None else time.time())
    table = pa.table(
        {
            "EmbeddingModel": pa.array([model] * len(hashes), pa.string()),
            "Hash": pa.array([bytes.fromhex(h) for h in _checked(hashes)], pa.binary(16)),
            "Vector": pa.ListArray.from_arrays(offsets, flat),
            "Text": pa.array(list(texts), pa.string()),
            "FirstSeen": pa.array([seen] * len(hashes), pa.uint32()),
        }
    )
    client.insert_arrow(f"`{database}`.{VECTORS_TABLE}", VECTOR_COLUMNS, table)


@dataclass(slots=True)
class SpanRows:
    """Columns of ``llm_observer_vector_spans`` being gathered (see ``SPAN_COLUMNS``)."""

    time_unix_nano: list[int]
    organization_id: list[str]
    project_id: list[str]
    kind: list[str]
    hash: list[str]
    trace_id: list[bytes]
    span_id: list[bytes]
    model: list[str]
    request_model: list[str]
    provider: list[str]
    service_name: list[str]
    span_name: list[str]

    @classmethod
    def empty(cls) -> SpanRows:
        return cls([], [], [], [], [], [], [], [], [], [], [], [])

    def __len__(self) -> int:
        return len(self.hash)


def insert_span_rows(client: ClickHouseClient, database: str, model: str, rows: SpanRows) -> None:
    """One row per span and kind, naming its text's hash under embedding ``model``."""
    n = len(rows)
    if not n:
        return
    table = pa.table(
        {
            "Time": pa.array(rows.time_unix_nano, pa.timestamp("ns")),
            "OrganizationId": pa.array(rows.organization_id, pa.string()),
            "ProjectId": pa.array(rows.project_id, pa.string()),
            "Kind": pa.array(rows.kind, pa.string()),
            "EmbeddingModel": pa.array([model] * n, pa.string()),
            "Hash": pa.array([bytes.fromhex(h) for h in _checked(rows.hash)], pa.binary(16)),
            "TraceId": pa.array([t.rjust(16, b"\0")[:16] for t in rows.trace_id], pa.binary(16)),
            "SpanId": pa.array([s.rjust(8, b"\0")[:8] for s in rows.span_id], pa.binary(8)),
            "Model": pa.array(rows.model, pa.string()),
            "RequestModel": pa.array(rows.request_model, pa.string()),
            "Provider": pa.array(rows.provider, pa.string()),
            "ServiceName": pa.array(rows.service_name, pa.string()),
            "SpanName": pa.array(rows.span_name, pa.string()),
        }
    )
    client.insert_arrow(f"`{database}`.{VECTOR_SPANS_TABLE}", SPAN_COLUMNS, table)


def delete_orphan_vectors(client: ClickHouseClient, database: str, older_than_days: float) -> None:
    """Delete the vectors first seen more than ``older_than_days`` ago that no span row names any more (their
    spans expired). Younger ones are kept: their span rows may still be on the way."""
    client.command(
        f"DELETE FROM `{database}`.{VECTORS_TABLE} "
        "WHERE FirstSeen < now() - toIntervalSecond({seconds:UInt64}) "
        f"AND Hash NOT IN (SELECT Hash FROM `{database}`.{VECTOR_SPANS_TABLE})",
        {"seconds": int(older_than_days * 86_400)},
    )
