"""The payment service in-process on the real broker and Mongo, with the real user service.

The user service runs in-process too (its `testing` helper); payment reaches its internal
payment-method lookup through an ASGI transport. The sandbox provider is the only fake (the
outside world); tests read its ledger to see what was really charged.
"""

from __future__ import annotations

import secrets
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from payment_service.deps import Deps
from payment_service.main import create_app
from payment_service.provider import SandboxProvider
from payment_service.settings import PaymentSettings
from pymongo import monitoring
from user_service.testing import RunningUser, running_user_service, service_settings

from bus import AmqpPublisher, BusConnection, delete_topology
from bus.runtime import bus_config
from bus.testing import Probe
from contracts import Envelope
from kit.auth import use_static_keys

PASSWORD = "long-enough-pw"
TOKENS = ("pm_card_ok", "pm_card_declined", "pm_card_flaky", "pm_card_unavailable", "pm_card_fraud")


class Running:
    """A started payment app: deps, HTTP client, publisher, probe on `payment.#`, the sandbox."""

    def __init__(self, app: FastAPI, client: httpx.AsyncClient, provider: SandboxProvider) -> None:
        self.app = app
        self.http = client
        self.provider = provider
        self.publisher: AmqpPublisher | None = None
        self.probe: Probe | None = None
        self.user_id = ""
        self.methods: dict[str, str] = {}  # token → paymentMethodId of the test customer
        self.headers: dict[str, dict[str, str]] = {}  # role → Authorization of a real account

    @property
    def deps(self) -> Deps:
        deps: Deps = self.app.state.deps
        return deps

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
        provider = SandboxProvider()
        app = create_app(
            settings,
            provider=provider,
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
                running = Running(app, client, provider)
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
