"""What ``/health`` answers: the components' own view of whether data is moving.

A component registers a *check*: a function that returns ``None`` while all is well and a short sentence
saying what is wrong otherwise (a worker down, a pipeline whose backlog has not shrunk for a while, a WAL
that refuses writes). Every ``/health`` endpoint of the process reads the same ``Health`` (it lives on the
process's ``Telemetry``), so they all tell the same truth.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)

Check = Callable[[], str | None]


@dataclass(frozen=True, slots=True)
class HealthReport:
    problems: dict[str, str]

    @property
    def healthy(self) -> bool:
        return not self.problems

    def document(self) -> dict[str, Any]:
        """The JSON body: ``{"status": "ok"}`` or ``{"status": "unhealthy", "problems": [{component, reason}]}``."""
        if not self.problems:
            return {"status": "ok"}
        return {
            "status": "unhealthy",
            "problems": [
                {"component": name, "reason": reason} for name, reason in sorted(self.problems.items())
            ],
        }


class Health:
    """Named checks, read together. Thread-safe; a check that raises reports its exception as the problem."""

    def __init__(self) -> None:
        self._checks: dict[str, Check] = {}
        self._lock = threading.Lock()

    def register(self, name: str, check: Check) -> None:
        with self._lock:
            self._checks[name] = check

    def unregister(self, name: str) -> None:
        with self._lock:
            self._checks.pop(name, None)

    def report(self) -> HealthReport:
        with self._lock:
            checks = list(self._checks.items())
        problems: dict[str, str] = {}
        for name, check in checks:
            try:
                problem = check()
            except Exception as exc:  # a broken check must not break /health
                problem = f"health check failed: {exc!r}"
            if problem:
                problems[name] = problem
        return HealthReport(problems)
