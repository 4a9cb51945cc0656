"""A running analytics service (real Mongo, real broker) for integration tests."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from analytics_service.bootstrap import Deps
from analytics_service.main import create_app
from analytics_service.settings import AnalyticsSettings

from bus import AmqpPublisher, BusConfig, BusConnection, delete_topology
from contracts import Envelope
from kit.auth import SigningKey, issue_access_token, use_static_keys


@pytest.fixture(scope="session")
def signing_key() -> SigningKey:
    return SigningKey.generate()


@dataclass
class AnalyticsHarness:
    """The service, a way to publish to its exchange, and an HTTP client."""

    deps: Deps
    publisher: AmqpPublisher
    client: httpx.AsyncClient
    key: SigningKey
    config: BusConfig
    connection: BusConnection

    async def publish(self, *envelopes: Envelope[Any]) -> None:
        for envelope in envelopes:
            await self.publisher.publish(envelope)

    def headers(self, user_id: str, role: str = "Customer") -> dict[str, str]:
        token = issue_access_token(self.key, user_id, role, "shop-user", "shop")
        return {"authorization": f"Bearer {token}"}

    async def get(self, path: str, role: str = "Admin", user: str = "admin", **params: Any) -> Any:
        response = await self.client.get(path, params=params, headers=self.headers(user, role))
        assert response.status_code == 200, response.text
        return response.json()


@pytest.fixture
async def analytics(
    mongo_url: str, amqp_url: str, run_prefix: str, signing_key: SigningKey
) -> AsyncIterator[AnalyticsHarness]:
    """Start analytics with a per-test bus prefix and database; tear it all down after."""
    prefix = f"{run_prefix}a{secrets.token_hex(3)}."
    settings = AnalyticsSettings(
        mongo_url=mongo_url,
        db_prefix=prefix.replace(".", "_"),
        amqp_url=amqp_url,
        bus_prefix=prefix,
        bus_retry_delays=(0.2, 0.5),
    )
    app = create_app(settings)
    use_static_keys(app, signing_key)
    config = BusConfig(
        service="analytics", amqp_url=amqp_url, prefix=prefix, retry_delays=(0.2, 0.5)
    )
    connection = BusConnection(amqp_url, name=f"{prefix}test")
    await connection.connect()
    publisher = AmqpPublisher(connection, config)
    async with app.router.lifespan_context(app):
        deps: Deps = app.state.deps
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://analytics") as client:
            yield AnalyticsHarness(deps, publisher, client, signing_key, config, connection)
        await deps.mongo.drop_database(deps.db.name)
    await publisher.close()
    channel = await connection.channel()
    await delete_topology(channel, config, exchanges=True)
    await connection.close()
