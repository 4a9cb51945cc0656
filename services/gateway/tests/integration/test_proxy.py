"""The gateway in front of a real upstream: headers, status, streaming, failures, limits."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from gateway_service.main import create_app
from gateway_service.settings import GatewaySettings

from devkit.gateway_testing import raw_request
from kit.auth.deps import use_static_keys
from kit.auth.signing import SigningKey, issue_access_token

pytestmark = pytest.mark.integration

SERVICES = ("user", "inventory", "order", "payment", "notify", "analytics", "shipping")
TOKEN = os.environ["INTERNAL_TOKEN"]  # devkit.testing gives the test process one


def upstream_app() -> FastAPI:
    """Stands in for a service: echoes what it received, answers any status, streams, stalls."""
    app = FastAPI(title="user")

    @app.api_route("/api/v1/users/echo", methods=["GET", "POST", "PUT"], include_in_schema=False)
    async def echo(request: Request) -> JSONResponse:
        body = await request.body()
        return JSONResponse(
            {
                "method": request.method,
                "path": request.url.path,
                "rawPath": request.scope["raw_path"].decode(),
                "query": request.url.query,
                "headers": [[k, v] for k, v in request.headers.items()],
                "body": body.decode(),
            }
        )

    @app.get("/api/v1/users/status/{code}")
    async def status(code: int) -> Response:
        response = Response(b"teapot" if code == 418 else b"", status_code=code)
        response.headers.append("set-cookie", "a=1")
        response.headers.append("set-cookie", "b=2")
        response.headers["x-upstream"] = "yes"
        return response

    @app.get("/api/v1/users/stream")
    async def stream() -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            for i in range(5):
                yield f"chunk-{i};".encode()
                await asyncio.sleep(0.01)

        return StreamingResponse(chunks(), media_type="text/plain")

    @app.get("/api/v1/users/slow")
    async def slow() -> dict[str, str]:
        await asyncio.sleep(3)
        return {"late": "yes"}

    @app.get("/readyz")
    async def readyz() -> dict[str, str]:
        return {"status": "ready"}

    @app.get("/internal/secret")
    async def secret() -> dict[str, str]:
        return {"secret": "internal-only"}

    return app


def settings_for(urls: dict[str, str], **overrides: Any) -> GatewaySettings:
    fields = {f"{name}_url": url for name, url in urls.items()}
    return GatewaySettings(port=0, read_timeout=1.0, **fields, **overrides)


def headers_of(echoed: dict[str, Any], name: str) -> list[str]:
    return [v for k, v in echoed["headers"] if k == name]


@pytest.fixture
async def gateway(serve: Any) -> AsyncIterator[httpx.AsyncClient]:
    """The gateway with `user` on a live upstream and every other service down."""
    async with serve(upstream_app()) as upstream:
        dead = "http://127.0.0.1:9"  # discard port: nothing listens there
        urls = dict.fromkeys(SERVICES, dead) | {"user": upstream}
        async with serve(create_app(settings_for(urls))) as url:
            async with httpx.AsyncClient(base_url=url, timeout=10) as client:
                yield client


async def test_forwards_method_path_query_body_and_forwarding_headers(
    gateway: httpx.AsyncClient,
) -> None:
    response = await gateway.post(
        "/api/v1/users/echo?a=1&b=x%20y",
        content=b'{"hello": "world"}',
        headers={
            "content-type": "application/json",
            "x-request-id": "req-123",
            "x-forwarded-for": "203.0.113.7",
            "forwarded": "for=203.0.113.8",
            "x-client-ip": "203.0.113.9",
            "x-internal-token": "guessed",
            "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "connection": "keep-alive, x-hop",
            "x-hop": "secret",
        },
    )
    assert response.status_code == 200
    echoed = response.json()
    assert echoed["method"] == "POST"
    assert echoed["path"] == "/api/v1/users/echo"
    assert echoed["query"] == "a=1&b=x%20y"
    assert echoed["body"] == '{"hello": "world"}'
    # The service hears of the client only from the gateway, with the internal credential; what
    # the client claimed about its address or as a credential never arrives.
    assert headers_of(echoed, "x-client-ip") == ["127.0.0.1"]
    assert headers_of(echoed, "x-internal-token") == [TOKEN]
    assert not headers_of(echoed, "x-forwarded-for") and not headers_of(echoed, "forwarded")
    assert headers_of(echoed, "x-forwarded-proto") == ["http"]
    assert headers_of(echoed, "x-request-id") == ["req-123"]
    assert headers_of(echoed, "traceparent")[0].startswith("00-0af7651916cd43dd8448eb211c80319c-")
    assert headers_of(echoed, "content-type") == ["application/json"]
    assert not headers_of(echoed, "x-hop"), "a field named in Connection is hop-by-hop"
    # the response carries the same request id, once
    assert response.headers.get_list("x-request-id") == ["req-123"]


async def test_request_id_is_created_when_the_client_sends_none(gateway: httpx.AsyncClient) -> None:
    response = await gateway.get("/api/v1/users/echo")
    sent = headers_of(response.json(), "x-request-id")
    assert len(sent) == 1 and sent[0]
    assert response.headers["x-request-id"] == sent[0]
    assert headers_of(response.json(), "x-client-ip") == ["127.0.0.1"]


async def test_a_trusted_proxy_names_the_client(serve: Any) -> None:
    """GATEWAY_TRUSTED_PROXIES: only the address the trusted hop appended is the client."""
    async with serve(upstream_app()) as upstream:
        urls = dict.fromkeys(SERVICES, "http://127.0.0.1:9") | {"user": upstream}
        settings = settings_for(urls, trusted_proxies="127.0.0.0/8")
        async with serve(create_app(settings)) as url, httpx.AsyncClient(base_url=url) as client:
            chain = {"x-forwarded-for": "198.51.100.1, 203.0.113.7"}
            echoed = (await client.get("/api/v1/users/echo", headers=chain)).json()
            assert headers_of(echoed, "x-client-ip") == ["203.0.113.7"]
            rfc = {"forwarded": 'for=198.51.100.1, for="[2001:db8::7]:443"'}
            echoed = (await client.get("/api/v1/users/echo", headers=rfc)).json()
            assert headers_of(echoed, "x-client-ip") == ["2001:db8::7"]


def test_trusted_proxies_must_be_networks() -> None:
    assert GatewaySettings(trusted_proxies="10.0.0.0/8, 192.0.2.1").trusted_proxies == (
        "10.0.0.0/8",
        "192.0.2.1",
    )
    assert GatewaySettings().trusted_proxies == ()  # default: nobody
    with pytest.raises(ValueError, match="does not appear to be an IPv4 or IPv6 network"):
        GatewaySettings(trusted_proxies="10.0.0.0/8, lb.internal")


async def test_encoded_path_reaches_the_upstream_unchanged(gateway: httpx.AsyncClient) -> None:
    response = await gateway.get("/api/v1/users/echo", params={"q": "ä&b"})
    assert response.json()["query"] == "q=%C3%A4%26b"


@pytest.mark.parametrize("code", [201, 204, 404, 409, 418, 500])
async def test_status_and_headers_pass_through(gateway: httpx.AsyncClient, code: int) -> None:
    response = await gateway.get(f"/api/v1/users/status/{code}")
    assert response.status_code == code
    assert response.headers["x-upstream"] == "yes"
    assert response.headers.get_list("set-cookie") == ["a=1", "b=2"]
    assert len(response.headers.get_list("date")) == 1
    assert len(response.headers.get_list("server")) <= 1


async def test_streamed_response_arrives_whole(gateway: httpx.AsyncClient) -> None:
    async with gateway.stream("GET", "/api/v1/users/stream") as response:
        body = b"".join([chunk async for chunk in response.aiter_bytes()])
    assert body == b"chunk-0;chunk-1;chunk-2;chunk-3;chunk-4;"


async def test_upstream_down_is_a_502_problem(gateway: httpx.AsyncClient) -> None:
    response = await gateway.get("/api/v1/orders/123")
    assert response.status_code == 502
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == "UPSTREAM_UNAVAILABLE"
    assert response.headers["x-request-id"]


async def test_slow_upstream_is_a_504_problem(gateway: httpx.AsyncClient) -> None:
    response = await gateway.get("/api/v1/users/slow")
    assert response.status_code == 504
    assert response.json()["code"] == "UPSTREAM_TIMEOUT"


async def test_unknown_area_is_a_404_problem(gateway: httpx.AsyncClient) -> None:
    for path in ("/api/v1/nope", "/api/v1/nope/1", "/api/v1/ops/nope"):
        response = await gateway.get(path)
        assert response.status_code == 404, path
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["code"] == "NOT_FOUND"


async def test_body_above_one_mebibyte_is_a_413_problem(gateway: httpx.AsyncClient) -> None:
    big = b"x" * (1024 * 1024 + 1)
    response = await gateway.post("/api/v1/users/echo", content=big)
    assert response.status_code == 413
    assert response.json()["code"] == "PAYLOAD_TOO_LARGE"

    async def chunked() -> AsyncIterator[bytes]:  # no Content-Length: counted while read
        for _ in range(17):
            yield b"y" * 65536

    response = await gateway.post("/api/v1/users/echo", content=chunked())
    assert response.status_code == 413

    exactly = b"z" * (1024 * 1024)
    response = await gateway.put("/api/v1/users/echo", content=exactly)
    assert response.status_code == 200
    assert len(response.json()["body"]) == len(exactly)


async def test_readyz_lists_every_service_and_fails_while_some_are_down(
    gateway: httpx.AsyncClient,
) -> None:
    response = await gateway.get("/readyz")
    assert response.status_code == 503
    services = response.json()["services"]
    assert set(services) == {*SERVICES, "gateway"}
    assert services["user"] == "ready"
    assert services["order"] == "unreachable"


async def test_readyz_is_200_when_every_service_is_ready(serve: Any) -> None:
    async with serve(upstream_app()) as upstream:
        settings = settings_for(dict.fromkeys(SERVICES, upstream))
        async with serve(create_app(settings)) as url, httpx.AsyncClient(base_url=url) as client:
            response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ready",
        "services": dict.fromkeys((*SERVICES, "gateway"), "ready"),
    }


async def test_merged_openapi_answers_with_what_it_has(gateway: httpx.AsyncClient) -> None:
    response = await gateway.get("/openapi.json")
    assert response.status_code == 200
    doc = response.json()
    assert "/api/v1/users/status/{code}" in doc["paths"]
    # the gateway's own health routes; the services' ones are not reachable through it
    assert {p for p in doc["paths"] if not p.startswith("/api/v1/")} == {"/healthz", "/readyz"}
    assert set(doc["info"]["x-unavailable-services"]) == set(SERVICES) - {"user"}
    docs = await gateway.get("/docs")
    assert docs.status_code == 200
    assert "/openapi.json" in docs.text


async def test_the_edge_refuses_tokens_that_do_not_verify(serve: Any) -> None:
    key = SigningKey.generate()
    async with serve(upstream_app()) as upstream:
        app = create_app(settings_for({"user": upstream}))
        use_static_keys(app, key)
        async with serve(app) as url, httpx.AsyncClient(base_url=url) as client:
            anonymous = await client.get("/api/v1/users/echo")
            token = issue_access_token(key, "u1", "Customer", "shop-user", "shop")
            good = await client.get(
                "/api/v1/users/echo", headers={"authorization": f"Bearer {token}"}
            )
            bad = await client.get("/api/v1/users/echo", headers={"authorization": "Bearer nope"})
            other = await client.get("/api/v1/users/echo", headers={"authorization": "Basic eA=="})
    assert anonymous.status_code == 200
    assert good.status_code == 200
    assert headers_of(good.json(), "authorization") == [f"Bearer {token}"]
    for refused in (bad, other):
        assert refused.status_code == 401
        assert refused.json()["code"] == "UNAUTHENTICATED"


async def test_identity_headers_are_stripped_and_security_headers_set(
    gateway: httpx.AsyncClient,
) -> None:
    response = await gateway.get(
        "/api/v1/users/echo",
        headers={"x-user-id": "admin-1", "X-User-Role": "Admin", "x-region": "eu"},
    )
    echoed = response.json()
    names = {k.lower() for k, _ in echoed["headers"]}
    assert not {n for n in names if n.startswith("x-user-")}
    assert headers_of(echoed, "x-region") == ["eu"]
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["content-security-policy"].startswith("default-src 'none'")
    assert "strict-transport-security" not in response.headers  # plain HTTP, GATEWAY_HSTS off
    problem = await gateway.get("/api/v1/nope")
    assert problem.headers["x-frame-options"] == "DENY"


async def test_the_raw_client_sends_the_target_byte_for_byte() -> None:
    """What a server reads is exactly the bytes given (httpx would resolve and re-quote them)."""
    seen: list[bytes] = []

    async def record(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await reader.readline())
        writer.write(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(record, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        target = b"/api/v1/users/../%2e%2E/..%5c%252f;x"
        response = await raw_request(f"http://127.0.0.1:{port}", target)
    assert response.status == 204
    assert seen == [b"GET " + target + b" HTTP/1.1\r\n"]


@pytest.mark.parametrize(
    "target",
    [
        b"/api/v1/users/../../../internal/secret",
        b"/api/v1/users/..%2f..%2f..%2finternal/secret",
        b"/api/v1/users/%2e%2e/%2e%2e/%2e%2e/internal/secret",
        b"/api/v1/users/..\\..\\..\\internal/secret",
    ],
)
async def test_a_path_climbing_out_of_the_api_is_refused_before_the_upstream(
    gateway: httpx.AsyncClient, target: bytes
) -> None:
    response = await raw_request(str(gateway.base_url), target)
    assert response.status == 400, response.body
    assert response.headers["content-type"].startswith("application/problem+json")
    assert b'"code":"INVALID_PATH"' in response.body
    assert b"internal-only" not in response.body
    assert response.headers["x-request-id"]


async def test_the_upstream_gets_the_checked_path_exactly_as_sent(
    gateway: httpx.AsyncClient,
) -> None:
    """An escape the edge accepts is forwarded as it came; the service decodes it the same way."""
    response = await raw_request(str(gateway.base_url), b"/api/v1/users/ech%6F?a=%41")
    assert response.status == 200, response.body
    echoed = json.loads(response.body)
    assert echoed["rawPath"] == "/api/v1/users/ech%6F"
    assert echoed["path"] == "/api/v1/users/echo"
    assert echoed["query"] == "a=%41"
