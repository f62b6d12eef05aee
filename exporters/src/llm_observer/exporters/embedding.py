"""What the two embedding exporters (``vectors``: ClickHouse; ``qdrant``) share: which texts they embed and
how, and how a send waits for its write."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field

from llm_observer.kernel.batch import Attributes, SpanBatch
from llm_observer.kernel.component import ComponentConfig
from llm_observer.kernel.errors import LLMObserverError, PermanentError, RetryableError
from llm_observer.semconv import attributes as a
from llm_observer.storage.vectors.embed import DEFAULT_MODEL_BATCH
from llm_observer.storage.vectors.store import describe


class EmbeddingSettings(ComponentConfig):
    """Which text of a span is embedded (its last user message by default; ``embed_outputs`` adds the answer),
    cut to ``max_text_chars`` before it is hashed and embedded, ``batch_size`` texts per model run;
    ``excerpt_chars`` of each are kept for search results; ``cache_size`` vectors stay in memory. A send that
    has not finished within ``send_budget_seconds`` stores what it has and fails retryably; its retry resumes."""

    embed_outputs: bool = False
    prompt_roles: tuple[str, ...] = Field(default=("user",), min_length=1)
    prompt_scope: Literal["last", "all"] = "last"
    batch_size: int = Field(default=DEFAULT_MODEL_BATCH, ge=1, le=4096)
    send_budget_seconds: float = Field(default=20.0, gt=0)
    max_text_chars: int = Field(default=2000, ge=16, le=100_000)
    excerpt_chars: int = Field(default=500, ge=0, le=100_000)
    cache_size: int = Field(default=10_000, ge=0)


async def await_write(job: asyncio.Future[tuple[int, int]], what: Callable[[], str]) -> tuple[int, int]:
    """Wait for a write running in a thread and return its ``(done, total)``; its errors come back named by
    ``what()`` (the exporter, the batch, how long it ran), anything unexpected as retryable.

    Shielded: a cancelled send (the collector's own timeout) leaves the work running, and useful — its retry
    finds what it stored. The error of a write whose send was cancelled has no one to go to and is dropped.
    """
    job.add_done_callback(_retrieve_exception)
    try:
        return await asyncio.shield(job)
    except RetryableError as exc:
        raise RetryableError(f"{what()}: {exc}", exc.retry_after) from exc
    except PermanentError as exc:
        raise PermanentError(f"{what()}: {exc}", exc.reason) from exc
    except LLMObserverError:
        raise
    except Exception as exc:
        raise RetryableError(f"{what()}: {describe(exc)}") from exc


def _retrieve_exception(job: asyncio.Future[tuple[int, int]]) -> None:
    if not job.cancelled():
        job.exception()


@dataclass(frozen=True, slots=True)
class SpanLabels:
    """What a stored text is filtered and labelled by: the tenant as the span store derives it (span attribute,
    then resource, then the default), the responding model (else the requested one) and the provider."""

    organization_id: str
    project_id: str
    model: str
    request_model: str
    provider: str


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _tenant(attrs: Attributes, resource: Attributes, key: str, default: str) -> str:
    return _str(attrs.get(key)) or _str(resource.get(key)) or default


def span_labels(batch: SpanBatch, row: int) -> SpanLabels:
    attrs, resource = batch.attributes[row], batch.resource[row]
    request_model = _str(attrs.get(a.GEN_AI_REQUEST_MODEL))
    return SpanLabels(
        organization_id=_tenant(attrs, resource, a.ORGANIZATION_ID, a.DEFAULT_ORGANIZATION),
        project_id=_tenant(attrs, resource, a.PROJECT_ID, a.DEFAULT_PROJECT),
        model=_str(attrs.get(a.GEN_AI_RESPONSE_MODEL)) or request_model,
        request_model=request_model,
        provider=_str(attrs.get(a.GEN_AI_PROVIDER_NAME)) or _str(attrs.get(a.GEN_AI_SYSTEM)),
    )
