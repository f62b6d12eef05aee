"""The web view's files as the query service serves them: types, caching, no key needed, nothing outside."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from tests.web.conftest import WebService

STATIC = Path(__file__).resolve().parents[2] / "query" / "src" / "llm_observer" / "query" / "web" / "static"


def test_web_page_served_at_root_without_a_key(web: WebService) -> None:
    page = web.get("/", key=None)
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert page.headers["cache-control"] == "no-cache"
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert '<script type="module" src="/web/app.js">' in page.text
    # Revalidation by ETag: the second load costs a 304.
    again = httpx.get(web.base_url + "/", headers={"If-None-Match": page.headers["etag"]})
    assert again.status_code == 304


def test_web_assets_typed_and_revalidated(web: WebService) -> None:
    for path, kind in (
        ("/web/app.js", "text/javascript"),
        ("/web/style.css", "text/css"),
        ("/web/vendor/uPlot.esm.js", "text/javascript"),
        ("/web/favicon.svg", "image/svg+xml"),
    ):
        first = httpx.get(web.base_url + path)
        assert first.status_code == 200, path
        assert first.headers["content-type"].startswith(kind), path
        assert first.headers["x-content-type-options"] == "nosniff"
        second = httpx.get(web.base_url + path, headers={"If-None-Match": first.headers["etag"]})
        assert second.status_code == 304 and second.content == b""


def test_web_assets_refuse_paths_outside_static(web: WebService) -> None:
    for path in ("/web/../app.py", "/web/%2e%2e/app.py", "/web/.hidden.js", "/web/nope.js", "/web/pages"):
        assert httpx.get(web.base_url + path).status_code == 404, path


def test_web_every_module_import_is_a_packaged_file() -> None:
    """Every ``import … from "./x.js"`` of the view names a file that ships (no CDN, no bare names)."""
    for script in STATIC.rglob("*.js"):
        if "vendor" in script.parts:
            continue
        for target in re.findall(r'(?:from|import)\s*\(?\s*"([^"]+)"', script.read_text()):
            assert target.startswith("."), f"{script.name} imports {target!r}: only relative files ship"
            assert (script.parent / target).resolve().is_file() or target.startswith("./pages/"), (
                f"{script.name} imports missing {target}"
            )
