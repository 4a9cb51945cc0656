"""One shop for the whole security suite: every service and the gateway in this process behind
real HTTP servers (tests/e2e/shop.py), on the real broker and Mongo, with a prefix of their own.

Besides the shop, the fixture keeps what the leak check reads: every log line the services write
(the same handler and formatter as their stdout, so the same redaction), and every event on the
bus (the shop's probe is bound to `#`). People: two customers with complete profiles and one
order each, the bootstrap Manager and Admin, and anonymous.
"""

from __future__ import annotations

import io
import logging
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest_asyncio

from tests.e2e.shop import ADMIN, MANAGER, Customer, Shop, running_shop


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
    # every secret the suite handled: none may show up in a log line, an event or a response
    secrets: set[str] = field(default_factory=set)

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


def _kit_formatter() -> logging.Formatter | None:
    for handler in logging.getLogger().handlers:
        if getattr(handler, "_kit_handler", False):
            return handler.formatter
    return None


@pytest_asyncio.fixture(scope="package", loop_scope="package")
async def secure(mongo_url: str, amqp_url: str, run_prefix: str) -> AsyncIterator[Secure]:
    async with running_shop(
        mongo_url, amqp_url, run_prefix, with_notify=True, with_analytics=True
    ) as shop:
        logs = LogLines()
        handler = logging.StreamHandler(logs)
        handler.setFormatter(_kit_formatter())
        logging.getLogger().addHandler(handler)
        try:
            product_id = await shop.product(stock=1_000, price_cents=1_500)
            customer = await shop.customer("pm_card_ok")
            other = await shop.customer("pm_card_ok")
            order_id = await shop.order_of(customer, (product_id, 1))
            other_order_id = await shop.order_of(other, (product_id, 1))
            secure = Secure(shop, logs, customer, other, product_id, order_id, other_order_id)
            for headers in (customer.headers, other.headers, shop.admin, shop.manager):
                secure.remember(headers["authorization"].removeprefix("Bearer "))
            secure.remember(ADMIN[1], MANAGER[1])
            yield secure
        finally:
            logging.getLogger().removeHandler(handler)
