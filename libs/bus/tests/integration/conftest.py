"""Fixtures for bus integration tests: per-test service names, a connection, a database."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from bus import BusConfig, BusConnection, delete_topology
from bus.topology import Names

type MakeConfig = Callable[..., BusConfig]


@pytest.fixture(scope="session", autouse=True)
def _delete_exchanges(run_prefix: str, amqp_url: str) -> Iterator[None]:
    """Delete this run's shared exchanges once every test is done."""
    yield

    async def delete() -> None:
        connection = BusConnection(amqp_url, name=f"{run_prefix}cleanup")
        try:
            channel = await connection.channel()
            names = Names.of(BusConfig(service="cleanup", prefix=run_prefix))
            await channel.exchange_delete(names.exchange)
            await channel.exchange_delete(names.dlx)
        finally:
            await connection.close()

    asyncio.run(delete())


@pytest.fixture
async def make_config(run_prefix: str, amqp_url: str) -> AsyncIterator[MakeConfig]:
    """Build configs with short delays and a unique service name; delete their queues after."""
    made: list[BusConfig] = []

    def make(**overrides: Any) -> BusConfig:
        settings: dict[str, Any] = {
            "service": f"bus{secrets.token_hex(3)}",
            "amqp_url": amqp_url,
            "prefix": run_prefix,
            "retry_delays": (0.2, 0.5),
            "lease_seconds": 2.0,
            "relay_poll_interval": 0.05,
            "reconnect_interval": 0.3,
        }
        settings.update(overrides)
        config = BusConfig(**settings)
        made.append(config)
        return config

    yield make

    connection = BusConnection(amqp_url, name=f"{run_prefix}cleanup")
    try:
        channel = await connection.channel()
        for config in made:
            await delete_topology(channel, config)
    finally:
        await connection.close()


@pytest.fixture
async def connection(run_prefix: str, amqp_url: str) -> AsyncIterator[BusConnection]:
    """A robust connection with a unique name (so a test can have the broker drop it)."""
    conn = BusConnection(
        amqp_url, name=f"{run_prefix}test-{secrets.token_hex(4)}", reconnect_interval=0.3
    )
    await conn.connect()
    try:
        yield conn
    finally:
        await conn.close()


@pytest.fixture
async def db(
    mongo_client: AsyncMongoClient[Any], db_name: str
) -> AsyncIterator[AsyncDatabase[Any]]:
    """A database of its own for the test, dropped at the end."""
    yield mongo_client[db_name]
    await mongo_client.drop_database(db_name)


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    """An in-memory exporter on the global SDK tracer provider (installed once per process)."""
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    return memory
