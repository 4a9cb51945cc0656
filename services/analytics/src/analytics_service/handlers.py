"""Event handlers of the analytics service, and its handler table.

`HANDLERS` at the bottom is the only place the service's subscriptions appear. Analytics keeps the
raw event store and the audit trail, so its queue also receives every event: `BINDINGS` adds the
`#` binding through the bus config's extra bindings.

One handler, `record_event`, takes every event: one inbox row and one transaction per event, in
which it inserts the event's row (raw envelope + audit entry, keyed by event id) and then runs the
event's projections (`PROJECTIONS`: order facts, user facts, products, promotions). Every write is
keyed so that a redelivered event changes nothing (ids, `$addToSet`, `$min`/`$max`, a fold that is
replayed over the stored fact only once thanks to the inbox).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from analytics_service.domain import ORDER_EVENTS, audit_entry, fold_order, loyalty_grant
from analytics_service.store import AnalyticsStore
from bus import HandlerContext, HandlerTable
from contracts import SYSTEM, Envelope, Event
from contracts.analytics import PromotionGranted
from contracts.inventory import (
    ProductCreated,
    ProductDeleted,
    ProductUpdated,
    StockAdjusted,
    StockLow,
    StockPartiallyReserved,
    StockUnavailable,
)
from contracts.order import OrderConfirmed, OrderPlaced, PromotionRedeemed
from contracts.user import (
    UserDeleted,
    UserLoggedIn,
    UserProfileUpdated,
    UserRegistered,
    UserRoleChanged,
)

BINDINGS: tuple[str, ...] = ("#",)


def event_row(envelope: Envelope[Event]) -> dict[str, Any]:
    """The event's row in `events`: the envelope as received, its audit entry under `audit`."""
    row = envelope.model_dump(mode="python")
    row["data"] = envelope.data.model_dump(mode="json", by_alias=True)
    row["_id"] = row.pop("id")
    row["recorded_at"] = datetime.now(UTC)
    audit = audit_entry(envelope)
    del audit["_id"]
    row["audit"] = audit
    return row


async def record_event(envelope: Envelope[Event], ctx: HandlerContext) -> None:
    """Record the event (raw store + audit trail, one insert) and fold it into the projections."""
    if not await AnalyticsStore(ctx.db).record(event_row(envelope), ctx.session):
        # Recorded already, with its projections (same transaction): nothing left to do.
        ctx.log.info("analytics.already_recorded")
        return
    for project in PROJECTIONS.get(type(envelope.data), ()):
        await project(envelope, ctx)


async def track_order(envelope: Envelope[Event], ctx: HandlerContext) -> None:
    """Fold an order event into its order fact; count confirmed orders and grant promotions."""
    store = AnalyticsStore(ctx.db)
    data: Any = envelope.data
    fact = fold_order(await store.order_fact(data.order_id, ctx.session), envelope)
    await store.save_order_fact(fact, ctx.session)
    user_id = fact.get("user_id")
    if not user_id:
        return
    at = envelope.occurred_at
    if isinstance(data, OrderPlaced):
        await store.update_user(
            user_id,
            latest={"last_active_at": at},
            add_to={"orders": data.order_id},
            session=ctx.session,
        )
    elif isinstance(data, OrderConfirmed):
        user = await store.update_user(
            user_id,
            add_to={"confirmed_orders": data.order_id},
            set_once={"first_order_at": at},
            latest={"last_active_at": at},
            session=ctx.session,
        )
        grant = loyalty_grant(
            user_id, len(user.get("confirmed_orders", [])), user.get("granted_rules", []), at
        )
        if grant is not None:
            await store.save_promotion(user_id, grant, at, ctx.session)
            await store.update_user(
                user_id, add_to={"granted_rules": grant.rule}, session=ctx.session
            )
            await ctx.emit(
                PromotionGranted(
                    user_id=user_id,
                    code=grant.code,
                    percent_off=grant.percent_off,
                    expires_at=grant.expires_at,
                    reason=grant.reason,
                ),
                actor=SYSTEM,
            )


