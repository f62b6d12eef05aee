"""The collector tests' fixture: ``start_collector`` from ``tests.support.collector`` (see there)."""

from tests.support.collector import start_collector

__all__ = ["start_collector"]
