"""The base of every component's config model."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class ComponentConfig(BaseModel):
    """Base of every component config: unknown keys are errors, values are frozen after load. Fields whose
    YAML key is a Python keyword (``for``, ``continue``, ``from``) are aliased, and dump under their alias,
    so ``config show`` prints keys the loader reads back."""

    model_config = ConfigDict(extra="forbid", frozen=True, serialize_by_alias=True)
