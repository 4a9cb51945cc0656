"""The fault suite: a driver keeps a number of orders in flight on every branch (`LOAD`: 30 in
the short form, 200 in the long one) while faults are injected one at a time; then an invariant
checker reads the system through its APIs, its databases and the payment processor's own ledger
(the sandbox's ledger in the payment database), and `verdict` says whether the run proved anything:
it fails on any must-be-zero figure, on less load than asked for, on orders left non-terminal
or ended where their branch does not (`BRANCH_OUTCOMES`), on failed placements (a placement
retried with its Idempotency-Key is counted, not failed), on a scenario window with too few
orders, on poison missing from the DLQs.

After CONFIRMED, one order in `FULFIL_EVERY` goes on: the Admin ships and delivers it, its
customer sends one unit back, a Manager approves it (one return in `REJECT_EVERY` is rejected)
and the Admin receives it, so that refunds and restocks happen under the same faults.

    python -m tests.chaos.suite [--long] [--in-flight N]   (`make chaos`: --long; exit 1 on
                                                           a failed verdict)

The short form (kill order, inventory and payment once each, one broker connection drop, a
broker restart, a store stall, duplicates and poison) also runs inside `make test`
(tests/chaos/test_chaos.py). The report is printed as a table and written to
tests/reports/chaos.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import random
import secrets
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aio_pika
import httpx
from order_service.replicas import PRODUCTS
from payment_service.provider import SandboxProvider
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from bus import BusConnection, Names
from devkit.bus_testing import Probe, can_drop_connections
from devkit.seed_catalogue import bulk_products, seed_catalogue
from kit.mongo import Db

from . import infra_faults
from .system import (
    ADMIN,
    APPROVAL_THRESHOLD_CENTS,
    MANAGER,
    ROOT,
    SERVICE_NAMES,
    System,
    close_connections,
)

REPORT = ROOT / "tests" / "reports" / "chaos.json"
TERMINAL = {"CONFIRMED", "REJECTED", "CANCELLED"}
# The statuses of an order in flight (the driver's watcher lists each one).
WAITING = (
    "PENDING",
    "AWAITING_CUSTOMER_DECISION",
    "AWAITING_APPROVAL",
    "AWAITING_PAYMENT",
    "PAYMENT_FAILED",
    "PAID",
)
WATCH_SECONDS = 2.0
PASSWORD = "long-enough-pw"
ADDRESS = {
    "label": "home",
    "line1": "1 Main St",
    "city": "Springfield",
    "state": "IL",
    "zip": "12345",
    "country": "US",
}
# Each branch: the customer's cards and partial preference, what is ordered, what the driver
# does when the order waits (retry/cancel a failed payment, decide, approve/reject).
BRANCHES = (
    "ok",
    "declined_retry",
    "declined_cancel",
    "flaky",
    "partial_accept",
    "partial_ask_accept",
    "partial_ask_refuse",
    "partial_cancel",
    "out_of_stock",
    "high_value_approve",
    "high_value_reject",
    "fraud_approve",
    "fraud_reject",
)
# Where each branch's orders must end (`status:reason`, as `outcome_of` writes it). Only the
# end the branch's customer or manager steers to: the driver answers every wait within its
# window, and the holds (`system.DEADLINES`) outlast the saga under the long form's load, so an
# order that ends elsewhere (a hold that expired before payment: CANCELLED COMMIT_FAILED, a
# window that closed) is a fault the shop did not absorb, and fails the verdict.
CONFIRMED = "CONFIRMED:"
BRANCH_OUTCOMES: dict[str, frozenset[str]] = {
    "ok": frozenset({CONFIRMED}),
    "declined_retry": frozenset({CONFIRMED}),
    "declined_cancel": frozenset({"CANCELLED:CUSTOMER"}),
    "flaky": frozenset({CONFIRMED}),
    "partial_accept": frozenset({CONFIRMED}),
    "partial_ask_accept": frozenset({CONFIRMED}),
    "partial_ask_refuse": frozenset({"CANCELLED:CUSTOMER"}),
    "partial_cancel": frozenset({"CANCELLED:CUSTOMER"}),
    "out_of_stock": frozenset({"REJECTED:OUT_OF_STOCK"}),
    "high_value_approve": frozenset({CONFIRMED}),
    "high_value_reject": frozenset({"REJECTED:MANAGER_REJECTED"}),
    "fraud_approve": frozenset({CONFIRMED}),
    "fraud_reject": frozenset({"REJECTED:FRAUD"}),
    # The provider-bursts fault's branch: a card the provider keeps failing on, then another.
    "unavailable_retry": frozenset({CONFIRMED}),
}
# Tries of one placement (each `Shop.call`, itself retrying for a minute) before it fails.
PLACE_TRIES = 4
# The partial branches' one-unit products seeded per order in flight asked for (a long run
# places about three orders per order in flight on those branches; more are seeded if not).
SCARCE_PER_TARGET = 3
SCARCE_PRICE_CENTS = 700
# One CONFIRMED order in FULFIL_EVERY is shipped, delivered and partly returned; one of those
# returns in REJECT_EVERY is rejected, the others approved and received.
FULFIL_EVERY = 5
REJECT_EVERY = 3
# A return whose parcel reached the warehouse: refunded (or refused by payment) and restocked.
RECEIVED = {"RECEIVED", "REFUNDED", "REFUND_FAILED"}
CARDS = {
    "ok": ("pm_card_ok",),
    "declined": ("pm_card_declined", "pm_card_ok"),
    "flaky": ("pm_card_flaky",),
    "fraud": ("pm_card_fraud",),
    "unavailable": ("pm_card_unavailable", "pm_card_ok"),
}


@dataclass
class Customer:
    user_id: str
    headers: dict[str, str]
    methods: list[str]


@dataclass
class Placed:
    order_id: str
    branch: str
    placed_at: float
    status: str = "PENDING"
    actions: list[str] = field(default_factory=list)
    done: set[str] = field(default_factory=set)  # the waits the driver answered
    seen: dict[str, float] = field(default_factory=dict)  # each wait, when first seen


@dataclass
class Scenario:
    name: str
    fault: str
    started: float = 0.0
    seconds: float = 0.0
    orders_during: int = 0
    in_flight: dict[str, int] = field(default_factory=dict)
    ok: bool = True
    detail: dict[str, Any] = field(default_factory=dict)


def backoff(first: float = 0.5, cap: float = 8.0) -> Iterator[float]:
    """Pauses between a client's tries: doubling from `first` up to `cap`, each jittered."""
    for attempt in itertools.count():
        yield min(cap, first * 2**attempt) * random.uniform(0.5, 1.5)


