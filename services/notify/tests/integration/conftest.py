"""Notify for integration tests: in memory (`in_memory`: its commands and handlers through
`InMemoryBus` on the embedded store, its worker driven by the test) or running (`notify`: real
Mongo, real broker, its own SMTP sink)."""

from __future__ import annotations

import asyncio
import secrets
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from notify_service.bootstrap import bootstrap
from notify_service.channels import SandboxProvider, Sender, SmtpEmailSender
from notify_service.deps import Deps
from notify_service.main import create_app
from notify_service.settings import NotifySettings
from notify_service.store import INDEXES
from pymongo import AsyncMongoClient, monitoring

from bus import AmqpPublisher, BusConfig, BusConnection, delete_topology
from bus.fake import InMemoryBus
from contracts import Envelope
from devkit.bus_testing import Probe, eventually
from devkit.smtp_sink import MailSink
from kit.auth import SigningKey, issue_access_token, use_static_keys
from kit.mongo import Doc, connect, ensure_indexes
from kit.tracing_clients import MongoCommandTracer


@pytest.fixture(scope="session")
def signing_key() -> SigningKey:
    return SigningKey.generate()


# ── in memory ────────────────────────────────────────────────────────────────────────────────


class MovableClock:
    """The services' clock (`deps.clock`), moved by the test."""

    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, 12, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class InMemoryNotify:
    """One notify process on the embedded store: its bus in memory, its channels recording.

    `handle(...)` publishes envelopes and runs the service's handlers on them (and on whatever
    they cause); `send()` runs one pass of its delivery worker, which the test drives instead
    of its background loop."""

    deps: Deps
    bus: InMemoryBus
    email: SandboxProvider
    sms: SandboxProvider
    push: SandboxProvider
    clock: MovableClock

    async def handle(self, *envelopes: Envelope[Any]) -> None:
        for envelope in envelopes:
            await self.bus.publish(envelope)
        await self.bus.deliver()

    async def send(self) -> None:
        await self.deps.worker.deliver_due()

    async def poll(self) -> None:
        """One fallback poll, whatever its timer says: claim and send every row nobody holds."""
        while await self.deps.worker.deliver_one():
            pass

    def emitted[E](self, cls: type[E]) -> list[E]:
        """The data of every `cls` event this process published."""
        return [e.data for e in self.bus.of_type(cls)]

    async def rows(self, **query: Any) -> list[Doc]:
        """Stored notifications matching `query`, in the order they were written."""
        cursor = self.deps.store.notifications.find(query).sort([("created_at", 1), ("_id", 1)])
        return await cursor.to_list()


type StartInMemory = Callable[..., Awaitable[InMemoryNotify]]


@pytest.fixture
async def start_in_memory(
    mongo_client: AsyncMongoClient[Any], db_name: str
) -> AsyncIterator[StartInMemory]:
    """Start notify processes on one fresh database (each a worker and an in-memory bus of its
    own, sharing `clock`); settings overridable by keyword. The database is dropped after."""
    clock = MovableClock()

    async def start(**overrides: Any) -> InMemoryNotify:
        values: dict[str, Any] = {
            "mongo_db": db_name,
            "public_base_url": "https://shop.test",
            "nudge_hold_seconds": 0.0,
            "delivery_retry_delays": (0.0,),
            "delivery_max_attempts": 3,
        }
        settings = NotifySettings(**(values | overrides))
        email, sms, push = (SandboxProvider(name, latency=0.0) for name in ("email", "sms", "push"))
        bus = InMemoryBus()
        senders: dict[str, Sender] = {"email": email, "sms": sms, "push": push}
        deps = bootstrap(settings, mongo=mongo_client, bus=bus, clock=clock, senders=senders)
        await ensure_indexes(deps.db, INDEXES)
        return InMemoryNotify(deps, bus, email, sms, push, clock)

    yield start
    await mongo_client.drop_database(db_name)


@pytest.fixture
async def in_memory(start_in_memory: StartInMemory) -> InMemoryNotify:
    """One notify process in memory."""
    return await start_in_memory()


# ── running ──────────────────────────────────────────────────────────────────────────────────


class Writes(monitoring.CommandListener):
    """The write commands the service's client sends, by (command, collection)."""

    def __init__(self, database: str) -> None:
        self.database = database
        self.counts: Counter[tuple[str, str]] = Counter()

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        name = event.command_name
        if event.database_name == self.database and name in ("insert", "update", "findAndModify"):
            self.counts[(name, str(event.command.get(name)))] += 1

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


