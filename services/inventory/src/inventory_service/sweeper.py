"""The reservation sweeper: releases reservations past their expiry (`StockReleased`, expired).

Several instances may run; a Mongo lease (`kit.leases`) lets one of them sweep at a time. The lease
is only an economy: each release is a conditional status change, so even two sweepers racing on
the same reservation release it once.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from functools import partial
from typing import Any

import structlog
from pymongo import AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from bus import Outbox
from contracts import Envelope
from inventory_service import store
from inventory_service.handlers import release
from kit.leases import LeasedTask
from kit.quarantine import DEFAULT_MAX_FAILURES
from kit.transactions import run_in_transaction

log = structlog.get_logger("inventory.sweeper")

LEASE_NAME = "inventory.reservation-sweeper"
BATCH = 100


class ReservationSweeper(LeasedTask):
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
        max_failures: int = DEFAULT_MAX_FAILURES,
    ) -> None:
        super().__init__(
            db,
            LEASE_NAME,
            self.release_expired,
            interval=interval,
            lease_seconds=lease_seconds,
            holder=holder,
            max_failures=max_failures,
        )
        self._client = client
        self._db = db
        self._outbox = Outbox(db)
        self._notify = notify

    async def release_expired(self, now: datetime) -> int:
        """Release every reservation expired at `now` (no lease: callers decide). One that
        cannot be released is counted against it (and quarantined) while the pass goes on."""
        released = 0
        quarantined = await self.quarantine.rows()
        expired = await store.expired_reservations(self._db, now, BATCH, exclude=quarantined)
        for order_id in expired:

            async def body(session: AsyncClientSession, order_id: str = order_id) -> bool:
                events = await release(
                    self._db, session, order_id=order_id, reason="expired", now=now
                )
                await self._outbox.add(
                    session, *(Envelope.wrap(e, correlation_id=order_id) for e in events)
                )
                return bool(events)

            if await self.quarantine.attempt(
                order_id, partial(run_in_transaction, self._client, body)
            ):
                released += 1
                log.info("reservation.expired", order_id=order_id)
        if released:
            self._notify()
        return released
