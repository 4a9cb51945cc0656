"""Running the user service in-process against the real broker and Mongo (service and e2e tests;
was `user_service.testing`)."""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import FastAPI
from user_service.bootstrap import Deps
from user_service.main import create_app
from user_service.settings import UserSettings

from bus import BusConnection, delete_topology
from bus.runtime import bus_config
from devkit.bus_testing import Probe

# Far below OWASP's minimum, for speed: allowed with SHOP_ENV=test only (settings refuse it else).
FAST_ARGON2: dict[str, Any] = {
    "argon2_time_cost": 1,
    "argon2_memory_kib": 1024,
    "argon2_parallelism": 1,
}


def service_settings(
    mongo_url: str, amqp_url: str, run_prefix: str, **overrides: Any
) -> UserSettings:
    """Settings with a database and broker prefix of their own and cheap password hashing."""
    tag = secrets.token_hex(4)
    values: dict[str, Any] = {
        "env": "test",
        "mongo_url": mongo_url,
        "amqp_url": amqp_url,
        "bus_prefix": f"{run_prefix}{tag}.",
        "db_prefix": f"t{tag}_",
        "bus_retry_delays": (0.2,),
        "bus_max_attempts": 2,
        **FAST_ARGON2,
        **overrides,
    }
    return UserSettings(**values)


@dataclass
class RunningUser:
    """The app, its deps, an ASGI client and a probe on every `user.*` event."""

    app: FastAPI
    deps: Deps
    client: httpx.AsyncClient
    probe: Probe
    connection: BusConnection

    def events(self, type_: str) -> list[dict[str, Any]]:
        """Bodies of the recorded envelopes of `type_`, in arrival order."""
        return [json.loads(m.body) for m in self.probe.messages if m.type == type_]


@asynccontextmanager
async def running_user_service(settings: UserSettings) -> AsyncIterator[RunningUser]:
    """Start the app (lifespan included), yield it, then drop its database and queues."""
    app = create_app(settings)
    connection = BusConnection(settings.amqp_url, name="user-test-probe")
    config = bus_config(settings)
    channel = await connection.channel()
    probe = await Probe.bind(channel, config, "user.#", "access.denied")
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
            async with httpx.AsyncClient(transport=transport, base_url="http://user") as client:
                deps: Deps = app.state.deps
                yield RunningUser(app, deps, client, probe, connection)
                await deps.mongo.drop_database(deps.db.name)
    finally:
        cleanup = await connection.channel()
        # The prefix is this test's own: its exchanges go too.
        await delete_topology(cleanup, config, exchanges=True)
        await connection.close()
