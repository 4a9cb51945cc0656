"""Rows a sweeper keeps failing to close: counted per row, then set aside.

A sweep walks its due rows oldest first. One row whose close raises on every pass (a document an
older version wrote, a reference to something gone) used to end every pass right there, and no
row behind it ever closed. Now each failure is counted per (sweeper, row) in the service's
`sweep_failures` collection and the pass goes on with the next row; at `max_failures` the row is
quarantined: logged as an error, counted once in `sweeper_quarantined_total{sweeper}`, and left
out of the sweeper's query (`rows()`) until someone repairs it and deletes its record.

Failures of the moment (a write conflict, an unreachable database: `is_retryable`) are not the
row's fault: they end the pass as before, and the next pass tries again without counting them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import structlog
from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

from kit import metrics
from kit.transactions import is_retryable

log = structlog.get_logger("kit.quarantine")

SWEEP_FAILURES = "sweep_failures"
DEFAULT_MAX_FAILURES = 5
# Enough of the error to recognise it in the record, without storing a whole traceback.
ERROR_CHARS = 500

QUARANTINED = metrics.counter(
    "sweeper_quarantined_total",
    "Rows a sweeper set aside after failing to close them max_failures times.",
    ["sweeper"],
)
ROW_FAILURES = metrics.counter(
    "sweeper_row_failures_total", "Failed attempts of a sweeper to close a row.", ["sweeper"]
)

type Db = AsyncDatabase[Any]


class RowQuarantine:
    """Failure counts of one sweeper's rows, and the rows it has set aside."""

    def __init__(self, db: Db, sweeper: str, *, max_failures: int = DEFAULT_MAX_FAILURES) -> None:
        if max_failures < 1:
            raise ValueError("max_failures must be at least 1")
        self._db = db
        self.sweeper = sweeper
        self.max_failures = max_failures

    async def rows(self) -> list[str]:
        """Ids of the quarantined rows, for the sweep's query to leave out."""
        found = self._db[SWEEP_FAILURES].find(
            {"sweeper": self.sweeper, "quarantined": True}, {"row": 1}
        )
        return sorted([str(doc["row"]) async for doc in found])

    async def attempt[T](self, row: str, close: Callable[[], Awaitable[T]]) -> T | None:
        """`close()`'s answer, or None when it raised (counted against the row, which is
        quarantined at `max_failures`); a failure of the moment is raised to end the pass."""
        try:
            return await close()
        except Exception as exc:
            if is_retryable(exc):
                raise
            await self._count_failure(row, exc)
            return None

    async def _count_failure(self, row: str, exc: Exception) -> None:
        ROW_FAILURES.labels(sweeper=self.sweeper).inc()
        error = f"{type(exc).__name__}: {exc}"[:ERROR_CHARS]
        key = f"{self.sweeper}:{row}"
        record: dict[str, Any] | None = await self._db[SWEEP_FAILURES].find_one_and_update(
            {"_id": key},
            {
                "$inc": {"failures": 1},
                "$set": {
                    "sweeper": self.sweeper,
                    "row": row,
                    "error": error,
                    "at": datetime.now(UTC),
                },
            },
            upsert=True,
            return_document=ReturnDocument.AFTER,
        )
        failures = int(record["failures"]) if record else 1  # upserted: never None
        if failures < self.max_failures:
            log.warning(
                "sweeper.row_failed", sweeper=self.sweeper, row=row, failures=failures, error=error
            )
            return
        # Conditional, so that two sweepers overlapping after a stall count the row once.
        moved = await self._db[SWEEP_FAILURES].update_one(
            {"_id": key, "quarantined": {"$ne": True}},
            {"$set": {"quarantined": True, "quarantined_at": datetime.now(UTC)}},
        )
        if moved.modified_count:
            QUARANTINED.labels(sweeper=self.sweeper).inc()
            log.error(
                "sweeper.row_quarantined",
                sweeper=self.sweeper,
                row=row,
                failures=failures,
                error=error,
            )
