"""Closed-loop virtual customers: each places a quick order (items only, with an
Idempotency-Key), polls it lightly until it is CONFIRMED, and places the next one at once.

Latency is the server's own: from the order's `createdAt` (placement, order service clock) to the
`at` of its CONFIRMED audit entry (when the order service confirmed it), so polling adds nothing
to it. Polling is adaptive: the first look after about the recent median latency, then at a
quarter of it (at least 25 ms), each wait 1.5× the previous up to 1 s, so that a level spends a
few GETs per order and a saturated system is not flooded with polls. Each poll after the first
sends the order's last `ETag` in `If-None-Match`, so an order that has not moved is a 304 without
a body, as a browser's revalidation would be. The order's `Retry-After` (1 s while it is in
flight) is not waited for: the poller's own pacing stays below it so that the closed loop
places its next order soon after a confirmation, which is what throughput is measured by.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx

from bench.prepare import Customer

TERMINAL = {"CONFIRMED", "REJECTED", "CANCELLED"}
# The payment service flags a customer's 20th order within an hour (velocity rule); stay below.
ORDERS_PER_CUSTOMER = 15
ORDER_TIMEOUT = 60.0


@dataclass
class Placed:
    vu: int
    posted_at: float  # wall clock, client
    http_ms: float
    status_code: int
    order_id: str | None = None
    created_at: float | None = None  # server
    confirmed_at: float | None = None  # server
    observed_at: float | None = None  # client, when the poll saw it terminal
    final: str | None = None
    polls: int = 0
    error: str | None = None

    @property
    def latency_ms(self) -> float | None:
        if self.created_at is None or self.confirmed_at is None:
            return None
        return (self.confirmed_at - self.created_at) * 1000


def epoch(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


def confirmed_at(order: dict[str, Any]) -> float | None:
    for entry in order.get("auditLogs", []):
        if entry.get("toStatus") == "CONFIRMED":
            return epoch(entry["at"])
    return None


class CustomerPool:
    """Hands out customers round-robin, each for at most ORDERS_PER_CUSTOMER orders."""

    def __init__(self, customers: list[Customer]) -> None:
        self._queue = deque(c for c in customers if c.orders < ORDERS_PER_CUSTOMER)

    def take(self) -> Customer | None:
        while self._queue:
            customer = self._queue.popleft()
            if customer.orders < ORDERS_PER_CUSTOMER:
                customer.orders += 1
                self._queue.append(customer)
                return customer
        return None

    def remaining(self) -> int:
        return sum(ORDERS_PER_CUSTOMER - c.orders for c in self._queue)


@dataclass
class Recent:
    """Median of the latest observed latencies, to pace the polls."""

    values: deque[float] = field(default_factory=lambda: deque(maxlen=50))

    def median(self) -> float:
        return statistics.median(self.values) if self.values else 0.15


async def one_order(
    client: httpx.AsyncClient,
    vu: int,
    customer: Customer,
    product_id: str,
    recent: Recent,
) -> Placed:
    body = {"items": [{"productId": product_id, "quantity": 1}]}
    headers = {**customer.headers, "Idempotency-Key": str(uuid.uuid4())}
    posted = time.time()
    t0 = time.perf_counter()
    try:
        response = await client.post("/api/v1/orders", json=body, headers=headers)
    except httpx.HTTPError as exc:
        return Placed(vu, posted, (time.perf_counter() - t0) * 1000, 0, error=repr(exc))
    placed = Placed(vu, posted, (time.perf_counter() - t0) * 1000, response.status_code)
    if response.status_code != 202:
        placed.error = f"POST {response.status_code} {response.text[:200]}"
        return placed
    placed.order_id = str(response.json()["orderId"])
    typical = recent.median()
    await asyncio.sleep(max(0.02, typical * 0.9 - placed.http_ms / 1000))
    deadline = time.monotonic() + ORDER_TIMEOUT
    interval = max(0.025, typical / 4)
    order: dict[str, Any] = {}
    etag: str | None = None
    while True:
        placed.polls += 1
        headers = customer.headers if etag is None else {**customer.headers, "If-None-Match": etag}
        try:
            got = await client.get(f"/api/v1/orders/{placed.order_id}", headers=headers)
        except httpx.HTTPError as exc:
            placed.error = f"GET {exc!r}"
            return placed
        if got.status_code == 200:
            order = got.json()
            etag = got.headers.get("etag")
        elif got.status_code != 304 or not order:  # 304: still the order we last saw
            placed.error = f"GET {got.status_code} {got.text[:200]}"
            return placed
        if order["status"] in TERMINAL:
            placed.observed_at = time.time()
            placed.final = order["status"]
            placed.created_at = epoch(order["createdAt"])
            placed.confirmed_at = confirmed_at(order)
            if placed.final != "CONFIRMED":
                placed.error = f"order ended {placed.final}"
            elif placed.latency_ms is not None:
                recent.values.append(placed.latency_ms / 1000)
            return placed
        if time.monotonic() > deadline:
            placed.error = f"not terminal after {ORDER_TIMEOUT:g}s ({order['status']})"
            return placed
        await asyncio.sleep(interval)
        interval = min(1.0, interval * 1.5)


async def run_level(
    client: httpx.AsyncClient,
    pool: CustomerPool,
    products: list[str],
    concurrency: int,
    seconds: float,
) -> tuple[list[Placed], float]:
    """`concurrency` virtual customers in a closed loop for `seconds` (then the orders in
    flight finish); every order placed, and the start (wall clock)."""
    results: list[Placed] = []
    recent = Recent()
    start = time.time()
    stop_at = time.monotonic() + seconds

    async def customer_loop(vu: int) -> None:
        while time.monotonic() < stop_at:
            customer = pool.take()
            if customer is None:
                results.append(Placed(vu, time.time(), 0, 0, error="customer pool exhausted"))
                return
            results.append(await one_order(client, vu, customer, random.choice(products), recent))

    await asyncio.gather(*(customer_loop(vu) for vu in range(concurrency)))
    return results, start
