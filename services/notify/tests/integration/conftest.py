"""A running notify service (real Mongo, real broker, its own SMTP sink) for integration tests."""

from __future__ import annotations

import asyncio
import secrets
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from notify_service.bootstrap import Deps, bootstrap
from notify_service.channels import SandboxProvider, Sender, SmtpEmailSender
from notify_service.main import create_app
from notify_service.settings import NotifySettings
from pymongo import monitoring

from bus import AmqpPublisher, BusConfig, BusConnection, delete_topology
from contracts import Envelope
from devkit.bus_testing import Probe, eventually
from devkit.smtp_sink import MailSink
from kit.auth import SigningKey, issue_access_token, use_static_keys
from kit.mongo import connect
from kit.tracing_clients import MongoCommandTracer


@pytest.fixture(scope="session")
def signing_key() -> SigningKey:
    return SigningKey.generate()


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
