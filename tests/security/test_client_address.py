"""A client address nobody can forge (issue 16 item 2; api.md "Edge rules → Client address").

The gateway takes the client address from the TCP peer (no proxy is trusted in this shop, as in
compose) and vouches for it to the services in `X-Client-Ip` with the internal credential; a
service believes nothing else. So whatever a client writes in `X-Forwarded-For`, `Forwarded`,
`X-Client-Ip` or `X-Real-Ip`, through the gateway or straight at a service port, the address
recorded as `registeredIp` / `lastIp` and in audit entries is the one it connected from.

Each case runs from 127.0.0.1 (the gateway's own loopback, which the shop used to trust as a
proxy) and from a loopback address of its own (Secure.new_address).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from devkit.bus_testing import eventually
from tests.e2e.shop import PASSWORD

from .conftest import Secure

pytestmark = [pytest.mark.security, pytest.mark.asyncio(loop_scope="package")]

# What a client may claim about itself: each must change nothing.
SPOOFS: dict[str, dict[str, str]] = {
    "X-Forwarded-For": {"X-Forwarded-For": "203.0.113.50"},
    "X-Forwarded-For chain": {"X-Forwarded-For": "203.0.113.51, 198.51.100.51"},
    "Forwarded": {"Forwarded": 'for="203.0.113.52:4711";proto=https'},
    "X-Client-Ip": {"X-Client-Ip": "203.0.113.53"},
    "X-Client-Ip with a guessed credential": {
        "X-Client-Ip": "203.0.113.54",
        "X-Internal-Token": "changeme",
    },
    "all at once": {
        "X-Forwarded-For": "203.0.113.55",
        "Forwarded": "for=203.0.113.56",
        "X-Client-Ip": "203.0.113.57",
        "X-Real-Ip": "203.0.113.58",
    },
}


def sources(secure: Secure) -> list[str]:
    return ["127.0.0.1", secure.new_address()]


async def register(client: httpx.AsyncClient, headers: dict[str, str]) -> tuple[str, str]:
    """A new customer registered through `client`: (userId, username)."""
    name = f"ip{secrets.token_hex(5)}"
    body = {"username": name, "email": f"{name}@example.com", "password": PASSWORD}
    created = await client.post("/api/v1/users/register", json=body, headers=headers)
    assert created.status_code == 201, created.text
    return created.json()["userId"], name


async def login(
    secure: Secure, client: httpx.AsyncClient, name: str, headers: dict[str, str]
) -> dict[str, str]:
    response = await client.post(
        "/api/v1/users/login", json={"identifier": name, "password": PASSWORD}, headers=headers
    )
    assert response.status_code == 200, response.text
    secure.remember(response.json()["accessToken"], response.json()["refreshToken"])
    return {"authorization": f"Bearer {response.json()['accessToken']}"}


async def addresses_of(secure: Secure, user_id: str) -> tuple[str, str]:
    got = await secure.client.get(f"/api/v1/users/{user_id}", headers=secure.shop.admin)
    assert got.status_code == 200, got.text
    return got.json()["registeredIp"], got.json()["lastIp"]


async def audit(secure: Secure, **filters: str) -> list[dict[str, Any]]:
    got = await secure.client.get(
        "/api/v1/audit", params={**filters, "limit": "100"}, headers=secure.shop.admin
    )
    assert got.status_code == 200, got.text
    items: list[dict[str, Any]] = got.json()["items"]
    return items


async def audited(
    secure: Secure, enough: Callable[[list[dict[str, Any]]], bool], what: str, **filters: str
) -> list[dict[str, Any]]:
    """The audit entries matching `filters`, once `enough` of them have landed (by event)."""
    entries: list[dict[str, Any]] = []

    async def landed() -> bool:
        nonlocal entries
        entries = await audit(secure, **filters)
        return enough(entries)

    await eventually(landed, what=what)
    return entries


def product_body(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "description": "changed from a known address",
        "category": f"cat-{secrets.token_hex(3)}",
        "priceCents": 700,
        "stockCount": 3,
    }


@pytest.mark.parametrize("spoof", SPOOFS)
async def test_a_spoofed_header_changes_neither_registered_nor_last_ip(
    secure: Secure, spoof: str
) -> None:
    for address in sources(secure):
        async with secure.client_from(address) as client:
            user_id, name = await register(client, SPOOFS[spoof])
            # the login comes with another story about the address
            other = {k: v.replace("203.0.113.", "198.51.100.") for k, v in SPOOFS[spoof].items()}
            await login(secure, client, name, other)
        assert await addresses_of(secure, user_id) == (address, address), (spoof, address)


async def test_a_spoofed_header_changes_no_audit_entry_ip(secure: Secure) -> None:
    spoof = SPOOFS["all at once"]
    for address in sources(secure):
        async with secure.client_from(address) as client:
            # an AccessDenied: a Customer lists users (Admin only); audited by the gateway
            user_id, name = await register(client, spoof)
            token = await login(secure, client, name, {})
            denied = await client.get("/api/v1/users", headers={**token, **spoof})
            assert denied.status_code == 403, denied.text
            # a product change: the Admin creates and edits a product; audited by inventory
            created = await client.post(
                "/api/v1/products",
                json=product_body("Audited"),
                headers={**secure.shop.admin, **spoof},
            )
            assert created.status_code == 201, created.text
            product_id = created.json()["productId"]
            edited = await client.patch(
                f"/api/v1/products/{product_id}",
                json={"priceCents": 800},
                headers={**secure.shop.admin, **spoof},
            )
            assert edited.status_code == 200, edited.text
        entries = await audited(
            secure,
            lambda found: any(e["outcome"] == "denied" for e in found),
            f"the AccessDenied of {address}",
            actorId=user_id,
        )
        entries += await audited(
            secure,
            lambda found: len(found) >= 2,
            f"the product changes from {address}",
            entityId=product_id,
        )
        ips = {(e["action"], e["actor"]["ip"]) for e in entries}
        assert {ip for _, ip in ips} == {address}, (address, ips)


async def test_a_service_port_believes_no_forged_client_address(secure: Secure) -> None:
    """Straight at the user and inventory ports, without the internal credential (or with a
    guessed one): the address is the TCP peer's, whatever the headers say."""
    for spoof in (SPOOFS["all at once"], SPOOFS["X-Client-Ip with a guessed credential"]):
        for address in sources(secure):
            async with secure.client_from(address, secure.shop.urls["user"]) as user:
                user_id, _ = await register(user, spoof)
            assert await addresses_of(secure, user_id) == (address, address), (spoof, address)
            async with secure.client_from(address, secure.shop.urls["inventory"]) as inventory:
                created = await inventory.post(
                    "/api/v1/products",
                    json=product_body("Direct"),
                    headers={**secure.shop.admin, **spoof},
                )
            assert created.status_code == 201, created.text
            entries = await audited(
                secure,
                bool,
                f"the product created from {address}",
                entityId=created.json()["productId"],
            )
            ips = {e["actor"]["ip"] for e in entries}
            assert ips == {address}, (spoof, address, ips)
