"""Event handlers of the shipping service, and its handler table.

A CONFIRMED order becomes one shipment in the consumer's transaction (`commands.create_shipment`),
which emits ShipmentCreated. The handler is `@deduplicated_by_state`: the shipment's id is derived
from the order's, so a duplicate or a redelivery finds it (or hits its unique key) and changes
nothing, without an inbox row.

`HANDLERS` at the bottom is the only place the service's subscriptions appear: the consumer binds
the service's queue to the routing keys of its keys.
"""

from __future__ import annotations

from bus import HandlerTable, deduplicated_by_state
from contracts import Envelope
from contracts.order import OrderConfirmed
from shipping_service import commands
from shipping_service.deps import Context


@deduplicated_by_state
async def create_shipment_for_order(envelope: Envelope[OrderConfirmed], ctx: Context) -> None:
    """Queue a confirmed order's fulfilled lines for its address: ShipmentCreated (PENDING)."""
    order = envelope.data
    events = await commands.create_shipment(
        ctx.deps,
        ctx.session,
        order_id=order.order_id,
        user_id=order.user_id,
        items=[(item.product_id, item.quantity) for item in order.items],
        address=order.address,
    )
    for event in events:
        await ctx.emit(event)


HANDLERS: HandlerTable = {OrderConfirmed: [create_shipment_for_order]}
