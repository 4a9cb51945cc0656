"""Request ids, client addresses behind proxies, and the audit actor."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request

from contracts import Actor
from kit.auth import Principal
from kit.request_context import actor_from_request, client_ip
from kit.settings import ServiceSettings

pytestmark = pytest.mark.unit


def request(peer: str, headers: dict[str, str] | None = None) -> Request:
    scope: dict[str, Any] = {
        "type": "http",
        "method": "GET",
        "path": "/",
        "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()],
        "client": (peer, 50000),
    }
    return Request(scope)


async def test_request_id_is_generated_and_echoed(client: httpx.AsyncClient) -> None:
    generated = await client.get("/healthz")
    assert len(generated.headers["x-request-id"]) >= 16
    other = await client.get("/healthz")
    assert other.headers["x-request-id"] != generated.headers["x-request-id"]
    echoed = await client.get("/healthz", headers={"X-Request-Id": "abc-123"})
    assert echoed.headers["x-request-id"] == "abc-123"


@pytest.mark.parametrize("bad", ["a" * 200, "has space", "<script>", "x\u00e9"])
async def test_insane_request_id_is_replaced(client: httpx.AsyncClient, bad: str) -> None:
    response = await client.get("/healthz", headers={"X-Request-Id": bad.encode()})
    assert response.headers["x-request-id"] != bad
    assert len(response.headers["x-request-id"]) <= 128


async def test_request_id_is_on_error_responses(client: httpx.AsyncClient) -> None:
    for path in ("/nowhere", "/boom", "/me", "/state"):
        response = await client.get(path, headers={"X-Request-Id": "err-1"})
        assert response.status_code >= 400
        assert response.headers["x-request-id"] == "err-1", path


def test_forwarded_for_is_believed_only_from_trusted_proxies() -> None:
    trusted = ("127.0.0.1", "10.0.0.0/8")
    assert client_ip(request("127.0.0.1", {"X-Forwarded-For": "203.0.113.7"}), trusted) == (
        "203.0.113.7"
    )
    # Only the address the trusted hop appended counts: what a client wrote left of it is its own.
    chain = "1.1.1.1, 10.0.0.5, 203.0.113.7"
    assert client_ip(request("127.0.0.1", {"X-Forwarded-For": chain}), trusted) == "203.0.113.7"
    forwarded = 'for=1.1.1.1, for="[2001:db8:cafe::17]:4711";proto=https'
    assert client_ip(request("10.1.2.3", {"Forwarded": forwarded}), trusted) == (
        "2001:db8:cafe::17"
    )
    assert client_ip(request("10.1.2.3", {"Forwarded": "for=192.0.2.60:80"}), trusted) == (
        "192.0.2.60"
    )
    # From an untrusted peer the headers are ignored.
    assert client_ip(request("198.51.100.2", {"X-Forwarded-For": "1.1.1.1"}), trusted) == (
        "198.51.100.2"
    )
    assert client_ip(request("198.51.100.2", {"Forwarded": "for=1.1.1.1"}), trusted) == (
        "198.51.100.2"
    )
    assert client_ip(request("127.0.0.1"), trusted) == "127.0.0.1"
    assert client_ip(request("127.0.0.1", {"X-Forwarded-For": "junk"}), trusted) == "127.0.0.1"


def test_no_proxy_is_trusted_by_default() -> None:
    # Loopback is a client like any other: a spoofed header from it changes nothing.
    assert client_ip(request("127.0.0.1", {"X-Forwarded-For": "203.0.113.9"})) == "127.0.0.1"
    assert client_ip(request("::1", {"Forwarded": "for=203.0.113.9"})) == "::1"


def app_request(peer: str, token: str, headers: dict[str, str]) -> Request:
    app = Starlette()
    app.state.settings = ServiceSettings(internal_token=SecretStr(token))
    req = request(peer, headers)
    req.scope["app"] = app
    return req


def test_the_gateway_vouches_for_the_client_with_the_internal_credential() -> None:
    vouched = {"X-Client-Ip": "203.0.113.7", "X-Internal-Token": "t-9f2c"}
    assert client_ip(app_request("127.0.0.1", "t-9f2c", vouched)) == "203.0.113.7"
    # Without the credential, with a wrong one, or where none is configured: the TCP peer.
    assert client_ip(app_request("127.0.0.1", "t-9f2c", {"X-Client-Ip": "203.0.113.7"})) == (
        "127.0.0.1"
    )
    wrong = {**vouched, "X-Internal-Token": "t-0000"}
    assert client_ip(app_request("127.0.0.1", "t-9f2c", wrong)) == "127.0.0.1"
    assert client_ip(app_request("127.0.0.1", "", {**vouched, "X-Internal-Token": ""})) == (
        "127.0.0.1"
    )
    # A service believes no X-Forwarded-For at all, from any peer.
    spoofed = {"X-Forwarded-For": "203.0.113.8"}
    assert client_ip(app_request("127.0.0.1", "t-9f2c", spoofed)) == "127.0.0.1"


def test_actor_from_request() -> None:
    req = request(
        "203.0.113.7",
        {
            "User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0",
            "X-Region": "eu-west",
        },
    )
    actor = actor_from_request(req, Principal(user_id="u1", role="Manager"))
    assert actor == Actor(
        user_id="u1",
        role="Manager",
        ip="203.0.113.7",
        device="Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0",
        region="eu-west",
    )
    anonymous = actor_from_request(request("192.0.2.1", {"User-Agent": "x" * 5000}))
    assert anonymous.user_id is None
    assert anonymous.device is not None and len(anonymous.device) <= 200
    assert anonymous.region is None
