"""The auto-advance sweeper (demos, `SHIPPING_AUTO_ADVANCE_SECONDS`): the sandbox carrier ships
what waited PENDING that long and delivers what travelled SHIPPED that long, as the system.

Several instances may run; a Mongo lease (`kit.leases`) lets one of them sweep at a time. The lease
is only an economy: each move is a conditional status change (`commands.ship` / `deliver`), so
two sweepers, or a sweeper and an Admin, racing on one shipment move it once. Time is the
service's clock (`deps.clock`), so a test moves it instead of waiting.
"""

from __future__ import annotations

from datetime import datetime

from kit.leases import LeasedTask
from kit.quarantine import DEFAULT_MAX_FAILURES
from shipping_service import commands
from shipping_service.deps import Deps

LEASE_NAME = "shipping.auto-advance"


class AutoAdvance(LeasedTask):
    """Periodically moves due shipments on while holding the sweeper lease."""

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
            self.advance_due,
            interval=interval,
            lease_seconds=lease_seconds,
            holder=holder,
            max_failures=max_failures,
            clock=deps.clock,
        )
        self.deps = deps

    async def advance_due(self, now: datetime) -> int:
        """Ship and deliver every shipment due at `now` (no lease: callers decide)."""
        return await commands.auto_advance(self.deps, now, quarantine=self.quarantine)
