"""The exporter tests' fixture: ``start_collector`` from ``tests.support.collector``, for the exporters that
are tested behind a running collector (see there)."""

from tests.support.collector import start_collector

__all__ = ["start_collector"]
