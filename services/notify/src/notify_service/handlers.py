"""Event handlers of the notify service, and its handler table.

Each handler runs one command (`commands.py`) in its transaction and gives the rows it wrote for
sending to this process's delivery worker (`ctx.deps.worker`) once that transaction committed:
a handler never talks to a provider, so a slow or failing channel never holds up the saga.
`HANDLERS` at the bottom is the only place the subscriptions appear.
"""

from __future__ import annotations

from functools import partial

from bus import HandlerTable, deduplicated_by_state
from contracts import Envelope, Event
from contracts.analytics import PromotionGranted
from contracts.inventory import StockLow, StockPartiallyReserved
from contracts.order import (
    OrderApprovalRequired,
    OrderCancelled,
    OrderConfirmed,
    OrderPlaced,
    OrderRejected,
    ReturnApproved,
    ReturnRejected,
    ReturnRequested,
)
from contracts.payment import PaymentFailed, PaymentRefunded
from contracts.shipping import ShipmentDelivered, ShipmentDispatched
from contracts.user import (
    UserDeleted,
    UserLoggedIn,
    UserProfileUpdated,
    UserRegistered,
    UserRoleChanged,
)
from notify_service import commands
from notify_service.commands import Handover
from notify_service.deps import Context


def _hand_over_after_commit(ctx: Context, handover: Handover) -> None:
    """Before the commit the worker would send a row that may yet be rolled back."""
    if handover.rows:
        ctx.after_commit(partial(ctx.deps.worker.hand_over, handover.rows, handover.after))


@deduplicated_by_state
async def notify_about_event(envelope: Envelope[Event], ctx: Context) -> None:
    """Write the notifications an event asks for, once per (event, channel, recipient)."""
    handover = await commands.record_notifications(ctx.deps, envelope, ctx.session)
    _hand_over_after_commit(ctx, handover)


async def keep_user_replica(envelope: Envelope[Event], ctx: Context) -> None:
    """Keep the replica of a user's contact, role and channels; nudge an incomplete profile once."""
    handover = await commands.update_user_replica(ctx.deps, envelope, ctx.session)
    _hand_over_after_commit(ctx, handover)


HANDLERS: HandlerTable = {
    # The replica first: a welcome email needs the address UserRegistered just brought.
    UserRegistered: [keep_user_replica, notify_about_event],
    UserProfileUpdated: [keep_user_replica],
    UserRoleChanged: [keep_user_replica],
    UserDeleted: [keep_user_replica],
    UserLoggedIn: [keep_user_replica],
    OrderPlaced: [notify_about_event],
    StockPartiallyReserved: [notify_about_event],
    OrderConfirmed: [notify_about_event],
    OrderRejected: [notify_about_event],
    OrderCancelled: [notify_about_event],
    PaymentFailed: [notify_about_event],
    PromotionGranted: [notify_about_event],
    OrderApprovalRequired: [notify_about_event],
    StockLow: [notify_about_event],
    # After CONFIRMED: the parcel, the returns and their refunds.
    ShipmentDispatched: [notify_about_event],
    ShipmentDelivered: [notify_about_event],
    ReturnRequested: [notify_about_event],
    ReturnApproved: [notify_about_event],
    ReturnRejected: [notify_about_event],
    PaymentRefunded: [notify_about_event],
}
# The events that notify someone (`domain.drafts_for` has a template for each).
NOTIFYING_EVENTS: tuple[type[Event], ...] = tuple(
    cls for cls, handlers in HANDLERS.items() if notify_about_event in handlers
)
