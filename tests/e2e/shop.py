"""The whole shop in the test's process: every service behind a real HTTP server, the gateway in
front, the real broker and Mongo underneath, with a broker and database prefix of their own.

`running_shop(...)` starts it; `Shop` is what a test drives it with: customers and products made
through the public API, orders placed and awaited, shipments and returns moved along, every event
on the bus seen by a probe bound to `#`, and `check_invariants` for what must hold after any saga
(architecture.md): stock conserved, nothing captured for an order that is not CONFIRMED, no order
charged twice, every order terminal; with returns: one shipment per CONFIRMED order, refunds never
above the capture, each received return refunded once and restocked once.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from analytics_service.main import create_app as create_analytics
from analytics_service.settings import AnalyticsSettings
from fastapi import FastAPI
from gateway_service.main import create_app as create_gateway
from gateway_service.settings import GatewaySettings
from inventory_service.main import create_app as create_inventory
from inventory_service.settings import InventorySettings
from notify_service.main import create_app as create_notify
from notify_service.settings import NotifySettings
from order_service.main import create_app as create_order
from order_service.settings import OrderSettings
from payment_service.main import create_app as create_payment
from payment_service.settings import PaymentSettings
from pymongo import AsyncMongoClient
from shipping_service.main import create_app as create_shipping
from shipping_service.settings import ShippingSettings
from user_service.main import create_app as create_user

from bus import BusConfig, BusConnection, delete_topology
from bus.runtime import bus_config
from contracts.catalogue import PRODUCERS
from devkit.bus_testing import Probe, eventually
from devkit.gateway_testing import free_port, serving
from devkit.smtp_sink import MailSink
from devkit.user_testing import service_settings

ADMIN = ("root@example.com", "admin-password-1")
MANAGER = ("boss@example.com", "manager-password-1")
PASSWORD = "long-enough-pw"
TERMINAL = {"CONFIRMED", "REJECTED", "CANCELLED"}
# A return whose parcel reached the warehouse: refunded (or refused by payment) and restocked.
RECEIVED = {"RECEIVED", "REFUNDED", "REFUND_FAILED"}
# Tests shorten nothing by sleeping: a deadline is reached by sweeping with a clock this far ahead.
LATER = timedelta(days=2)
APPROVAL_THRESHOLD_CENTS = 100_000

ADDRESS = {
    "label": "home",
    "line1": "1 Main St",
    "city": "Springfield",
    "state": "IL",
    "zip": "12345",
    "country": "US",
}


@dataclass
class Customer:
    user_id: str
    headers: dict[str, str]
    payment_method_ids: list[str]
    address_id: str


@dataclass
class Shop:
    client: httpx.AsyncClient
    probe: Probe
    apps: dict[str, FastAPI]
    sink: MailSink | None = None
    urls: dict[str, str] = field(default_factory=dict)  # each service's own base URL
    admin: dict[str, str] = field(default_factory=dict)
    manager: dict[str, str] = field(default_factory=dict)

    # --- people and products ------------------------------------------------------------------

    async def login(self, identifier: str, password: str = PASSWORD) -> dict[str, str]:
        response = await self.client.post(
            "/api/v1/users/login", json={"identifier": identifier, "password": password}
        )
        assert response.status_code == 200, response.text
        return {"authorization": f"Bearer {response.json()['accessToken']}"}

    async def register(self, name: str | None = None, **extra: Any) -> tuple[str, dict[str, str]]:
        name = name or f"c{secrets.token_hex(5)}"
        body = {"username": name, "email": f"{name}@example.com", "password": PASSWORD, **extra}
        response = await self.client.post("/api/v1/users/register", json=body)
        assert response.status_code == 201, response.text
        created = response.json()
        return created["userId"], {"authorization": f"Bearer {created['accessToken']}"}

    async def customer(
        self, *tokens: str, partial: str = "ask", name: str | None = None
    ) -> Customer:
        """A registered customer with a default address and a card per token (first = default)."""
        user_id, headers = await self.register(name)
        details = {
            "addresses": [ADDRESS],
            "paymentMethods": [{"type": "card", "token": t} for t in tokens or ("pm_card_ok",)],
            "preferences": {"partialFulfillment": partial},
        }
        response = await self.client.post("/api/v1/users/me/details", json=details, headers=headers)
        assert response.status_code == 200, response.text
        profile = response.json()
        assert profile["flags"]["isProfileComplete"], profile
        return Customer(
            user_id=user_id,
            headers=headers,
            payment_method_ids=[m["paymentMethodId"] for m in profile["paymentMethods"]],
            address_id=profile["addresses"][0]["addressId"],
        )

    async def product(
        self, stock: int, price_cents: int = 1_000, category: str | None = None
    ) -> str:
        body = {
            "name": f"Thing {secrets.token_hex(3)}",
            "description": "made for a test",
            "category": category or f"cat-{secrets.token_hex(3)}",
            "priceCents": price_cents,
            "stockCount": stock,
        }
        response = await self.client.post("/api/v1/products", json=body, headers=self.admin)
        assert response.status_code == 201, response.text
        product_id: str = response.json()["productId"]
        return product_id

    async def stock(self, product_id: str) -> dict[str, int]:
        response = await self.client.get(f"/api/v1/products/{product_id}", headers=self.admin)
        assert response.status_code == 200, response.text
        counts: dict[str, int] = response.json()["stock"]
        return counts

    # --- orders ---------------------------------------------------------------------------------

    async def place(
        self,
        customer: Customer,
        *lines: tuple[str, int],
        key: str | None = None,
        **body: Any,
    ) -> httpx.Response:
        payload = {"items": [{"productId": p, "quantity": q} for p, q in lines], **body}
        headers = {**customer.headers, "Idempotency-Key": key or str(uuid.uuid4())}
        return await self.client.post("/api/v1/orders", json=payload, headers=headers)

    async def order_of(self, customer: Customer, *lines: tuple[str, int], **body: Any) -> str:
        response = await self.place(customer, *lines, **body)
        assert response.status_code == 202, response.text
        order_id: str = response.json()["orderId"]
        return order_id

    async def get(self, order_id: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
        response = await self.client.get(
            f"/api/v1/orders/{order_id}", headers=headers or self.admin
        )
        assert response.status_code == 200, response.text
        order: dict[str, Any] = response.json()
        return order

    async def wait_for(
        self, order_id: str, *statuses: str, timeout: float = 20.0
    ) -> dict[str, Any]:
        """Poll the order until it reaches one of `statuses` (a wrong terminal one fails fast)."""
        deadline = time.monotonic() + timeout
        order: dict[str, Any] = {}
        while time.monotonic() < deadline:
            order = await self.get(order_id)
            if order["status"] in statuses:
                return order
            if order["status"] in TERMINAL:
                break
            await asyncio.sleep(0.05)
        raise AssertionError(f"order {order_id} is {order.get('status')}, not {statuses}: {order}")

    async def timeline(self, order_id: str) -> list[dict[str, Any]]:
        response = await self.client.get(f"/api/v1/orders/{order_id}/timeline", headers=self.admin)
        assert response.status_code == 200, response.text
        items: list[dict[str, Any]] = response.json()["items"]
        return items

    async def act(
        self, order_id: str, action: str, headers: dict[str, str], body: Any = None
    ) -> httpx.Response:
        return await self.client.post(
            f"/api/v1/orders/{order_id}/{action}", json=body, headers=headers
        )

    # --- fulfilment and returns (api.md "Fulfilment and returns") ------------------------------

    async def shipment_of(self, order_id: str, timeout: float = 20.0) -> dict[str, Any]:
        """The order's one shipment, once shipping made it from OrderConfirmed."""
        found: list[dict[str, Any]] = []

        async def made() -> bool:
            response = await self.client.get(
                "/api/v1/shipments", params={"orderId": order_id}, headers=self.admin
            )
            assert response.status_code == 200, response.text
            found[:] = response.json()["items"]
            return bool(found)

        await eventually(made, timeout=timeout, what=f"the shipment of {order_id}")
        assert len(found) == 1, found
        return found[0]

    async def shipment(
        self, shipment_id: str, action: str, headers: dict[str, str] | None = None, body: Any = None
    ) -> httpx.Response:
        """POST /api/v1/shipments/{id}/{action} (`ship`, `deliver`), by the Admin unless told."""
        return await self.client.post(
            f"/api/v1/shipments/{shipment_id}/{action}",
            json=body if body is not None else {},
            headers=headers or self.admin,
        )

    async def wait_fulfilment(
        self, order_id: str, status: str, timeout: float = 20.0
    ) -> dict[str, Any]:
        """The order once its `fulfilment` reached `status` (PENDING, SHIPPED, DELIVERED)."""
        order: dict[str, Any] = {}

        async def reached() -> bool:
            order.update(await self.get(order_id))
            return (order.get("fulfilment") or {}).get("status") == status

        await eventually(reached, timeout=timeout, what=f"fulfilment {status} on {order_id}")
        return order

    async def ask_return(
        self, customer: Customer, order_id: str, *lines: tuple[str, int], reason: str = "too many"
    ) -> httpx.Response:
        body = {"items": [{"productId": p, "quantity": q} for p, q in lines], "reason": reason}
        return await self.client.post(
            f"/api/v1/orders/{order_id}/returns", json=body, headers=customer.headers
        )

    async def return_step(
        self,
        return_id: str,
        action: str,
        headers: dict[str, str] | None = None,
        body: Any = None,
    ) -> httpx.Response:
        """POST /api/v1/returns/{id}/{action}: approve, reject, receive (Admin unless told)."""
        if body is None and action in ("approve", "reject"):
            body = {"reason": f"{action}d by a test"}
        return await self.client.post(
            f"/api/v1/returns/{return_id}/{action}",
            json=body if body is not None else {},
            headers=headers or self.admin,
        )

    async def wait_return(
        self, order_id: str, return_id: str, *statuses: str, timeout: float = 20.0
    ) -> dict[str, Any]:
        """The return as the order view lists it, once in one of `statuses`."""
        found: dict[str, Any] = {}

        async def reached() -> bool:
            order = await self.get(order_id)
            for item in order.get("returns") or []:
                if item["returnId"] == return_id:
                    found.update(item)
            return found.get("status") in statuses

        await eventually(
            reached, timeout=timeout, what=f"return {return_id} {statuses}: {found or '-'}"
        )
        return found

    # --- time -----------------------------------------------------------------------------------

    async def sweep_order_deadlines(self, ahead: timedelta = LATER) -> int:
        """The order sweeper's pass as if `ahead` had gone by (decision/approval/payment)."""
        closed: int = await self.apps["order"].state.sweeper.sweep(datetime.now(UTC) + ahead)
        return closed

    async def expire_reservations(self, ahead: timedelta = LATER) -> int:
        """Inventory's reservation sweep as if `ahead` had gone by."""
        released: int = await self.apps["inventory"].state.sweeper.sweep(datetime.now(UTC) + ahead)
        return released

    # --- the bus --------------------------------------------------------------------------------

    def events(self, type_: str, order_id: str | None = None) -> list[dict[str, Any]]:
        found = [json.loads(m.body) for m in self.probe.messages if m.type == type_]
        if order_id is not None:
            found = [e for e in found if e["data"].get("orderId") == order_id]
        return found

    async def settle(self, seconds: float = 0.5) -> None:
        """Let in-flight events land (used before asserting that something did NOT happen)."""
        await asyncio.sleep(seconds)

    # --- invariants -----------------------------------------------------------------------------

    async def check_invariants(
        self, order_ids: Iterable[str], product_ids: Iterable[str], timeout: float = 20.0
    ) -> None:
        """Every order terminal; stock conserved and nothing left reserved; captures only for
        CONFIRMED orders, once each, for the confirmed total; committed stock = confirmed units
        less the units of received returns (a return moves them back to available, and counts
        them as returned); with the
        shipping service: one shipment per CONFIRMED order (none for the others), refunds of an
        order never above its capture, each received return refunded (or refused) once and
        restocked once."""
        order_ids, product_ids = list(order_ids), list(product_ids)
        orders = {o: await self.wait_for(o, *TERMINAL, timeout=timeout) for o in order_ids}
        confirmed = {o for o, order in orders.items() if order["status"] == "CONFIRMED"}

        deadline = time.monotonic() + timeout
        while True:
            # Re-read: a refund or a restock may still be on its way.
            orders = {o: await self.get(o) for o in order_ids}
            problems = await self._invariant_problems(orders, confirmed, product_ids)
            if not problems or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
        assert not problems, problems

    async def _invariant_problems(
        self, orders: dict[str, dict[str, Any]], confirmed: set[str], product_ids: list[str]
    ) -> list[str]:
        problems: list[str] = []
        sold: Counter[str] = Counter()
        returned: Counter[str] = Counter()
        for order_id in confirmed:
            for line in orders[order_id]["items"]:
                sold[line["productId"]] += line["fulfilledQuantity"] or 0
            for item in orders[order_id].get("returns") or []:
                if item["status"] in RECEIVED:
                    for line in item["items"]:
                        returned[line["productId"]] += line["quantity"]
        for product_id in product_ids:
            stock = await self.stock(product_id)
            total = stock["available"] + stock["reserved"] + stock["committed"]
            if total != stock["received"]:
                problems.append(f"{product_id}: not conserved {stock}")
            if stock["reserved"]:
                problems.append(f"{product_id}: {stock['reserved']} still reserved")
            # A received return moves its units from committed back to available.
            if stock["committed"] != sold[product_id] - returned[product_id]:
                problems.append(
                    f"{product_id}: committed {stock} but sold {sold[product_id]}"
                    f" and {returned[product_id]} returned"
                )
            if stock["returned"] != returned[product_id]:
                problems.append(f"{product_id}: {stock} but {returned[product_id]} returned")
        captures = Counter(e["data"]["orderId"] for e in self.events("PaymentCaptured"))
        for order_id in orders:
            count = captures[order_id]
            if order_id in confirmed and count != 1:
                problems.append(f"{order_id}: CONFIRMED with {count} captures")
            if order_id not in confirmed and count:
                problems.append(f"{order_id}: {orders[order_id]['status']} but captured")
        for event in self.events("PaymentCaptured"):
            order = orders.get(event["data"]["orderId"])
            if order is not None and event["data"]["amountCents"] != order["totalCents"]:
                problems.append(f"{order['orderId']}: captured {event['data']} of {order}")
        if "shipping" in self.apps:
            problems += await self._fulfilment_problems(orders, confirmed)
        return problems

    def distinct(self, type_: str) -> list[dict[str, Any]]:
        """The events of a type, each once (a re-published copy has its original's id)."""
        return list({e["id"]: e for e in self.events(type_)}.values())

    async def _fulfilment_problems(
        self, orders: dict[str, dict[str, Any]], confirmed: set[str]
    ) -> list[str]:
        problems: list[str] = []
        shipments = Counter(e["data"]["orderId"] for e in self.distinct("ShipmentCreated"))
        captured: Counter[str] = Counter()
        for event in self.distinct("PaymentCaptured"):
            captured[event["data"]["orderId"]] += event["data"]["amountCents"]
        refunded: Counter[str] = Counter()  # per order
        refunds: dict[str, list[int]] = {}  # per return: the amounts refunded
        for event in self.distinct("PaymentRefunded"):
            refunded[event["data"]["orderId"]] += event["data"]["amountCents"]
            refunds.setdefault(event["data"]["returnId"], []).append(event["data"]["amountCents"])
        failed = Counter(e["data"]["returnId"] for e in self.distinct("PaymentRefundFailed"))
        restocks = Counter(e["data"]["returnId"] for e in self.distinct("StockReturned"))
        for order_id, order in orders.items():
            expected = 1 if order_id in confirmed else 0
            if shipments[order_id] != expected:
                problems.append(f"{order_id}: {order['status']}, {shipments[order_id]} shipments")
            if refunded[order_id] > captured[order_id]:
                problems.append(
                    f"{order_id}: refunded {refunded[order_id]} of {captured[order_id]}"
                )
            if order.get("refundedCents", 0) != refunded[order_id]:
                problems.append(f"{order_id}: refundedCents {order.get('refundedCents')}")
            for item in order.get("returns") or []:
                return_id, status = item["returnId"], item["status"]
                paid = refunds.get(return_id, [])
                wanted = [item["refundCents"]] if status == "REFUNDED" else []
                if status == "RECEIVED":  # the refund is not answered (yet)
                    problems.append(f"{order_id}: return {return_id} RECEIVED, not refunded")
                elif paid != wanted or failed[return_id] > (status == "REFUND_FAILED"):
                    problems.append(f"{order_id}: return {item}: refunds {paid}, {failed} failed")
                if restocks[return_id] != (status in RECEIVED):
                    problems.append(f"{order_id}: return {item}: {restocks[return_id]} restocks")
        return problems


