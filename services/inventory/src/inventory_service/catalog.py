"""Admin commands on the catalogue: create, update, soft delete, stock adjustment, demo seeding.

Each command runs inside the caller's transaction and returns the product document plus the events
to put in the outbox, so the state change and its events commit together.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from contracts import Actor, Event
from contracts.ids import uuid7
from contracts.inventory import ProductCreated, ProductDeleted, ProductUpdated, StockAdjusted
from inventory_service import store
from inventory_service.domain import DEFAULT_LOW_STOCK_THRESHOLD, InsufficientStock, Ledger
from inventory_service.handlers import low_stock_events
from inventory_service.store import Db, Doc, Session


class ProductNotFound(Exception):
    """No live product has this id."""

    def __init__(self, product_id: str) -> None:
        super().__init__(f"product {product_id} not found")
        self.product_id = product_id


@dataclass(frozen=True, slots=True)
class NewProduct:
    """What an Admin (or the demo seed) gives to create a product."""

    name: str
    description: str
    category: str
    price_cents: int
    stock_count: int
    currency: str = "USD"
    low_stock_threshold: int = DEFAULT_LOW_STOCK_THRESHOLD


def product_doc(product_id: str, new: NewProduct, actor_id: str | None, now: datetime) -> Doc:
    """A fresh product document: all its stock received and available."""
    return {
        "_id": product_id,
        "name": new.name,
        "description": new.description,
        "category": new.category,
        "price_cents": new.price_cents,
        "currency": new.currency,
        "low_stock_threshold": new.low_stock_threshold,
        "received": new.stock_count,
        "available": new.stock_count,
        "reserved": 0,
        "committed": 0,
        "low_stock": False,
        "deleted": False,
        "created_at": now,
        "updated_at": now,
        "created_by": actor_id,
        "updated_by": actor_id,
        "audit_logs": [_audit("created", actor_id, now, {"stockCount": new.stock_count})],
    }


def _audit(action: str, actor_id: str | None, now: datetime, changes: Mapping[str, Any]) -> Doc:
    return {"at": now, "action": action, "actor_id": actor_id, "changes": dict(changes)}


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


def opening_stock(ledger: Ledger, doc: Doc, actor_id: str | None, now: datetime) -> None:
    """The ledger row that explains a new product's stock (none when it opens empty)."""
    if doc["received"]:
        ledger.record(
            doc["_id"],
            reason="opening stock",
            at=now,
            received=doc["received"],
            available=doc["available"],
            actor_id=actor_id,
        )


async def create_product(
    db: Db, session: Session, new: NewProduct, actor: Actor, now: datetime
) -> tuple[Doc, list[Event]]:
    """Add a product with its opening stock: ProductCreated (and StockLow when it opens low)."""
    doc = product_doc(str(uuid7()), new, actor.user_id, now)
    await store.insert_products(db, [doc], session)
    ledger = Ledger()
    opening_stock(ledger, doc, actor.user_id, now)
    await store.record_ledger(db, ledger, session)
    events: list[Event] = [ProductCreated(**product_facts(doc))]
    events += await low_stock_events(db, doc, session)
    return doc, events


async def update_product(
    db: Db,
    session: Session,
    product_id: str,
    changes: Mapping[str, Any],
    actor: Actor,
    now: datetime,
) -> tuple[Doc, list[Event]]:
    """Change catalogue fields: ProductUpdated with the product as it now stands."""
    fields = {**changes, "updated_at": now, "updated_by": actor.user_id}
    audit = _audit("updated", actor.user_id, now, changes)
    doc = await store.update_product(db, product_id, fields, audit, session)
    if doc is None:
        raise ProductNotFound(product_id)
    events: list[Event] = [ProductUpdated(**product_facts(doc))]
    if "low_stock_threshold" in changes:
        events += await low_stock_events(db, doc, session)
    return doc, events


async def delete_product(
    db: Db, session: Session, product_id: str, actor: Actor, now: datetime
) -> tuple[Doc, list[Event]]:
    """Soft delete: the product leaves the catalogue, its held reservations still resolve."""
    fields = {"deleted": True, "deleted_at": now, "updated_at": now, "updated_by": actor.user_id}
    audit = _audit("deleted", actor.user_id, now, {})
    doc = await store.update_product(db, product_id, fields, audit, session)
    if doc is None:
        raise ProductNotFound(product_id)
    return doc, [ProductDeleted(**product_facts(doc))]


async def adjust_stock(
    db: Db,
    session: Session,
    product_id: str,
    delta: int,
    reason: str,
    actor: Actor,
    now: datetime,
) -> tuple[Doc, list[Event]]:
    """Receive or write off units (only available ones): StockAdjusted, maybe StockLow."""
    fields = {"updated_at": now, "updated_by": actor.user_id}
    audit = _audit("stockAdjusted", actor.user_id, now, {"delta": delta, "reason": reason})
    doc = await store.adjust_stock(db, product_id, delta, fields, audit, session)
    if doc is None:
        current = await store.get_product(db, product_id, session)
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
    await store.record_ledger(db, ledger, session)
    events: list[Event] = [
        StockAdjusted(product_id=product_id, delta=delta, reason=reason, available=doc["available"])
    ]
    events += await low_stock_events(db, doc, session)
    return doc, events


async def seed_products(
    db: Db, session: Session, seeds: Sequence[tuple[str, NewProduct]], now: datetime
) -> list[ProductCreated]:
    """Insert the demo products not stored yet (fixed ids, so a restart adds nothing)."""
    known = await store.existing_ids(db, [product_id for product_id, _ in seeds], session)
    docs = [product_doc(pid, new, None, now) for pid, new in seeds if pid not in known]
    for doc in docs:
        doc["low_stock"] = doc["available"] <= doc["low_stock_threshold"]
    await store.insert_products(db, docs, session)
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
    docs = [product_doc(pid, new, actor_id, now) for pid, new in products]
    ledger = Ledger()
    for doc in docs:
        doc["low_stock"] = doc["available"] <= doc["low_stock_threshold"]
        opening_stock(ledger, doc, actor_id, now)
    await store.insert_products(db, docs, session)
    await store.record_ledger(db, ledger, session)
    return [ProductCreated(**product_facts(doc)) for doc in docs]
