"""The ``tenant`` processor: the ingest key decides the tenant, whatever the client's attributes say.

When ingest API keys are configured, each request's receiver records the organization and project(s) its key
is bound to (``batch.provenance``); this processor writes them into the resource of every span of that
request. A key bound to several projects keeps the data's own project only when it is one of them, else the
first. Requests that arrived without a key (auth off) are left as they are. With auth on, the collector
refuses a pipeline that lacks this processor.
"""

from __future__ import annotations

from llm_observer.kernel.batch import SpanBatch
from llm_observer.kernel.component import ComponentConfig, CreateContext, Factory, Processor
from llm_observer.semconv.attributes import ORGANIZATION_ID, PROJECT_ID


class TenantConfig(ComponentConfig):
    pass


def stamp_tenant(batch: SpanBatch) -> SpanBatch:
    """Write each request's authenticated tenant into its spans' resources, in place."""
    for provenance in batch.provenance:
        meta = provenance.meta
        seen: set[int] = set()
        for row in range(provenance.start, provenance.end):
            resource = batch.resource[row]
            if id(resource) in seen:
                continue  # one resource map is shared by every span of a ResourceSpans
            seen.add(id(resource))
            if meta.organization_id:
                resource[ORGANIZATION_ID] = meta.organization_id
            if meta.project_id:
                resource[PROJECT_ID] = meta.project_id
            elif meta.allowed_projects and resource.get(PROJECT_ID) not in meta.allowed_projects:
                resource[PROJECT_ID] = meta.allowed_projects[0]
    return batch


def _create(ctx: CreateContext, config: TenantConfig) -> Processor:
    return stamp_tenant


factory = Factory("tenant", TenantConfig, _create)
