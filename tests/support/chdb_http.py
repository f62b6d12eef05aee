"""A ClickHouse HTTP endpoint for tests, served by chDB: ``python -m tests.support.chdb_http --path DIR --port P``.

No ClickHouse server can be installed on these machines, and a chDB path can be opened by one process only.
This process owns one chDB path and answers the part of ClickHouse's HTTP interface that clickhouse-connect
(``ServerClient``) uses, so the server code path runs against the real ClickHouse engine through ClickHouse's
own protocol, and several collector processes can share one store.

What it speaks (and nothing more):

* ``GET``/``POST`` ``/`` and ``GET /ping``. The query is the ``query`` URL parameter followed by the body; an
  ``INSERT … FORMAT F`` in ``query`` takes the body as its data in format ``F`` (written to a temporary file
  and inserted with ``INSERT … SELECT * FROM file(…, F)``, the settings attached to that statement).
* ``param_NAME`` URL parameters bind ``{NAME:Type}`` placeholders; ``database`` selects the database;
  ``default_format`` is the output format of a query without ``FORMAT`` (``TabSeparated`` otherwise); any
  other parameter that is not one of the HTTP interface's own (``session_id``, ``query_id``,
  ``client_protocol_version``, …, which are accepted and ignored) is a query-level setting.
* Request bodies with ``Content-Encoding`` gzip, deflate, lz4 (frame) or zstd; responses are uncompressed.
* Authentication: HTTP Basic, ``X-ClickHouse-User``/``X-ClickHouse-Key`` headers or ``user``/``password``
  parameters, checked against the one user given on the command line.
* Errors as ClickHouse sends them: status 500 (403 for authentication), body ``Code: N. DB::Exception: …``,
  header ``X-ClickHouse-Exception-Code``. Successful answers carry ``X-ClickHouse-Summary``,
  ``X-ClickHouse-Query-Id`` and ``X-ClickHouse-Format``.

Not spoken: sessions (every request stands alone), progress headers, response compression, external data
(multipart), ``readonly`` or quotas, the native TCP protocol. Requests run one at a time (chDB serialises them).
"""

from __future__ import annotations

import argparse
import base64
import gzip
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import urllib.request
import uuid
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

# Parameters of the HTTP interface itself rather than settings of the query.
_TRANSPORT = frozenset(
    {
        "query",
        "database",
        "default_format",
        "user",
        "password",
        "session_id",
        "session_timeout",
        "session_check",
        "query_id",
        "quota_key",
        "compress",
        "decompress",
        "buffer_size",
        "wait_end_of_query",
        "client_protocol_version",
        "role",
        "enable_http_compression",
        "send_progress_in_http_headers",
        "http_headers_progress_interval_ms",
        "cancel_http_readonly_queries_on_client_close",
    }
)
_INSERT_FORMAT = re.compile(
    r"^\s*(?P<head>INSERT\s+INTO\s+.+?)\s+FORMAT\s+(?P<format>[A-Za-z0-9]+)\s*$", re.I | re.S
)
_CODE = re.compile(r"\bCode: (\d+)")
_SETTING = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
AUTH_FAILED = 516


