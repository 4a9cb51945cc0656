"""Event handlers and admin commands of the inventory service, and its handler table.

The stock operations (`reserve`, `release`, `commit`) take the database and a transaction and
return the events they raise; handlers emit them through `ctx.emit`, the sweeper and HTTP routes
through the outbox. Every operation is idempotent by the reservation's status (one reservation
record per order, moved by conditional updates), independently of the bus inbox: a duplicate or a
late event finds the status already moved and changes nothing.

`HANDLERS` at the bottom is the only place the service's subscriptions appear: the consumer binds
the service's queue to the routing keys of its keys.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from functools import partial
from typing import Any

import structlog

from bus import HandlerContext, HandlerTable, deduplicated_by_state
from contracts import Envelope, Event
from contracts.inventory import (
    StockCommitFailed,
    StockCommitted,
    StockLow,
    StockPartiallyReserved,
    StockReleased,
    StockReserved,
    StockUnavailable,
)
from contracts.order import (
    OrderApprovalRequired,
    OrderCancelled,
    OrderPaid,
    OrderPlaced,
    OrderRejected,
)
from contracts.types import Line, MissingLine
from inventory_service import store
from inventory_service.domain import (
    COMMITTABLE,
    RELEASABLE,
    Ledger,
    LineRequest,
    LineResult,
    ReleaseReason,
    ReservationStatus,
    decide_outcome,
    expiry,
    low_stock_change,
    merge_lines,
    portion,
    rank_alternatives,
)
from inventory_service.store import Db, Doc, Session
from kit.transactions import Conflict

log = structlog.get_logger("inventory.handlers")

DEFAULT_RESERVATION_TTL = 900.0
# A line whose stock moved between our read and our conditional update is re-read this often
# before the transaction is given up (and retried whole by the bus).
TAKE_ATTEMPTS = 5


def utcnow() -> datetime:
    return datetime.now(UTC)


def _lines(lines: Sequence[LineRequest]) -> tuple[Line, ...]:
    return tuple(Line(product_id=line.product_id, quantity=line.quantity) for line in lines)


async def low_stock_events(db: Db, product: Doc, session: Session) -> list[Event]:
    """`StockLow` when this change took the product to its threshold (once per crossing)."""
    threshold = int(product.get("low_stock_threshold", 0))
    change = low_stock_change(product["available"], threshold, bool(product.get("low_stock")))
    if change is None:
        return []
    flipped = await store.set_low_stock_flag(db, product["_id"], change == "crossed", session)
    if change == "crossed" and flipped:
        return [
            StockLow(
                product_id=product["_id"],
                name=product["name"],
                available=product["available"],
                threshold=threshold,
            )
        ]
    return []


# --- stock operations -------------------------------------------------------------------------


async def _record_move(
    db: Db,
    session: Session,
    ledger: Ledger,
    product: Doc,
    *,
    reason: str,
    now: datetime,
    order_id: str,
    available: int = 0,
    reserved: int = 0,
    committed: int = 0,
) -> list[Event]:
    """Ledger a stock move of `product` (its document after the move); StockLow if it crossed."""
    ledger.record(
        product["_id"],
        reason=reason,
        at=now,
        order_id=order_id,
        available=available,
        reserved=reserved,
        committed=committed,
    )
    return await low_stock_events(db, product, session)


async def _take(db: Db, request: LineRequest, session: Session) -> tuple[LineResult, Doc | None]:
    """Take as many units of one line as are available: the result and the product after it."""
    # The whole line first (the common case: one conditional update, no read before it).
    after = await store.take_available(db, request.product_id, request.quantity, session)
    if after is not None:
        before = int(after["available"]) + request.quantity
        return LineResult(request.product_id, request.quantity, request.quantity, before), after
    for _ in range(TAKE_ATTEMPTS):
        product = await store.get_product(db, request.product_id, session)
        available = int(product["available"]) if product else 0
        taken = portion(request.quantity, available)
        if taken == 0:
            return LineResult(request.product_id, request.quantity, 0, available), None
        after = await store.take_available(db, request.product_id, taken, session)
        if after is not None:
            return LineResult(request.product_id, request.quantity, taken, available), after
    raise RuntimeError(f"stock of {request.product_id} kept moving; retrying the transaction")


async def _alternatives(
    db: Db, session: Session, missing: Sequence[LineResult], exclude: list[str]
) -> list[str]:
    """Up to 3 in-stock products of the missing lines' categories, closest in price first."""
    products = await store.find_products(db, [m.product_id for m in missing], session)
    ranked: list[str] = []
    for line in missing:
        product = products.get(line.product_id)
        if product is None:
            continue
        candidates = await store.alternative_candidates(db, product["category"], exclude, session)
        for product_id in rank_alternatives(product["price_cents"], candidates):
            if product_id not in ranked:
                ranked.append(product_id)
    return ranked[:3]


