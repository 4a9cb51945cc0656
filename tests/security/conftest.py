"""One shop for the whole security suite: every service and the gateway in this process behind
real HTTP servers (tests/e2e/shop.py), on the real broker and Mongo, with a prefix of their own.

Besides the shop, the fixture keeps what the leak check reads: every log line the services write
(the same handler and formatter as their stdout, so the same redaction), and every event on the
bus (the shop's probe is bound to `#`). People: two customers with complete profiles and one
order each, the bootstrap Manager and Admin, and anonymous.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import logging
import secrets
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest_asyncio

from devkit.bus_testing import eventually
from kit import transactions
from tests.e2e.shop import ADDRESS, ADMIN, MANAGER, PASSWORD, Customer, Shop, running_shop


class LogLines(io.TextIOBase):
    """A write-only stream that keeps every line (log handlers write from several threads)."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._lock = threading.Lock()

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        with self._lock:
            self.lines.extend(line for line in text.splitlines() if line.strip())
        return len(text)


@dataclass
class Secure:
    """The running shop and the people and things the security tests act with."""

    shop: Shop
    logs: LogLines
    customer: Customer
    other: Customer
    product_id: str
    order_id: str  # customer's
    other_order_id: str  # other's
    spare_product: str = ""
    # every secret the suite handled: none may show up in a log line, an event or a response
    secrets: set[str] = field(default_factory=set)
    _hosts: Iterator[int] = field(default_factory=lambda: itertools.count(2))

    @property
    def client(self) -> Any:
        return self.shop.client

    def headers(self, who: str) -> dict[str, str]:
        """Authorization headers of `anonymous`, `customer`, `other`, `manager` or `admin`."""
        return {
            "anonymous": {},
            "customer": self.customer.headers,
            "other": self.other.headers,
            "manager": self.shop.manager,
            "admin": self.shop.admin,
        }[who]

    def remember(self, *values: str | None) -> None:
        self.secrets.update(v for v in values if v)

    def new_address(self) -> str:
        """A loopback address no other test of this run connects from (127.0.0.2, 127.0.0.3, …).

        Linux routes all of 127.0.0.0/8 to `lo`, so each is a real, distinct client to the
        gateway: the per-IP limits one test drives to 429 never throttle another (`secure.client`
        itself connects from 127.0.0.1)."""
        host = next(self._hosts)
        assert host < 255, "out of loopback addresses"
        return f"127.0.0.{host}"

    @asynccontextmanager
    async def client_from(
        self, address: str, base_url: str | None = None
    ) -> AsyncIterator[httpx.AsyncClient]:
        """A client whose connections leave from `address` (to the gateway unless `base_url`)."""
        transport = httpx.AsyncHTTPTransport(local_address=address)
        async with httpx.AsyncClient(
            base_url=base_url or self.client.base_url, transport=transport, timeout=20
        ) as client:
            yield client


