"""The pytest plugin (the root conftest registers it): a real broker and a real MongoDB-protocol
server for tests.

Where they come from (architecture.md, "Where it runs"; `devkit.containers` says how
`SHOP_TEST_CONTAINERS` chooses): MongoDB (a single-node replica set) and RabbitMQ containers,
as compose runs them; else `AMQP_URL` / the local RabbitMQ and `MONGO_URL`, else an embedded
mongoeco server started as a subprocess for the session. Each test run gets its own name prefix
for exchanges and queues, and each test its own database, so runs never see each other's
messages or rows.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import pytest
import uvicorn
from pymongo import AsyncMongoClient
from starlette.types import ASGIApp

from devkit import containers
from devkit.bus_testing import use_broker_ctl
from kit.settings import DEFAULT_AMQP_URL

# Every service a test starts in this process reads the same internal credential (kit.internal),
# as the runner gives every child the same one.
os.environ.setdefault("INTERNAL_TOKEN", secrets.token_urlsafe(24))


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
def _containers() -> Iterator[containers.Started | None]:
    """The session's containers, or None when it runs on the local broker and MONGO_URL / the
    embedded server."""
    if not containers.wanted(os.environ):
        yield None
        return
    with containers.started() as started:
        # Tests that make the broker drop a connection reach it inside its container.
        previous = use_broker_ctl(started.rabbitmqctl)
        try:
            yield started
        finally:
            use_broker_ctl(previous)


def session_amqp_url(started: containers.Started | None, environ: Mapping[str, str]) -> str:
    """The session's broker: the container's, else AMQP_URL, else the local one."""
    if started is not None:
        return started.amqp_url
    return environ.get("AMQP_URL") or DEFAULT_AMQP_URL


def session_mongo_url(started: containers.Started | None, environ: Mapping[str, str]) -> str | None:
    """The session's MongoDB: the container's, else MONGO_URL; None: the embedded server."""
    if started is not None:
        return started.mongo_url
    return environ.get("MONGO_URL") or None


@pytest.fixture(scope="session")
def amqp_url(_containers: containers.Started | None) -> str:
    """The broker for this test session."""
    return session_amqp_url(_containers, os.environ)


@pytest.fixture(scope="session")
def mongo_url(_containers: containers.Started | None) -> Iterator[str]:
    """The MongoDB-protocol server for this test session."""
    url = session_mongo_url(_containers, os.environ)
    if url:
        yield url
        return
    server = EmbeddedMongo()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def mongo_is_embedded(_containers: containers.Started | None) -> bool:
    """True when `mongo_url` is the embedded server (not MONGO_URL, not a container): it treats
    any two overlapping write transactions on the whole server as a conflict (kit.transactions),
    unlike a real MongoDB's document-level conflicts. What works around the embedded server
    follows it (devkit's README lists those workarounds)."""
    return session_mongo_url(_containers, os.environ) is None


@pytest.fixture(scope="session")
def run_prefix() -> str:
    """A prefix for exchange and queue names that is unique to this test session."""
    return f"t{secrets.token_hex(4)}."


@pytest.fixture
def db_name(request: pytest.FixtureRequest) -> str:
    """A database name unique to this test."""
    # MongoDB refuses `/\. "$*<>:|?` in a database name (a parametrized test's id may hold
    # them); the embedded server does not check.
    name = re.sub(r"[^A-Za-z0-9_-]", "_", request.node.name[:30])
    return f"t_{name}_{secrets.token_hex(4)}"


@pytest.fixture
async def mongo_client(mongo_url: str) -> AsyncIterator[AsyncMongoClient[Any]]:
    client: AsyncMongoClient[Any] = AsyncMongoClient(mongo_url, tz_aware=True)
    try:
        yield client
    finally:
        await client.close()


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (on `host`; "0.0.0.0": on every interface)."""
    with socket.socket() as s:
        s.bind((host, 0))
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
