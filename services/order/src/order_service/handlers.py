"""Event handlers of the order service, and its handler table.

Each handler turns its event into one command (`commands.py`) on the service's wiring
(`ctx.deps`). Replica keepers write an event's facts into the local replica, applying only data
newer than what is stored (see `replicas`). Saga handlers are single-document steps: the command
loads the order, calls the one domain method for the event, saves it (conditional on its version)
with what the aggregate raised, under the ids the timeline already names. A late or duplicate
event changes nothing and emits nothing.
`HANDLERS` at the bottom is the only place the service's subscriptions appear: the consumer binds
the service's queue to the routing keys of its keys. Handler names are part of inbox ids: keep
them.
"""

from __future__ import annotations

from bus import HandlerTable, document_step
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
    StockReturned,
    StockUnavailable,
)
from contracts.payment import (
    PaymentAuthorized,
    PaymentCaptured,
    PaymentFailed,
    PaymentRefunded,
    PaymentRefundFailed,
    PaymentReviewRequired,
    PaymentVoided,
)
from contracts.shipping import ShipmentCreated, ShipmentDelivered, ShipmentDispatched
from contracts.user import UserDeleted, UserProfileUpdated, UserRegistered, UserRoleChanged
from order_service import commands
from order_service.deps import Context

# --- replicas ---------------------------------------------------------------------------------


async def replicate_registered_user(envelope: Envelope[UserRegistered], ctx: Context) -> None:
    """Add a new account to the user replica."""
    await commands.replicate(ctx.deps, envelope, ctx.session)


async def replicate_user_profile(envelope: Envelope[UserProfileUpdated], ctx: Context) -> None:
    """Keep the user replica's profile (completeness, addresses, payment methods, preferences)."""
    await commands.replicate(ctx.deps, envelope, ctx.session)


async def replicate_user_role(envelope: Envelope[UserRoleChanged], ctx: Context) -> None:
    """Keep the user replica's role."""
    await commands.replicate(ctx.deps, envelope, ctx.session)


async def replicate_user_deletion(envelope: Envelope[UserDeleted], ctx: Context) -> None:
    """Mark a deleted user in the replica."""
    await commands.replicate(ctx.deps, envelope, ctx.session)


async def replicate_product(
    envelope: Envelope[ProductCreated | ProductUpdated | ProductDeleted], ctx: Context
) -> None:
    """Keep the product replica's name, price and currency (and deletion)."""
    await commands.replicate(ctx.deps, envelope, ctx.session)


async def replicate_promotion(envelope: Envelope[PromotionGranted], ctx: Context) -> None:
    """Remember a promotion granted to a user."""
    await commands.replicate(ctx.deps, envelope, ctx.session)


# --- saga steps -------------------------------------------------------------------------------


@document_step
async def continue_after_reservation(envelope: Envelope[StockReserved], ctx: Context) -> None:
    """Every line held: on to approval or payment (PaymentRequested / OrderApprovalRequired)."""
    await commands.stock_reserved(ctx, envelope.data)


@document_step
async def apply_partial_reservation(
    envelope: Envelope[StockPartiallyReserved], ctx: Context
) -> None:
    """Some lines held: the customer's preference decides (accept, cancel or ask)."""
    await commands.stock_partially_reserved(ctx, envelope.data)


@document_step
async def reject_out_of_stock_order(envelope: Envelope[StockUnavailable], ctx: Context) -> None:
    """Nothing held: REJECTED OUT_OF_STOCK with alternatives (OrderRejected)."""
    await commands.stock_unavailable(ctx, envelope.data)


@document_step
async def confirm_committed_order(envelope: Envelope[StockCommitted], ctx: Context) -> None:
    """Stock sold: CONFIRMED (OrderConfirmed; payment captures)."""
    await commands.stock_committed(ctx, envelope.data)


@document_step
async def cancel_uncommitted_order(envelope: Envelope[StockCommitFailed], ctx: Context) -> None:
    """Reservation lost after payment: CANCELLED COMMIT_FAILED (OrderCancelled; payment voids)."""
    await commands.stock_commit_failed(ctx, envelope.data)


