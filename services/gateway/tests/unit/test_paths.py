"""The edge's path rule: canonical paths pass unchanged, every other spelling is refused."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

import pytest
from gateway_service.paths import MAX_PATH_BYTES, InvalidPath, PathCheckMiddleware, checked_path
from gateway_service.proxy import Proxy
from starlette.requests import Request
from starlette.types import Message

from kit.errors import Problem

pytestmark = pytest.mark.unit


def check(raw: bytes) -> str:
    """What uvicorn hands the app: the raw target's path, and its percent-decoding."""
    return checked_path(raw, unquote(raw.decode("latin-1")))


@pytest.mark.parametrize(
    "raw",
    [
        b"/",
        b"/healthz",
        b"/api/v1/users/me",
        b"/api/v1/users/me/",  # one trailing slash: the service redirects it
        b"/api/v1/users/.well-known/jwks.json",
        b"/api/v1/orders/01JABCDEF0123456789/approve",
        b"/api/v1/ops/dlq/user/redrive",
        b"/api/v1/users/a%3Ab%40c",  # escapes of harmless characters
        b"/assets/index-Bx1_~-.js",
        b"/api/v1/products/p!$&'()*+,=:@",
    ],
)
def test_canonical_paths_pass_unchanged(raw: bytes) -> None:
    assert check(raw) == unquote(raw.decode())


@pytest.mark.parametrize(
    "raw",
    [
        # dot segments, raw
        b"/api/v1/users/../../../internal/users/u1/payment-methods/p1",
        b"/api/v1/users/../../../metrics",
        b"/api/v1/users/./me",
        b"/api/v1/users/me/..",
        b"/api/v1/users/me/.",
        b"/api/v1/users/.../me",
        b"/..",
        # encoded slashes and dots, any case
        b"/api/v1/users/..%2f..%2fmetrics",
        b"/api/v1/users/..%2F..%2Fmetrics",
        b"/api/v1/users/%2e%2e/%2e%2e/metrics",
        b"/api/v1/users/%2E%2E/metrics",
        b"/api/v1/users/.%2e/metrics",
        b"/api/v1/users/me%2ejson",
        b"/api/v1/users/me%2f",
        # double encoding
        b"/api/v1/users/%252e%252e/metrics",
        b"/api/v1/users/..%252fmetrics",
        b"/api/v1/users/%252F",
        b"/api/v1/users/me%2500",
        b"/api/v1/users/%25",
        # backslashes, raw and encoded
        b"/api/v1/users/..\\..\\metrics",
        b"/api/v1/users/..%5cmetrics",
        b"/api/v1/users/..%5Cmetrics",
        b"/api/v1/users/..%255cmetrics",
        # NUL, control characters, spaces, DEL, raw and encoded
        b"/api/v1/users/me\x00",
        b"/api/v1/users/me%00",
        b"/api/v1/users/me%0a",
        b"/api/v1/users/me%0D%0AX-Injected:%201",
        b"/api/v1/users/me\t",
        b"/api/v1/users/a b",
        b"/api/v1/users/a%20b",
        b"/api/v1/users/a%7f",
        # path parameters
        b"/api/v1/users/..;/..;/metrics",
        b"/api/v1/users/me;jsessionid=1",
        b"/api/v1/users/me%3bx",
        # encoded ? and #: the URL would split elsewhere than the server split it
        b"/api/v1/users/u1%3Fx",
        b"/api/v1/users/u1%23x",
        # non-ASCII, raw or encoded; overlong UTF-8 dots; malformed escapes
        b"/api/v1/users/\xc3\xa4",
        b"/api/v1/users/%C3%A4",
        b"/api/v1/users/%c0%ae%c0%ae/metrics",
        b"/api/v1/users/%ef%bc%8e%ef%bc%8e/metrics",  # fullwidth full stops
        b"/api/v1/users/%u002e%u002e/metrics",
        b"/api/v1/users/%zz",
        b"/api/v1/users/%2",
        b"/api/v1/users/me%",
        # empty segments
        b"//api/v1/users/me",
        b"/api/v1//users/me",
        b"/api/v1/users/me//",
        # characters RFC 3986 keeps out of a path
        b'/api/v1/users/"me"',
        b"/api/v1/users/<me>",
        b"/api/v1/users/{me}",
        b"/api/v1/users/a|b",
        b"/api/v1/users/a^b",
        b"/api/v1/users/a`b",
        b"/api/v1/users/[::1]",
        # not a path at all
        b"*",
        b"http://127.0.0.1:8001/internal/users/u1/payment-methods/p1",
        b"",
        b"api/v1/users/me",
    ],
)
def test_every_other_spelling_is_refused(raw: bytes) -> None:
    with pytest.raises(InvalidPath):
        check(raw)


