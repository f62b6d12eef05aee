"""A batch's texts as rows of ``llm_observer_vector_spans``: tenant, models, provider, names, time, hash."""

from __future__ import annotations

from collections.abc import Sequence

from llm_observer.exporters.embedding import span_labels
from llm_observer.kernel.batch import SpanBatch
from llm_observer.storage.clickhouse.vector_writes import SpanRows
from llm_observer.storage.vectors.embed import SpanText


def span_rows(batch: SpanBatch, items: Sequence[SpanText]) -> SpanRows:
    """One row per text; the tenant as the span store derives it (span attribute, resource, default)."""
    rows = SpanRows.empty()
    for item in items:
        row = item.row
        labels = span_labels(batch, row)
        rows.time_unix_nano.append(batch.start_time_unix_nano[row])
        rows.organization_id.append(labels.organization_id)
        rows.project_id.append(labels.project_id)
        rows.kind.append(item.kind)
        rows.hash.append(item.hash)
        rows.trace_id.append(batch.trace_id[row])
        rows.span_id.append(batch.span_id[row])
        rows.model.append(labels.model)
        rows.request_model.append(labels.request_model)
        rows.provider.append(labels.provider)
        rows.service_name.append(batch.service_name(row))
        rows.span_name.append(batch.name[row])
    return rows
