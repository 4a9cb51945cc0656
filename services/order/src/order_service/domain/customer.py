"""The customer as checkout sees it: profile facts (replica or user service), checkout defaults,
and the pre-order check's verdict."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from contracts.types import Address, PartialFulfillment
from order_service.domain.errors import ProfileIncomplete, UnknownAddress, UnknownPaymentMethod


@dataclass(frozen=True)
class CustomerProfile:
    """What checkout needs of a customer (from the replica, or from the user service)."""

    user_id: str
    is_profile_complete: bool = False
    address_ids: tuple[str, ...] = ()
    default_address_id: str | None = None
    payment_method_ids: tuple[str, ...] = ()
    default_payment_method_id: str | None = None
    preferred_payment_method: str | None = None
    partial_fulfillment: PartialFulfillment = "ask"
    deleted: bool = False
    addresses: tuple[Address, ...] = ()
    # The customer was already asked to complete the profile (a UI flag the user service keeps).
    completion_prompted: bool = False

    def address(self, address_id: str) -> Address | None:
        """The stored address with this id (the order keeps a copy of where it ships)."""
        return next((a for a in self.addresses if a.address_id == address_id), None)

    @property
    def missing(self) -> list[str]:
        """What keeps the profile from being complete (user service's rule: address + method)."""
        missing: list[str] = []
        if self.default_address_id not in self.address_ids:
            missing.append("address")
        if not self.payment_method_ids:
            missing.append("paymentMethod")
        return missing

    @property
    def preferred_payment_method_id(self) -> str | None:
        """The preferred method when it is still stored, else the default, else the first."""
        for candidate in (self.preferred_payment_method, self.default_payment_method_id):
            if candidate in self.payment_method_ids:
                return candidate
        return self.payment_method_ids[0] if self.payment_method_ids else None

    def checkout(self, address_id: str | None, payment_method_id: str | None) -> tuple[str, str]:
        """The address and method an order uses: the given ones, else the defaults (quick order)."""
        missing = self.missing
        if address_id is None and "address" in missing:
            raise ProfileIncomplete(self.user_id, missing)
        if payment_method_id is None and "paymentMethod" in missing:
            raise ProfileIncomplete(self.user_id, missing)
        address = address_id or self.default_address_id
        method = payment_method_id or self.preferred_payment_method_id
        assert address is not None and method is not None  # guaranteed by `missing` above
        if address not in self.address_ids:
            raise UnknownAddress(address)
        if method not in self.payment_method_ids:
            raise UnknownPaymentMethod(method)
        return address, method


@dataclass(frozen=True)
class LineAvailability:
    """Inventory's answer for one line of a precheck."""

    product_id: str
    requested: int
    available: int
    status: Literal["available", "partial", "unavailable"]
    alternatives: tuple[str, ...] = ()
    exists: bool = True


@dataclass(frozen=True)
class Precheck:
    """The pre-order check's answer (api.md `POST /orders/precheck`)."""

    ready: bool
    profile_complete: bool
    missing: list[str]
    items: list[LineAvailability]
    default_address_id: str | None
    preferred_payment_method_id: str | None
    # Ask for the missing details now: incomplete and not asked before (the seed's "minimal
    # prompts": the front end asks once, then lets the customer order what they can).
    prompt_profile_completion: bool = False


def precheck_outcome(
    profile: CustomerProfile | None, availability: Sequence[LineAvailability]
) -> Precheck:
    """Ready when the profile is complete and every line is available in full."""
    missing = ["address", "paymentMethod"] if profile is None else profile.missing
    every_line = bool(availability) and all(a.status == "available" for a in availability)
    return Precheck(
        ready=not missing and every_line,
        profile_complete=not missing,
        missing=missing,
        items=list(availability),
        default_address_id=profile.default_address_id if profile else None,
        preferred_payment_method_id=profile.preferred_payment_method_id if profile else None,
        prompt_profile_completion=bool(missing)
        and not (profile is not None and profile.completion_prompted),
    )