def test_overlong_paths_are_refused() -> None:
    fits = b"/api/v1/users/" + b"a" * (MAX_PATH_BYTES - len(b"/api/v1/users/"))
    assert check(fits)
    with pytest.raises(InvalidPath, match="longer than"):
        check(fits + b"a")


def test_raw_and_decoded_paths_must_agree() -> None:
    """Routing uses the decoded path, the proxy forwards the raw one: they name one resource."""
    with pytest.raises(InvalidPath, match="does not decode"):
        checked_path(b"/api/v1/users/me", "/internal/users/u1/payment-methods/p1")


def scope_of(raw_path: bytes, path: str | None = None, query: bytes = b"") -> dict[str, Any]:
    return {
        "type": "http",
        "method": "GET",
        "path": unquote(raw_path.decode("latin-1")) if path is None else path,
        "raw_path": raw_path,
        "query_string": query,
        "headers": [],
    }


async def call(raw_path: bytes) -> tuple[list[Message], bool]:
    """Run the middleware over a dummy app; what was sent, and whether the app was reached."""
    reached = False
    sent: list[Message] = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        nonlocal reached
        reached = True
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    async def send(message: Message) -> None:
        sent.append(message)

    await PathCheckMiddleware(inner)(scope_of(raw_path), receive, send)
    return sent, reached


async def test_middleware_refuses_before_anything_else_runs() -> None:
    sent, reached = await call(b"/api/v1/users/../../../metrics")
    assert not reached
    start, body = sent
    assert start["status"] == 400
    assert (b"content-type", b"application/problem+json") in start["headers"]
    assert b'"code":"INVALID_PATH"' in body["body"]


async def test_middleware_lets_canonical_paths_through() -> None:
    sent, reached = await call(b"/api/v1/users/me")
    assert reached
    assert sent[0]["status"] == 200


def proxy() -> Proxy:
    async def allow(request: Request) -> None:
        return None

    return Proxy(
        None,  # type: ignore[arg-type]  # target() never touches the client
        {"user": "http://127.0.0.1:8001"},
        body_limit=1024,
        authenticate=allow,
    )


def test_proxy_target_is_exactly_the_checked_path_and_query() -> None:
    request = Request(scope_of(b"/api/v1/users/a%3Ab", query=b"q=%C3%A4%26b&x=1"))
    url = proxy().target(request, "user")
    assert url.raw_path == b"/api/v1/users/a%3Ab?q=%C3%A4%26b&x=1"
    assert (url.host, url.port) == ("127.0.0.1", 8001)


@pytest.mark.parametrize(
    "raw", [b"/api/v1/users/../../../internal/users/u1", b"/api/v1/users/..%2fmetrics"]
)
def test_proxy_never_builds_a_url_from_an_unchecked_path(raw: bytes) -> None:
    """Even without the middleware, the proxy forwards nothing an HTTP client would resolve."""
    with pytest.raises(Problem) as refused:
        proxy().target(Request(scope_of(raw)), "user")
    assert refused.value.status == 400 and refused.value.code == "INVALID_PATH"


def test_proxy_target_keeps_a_query_httpx_would_refuse() -> None:
    """A raw non-ASCII byte in the query (h11 lets it through) is percent-encoded, not a 500."""
    request = Request(scope_of(b"/api/v1/users/me", query=b"q=\xe4 x"))
    assert proxy().target(request, "user").raw_path == b"/api/v1/users/me?q=%E4%20x"
