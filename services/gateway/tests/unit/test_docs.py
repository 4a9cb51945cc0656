"""`/docs` works offline: the page loads Swagger UI from the gateway itself, every file with its
content type, under a CSP that names no other host (issue 21 item 6)."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from gateway_service.main import create_app
from gateway_service.settings import GatewaySettings

pytestmark = pytest.mark.unit

CONTENT_TYPES = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}


class References(HTMLParser):
    """Every URL the page makes the browser load (scripts, stylesheets, icons, images)."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        for name in ("src", "href"):
            if found.get(name):
                self.urls.append(str(found[name]))


def client_for(settings: GatewaySettings) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=create_app(settings))
    return httpx.AsyncClient(transport=transport, base_url="http://gateway")


@pytest.mark.parametrize("web", [False, True], ids=["api only", "with the web app"])
async def test_the_docs_page_loads_only_same_origin_assets_each_with_its_type(
    web: bool, tmp_path: Path
) -> None:
    if web:
        (tmp_path / "index.html").write_text("<!doctype html><title>shop</title>")
    settings = GatewaySettings(web_dir=tmp_path if web else None)
    async with client_for(settings) as client:
        page = await client.get("/docs")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        parser = References()
        parser.feed(page.text)
        assert len(parser.urls) == 4, parser.urls  # icon, stylesheet, bundle, start script
        for url in parser.urls:
            parts = urlsplit(url)
            assert not parts.scheme and not parts.netloc, f"{url} is not same-origin"
            asset = await client.get(url)
            assert asset.status_code == 200, url
            wanted = CONTENT_TYPES[Path(parts.path).suffix]
            assert asset.headers["content-type"].split(";")[0] == wanted, url
            assert asset.headers["x-content-type-options"] == "nosniff"
            assert len(asset.content) > 100, url
        # Swagger UI 5 (3.1 documents render), started by our script from the page's URL.
        bundle = await client.get("/docs/assets/swagger-ui-bundle.js")
        assert "SwaggerUIBundle" in bundle.text
        start = await client.get("/docs/assets/start.js")
        assert "openapiUrl" in start.text and 'data-openapi-url="/openapi.json"' in page.text

    csp = page.headers["content-security-policy"]
    assert "http" not in csp and "unsafe-inline" not in csp, csp
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self'"
    assert "<script>" not in page.text, "an inline script would need 'unsafe-inline'"


async def test_only_the_page_s_own_files_are_served() -> None:
    async with client_for(GatewaySettings()) as client:
        other = await client.get("/docs/assets/redoc.standalone.js")  # in the package, unused
        climb = await client.get("/docs/assets/..%2f__init__.py")
    assert other.status_code == 404 and other.json()["code"] == "NOT_FOUND"
    assert climb.status_code == 400 and climb.json()["code"] == "INVALID_PATH"
