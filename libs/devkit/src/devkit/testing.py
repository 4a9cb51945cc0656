# mypy: disable-error-code="unused-ignore"
"""The pytest plugin (the root conftest registers it): a real broker and a real MongoDB-protocol
server for tests.

Order of preference (architecture.md, "Where it runs"): testcontainers when a Docker engine
answers; else `AMQP_URL` / the local RabbitMQ and `MONGO_URL`; else an embedded mongoeco server
started as a subprocess for the session. Each test run gets its own name prefix for exchanges and
queues, and each test its own database, so runs never see each other's messages or rows.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack, asynccontextmanager
from typing import Any

import pytest
import uvicorn
from pymongo import AsyncMongoClient
from starlette.types import ASGIApp

DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"

# Every service a test starts in this process reads the same internal credential (kit.internal),
# as the runner gives every child the same one.
os.environ.setdefault("INTERNAL_TOKEN", secrets.token_urlsafe(24))


def docker_answers() -> bool:
    """True when a Docker engine is reachable (the client alone is not enough)."""
    if os.environ.get("SHOP_TESTS_NO_DOCKER"):
        return False
    try:
        import docker  # type: ignore[import-untyped]

        docker.from_env(timeout=2).ping()
    except Exception:
        return False
    return True


class EmbeddedMongo:
    """A mongoeco server in a child process; stopped when the test session ends."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "devkit.embedded_mongo", "--port", "0"],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline().strip()
        if not line.startswith("READY "):
            self.process.kill()
            raise RuntimeError(f"embedded Mongo did not start: {line!r}")
        self.url = line.removeprefix("READY ")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()


@pytest.fixture(scope="session")
def _containers() -> Iterator[dict[str, str]]:
    urls: dict[str, str] = {}
    with ExitStack() as stack:
        if docker_answers() and not (os.environ.get("AMQP_URL") and os.environ.get("MONGO_URL")):
            from testcontainers.mongodb import MongoDbContainer  # type: ignore[import-untyped]
            from testcontainers.rabbitmq import RabbitMqContainer  # type: ignore[import-untyped]

            rabbit = stack.enter_context(RabbitMqContainer("rabbitmq:3.13-management"))
            urls["amqp"] = (
                f"amqp://guest:guest@{rabbit.get_container_host_ip()}:"
                f"{rabbit.get_exposed_port(5672)}/"
            )
            mongo = stack.enter_context(MongoDbContainer("mongo:7.0").with_command("--replSet rs0"))
            urls["mongo"] = mongo.get_connection_url() + "/?directConnection=true"
        yield urls


@pytest.fixture(scope="session")
def amqp_url(_containers: dict[str, str]) -> str:
    """The broker for this test session."""
    return os.environ.get("AMQP_URL") or _containers.get("amqp") or DEFAULT_AMQP_URL


@pytest.fixture(scope="session")
def mongo_url(_containers: dict[str, str]) -> Iterator[str]:
    """The MongoDB-protocol server for this test session."""
    url = os.environ.get("MONGO_URL") or _containers.get("mongo")
    if url:
        yield url
        return
    server = EmbeddedMongo()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def mongo_is_embedded(_containers: dict[str, str]) -> bool:
    """True when `mongo_url` is the embedded server (not MONGO_URL, not a container): it treats
    any two overlapping write transactions on the whole server as a conflict (kit.transactions),
    unlike a real MongoDB's document-level conflicts."""
    return not (os.environ.get("MONGO_URL") or _containers.get("mongo"))


@pytest.fixture(scope="session")
def run_prefix() -> str:
    """A prefix for exchange and queue names that is unique to this test session."""
    return f"t{secrets.token_hex(4)}."


@pytest.fixture
def db_name(request: pytest.FixtureRequest) -> str:
    """A database name unique to this test."""
    return f"t_{request.node.name[:30]}_{secrets.token_hex(4)}".replace("[", "_").replace("]", "_")


@pytest.fixture
async def mongo_client(mongo_url: str) -> AsyncIterator[AsyncMongoClient[Any]]:
    client: AsyncMongoClient[Any] = AsyncMongoClient(mongo_url, tz_aware=True)
    try:
        yield client
    finally:
        await client.close()


def free_port() -> int:
    """A port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@asynccontextmanager
async def serving(app: ASGIApp, port: int | None = None) -> AsyncIterator[str]:
    """Serve `app` (lifespan included) until the block ends; yields its base URL."""
    port = port or free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", lifespan="on", proxy_headers=False
    )
    async with serving_config(config) as url:
        yield url


@asynccontextmanager
async def serving_config(config: uvicorn.Config) -> AsyncIterator[str]:
    """Run a uvicorn server of `config` in this loop until the block ends; yields its URL."""
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("server stopped before it started")
            await asyncio.sleep(0.02)
        yield f"http://{config.host}:{config.port}"
    finally:
        server.should_exit = True
        await task
