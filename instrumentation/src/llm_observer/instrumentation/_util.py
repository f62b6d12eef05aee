"""Small helpers instrumentors share: reading SDK arguments and objects defensively."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from opentelemetry.util.types import AttributeValue

from llm_observer.semconv import attributes as attr

_MISSING = object()

# SDK sentinels for "argument not given" (openai/anthropic NotGiven and Omit, and look-alikes).
_SENTINEL_TYPES = frozenset({"NotGiven", "Omit", "_NotGiven", "_Omit", "Unset", "UnsetType"})


def given(value: Any) -> bool:
    """Whether an SDK argument carries a value (not None and not an SDK "not given" sentinel)."""
    return value is not None and type(value).__name__ not in _SENTINEL_TYPES


def number(value: Any) -> int | float | None:
    """``value`` if it is a real int/float (not bool), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value


def integer(value: Any) -> int | None:
    """``value`` if it is an int (not bool), else None."""
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value


def strings(value: Any) -> list[str] | None:
    """A str or a sequence of str as a list of str (stop sequences, encoding formats), else None."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple) and value and all(isinstance(item, str) for item in value):
        return list(value)
    return None


def get(obj: Any, name: str, default: Any = None) -> Any:
    """``obj[name]`` for mappings, ``getattr(obj, name)`` otherwise: SDK params are TypedDicts, SDK
    responses are pydantic models."""
    if isinstance(obj, dict):
        return obj.get(name, default)
    # Attribute first: an ABC isinstance check costs more than the lookup on the common (pydantic) path.
    value = getattr(obj, name, _MISSING)
    if value is _MISSING:
        return obj.get(name, default) if isinstance(obj, Mapping) else default
    return value


# Attributes the conventions type as double: an int the caller passed (temperature=1) is written as a float,
# so the attribute keeps one type.
_DOUBLES = frozenset(
    {
        attr.GEN_AI_REQUEST_TEMPERATURE,
        attr.GEN_AI_REQUEST_TOP_P,
        attr.GEN_AI_REQUEST_TOP_K,
        attr.GEN_AI_REQUEST_FREQUENCY_PENALTY,
        attr.GEN_AI_REQUEST_PRESENCE_PENALTY,
    }
)


def put_number(attributes: dict[str, AttributeValue], key: str, value: Any) -> None:
    """Set ``key`` when ``value`` is a real number (as a float for the conventions' double attributes)."""
    checked = number(value)
    if checked is not None:
        attributes[key] = float(checked) if key in _DOUBLES else checked


def put_numbers(
    attributes: dict[str, AttributeValue], source: Any, fields: Iterable[tuple[str, str]]
) -> None:
    """For each ``(field, key)``, set ``key`` when ``source``'s field (a mapping key or an attribute, see
    :func:`get`) is a real number: the request parameters an SDK call gives as numbers."""
    for field, key in fields:
        put_number(attributes, key, get(source, field))


def put_strings(attributes: dict[str, AttributeValue], key: str, value: Any) -> None:
    """Set ``key`` when ``value`` is a str or a non-empty sequence of str (see :func:`strings`)."""
    checked = strings(value)
    if checked:
        attributes[key] = checked


#: ``(exception) -> error.type | None``: a provider error code; None falls back to the class name.
ErrorTypeFn = Callable[[BaseException], str | None]


def error_type_of(error_type: ErrorTypeFn | None, exc: BaseException) -> str | None:
    """What a provider's ``error_type`` function says of ``exc``; None when there is none or it fails."""
    if error_type is None:
        return None
    try:
        return error_type(exc)
    except Exception:
        return None


def status_code(exc: BaseException) -> str | None:
    """An exception's ``status_code`` (a positive int) as text: the ``error.type`` of SDKs that raise one
    class for every HTTP failure; None when it has none."""
    status = getattr(exc, "status_code", None)
    if isinstance(status, int) and status > 0:
        return str(status)
    return None


def env_flag(name: str, default: bool = False) -> bool:
    """A boolean environment variable: true/1/yes/on (case-insensitive) are true."""
    raw = os.environ.get(name)
    if raw is None:
        return default
    return raw.strip().lower() in ("true", "1", "yes", "on")


@functools.lru_cache(maxsize=256)
def host_port(url: str) -> tuple[str | None, int | None]:
    """``(host, port)`` of a URL, the port defaulted from the scheme; cached (base URLs repeat)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None, None
    if port is None:
        port = 443 if parts.scheme == "https" else 80 if parts.scheme == "http" else None
    return parts.hostname, port
