"""The pre-order check: profile completeness and stock, in one round trip (no routes yet).

The replica answers first. api.md's read-your-own-writes rule: the replica may lag behind a
profile the customer just completed, so on a miss or a stale "incomplete" the user service is
asked synchronously (with the customer's own token, through `GET /api/v1/users/me`). Stock is
always asked of inventory (`POST /internal/availability`): it changes too fast for a replica.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol
from urllib.parse import quote

import httpx
import structlog

from contracts.types import Address, PaymentMethodSummary, Preferences
from kit.mongo import Db
from order_service import replicas
from order_service.domain import (
    CustomerProfile,
    LineAvailability,
    Precheck,
    ProductFacts,
    precheck_outcome,
)

log = structlog.get_logger("order.precheck")


class DependencyDown(Exception):
    """A service the answer depends on could not be reached or failed (the API answers 503)."""

    def __init__(self, service: str, error: str) -> None:
        super().__init__(f"{service} unavailable: {error}")
        self.service = service


class UserDirectory(Protocol):
    """The user service, asked when the replica has no (complete) profile."""

    async def profile(self, user_id: str, authorization: str | None) -> CustomerProfile | None:
        """The customer's current profile, or None when the owner cannot say."""
        ...

    async def mark_prompted(self, user_id: str, authorization: str | None) -> None:
        """Remember that the customer was asked to complete the profile (best effort)."""
        ...


class StockChecker(Protocol):
    """Inventory's availability query."""

    async def availability(self, items: Sequence[tuple[str, int]]) -> list[LineAvailability]:
        """Per line: requested, available, status, alternatives, exists."""
        ...

    async def products(self, ids: Sequence[str]) -> dict[str, ProductFacts]:
        """The catalogue facts of products the replica has not heard of yet (just created)."""
        ...


class HttpUserDirectory:
    """`UserDirectory` over HTTP: the customer's own `GET /api/v1/users/me`."""

    def __init__(self, client: httpx.AsyncClient, base_url: str) -> None:
        self.client = client
        self.base_url = base_url.rstrip("/")

    async def profile(self, user_id: str, authorization: str | None) -> CustomerProfile | None:
        """The profile the user service holds now; None without a token or on any failure."""
        if not authorization:
            return None
        try:
            response = await self.client.get(
                f"{self.base_url}/api/v1/users/me", headers={"Authorization": authorization}
            )
        except httpx.HTTPError as exc:
            # The replica's answer stands when the owner is unreachable: a precheck degrades,
            # it does not fail.
            log.warning("precheck.user_service_unreachable", user_id=user_id, error=str(exc))
            return None
        if response.status_code != 200:
            log.warning(
                "precheck.user_service_refused", user_id=user_id, status=response.status_code
            )
            return None
        body = response.json()
        if body.get("userId") != user_id:
            return None  # never trust a profile of someone else
        return profile_from_user_service(body)

    async def mark_prompted(self, user_id: str, authorization: str | None) -> None:
        """`POST /api/v1/users/me/profile-prompted` with the customer's token; failures only log
        (the hint is shown once more at worst)."""
        if not authorization:
            return
        try:
            response = await self.client.post(
                f"{self.base_url}/api/v1/users/me/profile-prompted",
                headers={"Authorization": authorization},
            )
        except httpx.HTTPError as exc:
            log.warning("precheck.prompt_not_recorded", user_id=user_id, error=str(exc))
            return
        if response.status_code != 200:
            log.warning(
                "precheck.prompt_not_recorded", user_id=user_id, status=response.status_code
            )


