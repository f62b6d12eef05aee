"""What the tests share: a free loopback port, polling with a deadline, and span and request builders.

``tests.support.collector`` adds the running-collector fixtures and helpers (it imports the collector, so it
is kept out of this package's namespace). Tests import these as ``from tests.support import ...``; pytest's
importlib mode makes ``tests`` a namespace package rooted at this repository's ``tests/`` folder.
"""

from tests.support.ports import free_port
from tests.support.spans import add_span, kv, span_batch, trace_request
from tests.support.waiting import wait_for, wait_until

__all__ = ["add_span", "free_port", "kv", "span_batch", "trace_request", "wait_for", "wait_until"]