@asynccontextmanager
async def running_shop(
    mongo_url: str,
    amqp_url: str,
    run_prefix: str,
    *,
    with_notify: bool = False,
    with_analytics: bool = False,
    with_shipping: bool = True,
    **order_overrides: Any,
) -> AsyncIterator[Shop]:
    """Start the services, then the gateway; stop them and remove their queues and databases.
    Without shipping (`with_shipping=False`: the checkout's own cost, bench.count_writes) no
    shipment is made and OrderConfirmed waits in shipping's queue."""
    # One internal credential for the whole shop (kit.internal), as the runner gives its
    # children: the one of the test process when pytest's kit plugin set it, else a new one
    # (bench.count_writes runs the shop outside pytest).
    internal_token = os.environ.get("INTERNAL_TOKEN") or secrets.token_urlsafe(24)
    user_settings = service_settings(
        mongo_url,
        amqp_url,
        run_prefix,
        internal_token=internal_token,
        port=free_port(),
        admin_email=ADMIN[0],
        admin_password=ADMIN[1],
        manager_email=MANAGER[0],
        manager_password=MANAGER[1],
    )
    shared: dict[str, Any] = {
        "env": "test",
        "mongo_url": mongo_url,
        "amqp_url": amqp_url,
        "bus_prefix": user_settings.bus_prefix,
        "db_prefix": user_settings.db_prefix,
        "bus_retry_delays": (0.2, 0.5),
        "jwks_url": f"http://127.0.0.1:{user_settings.port}/api/v1/users/.well-known/jwks.json",
        "internal_token": internal_token,
    }
    user_url = f"http://127.0.0.1:{user_settings.port}"
    inventory = InventorySettings(**shared, port=free_port(), sweep_interval_seconds=1.0)
    inventory_url = f"http://127.0.0.1:{inventory.port}"
    order_values: dict[str, Any] = {
        "approval_threshold_cents": APPROVAL_THRESHOLD_CENTS,
        **order_overrides,
    }
    settings: dict[str, Any] = {
        "user": user_settings,
        "inventory": inventory,
        "order": OrderSettings(
            **shared,
            port=free_port(),
            user_url=user_url,
            inventory_url=inventory_url,
            **order_values,
        ),
        "payment": PaymentSettings(**shared, port=free_port(), user_url=user_url),
    }
    factories: dict[str, Any] = {
        "user": create_user,
        "inventory": create_inventory,
        "order": create_order,
        "payment": create_payment,
    }
    if with_shipping:
        settings["shipping"] = ShippingSettings(**shared, port=free_port())
        factories["shipping"] = create_shipping
    sink: MailSink | None = None
    urls: dict[str, str] = field(default_factory=dict)  # each service's own base URL
    if with_notify:
        sink = MailSink()
        smtp_port = await sink.start()
        settings["notify"] = NotifySettings(
            **shared,
            port=free_port(),
            smtp_port=smtp_port,
            nudge_hold_seconds=1.0,
        )
        factories["notify"] = create_notify
    if with_analytics:
        settings["analytics"] = AnalyticsSettings(**shared, port=free_port())
        factories["analytics"] = create_analytics

    connection = BusConnection(amqp_url, name=f"{user_settings.bus_prefix}e2e-probe")
    probe = await Probe.bind(await connection.channel(), bus_config(user_settings), "#")
    try:
        async with AsyncExitStack() as stack:
            apps: dict[str, FastAPI] = {}
            urls: dict[str, str] = {}
            # Notify and analytics first: their queues must exist before the user service
            # announces the bootstrap Admin and Manager (notify alerts Managers from its replica).
            first = [name for name in ("notify", "analytics") if name in settings]
            for name in [*first, *(name for name in settings if name not in first)]:
                values = settings[name]
                apps[name] = factories[name](values)
                urls[name] = await stack.enter_async_context(serving(apps[name], values.port))
            gateway_settings = GatewaySettings(
                env="test",
                port=free_port(),
                amqp_url=amqp_url,
                bus_prefix=user_settings.bus_prefix,
                jwks_url=shared["jwks_url"],
                internal_token=internal_token,
                **{f"{name}_url": url for name, url in urls.items()},
            )
            url = await stack.enter_async_context(
                serving(create_gateway(gateway_settings), gateway_settings.port)
            )
            client = await stack.enter_async_context(httpx.AsyncClient(base_url=url, timeout=20))

            async def ready() -> bool:
                answers = [await client.get(f"{base}/readyz") for base in urls.values()]
                return all(answer.status_code == 200 for answer in answers)

            # As `make run` waits for the gateway's /readyz: a service that started before the
            # user service takes tokens only once it knows the revoked ones (kit.auth.revocation)
            # and says so in its /readyz. (The gateway's own asks every service, started or not.)
            await eventually(ready, what="every started service ready (/readyz)")
            shop = Shop(client=client, probe=probe, apps=apps, sink=sink, urls=urls)
            shop.admin = await shop.login(*ADMIN)
            shop.manager = await shop.login(*MANAGER)
            yield shop
    finally:
        channel = await connection.channel()
        for values in settings.values():
            await delete_topology(channel, bus_config(values), exchanges=True)
        for name in set(PRODUCERS) - set(settings) - {"gateway"}:
            # The peer queues of services not started (their publishers declared them).
            unstarted = BusConfig(
                service=name,
                prefix=user_settings.bus_prefix,
                retry_delays=shared["bus_retry_delays"],
            )
            await delete_topology(channel, unstarted, exchanges=False)
        await connection.close()
        if sink is not None:
            await sink.stop()
        mongo: AsyncMongoClient[Any] = AsyncMongoClient(mongo_url)
        for name in settings:
            await mongo.drop_database(f"{user_settings.db_prefix}{name}")
        await mongo.close()
