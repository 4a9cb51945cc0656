"""Event handlers of the inventory service, and its handler table.

Each handler turns its event into one stock step of `commands` in the consumer's transaction
and emits what the step answers. They are `@deduplicated_by_state`: the step moves the order's
reservation only from the status it expects (a restock inserts its return's record, keyed by the
return id), so a duplicate or a late event changes nothing and emits nothing, without an inbox
row.

`HANDLERS` at the bottom is the only place the service's subscriptions appear: the consumer binds
the service's queue to the routing keys of its keys.
"""

from __future__ import annotations

from collections.abc import Sequence

from bus import HandlerTable, deduplicated_by_state
from contracts import Envelope, Event
from contracts.order import (
    OrderApprovalRequired,
    OrderCancelled,
    OrderPaid,
    OrderPlaced,
    OrderRejected,
    ReturnReceived,
)
from inventory_service import commands
from inventory_service.deps import Context
from inventory_service.domain import release_reason


async def _emit(ctx: Context, events: Sequence[Event]) -> None:
    for event in events:
        await ctx.emit(event)


@deduplicated_by_state
async def reserve_stock_for_order(envelope: Envelope[OrderPlaced], ctx: Context) -> None:
    """Reserve a placed order's lines: StockReserved, StockPartiallyReserved or StockUnavailable
    (held for the service's `reservation_ttl_seconds`)."""
    order = envelope.data
    items = [(item.product_id, item.quantity) for item in order.items]
    events = await commands.reserve(
        ctx.deps, ctx.session, order_id=order.order_id, user_id=order.user_id, items=items
    )
    await _emit(ctx, events)


@deduplicated_by_state
async def release_stock_for_cancelled_order(
    envelope: Envelope[OrderCancelled], ctx: Context
) -> None:
    """Give a cancelled order's reservation back (compensation): StockReleased."""
    reason = release_reason(envelope.data.reason)
    order_id = envelope.data.order_id
    events = await commands.release(ctx.deps, ctx.session, order_id=order_id, reason=reason)
    await _emit(ctx, events)


@deduplicated_by_state
async def release_stock_for_rejected_order(envelope: Envelope[OrderRejected], ctx: Context) -> None:
    """Give a rejected order's reservation back (compensation): StockReleased."""
    order_id = envelope.data.order_id
    events = await commands.release(ctx.deps, ctx.session, order_id=order_id, reason="rejected")
    await _emit(ctx, events)


@deduplicated_by_state
async def hold_stock_during_approval(
    envelope: Envelope[OrderApprovalRequired], ctx: Context
) -> None:
    """An order waits for a Manager: keep its stock until the approval deadline, not the usual
    reservation expiry (a Manager's approval must not find the stock gone)."""
    data = envelope.data
    await commands.hold_until(ctx.deps, ctx.session, order_id=data.order_id, until=data.hold_until)


@deduplicated_by_state
async def commit_stock_for_order(envelope: Envelope[OrderPaid], ctx: Context) -> None:
    """Make a paid order's reservation a sale: StockCommitted, or StockCommitFailed."""
    paid = [(line.product_id, line.quantity) for line in envelope.data.lines]
    order_id = envelope.data.order_id
    events = await commands.commit(ctx.deps, ctx.session, order_id=order_id, paid_lines=paid)
    await _emit(ctx, events)


@deduplicated_by_state
async def restock_returned_units(envelope: Envelope[ReturnReceived], ctx: Context) -> None:
    """Put a received return's units back on sale, once per return: StockReturned."""
    data = envelope.data
    lines = [(line.product_id, line.quantity) for line in data.lines]
    events = await commands.restock(
        ctx.deps, ctx.session, return_id=data.return_id, order_id=data.order_id, lines=lines
    )
    await _emit(ctx, events)


HANDLERS: HandlerTable = {
    OrderPlaced: [reserve_stock_for_order],
    OrderCancelled: [release_stock_for_cancelled_order],
    OrderRejected: [release_stock_for_rejected_order],
    OrderPaid: [commit_stock_for_order],
    OrderApprovalRequired: [hold_stock_during_approval],
    ReturnReceived: [restock_returned_units],
}
