"""Spans to Qdrant points: a deterministic id per span and kind, and the payload the search filters on."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from llm_observer.exporters.embedding import span_labels
from llm_observer.kernel.batch import SpanBatch
from llm_observer.storage.vectors.embed import SpanText, Vector

_POINT_NAMESPACE = uuid.UUID("0b8f5f0e-4d8e-4f55-9a43-1f3c6b2a7d10")


def point_id(trace_id: bytes, span_id: bytes, kind: str) -> str:
    """The point of one span's prompt or output: replaying the span overwrites it instead of adding one."""
    return str(uuid.uuid5(_POINT_NAMESPACE, f"{trace_id.hex()}{span_id.hex()}{kind}"))


def rfc3339(unix_nano: int) -> str:
    """``2026-01-02T03:04:05.123456Z``."""
    moment = datetime.fromtimestamp(unix_nano / 1e9, UTC)
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def payload(batch: SpanBatch, item: SpanText, excerpt_chars: int) -> dict[str, Any]:
    """What the search returns and filters on for ``item`` (tenant, model, provider, time, excerpt, hash)."""
    row = item.row
    labels = span_labels(batch, row)
    start = batch.start_time_unix_nano[row]
    return {
        "trace_id": batch.trace_id[row].hex(),
        "span_id": batch.span_id[row].hex(),
        "organization_id": labels.organization_id,
        "project_id": labels.project_id,
        "model": labels.model,
        "request_model": labels.request_model,
        "provider": labels.provider,
        "service_name": batch.service_name(row),
        "span_name": batch.name[row],
        "time_unix": start / 1e9,
        "time": rfc3339(start),
        "kind": item.kind,
        "text": item.text[:excerpt_chars],
        "content_hash": item.hash,
    }


def build_points(
    batch: SpanBatch, items: Sequence[SpanText], vectors: Sequence[Vector], excerpt_chars: int
) -> list[Any]:
    """One ``PointStruct`` per text, with its vector."""
    from qdrant_client import models as qm

    return [
        qm.PointStruct(
            id=point_id(batch.trace_id[item.row], batch.span_id[item.row], item.kind),
            vector=list(vector),
            payload=payload(batch, item, excerpt_chars),
        )
        for item, vector in zip(items, vectors, strict=True)
    ]
