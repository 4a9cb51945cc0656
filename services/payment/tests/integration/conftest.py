"""Two harnesses for the payment service.

`payments`: the service's commands and handlers on `bus.fake.InMemoryBus` and the embedded store
(`bootstrap(settings, mongo=..., bus=InMemoryBus())`), the user service's payment-method lookup
answered by a mock transport: milliseconds per test.

`start_payment`: the service in-process on the real broker and Mongo, with the real user service
(its `testing` helper) reached through an ASGI transport.

The sandbox provider is the only fake (the outside world); tests read its ledger to see what was
really charged.
"""

from __future__ import annotations

import secrets
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from payment_service.bootstrap import bootstrap
from payment_service.deps import Deps
from payment_service.main import create_app
from payment_service.provider import SANDBOX_INDEXES, Authorization, SandboxProvider
from payment_service.settings import PaymentSettings
from payment_service.store import INDEXES
from pymongo import AsyncMongoClient, monitoring

from bus import AmqpPublisher, BusConnection, delete_topology
from bus.fake import InMemoryBus
from bus.runtime import bus_config
from contracts import Envelope, Event
from contracts.order import OrderCancelled, OrderConfirmed, PaymentRequested, ReturnReceived
from contracts.types import Line, PricedLine
from devkit.bus_testing import Probe
from devkit.user_testing import RunningUser, running_user_service, service_settings
from kit.auth import use_static_keys
from kit.mongo import ensure_indexes

PASSWORD = "long-enough-pw"
TOKENS = ("pm_card_ok", "pm_card_declined", "pm_card_flaky", "pm_card_unavailable", "pm_card_fraud")
# Cards that charge normally and refund badly (the sandbox's refund behaviour).
REFUND_TOKENS = ("pm_card_refund_declined", "pm_card_refund_flaky", "pm_card_refund_unavailable")


class Running:
    """A started payment app: deps, HTTP client, publisher, probe on `payment.#`, the sandbox."""

    def __init__(self, app: FastAPI, client: httpx.AsyncClient) -> None:
        self.app = app
        self.http = client
        self.publisher: AmqpPublisher | None = None
        self.probe: Probe | None = None
        self.user_id = ""
        self.methods: dict[str, str] = {}  # token → paymentMethodId of the test customer
        self.headers: dict[str, dict[str, str]] = {}  # role → Authorization of a real account

    @property
    def deps(self) -> Deps:
        deps: Deps = self.app.state.deps
        return deps

    @property
    def provider(self) -> SandboxProvider:
        """The sandbox the service wired (its ledger in the service's database)."""
        assert isinstance(self.deps.provider, SandboxProvider)
        return self.deps.provider

    async def publish(self, envelope: Envelope[Any]) -> None:
        assert self.publisher is not None
        await self.publisher.publish(envelope)

    def emitted(self, event_type: str, order_id: str | None = None) -> list[dict[str, Any]]:
        """`data` of the events of `event_type` (for `order_id`) the probe saw, in order."""
        assert self.probe is not None
        found = [Envelope.from_json(m.body).to_wire() for m in self.probe.messages]
        return [
            e["data"]
            for e in found
            if e["type"] == event_type and (order_id is None or e["data"]["orderId"] == order_id)
        ]


type Start = Callable[..., AbstractAsyncContextManager[Running]]

WRITE_COMMANDS = frozenset({"insert", "update", "delete", "findAndModify"})


class Writes(monitoring.CommandListener):
    """Write commands sent to one database, by (collection, command): what a test watches.

    A PyMongo listener sees the commands of clients made after it was registered: it is
    registered once, at import, and counts nothing until a test names its database.
    """

    def __init__(self) -> None:
        self.database: str | None = None
        self.counts: Counter[tuple[str, str]] = Counter()

    def watch(self, database: str) -> None:
        self.database = database
        self.counts.clear()

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        name = event.command_name
        if event.database_name == self.database and name in WRITE_COMMANDS:
            self.counts[(str(event.command.get(name)), name)] += 1

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass

    def of(self, collection: str) -> dict[str, int]:
        """Commands by name sent to `collection`."""
        return {name: n for (coll, name), n in self.counts.items() if coll == collection}


WRITES = Writes()
monitoring.register(WRITES)


@pytest.fixture
def writes() -> Iterator[Writes]:
    yield WRITES
    WRITES.database = None


@pytest.fixture
async def user(mongo_url: str, amqp_url: str, run_prefix: str) -> AsyncIterator[RunningUser]:
    settings = service_settings(
        mongo_url,
        amqp_url,
        run_prefix,
        admin_email="root@example.com",
        admin_password=PASSWORD,
        manager_email="boss@example.com",
        manager_password=PASSWORD,
    )
    async with running_user_service(settings) as running:
        yield running