async def reserve(
    db: Db,
    session: Session,
    *,
    order_id: str,
    user_id: str,
    items: Sequence[tuple[str, int]],
    ttl_seconds: float,
    now: datetime,
) -> list[Event]:
    """Reserve what can be reserved of an order's lines, once per order; the events to emit."""
    if await store.get_reservation(db, order_id, session) is not None:
        log.info("reservation.duplicate", order_id=order_id)
        return []
    requests = merge_lines(items)
    results: list[LineResult] = []
    events: list[Event] = []
    ledger = Ledger()
    for request in requests:
        result, after = await _take(db, request, session)
        results.append(result)
        if after is not None:
            events += await _record_move(
                db,
                session,
                ledger,
                after,
                reason="reserved",
                now=now,
                order_id=order_id,
                available=-result.taken,
                reserved=result.taken,
            )
    outcome = decide_outcome(results)
    expires_at = expiry(now, ttl_seconds)
    await store.insert_reservation(
        db,
        {
            "_id": order_id,
            "order_id": order_id,
            "user_id": user_id,
            "status": "unavailable" if outcome.kind == "none" else "reserved",
            "lines": store.lines_doc(outcome.reserved),
            "requested": store.lines_doc(requests),
            "expires_at": expires_at,
            "created_at": now,
            "updated_at": now,
            "moves": ledger.rows,
        },
        session,
    )
    missing = tuple(
        MissingLine(product_id=m.product_id, requested=m.requested, available=m.available)
        for m in outcome.missing
    )
    answer: Event
    if outcome.kind == "all":
        answer = StockReserved(
            order_id=order_id, lines=_lines(outcome.reserved), expires_at=expires_at
        )
    elif outcome.kind == "partial":
        answer = StockPartiallyReserved(
            order_id=order_id,
            user_id=user_id,
            reserved=_lines(outcome.reserved),
            missing=missing,
            expires_at=expires_at,
        )
    else:
        exclude = [r.product_id for r in requests]
        alternatives = await _alternatives(db, session, outcome.missing, exclude)
        answer = StockUnavailable(
            order_id=order_id, user_id=user_id, missing=missing, alternatives=tuple(alternatives)
        )
    return [answer, *events]


async def release(
    db: Db, session: Session, *, order_id: str, reason: ReleaseReason, now: datetime
) -> list[Event]:
    """Give a held reservation back to available stock, once; the events to emit.

    A sale committed just before its order was cancelled (an Admin cancel while PAID) is given
    back too: the order is the authority, and payment voids the money for it.
    """
    held = await store.get_reservation(db, order_id, session)
    if held is None:
        # Released before it was reserved: remember it so a late OrderPlaced holds nothing.
        await store.insert_reservation(
            db,
            {
                "_id": order_id,
                "order_id": order_id,
                "status": "released",
                "release_reason": reason,
                "lines": [],
                "moves": [],
                "created_at": now,
                "updated_at": now,
            },
            session,
        )
        return []
    if held["status"] in RELEASABLE:
        source = "reserved"
    elif held["status"] == "committed" and reason == "cancelled":
        source = "committed"
    else:
        return []  # released, unavailable or failed already: a duplicate or a late event
    lines = store.doc_lines(held)
    ledger = Ledger()
    for line in lines:
        ledger.record(
            line.product_id,
            reason=f"released:{reason}",
            at=now,
            order_id=order_id,
            available=line.quantity,
            reserved=-line.quantity if source == "reserved" else 0,
            committed=-line.quantity if source == "committed" else 0,
        )
    await _move(db, held, "released", ledger, now, session, release_reason=reason)
    events: list[Event] = [StockReleased(order_id=order_id, lines=_lines(lines), reason=reason)]
    for line in lines:
        after = await store.move_reserved(
            db, line.product_id, line.quantity, "available", session, source=source
        )
        if after is None:
            raise RuntimeError(f"{source} stock of {line.product_id} is below {order_id}'s hold")
        events += await low_stock_events(db, after, session)
    return events


