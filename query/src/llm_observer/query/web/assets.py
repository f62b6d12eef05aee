"""Serving the web view's files: ``/`` is the page, ``/web/…`` its scripts, styles and vendored library.

The files ship inside the package (no CDN, no build step at run time) and are read once, on first request.
Every response says what it is (an explicit content type: the host's MIME table may not know ``.js``), is
revalidated by ``ETag`` rather than cached blindly (file names carry no version, so an upgrade must show at
once), and carries a Content-Security-Policy that lets the page talk to this origin only.

The page itself needs no key: it holds no data. It asks for a key or a login, then every data request it
makes carries that credential to the API, which decides what the caller may see.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import PurePosixPath

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

ASSET_PREFIX = "/web/"

_CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".json": "application/json",
    ".txt": "text/plain; charset=utf-8",
}

# Scripts and data from this origin only; uPlot sizes its canvas through inline style attributes.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
    "form-action 'self'"
)


@dataclass(frozen=True)
class Asset:
    body: bytes
    content_type: str
    etag: str


@lru_cache(maxsize=256)
def load_asset(path: str) -> Asset | None:
    """The packaged file at ``path`` (relative to ``static/``), or None when there is none or it is not
    a file type the view serves; never anything outside ``static/``."""
    parts = PurePosixPath(path).parts
    if not parts or any(part in ("", ".", "..") or part.startswith(".") for part in parts):
        return None
    content_type = _CONTENT_TYPES.get(PurePosixPath(path).suffix.lower())
    if content_type is None:
        return None
    node = resources.files(__package__).joinpath("static")
    for part in parts:
        node = node.joinpath(part)
    if not node.is_file():
        return None
    body = node.read_bytes()
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    return Asset(body, content_type, etag)


def _respond(request: Request, asset: Asset) -> Response:
    headers = {
        "ETag": asset.etag,
        "Cache-Control": "no-cache",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    }
    if asset.etag in (tag.strip() for tag in request.headers.get("if-none-match", "").split(",")):
        return Response(status_code=304, headers=headers)
    return Response(asset.body, media_type=asset.content_type, headers=headers)


def build_router() -> APIRouter:
    """``GET /`` (the page) and ``GET /web/{path}`` (its files); neither holds data, so neither needs a key."""
    router = APIRouter(include_in_schema=False)

    @router.get("/")
    async def index(request: Request) -> Response:
        asset = load_asset("index.html")
        if asset is None:
            raise StarletteHTTPException(404, "the web view is not installed with this package")
        return _respond(request, asset)

    @router.get(ASSET_PREFIX + "{path:path}")
    async def asset(path: str, request: Request) -> Response:
        found = load_asset(path)
        if found is None:
            raise StarletteHTTPException(404, f"no web view file {path!r}")
        return _respond(request, found)

    return router
