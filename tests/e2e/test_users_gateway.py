"""Users through the gateway: the journey, JWT attacks, the role matrix with its AccessDenied
audit, BOLA and mass assignment. The gateway and the user service run in this process behind
real HTTP servers, on the real broker and Mongo, with a database and broker prefix of their own.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from gateway_service.main import create_app as create_gateway
from gateway_service.settings import GatewaySettings
from user_service.bootstrap import Deps
from user_service.main import create_app as create_user

from bus import AmqpPublisher, BusConnection, delete_topology
from bus.runtime import bus_config
from contracts import Envelope
from contracts.order import OrderConfirmed
from contracts.types import PricedLine
from devkit.bus_testing import Probe, eventually
from devkit.gateway_testing import free_port, serving
from devkit.user_testing import service_settings
from kit.auth.signing import SigningKey, issue_access_token

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

API = "/api/v1/users"
PASSWORD = "long-enough-pw"
ADMIN = ("root@example.com", "admin-password-1")
MANAGER = ("boss@example.com", "manager-password-1")
UA = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"


@dataclass
class System:
    client: httpx.AsyncClient
    deps: Deps
    probe: Probe
    connection: BusConnection

    @property
    def key(self) -> SigningKey:
        return self.deps.signing_key

    def events(self, type_: str) -> list[dict[str, Any]]:
        return [json.loads(m.body) for m in self.probe.messages if m.type == type_]

    async def login(self, identifier: str, password: str = PASSWORD) -> dict[str, Any]:
        response = await self.client.post(
            f"{API}/login", json={"identifier": identifier, "password": password}
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def register(self, name: str) -> dict[str, Any]:
        response = await self.client.post(
            f"{API}/register",
            json={"username": name, "email": f"{name}@example.com", "password": PASSWORD},
        )
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body


@pytest.fixture
async def system(mongo_url: str, amqp_url: str, run_prefix: str) -> AsyncIterator[System]:
    settings = service_settings(
        mongo_url,
        amqp_url,
        run_prefix,
        port=free_port(),
        admin_email=ADMIN[0],
        admin_password=ADMIN[1],
        manager_email=MANAGER[0],
        manager_password=MANAGER[1],
        lockout_seconds=2,
    )
    user_app = create_user(settings)
    connection = BusConnection(amqp_url, name="e2e-users-probe")
    config = bus_config(settings)
    probe = await Probe.bind(await connection.channel(), config, "user.#", "access.denied")
    try:
        async with serving(user_app, settings.port) as user_url:
            gateway_settings = GatewaySettings(
                env="test",
                port=free_port(),
                amqp_url=amqp_url,
                bus_prefix=settings.bus_prefix,
                jwks_url=f"{user_url}{API}/.well-known/jwks.json",
                user_url=user_url,
            )
            gateway = create_gateway(gateway_settings)
            async with (
                serving(gateway, gateway_settings.port) as url,
                httpx.AsyncClient(base_url=url, timeout=10) as client,
            ):
                deps: Deps = user_app.state.deps
                yield System(client, deps, probe, connection)
                await deps.mongo.drop_database(deps.db.name)
    finally:
        await delete_topology(await connection.channel(), config, exchanges=True)
        await connection.close()


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def test_first_time_then_returning_path(system: System) -> None:
    client = system.client
    assert (await client.post(f"{API}/check", json={"identifier": "ann"})).json()["exists"] is False
    created = await system.register("ann")
    me = await client.get(f"{API}/me", headers=bearer(created["accessToken"]))
    assert me.status_code == 200 and me.json()["flags"]["isProfileComplete"] is False
    details = await client.post(
        f"{API}/me/details",
        json={
            "addresses": [
                {
                    "label": "home",
                    "line1": "1 Main St",
                    "city": "Springfield",
                    "state": "IL",
                    "zip": "62701",
                    "country": "US",
                }
            ],
            "paymentMethods": [{"type": "card", "token": "pm_card_ok"}],
        },
        headers=bearer(created["accessToken"]),
    )
    assert details.status_code == 200 and details.json()["flags"]["isProfileComplete"] is True
    assert details.headers["x-content-type-options"] == "nosniff"

    check = await client.post(f"{API}/check", json={"identifier": "ann@example.com"})
    assert check.json() == {"exists": True, "userId": created["userId"], "role": "Customer"}
    login = await system.login("ann")
    assert login["flags"]["isProfileComplete"] is True and login["role"] == "Customer"
    stored = await system.deps.db["users"].find_one({"_id": created["userId"]})
    assert stored is not None and stored["registered_ip"] == "127.0.0.1"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def forge(header: dict[str, Any], claims: dict[str, Any], secret: bytes | None = None) -> str:
    head = _b64(json.dumps(header).encode()) + "." + _b64(json.dumps(claims).encode())
    if secret is None:
        return head + "."
    return head + "." + _b64(hmac.new(secret, head.encode(), hashlib.sha256).digest())


async def test_jwt_attacks_are_401(system: System) -> None:
    victim = await system.register("vic")
    key = system.key
    now = int(datetime.now(UTC).timestamp())
    claims = {
        "sub": victim["userId"],
        "role": "Admin",
        "iss": "shop-user",
        "aud": "shop",
        "iat": now,
        "exp": now + 600,
    }
    public_pem = key.public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    head, payload, signature = victim["accessToken"].split(".")
    tampered_claims = json.loads(base64.urlsafe_b64decode(payload + "==")) | {"role": "Admin"}
    tampered = f"{head}.{_b64(json.dumps(tampered_claims).encode())}.{signature}"
    expired = issue_access_token(
        key,
        victim["userId"],
        "Customer",
        "shop-user",
        "shop",
        now=datetime.now(UTC) - timedelta(hours=1),
    )
    attacks = {
        "alg none": forge({"alg": "none", "typ": "JWT", "kid": key.kid}, claims),
        "HS256 with the public key": forge({"alg": "HS256", "kid": key.kid}, claims, public_pem),
        "expired": expired,
        "wrong audience": issue_access_token(key, victim["userId"], "Admin", "shop-user", "other"),
        "wrong issuer": issue_access_token(key, victim["userId"], "Admin", "evil", "shop"),
        "tampered payload": tampered,
        "foreign key": issue_access_token(
            SigningKey.generate(), victim["userId"], "Admin", "shop-user", "shop"
        ),
    }
    for name, token in attacks.items():
        for path in (f"{API}/me", API):
            response = await system.client.get(path, headers=bearer(token))
            assert response.status_code == 401, (name, path, response.text)
            assert response.json()["code"] == "UNAUTHENTICATED"

    # a deleted user's still-unexpired token
    admin = await system.login(ADMIN[0], ADMIN[1])
    gone = await system.client.delete(
        f"{API}/{victim['userId']}", headers=bearer(admin["accessToken"])
    )
    assert gone.status_code == 204
    after = await system.client.get(f"{API}/me", headers=bearer(victim["accessToken"]))
    assert after.status_code == 401
    refresh = await system.client.post(
        f"{API}/token/refresh", json={"refreshToken": victim["refreshToken"]}
    )
    assert refresh.status_code == 401


async def test_admin_only_routes_are_403_and_audited_for_customers_and_managers(
    system: System,
) -> None:
    customer = await system.register("cid")
    other = await system.register("oli")
    manager = await system.login(MANAGER[0], MANAGER[1])
    assert manager["role"] == "Manager"
    target = other["userId"]
    calls: list[tuple[str, str, dict[str, Any] | None]] = [
        ("GET", API, None),
        (
            "POST",
            API,
            {"username": "x1x", "email": "x@example.com", "password": PASSWORD, "role": "Admin"},
        ),
        ("GET", f"{API}?role=Admin", None),
        ("PATCH", f"{API}/{target}", {"role": "Admin"}),
        ("DELETE", f"{API}/{target}", None),
    ]
    callers = {"Customer": customer, "Manager": manager}
    for role, caller in callers.items():
        for method, path, body in calls:
            response = await system.client.request(
                method,
                path,
                json=body,
                headers={**bearer(caller["accessToken"]), "user-agent": UA, "x-region": "eu-west"},
            )
            assert response.status_code == 403, (role, method, path)
            assert response.json()["code"] == "FORBIDDEN"

    expected = len(callers) * len(calls)
    await eventually(
        lambda: len(system.events("AccessDenied")) >= expected, what="AccessDenied events"
    )
    denied = system.events("AccessDenied")
    assert len(denied) == expected
    seen = {(e["actor"]["role"], e["data"]["method"], e["data"]["path"]) for e in denied}
    assert ("Manager", "PATCH", f"{API}/{target}") in seen
    assert ("Customer", "GET", API) in seen
    first = denied[0]
    assert first["source"] == "gateway"
    assert first["data"]["requiredRoles"] == ["Admin"]
    assert first["actor"]["userId"] == customer["userId"]
    assert first["actor"]["ip"] == "127.0.0.1"
    assert first["actor"]["region"] == "eu-west"
    assert "Firefox" in first["actor"]["device"]

    # nothing changed, and the Admin gets through
    stored = await system.deps.db["users"].find_one({"_id": target})
    assert stored is not None and stored["role"] == "Customer" and stored["deleted_at"] is None
    admin = await system.login(ADMIN[0], ADMIN[1])
    listed = await system.client.get(API, headers=bearer(admin["accessToken"]))
    assert listed.status_code == 200 and len(listed.json()["items"]) == 4


async def test_a_customer_cannot_read_or_edit_another_user(system: System) -> None:
    one = await system.register("uno")
    two = await system.register("dos")
    auth = bearer(one["accessToken"])
    read = await system.client.get(f"{API}/{two['userId']}", headers=auth)
    assert read.status_code == 404 and read.json()["code"] == "USER_NOT_FOUND"
    edit = await system.client.patch(f"{API}/{two['userId']}", json={"phone": "1"}, headers=auth)
    assert edit.status_code == 403
    own = await system.client.get(f"{API}/{one['userId']}", headers=auth)
    assert own.status_code == 200 and own.json()["userId"] == one["userId"]
    # identity headers from the client are not believed
    spoof = await system.client.get(
        f"{API}/me", headers={**auth, "x-user-id": two["userId"], "x-user-role": "Admin"}
    )
    assert spoof.json()["userId"] == one["userId"]


async def test_mass_assignment_changes_nothing(system: System) -> None:
    customer = await system.register("mia")
    auth = bearer(customer["accessToken"])
    patch = await system.client.patch(
        f"{API}/{customer['userId']}", json={"role": "Admin", "orderCount": 50}, headers=auth
    )
    assert patch.status_code == 403
    for field, value in [("role", "Admin"), ("orderCount", 50), ("isProfileComplete", True)]:
        details = await system.client.post(f"{API}/me/details", json={field: value}, headers=auth)
        assert details.status_code == 422 and details.json()["code"] == "VALIDATION_ERROR"
    me = (await system.client.get(f"{API}/me", headers=auth)).json()
    assert me["role"] == "Customer"
    assert me["flags"]["orderCount"] == 0 and me["flags"]["isProfileComplete"] is False


async def test_brute_force_is_locked_out_then_the_right_password_works(system: System) -> None:
    await system.register("bru")
    wrong = {"identifier": "bru", "password": "guess-number-x"}
    statuses = [
        (await system.client.post(f"{API}/login", json=wrong)).status_code for _ in range(6)
    ]
    assert statuses == [401] * 5 + [429]
    locked = await system.client.post(f"{API}/login", json=wrong)
    assert locked.json()["code"] == "TOO_MANY_ATTEMPTS" and locked.headers["retry-after"]
    await asyncio.sleep(2.1)  # the lockout window of these settings
    await system.login("bru")


async def test_order_confirmed_delivered_twice_counts_once(system: System) -> None:
    customer = await system.register("ord")
    confirmed = OrderConfirmed(
        order_id="o-7",
        user_id=customer["userId"],
        items=(PricedLine(product_id="p-1", quantity=2, price_cents=250),),
        total_cents=500,
        payment_method_id="pm-7",
    )
    envelope = Envelope.wrap(confirmed, correlation_id="o-7")
    publisher = AmqpPublisher(system.connection, bus_config(system.deps.settings))
    for _ in range(2):
        await publisher.publish(envelope)
    auth = bearer(customer["accessToken"])

    async def flags() -> dict[str, Any]:
        me = await system.client.get(f"{API}/me", headers=auth)
        result: dict[str, Any] = me.json()["flags"]
        return result

    async def counted() -> bool:
        return (await flags())["orderCount"] >= 1

    await eventually(counted, what="orderCount")
    await asyncio.sleep(0.5)  # the duplicate is delivered and skipped meanwhile
    final = await flags()
    assert final["orderCount"] == 1 and final["preferredPaymentMethod"] == "pm-7"
    await publisher.close()
