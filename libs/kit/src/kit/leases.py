"""Mongo leases, and the leased background loop every sweeper runs in.

Several instances of a service may run; a sweeper should run in one of them at a time. A lease is
one document per name in the service's `leases` collection: whoever holds it (and renews it
before `until`) sweeps, the others skip their turn. The lease is only an economy: every sweep
step must be a conditional change that is safe to run twice (two holders overlapping after a
stall then change each thing once). A row whose step keeps raising is set aside by the task's
`quarantine` (kit.quarantine) so that it cannot hold up the rows behind it.

The holder renews its lease once half the term is gone, not on every pass: a pass every second
under a 30 s lease wrote the lease 30 times per term (6.4 writes per order in issue 17's count at
5 orders), and on the embedded server each write outside a transaction fails every transaction
open at that moment. The others read the lease on their passes and try to take it only when it
is free or has run out (a read, where a refused upsert was a write).
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, ClassVar, Protocol

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from kit.background import PeriodicTask
from kit.clock import Clock, utcnow
from kit.mongo import as_utc
from kit.quarantine import DEFAULT_MAX_FAILURES, RowQuarantine

LEASES = "leases"

type Db = AsyncDatabase[Any]


async def acquire_lease(db: Db, name: str, holder: str, now: datetime, until: datetime) -> bool:
    """Take or renew the lease `name` unless another holder's lease is still running."""
    try:
        await db[LEASES].update_one(
            {"_id": name, "$or": [{"holder": holder}, {"until": {"$lte": now}}]},
            {"$set": {"holder": holder, "until": until}},
            upsert=True,
        )
    except DuplicateKeyError:
        return False  # the lease exists and someone else holds it
    return True


async def lease_holder(db: Db, name: str, now: datetime) -> str | None:
    """Who holds the lease `name` at `now` (None: nobody, or the term ran out)."""
    doc = await db[LEASES].find_one({"_id": name})
    if doc is None:
        return None
    return str(doc["holder"]) if as_utc(doc["until"]) > now else None


async def release_lease(db: Db, name: str, holder: str) -> None:
    """Give a lease up (only the holder's own)."""
    await db[LEASES].delete_one({"_id": name, "holder": holder})


class LeasedTask:
    """Runs `sweep(now)` every `interval` seconds in whichever instance holds the lease `name`.

    A sweep closes each row through `self.quarantine.attempt` and leaves `quarantine.rows()` out
    of its query: a row failing `max_failures` times is then skipped instead of ending every pass.
    """

    def __init__(
        self,
        db: Db,
        name: str,
        sweep: Callable[[datetime], Awaitable[int]],
        *,
        interval: float,
        lease_seconds: float,
        holder: str | None = None,
        max_failures: int = DEFAULT_MAX_FAILURES,
        clock: Clock = utcnow,
    ) -> None:
        self._db = db
        self._clock = clock  # the service's clock: a test moves it instead of waiting
        self.name = name
        self.quarantine = RowQuarantine(db, name, max_failures=max_failures)
        self._sweep = sweep
        self._lease = timedelta(seconds=lease_seconds)
        self.holder = holder or f"{name}-{secrets.token_hex(4)}"
        # The term of the lease as this instance last wrote it (None: not held).
        self._held_until: datetime | None = None
        self._loop = PeriodicTask(name, self.run_once, interval)

    async def run_once(self, now: datetime | None = None) -> int:
        """Take the lease and sweep; how many things the sweep changed (0 without the lease)."""
        now = now or self._clock()
        if not await self.hold(now):
            return 0
        return await self._sweep(now)

    async def hold(self, now: datetime) -> bool:
        """Whether this instance holds the lease at `now`: renewed once half its term is gone,
        taken when nobody holds it; no write while more than half the term is left."""
        if self._held_until is not None and now < self._held_until - self._lease / 2:
            return True
        if self._held_until is None:
            current = await lease_holder(self._db, self.name, now)
            if current is not None and current != self.holder:
                return False
        until = now + self._lease
        held = await acquire_lease(self._db, self.name, self.holder, now, until)
        self._held_until = until if held else None
        return held

    def start(self) -> None:
        """Run the loop in the background."""
        self._loop.start()

    def wake(self) -> None:
        """Sweep now rather than at the end of the interval."""
        self._loop.wake()

    async def stop(self) -> None:
        """Stop the loop and give the lease up, so another instance can take over at once."""
        await self._loop.stop()
        self._held_until = None
        with contextlib.suppress(Exception):
            await release_lease(self._db, self.name, self.holder)


class SweeperDeps(Protocol):
    """What a service sweeper needs of the service's wiring: its database and its clock."""

    @property
    def db(self) -> Db: ...

    @property
    def clock(self) -> Clock: ...


class Sweeper[D: SweeperDeps](LeasedTask):
    """A service's sweeper: a `LeasedTask` named `lease_name`, on the service's database and
    clock, whose pass is `sweep(now)` with the service's wiring as `self.deps`."""

    lease_name: ClassVar[str]

    def __init__(
        self,
        deps: D,
        *,
        interval: float,
        lease_seconds: float,
        holder: str | None = None,
        max_failures: int = DEFAULT_MAX_FAILURES,
    ) -> None:
        super().__init__(
            deps.db,
            self.lease_name,
            self.sweep,
            interval=interval,
            lease_seconds=lease_seconds,
            holder=holder,
            max_failures=max_failures,
            clock=deps.clock,
        )
        self.deps = deps

    async def sweep(self, now: datetime) -> int:
        """One pass at `now` (no lease: `run_once` takes it); how many things it changed."""
        raise NotImplementedError
