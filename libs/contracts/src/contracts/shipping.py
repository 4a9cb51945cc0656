"""Events emitted by the shipping service: a CONFIRMED order's parcel, from packing to the door."""

from __future__ import annotations

from pydantic import AwareDatetime

from contracts.base import Event
from contracts.registry import event
from contracts.types import Address, Line


class _Shipment(Event):
    shipment_id: str
    order_id: str
    user_id: str


@event("shipping")
class ShipmentCreated(_Shipment):
    """A CONFIRMED order's fulfilled lines wait in the warehouse queue (PENDING)."""

    lines: tuple[Line, ...]
    address: Address | None = None


@event("shipping")
class ShipmentDispatched(_Shipment):
    """The parcel left with a carrier (SHIPPED)."""

    carrier: str
    tracking_number: str
    shipped_at: AwareDatetime


@event("shipping")
class ShipmentDelivered(_Shipment):
    """The carrier delivered the parcel (DELIVERED): returns open from here."""

    delivered_at: AwareDatetime