class Shop:
    """What the driver and the checker use: the gateway, the databases, a probe on `#`."""

    def __init__(self, system: System) -> None:
        self.system = system
        self.client = httpx.AsyncClient(base_url=system.gateway, timeout=15)
        # Each service's own store (`System.mongo_url_of`), opened when first read.
        self._stores: dict[str, AsyncMongoClient[Any]] = {}
        self.admin: dict[str, str] = {}
        self.manager: dict[str, str] = {}
        self.connection = BusConnection(system.amqp_url, name=f"{system.prefix}chaos-probe")
        self.probe: Probe | None = None
        # Every login's headers by bearer, to log in again when its access token expires (a
        # long run outlives the 15 min tokens): what a client with a password does.
        self._holders: dict[str, tuple[str, str, dict[str, str]]] = {}
        self._renewing = asyncio.Lock()

    async def open(self) -> None:
        self.admin = await self.login(*ADMIN)
        self.manager = await self.login(*MANAGER)
        channel = await self.connection.channel()
        # Durable: the broker-restart fault must not cost the checker the events it reads.
        probe_queue = f"{self.system.prefix}chaos-probe"
        self.probe = await Probe.bind(channel, self.system.bus_config(), "#", durable=probe_queue)

    async def close(self) -> None:
        await self.client.aclose()
        await self.connection.close()
        for client in self._stores.values():
            await client.close()

    def db(self, service: str) -> AsyncDatabase[Any]:
        """`service`'s database, on its own embedded server."""
        if service not in self._stores:
            self._stores[service] = AsyncMongoClient(self.system.mongo_url_of(service))
        return self._stores[service][self.system.database(service)]

    async def call(
        self, method: str, path: str, *, retried: list[str] | None = None, **kwargs: Any
    ) -> httpx.Response:
        """One request, retried while the gateway (or the service behind it) is down, and once
        logged in again when its access token expired; each retry's cause goes to `retried`."""
        deadline = time.monotonic() + 60
        renewed = False
        # Backing off as a client should: a request that timed out may still be queued in the
        # service (a placement waits its turn for the order's transactions), and retrying it
        # every half second piled copies on that queue (2.8 tries per placement at 200 in flight).
        pauses = backoff()
        while True:
            try:
                response = await self.client.request(method, path, **kwargs)
            except httpx.HTTPError as exc:
                if time.monotonic() > deadline:
                    raise
                if retried is not None:
                    retried.append(repr(exc))
                await asyncio.sleep(next(pauses))
                continue
            if response.status_code in (502, 503, 504) and time.monotonic() < deadline:
                if retried is not None:
                    retried.append(str(response.status_code))
                await asyncio.sleep(next(pauses))
                continue
            headers = kwargs.get("headers") or {}
            if response.status_code == 401 and not renewed and "authorization" in headers:
                renewed = True
                bearer = await self.renew(headers["authorization"])
                if bearer is not None:
                    kwargs["headers"] = {**headers, "authorization": bearer}
                    continue
            return response

    async def renew(self, bearer: str) -> str | None:
        """Log the holder of `bearer` in again (once, however many requests found it expired);
        its headers (shared by the driver) get the new token."""
        holder = self._holders.get(bearer)
        if holder is None:
            return None
        identifier, password, headers = holder
        async with self._renewing:
            if headers["authorization"] == bearer:
                body = {"identifier": identifier, "password": password}
                response = await self.call("POST", "/api/v1/users/login", json=body)
                if response.status_code != 200:
                    return None
                headers["authorization"] = f"Bearer {response.json()['accessToken']}"
                self._holders[headers["authorization"]] = holder
        return headers["authorization"]

    def remember(self, headers: dict[str, str], identifier: str, password: str) -> None:
        self._holders[headers["authorization"]] = (identifier, password, headers)

    async def login(self, identifier: str, password: str) -> dict[str, str]:
        body = {"identifier": identifier, "password": password}
        response = await self.call("POST", "/api/v1/users/login", json=body)
        assert response.status_code == 200, response.text
        headers = {"authorization": f"Bearer {response.json()['accessToken']}"}
        self.remember(headers, identifier, password)
        return headers

    async def customer(self, cards: tuple[str, ...], partial: str = "ask") -> Customer:
        name = f"c{secrets.token_hex(5)}"
        body = {"username": name, "email": f"{name}@example.com", "password": PASSWORD}
        response = await self.call("POST", "/api/v1/users/register", json=body)
        assert response.status_code == 201, response.text
        headers = {"authorization": f"Bearer {response.json()['accessToken']}"}
        self.remember(headers, body["email"], PASSWORD)
        details = {
            "addresses": [ADDRESS],
            "paymentMethods": [{"type": "card", "token": t} for t in cards],
            "preferences": {"partialFulfillment": partial},
        }
        response = await self.call(
            "POST", "/api/v1/users/me/details", json=details, headers=headers
        )
        assert response.status_code == 200, response.text
        methods = [m["paymentMethodId"] for m in response.json()["paymentMethods"]]
        return Customer(response.json()["userId"], headers, methods)

    async def product(self, stock: int, price_cents: int, category: str = "chaos") -> str:
        body = {
            "name": f"Chaos {secrets.token_hex(3)}",
            "description": "fault suite",
            "category": category,
            "priceCents": price_cents,
            "stockCount": stock,
        }
        response = await self.call("POST", "/api/v1/products", json=body, headers=self.admin)
        assert response.status_code == 201, response.text
        product_id: str = response.json()["productId"]
        return product_id

    async def seed_products(self, count: int, price_cents: int, stock: int) -> list[str]:
        """`count` products written straight into inventory's store by the catalogue seeder
        (inventory's own code, ProductCreated in its outbox), once order's catalogue replica
        holds them all: a placement then needs no inventory read (`product_facts`)."""
        self.db("inventory")  # opens inventory's client
        client = self._stores["inventory"]
        products = bulk_products(
            count, tag=secrets.token_hex(3), price_cents=price_cents, stock=stock, categories=1
        )
        ids = await seed_catalogue(client, self.db("inventory"), products)
        replica = self.db("order")[PRODUCTS]
        wanted = {"_id": {"$in": ids}, "price_cents": {"$exists": True}}
        deadline = time.monotonic() + 120
        while await replica.count_documents(wanted) < len(ids):
            if time.monotonic() > deadline:
                raise TimeoutError("order's replica lacks seeded products after 120 s")
            await asyncio.sleep(0.5)
        return ids

    def events(self) -> list[dict[str, Any]]:
        assert self.probe is not None
        found = []
        for message in self.probe.messages:
            if message.type != "Poison":
                with contextlib.suppress(ValueError):
                    found.append(json.loads(message.body))
        return found


