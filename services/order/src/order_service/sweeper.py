"""The deadline sweeper: closes the order's own waits (stock answer, decision, approval, payment,
stock commit) and its returns' waits (an approved parcel to receive, a refund to hear of).

Each order waiting in PENDING, AWAITING_CUSTOMER_DECISION, AWAITING_APPROVAL, AWAITING_PAYMENT,
PAYMENT_FAILED or PAID carries the due date of that wait in `deadline` (indexed with its status).
Every `interval` seconds, in whichever instance holds the lease, the due ones are CANCELLED by
`commands.close_overdue` (the domain's `deadline_passed`), one transaction each, their
OrderCancelled in the order's own outbox. The time is the service's clock (`deps.clock`).
Reservation expiry is inventory's sweeper; it reaches the order as StockReleased (see handlers).

A CONFIRMED order waits only while one of its returns does: its `deadline` is then the earliest
return's due date, so the same indexed query (status, deadline) finds it, and a pass costs one
query whatever the number of orders. Its due returns are closed the same way: an APPROVED one
never received is REJECTED NOT_RECEIVED (ReturnRejected, actor system), a RECEIVED one payment
never answered is REFUND_FAILED REFUND_TIMEOUT (a person sees it in the returns queue).
"""

from __future__ import annotations

from datetime import datetime
from functools import partial

from kit.leases import Sweeper
from order_service import commands
from order_service.deps import Deps
from order_service.domain import WAITS

LEASE_NAME = "order.deadline-sweeper"
BATCH = 100


class DeadlineSweeper(Sweeper[Deps]):
    """Closes the waits that are over (orders and their returns), while holding the lease."""

    lease_name = LEASE_NAME

    async def sweep(self, now: datetime) -> int:
        """Cancel every order whose wait ended by `now`; how many were cancelled. An order that
        cannot be closed is counted against it (and quarantined) while the pass goes on."""
        deps = self.deps
        closed = 0
        quarantined = await self.quarantine.rows()
        for order_id in await deps.store.due(list(WAITS), now, BATCH, exclude=quarantined):
            close = partial(commands.close_overdue, deps, order_id, now)
            if await self.quarantine.attempt(order_id, close):
                closed += 1
        if closed:
            deps.bus.notify()
        return closed
