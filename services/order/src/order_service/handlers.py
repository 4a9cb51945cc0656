"""Event handlers of the order service, and its handler table.

Replica keepers write an event's facts into the local replica, applying only data newer than
what is stored (see `replicas`). Saga handlers load the order, call the one domain method for the
event, save it (conditional on its version) and emit what the aggregate raised, under the ids the
timeline already names. A late or duplicate event changes nothing and emits nothing.
`HANDLERS` at the bottom is the only place the service's subscriptions appear: the consumer binds
the service's queue to the routing keys of its keys.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from typing import Any

import structlog

from bus import HandlerContext, HandlerTable, document_step
from contracts import Envelope
from contracts.analytics import PromotionGranted
from contracts.inventory import (
    ProductCreated,
    ProductDeleted,
    ProductUpdated,
    StockCommitFailed,
    StockCommitted,
    StockPartiallyReserved,
    StockReleased,
    StockReserved,
    StockUnavailable,
)
from contracts.payment import (
    PaymentAuthorized,
    PaymentCaptured,
    PaymentFailed,
    PaymentRefunded,
    PaymentReviewRequired,
    PaymentVoided,
)
from contracts.user import UserDeleted, UserProfileUpdated, UserRegistered, UserRoleChanged
from order_service import replicas, store
from order_service.domain import Cause, Order, Policy
from order_service.metrics import record_step

log = structlog.get_logger("order.handlers")


async def replicate_registered_user(
    envelope: Envelope[UserRegistered], ctx: HandlerContext
) -> None:
    """Add a new account to the user replica."""
    await replicas.user_registered(ctx.db, envelope.data, envelope.occurred_at, ctx.session)


async def replicate_user_profile(
    envelope: Envelope[UserProfileUpdated], ctx: HandlerContext
) -> None:
    """Keep the user replica's profile (completeness, addresses, payment methods, preferences)."""
    await replicas.user_profile_updated(ctx.db, envelope.data, envelope.occurred_at, ctx.session)


async def replicate_user_role(envelope: Envelope[UserRoleChanged], ctx: HandlerContext) -> None:
    """Keep the user replica's role."""
    await replicas.user_role_changed(ctx.db, envelope.data, envelope.occurred_at, ctx.session)


async def replicate_user_deletion(envelope: Envelope[UserDeleted], ctx: HandlerContext) -> None:
    """Mark a deleted user in the replica."""
    await replicas.user_deleted(ctx.db, envelope.data, envelope.occurred_at, ctx.session)


async def replicate_product(
    envelope: Envelope[ProductCreated | ProductUpdated | ProductDeleted], ctx: HandlerContext
) -> None:
    """Keep the product replica's name, price and currency (and deletion)."""
    await replicas.product_changed(ctx.db, envelope.data, envelope.occurred_at, ctx.session)


async def replicate_promotion(envelope: Envelope[PromotionGranted], ctx: HandlerContext) -> None:
    """Remember a promotion granted to a user."""
    await replicas.promotion_granted(ctx.db, envelope.data, envelope.occurred_at, ctx.session)


# --- saga steps -------------------------------------------------------------------------------


def cause_of(envelope: Envelope[Any]) -> Cause:
    """The step's cause: now, the event's actor, its source service, id and type."""
    return Cause(
        at=datetime.now(UTC),
        actor=envelope.actor,
        service=envelope.source,
        event_id=envelope.id,
        event_type=envelope.type,
    )


async def advance(
    ctx: HandlerContext, order_id: str, step: Callable[[Order, Cause], object]
) -> Order | None:
    """Load the order, apply one step and, if it moved, save it with the events it raised and
    the handled event's id: one write (a single-document step, `bus.documents`)."""
    order, duplicate = await store.get_for_step(ctx.db, order_id, ctx.processed)
    if order is None:
        # Every order event names an order this service stored before emitting OrderPlaced.
        log.warning("saga.unknown_order", order_id=order_id, event_type=ctx.envelope.type)
        return None
    if duplicate:
        ctx.duplicate = True
        return order
    before, status = len(order.timeline), order.status
    step(order, cause_of(ctx.envelope))
    if len(order.timeline) == before:
        log.debug(
            "saga.ignored", order_id=order_id, status=order.status, event_type=ctx.envelope.type
        )
        # Late or repeated in another envelope: nothing changes, but the id is noted so that
        # a redelivery stops at the read (and a test can tell that it was handled).
        await store.note_processed(ctx.db, order_id, ctx.processed)
        return order
    cause = ctx.envelope
    events = [
        raised.envelope(cause.correlation_id, causation_id=cause.id, actor=cause.actor)
        for raised in order.pull_events()
    ]
    await store.save(
        ctx.db,
        order,
        None,
        events=events,
        processed=ctx.processed,
        outbox=ctx.documents(store.ORDERS),
    )
    ctx.emitted.extend(events)
    record_step(order, status)
    return order


@document_step
async def continue_after_reservation(
    envelope: Envelope[StockReserved], ctx: HandlerContext, *, policy: Policy
) -> None:
    """Every line held: on to approval or payment (PaymentRequested / OrderApprovalRequired)."""
    data = envelope.data
    await advance(
        ctx, data.order_id, lambda o, c: o.stock_reserved(data.lines, data.expires_at, c, policy)
    )


