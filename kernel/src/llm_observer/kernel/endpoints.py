"""``host:port`` endpoints as written in configs."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator


def parse_endpoint(endpoint: str) -> tuple[str, int]:
    """Split ``host:port`` (``[v6]:port``, ``:port`` meaning localhost); raises ValueError when malformed."""
    host, sep, port = endpoint.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"endpoint {endpoint!r} must be host:port")
    host = host.strip("[]") or "127.0.0.1"
    return host, int(port)


def check_endpoint(value: str) -> str:
    """A pydantic field validator: ``value`` unchanged when it is ``host:port``, else ValueError."""
    parse_endpoint(value)
    return value


Endpoint = Annotated[str, AfterValidator(check_endpoint)]
"""A config field holding ``host:port``."""
