"""Value types shared by several events."""

from __future__ import annotations

from pydantic import Field

from contracts.base import ContractModel


class Line(ContractModel):
    product_id: str
    quantity: int = Field(ge=0)


class PricedLine(Line):
    price_cents: int = Field(ge=0)