async def track_user(envelope: Envelope[Event], ctx: HandlerContext) -> None:
    """Keep a user's funnel facts: registration, profile completion, role, last activity."""
    store = AnalyticsStore(ctx.db)
    data = envelope.data
    at = envelope.occurred_at
    match data:
        case UserRegistered():
            await store.update_user(
                data.user_id,
                set_={"role": data.role, "region": data.region},
                set_once={"registered_at": at},
                latest={"last_active_at": at},
                session=ctx.session,
            )
        case UserProfileUpdated():
            await store.update_user(
                data.user_id,
                set_once={"profile_complete_at": at} if data.is_profile_complete else None,
                latest={"last_active_at": at},
                session=ctx.session,
            )
        case UserLoggedIn():
            await store.update_user(
                data.user_id, latest={"last_active_at": at}, session=ctx.session
            )
        case UserRoleChanged():
            await store.update_user(data.user_id, set_={"role": data.role}, session=ctx.session)
        case UserDeleted():
            await store.update_user(data.user_id, set_={"deleted": True}, session=ctx.session)


async def track_product(envelope: Envelope[Event], ctx: HandlerContext) -> None:
    """Keep the catalogue replica and each product's last known stock."""
    store = AnalyticsStore(ctx.db)
    data = envelope.data
    match data:
        case ProductCreated() | ProductUpdated() | ProductDeleted():
            await store.upsert_product(
                data.product_id,
                {
                    "name": data.name,
                    "category": data.category,
                    "price_cents": data.price_cents,
                    "deleted": isinstance(data, ProductDeleted),
                },
                ctx.session,
            )
        case StockLow() | StockAdjusted():
            await _stock(store, data.product_id, data.available, envelope, ctx)
        case StockUnavailable() | StockPartiallyReserved():
            # A line is missing only when inventory took every unit it had (a partial take is
            # all of them): whatever `available` said before the take, none are left after it.
            for line in data.missing:
                await _stock(store, line.product_id, 0, envelope, ctx)


async def _stock(
    store: AnalyticsStore,
    product_id: str,
    available: int,
    envelope: Envelope[Event],
    ctx: HandlerContext,
) -> None:
    # The newest stock news wins, whatever order the events are handled in.
    current = await store.products.find_one({"_id": product_id}, session=ctx.session)
    seen = (current or {}).get("stock_at")
    at = envelope.occurred_at.replace(microsecond=envelope.occurred_at.microsecond // 1000 * 1000)
    if seen is None or seen < at:  # Mongo keeps milliseconds: compare at that precision
        await store.upsert_product(
            product_id, {"available": available, "stock_at": envelope.occurred_at}, ctx.session
        )


async def redeem_promotion(envelope: Envelope[Event], ctx: HandlerContext) -> None:
    """Mark a promotion code used (single use)."""
    data = envelope.data
    assert isinstance(data, PromotionRedeemed)
    await AnalyticsStore(ctx.db).promotions.update_one(
        {"_id": data.code},
        {"$set": {"redeemed_at": envelope.occurred_at, "redeemed_order_id": data.order_id}},
        upsert=True,
        session=ctx.session,
    )


USER_EVENTS: tuple[type[Event], ...] = (
    UserRegistered,
    UserProfileUpdated,
    UserLoggedIn,
    UserRoleChanged,
    UserDeleted,
)
PRODUCT_EVENTS: tuple[type[Event], ...] = (
    ProductCreated,
    ProductUpdated,
    ProductDeleted,
    StockLow,
    StockAdjusted,
    StockUnavailable,
    StockPartiallyReserved,
)


type Projection = Callable[[Envelope[Event], HandlerContext], Awaitable[None]]


def _projections() -> dict[type[Event], list[Projection]]:
    table: dict[type[Event], list[Projection]] = {PromotionRedeemed: [redeem_promotion]}
    for classes, project in (
        (ORDER_EVENTS, track_order),
        (USER_EVENTS, track_user),
        (PRODUCT_EVENTS, track_product),
    ):
        for cls in classes:
            table.setdefault(cls, []).append(project)
    return table


PROJECTIONS: dict[type[Event], list[Projection]] = _projections()
"""What each event type feeds besides the event store (StockPartiallyReserved: two)."""

HANDLERS: HandlerTable = {Event: [record_event]}
