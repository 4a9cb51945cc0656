"""An event published before its consumer ever started is kept: a service declares, at its own
start, the queues of the services that consume what it publishes (contracts.catalogue)."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from bus import BusConfig, BusConnection, ServiceBus
from bus.topology import peer_bindings
from contracts import Envelope
from contracts.user import UserRegistered
from devkit.bus_testing import eventually

pytestmark = pytest.mark.integration


async def test_the_first_event_waits_for_a_consumer_that_never_started(
    make_config: Callable[..., BusConfig],
    mongo_client: AsyncMongoClient[Any],
    db: AsyncDatabase[Any],
    connection: BusConnection,
    run_prefix: str,
) -> None:
    prefix = f"{run_prefix}{secrets.token_hex(3)}."
    config = make_config(service="user", prefix=prefix)
    # Who consumes the user service's events (the inventory service consumes none of them).
    assert sorted(peer_bindings("user")) == ["analytics", "notify", "order"]
    peers = [f"{prefix}{service}.events" for service in peer_bindings("user")]
    bus = ServiceBus(config, {}, mongo_client, db, connection=connection)
    channel = await connection.channel()
    try:
        await bus.start()
        registered = UserRegistered(user_id="u1", username="ann", email="ann@example.com")
        await bus.publisher.publish(Envelope.wrap(registered, correlation_id="u1"))

        async def kept_for_every_consumer() -> bool:
            counts = []
            for service in ("order", "notify", "analytics"):
                queue = await channel.declare_queue(f"{prefix}{service}.events", passive=True)
                counts.append(queue.declaration_result.message_count)
            return counts == [1, 1, 1]

        await eventually(kept_for_every_consumer, what="UserRegistered kept for its consumers")
    finally:
        await bus.stop()
        for name in peers:
            await channel.queue_delete(name)
        await channel.close()