async def settled(shop: Shop, *order_ids: str, timeout: float = 30.0) -> None:
    """Let the first sagas run before the attacks start (best effort, never a failure here):
    the embedded Mongo answers overlapping transactions with write conflicts, and a burst of
    requests on top of a saga in flight can exhaust their retries (see the suite's report)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        statuses = [(await shop.get(order_id))["status"] for order_id in order_ids]
        if all(status != "PENDING" for status in statuses):
            return
        await asyncio.sleep(0.2)


def _kit_formatter() -> logging.Formatter | None:
    for handler in logging.getLogger().handlers:
        if getattr(handler, "_kit_handler", False):
            return handler.formatter
    return None


@pytest_asyncio.fixture(scope="package", loop_scope="package")
async def secure(
    mongo_url: str, amqp_url: str, run_prefix: str, mongo_is_embedded: bool
) -> AsyncIterator[Secure]:
    # The transaction settings production uses (compose and k8s leave MONGO_SERIAL_TRANSACTIONS
    # unset): concurrent transactions, retried on write conflicts (kit.transactions), wherever
    # the suite runs on a real MongoDB (MONGO_URL, or a container where Docker answers). On the
    # embedded server every service of this process shares one server that conflicts ANY two
    # overlapping write transactions: under the suite's bursts the retries ran out (measured in
    # `make test`: a product create answered 503, OrderPlaced reached its fourth attempt), so
    # there the process runs its transactions one at a time, as `make run` does. The lockout's
    # race is a single atomic update outside any transaction: this switch does not touch it.
    previous = transactions.configure(serial=mongo_is_embedded)
    try:
        async with _running(mongo_url, amqp_url, run_prefix) as secure:
            yield secure
    finally:
        transactions.configure(serial=previous)


@asynccontextmanager
async def _running(mongo_url: str, amqp_url: str, run_prefix: str) -> AsyncIterator[Secure]:
    async with running_shop(
        mongo_url, amqp_url, run_prefix, with_notify=True, with_analytics=True
    ) as shop:
        logs = LogLines()
        handler = logging.StreamHandler(logs)
        handler.setFormatter(_kit_formatter())
        logging.getLogger().addHandler(handler)
        try:
            product_id = await shop.product(stock=1_000, price_cents=1_500)
            spare_product = await shop.product(stock=1)  # for the matrix's Admin DELETE
            customer = await shop.customer("pm_card_ok")
            other = await shop.customer("pm_card_ok")
            order_id = await shop.order_of(customer, (product_id, 1))
            other_order_id = await shop.order_of(other, (product_id, 1))
            secure = Secure(shop, logs, customer, other, product_id, order_id, other_order_id)
            secure.spare_product = spare_product
            await settled(shop, order_id, other_order_id)
            for headers in (customer.headers, other.headers, shop.admin, shop.manager):
                secure.remember(headers["authorization"].removeprefix("Bearer "))
            secure.remember(ADMIN[1], MANAGER[1])
            yield secure
        finally:
            logging.getLogger().removeHandler(handler)


@dataclass
class Targets:
    """What the path parameters and bodies point at, made once for the matrix."""

    values: dict[str, str]
    victim: str  # a user only the Admin's DELETE may remove
    spare_product: str  # a product only the Admin's DELETE may remove
    spare_address: str  # the customer's second address (edited and removed by the customer)
    login: dict[str, str]


@pytest_asyncio.fixture(scope="package", loop_scope="package")
async def targets(secure: Secure) -> Targets:
    shop = secure.shop
    # The orders may be in any status: a state-changing call in the wrong one is a 409, which
    # the matrix counts as "got past authorization" like a 2xx.
    spare = await secure.client.post(
        "/api/v1/users/me/details",
        json={"addresses": [ADDRESS | {"label": "work"}]},
        headers=secure.customer.headers,
    )
    assert spare.status_code == 200, spare.text
    spare_address = spare.json()["addresses"][-1]["addressId"]
    victim, _ = await shop.register()
    name = f"m{secrets.token_hex(4)}"
    await shop.register(name)

    async def inbox() -> list[dict[str, Any]]:
        got = await secure.client.get("/api/v1/notifications", headers=secure.customer.headers)
        assert got.status_code == 200, got.text
        items: list[dict[str, Any]] = got.json()["items"]
        return items

    await eventually(inbox, what="the customer's first notification")

    # The customer's order shipped, delivered and its one unit asked back: a shipment and a
    # return of theirs (the matrix's own return request is then a 422, past authorization).
    await shop.wait_for(secure.order_id, "CONFIRMED")
    shipment_id = (await shop.shipment_of(secure.order_id))["shipmentId"]
    for action in ("ship", "deliver"):
        moved = await shop.shipment(shipment_id, action)
        assert moved.status_code == 200, moved.text
    await shop.wait_fulfilment(secure.order_id, "DELIVERED")
    asked = await shop.ask_return(secure.customer, secure.order_id, (secure.product_id, 1))
    assert asked.status_code == 201, asked.text
    return Targets(
        values={
            "userId": secure.customer.user_id,
            "productId": secure.product_id,
            "orderId": secure.order_id,
            "addressId": secure.customer.address_id,
            "notificationId": (await inbox())[0]["notificationId"],
            "service": "user",
            "shipmentId": shipment_id,
            "returnId": asked.json()["returnId"],
        },
        victim=victim,
        spare_product=secure.spare_product,
        spare_address=spare_address,
        login={"identifier": name, "password": PASSWORD},
    )
