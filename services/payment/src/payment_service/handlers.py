"""Event handlers of the payment service, and its handler table.

Each handler is a single-document step (`bus.documents`, see `commands.py` for the write
boundary): the event becomes one command on `ctx.deps`, which answers whether the payment had
handled this very delivery already (`ctx.duplicate`).

`HANDLERS` at the bottom is the only place the service's subscriptions appear: the consumer binds
the service's queue to the routing keys of its keys. The handlers' names are part of the inbox
ids stored on payments (`processed`): renaming one makes redeliveries look new.
"""

from __future__ import annotations

from bus import HandlerTable, document_step
from contracts import Envelope
from contracts.order import (
    OrderCancelled,
    OrderConfirmed,
    OrderRejected,
    PaymentRequested,
    ReturnReceived,
)
from payment_service import commands
from payment_service.commands import Step
from payment_service.deps import Context


@document_step
async def authorize_payment(envelope: Envelope[PaymentRequested], ctx: Context) -> None:
    """Fraud rules, then authorize with retries (`commands.authorize`)."""
    ctx.duplicate = not await commands.authorize(ctx.deps, Step(envelope, ctx.processed))


@document_step
async def capture_payment(envelope: Envelope[OrderConfirmed], ctx: Context) -> None:
    """Capture once the order is final (`commands.capture`)."""
    ctx.duplicate = not await commands.capture(ctx.deps, Step(envelope, ctx.processed))


@document_step
async def void_payment(envelope: Envelope[OrderCancelled | OrderRejected], ctx: Context) -> None:
    """Release an authorization when the order ends unpaid (`commands.void`)."""
    ctx.duplicate = not await commands.void(ctx.deps, Step(envelope, ctx.processed))


@document_step
async def refund_return(envelope: Envelope[ReturnReceived], ctx: Context) -> None:
    """Refund a received return once (`commands.refund`)."""
    ctx.duplicate = not await commands.refund(ctx.deps, Step(envelope, ctx.processed))


HANDLERS: HandlerTable = {
    PaymentRequested: [authorize_payment],
    OrderConfirmed: [capture_payment],
    OrderCancelled: [void_payment],
    OrderRejected: [void_payment],
    ReturnReceived: [refund_return],
}
