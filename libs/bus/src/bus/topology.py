"""Exchange and queue names, and their declaration on the broker."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractQueue

from bus.config import BusConfig


def format_delay(seconds: float) -> str:
    """`0.2` → `0.2s`, `10.0` → `10s`: short, stable queue name parts."""
    return f"{seconds:g}s"


@dataclass(frozen=True, slots=True)
class Names:
    """Every broker name one service uses, prefix included."""

    exchange: str
    dlx: str
    queue: str
    dlq: str
    retry_queues: dict[float, str]

    @classmethod
    def of(cls, config: BusConfig) -> Names:
        p, s = config.prefix, config.service
        return cls(
            exchange=f"{p}shop.events",
            dlx=f"{p}shop.dlx",
            queue=f"{p}{s}.events",
            dlq=f"{p}{s}.dlq",
            retry_queues={d: f"{p}{s}.retry.{format_delay(d)}" for d in config.retry_delays},
        )

    def retry_queue(self, delay: float) -> str:
        """The delay queue for `delay` seconds."""
        return self.retry_queues[delay]


def service_queue_arguments(config: BusConfig, names: Names) -> dict[str, Any]:
    """Arguments of `<service>.events`: quorum, broker-side delivery limit, DLX at-least-once."""
    return {
        "x-queue-type": "quorum",
        "x-delivery-limit": config.delivery_limit,
        "x-dead-letter-exchange": names.dlx,
        "x-dead-letter-routing-key": names.dlq,
        # at-least-once keeps a dead letter in the source queue until the DLQ confirms it; it
        # requires reject-publish overflow (publishers see a nack instead of silent drops).
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }


def retry_queue_arguments(names: Names, delay: float) -> dict[str, Any]:
    """Arguments of a delay queue: expire after `delay`, then go back to the service queue."""
    return {
        "x-queue-type": "quorum",
        "x-message-ttl": max(1, round(delay * 1000)),
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": names.queue,
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }


DLQ_ARGUMENTS: dict[str, Any] = {
    "x-queue-type": "quorum",
    # Listing requeues what it reads, which counts as a delivery; RabbitMQ 4 gives quorum queues
    # a default limit of 20 and this queue has no DLX, so a low limit would silently drop dead
    # letters after a few listings.
    "x-delivery-limit": 1_000_000,
}


@dataclass(frozen=True, slots=True)
class Topology:
    """The declared objects a consumer works with."""

    names: Names
    exchange: AbstractExchange
    queue: AbstractQueue


async def declare_exchange(channel: AbstractChannel, config: BusConfig) -> AbstractExchange:
    """Declare the shared topic exchange `shop.events` (idempotent)."""
    return await channel.declare_exchange(
        Names.of(config).exchange, aio_pika.ExchangeType.TOPIC, durable=True
    )


async def declare_topology(
    channel: AbstractChannel, config: BusConfig, routing_keys: Iterable[str]
) -> Topology:
    """Declare exchanges, the service queue with its bindings, delay queues and the DLQ."""
    names = Names.of(config)
    exchange = await declare_exchange(channel, config)
    dlx = await channel.declare_exchange(names.dlx, aio_pika.ExchangeType.DIRECT, durable=True)
    dlq = await channel.declare_queue(names.dlq, durable=True, arguments=DLQ_ARGUMENTS)
    await dlq.bind(dlx, routing_key=names.dlq)
    queue = await channel.declare_queue(
        names.queue, durable=True, arguments=service_queue_arguments(config, names)
    )
    for key in sorted({*routing_keys, *config.extra_bindings}):
        await queue.bind(exchange, routing_key=key)
    for delay in names.retry_queues:
        await channel.declare_queue(
            names.retry_queue(delay), durable=True, arguments=retry_queue_arguments(names, delay)
        )
    return Topology(names=names, exchange=exchange, queue=queue)


async def delete_topology(
    channel: AbstractChannel, config: BusConfig, *, exchanges: bool = False
) -> None:
    """Delete a service's queues (and with `exchanges=True` the shared exchanges): test cleanup."""
    names = Names.of(config)
    # The queues this service declared for its peers too: a test that starts only some services
    # must not leave the others' queues behind on a shared broker.
    peers = [Names.of(replace(config, service=s)).queue for s in peer_bindings(config.service)]
    for queue in (names.queue, names.dlq, *names.retry_queues.values(), *peers):
        await channel.queue_delete(queue)
    if exchanges:
        await channel.exchange_delete(names.dlx)
        await channel.exchange_delete(names.exchange)


def peer_bindings(service: str) -> dict[str, list[str]]:
    """For each service that consumes an event `service` publishes (`contracts.catalogue`), the
    routing keys of those events: the queues that must exist before its first publish."""
    from contracts.catalogue import CONSUMERS
    from contracts.registry import all_events

    bindings: dict[str, list[str]] = {}
    for name, cls in sorted(all_events().items()):
        if cls.SOURCE != service:
            continue
        for consumer in CONSUMERS.get(name, ()):
            if consumer != service:
                bindings.setdefault(consumer, []).append(cls.ROUTING_KEY)
    return bindings


async def declare_peer_queues(channel: AbstractChannel, config: BusConfig) -> list[str]:
    """Declare the queues of the services that consume what `config.service` publishes, bound
    to those events, so that an event published before its consumer first started (the user
    service announcing the bootstrap accounts at a fresh start) waits in the queue instead of
    being dropped by the exchange. The consumer's own declaration later is the same, so it is a
    no-op; the queue names which queues were declared."""
    exchange = await declare_exchange(channel, config)
    declared: list[str] = []
    for service, keys in peer_bindings(config.service).items():
        peer = replace(config, service=service, extra_bindings=(), connection_name="peer")
        names = Names.of(peer)
        queue = await channel.declare_queue(
            names.queue, durable=True, arguments=service_queue_arguments(peer, names)
        )
        for key in keys:
            await queue.bind(exchange, routing_key=key)
        declared.append(names.queue)
    return declared