@document_step
async def pay_authorized_order(envelope: Envelope[PaymentAuthorized], ctx: Context) -> None:
    """Money held: PAID (OrderPaid; inventory commits). Late ones after a cancel commit nothing."""
    await commands.payment_authorized(ctx, envelope.data)


@document_step
async def hold_failed_payment(envelope: Envelope[PaymentFailed], ctx: Context) -> None:
    """Authorization failed: PAYMENT_FAILED, the reservation kept while the window is open."""
    await commands.payment_failed(ctx, envelope.data)


@document_step
async def send_flagged_order_to_review(
    envelope: Envelope[PaymentReviewRequired], ctx: Context
) -> None:
    """Fraud rules flagged the payment: AWAITING_APPROVAL with fraudFlag."""
    await commands.review_required(ctx, envelope.data)


@document_step
async def note_or_cancel_on_release(envelope: Envelope[StockReleased], ctx: Context) -> None:
    """Stock given back: a timeline step; an expired hold while the order waits cancels it."""
    await commands.stock_released(ctx, envelope.data)


@document_step
async def note_payment_settlement(
    envelope: Envelope[PaymentCaptured | PaymentVoided], ctx: Context
) -> None:
    """Captured or voided: a timeline step (the order's status does not change)."""
    await commands.payment_settled(ctx, envelope.data)


# --- after CONFIRMED: the shipment and the returns ------------------------------------------


@document_step
async def track_created_shipment(envelope: Envelope[ShipmentCreated], ctx: Context) -> None:
    """The parcel waits in the warehouse: fulfilment PENDING (the order stays CONFIRMED)."""
    await commands.shipment_created(ctx, envelope.data)


@document_step
async def track_dispatched_shipment(envelope: Envelope[ShipmentDispatched], ctx: Context) -> None:
    """The parcel left: fulfilment SHIPPED with carrier and tracking number."""
    await commands.shipment_dispatched(ctx, envelope.data)


@document_step
async def track_delivered_shipment(envelope: Envelope[ShipmentDelivered], ctx: Context) -> None:
    """The parcel arrived: fulfilment DELIVERED, returns open."""
    await commands.shipment_delivered(ctx, envelope.data)


@document_step
async def settle_return_refund(
    envelope: Envelope[PaymentRefunded | PaymentRefundFailed], ctx: Context
) -> None:
    """A return refunded (REFUNDED, `refundedCents` grows once) or not (REFUND_FAILED)."""
    await commands.refund_settled(ctx, envelope.data)


@document_step
async def note_restocked_return(envelope: Envelope[StockReturned], ctx: Context) -> None:
    """The return's units are back on sale: `restockedAt` on the return, a timeline step."""
    await commands.stock_returned(ctx, envelope.data)


HANDLERS: HandlerTable = {
    UserRegistered: [replicate_registered_user],
    UserProfileUpdated: [replicate_user_profile],
    UserRoleChanged: [replicate_user_role],
    UserDeleted: [replicate_user_deletion],
    ProductCreated: [replicate_product],
    ProductUpdated: [replicate_product],
    ProductDeleted: [replicate_product],
    PromotionGranted: [replicate_promotion],
    StockReserved: [continue_after_reservation],
    StockPartiallyReserved: [apply_partial_reservation],
    StockUnavailable: [reject_out_of_stock_order],
    StockCommitted: [confirm_committed_order],
    StockCommitFailed: [cancel_uncommitted_order],
    PaymentAuthorized: [pay_authorized_order],
    PaymentFailed: [hold_failed_payment],
    PaymentReviewRequired: [send_flagged_order_to_review],
    StockReleased: [note_or_cancel_on_release],
    PaymentCaptured: [note_payment_settlement],
    PaymentVoided: [note_payment_settlement],
    PaymentRefunded: [settle_return_refund],
    PaymentRefundFailed: [settle_return_refund],
    StockReturned: [note_restocked_return],
    ShipmentCreated: [track_created_shipment],
    ShipmentDispatched: [track_dispatched_shipment],
    ShipmentDelivered: [track_delivered_shipment],
}
