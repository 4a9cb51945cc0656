"""Helpers for tests that run against the real broker: polling, probe queues, dropped links
(was `bus.testing`)."""

from __future__ import annotations

import asyncio
import inspect
import os
import shutil
import time
from collections.abc import Awaitable, Callable

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue

from bus.config import BusConfig
from bus.connection import BusConnection
from bus.topology import Names, delete_topology
from devkit.containers import VARIABLE
from devkit.rabbit_node import RabbitNode


async def eventually(
    check: Callable[[], Awaitable[bool] | bool],
    *,
    timeout: float = 15.0,
    interval: float = 0.05,
    what: str = "condition",
) -> None:
    """Poll `check` (sync or async) until it is true, or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(interval)


class Probe:
    """A temporary queue bound to `shop.events` that records every message it receives."""

    def __init__(self, queue: AbstractQueue) -> None:
        self.queue = queue
        self.messages: list[AbstractIncomingMessage] = []

    @classmethod
    async def bind(
        cls, channel: AbstractChannel, config: BusConfig, *keys: str, durable: str | None = None
    ) -> Probe:
        """Declare an exclusive queue bound to `keys` and start recording.

        `durable`: a durable queue of that name instead, which outlives a broker restart with
        what it holds (an exclusive queue goes with the node's application, and whatever is
        published before the probe's connection declares it again would be missed); it expires
        ten minutes after its last consumer left.
        """
        exchange = await channel.declare_exchange(
            Names.of(config).exchange, aio_pika.ExchangeType.TOPIC, durable=True
        )
        if durable is None:
            queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        else:
            queue = await channel.declare_queue(
                durable, durable=True, arguments={"x-expires": 600_000}
            )
        for key in keys:
            await queue.bind(exchange, routing_key=key)
        probe = cls(queue)

        async def record(message: AbstractIncomingMessage) -> None:
            probe.messages.append(message)
            await message.ack()

        await queue.consume(record)
        return probe

    @property
    def ids(self) -> list[str | None]:
        """Message ids (= envelope ids) in arrival order."""
        return [m.message_id for m in self.messages]


type BrokerCtl = Callable[..., Awaitable[tuple[int, str]]]

# Where `rabbitmqctl` reaches the session's broker when it is not the machine's: inside its
# container (devkit.testing registers `devkit.containers.Started.rabbitmqctl` for the session).
_session_broker_ctl: BrokerCtl | None = None


def use_broker_ctl(ctl: BrokerCtl | None) -> BrokerCtl | None:
    """Run `rabbitmqctl` through `ctl` (None: the machine's); the previous one, to restore."""
    global _session_broker_ctl
    previous, _session_broker_ctl = _session_broker_ctl, ctl
    return previous


def can_drop_connections() -> bool:
    """True when `rabbitmqctl` can close a connection from the broker side: the machine's, or
    the broker container's when the session runs on containers (`SHOP_TEST_CONTAINERS=1`)."""
    return shutil.which("rabbitmqctl") is not None or os.environ.get(VARIABLE) == "1"


async def _machine_ctl(*args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        "rabbitmqctl",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    out, _ = await process.communicate()
    return await process.wait(), out.decode()


def _ctl(node: RabbitNode | None) -> BrokerCtl:
    if node is not None:
        return node.ctl
    return _session_broker_ctl or _machine_ctl


async def broker_connections(
    prefix: str, *, node: RabbitNode | None = None
) -> list[tuple[str, str]]:
    """(pid, connection name) of every broker connection whose name starts with `prefix` (on
    the session's broker, or on `node`, a node of the test's own)."""
    _, text = await _ctl(node)(
        "list_connections", "-q", "--no-table-headers", "pid", "client_properties"
    )
    marker = '"connection_name","'
    found: list[tuple[str, str]] = []
    for line in text.splitlines():
        if marker not in line:
            continue
        name = line.split(marker, 1)[1].split('"', 1)[0]
        if name.startswith(prefix):
            found.append((line.split("\t", 1)[0], name))
    return found


async def close_broker_connection(pid: str, reason: str, *, node: RabbitNode | None = None) -> bool:
    """Make the broker close the connection `pid`, as a failover would; True when it did."""
    code, _ = await _ctl(node)("close_connection", pid, reason)
    return code == 0


async def drop_connection(connection: BusConnection, reason: str = "test") -> None:
    """Make the broker close `connection` (found by its connection name), as a failover would."""
    pids = [
        pid for pid, name in await broker_connections(connection.name) if name == connection.name
    ]
    if not pids:
        # e.g. the broker runs in a container that no registered rabbitmqctl manages
        raise LookupError(f"no broker connection named {connection.name!r}")
    for pid in pids:
        if not await close_broker_connection(pid, reason):
            raise RuntimeError(f"rabbitmqctl close_connection {pid} failed")


async def remove_topology(amqp_url: str, config: BusConfig) -> None:
    """Delete a test's queues and its prefixed exchanges on a connection of its own."""
    connection = BusConnection(amqp_url, name=f"{config.prefix}cleanup")
    try:
        channel = await connection.channel()
        await delete_topology(channel, config, exchanges=True)
    finally:
        await connection.close()
