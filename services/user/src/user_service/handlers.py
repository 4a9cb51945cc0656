"""Event handlers of the user service, and its handler table.

`HANDLERS` at the bottom is the only place the service's subscriptions appear: the consumer binds
the service's queue to the routing keys of its keys.
"""

from __future__ import annotations

from bus import HandlerContext, HandlerTable, document_step
from bus.documents import PROCESSED, processed_push
from contracts import Envelope
from contracts.order import OrderConfirmed


@document_step
async def count_confirmed_order(envelope: Envelope[OrderConfirmed], ctx: HandlerContext) -> None:
    """A confirmed order: orderCount + 1, preferredPaymentMethod and lastActiveAt move.

    One write (a single-document step): the count moves only on a user document that has not
    handled this event yet, and notes it as handled in the same update.
    """
    order = envelope.data
    result = await ctx.db["users"].update_one(
        {"_id": order.user_id, PROCESSED: {"$ne": ctx.processed}},
        {
            "$inc": {"order_count": 1},
            "$set": {"preferred_payment_method": order.payment_method_id},
            "$max": {"last_active_at": envelope.occurred_at},
            "$push": processed_push(ctx.processed),
        },
    )
    # Nothing matched: handled before, or the account is gone (nothing to count either way).
    ctx.duplicate = result.matched_count == 0


HANDLERS: HandlerTable = {OrderConfirmed: [count_confirmed_order]}
