"""The ``tenant`` processor: the ingest key decides the tenant, whatever the client's attributes say.

When ingest API keys are configured, each request's receiver records the organization and project(s) its key
is bound to (``batch.provenance``); this processor writes them into the resource of every span of that
request, so the processors after it (``attribute`` rules, ``cost``) see the right tenant. A key bound to
several projects keeps the data's own project only when it is one of them, else the first. Requests that
arrived without a key (auth off) are left as they are.

Isolation does not depend on this processor: after the processors, the pipeline enforces the same tenant on
resource and span attributes (``llm_observer.kernel.tenancy.enforce_tenancy``).
"""

from __future__ import annotations

from llm_observer.kernel.batch import SpanBatch
from llm_observer.kernel.component import ComponentConfig, CreateContext, Factory, Processor
from llm_observer.kernel.tenancy import stamp_resources


class TenantConfig(ComponentConfig):
    pass


def stamp_tenant(batch: SpanBatch) -> SpanBatch:
    """Write each request's authenticated tenant into its spans' resources, in place."""
    return stamp_resources(batch)


def _create(ctx: CreateContext, config: TenantConfig) -> Processor:
    return stamp_tenant


factory = Factory("tenant", TenantConfig, _create)
