"""Event handlers of the user service, and its handler table.

`HANDLERS` at the bottom is the only place the service's subscriptions appear: the consumer binds
the service's queue to the routing keys of its keys.
"""

from __future__ import annotations

from bus import HandlerContext, HandlerTable
from contracts import Envelope
from contracts.order import OrderConfirmed


async def count_confirmed_order(envelope: Envelope[OrderConfirmed], ctx: HandlerContext) -> None:
    """A confirmed order: orderCount + 1, preferredPaymentMethod and lastActiveAt move."""
    # Once per event id: the consumer's inbox row commits in this same transaction, so a
    # redelivered OrderConfirmed is skipped before it gets here.
    order = envelope.data
    await ctx.db["users"].update_one(
        {"_id": order.user_id},
        {
            "$inc": {"order_count": 1},
            "$set": {"preferred_payment_method": order.payment_method_id},
            "$max": {"last_active_at": envelope.occurred_at},
        },
        session=ctx.session,
    )


HANDLERS: HandlerTable = {OrderConfirmed: [count_confirmed_order]}
