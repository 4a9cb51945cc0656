"""Products through the gateway: the public catalogue, Admin writes, and the role matrix with its
AccessDenied audit. The gateway, the user service (tokens, JWKS) and the inventory service run in
this process behind real HTTP servers, on the real broker and Mongo, with prefixes of their own.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from gateway_service.main import create_app as create_gateway
from gateway_service.settings import GatewaySettings
from inventory_service.main import create_app as create_inventory
from inventory_service.settings import InventorySettings
from user_service.main import create_app as create_user
from user_service.settings import UserSettings

from bus import BusConnection, delete_topology
from bus.runtime import bus_config
from devkit.bus_testing import Probe, eventually
from devkit.gateway_testing import free_port, serving
from devkit.seed_catalogue import seed_demo

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

ADMIN = ("root@example.com", "admin-password-1")
MANAGER = ("boss@example.com", "manager-password-1")
PRODUCTS = "/api/v1/products"


@dataclass
class Shop:
    client: httpx.AsyncClient
    probe: Probe

    def events(self, type_: str) -> list[dict[str, Any]]:
        return [json.loads(m.body) for m in self.probe.messages if m.type == type_]

    async def token(self, identifier: str, password: str) -> dict[str, str]:
        response = await self.client.post(
            "/api/v1/users/login", json={"identifier": identifier, "password": password}
        )
        assert response.status_code == 200, response.text
        return {"authorization": f"Bearer {response.json()['accessToken']}"}

    async def customer(self) -> dict[str, str]:
        body = {"username": "cara", "email": "cara@example.com", "password": "long-enough-pw"}
        response = await self.client.post("/api/v1/users/register", json=body)
        assert response.status_code == 201, response.text
        return {"authorization": f"Bearer {response.json()['accessToken']}"}


@pytest.fixture
async def shop(mongo_url: str, amqp_url: str, run_prefix: str) -> AsyncIterator[Shop]:
    tag = secrets.token_hex(4)
    user_settings = UserSettings(
        env="test",
        mongo_url=mongo_url,
        amqp_url=amqp_url,
        bus_prefix=f"{run_prefix}{tag}.",
        db_prefix=f"t{tag}_",
        # Far below OWASP's minimum, for speed (allowed with SHOP_ENV=test only).
        argon2_time_cost=1,
        argon2_memory_kib=1024,
        argon2_parallelism=1,
        port=free_port(),
        admin_email=ADMIN[0],
        admin_password=ADMIN[1],
        manager_email=MANAGER[0],
        manager_password=MANAGER[1],
    )
    shared = {
        "mongo_url": mongo_url,
        "amqp_url": amqp_url,
        "bus_prefix": user_settings.bus_prefix,
        "db_prefix": user_settings.db_prefix,
    }
    user_app = create_user(user_settings)
    connection = BusConnection(amqp_url, name=f"{user_settings.bus_prefix}e2e-inventory-probe")
    configs = [bus_config(user_settings)]
    probe = await Probe.bind(await connection.channel(), configs[0], "product.#", "access.denied")
    try:
        async with serving(user_app, user_settings.port) as user_url:
            inventory_settings = InventorySettings(
                port=free_port(),
                jwks_url=f"{user_url}/api/v1/users/.well-known/jwks.json",
                **shared,
            )
            configs.append(bus_config(inventory_settings))
            inventory_app = create_inventory(inventory_settings)
            async with serving(inventory_app, inventory_settings.port) as inventory_url:
                # The demo catalogue, as `make run` seeds it (devkit.seed_catalogue).
                await seed_demo(inventory_app.state.deps.mongo, inventory_app.state.deps.db)
                gateway_settings = GatewaySettings(
                    env="test",
                    port=free_port(),
                    amqp_url=amqp_url,
                    bus_prefix=user_settings.bus_prefix,
                    jwks_url=inventory_settings.jwks_url,
                    user_url=user_url,
                    inventory_url=inventory_url,
                )
                async with (
                    serving(create_gateway(gateway_settings), gateway_settings.port) as url,
                    httpx.AsyncClient(base_url=url, timeout=10) as client,
                ):
                    yield Shop(client, probe)
                for app in (user_app, inventory_app):
                    deps = app.state.deps
                    await deps.mongo.drop_database(deps.db.name)
    finally:
        channel = await connection.channel()
        for config in configs:
            await delete_topology(channel, config, exchanges=True)
        await connection.close()


async def test_catalogue_admin_writes_and_denied_roles(shop: Shop) -> None:
    client = shop.client
    catalogue = (await client.get(PRODUCTS, params={"limit": 100})).json()["items"]
    assert 20 <= len(catalogue) <= 50  # the demo seed
    search = await client.get(PRODUCTS, params={"q": "yoga", "category": "sports"})
    assert [p["name"] for p in search.json()["items"]] == ["Yoga Mat"]

    admin = await shop.token(*ADMIN)
    body = {
        "name": "Gateway Gadget",
        "description": "Made through the gateway",
        "category": "electronics",
        "priceCents": 1999,
        "stockCount": 7,
    }
    created = await client.post(PRODUCTS, json=body, headers=admin)
    assert created.status_code == 201, created.text
    product_id = created.json()["productId"]
    adjusted = await client.post(
        f"{PRODUCTS}/{product_id}/stock", json={"delta": 3, "reason": "delivery"}, headers=admin
    )
    assert adjusted.status_code == 200 and adjusted.json()["stockAvailable"] == 10
    await eventually(
        lambda: any(e["data"]["productId"] == product_id for e in shop.events("ProductCreated")),
        what="ProductCreated relayed",
    )

    manager = await shop.token(*MANAGER)
    customer = await shop.customer()
    denied = [
        await client.post(PRODUCTS, json=body, headers=customer),
        await client.patch(f"{PRODUCTS}/{product_id}", json={"name": "x"}, headers=manager),
        await client.delete(f"{PRODUCTS}/{product_id}", headers=customer),
        await client.post(
            f"{PRODUCTS}/{product_id}/stock", json={"delta": 1, "reason": "x"}, headers=manager
        ),
    ]
    assert [(r.status_code, r.json()["code"]) for r in denied] == [(403, "FORBIDDEN")] * 4
    await eventually(lambda: len(shop.events("AccessDenied")) >= 4, what="AccessDenied audit")
    audited = {(e["actor"]["role"], e["data"]["method"]) for e in shop.events("AccessDenied")}
    assert audited == {
        ("Customer", "POST"),
        ("Manager", "PATCH"),
        ("Customer", "DELETE"),
        ("Manager", "POST"),
    }
    unchanged = (await client.get(f"{PRODUCTS}/{product_id}")).json()
    assert unchanged["name"] == "Gateway Gadget" and unchanged["stockAvailable"] == 10

    # The order service's availability check is not routed publicly.
    internal = await client.post("/internal/availability", json={"items": []})
    assert internal.status_code == 404