@dataclass
class NotifyHarness:
    """The service, a way to publish to its exchange, its sink and providers, and a client."""

    deps: Deps
    publisher: AmqpPublisher
    sink: MailSink
    sms: SandboxProvider
    push: SandboxProvider
    client: httpx.AsyncClient
    key: SigningKey
    config: BusConfig
    connection: BusConnection
    writes: Writes
    probe: Probe

    async def publish(self, envelope: Envelope[Any]) -> None:
        await self.publisher.publish(envelope)

    async def emitted(self, event_type: str) -> list[Any]:
        """The data of every `event_type` notify published, once none waits in a row's outbox."""

        async def published() -> bool:
            waiting = {"outbox.0": {"$exists": True}}
            return await self.deps.store.notifications.count_documents(waiting) == 0

        await eventually(published, what="every outcome event published")
        await asyncio.sleep(0.2)  # on its way from the broker to the probe
        found = [Envelope.from_json(m.body) for m in self.probe.messages]
        return [e.data for e in found if e.type == event_type]

    def headers(self, user_id: str, role: str = "Customer") -> dict[str, str]:
        token = issue_access_token(self.key, user_id, role, "shop-user", "shop")
        return {"authorization": f"Bearer {token}"}


type StartNotify = Callable[..., AbstractAsyncContextManager[NotifyHarness]]


@pytest.fixture
def start_notify(
    mongo_url: str, amqp_url: str, run_prefix: str, signing_key: SigningKey
) -> StartNotify:
    """Start notify with a per-test bus prefix and database (settings overridable by keyword);
    tear it all down after."""

    @asynccontextmanager
    async def start(**overrides: Any) -> AsyncIterator[NotifyHarness]:
        sink = MailSink()
        smtp_port = await sink.start()
        prefix = f"{run_prefix}n{secrets.token_hex(3)}."
        values: dict[str, Any] = {
            "mongo_url": mongo_url,
            "db_prefix": prefix.replace(".", "_"),
            "amqp_url": amqp_url,
            "bus_prefix": prefix,
            "bus_retry_delays": (0.2, 0.5),
            "smtp_port": smtp_port,
            "delivery_retry_delays": (0.05, 0.1),
            "delivery_max_attempts": 3,
            # No test here may lean on the fallback poll: the hand-overs alone (a handler's
            # commit, a held row or a retry coming due) must deliver everything they wait for.
            "delivery_poll_seconds": 600.0,
            "nudge_hold_seconds": 0.3,
        }
        settings = NotifySettings(**(values | overrides))
        sms = SandboxProvider("sms", latency=0.001)
        push = SandboxProvider("push", latency=0.001)
        senders: dict[str, Sender] = {
            "email": SmtpEmailSender("127.0.0.1", smtp_port, settings.mail_from),
            "sms": sms,
            "push": push,
        }
        writes = Writes(settings.database_name)
        mongo = connect(settings, event_listeners=[MongoCommandTracer(), writes])
        app = create_app(
            settings, bootstrap_fn=lambda s: bootstrap(s, mongo=mongo, senders=senders)
        )
        use_static_keys(app, signing_key)
        config = BusConfig(
            service="notify", amqp_url=amqp_url, prefix=prefix, retry_delays=(0.2, 0.5)
        )
        connection = BusConnection(amqp_url, name=f"{prefix}test")
        await connection.connect()
        publisher = AmqpPublisher(connection, config)
        probe_channel = await connection.channel()
        probe = await Probe.bind(probe_channel, config, "notification.*")
        async with app.router.lifespan_context(app):
            deps: Deps = app.state.deps
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://notify") as client:
                yield NotifyHarness(
                    deps,
                    publisher,
                    sink,
                    sms,
                    push,
                    client,
                    signing_key,
                    config,
                    connection,
                    writes,
                    probe,
                )
            await deps.mongo.drop_database(deps.db.name)
        await publisher.close()
        channel = await connection.channel()
        await delete_topology(channel, config, exchanges=True)
        await connection.close()
        await sink.stop()

    return start


@pytest.fixture
async def notify(start_notify: StartNotify) -> AsyncIterator[NotifyHarness]:
    """Notify with the tests' settings."""
    async with start_notify() as harness:
        yield harness
