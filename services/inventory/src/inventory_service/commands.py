"""What the inventory service does: the saga's stock steps, the catalogue's admin commands, and
the sweeper's expiry.

The stock steps (`reserve`, `release`, `commit`, `hold_until`, and `restock` for a received
return) run in the caller's transaction
(`session`: a handler's, or the sweeper's `deps.write`) and return the events they raise; the
handler emits them through `ctx.emit`. Each is idempotent by the reservation's status (one
reservation record per order, moved by conditional updates), independently of the bus inbox: a
duplicate or a late event finds the status already moved and changes nothing
(`@deduplicated_by_state` in handlers.py relies on it). A restock is once per return by its
record's `_id` (the return id): a second one raises `AlreadyHandled`.

The catalogue's commands (`create_product`, `update_product`, `delete_product`, `adjust_stock`)
and `expire_reservation` are whole writes: the state change and its events' outbox rows commit
together through `deps.write`; they answer the product document or raise a `Problem`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any, Literal

import structlog
from pymongo.asynchronous.client_session import AsyncClientSession

from contracts import Actor, Envelope, Event
from contracts.ids import uuid7
from contracts.inventory import (
    ProductCreated,
    ProductDeleted,
    ProductUpdated,
    StockAdjusted,
    StockCommitFailed,
    StockCommitted,
    StockLow,
    StockPartiallyReserved,
    StockReleased,
    StockReserved,
    StockReturned,
    StockUnavailable,
)
from contracts.types import Line, MissingLine
from inventory_service.deps import Deps
from inventory_service.domain import (
    COMMITTABLE,
    RELEASABLE,
    InsufficientStock,
    Ledger,
    LineRequest,
    LineResult,
    NewProduct,
    ProductNotFound,
    ReleaseReason,
    ReservationStatus,
    availability_status,
    decide_outcome,
    expiry,
    low_stock_change,
    merge_lines,
    opening_stock,
    portion,
    rank_alternatives,
)
from inventory_service.store import (
    InventoryStore,
    audit_entry,
    doc_lines,
    lines_doc,
    product_doc,
)
from kit.errors import Problem, conflict, not_found, validation_problem
from kit.models import decode_cursor, encode_cursor
from kit.mongo import Db, Doc, Session
from kit.quarantine import RowQuarantine
from kit.transactions import Conflict

log = structlog.get_logger("inventory.commands")

# A line whose stock moved between our read and our conditional update is re-read this often
# before the transaction is given up (and retried whole by the bus).
TAKE_ATTEMPTS = 5
# Expired reservations one sweep releases at most (the next pass takes the rest).
EXPIRY_BATCH = 100


def product_not_found(product_id: str) -> Problem:
    return not_found("PRODUCT_NOT_FOUND", f"No product {product_id}.")


def insufficient_stock(exc: InsufficientStock) -> Problem:
    return conflict(
        "INSUFFICIENT_STOCK",
        f"Only {exc.available} units are available; cannot remove {-exc.delta}.",
        title="Insufficient stock",
        available=exc.available,
    )


def _lines(lines: Sequence[LineRequest]) -> tuple[Line, ...]:
    return tuple(Line(product_id=line.product_id, quantity=line.quantity) for line in lines)


async def low_stock_events(store: InventoryStore, product: Doc, session: Session) -> list[Event]:
    """`StockLow` when this change took the product to its threshold (once per crossing)."""
    threshold = int(product.get("low_stock_threshold", 0))
    change = low_stock_change(product["available"], threshold, bool(product.get("low_stock")))
    if change is None:
        return []
    flipped = await store.set_low_stock_flag(product["_id"], change == "crossed", session)
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


# --- the saga's stock steps (in the caller's transaction) --------------------------------------


async def _record_move(
    store: InventoryStore,
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
    return await low_stock_events(store, product, session)


async def _take(
    store: InventoryStore, request: LineRequest, session: Session
) -> tuple[LineResult, Doc | None]:
    """Take as many units of one line as are available: the result and the product after it."""
    # The whole line first (the common case: one conditional update, no read before it).
    after = await store.take_available(request.product_id, request.quantity, session)
    if after is not None:
        before = int(after["available"]) + request.quantity
        return LineResult(request.product_id, request.quantity, request.quantity, before), after
    for _ in range(TAKE_ATTEMPTS):
        product = await store.get_product(request.product_id, session)
        available = int(product["available"]) if product else 0
        taken = portion(request.quantity, available)
        if taken == 0:
            return LineResult(request.product_id, request.quantity, 0, available), None
        after = await store.take_available(request.product_id, taken, session)
        if after is not None:
            return LineResult(request.product_id, request.quantity, taken, available), after
    raise RuntimeError(f"stock of {request.product_id} kept moving; retrying the transaction")


async def _alternatives(
    store: InventoryStore, session: Session, missing: Sequence[LineResult], exclude: list[str]
) -> list[str]:
    """Up to 3 in-stock products of the missing lines' categories, closest in price first."""
    products = await store.find_products([m.product_id for m in missing], session)
    ranked: list[str] = []
    for line in missing:
        product = products.get(line.product_id)
        if product is None:
            continue
        candidates = await store.alternative_candidates(product["category"], exclude, session)
        for product_id in rank_alternatives(product["price_cents"], candidates):
            if product_id not in ranked:
                ranked.append(product_id)
    return ranked[:3]