def bearer(access_token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {access_token}"}


async def login(user: RunningUser, email: str) -> dict[str, str]:
    response = await user.client.post(
        "/api/v1/users/login", json={"identifier": email, "password": PASSWORD}
    )
    assert response.status_code == 200, response.text
    return bearer(response.json()["accessToken"])


async def customer(user: RunningUser, name: str) -> tuple[str, dict[str, str], dict[str, str]]:
    """A registered customer holding every sandbox token: id, token → method id, its header."""
    response = await user.client.post(
        "/api/v1/users/register",
        json={"username": name, "email": f"{name}@example.com", "password": PASSWORD},
    )
    assert response.status_code == 201, response.text
    created = response.json()
    details = await user.client.post(
        "/api/v1/users/me/details",
        json={"paymentMethods": [{"type": "card", "token": t} for t in TOKENS]},
        headers=bearer(created["accessToken"]),
    )
    assert details.status_code == 200, details.text
    stored = await user.deps.db["users"].find_one({"_id": created["userId"]})
    assert stored is not None
    methods = {m["token"]: m["payment_method_id"] for m in stored["payment_methods"]}
    return created["userId"], methods, bearer(created["accessToken"])


@pytest.fixture
async def start_payment(
    user: RunningUser, mongo_url: str, amqp_url: str, run_prefix: str
) -> AsyncIterator[Start]:
    """Start the payment service with the real bus, a probe and a customer with every token."""

    @asynccontextmanager
    async def start(**overrides: Any) -> AsyncIterator[Running]:
        tag = secrets.token_hex(4)
        values: dict[str, Any] = {
            "mongo_url": mongo_url,
            "amqp_url": amqp_url,
            "db_prefix": f"t{tag}_",
            "bus_prefix": f"{run_prefix}{tag}.",
            "bus_retry_delays": (0.2,),
            "bus_max_attempts": 3,
            "backoff_base_seconds": 0.02,
            "backoff_cap_seconds": 0.1,
            "provider_latency_seconds": 0.0,
            **overrides,
        }
        settings = PaymentSettings(**values)
        app = create_app(
            settings,
            user_transport=httpx.ASGITransport(app=user.app),
        )
        # Tokens come from the real user service: trust its keys as the gateway's JWKS would.
        use_static_keys(app, *(user.deps.public_keys or (user.deps.signing_key,)))
        config = bus_config(settings)
        connection = BusConnection(amqp_url, name=f"{settings.bus_prefix}test")
        await connection.connect()
        try:
            async with (
                app.router.lifespan_context(app),
                httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=app), base_url="http://payment"
                ) as client,
            ):
                running = Running(app, client)
                running.publisher = AmqpPublisher(connection, config)
                running.probe = await Probe.bind(await connection.channel(), config, "payment.#")
                running.user_id, running.methods, mine = await customer(user, f"c{tag}")
                running.headers = {
                    "Customer": mine,
                    "Admin": await login(user, "root@example.com"),
                    "Manager": await login(user, "boss@example.com"),
                }
                try:
                    yield running
                finally:
                    await running.publisher.close()
                    await running.deps.mongo.drop_database(running.deps.db.name)
        finally:
            # The prefix is this test's own: its exchanges go too.
            await delete_topology(await connection.channel(), config, exchanges=True)
            await connection.close()

    yield start


# --- commands and handlers on the in-memory bus ----------------------------------------------

AMOUNT = 2500
CUSTOMER = "u-customer"
T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)


def method_id(token: str) -> str:
    """The test customer's payment method holding `token` (the lookup knows every test token)."""
    return f"pm-{token}"


def user_directory(user_id: str) -> httpx.MockTransport:
    """The user service's internal lookup for one customer, an old account holding every
    sandbox token; any other user or method is 404."""
    tokens = {method_id(t): t for t in (*TOKENS, *REFUND_TOKENS)}

    def answer(request: httpx.Request) -> httpx.Response:
        # /internal/users/{userId}/payment-methods/{paymentMethodId}
        _, _, _, user, _, method = request.url.path.split("/")
        if user != user_id or method not in tokens:
            return httpx.Response(404, json={"code": "PAYMENT_METHOD_NOT_FOUND"})
        created = (T0 - timedelta(days=365)).isoformat()
        return httpx.Response(200, json={"token": tokens[method], "accountCreatedAt": created})

    return httpx.MockTransport(answer)


