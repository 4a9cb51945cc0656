"""Seeding the catalogue: the demo products of local mode, and a bulk load of many products.

The demo catalogue: realistic products in a few categories, with fixed ids, so seeding it again
adds only what is missing. `make run` seeds it once the embedded Mongo is up (unless
`SHOP_SEED_CATALOG=0`), before the services start:

    python -m devkit.seed_catalogue --demo [--mongo-url mongodb://… --db-prefix ""]

The bulk load, for benchmarks (`bench` grows the catalogue 10× and 100× with it) and large demos:

    python -m devkit.seed_catalogue --mongo-url mongodb://… --db-prefix "" --count 5000

Both build each product with the inventory service's own code (`commands.seed_products` and
`commands.add_products`: the product document, the opening-stock ledger row of the bulk load,
`ProductCreated`),
insert a chunk of them with `insert_many` and write their ProductCreated events to the outbox in
the same transaction, so the service's relay publishes them (at once if it runs, else once it
starts) and the order and analytics replicas grow as they do in production. The service's
indexes are ensured first (idempotent), so it may run before the service ever started.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sys
import time
import uuid
from collections.abc import Sequence
from typing import Any

from inventory_service.commands import add_products, seed_products
from inventory_service.domain import NewProduct
from inventory_service.settings import InventorySettings
from inventory_service.store import INDEXES
from pymongo import AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from bus.outbox import Outbox
from contracts import Envelope
from contracts.ids import uuid7
from kit.clock import utcnow
from kit.mongo import ensure_indexes
from kit.transactions import run_in_transaction

DEFAULT_CHUNK = 500
# A chunk's transaction competes with the running service's own: the embedded server fails one
# of two overlapping write transactions, and while the relay publishes the previous chunk's
# events it writes (claims, marks sent) back to back. So a chunk is retried patiently, up to
# about a minute: the load then goes at the relay's pace, the backpressure production would see.
ATTEMPTS = 80
MAX_DELAY = 1.0

# uuid5 of the product's name under this namespace: the same id every time, so seeding is
# idempotent: seeding again (every `make run`) never duplicates the catalogue.
SEED_NAMESPACE = uuid.UUID("6f1d2c3e-5b0a-4e2f-9a8b-1c2d3e4f5a6b")

# (category, name, description, price in cents, stock)
_CATALOGUE: list[tuple[str, str, str, int, int]] = [
    ("electronics", "Wireless Earbuds", "Bluetooth 5.3 earbuds with charging case", 4999, 120),
    ("electronics", "Noise-Cancelling Headphones", "Over-ear, 30 h battery", 19999, 40),
    ("electronics", "USB-C Charger 65W", "GaN charger, two ports", 3499, 200),
    ("electronics", "Mechanical Keyboard", "Tenkeyless, hot-swappable switches", 8999, 60),
    ("electronics", "Wireless Mouse", "Ergonomic, silent clicks", 2499, 150),
    ("electronics", "27-inch 4K Monitor", "IPS panel, USB-C with 90W power delivery", 32999, 15),
    ("electronics", "Portable SSD 1TB", "USB 3.2, 1050 MB/s", 10999, 80),
    ("electronics", "Smartwatch", "Heart rate, GPS, 7-day battery", 14999, 3),
    ("books", "The Pragmatic Programmer", "20th anniversary edition", 3999, 50),
    ("books", "Designing Data-Intensive Applications", "Reliable, scalable systems", 4599, 35),
    ("books", "Clean Architecture", "A craftsman's guide to software structure", 3299, 25),
    ("books", "Domain-Driven Design Distilled", "A short introduction to DDD", 2999, 40),
    ("books", "Python Crash Course", "A hands-on introduction to programming", 3599, 60),
    ("books", "Refactoring", "Improving the design of existing code, 2nd edition", 4299, 4),
    ("books", "Site Reliability Engineering", "How Google runs production systems", 4999, 20),
    ("home", "Cast Iron Skillet", "12-inch, pre-seasoned", 3999, 45),
    ("home", "French Press", "1 litre, borosilicate glass", 2799, 70),
    ("home", "Chef's Knife", "8-inch, German steel", 5999, 30),
    ("home", "Linen Bed Sheets", "Queen size, stone-washed", 12999, 20),
    ("home", "Desk Lamp", "LED, dimmable, warm to cool white", 3999, 55),
    ("home", "Ceramic Mug Set", "Four 350 ml mugs", 2499, 90),
    ("home", "Air Purifier", "HEPA filter, rooms up to 40 m²", 14999, 2),
    ("sports", "Yoga Mat", "6 mm, non-slip", 2999, 100),
    ("sports", "Adjustable Dumbbells", "2.5 to 24 kg per dumbbell", 29999, 10),
    ("sports", "Running Shoes", "Lightweight road running shoes", 11999, 45),
    ("sports", "Water Bottle", "Insulated stainless steel, 750 ml", 2499, 150),
    ("sports", "Resistance Bands", "Set of five, 5 to 50 kg", 1999, 80),
    ("sports", "Cycling Helmet", "MIPS, ventilated", 7999, 25),
    ("sports", "Jump Rope", "Ball-bearing speed rope", 1299, 0),
    ("sports", "Foam Roller", "45 cm, high density", 2299, 35),
]


def seed_id(name: str) -> str:
    """The fixed id of a demo product."""
    return str(uuid.uuid5(SEED_NAMESPACE, name))


def demo_catalogue() -> list[tuple[str, NewProduct]]:
    """The demo products with their fixed ids."""
    return [
        (
            seed_id(name),
            NewProduct(
                name=name,
                description=description,
                category=category,
                price_cents=price,
                stock_count=stock,
            ),
        )
        for category, name, description, price, stock in _CATALOGUE
    ]


async def seed_demo(client: AsyncMongoClient[Any], db: AsyncDatabase[Any]) -> int:
    """Insert the demo products that are missing, each announced by ProductCreated in the
    outbox; how many were added (0 when the catalogue was seeded before)."""
    now = utcnow()
    outbox = Outbox(db)

    async def body(session: AsyncClientSession) -> int:
        events = await seed_products(db, session, demo_catalogue(), now)
        await outbox.add(session, *(Envelope.wrap(e, correlation_id=e.product_id) for e in events))
        return len(events)

    return await run_in_transaction(client, body, attempts=ATTEMPTS, max_delay=MAX_DELAY)


# ── bulk load ──────────────────────────────────────────────────────────────────────────────


def bulk_products(
    count: int,
    *,
    tag: str,
    start: int = 0,
    price_cents: int = 1_000,
    stock: int = 1_000_000,
    categories: int = 20,
) -> list[tuple[str, NewProduct]]:
    """`count` generated products (`Seeded item <tag>-<i>`, `seeded-<i % categories>`), each with
    a fresh id; `start` numbers them on from an earlier call."""
    return [
        (
            str(uuid7()),
            NewProduct(
                name=f"Seeded item {tag}-{i}",
                description=f"bulk-loaded product {i} of batch {tag}",
                category=f"seeded-{i % categories}",
                price_cents=price_cents,
                stock_count=stock,
            ),
        )
        for i in range(start, start + count)
    ]


async def seed_catalogue(
    client: AsyncMongoClient[Any],
    db: AsyncDatabase[Any],
    products: Sequence[tuple[str, NewProduct]],
    *,
    chunk: int = DEFAULT_CHUNK,
) -> list[str]:
    """Insert `products` a chunk per transaction, each with its ProductCreated in the outbox;
    the ids, in order. The relay of a running service publishes them at its next poll."""
    ids: list[str] = []
    for first in range(0, len(products), chunk):
        part = products[first : first + chunk]
        await _insert_chunk(client, db, part)
        ids += [product_id for product_id, _ in part]
    return ids


async def _insert_chunk(
    client: AsyncMongoClient[Any], db: AsyncDatabase[Any], part: Sequence[tuple[str, NewProduct]]
) -> None:
    now = utcnow()
    outbox = Outbox(db)

    async def body(session: AsyncClientSession) -> None:
        events = await add_products(db, session, part, None, now)
        await outbox.add(session, *(Envelope.wrap(e, correlation_id=e.product_id) for e in events))

    await run_in_transaction(client, body, attempts=ATTEMPTS, max_delay=MAX_DELAY)


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m devkit.seed_catalogue",
        description="Seed the demo catalogue (--demo) or bulk-load generated products "
        "(--count), with their ProductCreated events.",
    )
    parser.add_argument("--mongo-url", help="default: MONGO_URL, as the service")
    parser.add_argument("--db-prefix", help="default: DB_PREFIX, as the service")
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--demo", action="store_true", help="the demo catalogue (idempotent)")
    what.add_argument("--count", type=int, help="generated products to add")
    parser.add_argument("--tag", default=None, help="name tag (default: random)")
    parser.add_argument("--price-cents", type=int, default=1_000)
    parser.add_argument("--stock", type=int, default=1_000_000)
    parser.add_argument("--categories", type=int, default=20)
    parser.add_argument("--chunk", type=int, default=DEFAULT_CHUNK)
    return parser.parse_args(argv)


async def main_async(args: argparse.Namespace) -> int:
    overrides = {"mongo_url": args.mongo_url, "db_prefix": args.db_prefix}
    settings = InventorySettings(**{k: v for k, v in overrides.items() if v is not None})
    client: AsyncMongoClient[Any] = AsyncMongoClient(settings.mongo_url)
    try:
        db = client[settings.database_name]
        await ensure_indexes(db, INDEXES)
        await Outbox(db).ensure_indexes()
        if args.demo:
            added = await seed_demo(client, db)
            print(f"demo catalogue: {added} products added to {settings.database_name}")
            return 0
        products = bulk_products(
            args.count,
            tag=args.tag or secrets.token_hex(3),
            price_cents=args.price_cents,
            stock=args.stock,
            categories=args.categories,
        )
        t0 = time.perf_counter()
        await seed_catalogue(client, db, products, chunk=args.chunk)
        seconds = time.perf_counter() - t0
    finally:
        await client.close()
    rate = args.count / seconds if seconds else 0.0
    print(
        f"added {args.count} products to {settings.database_name} in {seconds:.1f}s "
        f"({rate:.0f}/s), each with ProductCreated in the outbox"
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return asyncio.run(main_async(parse(argv)))


if __name__ == "__main__":
    sys.exit(main())
