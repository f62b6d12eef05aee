"""A batch's texts as rows of ``llm_observer_vector_spans``: tenant, models, provider, names, time, hash."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from llm_observer.kernel.batch import Attributes, SpanBatch
from llm_observer.semconv import attributes as a
from llm_observer.storage.clickhouse.vector_writes import SpanRows
from llm_observer.storage.vectors.embed import SpanText


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _tenant(attrs: Attributes, resource: Attributes, key: str, default: str) -> str:
    return _str(attrs.get(key)) or _str(resource.get(key)) or default


def span_rows(batch: SpanBatch, items: Sequence[SpanText]) -> SpanRows:
    """One row per text; the tenant as the span store derives it (span attribute, resource, default)."""
    rows = SpanRows.empty()
    for item in items:
        row = item.row
        attrs, resource = batch.attributes[row], batch.resource[row]
        request_model = _str(attrs.get(a.GEN_AI_REQUEST_MODEL))
        rows.time_unix_nano.append(batch.start_time_unix_nano[row])
        rows.organization_id.append(_tenant(attrs, resource, a.ORGANIZATION_ID, a.DEFAULT_ORGANIZATION))
        rows.project_id.append(_tenant(attrs, resource, a.PROJECT_ID, a.DEFAULT_PROJECT))
        rows.kind.append(item.kind)
        rows.hash.append(item.hash)
        rows.trace_id.append(batch.trace_id[row])
        rows.span_id.append(batch.span_id[row])
        rows.model.append(_str(attrs.get(a.GEN_AI_RESPONSE_MODEL)) or request_model)
        rows.request_model.append(request_model)
        rows.provider.append(_str(attrs.get(a.GEN_AI_PROVIDER_NAME)) or _str(attrs.get(a.GEN_AI_SYSTEM)))
        rows.service_name.append(batch.service_name(row))
        rows.span_name.append(batch.name[row])
    return rows
