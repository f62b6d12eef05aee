"""Loopback ports for tests that must name a port before the server behind it starts: the collector's own
test helper, which the benchmarks use too (the instrumentation's test collector keeps a private copy, since
that distribution may not import the collector)."""

from __future__ import annotations

from llm_observer.collector.testing import free_port

__all__ = ["free_port"]
