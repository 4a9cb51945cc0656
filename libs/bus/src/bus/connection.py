"""One robust broker connection per process, and channels with publisher confirms on it."""

from __future__ import annotations

import asyncio

import aio_pika
import structlog
from aio_pika.abc import AbstractRobustChannel, AbstractRobustConnection

from bus.config import BusConfig

log = structlog.get_logger("bus.connection")


class BusConnection:
    """A lazily opened `connect_robust` connection: it reconnects and restores channels,
    exchanges, queues, bindings and consumers on its own after the broker drops it."""

    def __init__(self, url: str, *, name: str = "shop", reconnect_interval: float = 2.0) -> None:
        self._url = url
        self._name = name
        self._reconnect_interval = reconnect_interval
        self._connection: AbstractRobustConnection | None = None
        self._lock = asyncio.Lock()
        self.reconnections = 0

    @classmethod
    def for_config(cls, config: BusConfig) -> BusConnection:
        """A connection named after the service, so that operators can tell it apart."""
        return cls(
            config.amqp_url,
            name=config.connection_name,
            reconnect_interval=config.reconnect_interval,
        )

    @property
    def name(self) -> str:
        """The `connection_name` client property the broker shows for this connection."""
        return self._name

    @property
    def is_connected(self) -> bool:
        """True while the transport to the broker is open."""
        conn = self._connection
        return conn is not None and not conn.is_closed and conn.connected.is_set()

    async def connect(self, *, attempts: int | None = None) -> AbstractRobustConnection:
        """Open the connection, retrying the first connect (the broker may still be starting)."""
        async with self._lock:
            if self._connection is not None:
                return self._connection
            tried = 0
            while True:
                tried += 1
                try:
                    self._connection = await aio_pika.connect_robust(
                        self._url,
                        client_properties={"connection_name": self._name},
                        reconnect_interval=self._reconnect_interval,
                    )
                    self._connection.reconnect_callbacks.add(self._on_reconnect)
                    return self._connection
                except (OSError, aio_pika.exceptions.AMQPConnectionError) as exc:
                    if attempts is not None and tried >= attempts:
                        raise
                    log.warning("bus.connect_failed", error=str(exc), attempt=tried)
                    await asyncio.sleep(self._reconnect_interval)

    def _on_reconnect(self, *_: object) -> None:
        self.reconnections += 1
        log.warning("bus.reconnected", connection=self._name, reconnections=self.reconnections)

    async def channel(
        self, *, prefetch: int = 0, on_return_raises: bool = False
    ) -> AbstractRobustChannel:
        """A new channel with publisher confirms (restored by the robust connection)."""
        connection = await self.connect()
        channel = connection.channel(publisher_confirms=True, on_return_raises=on_return_raises)
        await channel.initialize()
        if prefetch:
            await channel.set_qos(prefetch_count=prefetch)
        return channel

    async def close(self) -> None:
        """Close the connection and every channel on it."""
        async with self._lock:
            if self._connection is not None:
                await self._connection.close()
                self._connection = None
