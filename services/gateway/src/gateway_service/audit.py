"""The gateway's audit events, published by the gateway itself (events.md; the one exception to
"HTTP writes go through the outbox": the gateway has no database).

`AccessDenied` is fire-and-forget with publisher confirms: the 403 is answered at once, the
publish runs as a task with a timeout, and a broker that is down costs a warning in the log,
never the response. An Admin's operation (`DeadLettersRedriven`) goes through the same publisher
but is awaited (`record`): its audit record must not be lost silently. The connection opens on
first use, so a gateway without a broker still starts and serves.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import structlog
from aio_pika.abc import AbstractChannel
from fastapi import Request

from bus import AmqpPublisher, BusConfig, BusConnection
from contracts import Envelope
from contracts.gateway import AccessDenied
from gateway_service.settings import GatewaySettings
from kit.auth import Principal
from kit.request_context import actor_from_request, request_id

log = structlog.get_logger("gateway.audit")

PUBLISH_TIMEOUT = 5.0


class DeniedAudit:
    """Publishes one `AccessDenied` per refused request, and the audit of admin operations."""

    def __init__(self, settings: GatewaySettings) -> None:
        config = BusConfig(
            service="gateway",
            amqp_url=settings.amqp_url,
            prefix=settings.bus_prefix,
            retry_delays=settings.bus_retry_delays,
            publish_timeout=PUBLISH_TIMEOUT,
        )
        self.connection = BusConnection.for_config(config)
        self.publisher = AmqpPublisher(self.connection, config)
        self._tasks: set[asyncio.Task[None]] = set()
        self.published = 0

    def denied(self, request: Request, principal: Principal, roles: tuple[str, ...]) -> None:
        """Schedule the event for this 403 (returns at once)."""
        actor = actor_from_request(request, principal)
        event = AccessDenied(
            method=request.method,
            path=request.url.path,
            required_roles=roles,
            request_id=request_id(request),
        )
        envelope = Envelope.wrap(event, correlation_id=principal.user_id, actor=actor)
        log.info(
            "gateway.access_denied",
            user_id=principal.user_id,
            role=principal.role,
            method=request.method,
            path=request.url.path,
            required=list(roles),
        )
        task = asyncio.create_task(self._publish(envelope))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _publish(self, envelope: Envelope[AccessDenied]) -> None:
        try:
            # One attempt to connect: a down broker must not pile up waiting tasks.
            await asyncio.wait_for(self.connection.connect(attempts=1), PUBLISH_TIMEOUT)
            await asyncio.wait_for(self.publisher.publish(envelope), PUBLISH_TIMEOUT)
            self.published += 1
        except Exception as exc:
            log.warning("gateway.access_denied_unpublished", event_id=envelope.id, error=repr(exc))

    async def record(self, envelope: Envelope[Any]) -> None:
        """Publish an admin operation's event and wait for the broker's confirm; raises if not."""
        await asyncio.wait_for(self.connection.connect(attempts=1), PUBLISH_TIMEOUT)
        await asyncio.wait_for(self.publisher.publish(envelope), PUBLISH_TIMEOUT)
        self.published += 1

    async def channel(self) -> AbstractChannel:
        """A new channel on the gateway's one broker connection (the caller closes it)."""
        # One attempt, bounded: an admin request must fail fast when the broker is down.
        await asyncio.wait_for(self.connection.connect(attempts=1), PUBLISH_TIMEOUT)
        return await asyncio.wait_for(self.connection.channel(), PUBLISH_TIMEOUT)

    async def close(self) -> None:
        """Let pending publishes finish (briefly), then close the channel and connection."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=PUBLISH_TIMEOUT)
        with contextlib.suppress(Exception):
            await self.publisher.close()
        with contextlib.suppress(Exception):
            await self.connection.close()