class QueryError(Exception):
    """A failed query, with ClickHouse's error code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def _literal(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _decompress(body: bytes, encoding: str | None) -> bytes:
    if not encoding or encoding == "identity" or not body:
        return body
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "deflate":
        return zlib.decompress(body)
    if encoding == "lz4":
        import lz4.frame

        return bytes(lz4.frame.decompress(body))
    if encoding == "zstd":
        from backports import zstd

        return bytes(zstd.decompress(body))
    raise QueryError(
        f"Code: 36. DB::Exception: Unsupported Content-Encoding {encoding!r}. (BAD_ARGUMENTS)", 36
    )


class Engine:
    """One chDB session, used by one request at a time."""

    def __init__(self, path: Path) -> None:
        import chdb.session

        path.mkdir(parents=True, exist_ok=True)
        self._session = chdb.session.Session(str(path))
        self._lock = threading.Lock()
        self._spool = Path(tempfile.mkdtemp(prefix="chdb-http-"))

    def _run(self, sql: str, fmt: str, params: dict[str, str] | None) -> Any:
        try:
            return self._session.query(sql, fmt, params=params or None)
        except Exception as exc:  # chDB raises one error type for every SQL failure
            message = str(exc)
            found = _CODE.search(message)
            raise QueryError(message, int(found.group(1)) if found else 1002) from exc

    def execute(
        self,
        query: str,
        body: bytes,
        database: str | None,
        default_format: str,
        settings: dict[str, str],
        params: dict[str, str],
    ) -> tuple[bytes, dict[str, str]]:
        """Run one request; returns the response body and the summary."""
        for name in settings:
            if not _SETTING.match(name):
                raise QueryError(f"Code: 115. DB::Exception: Unknown setting {name}. (UNKNOWN_SETTING)", 115)
        insert = _INSERT_FORMAT.match(query) if query else None
        spooled: Path | None = None
        if insert is not None:
            # The body is the data: read it with the engine's own parser for that format.
            spooled = self._spool / f"{uuid.uuid4().hex}.data"
            spooled.write_bytes(body)
            sql = f"{insert.group('head')} SELECT * FROM file({_literal(str(spooled))}, {_literal(insert.group('format'))})"
        else:
            sql = query + ("\n" if query and body else "") + body.decode("utf-8")
        clause = ", ".join(f"{name} = {_literal(value)}" for name, value in settings.items())
        try:
            with self._lock:
                self._run(f"USE `{database or 'default'}`", "CSV", None)
                if insert is not None:
                    result = self._run(sql + (f" SETTINGS {clause}" if clause else ""), "CSV", params)
                    return b"", {"written_rows": str(_rows_written(result))}
                if clause:
                    self._run(f"SET {clause}", "CSV", None)
                try:
                    result = self._run(sql, default_format, params)
                finally:
                    if settings:
                        # Back to the defaults: the next request must not inherit this one's settings.
                        self._run("SET " + ", ".join(f"{name} = DEFAULT" for name in settings), "CSV", None)
        finally:
            if spooled is not None:
                spooled.unlink(missing_ok=True)
        data = result.bytes() if hasattr(result, "bytes") else bytes(result)
        return data, {"read_rows": str(_rows_read(result))}

    def close(self) -> None:
        with self._lock:
            self._session.close()
        shutil.rmtree(self._spool, ignore_errors=True)


def _rows_read(result: Any) -> int:
    try:
        return int(result.rows_read())
    except Exception:
        return 0


def _rows_written(result: Any) -> int:
    # chDB reports the rows an INSERT … SELECT read, which is what it wrote.
    return _rows_read(result)


class Handler(BaseHTTPRequestHandler):
    """One HTTP request against ``server.engine``."""

    server: ChdbHttpServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # a test server: no line per request

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def _authenticated(self, params: dict[str, str]) -> bool:
        user, password = params.get("user"), params.get("password")
        header = self.headers.get("Authorization", "")
        if header.startswith("Basic "):
            decoded = base64.b64decode(header[6:]).decode("utf-8", "replace")
            user, _, password = decoded.partition(":")
        elif self.headers.get("X-ClickHouse-User") is not None:
            user, password = self.headers.get("X-ClickHouse-User"), self.headers.get("X-ClickHouse-Key", "")
        return (user or "default") == self.server.user and (password or "") == self.server.password

    def _handle(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if parts.path.rstrip("/") in ("/ping", "") and not parts.query and not raw:
            self._reply(200, b"Ok.\n", {})
            return
        params = dict(parse_qsl(parts.query, keep_blank_values=True))
        query_id = params.get("query_id") or str(uuid.uuid4())
        if not self._authenticated(params):
            message = (
                f"Code: {AUTH_FAILED}. DB::Exception: {params.get('user') or 'default'}: Authentication failed: "
                "password is incorrect, or there is no user with such name. (AUTHENTICATION_FAILED)\n"
            )
            self._reply(403, message.encode(), {"X-ClickHouse-Exception-Code": str(AUTH_FAILED)})
            return
        binds = {k.removeprefix("param_"): v for k, v in params.items() if k.startswith("param_")}
        settings = {k: v for k, v in params.items() if k not in _TRANSPORT and not k.startswith("param_")}
        fmt = params.get("default_format") or "TabSeparated"
        try:
            body = _decompress(raw, self.headers.get("Content-Encoding"))
            data, summary = self.server.engine.execute(
                params.get("query", ""), body, params.get("database"), fmt, settings, binds
            )
        except QueryError as exc:
            text = str(exc).rstrip("\n") + "\n"
            self._reply(500, text.encode(), {"X-ClickHouse-Exception-Code": str(exc.code)})
            return
        headers = {
            "X-ClickHouse-Query-Id": query_id,
            "X-ClickHouse-Format": fmt,
            "X-ClickHouse-Timezone": "UTC",
            "X-ClickHouse-Summary": json.dumps(summary),
            "Content-Type": "application/octet-stream",
        }
        self._reply(200, data, headers)

    def _reply(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class ChdbHttpServer(ThreadingHTTPServer):
    """The HTTP server over one ``Engine``; ``user``/``password`` is the one account it knows."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], engine: Engine, user: str, password: str) -> None:
        super().__init__(address, Handler)
        self.engine = engine
        self.user = user
        self.password = password


_REPO = Path(__file__).resolve().parents[2]


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/ping", timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


@contextmanager
def serving(path: Path, user: str = "default", password: str = "", timeout: float = 60.0) -> Iterator[str]:
    """Run this server in a subprocess over the chDB folder ``path``; yields its ``http://127.0.0.1:PORT``
    once it answers, and stops it (SIGTERM, then SIGKILL) afterwards."""
    from tests.support.ports import free_port
    from tests.support.waiting import wait_until

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "CHDB_HTTP_PASSWORD": password}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.support.chdb_http",
            "--path",
            str(path),
            "--port",
            str(port),
            "--user",
            user,
        ],
        cwd=_REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_until(
            lambda: process.poll() is not None or _answers(url),
            timeout=timeout,
            what=f"chDB HTTP server on {url}",
        )
        if process.poll() is not None:
            raise RuntimeError(
                f"chDB HTTP server exited: {process.stderr.read().decode() if process.stderr else ''}"
            )
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--path", type=Path, required=True, help="the chDB data folder this process owns")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--user", default="default")
    parser.add_argument("--password", default=os.environ.get("CHDB_HTTP_PASSWORD", ""))
    args = parser.parse_args(argv)
    engine = Engine(args.path)
    server = ChdbHttpServer((args.host, args.port), engine, args.user, args.password)
    stop = threading.Event()

    def _stop(signum: int, frame: object) -> None:
        stop.set()
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    print(f"listening on http://{args.host}:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever(poll_interval=0.1)
    finally:
        server.server_close()
        engine.close()


if __name__ == "__main__":
    main()
