"""Event handlers of the user service, and its handler table.

A handler turns its event into one command (`commands.py`) on the service's wiring, `ctx.deps`.
`HANDLERS` at the bottom is the only place the service's subscriptions appear: the consumer binds
the service's queue to the routing keys of its keys.
"""

from __future__ import annotations

from bus import HandlerTable, document_step
from contracts import Envelope
from contracts.order import OrderConfirmed
from user_service import commands
from user_service.deps import Context


@document_step
async def count_confirmed_order(envelope: Envelope[OrderConfirmed], ctx: Context) -> None:
    """A confirmed order: orderCount + 1, preferredPaymentMethod and lastActiveAt move.

    One write (a single-document step): the count moves only on a user document that has not
    handled this event yet, and notes it as handled in the same update.
    """
    counted = await commands.count_confirmed_order(
        ctx.deps, envelope.data, envelope.occurred_at, ctx.processed
    )
    ctx.duplicate = not counted


HANDLERS: HandlerTable = {OrderConfirmed: [count_confirmed_order]}
