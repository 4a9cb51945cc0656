"""The shipping rules, pure: a shipment's lines, its states and the moves between them.

A shipment is the parcel of one CONFIRMED order: `PENDING` (in the warehouse queue) → `SHIPPED`
(handed to a carrier, with a tracking number) → `DELIVERED`. Each move is allowed from one state
only; anything else is `InvalidState` (the API's 409 `INVALID_STATE` with `currentStatus`).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, get_args

type ShipmentStatus = Literal["PENDING", "SHIPPED", "DELIVERED"]
STATUSES: tuple[ShipmentStatus, ...] = get_args(ShipmentStatus.__value__)

type Action = Literal["ship", "deliver"]

# Who sees every shipment (the warehouse queue); a Customer sees the shipments of their orders.
STAFF = ("Manager", "Admin")

# Shipment ids are derived from the order's id: one order, one shipment id, whoever computes it.
SHIPMENT_NAMESPACE = uuid.UUID("0b1f6c1e-5a0e-4d55-9a35-7d3f4f0c2a71")


class ShipmentNotFound(Exception):
    """No such shipment (or not one the caller may see)."""

    def __init__(self, shipment_id: str) -> None:
        super().__init__(shipment_id)
        self.shipment_id = shipment_id


class InvalidState(Exception):
    """A move asked for in a state it does not start from."""

    def __init__(self, action: Action, current: ShipmentStatus) -> None:
        super().__init__(f"cannot {action} a {current} shipment")
        self.action = action
        self.current = current


@dataclass(frozen=True, slots=True)
class Move:
    """One step of the state machine: from which state, to which, the time it stamps, who
    made it (the audit's actor, on the shipment too) and the time the shipment entered the
    state it leaves (what the auto-advance waits from)."""

    source: ShipmentStatus
    target: ShipmentStatus
    stamp: Literal["shipped_at", "delivered_at"]
    by: Literal["shipped_by", "delivered_by"]
    waiting_since: Literal["created_at", "shipped_at"]


MOVES: dict[Action, Move] = {
    "ship": Move("PENDING", "SHIPPED", "shipped_at", "shipped_by", "created_at"),
    "deliver": Move("SHIPPED", "DELIVERED", "delivered_at", "delivered_by", "shipped_at"),
}
# The auto-advance's order: deliveries first, so a parcel shipped in a pass waits its full time.
AUTO_ADVANCE: tuple[Action, ...] = ("deliver", "ship")


def move(action: Action, current: ShipmentStatus) -> Move:
    """The move `action` makes from `current`; `InvalidState` when it does not start there."""
    step = MOVES[action]
    if current != step.source:
        raise InvalidState(action, current)
    return step


def shipment_id_for(order_id: str) -> str:
    """The id of an order's shipment: the same for every delivery of its OrderConfirmed."""
    return str(uuid.uuid5(SHIPMENT_NAMESPACE, order_id))


def fulfilled_lines(items: Iterable[tuple[str, int]]) -> list[tuple[str, int]]:
    """What goes in the parcel: each product once (quantities summed, first-seen order), lines
    of quantity 0 (not fulfilled in a partial order) left out."""
    merged: dict[str, int] = {}
    for product_id, quantity in items:
        if quantity > 0:
            merged[product_id] = merged.get(product_id, 0) + quantity
    return list(merged.items())


def due_before(now: datetime, after_seconds: float) -> datetime:
    """Shipments that entered their state before this moment are due to advance."""
    return now - timedelta(seconds=after_seconds)


def needs_booking(carrier: str | None, tracking_number: str | None, sandbox: str) -> bool:
    """Whether the sandbox carrier must issue the tracking number: none was given, and the
    parcel goes with the sandbox carrier (no carrier named, or it named). Another carrier's
    parcel needs its own tracking number (the schemas refuse one without it)."""
    return tracking_number is None and carrier in (None, sandbox)
