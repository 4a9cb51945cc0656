"""Request and response models of the inventory service's HTTP API (camelCase on the wire)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from kit.models import ResponseModel, StrictModel

MAX_PRICE_CENTS = 100_000_000
MAX_STOCK = 1_000_000

Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$")]


# --- bodies -----------------------------------------------------------------------------------


class ProductCreate(StrictModel):
    name: str = Field(min_length=1, max_length=200)
    description: str = Field(max_length=2000)
    category: str = Field(min_length=1, max_length=100)
    price_cents: int = Field(ge=0, le=MAX_PRICE_CENTS)
    currency: Currency = "USD"
    stock_count: int = Field(ge=0, le=MAX_STOCK)
    low_stock_threshold: int = Field(5, ge=0, le=MAX_STOCK)


class ProductPatch(StrictModel):
    name: str | None = Field(None, min_length=1, max_length=200)
    description: str | None = Field(None, max_length=2000)
    category: str | None = Field(None, min_length=1, max_length=100)
    price_cents: int | None = Field(None, ge=0, le=MAX_PRICE_CENTS)
    currency: Currency | None = None
    low_stock_threshold: int | None = Field(None, ge=0, le=MAX_STOCK)

    @model_validator(mode="after")
    def _something_to_change(self) -> ProductPatch:
        if not self.model_fields_set:
            raise ValueError("give at least one field to change")
        if any(getattr(self, name) is None for name in self.model_fields_set):
            raise ValueError("fields cannot be set to null")
        return self


class StockAdjustment(StrictModel):
    delta: int = Field(ge=-MAX_STOCK, le=MAX_STOCK)
    reason: str = Field(min_length=1, max_length=500)

    @model_validator(mode="after")
    def _nonzero(self) -> StockAdjustment:
        if self.delta == 0:
            raise ValueError("delta must not be 0")
        return self


class AvailabilityLine(StrictModel):
    product_id: str = Field(min_length=1, max_length=100)
    quantity: int = Field(ge=1, le=MAX_STOCK)


class AvailabilityQuery(StrictModel):
    items: list[AvailabilityLine] = Field(min_length=1, max_length=100)


# --- responses --------------------------------------------------------------------------------


class ProductOut(ResponseModel):
    product_id: str
    name: str
    description: str | None
    category: str
    price_cents: int
    currency: str
    stock_available: int
    low_stock: bool


class StockOut(ResponseModel):
    """available + reserved + committed == received; `returned`: units taken back from received
    returns (already moved from committed to available: sold = committed + returned)."""

    received: int
    available: int
    reserved: int
    committed: int
    returned: int = 0


class AuditEntry(ResponseModel):
    at: datetime
    action: str
    actor_id: str | None
    changes: dict[str, Any]


class AdminProductOut(ProductOut):
    low_stock_threshold: int
    stock: StockOut
    created_by: str | None
    updated_by: str | None
    created_at: datetime
    updated_at: datetime
    audit_logs: list[AuditEntry]


class AvailabilityOut(ResponseModel):
    product_id: str
    requested: int
    available: int
    status: Literal["available", "partial", "unavailable"]
    alternatives: list[str]
    exists: bool


class AvailabilityAnswer(ResponseModel):
    items: list[AvailabilityOut]


def public_view(doc: dict[str, Any]) -> ProductOut:
    """What anyone sees of a product document."""
    return ProductOut(
        product_id=doc["_id"],
        name=doc["name"],
        description=doc.get("description"),
        category=doc["category"],
        price_cents=doc["price_cents"],
        currency=doc.get("currency", "USD"),
        stock_available=doc["available"],
        low_stock=doc["available"] <= doc.get("low_stock_threshold", 0),
    )


def admin_view(doc: dict[str, Any]) -> AdminProductOut:
    """What an Admin sees of a product document: its stock, authors and audit log too."""
    return AdminProductOut(
        **public_view(doc).model_dump(by_alias=False),
        low_stock_threshold=doc.get("low_stock_threshold", 0),
        stock=StockOut(
            **{k: doc[k] for k in ("received", "available", "reserved", "committed")},
            returned=doc.get("returned", 0),
        ),
        created_by=doc.get("created_by"),
        updated_by=doc.get("updated_by"),
        created_at=doc["created_at"],
        updated_at=doc["updated_at"],
        audit_logs=[AuditEntry(**entry) for entry in doc.get("audit_logs", [])],
    )
