"""Authenticated tenancy, enforced whatever the pipeline holds.

When a request came with an ingest key, its WAL record carries the key's ``IngestMeta`` (``batch.provenance``
after decoding). The decoder calls ``enforce_tenancy`` after the processors: every span of such a request
gets the key's organization, and a project the key may write to, on its resource **and** its span attributes
— storage, the metrics and every other exporter read either one, so a client attribute (or a processor that
kept one) can never move data into another tenant. The ``tenant`` processor applies the same rule to the
resources only, early, for the processors that read the tenant.

The work is per provenance range and per resource map (shared by the spans of one OTLP ``ResourceSpans``),
then two dict writes per span.
"""

from __future__ import annotations

from typing import Any

from llm_observer.kernel.batch import Attributes, IngestMeta, SpanBatch
from llm_observer.kernel.telemetry import ComponentMetrics
from llm_observer.semconv.attributes import DEFAULT_ORGANIZATION, ORGANIZATION_ID, PROJECT_ID

__all__ = ["enforce_tenancy", "organization_of", "project_for", "stamp_resources"]

TENANT_ENFORCED = "tenant_enforced"
"""The event ``enforce_tenancy`` counts: spans whose claimed organization or project was overridden."""


def organization_of(value: Any) -> str:
    """The organization an (unauthenticated) attribute value names: a trimmed string, else the default."""
    if type(value) is str:
        return value.strip() or DEFAULT_ORGANIZATION
    if value is None or isinstance(value, (bytes, list, dict)):
        return DEFAULT_ORGANIZATION
    return str(value).strip() or DEFAULT_ORGANIZATION


def project_for(meta: IngestMeta, claimed: Any) -> str | None:
    """The project a span of ``meta``'s request goes to, given the project the data ``claimed``.

    A key bound to one project forces it; a key bound to several keeps a claimed project among them, else
    takes its first; a key for every project of its organization keeps the claim (None: nothing to force).
    """
    if meta.project_id:
        return meta.project_id
    allowed = meta.allowed_projects
    if allowed:
        return claimed if claimed in allowed else allowed[0]
    return None


def _stamp_resource(resource: Attributes, meta: IngestMeta) -> str | None:
    """Write ``meta``'s tenant into one resource map; returns the project it now holds when it is forced."""
    if meta.organization_id:
        resource[ORGANIZATION_ID] = meta.organization_id
    project = project_for(meta, resource.get(PROJECT_ID))
    if project is not None:
        resource[PROJECT_ID] = project
    return project


def stamp_resources(batch: SpanBatch) -> SpanBatch:
    """Write each authenticated request's tenant into its spans' resources, in place."""
    resources = batch.resource
    for provenance in batch.provenance:
        meta = provenance.meta
        seen: set[int] = set()
        for row in range(provenance.start, provenance.end):
            resource = resources[row]
            if id(resource) not in seen:  # one resource map is shared by every span of a ResourceSpans
                seen.add(id(resource))
                _stamp_resource(resource, meta)
    return batch


def enforce_tenancy(batch: SpanBatch, metrics: ComponentMetrics | None = None) -> int:
    """Give every span of an authenticated request its key's tenant, on resource and span attributes.

    Returns (and counts as ``tenant_enforced`` on ``metrics``) how many spans claimed another organization,
    or a project the key may not write to, in their span attributes.
    """
    overridden = 0
    resources, attributes = batch.resource, batch.attributes
    for provenance in batch.provenance:
        meta = provenance.meta
        organization = meta.organization_id
        if not organization:
            continue
        # The projects the key may write to (None: every project of its organization).
        allowed = (meta.project_id,) if meta.project_id else meta.allowed_projects or None
        # Per resource map: the project it now holds when the key restricts projects.
        projects: dict[int, str | None] = {}
        for row in range(provenance.start, provenance.end):
            resource = resources[row]
            key = id(resource)
            if key in projects:
                project = projects[key]
            else:
                project = projects[key] = _stamp_resource(resource, meta)
            attrs = attributes[row]
            claimed = attrs.get(ORGANIZATION_ID)
            moved = claimed is not None and claimed != organization
            attrs[ORGANIZATION_ID] = organization
            if allowed is not None and project is not None:
                claimed = attrs.get(PROJECT_ID)
                if claimed not in allowed:
                    moved = moved or claimed is not None
                    attrs[PROJECT_ID] = project
            if moved:
                overridden += 1
    if overridden and metrics is not None:
        metrics.event(TENANT_ENFORCED, overridden)
    return overridden
