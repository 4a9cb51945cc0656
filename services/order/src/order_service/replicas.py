"""The order service's local replicas of users, products and promotions, kept from events.

Events of one entity can arrive out of order (competing consumers, retries through delay queues),
so each replica document keeps, per group of fields, the `occurredAt` of the event that last set
them, and an event only writes a group when it is strictly newer. Groups are separate because the
events carry different slices of an entity: a late `UserProfileUpdated` must still fill in the
addresses even though a newer `UserRoleChanged` already set the role. A deletion is its own group
and is never undone by an older event.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from contracts.analytics import PromotionGranted
from contracts.inventory import ProductCreated, ProductDeleted, ProductUpdated
from contracts.types import Address
from contracts.user import UserDeleted, UserProfileUpdated, UserRegistered, UserRoleChanged
from kit.mongo import Db, Doc, IndexSpec, Session
from order_service.domain import CustomerProfile, ProductFacts, Promotion

USERS = "user_replicas"
PRODUCTS = "product_replicas"
PROMOTIONS = "promotion_replicas"

# Promotions are keyed by `_id` = "<user>:<code>" (`promotion_key`), so they need no index.
INDEXES: list[IndexSpec] = []


async def apply_newer(
    db: Db,
    collection: str,
    key: str,
    groups: Mapping[str, Doc],
    at: datetime,
    session: Session,
    *,
    on_insert: Doc | None = None,
) -> list[str]:
    """Write each group of fields whose stored version is older than `at`; the groups written."""
    # Mongo keeps milliseconds: compare at that precision so a redelivery is seen as equal.
    at = at.replace(microsecond=at.microsecond // 1000 * 1000)
    current = await db[collection].find_one({"_id": key}, {"versions": 1}, session=session)
    versions: Doc = (current or {}).get("versions", {})
    fields: Doc = {}
    written: list[str] = []
    for group, values in groups.items():
        seen = versions.get(group)
        if seen is not None and seen >= at:
            continue  # an equal or newer event already set these fields (or this is a duplicate)
        fields.update(values)
        fields[f"versions.{group}"] = at
        written.append(group)
    if not fields:
        return []
    update: Doc = {"$set": fields}
    if on_insert:
        update["$setOnInsert"] = on_insert
    await db[collection].update_one({"_id": key}, update, upsert=True, session=session)
    return written


# --- writers (one per event type) -------------------------------------------------------------


async def user_registered(db: Db, event: UserRegistered, at: datetime, session: Session) -> None:
    """A new account: who it is and its role; an empty profile until it is completed."""
    await apply_newer(
        db,
        USERS,
        event.user_id,
        {
            "identity": {"username": event.username, "email": event.email},
            "role": {"role": event.role},
        },
        at,
        session,
        on_insert={"user_id": event.user_id, "is_profile_complete": False, "deleted": False},
    )


async def user_profile_updated(
    db: Db, event: UserProfileUpdated, at: datetime, session: Session
) -> None:
    """The whole profile as it now stands (completeness, addresses, payment methods, prefs)."""
    await apply_newer(
        db,
        USERS,
        event.user_id,
        {
            "identity": {"username": event.username, "email": event.email},
            "profile": {
                "is_profile_complete": event.is_profile_complete,
                "addresses": [a.model_dump() for a in event.addresses],
                "default_address_id": event.default_address_id,
                "payment_methods": [m.model_dump() for m in event.payment_methods],
                "preferences": event.preferences.model_dump(),
                "disabled": event.disabled,
            },
        },
        at,
        session,
        on_insert={"user_id": event.user_id, "deleted": False},
    )


async def user_role_changed(db: Db, event: UserRoleChanged, at: datetime, session: Session) -> None:
    """An Admin changed a user's role."""
    await apply_newer(
        db,
        USERS,
        event.user_id,
        {"role": {"role": event.role}},
        at,
        session,
        on_insert={"user_id": event.user_id, "is_profile_complete": False, "deleted": False},
    )


async def user_deleted(db: Db, event: UserDeleted, at: datetime, session: Session) -> None:
    """A soft-deleted user places no more orders (deletion is final)."""
    await apply_newer(
        db,
        USERS,
        event.user_id,
        {"deleted": {"deleted": True}},
        at,
        session,
        on_insert={"user_id": event.user_id, "is_profile_complete": False},
    )