async def commit(
    db: Db, session: Session, *, order_id: str, paid_lines: Sequence[tuple[str, int]], now: datetime
) -> list[Event]:
    """Turn a paid order's reservation into a sale, re-taking stock if the hold is gone."""
    existing = await store.get_reservation(db, order_id, session)
    ledger = Ledger()
    if existing is not None and existing["status"] in COMMITTABLE:
        lines = store.doc_lines(existing)
        for line in lines:
            ledger.record(
                line.product_id,
                reason="committed",
                at=now,
                reserved=-line.quantity,
                committed=line.quantity,
                order_id=order_id,
            )
        await _move(db, existing, "committed", ledger, now, session)
        for line in lines:
            if not await store.sell_reserved(db, line.product_id, line.quantity, session):
                raise RuntimeError(
                    f"reserved stock of {line.product_id} is below {order_id}'s hold"
                )
        return [StockCommitted(order_id=order_id, lines=_lines(lines))]

    if existing is not None and existing["status"] in ("committed", "commitFailed"):
        return []  # a duplicate OrderPaid: already answered
    if existing is not None and existing.get("release_reason", "expired") != "expired":
        # Released because the order was cancelled or rejected (an OrderPaid overtaken by the
        # Admin's cancel): the order is terminal, nothing is sold, payment voids the money.
        log.info("commit.order_already_released", order_id=order_id)
        return []
    # The hold lapsed (expired or released) or never existed: take the paid lines from available
    # stock directly, all or nothing.
    lines = merge_lines(paid_lines)
    taken: list[LineRequest] = []
    events: list[Event] = []
    for line in lines:
        after = await store.take_available(
            db, line.product_id, line.quantity, session, into="committed"
        )
        if after is None:
            for done in taken:
                await store.put_back(db, done.product_id, done.quantity, "committed", session)
            # What was taken is back: nothing moved, no ledger row.
            await _set_reservation(
                db, order_id, "commitFailed", lines, existing, Ledger(), now, session
            )
            reason = "reservation expired and stock is no longer available"
            return [StockCommitFailed(order_id=order_id, reason=reason, lines=_lines(lines))]
        taken.append(line)
        events += await _record_move(
            db,
            session,
            ledger,
            after,
            reason="committed:retaken",
            now=now,
            order_id=order_id,
            available=-line.quantity,
            committed=line.quantity,
        )
    await _set_reservation(db, order_id, "committed", lines, existing, ledger, now, session)
    return [StockCommitted(order_id=order_id, lines=_lines(lines)), *events]


async def _move(
    db: Db,
    reservation: Doc,
    to: ReservationStatus,
    ledger: Ledger,
    now: datetime,
    session: Session,
    **fields: Any,
) -> None:
    """Move the reservation as read, with its ledger rows; `Conflict` when it moved meanwhile
    (a concurrent writer on a real MongoDB: the delivery is retried from a fresh read)."""
    if not await store.move_reservation(db, reservation, to, ledger, now, session, **fields):
        raise Conflict(f"reservation {reservation['_id']} moved from {reservation['status']}")


