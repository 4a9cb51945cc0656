"""The reservation sweeper: releases reservations past their expiry (`StockReleased`, expired).

Several instances may run; a Mongo lease lets one of them sweep at a time. The lease is only an
economy: each release is a conditional status change, so even two sweepers racing on the same
reservation release it once.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import structlog
from pymongo import AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from bus import Outbox
from contracts import Envelope
from inventory_service import store
from inventory_service.handlers import release, utcnow
from kit.background import PeriodicTask
from kit.transactions import run_in_transaction

log = structlog.get_logger("inventory.sweeper")

LEASE_NAME = "inventory.reservation-sweeper"
BATCH = 100


class ReservationSweeper:
    """Periodically releases expired reservations while holding the sweeper lease."""

    def __init__(
        self,
        client: AsyncMongoClient[Any],
        db: AsyncDatabase[Any],
        *,
        interval: float,
        lease_seconds: float,
        notify: Callable[[], None] = lambda: None,
        holder: str | None = None,
    ) -> None:
        self._client = client
        self._db = db
        self._outbox = Outbox(db)
        self._lease_seconds = lease_seconds
        self._notify = notify
        self.holder = holder or f"sweeper-{secrets.token_hex(4)}"
        self._loop = PeriodicTask("inventory-sweeper", self.sweep_once, interval)

    async def sweep_once(self, now: datetime | None = None) -> int:
        """Take the lease and release what has expired; how many reservations were released."""
        now = now or utcnow()
        until = now + timedelta(seconds=self._lease_seconds)
        if not await store.acquire_lease(self._db, LEASE_NAME, self.holder, now, until):
            return 0
        return await self.release_expired(now)

    async def release_expired(self, now: datetime) -> int:
        """Release every reservation expired at `now` (no lease: callers decide)."""
        released = 0
        for order_id in await store.expired_reservations(self._db, now, BATCH):

            async def body(session: AsyncClientSession, order_id: str = order_id) -> bool:
                events = await release(
                    self._db, session, order_id=order_id, reason="expired", now=now
                )
                await self._outbox.add(
                    session, *(Envelope.wrap(e, correlation_id=order_id) for e in events)
                )
                return bool(events)

            if await run_in_transaction(self._client, body):
                released += 1
                log.info("reservation.expired", order_id=order_id)
        if released:
            self._notify()
        return released

    def start(self) -> None:
        """Run the sweep loop in the background."""
        self._loop.start()

    async def stop(self) -> None:
        """Stop the loop and give the lease up, so another instance can take over at once."""
        await self._loop.stop()
        with contextlib.suppress(Exception):
            await store.release_lease(self._db, LEASE_NAME, self.holder)