@document_step
async def apply_partial_reservation(
    envelope: Envelope[StockPartiallyReserved], ctx: HandlerContext, *, policy: Policy
) -> None:
    """Some lines held: the customer's preference decides (accept, cancel or ask)."""
    data = envelope.data
    await advance(
        ctx,
        data.order_id,
        lambda o, c: o.stock_partially_reserved(
            data.reserved, data.missing, data.expires_at, c, policy
        ),
    )


@document_step
async def reject_out_of_stock_order(
    envelope: Envelope[StockUnavailable], ctx: HandlerContext
) -> None:
    """Nothing held: REJECTED OUT_OF_STOCK with alternatives (OrderRejected)."""
    data = envelope.data
    await advance(
        ctx, data.order_id, lambda o, c: o.stock_unavailable(data.alternatives, c, data.missing)
    )


@document_step
async def confirm_committed_order(envelope: Envelope[StockCommitted], ctx: HandlerContext) -> None:
    """Stock sold: CONFIRMED (OrderConfirmed; payment captures)."""
    await advance(ctx, envelope.data.order_id, lambda o, c: o.stock_committed(c))


@document_step
async def cancel_uncommitted_order(
    envelope: Envelope[StockCommitFailed], ctx: HandlerContext
) -> None:
    """Reservation lost after payment: CANCELLED COMMIT_FAILED (OrderCancelled; payment voids)."""
    reason = envelope.data.reason
    await advance(ctx, envelope.data.order_id, lambda o, c: o.stock_commit_failed(reason, c))


@document_step
async def pay_authorized_order(
    envelope: Envelope[PaymentAuthorized], ctx: HandlerContext, *, policy: Policy
) -> None:
    """Money held: PAID (OrderPaid; inventory commits). Late ones after a cancel commit nothing."""
    data = envelope.data
    await advance(
        ctx,
        data.order_id,
        lambda o, c: o.payment_authorized(data.payment_id, data.attempts, c, policy),
    )


@document_step
async def hold_failed_payment(
    envelope: Envelope[PaymentFailed], ctx: HandlerContext, *, policy: Policy
) -> None:
    """Authorization failed: PAYMENT_FAILED, the reservation kept while the window is open."""
    data = envelope.data
    await advance(
        ctx, data.order_id, lambda o, c: o.payment_failed(data.reason, data.attempts, c, policy)
    )


@document_step
async def send_flagged_order_to_review(
    envelope: Envelope[PaymentReviewRequired], ctx: HandlerContext, *, policy: Policy
) -> None:
    """Fraud rules flagged the payment: AWAITING_APPROVAL with fraudFlag."""
    await advance(ctx, envelope.data.order_id, lambda o, c: o.approval_needed("fraud", c, policy))


@document_step
async def note_or_cancel_on_release(envelope: Envelope[StockReleased], ctx: HandlerContext) -> None:
    """Stock given back: a timeline step; an expired hold while the order waits cancels it."""
    reason = envelope.data.reason
    await advance(ctx, envelope.data.order_id, lambda o, c: o.stock_released(reason, c))


@document_step
async def note_payment_settlement(
    envelope: Envelope[PaymentCaptured | PaymentVoided | PaymentRefunded], ctx: HandlerContext
) -> None:
    """Captured, voided or refunded: a timeline step (the order's status does not change)."""
    data = envelope.data
    step = {
        "PaymentCaptured": "paymentCaptured",
        "PaymentVoided": "paymentVoided",
        "PaymentRefunded": "paymentRefunded",
    }[envelope.type]
    detail = {"paymentId": data.payment_id, "amountCents": data.amount_cents}
    await advance(ctx, data.order_id, lambda o, c: o.payment_settled(step, detail, c))


def handler_table(policy: Policy | None = None) -> HandlerTable:
    """The service's subscriptions, with the saga's windows and threshold."""
    policy = policy or Policy()
    return {
        UserRegistered: [replicate_registered_user],
        UserProfileUpdated: [replicate_user_profile],
        UserRoleChanged: [replicate_user_role],
        UserDeleted: [replicate_user_deletion],
        ProductCreated: [replicate_product],
        ProductUpdated: [replicate_product],
        ProductDeleted: [replicate_product],
        PromotionGranted: [replicate_promotion],
        StockReserved: [partial(continue_after_reservation, policy=policy)],
        StockPartiallyReserved: [partial(apply_partial_reservation, policy=policy)],
        StockUnavailable: [reject_out_of_stock_order],
        StockCommitted: [confirm_committed_order],
        StockCommitFailed: [cancel_uncommitted_order],
        PaymentAuthorized: [partial(pay_authorized_order, policy=policy)],
        PaymentFailed: [partial(hold_failed_payment, policy=policy)],
        PaymentReviewRequired: [partial(send_flagged_order_to_review, policy=policy)],
        StockReleased: [note_or_cancel_on_release],
        PaymentCaptured: [note_payment_settlement],
        PaymentVoided: [note_payment_settlement],
        PaymentRefunded: [note_payment_settlement],
    }


HANDLERS: HandlerTable = handler_table()
