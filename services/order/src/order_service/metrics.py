"""The order service's own metrics: orders per status (read at scrape time) and how long after
placement each saga step is reached (observed when an order moves)."""

from __future__ import annotations

from datetime import UTC, datetime

from kit import metrics
from kit.mongo import Db
from order_service.domain import STATUSES, Order, Status
from order_service.store import ORDERS

ORDERS_BY_STATUS = metrics.gauge(
    "shop_orders_by_status", "Orders per status (sampled when scraped).", ["service", "status"]
)
SAGA_STEP = metrics.histogram(
    "shop_saga_step_duration_seconds",
    "Time from an order's placement to each status it reaches.",
    ["service", "step"],
)


def record_step(order: Order, before: Status) -> None:
    """Observe the order's new status, if it moved (call after the move is saved)."""
    if order.status == before:
        return
    elapsed = (datetime.now(UTC) - order.created_at).total_seconds()
    SAGA_STEP.labels(service="order", step=order.status).observe(max(elapsed, 0.0))


def status_sampler(db: Db) -> metrics.ScrapeHook:
    """A scrape hook counting orders per status with one aggregation over the status index."""

    async def sample() -> None:
        counts = dict.fromkeys(STATUSES, 0)
        cursor = await db[ORDERS].aggregate([{"$group": {"_id": "$status", "n": {"$sum": 1}}}])
        async for row in cursor:
            if row["_id"] in counts:
                counts[row["_id"]] = int(row["n"])
        for status, count in counts.items():
            ORDERS_BY_STATUS.labels(service="order", status=status).set(count)

    return sample
