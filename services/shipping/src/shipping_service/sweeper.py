"""The auto-advance sweeper (demos, `SHIPPING_AUTO_ADVANCE_SECONDS`): the sandbox carrier ships
what waited PENDING that long and delivers what travelled SHIPPED that long, as the system.

Several instances may run; a Mongo lease (`kit.leases`) lets one of them sweep at a time. The lease
is only an economy: each move is a conditional status change (`commands.ship` / `deliver`), so
two sweepers, or a sweeper and an Admin, racing on one shipment move it once. Time is the
service's clock (`deps.clock`), so a test moves it instead of waiting.
"""

from __future__ import annotations

from datetime import datetime

from kit.leases import Sweeper
from shipping_service import commands
from shipping_service.deps import Deps

LEASE_NAME = "shipping.auto-advance"


class AutoAdvance(Sweeper[Deps]):
    """Periodically moves due shipments on while holding the sweeper lease."""

    lease_name = LEASE_NAME

    async def sweep(self, now: datetime) -> int:
        """Ship and deliver every shipment due at `now` (no lease: callers decide)."""
        return await commands.auto_advance(self.deps, now, quarantine=self.quarantine)
