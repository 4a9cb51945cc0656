"""What the shipping service does: a shipment per CONFIRMED order (saga step), the warehouse
queue's reads, ship and deliver (Admin), and the demo auto-advance (the sweeper).

`create_shipment` runs in the consumer's transaction (`session`) and returns the event it raises;
the handler emits it through `ctx.emit`. It is idempotent by its state: the shipment's `_id` is
derived from the order's, so a duplicate or redelivered OrderConfirmed finds it and changes
nothing (`@deduplicated_by_state` in handlers.py relies on it).

`ship` and `deliver` are whole writes: the shipment's move (a conditional update on the status it
was read in) and its event's outbox row commit together through `deps.write`, the event carrying
the actor (an Admin, or the system for the auto-advance) for the audit trail. A second call finds
the shipment moved and answers 409 `INVALID_STATE`, emitting nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import partial

import structlog
from pymongo.asynchronous.client_session import AsyncClientSession

from contracts import SYSTEM, Actor, Envelope, Event
from contracts.shipping import ShipmentCreated, ShipmentDelivered, ShipmentDispatched
from contracts.types import Address, Line
from kit.auth import Principal
from kit.errors import Problem, invalid_state, not_found
from kit.models import time_cursor, time_position
from kit.mongo import Doc, Session, as_utc
from kit.quarantine import RowQuarantine
from shipping_service.carrier import Booking
from shipping_service.deps import Deps
from shipping_service.domain import (
    AUTO_ADVANCE,
    MOVES,
    STAFF,
    Action,
    InvalidState,
    ShipmentStatus,
    due_before,
    fulfilled_lines,
    move,
    needs_booking,
    shipment_id_for,
)
from shipping_service.store import shipment_doc

log = structlog.get_logger("shipping.commands")

# Shipments one auto-advance pass moves at most per state (the next pass takes the rest).
ADVANCE_BATCH = 100


def shipment_not_found(shipment_id: str) -> Problem:
    return not_found("SHIPMENT_NOT_FOUND", f"No shipment {shipment_id}.")


def _lines(doc: Doc) -> tuple[Line, ...]:
    return tuple(Line(product_id=x["product_id"], quantity=x["quantity"]) for x in doc["lines"])


# --- the saga step (in the consumer's transaction) ----------------------------------------------


async def create_shipment(
    deps: Deps,
    session: Session,
    *,
    order_id: str,
    user_id: str,
    items: Sequence[tuple[str, int]],
    address: Address | None,
) -> list[Event]:
    """Put a CONFIRMED order's fulfilled lines in the warehouse queue (PENDING), once per
    order: ShipmentCreated, or nothing when the order has its shipment already."""
    store, now = deps.store, deps.clock()
    shipment_id = shipment_id_for(order_id)
    if await store.get(shipment_id, session) is not None:
        log.info("shipment.duplicate", order_id=order_id)
        return []
    lines = fulfilled_lines(items)
    where = address.model_dump(mode="json", by_alias=True) if address is not None else None
    doc = shipment_doc(
        shipment_id, order_id=order_id, user_id=user_id, lines=lines, address=where, now=now
    )
    await store.insert(doc, session)
    log.info("shipment.created", order_id=order_id, shipment_id=shipment_id)
    return [
        ShipmentCreated(
            shipment_id=shipment_id,
            order_id=order_id,
            user_id=user_id,
            lines=_lines(doc),
            address=address,
        )
    ]


# --- reads --------------------------------------------------------------------------------------


async def get_shipment(deps: Deps, caller: Principal, shipment_id: str) -> Doc:
    """A shipment the caller may see (their own order's; any for Managers and Admins), or 404
    `SHIPMENT_NOT_FOUND` (also for another customer's: a 403 would say it exists)."""
    doc = await deps.store.get(shipment_id)
    if doc is None or (caller.role not in STAFF and doc["user_id"] != caller.user_id):
        raise shipment_not_found(shipment_id)
    return doc


async def list_shipments(
    deps: Deps,
    *,
    status: ShipmentStatus | None,
    order_id: str | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[Doc], str | None]:
    """A page of the warehouse queue, oldest first, and the next page's cursor."""
    after = time_position(cursor)
    docs = await deps.store.page(status=status, order_id=order_id, after=after, limit=limit + 1)
    if len(docs) <= limit:
        return docs, None
    docs = docs[:limit]
    return docs, time_cursor(as_utc(docs[-1]["created_at"]), docs[-1]["_id"])


# --- ship and deliver (Admin, or the auto-advance as the system) -------------------------------


async def _advance(
    deps: Deps, shipment_id: str, action: Action, actor: Actor, booking: Booking | None = None
) -> Doc:
    """Move the shipment by `action` and write its event, with `actor`, in one transaction; the
    shipment after the move. 404 when there is none, 409 `INVALID_STATE` when it is not in the
    state the move starts from (a repeated call: nothing moves, nothing is emitted)."""
    now = deps.clock()

    async def body(session: AsyncClientSession) -> Doc:
        current = await deps.store.get(shipment_id, session)
        if current is None:
            raise shipment_not_found(shipment_id)
        step = move(action, current["status"])
        fields: Doc = {step.stamp: now, step.by: actor.user_id, "updated_at": now}
        if booking is not None:
            fields |= {"carrier": booking.carrier, "tracking_number": booking.tracking_number}
        after = await deps.store.advance(shipment_id, step, fields, session)
        if after is None:  # moved since it was read (a concurrent call): answer its state
            moved = await deps.store.get(shipment_id, session)
            raise InvalidState(action, moved["status"] if moved else current["status"])
        envelope = Envelope.wrap(_event(after), correlation_id=after["order_id"], actor=actor)
        await deps.outbox.add(session, envelope)
        return after

    try:
        return await deps.write(body)
    except InvalidState as exc:
        raise invalid_state(exc.current, f"Cannot {exc.action} a {exc.current} shipment.") from exc


def _event(doc: Doc) -> Event:
    """The event of the move the shipment just made."""
    facts = {"shipment_id": doc["_id"], "order_id": doc["order_id"], "user_id": doc["user_id"]}
    if doc["status"] == "SHIPPED":
        return ShipmentDispatched(
            **facts,
            carrier=doc["carrier"],
            tracking_number=doc["tracking_number"],
            shipped_at=as_utc(doc["shipped_at"]),
        )
    return ShipmentDelivered(**facts, delivered_at=as_utc(doc["delivered_at"]))


async def ship(
    deps: Deps,
    shipment_id: str,
    actor: Actor,
    *,
    carrier: str | None = None,
    tracking_number: str | None = None,
) -> Doc:
    """Hand a PENDING shipment to a carrier: SHIPPED, ShipmentDispatched. Without a tracking
    number the sandbox carrier books the parcel and issues one (keyed by the shipment: booking
    it again answers the same label)."""
    current = await deps.store.get(shipment_id)
    if current is None:
        raise shipment_not_found(shipment_id)
    if current["status"] != "PENDING":  # before any booking: a wrong-state call books nothing
        raise invalid_state(current["status"], f"Cannot ship a {current['status']} shipment.")
    if needs_booking(carrier, tracking_number, deps.carrier.name):
        booking = await deps.carrier.book(shipment_id)
    else:
        assert tracking_number is not None  # the schema refuses a carrier without one
        booking = Booking(carrier or deps.carrier.name, tracking_number)
    return await _advance(deps, shipment_id, "ship", actor, booking)


async def deliver(deps: Deps, shipment_id: str, actor: Actor) -> Doc:
    """The carrier delivered a SHIPPED shipment: DELIVERED, ShipmentDelivered."""
    return await _advance(deps, shipment_id, "deliver", actor)


# --- the demo auto-advance (the sweeper) --------------------------------------------------------


async def auto_advance(
    deps: Deps, now: datetime | None = None, *, quarantine: RowQuarantine | None = None
) -> int:
    """With `auto_advance_seconds` set: ship what has been PENDING that long and deliver what
    has been SHIPPED that long, as the system; how many moved. A shipment an Admin moved
    meanwhile is skipped; one that keeps failing is quarantined by the sweeper's `quarantine`."""
    after_seconds = deps.settings.auto_advance_seconds
    if after_seconds is None:
        return 0
    at = now or deps.clock()
    before = due_before(at, after_seconds)
    skip = await quarantine.rows() if quarantine is not None else []
    moved = 0
    for action in AUTO_ADVANCE:
        step = MOVES[action]
        due = await deps.store.due(
            step.source, step.waiting_since, before, ADVANCE_BATCH, exclude=skip
        )
        for shipment_id in due:
            close = partial(_auto, deps, shipment_id, action)
            if await (close() if quarantine is None else quarantine.attempt(shipment_id, close)):
                moved += 1
    return moved


async def _auto(deps: Deps, shipment_id: str, action: Action) -> bool:
    """One auto-advance move as the system; False when the shipment had moved already."""
    try:
        if action == "ship":
            await ship(deps, shipment_id, SYSTEM)
        else:
            await deliver(deps, shipment_id, SYSTEM)
    except Problem as exc:
        if exc.status == 409:
            return False
        raise
    log.info("shipment.auto_advanced", shipment_id=shipment_id, action=action)
    return True
