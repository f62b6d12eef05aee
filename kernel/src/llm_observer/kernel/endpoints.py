"""``host:port`` endpoints as written in configs."""

from __future__ import annotations


def parse_endpoint(endpoint: str) -> tuple[str, int]:
    """Split ``host:port`` (``[v6]:port``, ``:port`` meaning localhost); raises ValueError when malformed."""
    host, sep, port = endpoint.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"endpoint {endpoint!r} must be host:port")
    host = host.strip("[]") or "127.0.0.1"
    return host, int(port)
