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
from kit.leases import LeasedTask
from kit.quarantine import DEFAULT_MAX_FAILURES

LEASE_NAME = "inventory.reservation-sweeper"


class ReservationSweeper(LeasedTask):
    """Periodically releases expired reservations while holding the sweeper lease."""

    def __init__(
        self,
        deps: Deps,
        *,
        interval: float,
        lease_seconds: float,
        holder: str | None = None,
        max_failures: int = DEFAULT_MAX_FAILURES,
    ) -> None:
        super().__init__(
            deps.db,
            LEASE_NAME,
            self.release_expired,
            interval=interval,
            lease_seconds=lease_seconds,
            holder=holder,
            max_failures=max_failures,
            clock=deps.clock,
        )
        self.deps = deps

    async def release_expired(self, now: datetime) -> int:
        """Release every reservation expired at `now` (no lease: callers decide). One that
        cannot be released is counted against it (and quarantined) while the pass goes on."""
        return await commands.expire_reservations(self.deps, now, quarantine=self.quarantine)
