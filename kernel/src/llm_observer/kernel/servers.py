"""The one way every component listens: an ASGI app under uvicorn, or a ``grpc.aio`` server, in the running
event loop. A port that cannot be bound is a ``ConfigError`` naming the config key, never a dead process."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from dataclasses import dataclass
from typing import Any

import grpc
import uvicorn

from llm_observer.kernel.endpoints import parse_endpoint
from llm_observer.kernel.errors import ConfigError


class QuietServer(uvicorn.Server):
    """A uvicorn server that leaves signal handling to the process owner."""

    def install_signal_handlers(self) -> None:  # older uvicorn
        return None

    def capture_signals(self) -> Any:  # newer uvicorn
        return contextlib.nullcontext()


def bind(endpoint: str, key: str) -> socket.socket:
    """A TCP socket bound to ``endpoint`` (``host:port``, port 0 picks one); ``key`` names it in errors."""
    try:
        host, port = parse_endpoint(endpoint)
    except ValueError as exc:
        raise ConfigError([(key, str(exc))]) from exc
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted sockets inherit this: without it a keep-alive client waits ~40 ms (Nagle + delayed ACK) for
    # every response that uvicorn writes in two parts.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError([(key, f"cannot listen on {endpoint}: {exc.strerror or exc}")]) from exc
    sock.set_inheritable(True)
    return sock


@dataclass(slots=True)
class AsgiServer:
    """A running ASGI server; ``stop`` is idempotent."""

    server: QuietServer
    task: asyncio.Task[None]
    port: int

    async def stop(self, timeout: float = 5.0) -> None:
        self.server.should_exit = True
        if self.task.done():
            return
        try:
            async with asyncio.timeout(timeout):
                await asyncio.shield(self.task)
        except TimeoutError:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.task


async def serve_asgi(app: Any, endpoint: str, key: str) -> AsgiServer:
    """Serve an ASGI app on ``endpoint`` in the running loop; returns once it listens."""
    sock = bind(endpoint, key)
    config = uvicorn.Config(
        app,
        log_level="warning",
        lifespan="off",
        access_log=False,
        server_header=False,
        interface="asgi3",
        timeout_graceful_shutdown=2,
    )
    server = QuietServer(config)
    task = asyncio.create_task(server.serve(sockets=[sock]), name=key)
    while not server.started:
        if task.done():
            sock.close()
            failure = task.exception()
            raise ConfigError([(key, f"cannot serve on {endpoint}: {failure or 'server exited'}")])
        await asyncio.sleep(0.01)
    return AsgiServer(server, task, int(sock.getsockname()[1]))


def grpc_listen(server: grpc.aio.Server, endpoint: str, key: str) -> int:
    """Add an insecure port for ``endpoint`` to ``server``; returns the bound port."""
    try:
        host, port = parse_endpoint(endpoint)
    except ValueError as exc:
        raise ConfigError([(key, str(exc))]) from exc
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        bound = server.add_insecure_port(address)
    except RuntimeError as exc:
        raise ConfigError([(key, f"cannot listen on {endpoint}: {exc}")]) from exc
    if bound == 0:
        raise ConfigError([(key, f"cannot listen on {endpoint}")])
    return bound