def profile_from_user_service(body: dict[str, Any]) -> CustomerProfile:
    """Map the user service's profile (camelCase) to the checkout facts."""
    addresses = [Address.model_validate(a) for a in body.get("addresses", [])]
    methods = [PaymentMethodSummary.model_validate(m) for m in body.get("paymentMethods", [])]
    preferences = Preferences.model_validate(body.get("preferences") or {})
    flags = body.get("flags") or {}
    return CustomerProfile(
        user_id=body["userId"],
        is_profile_complete=bool(flags.get("isProfileComplete", False)),
        address_ids=tuple(a.address_id for a in addresses),
        default_address_id=next((a.address_id for a in addresses if a.is_default), None),
        payment_method_ids=tuple(m.payment_method_id for m in methods),
        default_payment_method_id=next(
            (m.payment_method_id for m in methods if m.is_default), None
        ),
        preferred_payment_method=flags.get("preferredPaymentMethod") or preferences.payment_method,
        partial_fulfillment=preferences.partial_fulfillment,
        addresses=tuple(addresses),
        completion_prompted=bool(flags.get("profileCompletionPrompted", False)),
    )


class HttpInventory:
    """`StockChecker` over HTTP: inventory's internal availability endpoint."""

    def __init__(
        self, client: httpx.AsyncClient, base_url: str, internal: Mapping[str, str]
    ) -> None:
        self.client = client
        self.base_url = base_url.rstrip("/")
        self.internal = dict(internal)  # the internal credential's header (kit.internal)

    async def availability(self, items: Sequence[tuple[str, int]]) -> list[LineAvailability]:
        """Ask inventory; `DependencyDown` when it cannot answer (a precheck needs stock)."""
        try:
            response = await self.client.post(
                f"{self.base_url}/internal/availability",
                json={"items": [{"productId": p, "quantity": q} for p, q in items]},
                headers=self.internal,
            )
            response.raise_for_status()
        except httpx.HTTPError as exc:
            raise DependencyDown("inventory", repr(exc)) from exc
        return [
            LineAvailability(
                product_id=line["productId"],
                requested=line["requested"],
                available=line["available"],
                status=line["status"],
                alternatives=tuple(line.get("alternatives", ())),
                exists=line.get("exists", True),
            )
            for line in response.json()["items"]
        ]

    async def products(self, ids: Sequence[str]) -> dict[str, ProductFacts]:
        """Inventory's public product view, one request per id (only for replica misses)."""
        found: dict[str, ProductFacts] = {}
        for product_id in ids:
            try:
                response = await self.client.get(
                    f"{self.base_url}/api/v1/products/{quote(product_id, safe='')}"
                )
            except httpx.HTTPError as exc:
                raise DependencyDown("inventory", repr(exc)) from exc
            if response.status_code == 404:
                continue  # the domain answers UNKNOWN_PRODUCT
            if response.status_code != 200:
                raise DependencyDown("inventory", f"status {response.status_code}")
            body = response.json()
            found[product_id] = ProductFacts(
                product_id=product_id,
                name=body["name"],
                price_cents=body["priceCents"],
                currency=body.get("currency", "USD"),
            )
        return found


async def customer_profile(
    db: Db, user_id: str, users: UserDirectory, authorization: str | None
) -> CustomerProfile | None:
    """The replica's profile, or the owner's when the replica misses it or says incomplete."""
    profile = replicas.customer_profile(await replicas.get_user(db, user_id))
    if profile is not None and not profile.missing:
        return profile
    fresh = await users.profile(user_id, authorization)
    if fresh is None:
        return profile
    if profile is not None and profile.deleted:
        return profile  # a deletion is final, whatever a still-valid token fetches
    return fresh


async def precheck(
    db: Db,
    user_id: str,
    items: Sequence[tuple[str, int]],
    *,
    users: UserDirectory,
    stock: StockChecker,
    authorization: str | None = None,
) -> Precheck:
    """Is the customer ready to order these lines: profile complete and every line in stock?"""
    profile = await customer_profile(db, user_id, users, authorization)
    availability = await stock.availability(items) if items else []
    outcome = precheck_outcome(profile, availability)
    if outcome.prompt_profile_completion:
        await users.mark_prompted(user_id, authorization)
    return outcome
