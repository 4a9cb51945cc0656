"""The reservation sweeper: releases reservations past their expiry (`StockReleased`, expired).

Several instances may run; a Mongo lease (`kit.leases`) lets one of them sweep at a time. The lease
is only an economy: each release is a conditional status change (`commands.expire_reservation`),
so even two sweepers racing on the same reservation release it once. Time is the service's clock
(`deps.clock`), so a test moves it instead of waiting.
"""

from __future__ import annotations

from datetime import datetime

from inventory_service import commands
from inventory_service.deps import Deps
from kit.leases import Sweeper

LEASE_NAME = "inventory.reservation-sweeper"


class ReservationSweeper(Sweeper[Deps]):
    """Periodically releases expired reservations while holding the sweeper lease."""

    lease_name = LEASE_NAME

    async def sweep(self, now: datetime) -> int:
        """Release every reservation expired at `now` (no lease: callers decide). One that
        cannot be released is counted against it (and quarantined) while the pass goes on."""
        return await commands.expire_reservations(self.deps, now, quarantine=self.quarantine)
