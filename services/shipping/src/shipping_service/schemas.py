"""Request and response models of the shipping service's HTTP API (camelCase on the wire)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field, model_validator

from kit.models import ResponseModel, StrictModel
from kit.mongo import Doc, as_utc
from shipping_service.carrier import SANDBOX_CARRIER
from shipping_service.domain import ShipmentStatus

# --- bodies -----------------------------------------------------------------------------------


class ShipBody(StrictModel):
    """`{carrier?, trackingNumber?}`: nothing, and the sandbox carrier books the parcel."""

    carrier: str | None = Field(None, min_length=1, max_length=100)
    tracking_number: str | None = Field(None, min_length=4, max_length=64)

    @model_validator(mode="after")
    def _tracking_for_another_carrier(self) -> ShipBody:
        if self.tracking_number is None and self.carrier not in (None, SANDBOX_CARRIER):
            raise ValueError(
                f"give the trackingNumber of a parcel with {self.carrier} "
                f"(only {SANDBOX_CARRIER} issues one itself)"
            )
        return self


# --- responses --------------------------------------------------------------------------------


class ShipmentLine(ResponseModel):
    product_id: str
    quantity: int


class ShipmentOut(ResponseModel):
    shipment_id: str
    order_id: str
    user_id: str
    status: ShipmentStatus
    lines: list[ShipmentLine]
    address: dict[str, Any] | None
    carrier: str | None = None
    tracking_number: str | None = None
    created_at: datetime
    shipped_at: datetime | None = None
    delivered_at: datetime | None = None


def _at(value: datetime | None) -> datetime | None:
    return as_utc(value) if value is not None else None


def view(doc: Doc) -> ShipmentOut:
    """What the API shows of a shipment document."""
    return ShipmentOut(
        shipment_id=doc["_id"],
        order_id=doc["order_id"],
        user_id=doc["user_id"],
        status=doc["status"],
        lines=[ShipmentLine(**line) for line in doc["lines"]],
        address=doc.get("address"),
        carrier=doc.get("carrier"),
        tracking_number=doc.get("tracking_number"),
        created_at=as_utc(doc["created_at"]),
        shipped_at=_at(doc.get("shipped_at")),
        delivered_at=_at(doc.get("delivered_at")),
    )
