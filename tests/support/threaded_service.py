"""The whole ``llm-observer up`` server in a thread and event loop of its own, and how Chromium is launched.

Playwright's sync API wants the calling thread free of an event loop, so the browser tests
(``tests/web/conftest.py``) and the web view's benchmark (``bench/bench_web.py``) run the service here and
talk to it over HTTP like any client.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Coroutine
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

import httpx

from llm_observer.collector.service import Service
from llm_observer.collector.testing import local_config

T = TypeVar("T")

# Debian's Chromium (``apt-get install -y chromium chromium-driver``), driven through Playwright's
# ``executable_path``: Playwright's own browser download cannot work on these machines. Without the
# background-networking flags Chromium keeps trying hosts this machine cannot reach.
CHROMIUM = os.environ.get("LLM_OBSERVER_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


class ThreadedService:
    """The default server (collector and query service) with ``overrides`` merged over its config."""

    def __init__(self, data_dir: Path, overrides: dict[str, Any], name: str = "llm-observer") -> None:
        self._data_dir = data_dir
        self._overrides = overrides
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=name, daemon=True)
        self.service: Service | None = None

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
        """Run ``coro`` on the service's event loop and return its result."""
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return future.result(timeout)

    def start(self, timeout: float = 120.0) -> None:
        self._thread.start()
        self.service = Service(local_config(self._data_dir, self._overrides), collector=True, query=True)
        self.call(self.service.start(), timeout=timeout)

    def stop(self, timeout: float = 120.0) -> None:
        if self.service is not None:
            self.call(self.service.shutdown(), timeout=timeout)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(30)

    @property
    def base_url(self) -> str:
        assert self.service is not None and self.service.query_service is not None
        return f"http://127.0.0.1:{self.service.query_service.http_port}"

    @property
    def otlp_http(self) -> str:
        assert self.service is not None
        for receiver in self.service.receivers.values():
            port = getattr(receiver, "http_port", None)
            if port:
                return f"http://127.0.0.1:{port}"
        raise AssertionError("the service runs no OTLP/HTTP receiver")

    def get_as(self, key: str | None, path: str, timeout: float = 30.0, **params: Any) -> httpx.Response:
        """GET the REST API as the holder of ``key`` (None: anonymous)."""
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.get(self.base_url + path, params=params, headers=headers, timeout=timeout)
