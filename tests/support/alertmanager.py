"""A real Prometheus Alertmanager for the tests: built from the Go module proxy, run on free loopback ports
with a config file.

``github.com/prometheus/alertmanager/cmd/alertmanager@v0.35.0`` embeds its web UI from ``ui/app/dist``, which
the module does not ship (it is built by npm in Alertmanager's own release process): the build puts a
one-line page there instead; the API, which is all the tests use, is unaffected. The binary is cached in
``~/.cache/llm-observer/alertmanager-v0.35.0/bin/alertmanager``; ``python -m tests.support.alertmanager``
builds it (about two minutes and ~300 MB of module cache the first time).

- ``alertmanager`` (a fixture: import it into the test module) → a started ``Alertmanager`` with a config that
  routes everything to a receiver with no integrations, stopped when the test ends. Slow: runs when
  ``LLM_OBSERVER_SLOW_TESTS=1``.
- ``alertmanager.alerts(active=…, silenced=…, inhibited=…)`` → ``GET /api/v2/alerts`` as JSON.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.go_tools import GoProcess, go_binary, started
from tests.support.ports import free_port

ALERTMANAGER_VERSION = "v0.35.0"
MODULE = "github.com/prometheus/alertmanager"
PACKAGE = "./cmd/alertmanager"
SLOW = os.environ.get("LLM_OBSERVER_SLOW_TESTS") != "1"
SKIP_SLOW = pytest.mark.skipif(
    SLOW, reason="slow (builds and runs Alertmanager): set LLM_OBSERVER_SLOW_TESTS=1"
)

_PLACEHOLDER_PAGE = "<!doctype html><title>Alertmanager</title><p>The web UI is not part of this build.</p>\n"


def _placeholder_ui(source: Path) -> None:
    for flavour in ("elm", "mantine"):
        page = source / "ui" / "app" / "dist" / flavour / "index.html"
        page.parent.mkdir(parents=True, exist_ok=True)
        page.write_text(_PLACEHOLDER_PAGE)


def alertmanager_binary() -> Path:
    """The Alertmanager binary, built from the Go module proxy the first time (cached)."""
    return go_binary("alertmanager", MODULE, ALERTMANAGER_VERSION, PACKAGE, prepare=_placeholder_ui)


DEFAULT_CONFIG = """\
route:
  receiver: blackhole
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: blackhole
"""


@dataclass
class Alertmanager(GoProcess):
    """An Alertmanager process (no clustering), its API on a loopback port chosen when it is made."""

    title = "Alertmanager"
    config: str = DEFAULT_CONFIG
    binary: Path = field(default_factory=alertmanager_binary)
    port: int = field(default_factory=free_port)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> None:
        """Start it and wait until its API says it is ready."""
        config = self.folder / "alertmanager.yml"
        config.write_text(self.config)
        (self.folder / "data").mkdir(exist_ok=True)
        self._launch(
            [
                str(self.binary),
                f"--config.file={config}",
                f"--storage.path={self.folder / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--cluster.listen-address=",  # one instance: no gossip port
                "--log.level=info",
            ],
            f"{self.url}/-/ready",
            timeout,
        )

    def alerts(self, **filters: bool) -> list[dict[str, Any]]:
        """``GET /api/v2/alerts`` (``active``, ``silenced``, ``inhibited``, ``unprocessed`` filters)."""
        params = {name: str(value).lower() for name, value in filters.items()}
        response = httpx.get(f"{self.url}/api/v2/alerts", params=params, timeout=10)
        response.raise_for_status()
        alerts: list[dict[str, Any]] = response.json()
        return alerts


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[Alertmanager]:
    """A started Alertmanager, stopped when the test ends."""
    yield from started(Alertmanager(tmp_path / "alertmanager"))


def main() -> int:
    """``python -m tests.support.alertmanager``: build the binary when missing, print where it is."""
    print(alertmanager_binary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