async def _set_reservation(
    db: Db,
    order_id: str,
    status: ReservationStatus,
    lines: Sequence[LineRequest],
    existing: Doc | None,
    ledger: Ledger,
    now: datetime,
    session: Session,
) -> None:
    if existing is None:
        doc = {
            "_id": order_id,
            "order_id": order_id,
            "status": status,
            "lines": store.lines_doc(lines),
            "moves": ledger.rows,
            "created_at": now,
            "updated_at": now,
        }
        await store.insert_reservation(db, doc, session)
    else:
        await _move(db, existing, status, ledger, now, session, lines=store.lines_doc(lines))


# --- event handlers ---------------------------------------------------------------------------


async def _emit(ctx: HandlerContext, events: Sequence[Event]) -> None:
    for event in events:
        await ctx.emit(event)


@deduplicated_by_state
async def reserve_stock_for_order(
    envelope: Envelope[OrderPlaced],
    ctx: HandlerContext,
    *,
    ttl_seconds: float = DEFAULT_RESERVATION_TTL,
) -> None:
    """Reserve a placed order's lines: StockReserved, StockPartiallyReserved or StockUnavailable."""
    order = envelope.data
    events = await reserve(
        ctx.db,
        ctx.session,
        order_id=order.order_id,
        user_id=order.user_id,
        items=[(i.product_id, i.quantity) for i in order.items],
        ttl_seconds=ttl_seconds,
        now=utcnow(),
    )
    await _emit(ctx, events)


RELEASE_REASONS: dict[str, ReleaseReason] = {
    "PAYMENT_FAILED": "paymentFailed",
    "PAYMENT_TIMEOUT": "paymentFailed",
}


@deduplicated_by_state
async def release_stock_for_cancelled_order(
    envelope: Envelope[OrderCancelled], ctx: HandlerContext
) -> None:
    """Give a cancelled order's reservation back (compensation): StockReleased."""
    reason = RELEASE_REASONS.get(envelope.data.reason, "cancelled")
    events = await release(
        ctx.db, ctx.session, order_id=envelope.data.order_id, reason=reason, now=utcnow()
    )
    await _emit(ctx, events)


@deduplicated_by_state
async def release_stock_for_rejected_order(
    envelope: Envelope[OrderRejected], ctx: HandlerContext
) -> None:
    """Give a rejected order's reservation back (compensation): StockReleased."""
    events = await release(
        ctx.db, ctx.session, order_id=envelope.data.order_id, reason="rejected", now=utcnow()
    )
    await _emit(ctx, events)


@deduplicated_by_state
async def hold_stock_during_approval(
    envelope: Envelope[OrderApprovalRequired], ctx: HandlerContext
) -> None:
    """An order waits for a Manager: keep its stock until the approval deadline, not the usual
    reservation expiry (a Manager's approval must not find the stock gone)."""
    until = envelope.data.hold_until
    if until is not None:
        await store.extend_reservation(ctx.db, envelope.data.order_id, until, utcnow(), ctx.session)


@deduplicated_by_state
async def commit_stock_for_order(envelope: Envelope[OrderPaid], ctx: HandlerContext) -> None:
    """Make a paid order's reservation a sale: StockCommitted, or StockCommitFailed."""
    events = await commit(
        ctx.db,
        ctx.session,
        order_id=envelope.data.order_id,
        paid_lines=[(line.product_id, line.quantity) for line in envelope.data.lines],
        now=utcnow(),
    )
    await _emit(ctx, events)


def handler_table(*, reservation_ttl_seconds: float = DEFAULT_RESERVATION_TTL) -> HandlerTable:
    """The service's subscriptions, with its reservation expiry."""
    return {
        OrderPlaced: [partial(reserve_stock_for_order, ttl_seconds=reservation_ttl_seconds)],
        OrderCancelled: [release_stock_for_cancelled_order],
        OrderRejected: [release_stock_for_rejected_order],
        OrderPaid: [commit_stock_for_order],
        OrderApprovalRequired: [hold_stock_during_approval],
    }


HANDLERS: HandlerTable = handler_table()