async def reserve(
    deps: Deps,
    session: Session,
    *,
    order_id: str,
    user_id: str,
    items: Sequence[tuple[str, int]],
    ttl_seconds: float | None = None,
    now: datetime | None = None,
) -> list[Event]:
    """Reserve what can be reserved of an order's lines, once per order; the events to emit.

    The hold lasts `ttl_seconds` (the service's `reservation_ttl_seconds` unless given)."""
    store, now = deps.store, now or deps.clock()
    ttl = deps.settings.reservation_ttl_seconds if ttl_seconds is None else ttl_seconds
    if await store.get_reservation(order_id, session) is not None:
        log.info("reservation.duplicate", order_id=order_id)
        return []
    requests = merge_lines(items)
    results: list[LineResult] = []
    events: list[Event] = []
    ledger = Ledger()
    for request in requests:
        result, after = await _take(store, request, session)
        results.append(result)
        if after is not None:
            events += await _record_move(
                store,
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
    expires_at = expiry(now, ttl)
    await store.insert_reservation(
        {
            "_id": order_id,
            "order_id": order_id,
            "user_id": user_id,
            "status": "unavailable" if outcome.kind == "none" else "reserved",
            "lines": lines_doc(outcome.reserved),
            "requested": lines_doc(requests),
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
        alternatives = await _alternatives(store, session, outcome.missing, exclude)
        answer = StockUnavailable(
            order_id=order_id, user_id=user_id, missing=missing, alternatives=tuple(alternatives)
        )
    return [answer, *events]


async def release(
    deps: Deps,
    session: Session,
    *,
    order_id: str,
    reason: ReleaseReason,
    now: datetime | None = None,
) -> list[Event]:
    """Give a held reservation back to available stock, once; the events to emit.

    A sale committed just before its order was cancelled (an Admin cancel while PAID) is given
    back too: the order is the authority, and payment voids the money for it.
    """
    store, now = deps.store, now or deps.clock()
    held = await store.get_reservation(order_id, session)
    if held is None:
        # Released before it was reserved: remember it so a late OrderPlaced holds nothing.
        await store.insert_reservation(
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
        lapsed = held["status"] == "released" and held.get("release_reason") == "expired"
        if lapsed and reason in ("cancelled", "rejected"):
            # The order ended after its hold lapsed: remember why, so that an OrderPaid it sent
            # before it ended, arriving after this, sells nothing (commit re-takes expired holds).
            await store.note_order_ended(order_id, reason, now, session)
        return []  # released, unavailable or failed already: a duplicate or a late event
    lines = doc_lines(held)
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
    await _move(store, held, "released", ledger, now, session, release_reason=reason)
    events: list[Event] = [StockReleased(order_id=order_id, lines=_lines(lines), reason=reason)]
    for line in lines:
        after = await store.move_reserved(
            line.product_id, line.quantity, "available", session, source=source
        )
        if after is None:
            raise RuntimeError(f"{source} stock of {line.product_id} is below {order_id}'s hold")
        events += await low_stock_events(store, after, session)
    return events


async def commit(
    deps: Deps,
    session: Session,
    *,
    order_id: str,
    paid_lines: Sequence[tuple[str, int]],
    now: datetime | None = None,
) -> list[Event]:
    """Turn a paid order's reservation into a sale, re-taking stock if the hold is gone."""
    store, now = deps.store, now or deps.clock()
    existing = await store.get_reservation(order_id, session)
    ledger = Ledger()
    if existing is not None and existing["status"] in COMMITTABLE:
        lines = doc_lines(existing)
        for line in lines:
            ledger.record(
                line.product_id,
                reason="committed",
                at=now,
                reserved=-line.quantity,
                committed=line.quantity,
                order_id=order_id,
            )
        await _move(store, existing, "committed", ledger, now, session)
        for line in lines:
            if not await store.sell_reserved(line.product_id, line.quantity, session):
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
            line.product_id, line.quantity, session, into="committed"
        )
        if after is None:
            for done in taken:
                await store.put_back(done.product_id, done.quantity, "committed", session)
            # What was taken is back: nothing moved, no ledger row.
            await _set_reservation(
                store, order_id, "commitFailed", lines, existing, Ledger(), now, session
            )
            reason = "reservation expired and stock is no longer available"
            return [StockCommitFailed(order_id=order_id, reason=reason, lines=_lines(lines))]
        taken.append(line)
        events += await _record_move(
            store,
            session,
            ledger,
            after,
            reason="committed:retaken",
            now=now,
            order_id=order_id,
            available=-line.quantity,
            committed=line.quantity,
        )
    await _set_reservation(store, order_id, "committed", lines, existing, ledger, now, session)
    return [StockCommitted(order_id=order_id, lines=_lines(lines)), *events]


async def hold_until(
    deps: Deps, session: Session, *, order_id: str, until: datetime | None
) -> bool:
    """Keep an order's held stock at least until `until` (a Manager's approval deadline, not
    the usual expiry); False when nothing was held or it was held longer already."""
    if until is None:
        return False
    return await deps.store.extend_reservation(order_id, until, deps.clock(), session)


async def _move(
    store: InventoryStore,
    reservation: Doc,
    to: ReservationStatus,
    ledger: Ledger,
    now: datetime,
    session: Session,
    **fields: Any,
) -> None:
    """Move the reservation as read, with its ledger rows; `Conflict` when it moved meanwhile
    (a concurrent writer on a real MongoDB: the delivery is retried from a fresh read)."""
    if not await store.move_reservation(reservation, to, ledger, now, session, **fields):
        raise Conflict(f"reservation {reservation['_id']} moved from {reservation['status']}")


async def _set_reservation(
    store: InventoryStore,
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
            "lines": lines_doc(lines),
            "moves": ledger.rows,
            "created_at": now,
            "updated_at": now,
        }
        await store.insert_reservation(doc, session)
    else:
        await _move(store, existing, status, ledger, now, session, lines=lines_doc(lines))


async def restock(
    deps: Deps,
    session: Session,
    *,
    return_id: str,
    order_id: str,
    lines: Sequence[tuple[str, int]],
    now: datetime | None = None,
) -> list[Event]:
    """Put a received return's units back on sale, once per return: each line's units go from
    committed back to available (a ledger row `returned` with the return id), the product's
    `returned` count grows, and a low-stock flag it lifts is cleared (no alert for a restock).

    A deleted product takes its units back into its counts too (conservation), but it stays
    out of the catalogue and of new reservations: they are not on sale.
    """
    store, now = deps.store, now or deps.clock()
    requests = merge_lines(lines)
    ledger = Ledger()
    for line in requests:
        ledger.record(
            line.product_id,
            reason="returned",
            at=now,
            order_id=order_id,
            return_id=return_id,
            available=line.quantity,
            committed=-line.quantity,
        )
    record = {
        "_id": return_id,
        "order_id": order_id,
        "lines": lines_doc(requests),
        "moves": ledger.rows,
        "created_at": now,
    }
    await store.insert_return(record, session)  # AlreadyHandled when restocked already
    for line in requests:
        after = await store.take_back(line.product_id, line.quantity, session)
        if after is None:
            # The order bounds a return by what was delivered, which was sold here: fewer
            # committed units means a bad event; the delivery is retried, then dead-lettered.
            raise RuntimeError(f"committed stock of {line.product_id} is below {return_id}'s")
        threshold = int(after.get("low_stock_threshold", 0))
        flagged = bool(after.get("low_stock"))
        if low_stock_change(after["available"], threshold, flagged) == "recovered":
            await store.set_low_stock_flag(line.product_id, False, session)
    return [StockReturned(return_id=return_id, order_id=order_id, lines=_lines(requests))]


# --- the sweeper's expiry ----------------------------------------------------------------------


async def expire_reservation(deps: Deps, order_id: str, now: datetime | None = None) -> bool:
    """Release one reservation past its expiry (StockReleased, expired) in one write; False
    when it was no longer held (another sweeper, a cancel or a payment came first)."""
    at = now or deps.clock()

    async def body(session: AsyncClientSession) -> bool:
        events = await release(deps, session, order_id=order_id, reason="expired", now=at)
        await deps.outbox.add(session, *(Envelope.wrap(e, correlation_id=order_id) for e in events))
        return bool(events)

    return await deps.write(body)


async def expire_reservations(
    deps: Deps, now: datetime | None = None, *, quarantine: RowQuarantine | None = None
) -> int:
    """Release every reservation expired at `now` (the clock's now); how many were released.

    With the sweeper's `quarantine`, one that cannot be released is counted against it (and set
    aside after enough failures) while the pass goes on with the others."""
    at = now or deps.clock()
    skip = await quarantine.rows() if quarantine is not None else []
    released = 0
    for order_id in await deps.store.expired_reservations(at, EXPIRY_BATCH, exclude=skip):
        close = partial(expire_reservation, deps, order_id, at)
        if await (close() if quarantine is None else quarantine.attempt(order_id, close)):
            released += 1
            log.info("reservation.expired", order_id=order_id)
    return released


# --- catalogue reads ----------------------------------------------------------------------------


async def get_product(deps: Deps, product_id: str) -> Doc:
    """A live product, or 404 `PRODUCT_NOT_FOUND`."""
    doc = await deps.store.get_product(product_id)
    if doc is None:
        raise product_not_found(product_id)
    return doc


async def list_products(
    deps: Deps, *, q: str | None, category: str | None, limit: int, cursor: str | None
) -> tuple[list[Doc], str | None]:
    """A page of the catalogue (search by text and category) and the next page's cursor."""
    position = decode_cursor(cursor)
    after: tuple[str, str] | None = None
    if position is not None:
        name, last_id = position.get("n"), position.get("id")
        if not isinstance(name, str) or not isinstance(last_id, str):
            raise validation_problem([{"field": "cursor", "message": "Invalid cursor"}])
        after = (name, last_id)
    docs = await deps.store.list_products(
        q=q or None, category=category or None, after=after, limit=limit + 1
    )
    if len(docs) <= limit:
        return docs, None
    docs = docs[:limit]
    return docs, encode_cursor({"n": docs[-1]["name"], "id": docs[-1]["_id"]})


@dataclass(frozen=True, slots=True)
class Availability:
    """The pre-order check's answer for one line."""

    product_id: str
    requested: int
    available: int
    status: Literal["available", "partial", "unavailable"]
    alternatives: list[str]
    exists: bool


async def check_availability(deps: Deps, lines: Sequence[tuple[str, int]]) -> list[Availability]:
    """Per line: how many are available now, and alternatives when short (order's precheck)."""
    ids = [product_id for product_id, _ in lines]
    products = await deps.store.find_products(ids)
    answers: list[Availability] = []
    for product_id, quantity in lines:
        doc = products.get(product_id)
        available = int(doc["available"]) if doc else 0
        status = availability_status(quantity, available)
        alternatives: list[str] = []
        if doc is not None and status != "available":
            candidates = await deps.store.alternative_candidates(doc["category"], ids)
            alternatives = rank_alternatives(doc["price_cents"], candidates)
        answers.append(
            Availability(product_id, quantity, available, status, alternatives, doc is not None)
        )
    return answers


# --- catalogue writes (Admin) -------------------------------------------------------------------


type Step = Callable[[AsyncClientSession], Awaitable[tuple[Doc, list[Event]]]]


async def _catalogue_write(deps: Deps, actor: Actor, step: Step) -> Doc:
    """Run a catalogue step and put its events in the outbox, in one transaction; its domain
    errors answered as problems."""

    async def body(session: AsyncClientSession) -> Doc:
        doc, events = await step(session)
        await deps.outbox.add(
            session, *(Envelope.wrap(e, correlation_id=doc["_id"], actor=actor) for e in events)
        )
        return doc

    try:
        return await deps.write(body)
    except ProductNotFound as exc:
        raise product_not_found(exc.product_id) from exc
    except InsufficientStock as exc:
        raise insufficient_stock(exc) from exc


def product_facts(doc: Doc) -> dict[str, Any]:
    """The fields every Product* event carries."""
    return {
        "product_id": doc["_id"],
        "name": doc["name"],
        "category": doc["category"],
        "price_cents": doc["price_cents"],
        "currency": doc.get("currency", "USD"),
        "description": doc.get("description"),
    }


async def create_product(deps: Deps, new: NewProduct, actor: Actor) -> Doc:
    """Add a product with its opening stock: ProductCreated (and StockLow when it opens low)."""
    now, store = deps.clock(), deps.store

    async def step(session: AsyncClientSession) -> tuple[Doc, list[Event]]:
        doc = product_doc(str(uuid7()), new, actor.user_id, now)
        await store.insert_products([doc], session)
        ledger = Ledger()
        opening_stock(ledger, doc["_id"], new.stock_count, actor.user_id, now)
        await store.record_ledger(ledger, session)
        events: list[Event] = [ProductCreated(**product_facts(doc))]
        events += await low_stock_events(store, doc, session)
        return doc, events

    return await _catalogue_write(deps, actor, step)


async def update_product(
    deps: Deps, product_id: str, changes: Mapping[str, Any], actor: Actor
) -> Doc:
    """Change catalogue fields: ProductUpdated with the product as it now stands."""
    now, store = deps.clock(), deps.store
    fields = {**changes, "updated_at": now, "updated_by": actor.user_id}
    audit = audit_entry("updated", actor.user_id, now, changes)

    async def step(session: AsyncClientSession) -> tuple[Doc, list[Event]]:
        doc = await store.update_product(product_id, fields, audit, session)
        if doc is None:
            raise ProductNotFound(product_id)
        events: list[Event] = [ProductUpdated(**product_facts(doc))]
        if "low_stock_threshold" in changes:
            events += await low_stock_events(store, doc, session)
        return doc, events

    return await _catalogue_write(deps, actor, step)


async def delete_product(deps: Deps, product_id: str, actor: Actor) -> None:
    """Soft delete: the product leaves the catalogue, its held reservations still resolve."""
    now, store = deps.clock(), deps.store
    fields = {"deleted": True, "deleted_at": now, "updated_at": now, "updated_by": actor.user_id}
    audit = audit_entry("deleted", actor.user_id, now, {})

    async def step(session: AsyncClientSession) -> tuple[Doc, list[Event]]:
        doc = await store.update_product(product_id, fields, audit, session)
        if doc is None:
            raise ProductNotFound(product_id)
        return doc, [ProductDeleted(**product_facts(doc))]

    await _catalogue_write(deps, actor, step)


async def adjust_stock(deps: Deps, product_id: str, delta: int, reason: str, actor: Actor) -> Doc:
    """Receive or write off units (only available ones): StockAdjusted, maybe StockLow; 409
    `INSUFFICIENT_STOCK` when fewer are available than written off."""
    now, store = deps.clock(), deps.store
    fields = {"updated_at": now, "updated_by": actor.user_id}
    audit = audit_entry("stockAdjusted", actor.user_id, now, {"delta": delta, "reason": reason})

    async def step(session: AsyncClientSession) -> tuple[Doc, list[Event]]:
        doc = await store.adjust_stock(product_id, delta, fields, audit, session)
        if doc is None:
            current = await store.get_product(product_id, session)
            if current is None:
                raise ProductNotFound(product_id)
            raise InsufficientStock(product_id, current["available"], delta)
        ledger = Ledger()
        ledger.record(
            product_id,
            reason=reason,
            at=now,
            received=delta,
            available=delta,
            actor_id=actor.user_id,
        )
        await store.record_ledger(ledger, session)
        event = StockAdjusted(
            product_id=product_id, delta=delta, reason=reason, available=doc["available"]
        )
        return doc, [event, *await low_stock_events(store, doc, session)]

    return await _catalogue_write(deps, actor, step)


# --- seeding (devkit.seed_catalogue: the demo catalogue and the bulk load) ---


async def seed_products(
    db: Db, session: Session, seeds: Sequence[tuple[str, NewProduct]], now: datetime
) -> list[ProductCreated]:
    """Insert the demo products not stored yet (fixed ids, so a restart adds nothing)."""
    store = InventoryStore(db)
    known = await store.existing_ids([product_id for product_id, _ in seeds], session)
    docs = [product_doc(pid, new, None, now) for pid, new in seeds if pid not in known]
    for doc in docs:
        doc["low_stock"] = doc["available"] <= doc["low_stock_threshold"]
    await store.insert_products(docs, session)
    return [ProductCreated(**product_facts(doc)) for doc in docs]


async def add_products(
    db: Db,
    session: Session,
    products: Sequence[tuple[str, NewProduct]],
    actor_id: str | None,
    now: datetime,
) -> list[ProductCreated]:
    """Add many products at once (`devkit.seed_catalogue`'s bulk load): the documents and
    their opening-stock ledger rows in one `insert_many` each, a ProductCreated per product.
    The low-stock flag is set from the start, without StockLow (as the demo catalogue)."""
    store = InventoryStore(db)
    docs = [product_doc(pid, new, actor_id, now) for pid, new in products]
    ledger = Ledger()
    for doc, (_, new) in zip(docs, products, strict=True):
        doc["low_stock"] = doc["available"] <= doc["low_stock_threshold"]
        opening_stock(ledger, doc["_id"], new.stock_count, actor_id, now)
    await store.insert_products(docs, session)
    await store.record_ledger(ledger, session)
    return [ProductCreated(**product_facts(doc)) for doc in docs]
