"""Every service's dead letters, as the gateway's operations API sees them (Admin only).

The gateway owns no queue of its own, but it knows each service's broker names: a service's
`BusConfig` is rebuilt here with the gateway's `BUS_PREFIX`, and `bus.dlq` does the work on a
channel of the request's own (on the gateway's one broker connection, the audit's).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import aio_pika
import structlog
from aio_pika.abc import AbstractChannel

from bus import BusConfig, DeadLetter, PublishFailed, dead_letter_count, list_dead_letters, redrive
from contracts import Actor, Envelope
from contracts.gateway import DeadLettersRedriven
from gateway_service.audit import DeniedAudit
from gateway_service.routing import SERVICES
from gateway_service.settings import GatewaySettings
from kit.errors import Problem, not_found

log = structlog.get_logger("gateway.ops")

# A broker that is down, refuses, or does not answer (or confirm) in time.
BROKER_ERRORS = (OSError, TimeoutError, aio_pika.exceptions.AMQPError, PublishFailed)
# A broker that stopped answering is usually back (or its alarm cleared) within seconds.
RETRY_AFTER_SECONDS = 5
CLOSE_TIMEOUT_SECONDS = 1.0


def broker_unavailable() -> Problem:
    return Problem(
        503,
        "SERVICE_UNAVAILABLE",
        "Service unavailable",
        "The message broker did not answer in time; nothing it did not take was moved.",
        retry_after=RETRY_AFTER_SECONDS,
    )


@dataclass(frozen=True, slots=True)
class ServiceDeadLetters:
    """One service's DLQ: how many are ready, and the first `limit` of them."""

    service: str
    count: int
    messages: list[DeadLetter]


class DeadLetterOps:
    """Lists and redrives the dead letters of the six services."""

    def __init__(self, settings: GatewaySettings, audit: DeniedAudit) -> None:
        self._settings = settings
        self._audit = audit
        # bus.dlq: a listing holds its messages unacked, so one admin operation per DLQ at a
        # time (within this gateway process; two gateways could still interleave).
        self._locks = {service: asyncio.Lock() for service in SERVICES}

    def config_for(self, service: str) -> BusConfig:
        """`service`'s broker names under the gateway's prefix; 404 for a name we do not know."""
        if service not in SERVICES:
            raise not_found("SERVICE_NOT_FOUND", f"No service named {service!r}.")
        settings = self._settings
        return BusConfig(
            service=service,
            amqp_url=settings.amqp_url,
            prefix=settings.bus_prefix,
            retry_delays=settings.bus_retry_delays,
            max_attempts=settings.bus_max_attempts,
            # Each redriven copy waits this long for its confirm: a blocked broker answers the
            # Admin with a 503, never a request that hangs.
            publish_timeout=settings.bus_publish_timeout,
        )

    @asynccontextmanager
    async def _channel(self) -> AsyncIterator[AbstractChannel]:
        try:
            channel = await self._audit.channel()
        except BROKER_ERRORS as exc:
            log.warning("gateway.ops_broker_unavailable", error=repr(exc))
            raise broker_unavailable() from exc
        try:
            yield channel
        finally:
            # Bounded: a broker that stopped answering never sends the close-ok. It still
            # takes the close, and requeues what the channel held unacked.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(channel.close(), CLOSE_TIMEOUT_SECONDS)

    async def listing(self, service: str, limit: int) -> ServiceDeadLetters:
        """Up to `limit` dead letters of `service`, left in the queue, and how many there are."""
        config = self.config_for(service)
        async with self._locks[service]:
            # A channel per service: a missing queue (a service that never started) closes
            # the channel it was asked on (AMQP 404).
            async with self._channel() as channel:
                try:
                    letters = await list_dead_letters(channel, config, limit)
                    count = await dead_letter_count(channel, config)
                except aio_pika.exceptions.ChannelNotFoundEntity:
                    return ServiceDeadLetters(service, 0, [])
                except BROKER_ERRORS as exc:
                    log.warning("gateway.ops_list_failed", service=service, error=repr(exc))
                    raise broker_unavailable() from exc
        # A message dead-lettered or redriven meanwhile can make the two disagree by a few.
        return ServiceDeadLetters(service, max(count, len(letters)), letters)

    async def redrive(self, service: str, actor: Actor, correlation_id: str) -> int:
        """Audit, then move `service`'s dead letters back to its queue; how many moved.

        The audit event is published (and confirmed) BEFORE anything moves: if it cannot be
        published the answer is a 503 `AUDIT_UNAVAILABLE` and the DLQ is untouched, so no
        admin redrive ever happens without its record. The event's `count` is what was in the
        DLQ when the Admin asked, and the redrive moves at most that many: a message that
        arrives meanwhile waits for the next (audited) redrive. If the move itself then fails,
        the record stands for an attempt, and the 503 tells the Admin to look again.
        """
        config = self.config_for(service)
        async with self._locks[service]:
            pending = await self._pending(service, config)
            event = DeadLettersRedriven(service=service, count=pending)
            envelope = Envelope.wrap(event, correlation_id=correlation_id, actor=actor)
            try:
                await self._audit.record(envelope)
            except Exception as exc:
                log.warning("gateway.ops_audit_failed", service=service, error=repr(exc))
                raise Problem(
                    503,
                    "AUDIT_UNAVAILABLE",
                    "Audit unavailable",
                    "The redrive could not be audited; nothing was moved.",
                    retry_after=RETRY_AFTER_SECONDS,
                ) from exc
            if pending == 0:
                return 0
            async with self._channel() as channel:
                try:
                    moved = await redrive(channel, config, limit=pending)
                except BROKER_ERRORS as exc:
                    log.warning("gateway.ops_redrive_failed", service=service, error=repr(exc))
                    raise broker_unavailable() from exc
        log.info("gateway.dead_letters_redriven", service=service, count=moved, audited=pending)
        return moved

    async def _pending(self, service: str, config: BusConfig) -> int:
        async with self._channel() as channel:
            try:
                return await dead_letter_count(channel, config)
            except aio_pika.exceptions.ChannelNotFoundEntity:
                return 0  # no DLQ yet: the service never started on this broker
            except BROKER_ERRORS as exc:
                log.warning("gateway.ops_count_failed", service=service, error=repr(exc))
                raise broker_unavailable() from exc