class Clock:
    """A clock a test sets (deps.clock)."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class Interrupting(SandboxProvider):
    """The sandbox, awaiting `during()` once right after an authorization it granted (what
    commits while payment is calling), or failing the answer's way back once (`lose_answer`);
    awaiting `before_refund()` once before it carries out a refund."""

    during: Callable[[], Awaitable[object]] | None = None
    before_refund: Callable[[], Awaitable[object]] | None = None
    lose_answer = False

    async def refund(self, *, key: str, authorization_id: str, amount_cents: int) -> None:
        if self.before_refund is not None:
            before, self.before_refund = self.before_refund, None
            await before()
        await super().refund(key=key, authorization_id=authorization_id, amount_cents=amount_cents)

    async def authorize(
        self, *, key: str, payment_ref: str, token: str, amount_cents: int, currency: str
    ) -> Authorization:
        answer = await super().authorize(
            key=key,
            payment_ref=payment_ref,
            token=token,
            amount_cents=amount_cents,
            currency=currency,
        )
        if self.lose_answer:
            self.lose_answer = False
            raise ConnectionResetError("the processor's answer was lost")
        if self.during is not None:
            during, self.during = self.during, None
            await during()
        return answer


class Payments:
    """The wired service (`deps`), its in-memory bus, the sandbox, the clock; events to send."""

    def __init__(self, deps: Deps, bus: InMemoryBus, provider: Interrupting, clock: Clock) -> None:
        self.deps = deps
        self.bus = bus
        self.provider = provider
        self.clock = clock

    async def send(self, *envelopes: Envelope[Any]) -> None:
        """Publish and deliver, as the consumer would (the bus's inbox skips a repeat)."""
        for envelope in envelopes:
            await self.bus.publish(envelope)
        await self.bus.deliver()

    def emitted[E: Event](self, cls: type[E], order: str) -> list[E]:
        """The `cls` events the payment service published for `order`, in order."""
        return [e.data for e in self.bus.of_type(cls) if e.data.order_id == order]

    def types(self, order: str) -> list[str]:
        """The type of every event published for `order` other than those sent in."""
        sent = (
            "PaymentRequested",
            "OrderConfirmed",
            "OrderCancelled",
            "OrderRejected",
            "ReturnReceived",
        )
        return [
            e.type for e in self.bus.published if e.data.order_id == order and e.type not in sent
        ]

    async def payment(self, order: str) -> dict[str, Any]:
        payment = await self.deps.store.payment_for(order)
        assert payment is not None
        return payment


def requested(
    order: str,
    token: str,
    *,
    attempt: int = 1,
    review_passed: bool = False,
    amount: int = AMOUNT,
    method: str | None = None,
) -> Envelope[PaymentRequested]:
    event = PaymentRequested(
        order_id=order,
        user_id=CUSTOMER,
        amount_cents=amount,
        payment_method_id=method or method_id(token),
        attempt=attempt,
        review_passed=review_passed,
    )
    return Envelope.wrap(event, correlation_id=order)


def confirmed(order: str, total: int = AMOUNT) -> Envelope[OrderConfirmed]:
    event = OrderConfirmed(
        order_id=order,
        user_id=CUSTOMER,
        items=(PricedLine(product_id="p1", quantity=1, price_cents=total),),
        total_cents=total,
        payment_method_id=method_id("pm_card_ok"),
    )
    return Envelope.wrap(event, correlation_id=order)


def received(
    order: str, return_id: str, refund_cents: int, payment_id: str = "pay-unknown"
) -> Envelope[ReturnReceived]:
    """The order service's ReturnReceived for `return_id` (one unit of p1)."""
    event = ReturnReceived(
        return_id=return_id,
        order_id=order,
        user_id=CUSTOMER,
        lines=(Line(product_id="p1", quantity=1),),
        refund_cents=refund_cents,
        payment_id=payment_id,
    )
    return Envelope.wrap(event, correlation_id=order)


def cancelled(order: str, reason: str = "CUSTOMER") -> Envelope[OrderCancelled]:
    event = OrderCancelled(order_id=order, user_id=CUSTOMER, reason=reason)
    return Envelope.wrap(event, correlation_id=order)


type NewSandbox = Callable[[], Awaitable[SandboxProvider]]


@pytest.fixture
async def new_sandbox(
    mongo_client: AsyncMongoClient[Any], db_name: str
) -> AsyncIterator[NewSandbox]:
    """Sandboxes, each with its ledger in a database of its own (dropped after the test)."""
    made: list[str] = []

    async def make() -> SandboxProvider:
        name = f"{db_name}_{len(made)}"
        made.append(name)
        await ensure_indexes(mongo_client[name], SANDBOX_INDEXES)
        return SandboxProvider(mongo_client[name])

    yield make
    for name in made:
        await mongo_client.drop_database(name)


@pytest.fixture
async def payments(mongo_client: AsyncMongoClient[Any], db_name: str) -> AsyncIterator[Payments]:
    """The payment service's commands on the embedded store and an in-memory bus: no backoff,
    no provider latency, its own database."""
    settings = PaymentSettings(
        mongo_db=db_name,
        backoff_base_seconds=0.0,
        backoff_cap_seconds=0.0,
        provider_latency_seconds=0.0,
    )
    bus, provider, clock = InMemoryBus(), Interrupting(mongo_client[db_name]), Clock(T0)
    deps = bootstrap(
        settings,
        mongo=mongo_client,
        bus=bus,
        clock=clock,
        provider=provider,
        user_transport=user_directory(CUSTOMER),
    )
    await ensure_indexes(deps.db, [*INDEXES, *SANDBOX_INDEXES])
    try:
        yield Payments(deps, bus, provider, clock)
    finally:
        await deps.close()
        await mongo_client.drop_database(db_name)