class Driver:
    """A steady stream of orders on every branch that keeps `target` orders in flight.

    Placers (a few at a time, many customers per kind) place a new order whenever fewer than
    `target` are open (placed, not yet seen terminal); one watcher reads the statuses of every
    open order from the staff list (a page per status, not a GET per order) every
    `WATCH_SECONDS` and does what the branch's customer or manager does when an order waits for
    them. Each sweep samples how many of the driver's orders the shop holds in a non-terminal
    status: `in_flight_max` and the per-scenario figures come from those samples.
    """

    def __init__(self, shop: Shop, target: int, think: float = 0.0) -> None:
        self.shop = shop
        self.target = target
        # How long a customer or manager takes over a wait before answering it (`LOAD`).
        self.think = think
        # Held a little above the target: the shop's own count lags the driver's by a sweep.
        self.hold = target + max(4, target // 10)
        self.placers = max(4, min(16, target // 12))
        self.placed: dict[str, Placed] = {}
        self.place_failures: list[str] = []
        self.driver_errors: list[str] = []  # the watcher's failed sweeps
        self.place_retries: list[str] = []  # what each retried placement try answered
        self.customers: dict[str, list[Customer]] = {}
        self.products: dict[str, str] = {}
        self.all_products: list[str] = []
        # The partial branches' scarce products (one unit each), seeded before the load: one
        # created per order through the API failed while a fault had inventory down.
        self.scarce: list[str] = []
        self.scarce_batches = 0
        self._seeding = asyncio.Lock()
        self.branches = itertools.cycle(BRANCHES)
        self.burst = False  # payment provider failing in bursts: unavailable cards in the mix
        self._bursts = itertools.count()
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._watcher: asyncio.Task[None] | None = None
        self._open: dict[str, Placed] = {}  # placed, not yet seen terminal
        self._placing = 0
        self._customer_of: dict[str, Customer] = {}
        self._reacting: set[str] = set()
        self._reactions: set[asyncio.Task[None]] = set()
        self.samples: list[tuple[float, int]] = []  # (monotonic time, orders in flight)
        self.confirmed = 0
        self.fulfilled: dict[str, list[str]] = {}  # order id → what the fulfilment did
        self._fulfilments: list[asyncio.Task[None]] = []

    async def prepare(self) -> None:
        shop = self.shop
        kinds = {
            "ok": (CARDS["ok"], "ask"),
            "declined": (CARDS["declined"], "ask"),
            "flaky": (CARDS["flaky"], "ask"),
            "fraud": (CARDS["fraud"], "ask"),
            "unavailable": (CARDS["unavailable"], "ask"),
            "partial_accept": (CARDS["ok"], "accept"),
            "partial_ask": (CARDS["ok"], "ask"),
            "partial_cancel": (CARDS["ok"], "cancel"),
        }
        # Many customers, each with a few orders open at once (as in a sale).
        per_kind = max(2, self.target // 40)
        for kind, (cards, partial) in kinds.items():
            self.customers[kind] = list(
                await asyncio.gather(*(shop.customer(cards, partial) for _ in range(per_kind)))
            )
        self.products["plenty"] = await shop.product(1_000_000, 1_000)
        self.products["plenty2"] = await shop.product(1_000_000, 2_500)
        self.products["gone"] = await shop.product(0, 3_000, "chaos-gone")
        self.products["alternative"] = await shop.product(1_000_000, 3_100, "chaos-gone")
        self.products["pricey"] = await shop.product(1_000_000, APPROVAL_THRESHOLD_CENTS // 2 + 1)
        self.all_products = list(self.products.values())
        await self.more_scarce()

    async def more_scarce(self) -> None:
        """A batch of scarce products: enough for every partial order of a run at the load's
        pace (4 branches in 13), seeded again should a run outlast it."""
        async with self._seeding:
            if not self.scarce:
                batch = SCARCE_PER_TARGET * self.target
                self.scarce += await self.shop.seed_products(batch, SCARCE_PRICE_CENTS, 1)
                self.scarce_batches += 1

    def who(self, kind: str) -> Customer:
        return secrets.choice(self.customers[kind])

    async def plan(self, branch: str) -> tuple[Customer, list[tuple[str, int]]]:
        p = self.products
        if branch.startswith("partial"):
            # Two wanted, one there: a product of its own with one unit.
            while not self.scarce:
                await self.more_scarce()
            scarce = self.scarce.pop()
            self.all_products.append(scarce)
            kind = {
                "partial_accept": "partial_accept",
                "partial_cancel": "partial_cancel",
            }.get(branch, "partial_ask")
            return self.who(kind), [(scarce, 2), (p["plenty"], 1)]
        if branch == "out_of_stock":
            return self.who("ok"), [(p["gone"], 1)]
        if branch.startswith("high_value"):
            return self.who("ok"), [(p["pricey"], 2)]
        if branch.startswith("fraud"):
            return self.who("fraud"), [(p["plenty2"], 1)]
        if branch.startswith("declined"):
            return self.who("declined"), [(p["plenty"], 2)]
        if branch == "unavailable_retry":
            return self.who("unavailable"), [(p["plenty2"], 1)]
        if branch == "flaky":
            return self.who("flaky"), [(p["plenty"], 1), (p["plenty2"], 1)]
        return self.who("ok"), [(p["plenty"], 1)]

    async def place(self, branch: str) -> Placed | None:
        customer, lines = await self.plan(branch)
        body = {"items": [{"productId": pid, "quantity": q} for pid, q in lines]}
        # What a client does with a timeout or a 5xx: the same request with the same key, so
        # that a retry after a lost answer is the same order. A placement that succeeds after
        # retries is not a failure; each retry is counted (`place_retries`).
        headers = {**customer.headers, "Idempotency-Key": str(uuid.uuid4())}
        retried: list[str] = []
        response: httpx.Response | None = None
        for _ in range(PLACE_TRIES):
            try:
                response = await self.shop.call(
                    "POST", "/api/v1/orders", json=body, headers=headers, retried=retried
                )
            except httpx.HTTPError as exc:
                response = None
                retried.append(repr(exc))
                continue
            if response.status_code < 500:
                break
            retried.append(str(response.status_code))
            await asyncio.sleep(1)
        self.place_retries += [f"{branch}: {r}" for r in retried]
        if response is None or response.status_code != 202:
            answer = "no answer" if response is None else response.text[:200]
            self.place_failures.append(f"{branch}: {retried[-1:]} {answer}")
            return None
        placed = Placed(response.json()["orderId"], branch, time.monotonic())
        self.placed[placed.order_id] = placed
        placed.actions.append(f"customer={customer.user_id}")
        self._customer_of[placed.order_id] = customer
        return placed

    async def act(self, placed: Placed, action: str, headers: dict[str, str], body: Any) -> bool:
        """One customer or manager action; whether the shop answered it (a 409 is an answer:
        the order moved on meanwhile, perhaps by this action's own try that timed out)."""
        response = await self.shop.call(
            "POST", f"/api/v1/orders/{placed.order_id}/{action}", json=body, headers=headers
        )
        placed.actions.append(f"{action}:{response.status_code}")
        return response.status_code < 500

    async def react(self, placed: Placed) -> None:
        """Do what the branch's customer or manager does while the order waits for them (once
        per wait, and again at the next sweep when the shop did not answer, as a person would;
        an approval once per review: a fraud review may follow a high-value one, or another
        fraud review)."""
        customer = self._customer_of[placed.order_id]
        branch, status = placed.branch, placed.status
        answered = True
        if status in ("PAYMENT_FAILED", "AWAITING_CUSTOMER_DECISION") and not self.thought(
            placed, status
        ):
            return
        if status == "PAYMENT_FAILED" and status not in placed.done:
            if branch in ("declined_retry", "unavailable_retry") and len(customer.methods) > 1:
                body = {"paymentMethodId": customer.methods[1]}
                answered = await self.act(placed, "payment/retry", customer.headers, body)
            elif branch == "declined_cancel":
                answered = await self.act(placed, "cancel", customer.headers, None)
            # otherwise the payment window closes
            if answered:
                placed.done.add(status)
        elif status == "AWAITING_CUSTOMER_DECISION" and status not in placed.done:
            accept = branch != "partial_ask_refuse"
            if await self.act(placed, "decision", customer.headers, {"accept": accept}):
                placed.done.add(status)
        elif status == "AWAITING_APPROVAL":
            response = await self.shop.call(
                "GET", f"/api/v1/orders/{placed.order_id}", headers=self.shop.admin
            )
            if response.status_code != 200 or response.json()["status"] != status:
                return
            # One answer per review, told apart by its deadline: a payment retried with another
            # card after an approved fraud review is reviewed again, for the same reason.
            order = response.json()
            wait = f"{status}:{order.get('approvalReason')}:{order.get('deadline')}"
            if wait not in placed.done and self.thought(placed, wait):
                action = "reject" if branch.endswith("reject") else "approve"
                if await self.act(placed, action, self.shop.manager, {"reason": "chaos"}):
                    placed.done.add(wait)

    def thought(self, placed: Placed, wait: str) -> bool:
        """Whether the customer or manager has taken their time over `wait` (`think` seconds
        since the driver first saw the order in it)."""
        since = placed.seen.setdefault(wait, time.monotonic())
        return time.monotonic() - since >= self.think

    def _react(self, placed: Placed) -> None:
        if placed.order_id in self._reacting:
            return
        self._reacting.add(placed.order_id)

        async def reacting() -> None:
            try:
                await self.react(placed)
            except Exception as exc:  # noqa: BLE001 - a driver error is reported, not raised
                placed.actions.append(f"react failed: {exc!r}")
            finally:
                self._reacting.discard(placed.order_id)

        task = asyncio.create_task(reacting())
        self._reactions.add(task)
        task.add_done_callback(self._reactions.discard)

    async def _listed(self, status: str) -> dict[str, str]:
        """Every order the shop holds in `status` (staff list, newest first, page by page)."""
        found: dict[str, str] = {}
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"status": status, "limit": 100}
            if cursor:
                params["cursor"] = cursor
            response = await self.shop.call(
                "GET", "/api/v1/orders", params=params, headers=self.shop.admin
            )
            if response.status_code != 200:
                raise RuntimeError(f"orders in {status}: {response.status_code}")
            for item in response.json()["items"]:
                found[item["orderId"]] = item["status"]
            cursor = response.json().get("nextCursor")
            if not cursor:
                return found

    async def _status(self, order_id: str) -> str | None:
        response = await self.shop.call(
            "GET", f"/api/v1/orders/{order_id}", headers=self.shop.admin
        )
        status: str | None = response.json()["status"] if response.status_code == 200 else None
        return status

    async def sweep(self) -> None:
        """One look at every open order: statuses, reactions, the in-flight sample."""
        began = time.monotonic()
        watched = [p for p in self._open.values() if p.placed_at < began]
        waiting: dict[str, str] = {}
        for status in WAITING:
            waiting |= await self._listed(status)
        # Not in any waiting list: terminal, or moved between two lists while they were read.
        unseen = [p for p in watched if p.order_id not in waiting]
        limit = asyncio.Semaphore(8)

        async def read(placed: Placed) -> None:
            async with limit:
                status = await self._status(placed.order_id)
            if status is not None:
                waiting[placed.order_id] = status

        await asyncio.gather(*(read(p) for p in unseen))
        in_flight = 0
        for placed in watched:
            seen = waiting.get(placed.order_id)
            if seen is None:
                continue
            placed.status = seen
            if seen in TERMINAL:
                self._close(placed)
                continue
            in_flight += 1
            if seen in ("PAYMENT_FAILED", "AWAITING_CUSTOMER_DECISION", "AWAITING_APPROVAL"):
                self._react(placed)
        in_flight += sum(1 for p in self._open.values() if p.placed_at >= began)
        self.samples.append((began, in_flight))

    def _close(self, placed: Placed) -> None:
        self._open.pop(placed.order_id, None)
        if placed.status == "CONFIRMED":
            self.confirmed += 1
            if self.confirmed % FULFIL_EVERY == 1:
                index = self.confirmed // FULFIL_EVERY
                task = asyncio.create_task(self._fulfil(placed, index))
                self._fulfilments.append(task)

    async def _watch(self) -> None:
        while True:
            started = time.monotonic()
            try:
                await self.sweep()
            except Exception as exc:  # noqa: BLE001 - a driver error is reported, not raised
                self.driver_errors.append(f"sweep: {exc!r}")
            await asyncio.sleep(max(0.2, WATCH_SECONDS - (time.monotonic() - started)))

    async def _placer(self) -> None:
        while not self._stop.is_set():
            if len(self._open) + self._placing >= self.hold:
                await asyncio.sleep(0.2)
                continue
            branch = next(self.branches)
            if self.burst and next(self._bursts) % 2 == 0:
                branch = "unavailable_retry"
            self._placing += 1
            try:
                placed = await self.place(branch)
            except Exception as exc:  # noqa: BLE001 - a driver error is reported, not raised
                self.place_failures.append(f"{branch}: {exc!r}")
                placed = None
            finally:
                self._placing -= 1
            if placed is None:
                await asyncio.sleep(1)
                continue
            self._open[placed.order_id] = placed

    async def _fulfil(self, placed: Placed, index: int) -> None:
        steps = self.fulfilled[placed.order_id] = []
        try:
            await self.fulfil(placed, steps, reject=index % REJECT_EVERY == REJECT_EVERY - 1)
        except Exception as exc:  # noqa: BLE001 - a driver error is reported, not raised
            steps.append(f"failed: {exc!r}")

    async def fulfil(
        self, placed: Placed, steps: list[str], *, reject: bool, timeout: float = 240.0
    ) -> None:
        """Ship, deliver, ask one unit back, decide, receive: each step once its turn came."""
        shop, order_id = self.shop, placed.order_id
        deadline = time.monotonic() + timeout

        async def until(what: str, reached: Callable[[dict[str, Any]], bool], path: str) -> Any:
            while time.monotonic() < deadline:
                response = await shop.call("GET", path, headers=shop.admin)
                if response.status_code == 200 and reached(response.json()):
                    return response.json()
                await asyncio.sleep(1.0)
            raise TimeoutError(f"{what} of {order_id}")

        listed = await until(
            "a shipment", lambda b: bool(b["items"]), f"/api/v1/shipments?orderId={order_id}"
        )
        shipment_id = listed["items"][0]["shipmentId"]
        for action in ("ship", "deliver"):
            response = await shop.call(
                "POST", f"/api/v1/shipments/{shipment_id}/{action}", json={}, headers=shop.admin
            )
            steps.append(f"{action}:{response.status_code}")
        order = await until(
            "DELIVERED",
            lambda o: (o.get("fulfilment") or {}).get("status") == "DELIVERED",
            f"/api/v1/orders/{order_id}",
        )
        line = next(i for i in order["items"] if i.get("fulfilledQuantity"))
        body = {"items": [{"productId": line["productId"], "quantity": 1}], "reason": "chaos"}
        customer = self._customer_of[order_id]
        response = await shop.call(
            "POST", f"/api/v1/orders/{order_id}/returns", json=body, headers=customer.headers
        )
        steps.append(f"return:{response.status_code}")
        if response.status_code != 201:
            return
        return_id = response.json()["returnId"]
        decision = "reject" if reject else "approve"
        response = await shop.call(
            "POST",
            f"/api/v1/returns/{return_id}/{decision}",
            json={"reason": "chaos"},
            headers=shop.manager,
        )
        steps.append(f"{decision}:{response.status_code}")
        if not reject:
            response = await shop.call(
                "POST", f"/api/v1/returns/{return_id}/receive", json={}, headers=shop.admin
            )
            steps.append(f"receive:{response.status_code}")

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._placer()) for _ in range(self.placers)]
        self._watcher = asyncio.create_task(self._watch())

    async def stop(self, timeout: float = 240.0) -> None:
        """Stop placing; watch the open orders through (or give up after `timeout`), then the
        fulfilments they started."""
        self._stop.set()
        await asyncio.wait(self._tasks)
        deadline = time.monotonic() + timeout
        while self._open and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
        if self._reactions:
            await asyncio.wait(list(self._reactions), timeout=30)
        if self._fulfilments:
            _, pending = await asyncio.wait(self._fulfilments, timeout=timeout)
            for task in pending:
                task.cancel()

    @property
    def in_flight(self) -> int:
        """Orders placed and not yet seen terminal (what the placers hold at `hold`)."""
        return len(self._open)

    @property
    def in_flight_max(self) -> int:
        """The most of the driver's orders the shop held in a non-terminal status at one sweep."""
        return max((n for _, n in self.samples), default=0)

    def in_flight_between(self, start: float, end: float) -> dict[str, int]:
        """The in-flight samples of a window: fewest, most, how many sweeps."""
        window = [n for t, n in self.samples if start <= t <= end]
        return {
            "min": min(window, default=0),
            "max": max(window, default=0),
            "sweeps": len(window),
        }

    def placed_between(self, start: float, end: float) -> int:
        return sum(1 for p in self.placed.values() if start <= p.placed_at <= end)


# --- faults ---------------------------------------------------------------------------------


class Faults:
    def __init__(self, system: System, shop: Shop, driver: Driver) -> None:
        self.system = system
        self.shop = shop
        self.driver = driver
        self.poison_ids: set[str] = set()
        self.duplicates_sent: Counter[str] = Counter()

    async def kill(self, name: str, down: float = 3.0) -> dict[str, Any]:
        self.system.kill(name)
        await asyncio.sleep(down)
        ready_after = await self.system.restart(name)
        return {"service": name, "down_seconds": down, "ready_after_seconds": round(ready_after, 1)}

    async def drop_connections(self) -> dict[str, Any]:
        closed = await close_connections(
            self.system.prefix, keep=(".chaos-",), node=self.system.node
        )
        await asyncio.sleep(3)
        await self.system.wait_ready(list(SERVICE_NAMES), timeout=60)
        return {"closed": sorted(closed)}

    async def crash_at(self, name: str, point: str) -> dict[str, Any]:
        """Restart `name` armed to die at `point`; once it died there, start it normally."""
        self.system.kill(name)
        self.system.start(name, {"BUS_CRASH_AT": point})
        deadline = time.monotonic() + 60
        while self.system.alive(name) and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        died = not self.system.alive(name)
        ready_after = await self.system.restart(name)
        return {
            "service": name,
            "point": point,
            "died_there": died,
            "ready_after_seconds": round(ready_after, 1),
        }

    async def duplicates(self, per_type: int = 2) -> dict[str, Any]:
        """Publish again, as they were, up to `per_type` events of every type seen so far."""
        assert self.shop.probe is not None
        by_type: dict[str, list[aio_pika.abc.AbstractIncomingMessage]] = defaultdict(list)
        for message in list(self.shop.probe.messages):
            if message.type not in (None, "Poison") and len(by_type[message.type]) < per_type:
                by_type[message.type].append(message)
        channel = await self.shop.connection.channel()
        exchange = await channel.get_exchange(Names.of(self.system.bus_config()).exchange)
        for type_, messages in by_type.items():
            for message in messages:
                copy = aio_pika.Message(
                    message.body,
                    message_id=message.message_id,
                    type=message.type,
                    correlation_id=message.correlation_id,
                    content_type=message.content_type,
                    headers=dict(message.headers or {}),
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                )
                await exchange.publish(copy, routing_key=message.routing_key or "")
                self.duplicates_sent[type_] += 1
        await channel.close()
        return {"types": len(by_type), "sent": sum(self.duplicates_sent.values())}

    async def poison(self) -> dict[str, Any]:
        """Messages no consumer can ever handle: not JSON, an unknown type, invalid data."""
        channel = await self.shop.connection.channel()
        exchange = await channel.get_exchange(Names.of(self.system.bus_config()).exchange)
        bodies = [
            ("order.placed", b"{not json"),
            (
                "order.placed",
                json.dumps({"id": str(uuid.uuid4()), "type": "NoSuchEvent", "data": {}}).encode(),
            ),
            (
                "payment.authorized",
                json.dumps(
                    {
                        "id": str(uuid.uuid4()),
                        "type": "PaymentAuthorized",
                        "version": 1,
                        "data": {"orderId": 42},
                    }
                ).encode(),
            ),
        ]
        for routing_key, body in bodies:
            message_id = f"poison-{secrets.token_hex(4)}"
            self.poison_ids.add(message_id)
            await exchange.publish(
                aio_pika.Message(body, message_id=message_id, type="Poison"),
                routing_key=routing_key,
            )
        await channel.close()
        return {"sent": len(bodies)}

    async def slow_payment(self, seconds: float) -> dict[str, Any]:
        """The provider answers slowly (the most the retry budget allows), then recovers."""
        latency = "0.8"
        await self.system.restart("payment", {"PAYMENT_PROVIDER_LATENCY_SECONDS": latency})
        await asyncio.sleep(seconds)
        await self.system.restart("payment")
        return {"latency_seconds": float(latency), "for_seconds": seconds}

    async def broker_restart(self, down: float = 10.0) -> dict[str, Any]:
        """The system's broker node: `stop_app`, `down` seconds, `start_app` (infra_faults)."""
        return await infra_faults.broker_restart(self.system, down)

    async def store_stall(
        self, service: str = "inventory", seconds: float = 10.0
    ) -> dict[str, Any]:
        """SIGSTOP `service`'s embedded Mongo for `seconds`, then SIGCONT (infra_faults)."""
        return await infra_faults.store_stall(self.system, service, seconds)

    async def consumer_outage(
        self, service: str = "inventory", seconds: float = 60.0
    ) -> dict[str, Any]:
        """`service` stopped for `seconds` while orders flow, then started (infra_faults)."""
        return await infra_faults.consumer_outage(
            self.system, self.shop.connection, service, seconds
        )

    async def provider_bursts(self, seconds: float) -> dict[str, Any]:
        """Half the new orders pay with a card the provider keeps failing on (transiently)."""
        self.driver.burst = True
        await asyncio.sleep(seconds)
        self.driver.burst = False
        return {"for_seconds": seconds}


def scenarios(faults: Faults, long: bool) -> list[tuple[str, str, Callable[[], Awaitable[Any]]]]:
    if not long:
        return [
            ("kill-order", "SIGKILL order, restart after 3 s", lambda: faults.kill("order")),
            (
                "kill-inventory",
                "SIGKILL inventory, restart after 3 s",
                lambda: faults.kill("inventory"),
            ),
            ("kill-payment", "SIGKILL payment, restart after 3 s", lambda: faults.kill("payment")),
            ("drop-connections", "broker closes the system's connections", faults.drop_connections),
            ("broker-restart", "rabbitmqctl stop_app, 10 s, start_app", faults.broker_restart),
            ("store-stall", "inventory's Mongo SIGSTOPped for 10 s", faults.store_stall),
            ("duplicates", "every event type published again", faults.duplicates),
            ("poison", "unparseable / unknown / invalid messages", faults.poison),
        ]
    kills = [
        (f"kill-{name}", f"SIGKILL {name}, restart after 4 s", _bind(faults.kill, name, 4.0))
        for name in (
            "order",
            "inventory",
            "payment",
            "shipping",
            "notify",
            "analytics",
            "user",
            "gateway",
        )
    ]
    return [
        *kills,
        ("drop-connections", "broker closes the system's connections", faults.drop_connections),
        ("broker-restart", "rabbitmqctl stop_app, 10 s, start_app", faults.broker_restart),
        ("store-stall", "inventory's Mongo SIGSTOPped for 10 s", faults.store_stall),
        (
            # Inventory: placed orders wait for its answer within their stock window (15 min),
            # paid ones for its commit within theirs (`system.DEADLINES`), and go on where their
            # branch says.
            "consumer-outage-inventory",
            "inventory stopped for 60 s while orders flow, then started",
            _bind(faults.consumer_outage, "inventory", 60.0),
        ),
        (
            "crash-consumer-after-commit",
            "payment dies between a handler's commit and its ack",
            _bind(faults.crash_at, "payment", "consumer.after_commit"),
        ),
        (
            "crash-consumer-after-commit-inventory",
            "inventory dies between a handler's commit and its ack",
            _bind(faults.crash_at, "inventory", "consumer.after_commit"),
        ),
        (
            "crash-relay-before-publish",
            "order's relay dies holding committed, unpublished rows",
            _bind(faults.crash_at, "order", "relay.before_publish"),
        ),
        (
            "crash-relay-before-publish-inventory",
            "inventory's relay dies holding committed, unpublished rows",
            _bind(faults.crash_at, "inventory", "relay.before_publish"),
        ),
        ("duplicates", "every event type published again", _bind(faults.duplicates, 5)),
        ("poison", "unparseable / unknown / invalid messages", faults.poison),
        ("slow-payment", "provider latency 0.8 s per call", _bind(faults.slow_payment, 15.0)),
        (
            "provider-bursts",
            "transient provider failures in bursts",
            _bind(faults.provider_bursts, 15.0),
        ),
    ]


def _bind(
    function: Callable[..., Awaitable[dict[str, Any]]], *args: Any
) -> Callable[[], Awaitable[dict[str, Any]]]:
    async def call() -> dict[str, Any]:
        return await function(*args)

    return call


# --- the invariant checker ------------------------------------------------------------------


async def check(system: System, shop: Shop, driver: Driver, faults: Faults) -> dict[str, Any]:
    """Every figure the suite asserts on, read through the APIs and the databases."""
    orders_db = shop.db("order")
    statuses: dict[str, str] = {}
    lost: list[str] = []
    stuck: list[str] = []
    # Wait for the deadlines to close what is still open (windows are seconds long).
    deadline = time.monotonic() + 60
    reads = asyncio.Semaphore(8)

    async def read(order_id: str) -> None:
        async with reads:
            response = await shop.call("GET", f"/api/v1/orders/{order_id}", headers=shop.admin)
        if response.status_code == 404:
            lost.append(order_id)
            return
        statuses[order_id] = response.json()["status"]
        driver.placed[order_id].status = statuses[order_id]
        if statuses[order_id] not in TERMINAL:
            stuck.append(order_id)

    while True:
        stuck, lost = [], []
        await asyncio.gather(*(read(o) for o in driver.placed))
        stuck.sort()
        lost.sort()
        if not stuck and not lost or time.monotonic() > deadline:
            break
        await asyncio.sleep(2)

    # Every order in the order database, including any placed whose answer the driver lost.
    orders = {doc["_id"]: doc async for doc in orders_db.orders.find({})}
    unknown = sorted(set(orders) - set(driver.placed))
    stuck += [o for o in unknown if orders[o]["status"] not in TERMINAL]
    confirmed = {o for o, doc in orders.items() if doc["status"] == "CONFIRMED"}
    outcomes = Counter(
        f"{doc['status']}:{doc.get('cancel_reason') or doc.get('rejection_reason') or ''}"
        for doc in orders.values()
    )

    # Stock: conserved per product, nothing left reserved, committed = units confirmed.
    sold: Counter[str] = Counter()
    for order_id in confirmed:
        for line in orders[order_id]["items"]:
            sold[line["product_id"] if "product_id" in line else line["productId"]] += (
                line.get("fulfilled_quantity", line.get("fulfilledQuantity")) or 0
            )
    # A received return moves its units from committed back to available (inventory): the
    # equation stays, and committed = units confirmed less units received back.
    conservation: list[str] = []
    returns: list[dict[str, Any]] = []
    settle_deadline = time.monotonic() + 30
    while True:
        conservation = []
        returns = await listed(shop, "/api/v1/returns")
        returned: Counter[str] = Counter()
        for item in returns:
            if item["status"] in RECEIVED:
                for line in item["items"]:
                    returned[line["productId"]] += line["quantity"]
        for product_id in driver.all_products:
            response = await shop.call("GET", f"/api/v1/products/{product_id}", headers=shop.admin)
            stock = response.json()["stock"]
            if stock["available"] + stock["reserved"] + stock["committed"] != stock["received"]:
                conservation.append(f"{product_id}: not conserved {stock}")
            if stock["reserved"]:
                conservation.append(f"{product_id}: {stock['reserved']} still reserved")
            if stock["committed"] != sold[product_id] - returned[product_id]:
                conservation.append(
                    f"{product_id}: committed {stock} but confirmed {sold[product_id]}"
                    f" and returned {returned[product_id]}"
                )
        if not conservation or time.monotonic() > settle_deadline:
            break
        await asyncio.sleep(2)

    # Payments: the payment database and the PaymentCaptured events on the bus.
    payments = [p async for p in shop.db("payment").payments.find({})]
    captured_without_confirmed = sorted(
        p["order_id"]
        for p in payments
        if (p.get("captured_cents") or p.get("status") == "captured")
        and p["order_id"] not in confirmed
    )
    capture_ids: dict[str, set[str]] = defaultdict(set)
    while True:
        # Eventually: a capture written by a payment service killed before its relay sent it
        # goes out once the row's lease runs out (bus `own_lease_seconds`).
        capture_ids.clear()
        for event in shop.events():
            if event.get("type") == "PaymentCaptured":
                capture_ids[event["data"]["orderId"]].add(event["id"])
        if all(capture_ids.get(o) for o in confirmed) or time.monotonic() > settle_deadline:
            break
        await asyncio.sleep(1)
    double_captures = sorted(o for o, ids in capture_ids.items() if len(ids) > 1)
    double_captures += sorted(
        p["order_id"]
        for p in payments
        if p["order_id"] in orders
        and (p.get("captured_cents") or 0) > orders[p["order_id"]].get("total_cents", 10**12)
    )
    confirmed_not_captured = sorted(o for o in confirmed if not capture_ids.get(o))

    # Fulfilment and returns: one shipment per CONFIRMED order and none for the others; the
    # refunds of an order never above its capture; each received return refunded (or refused by
    # payment) once and restocked once, the others neither.
    fulfilment_deadline = time.monotonic() + 60
    while True:
        returns = await listed(shop, "/api/v1/returns")
        shipments = Counter(s["orderId"] for s in await listed(shop, "/api/v1/shipments"))
        shipment_violations = [
            f"{o}: {orders[o]['status'] if o in orders else 'unknown'}, {shipments[o]} shipments"
            for o in sorted(confirmed | set(shipments))
            if shipments[o] != (o in confirmed)
        ]
        audit = audit_returns(shop.events(), returns)
        if not shipment_violations and not any(audit.values()):
            break
        if time.monotonic() > fulfilment_deadline:
            break
        await asyncio.sleep(2)

    # Notifications: one per (event, channel, recipient).
    notify = shop.db("notify").notifications
    per_event: Counter[tuple[Any, ...]] = Counter()
    async for row in notify.find({}, {"event_id": 1, "channel": 1, "user_id": 1, "type": 1}):
        per_event[
            (row.get("event_id"), row.get("channel"), row.get("user_id"), row.get("type"))
        ] += 1
    duplicate_notifications = sum(n - 1 for n in per_event.values() if n > 1)
    notifications = sum(per_event.values())

    # Dead letters: only the poison is expected.
    response = await shop.call("GET", "/api/v1/ops/dlq", params={"limit": 100}, headers=shop.admin)
    dead: dict[str, int] = {}
    unexpected: list[dict[str, Any]] = []
    expected = 0
    poison_found: set[str] = set()
    for item in response.json()["items"]:
        dead[item["service"]] = item["count"]
        for letter in item["messages"]:
            if letter["id"] in faults.poison_ids:
                expected += 1
                poison_found.add(letter["id"])
            else:
                unexpected.append({"service": item["service"], **letter})
        unexpected += [{"service": item["service"], "unlisted": True}] * max(
            0, item["count"] - len(item["messages"])
        )

    ended = {
        branch: dict(Counter(outcome_of(orders, p.order_id) for p in placed))
        for branch, placed in sorted(by_branch(driver).items())
    }

    # The processor's own ledger (the sandbox's, in the payment database), from the outside in.
    ledger = await audit_ledger(system, orders)

    return {
        "submitted": len(driver.placed),
        "terminal": sum(1 for s in statuses.values() if s in TERMINAL),
        "stuck": len(stuck),
        "lost": len(lost),
        "conservation_violations": len(conservation),
        "captured_without_confirmed": len(captured_without_confirmed),
        "double_captures": len(double_captures),
        "duplicate_notifications": duplicate_notifications,
        "unexpected_dead_letters": len(unexpected),
        "expected_dead_letters": expected,
        "poison_not_dead_lettered": len(faults.poison_ids - poison_found),
        "confirmed_not_captured": len(confirmed_not_captured),
        "shipment_violations": len(shipment_violations),
        "refunds_above_capture": len(audit["refunds_above_capture"]),
        "returns_not_refunded_once": len(audit["returns_not_refunded_once"]),
        "returns_not_restocked_once": len(audit["returns_not_restocked_once"]),
        "ledger_capture_mismatches": len(ledger["capture_mismatches"]),
        "authorizations_not_voided": len(ledger["authorizations_not_voided"]),
        "ledger_refunds_above_capture": len(ledger["refunds_above_capture"]),
        "ledger_captured_cents": ledger["captured_cents"],
        "confirmed_total_cents": ledger["confirmed_total_cents"],
        "ledger_entries": ledger["entries"],
        "fulfilled": len(driver.fulfilled),
        "returns_received": sum(1 for r in returns if r["status"] in RECEIVED),
        "returns_by_status": dict(Counter(r["status"] for r in returns)),
        "shipments": sum(shipments.values()),
        "by_status": dict(Counter(statuses.values())),
        "by_outcome": dict(sorted(outcomes.items())),
        # Where each branch's orders ended, and how many ended where their branch does not.
        "by_branch": ended,
        "off_branch": sum(count for _, _, count in off_branch(ended)),
        "orders_not_placed_by_driver": len(unknown),
        "place_failures": len(driver.place_failures),
        "place_retries": len(driver.place_retries),
        "driver_errors": len(driver.driver_errors),
        "scarce_batches_seeded": driver.scarce_batches,
        "max_in_flight": driver.in_flight_max,
        "notifications": notifications,
        "duplicates_injected": dict(faults.duplicates_sent),
        "poison_injected": len(faults.poison_ids),
        "dlq_counts": dead,
        "details": {
            "stuck": stuck[:20],
            "lost": lost[:20],
            "conservation": conservation[:20],
            "captured_without_confirmed": captured_without_confirmed[:20],
            "double_captures": double_captures[:20],
            "confirmed_not_captured": confirmed_not_captured[:20],
            "shipment_violations": shipment_violations[:20],
            **{name: problems[:20] for name, problems in audit.items()},
            **{
                f"ledger_{name}": problems[:20]
                for name, problems in ledger.items()
                if isinstance(problems, list)
            },
            "fulfilments": dict(list(driver.fulfilled.items())[:20]),
            "unexpected_dead_letters": unexpected[:20],
            "place_failures": driver.place_failures[:20],
            "place_retries": driver.place_retries[:20],
            "driver_errors": driver.driver_errors[:20],
            "stuck_orders": {
                o: driver.placed[o].__dict__ for o in stuck[:10] if o in driver.placed
            },
        },
    }


def by_branch(driver: Driver) -> dict[str, list[Placed]]:
    found: dict[str, list[Placed]] = defaultdict(list)
    for placed in driver.placed.values():
        found[placed.branch].append(placed)
    return found


def outcome_of(orders: dict[str, dict[str, Any]], order_id: str) -> str:
    doc = orders.get(order_id)
    if doc is None:
        return "unknown"
    return f"{doc['status']}:{doc.get('cancel_reason') or doc.get('rejection_reason') or ''}"


async def listed(shop: Shop, path: str) -> list[dict[str, Any]]:
    """Every item of a staff list (`{items, nextCursor}`), page by page."""
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 100} | ({"cursor": cursor} if cursor else {})
        response = await shop.call("GET", path, params=params, headers=shop.admin)
        assert response.status_code == 200, response.text
        items += response.json()["items"]
        cursor = response.json().get("nextCursor")
        if not cursor:
            return items


async def ledger_entries(db: Db) -> list[dict[str, Any]]:
    """The operations the sandbox processor carried out (`payment_service.provider`: its ledger
    in the payment database, `sandbox_ledger`, shared by every payment process), as dicts."""
    return [asdict(entry) for entry in await SandboxProvider(db).entries()]


def audit_entries(
    entries: list[dict[str, Any]], orders: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """The processor's ledger against the orders: what it captured for each order equals the
    order's total when CONFIRMED and nothing otherwise (refunds are entries of their own); every
    authorization of an order that did not end CONFIRMED was voided, and any authorization of a
    CONFIRMED order was either captured or voided; no authorization refunded above its capture."""
    by_auth: dict[str, dict[str, int]] = defaultdict(Counter)
    payment_of: dict[str, str] = {}
    captured: Counter[str] = Counter()
    for entry in entries:
        auth = entry["authorization_id"]
        by_auth[auth][entry["operation"]] += entry["amount_cents"]
        by_auth[auth][f"{entry['operation']}s"] += 1
        payment_of[auth] = entry["payment_ref"]
        if entry["operation"] == "capture":
            captured[entry["payment_ref"]] += entry["amount_cents"]
    confirmed = {o: doc for o, doc in orders.items() if doc["status"] == "CONFIRMED"}
    capture_mismatches = [
        f"{o}: {orders[o]['status'] if o in orders else 'unknown order'}"
        f" {orders.get(o, {}).get('total_cents')}, captured {captured[o]}"
        for o in sorted(set(confirmed) | set(captured))
        if captured[o] != (confirmed[o]["total_cents"] if o in confirmed else 0)
    ]
    not_voided = [
        f"{order_id}: {orders.get(order_id, {}).get('status', 'unknown')}, {auth} {dict(done)}"
        for auth, done in sorted(by_auth.items())
        for order_id in [payment_of[auth]]
        if done["authorizes"]
        and not done["voids"]
        and (order_id not in confirmed or not done["captures"])
    ]
    refunds_above_capture = [
        f"{payment_of[auth]}: {auth} refunded {done['refund']} of {done['capture']}"
        for auth, done in sorted(by_auth.items())
        if done["refund"] > done["capture"]
    ]
    return {
        "capture_mismatches": capture_mismatches,
        "authorizations_not_voided": not_voided,
        "refunds_above_capture": refunds_above_capture,
        "captured_cents": sum(captured.values()),
        "confirmed_total_cents": sum(doc["total_cents"] for doc in confirmed.values()),
        "entries": len(entries),
    }


async def audit_ledger(
    system: System, orders: dict[str, dict[str, Any]], settle: float = 60.0
) -> dict[str, Any]:
    """`audit_entries` on the ledger the sandbox keeps in the payment database, read again
    until it holds (a void follows the order's end)."""
    client: AsyncMongoClient[Any] = AsyncMongoClient(system.mongo_url_of("payment"))
    deadline = time.monotonic() + settle
    try:
        while True:
            audit = audit_entries(await ledger_entries(client[system.database("payment")]), orders)
            problems = [v for v in audit.values() if isinstance(v, list) and v]
            if not problems or time.monotonic() > deadline:
                return audit
            await asyncio.sleep(2)
    finally:
        await client.close()


def audit_returns(events: list[dict[str, Any]], returns: list[dict[str, Any]]) -> dict[str, Any]:
    """What the bus says of each return, against its status (events counted once per id: a
    re-published copy keeps its original's id, a second refund would have its own)."""
    distinct = {e["id"]: e for e in events if "id" in e and "data" in e}.values()
    captured: Counter[str] = Counter()
    refunded: Counter[str] = Counter()
    paid: dict[str, list[int]] = defaultdict(list)
    failed: Counter[str] = Counter()
    restocked: Counter[str] = Counter()
    for event in distinct:
        data = event["data"]
        if event["type"] == "PaymentCaptured":
            captured[data["orderId"]] += data["amountCents"]
        elif event["type"] == "PaymentRefunded":
            refunded[data["orderId"]] += data["amountCents"]
            paid[data.get("returnId") or ""].append(data["amountCents"])
        elif event["type"] == "PaymentRefundFailed":
            failed[data.get("returnId") or ""] += 1
        elif event["type"] == "StockReturned":
            restocked[data["returnId"]] += 1
    known = {r["returnId"] for r in returns}
    not_refunded_once = [f"refunds for unknown returns {r}" for r in set(paid) - known]
    not_restocked_once = [f"restocks for unknown returns {r}" for r in set(restocked) - known]
    for item in returns:
        return_id, status = item["returnId"], item["status"]
        wanted = [item["refundCents"]] if status == "REFUNDED" else []
        if status == "RECEIVED":  # payment has not answered (yet)
            not_refunded_once.append(f"{return_id}: RECEIVED, never answered")
        elif paid.get(return_id, []) != wanted or failed[return_id] > (status == "REFUND_FAILED"):
            not_refunded_once.append(
                f"{return_id}: {status} {item['refundCents']}, refunded {paid.get(return_id)},"
                f" {failed[return_id]} refusals"
            )
        if restocked[return_id] != (status in RECEIVED):
            not_restocked_once.append(f"{return_id}: {status}, {restocked[return_id]} restocks")
    return {
        "refunds_above_capture": [
            f"{o}: refunded {refunded[o]} of {captured[o]}"
            for o in sorted(refunded)
            if refunded[o] > captured[o]
        ],
        "returns_not_refunded_once": not_refunded_once,
        "returns_not_restocked_once": not_restocked_once,
    }


FIGURES = (
    "submitted",
    "terminal",
    "stuck",
    "lost",
    "conservation_violations",
    "captured_without_confirmed",
    "double_captures",
    "duplicate_notifications",
    "unexpected_dead_letters",
    "expected_dead_letters",
    "confirmed_not_captured",
    "shipment_violations",
    "refunds_above_capture",
    "returns_not_refunded_once",
    "returns_not_restocked_once",
    "poison_not_dead_lettered",
    "ledger_capture_mismatches",
    "authorizations_not_voided",
    "ledger_refunds_above_capture",
    "off_branch",
    "ledger_captured_cents",
    "confirmed_total_cents",
    "fulfilled",
    "returns_received",
)
MUST_BE_ZERO = (
    "stuck",
    "lost",
    "conservation_violations",
    "captured_without_confirmed",
    "double_captures",
    "duplicate_notifications",
    "unexpected_dead_letters",
    "confirmed_not_captured",
    "shipment_violations",
    "refunds_above_capture",
    "returns_not_refunded_once",
    "returns_not_restocked_once",
    "poison_not_dead_lettered",
    "ledger_capture_mismatches",
    "authorizations_not_voided",
    "ledger_refunds_above_capture",
    "off_branch",
)


# The longest a scenario's window waits past the recovery for its orders.
WINDOW_CAP_SECONDS = 60.0
# What each form asks of its load: orders in flight during the faults (the driver holds a few
# more), the fewest orders placed within each scenario's window, the longest the load may take
# to reach its orders in flight before the first fault (the long form's placements wait their
# turn for order's transactions on a loaded machine), and how long a customer or manager takes
# over a wait before answering it.
# Orders in flight = placements per second x seconds an order lives (Little's law). The long
# form places at most about 1.7 orders/s on the 2-core machine (order's transactions run one at
# a time on the embedded server), and an order answered at once lives about 45 s: 80 in flight.
# Customers and managers who take 100 s over a decision, a failed payment or a review (as in a
# sale, where they take minutes) keep 200 in flight with the branch mix unchanged; the orders
# they leave waiting hold stock and authorizations through every fault. The short form's take
# 10 s: with one Mongo per service an order answered at once ends too fast to keep 30 in
# flight on a quiet machine (the ramp ran out its 120 s at 21), and 10 s reach 30 in seconds.
LOAD = {
    "short": {"in_flight": 30, "window_orders": 5, "ramp_cap_seconds": 120, "think_seconds": 10},
    "long": {"in_flight": 200, "window_orders": 10, "ramp_cap_seconds": 240, "think_seconds": 100},
}


def verdict(report: dict[str, Any]) -> list[str]:
    """Why the run does not prove what it should (empty: it passed). A run fails on any
    must-be-zero figure, on less load than it asked for (orders submitted, orders in flight, a
    scenario's window with fewer orders than `window_orders`, or none), on orders not all
    terminal, on any placement that failed, on poison that did not reach a DLQ, on a fault that
    was not injected, on nothing fulfilled or returned, and on any order that ended where its
    branch does not (`BRANCH_OUTCOMES`)."""
    figures = report.get("figures")
    if not figures:
        return [f"no figures: {report.get('error', 'the run stopped before the checker')}"]
    load = report["load"]
    problems = [f"{n} = {figures[n]}" for n in MUST_BE_ZERO if figures[n]]
    if figures["submitted"] < load["in_flight"]:
        problems.append(f"submitted {figures['submitted']} < {load['in_flight']}")
    if figures["max_in_flight"] < load["in_flight"]:
        problems.append(f"max_in_flight {figures['max_in_flight']} < {load['in_flight']}")
    if figures["terminal"] != figures["submitted"]:
        problems.append(f"terminal {figures['terminal']} != submitted {figures['submitted']}")
    if figures["place_failures"]:
        problems.append(f"place_failures = {figures['place_failures']}")
    if figures["poison_injected"] and figures["expected_dead_letters"] < 1:
        problems.append("no poison message reached a DLQ")
    if not figures["fulfilled"] or not figures["returns_received"]:
        problems.append(
            f"fulfilled {figures['fulfilled']}, returns received {figures['returns_received']}"
        )
    problems += [
        f"{branch}: {count} ended {outcome}, allowed {sorted(BRANCH_OUTCOMES.get(branch, []))}"
        for branch, outcome, count in off_branch(figures.get("by_branch", {}))
    ]
    if not report["scenarios"]:
        problems.append("no scenario ran")
    for s in report["scenarios"]:
        if s["orders_during"] < load["window_orders"]:
            problems.append(
                f"{s['name']}: {s['orders_during']} orders in its window < {load['window_orders']}"
            )
        if not s["ok"]:
            problems.append(f"{s['name']}: not ok {s['detail']}")
    return problems


def off_branch(by_branch: dict[str, dict[str, int]]) -> list[tuple[str, str, int]]:
    """(branch, outcome, orders) for each outcome outside its branch's `BRANCH_OUTCOMES` (a
    branch the table does not know may end nowhere)."""
    return [
        (branch, outcome, count)
        for branch, outcomes in sorted(by_branch.items())
        for outcome, count in sorted(outcomes.items())
        if outcome not in BRANCH_OUTCOMES.get(branch, frozenset())
    ]


def table(report: dict[str, Any]) -> str:
    load = report["load"]
    lines = [
        f"chaos ({report['mode']}): {report['seconds']:.0f} s, {load['in_flight']} orders in"
        f" flight asked (the driver holds {load['hold']}), {load['window_orders']} orders"
        " per scenario window at least"
    ]
    lines.append(f"{'scenario':<40} {'s':>6} {'orders':>7} {'flight':>9}  ok  detail")
    for s in report["scenarios"]:
        detail = json.dumps(s["detail"], separators=(",", ":"))[:60]
        ok = "yes" if s["ok"] else "NO"
        flight = f"{s['in_flight']['min']}-{s['in_flight']['max']}"
        lines.append(
            f"{s['name']:<40} {s['seconds']:>6.1f} {s['orders_during']:>7} {flight:>9}"
            f"  {ok:<3} {detail}"
        )
    lines.append("")
    lines.append(f"{'figure':<30} {'value':>10}  expected")
    figures = report.get("figures", {})
    for name in FIGURES if figures else ():
        expected = "0" if name in MUST_BE_ZERO else ""
        expected = {
            "terminal": "= submitted",
            "submitted": f">= {load['in_flight']}",
            "expected_dead_letters": "poison only",
            "ledger_captured_cents": "= confirmed_total_cents",
        }.get(name, expected)
        lines.append(f"{name:<30} {figures[name]:>10}  {expected}")
    if figures:
        lines.append(f"by status: {figures['by_status']}")
        lines.append(f"returns by status: {figures['returns_by_status']}")
        lines.append(f"outcomes: {figures['by_outcome']}")
        lines += [f"  {b}: {o}" for b, o in figures.get("by_branch", {}).items()]
        lines.append(f"max orders in flight: {figures['max_in_flight']} (>= {load['in_flight']})")
        lines.append(
            "placement tries retried with their key (timeout, 5xx): "
            f"{figures['place_retries']}; place failures: {figures['place_failures']}"
        )
    problems = report.get("verdict", [])
    lines.append("verdict: " + ("PASS" if not problems else "FAIL"))
    lines += [f"  - {p}" for p in problems]
    return "\n".join(lines)


def say(text: str) -> None:
    print(f"chaos {time.strftime('%H:%M:%S')} {text}", file=sys.stderr, flush=True)


async def run(amqp_url: str, *, long: bool, in_flight: int | None = None) -> dict[str, Any]:
    started = time.monotonic()
    run_dir = Path(tempfile.mkdtemp(prefix="chaos-"))
    system = System(run_dir=run_dir, amqp_url=amqp_url)
    mode = "long" if long else "short"
    load: dict[str, Any] = dict(LOAD[mode])
    if in_flight is not None:
        load["in_flight"] = in_flight
    report: dict[str, Any] = {"mode": mode, "load": load, "scenarios": []}
    try:
        say(f"starting the shop in {run_dir}")
        await system.up()
        say("shop ready")
        shop = Shop(system)
        try:
            await shop.open()
            driver = Driver(shop, load["in_flight"], think=load["think_seconds"])
            load["hold"] = driver.hold
            await driver.prepare()
            say(f"{sum(map(len, driver.customers.values()))} customers ready")
            faults = Faults(system, shop, driver)
            driver.start()
            # Load first: the orders in flight the form asks for before the first fault.
            ramp = time.monotonic() + load["ramp_cap_seconds"]
            while driver.in_flight_max < load["in_flight"] and time.monotonic() < ramp:
                await asyncio.sleep(0.5)
            say(f"{driver.in_flight_max} orders in flight ({len(driver.placed)} placed)")
            load["ramp_seconds"] = round(time.monotonic() - started, 1)
            done: list[Scenario] = []
            for name, fault, inject in scenarios(faults, long):
                say(f"fault {name}: {fault} ({driver.in_flight} open)")
                scenario = Scenario(name, fault, started=time.monotonic())
                try:
                    scenario.detail = await inject()
                except Exception as exc:  # noqa: BLE001 - a fault that could not be injected
                    scenario.ok = False
                    scenario.detail = {"error": repr(exc)}
                await asyncio.sleep(4 if long else 3)  # orders in flight across the recovery
                # The window stays open until it holds its orders (placed as others end).
                cap = time.monotonic() + WINDOW_CAP_SECONDS
                while (
                    driver.placed_between(scenario.started, time.monotonic())
                    < load["window_orders"]
                    and time.monotonic() < cap
                ):
                    await asyncio.sleep(0.5)
                scenario.seconds = time.monotonic() - scenario.started
                end = scenario.started + scenario.seconds
                scenario.orders_during = driver.placed_between(scenario.started, end)
                scenario.in_flight = driver.in_flight_between(scenario.started, end)
                done.append(scenario)
            report["scenarios"] = scenario_rows(done)  # kept should the checker fail
            say(f"faults done; {len(driver.placed)} orders placed; letting them finish")
            await driver.stop(timeout=max(240.0, 2.0 * driver.hold))
            say("checking invariants")
            figures = await check(system, shop, driver, faults)
            for scenario in done:
                end = scenario.started + scenario.seconds
                window = [
                    p for p in driver.placed.values() if scenario.started <= p.placed_at <= end
                ]
                scenario.detail["terminal"] = sum(1 for p in window if p.status in TERMINAL)
                # A window without an order proves nothing (no `all([])`).
                scenario.ok = (
                    scenario.ok
                    and bool(window)
                    and all(p.status in TERMINAL for p in window)
                    and not fault_missed(scenario.detail)
                )
            report["scenarios"] = scenario_rows(done)
            report["figures"] = figures
            report["restarts"] = system.restarts
        finally:
            await shop.close()
    except Exception as exc:
        report["error"] = repr(exc)
        raise
    finally:
        system.down()
        with contextlib.suppress(Exception):
            await system.delete_broker_state()
        report["seconds"] = time.monotonic() - started
        report["run_dir"] = str(run_dir)
        for name in FIGURES:
            report[name] = report.get("figures", {}).get(name)
        report["max_in_flight"] = report.get("figures", {}).get("max_in_flight")
        report.setdefault("load", load)
        report["verdict"] = verdict(report)
        report["ok"] = not report["verdict"]
        REPORT.parent.mkdir(parents=True, exist_ok=True)
        REPORT.write_text(json.dumps(report, indent=2, default=str) + "\n")
    return report


def scenario_rows(done: list[Scenario]) -> list[dict[str, Any]]:
    return [{k: v for k, v in s.__dict__.items() if k != "started"} for s in done]


def fault_missed(detail: dict[str, Any]) -> bool:
    """A fault that did not happen: an armed crash that never fired, a broker that closed none
    of the system's connections."""
    return detail.get("died_there") is False or detail.get("closed") == []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="The fault suite (make chaos).")
    parser.add_argument("--long", action="store_true", help="every fault (a few minutes)")
    parser.add_argument(
        "--in-flight",
        type=int,
        default=None,
        help=f"orders in flight to hold (default {LOAD['short']['in_flight']},"
        f" --long {LOAD['long']['in_flight']})",
    )
    parser.add_argument("--amqp-url", default="amqp://guest:guest@127.0.0.1:5672/")
    args = parser.parse_args(argv)
    if not can_drop_connections():
        print("chaos: rabbitmqctl is needed for the broker faults", file=sys.stderr)
        return 2
    report = asyncio.run(run(args.amqp_url, long=args.long, in_flight=args.in_flight))
    print(table(report))
    print(f"report: {REPORT}")
    return 1 if report["verdict"] else 0


if __name__ == "__main__":
    sys.exit(main())
