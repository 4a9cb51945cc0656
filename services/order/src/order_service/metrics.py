"""The order service's own metrics: orders per status and the orders past their deadline (read
at scrape time), and how long after placement each saga step is reached (observed when an order
moves)."""

from __future__ import annotations

from datetime import UTC, datetime

from kit import metrics
from kit.clock import Clock
from order_service.domain import STATUSES, WAITS, Order, Status
from order_service.store import OrderStore

# Placement → CONFIRMED spans a customer's decision and a Manager's approval (minutes, hours):
# the request buckets stop at 15 s, where every slow order would land in +Inf.
SAGA_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)

ORDERS_BY_STATUS = metrics.gauge(
    "shop_orders_by_status", "Orders per status (sampled when scraped).", ["service", "status"]
)
SAGA_STEP = metrics.histogram(
    "shop_saga_step_duration_seconds",
    "Time from an order's placement to each status it reaches.",
    ["service", "step"],
    buckets=SAGA_BUCKETS,
)
PAST_DEADLINE = metrics.gauge(
    "shop_orders_past_deadline",
    "Orders whose wait is over but that the deadline sweeper has not closed yet.",
    ["service"],
)
PAST_DEADLINE_SECONDS = metrics.gauge(
    "shop_orders_past_deadline_seconds",
    "How long ago the deadline of the most overdue open order passed (0 when none is).",
    ["service"],
)


def record_step(order: Order, before: Status) -> None:
    """Observe the order's new status, if it moved (call after the move is saved)."""
    if order.status == before:
        return
    elapsed = (datetime.now(UTC) - order.created_at).total_seconds()
    SAGA_STEP.labels(service="order", step=order.status).observe(max(elapsed, 0.0))


def order_sampler(store: OrderStore, clock: Clock) -> metrics.ScrapeHook:
    """A scrape hook: orders per status, and the orders the deadline sweeper should have
    closed by the service's clock."""

    async def sample() -> None:
        counts = await store.count_by_status()
        for status in STATUSES:
            ORDERS_BY_STATUS.labels(service="order", status=status).set(counts.get(status, 0))
        now = clock()
        overdue, oldest = await store.past_deadline(list(WAITS), now)
        PAST_DEADLINE.labels(service="order").set(overdue)
        late = (now - oldest).total_seconds() if oldest is not None else 0.0
        PAST_DEADLINE_SECONDS.labels(service="order").set(max(late, 0.0))

    return sample
