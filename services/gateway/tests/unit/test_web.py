"""The web front end at `/`: files of the build, the app for its own routes, the API untouched."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from gateway_service.main import create_app
from gateway_service.security import API_CSP, WEB_CSP
from gateway_service.settings import GatewaySettings

pytestmark = pytest.mark.unit

PAGE = {"accept": "text/html,application/xhtml+xml,*/*;q=0.8"}


@pytest.fixture
def dist(tmp_path: Path) -> Path:
    (tmp_path / "assets").mkdir()
    (tmp_path / "index.html").write_text("<!doctype html><title>shop</title>")
    (tmp_path / "assets" / "app-1234.js").write_text("console.log('app')")
    (tmp_path / "favicon.svg").write_text("<svg/>")
    (tmp_path.parent / "secret.txt").write_text("not served")
    return tmp_path


def client_for(settings: GatewaySettings) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=create_app(settings))
    return httpx.AsyncClient(transport=transport, base_url="http://gateway")


async def test_serves_the_build_and_falls_back_to_the_app_for_pages(dist: Path) -> None:
    async with client_for(GatewaySettings(web_dir=dist)) as client:
        home = await client.get("/")
        route = await client.get("/orders/o-1", headers=PAGE)
        script = await client.get("/assets/app-1234.js")
        icon = await client.get("/favicon.svg")
        health = await client.get("/healthz")
    assert home.status_code == 200 and "<title>shop</title>" in home.text
    assert home.headers["content-security-policy"] == WEB_CSP
    assert home.headers["cache-control"] == "no-cache"
    assert route.status_code == 200 and route.text == home.text
    assert script.status_code == 200 and "immutable" in script.headers["cache-control"]
    assert icon.status_code == 200
    assert health.status_code == 200 and health.headers["content-security-policy"] == API_CSP


async def test_api_missing_files_and_escapes_stay_404(dist: Path) -> None:
    async with client_for(GatewaySettings(web_dir=dist)) as client:
        api = await client.get("/api/v1/nope", headers=PAGE)
        asset = await client.get("/assets/missing.js", headers=PAGE)
        not_a_page = await client.get("/orders/o-1", headers={"accept": "application/json"})
        escape = await client.get("/..%2fsecret.txt", headers=PAGE)
        post = await client.post("/orders/o-1", headers=PAGE)
    assert api.status_code == 404 and api.json()["code"] == "NOT_FOUND"
    assert api.headers["content-security-policy"] == API_CSP
    assert asset.status_code == 404
    assert not_a_page.status_code == 404
    assert escape.status_code == 400 and escape.json()["code"] == "INVALID_PATH"
    assert "not served" not in escape.text
    assert post.status_code in (404, 405)


async def test_without_a_build_the_gateway_is_api_only(tmp_path: Path) -> None:
    async with client_for(GatewaySettings(web_dir=tmp_path / "missing")) as client:
        home = await client.get("/", headers=PAGE)
    assert home.status_code == 404
    assert home.headers["content-security-policy"] == API_CSP
