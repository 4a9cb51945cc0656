"""The deadline sweeper: closes the order's own waits (stock answer, decision, approval, payment,
stock commit).

Each order waiting in PENDING, AWAITING_CUSTOMER_DECISION, AWAITING_APPROVAL, AWAITING_PAYMENT,
PAYMENT_FAILED or PAID carries the due date of that wait in `deadline` (indexed with its status).
Every `interval` seconds, in whichever instance holds the lease, the due ones are CANCELLED by the
domain's `deadline_passed`, one transaction each, their OrderCancelled in the order's own outbox.
Reservation expiry is inventory's sweeper; it reaches the order as StockReleased (see handlers).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from functools import partial
from typing import Any

import structlog
from pymongo import AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession

from bus.documents import DocumentOutbox
from kit.leases import LeasedTask
from kit.quarantine import DEFAULT_MAX_FAILURES
from kit.transactions import TransactionBody, run_in_transaction
from order_service import store
from order_service.domain import Cause, DeadlineKind, Status
from order_service.metrics import record_step
from order_service.store import ConcurrentUpdate, Db

log = structlog.get_logger("order.sweeper")

LEASE_NAME = "order.deadline-sweeper"
BATCH = 100
WAITS: dict[Status, DeadlineKind] = {
    "PENDING": "stock",
    "AWAITING_CUSTOMER_DECISION": "decision",
    "AWAITING_APPROVAL": "approval",
    "AWAITING_PAYMENT": "payment",
    "PAYMENT_FAILED": "payment",
    "PAID": "commit",
}


class DeadlineSweeper(LeasedTask):
    """Cancels orders whose wait is over, while holding the sweeper lease."""

    def __init__(
        self,
        client: AsyncMongoClient[Any],
        db: Db,
        *,
        interval: float,
        lease_seconds: float,
        notify: Callable[[], None] = lambda: None,
        documents: DocumentOutbox | None = None,
        holder: str | None = None,
        max_failures: int = DEFAULT_MAX_FAILURES,
    ) -> None:
        super().__init__(
            db,
            LEASE_NAME,
            self.close_due,
            interval=interval,
            lease_seconds=lease_seconds,
            holder=holder,
            max_failures=max_failures,
        )
        self._client = client
        self._db = db
        self._documents = documents or DocumentOutbox(store.ORDERS, None)
        self._notify = notify

    async def close_due(self, now: datetime) -> int:
        """Cancel every order whose wait ended by `now`; how many were cancelled. An order that
        cannot be closed is counted against it (and quarantined) while the pass goes on."""
        closed = 0
        quarantined = await self.quarantine.rows()
        for order_id in await store.due(self._db, list(WAITS), now, BATCH, exclude=quarantined):
            if await self.quarantine.attempt(order_id, partial(self._close, order_id, now)):
                closed += 1
        if closed:
            self._notify()
        return closed

    async def _close(self, order_id: str, now: datetime) -> bool:
        try:
            return await run_in_transaction(self._client, self._closer(order_id, now))
        except ConcurrentUpdate:
            # An event moved the order meanwhile; the next sweep looks at it again.
            log.info("deadline.raced", order_id=order_id)
            return False

    def _closer(self, order_id: str, now: datetime) -> TransactionBody[bool]:
        async def body(session: AsyncClientSession) -> bool:
            order = await store.load(self._db, order_id, session)
            kind, status = WAITS.get(order.status), order.status
            if kind is None or not order.deadline_passed(kind, Cause(at=now)):
                return False
            events = [r.envelope(order_id) for r in order.pull_events()]
            await store.save(self._db, order, session, events=events, outbox=self._documents)
            record_step(order, status)
            log.info("deadline.passed", order_id=order_id, kind=kind, status=order.status)
            return True

        return body
