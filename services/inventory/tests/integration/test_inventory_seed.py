"""The bulk seed (`devkit.seed_catalogue`): seeded products are listed and searchable like
created ones, and their ProductCreated events leave through the outbox and the relay."""

from __future__ import annotations

import pytest

from devkit import seed_catalogue as seed
from devkit.bus_testing import eventually

from .conftest import Start

pytestmark = pytest.mark.integration


async def test_seeded_products_are_listed_searchable_and_announced(start_inventory: Start) -> None:
    async with start_inventory(broker=True) as inv:
        products = seed.bulk_products(12, tag="t1", categories=3, stock=40)
        ids = await seed.seed_catalogue(inv.deps.mongo, inv.deps.db, products, chunk=5)
        assert ids == [product_id for product_id, _ in products]

        # Every product, with its opening stock explained by a ledger row, as a created one.
        listed = (await inv.http.get("/api/v1/products", params={"limit": 100})).json()["items"]
        assert {p["productId"] for p in listed} == set(ids)
        one = (await inv.http.get(f"/api/v1/products/{ids[7]}")).json()
        assert one["name"] == "Seeded item t1-7" and one["category"] == "seeded-1"
        assert one["priceCents"] == 1_000 and one["stockAvailable"] == 40
        assert await inv.deps.db["stock_ledger"].count_documents({}) == 12

        # Searchable by text and by category.
        found = await inv.http.get("/api/v1/products", params={"q": "item t1-11"})
        assert [p["productId"] for p in found.json()["items"]] == [ids[11]]
        category = await inv.http.get("/api/v1/products", params={"category": "seeded-2"})
        assert {p["productId"] for p in category.json()["items"]} == set(ids[2::3])

        # One ProductCreated per product in the outbox; the running relay publishes them.
        rows = inv.deps.db["outbox"].find({}, {"type": 1, "correlation_id": 1})
        outbox = [(row["type"], row["correlation_id"]) async for row in rows]
        assert sorted(outbox) == sorted(("ProductCreated", pid) for pid in ids)
        await eventually(
            lambda: len(inv.emitted("ProductCreated")) == 12, what="ProductCreated published"
        )
        published = {e["data"]["productId"] for e in inv.emitted("ProductCreated")}
        assert published == set(ids)