async def product_changed(
    db: Db,
    event: ProductCreated | ProductUpdated | ProductDeleted,
    at: datetime,
    session: Session,
) -> None:
    """A product's name, price and currency as they now stand; deleted after ProductDeleted."""
    facts = {
        "name": event.name,
        "category": event.category,
        "price_cents": event.price_cents,
        "currency": event.currency,
    }
    groups: dict[str, Doc] = {"product": facts}
    if isinstance(event, ProductDeleted):
        groups["deleted"] = {"deleted": True}
    await apply_newer(
        db,
        PRODUCTS,
        event.product_id,
        groups,
        at,
        session,
        on_insert={"product_id": event.product_id}
        | ({} if "deleted" in groups else {"deleted": False}),
    )


async def promotion_granted(
    db: Db, event: PromotionGranted, at: datetime, session: Session
) -> None:
    """A code granted to a user; `redeemed` stays as the order service set it."""
    await apply_newer(
        db,
        PROMOTIONS,
        promotion_key(event.user_id, event.code),
        {"grant": {"percent_off": event.percent_off, "expires_at": event.expires_at}},
        at,
        session,
        on_insert={"user_id": event.user_id, "code": event.code, "redeemed": False},
    )


# --- readers ----------------------------------------------------------------------------------


def promotion_key(user_id: str, code: str) -> str:
    """One promotion document per (user, code)."""
    return f"{user_id}:{code}"


async def get_user(db: Db, user_id: str, session: Session = None) -> Doc | None:
    """The replicated user, or None when no event about it arrived yet."""
    return await db[USERS].find_one({"_id": user_id}, session=session)


def customer_profile(doc: Doc | None) -> CustomerProfile | None:
    """The checkout facts of a replicated user (None before any profile event arrived)."""
    if doc is None:
        return None
    methods = doc.get("payment_methods", [])
    return CustomerProfile(
        user_id=doc["_id"],
        is_profile_complete=bool(doc.get("is_profile_complete", False)),
        address_ids=tuple(a["address_id"] for a in doc.get("addresses", [])),
        default_address_id=doc.get("default_address_id"),
        payment_method_ids=tuple(m["payment_method_id"] for m in methods),
        default_payment_method_id=next(
            (m["payment_method_id"] for m in methods if m.get("is_default")), None
        ),
        preferred_payment_method=doc.get("preferences", {}).get("payment_method"),
        partial_fulfillment=doc.get("preferences", {}).get("partial_fulfillment", "ask"),
        deleted=bool(doc.get("deleted", False) or doc.get("disabled", False)),
        addresses=tuple(Address.model_validate(a) for a in doc.get("addresses", [])),
    )


async def catalogue(db: Db, ids: Sequence[str], session: Session = None) -> dict[str, ProductFacts]:
    """The replicated products among `ids` (deleted ones included, flagged), by id."""
    found = db[PRODUCTS].find({"_id": {"$in": list(ids)}}, session=session)
    facts: dict[str, ProductFacts] = {}
    async for doc in found:
        if "price_cents" not in doc:
            continue  # only a deletion marker arrived so far
        facts[doc["_id"]] = ProductFacts(
            product_id=doc["_id"],
            name=doc["name"],
            price_cents=doc["price_cents"],
            currency=doc.get("currency", "USD"),
            deleted=bool(doc.get("deleted", False)),
        )
    return facts


async def get_promotion(
    db: Db, user_id: str, code: str, session: Session = None
) -> Promotion | None:
    """The user's promotion with this code, or None."""
    doc = await db[PROMOTIONS].find_one({"_id": promotion_key(user_id, code)}, session=session)
    if doc is None or "percent_off" not in doc:
        return None
    return Promotion(
        code=doc["code"],
        user_id=doc["user_id"],
        percent_off=doc["percent_off"],
        expires_at=doc["expires_at"],
        redeemed=bool(doc.get("redeemed", False)),
    )


async def mark_redeemed(db: Db, user_id: str, code: str, session: Session) -> bool:
    """Mark a promotion used; True only for the order that flipped it (one use per code)."""
    result = await db[PROMOTIONS].update_one(
        {"_id": promotion_key(user_id, code), "redeemed": False},
        {"$set": {"redeemed": True}},
        session=session,
    )
    return result.modified_count == 1
