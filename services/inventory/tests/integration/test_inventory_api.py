"""The product API against a real MongoDB-protocol server (a NullBus: outbox rows stay put)."""

from __future__ import annotations

from typing import Any

import pytest

from devkit.seed_catalogue import demo_catalogue, seed_demo
from kit.internal import internal_headers

from .conftest import Start, token

pytestmark = pytest.mark.integration

ADMIN = token("Admin", "admin-1")
BOOK: dict[str, Any] = {
    "name": "Refactoring",
    "description": "Improving the design of existing code",
    "category": "books",
    "priceCents": 4299,
    "stockCount": 10,
    "lowStockThreshold": 3,
}


async def outbox_types(running: Any) -> list[str]:
    rows = running.deps.db["outbox"].find({}).sort("_id", 1)
    return [row["type"] async for row in rows]


async def test_admin_creates_patches_adjusts_and_deletes_a_product(start_inventory: Start) -> None:
    async with start_inventory() as inv:
        created = await inv.http.post("/api/v1/products", json=BOOK, headers=ADMIN)
        assert created.status_code == 201, created.text
        product = created.json()
        pid = product["productId"]
        assert product["stockAvailable"] == 10 and product["currency"] == "USD"
        assert product["createdBy"] == "admin-1"

        patched = await inv.http.patch(
            f"/api/v1/products/{pid}", json={"priceCents": 3999}, headers=ADMIN
        )
        assert patched.status_code == 200 and patched.json()["priceCents"] == 3999

        adjusted = await inv.http.post(
            f"/api/v1/products/{pid}/stock", json={"delta": -8, "reason": "damaged"}, headers=ADMIN
        )
        assert adjusted.status_code == 200
        body = adjusted.json()
        assert body["stockAvailable"] == 2 and body["lowStock"] is True
        assert body["stock"] == {
            "received": 2,
            "available": 2,
            "reserved": 0,
            "committed": 0,
            "returned": 0,
        }
        too_many = await inv.http.post(
            f"/api/v1/products/{pid}/stock", json={"delta": -3, "reason": "lost"}, headers=ADMIN
        )
        assert too_many.status_code == 409 and too_many.json()["code"] == "INSUFFICIENT_STOCK"

        admin_view = (await inv.http.get(f"/api/v1/products/{pid}", headers=ADMIN)).json()
        assert [a["action"] for a in admin_view["auditLogs"]] == [
            "created",
            "updated",
            "stockAdjusted",
        ]
        assert admin_view["updatedBy"] == "admin-1"
        public = (await inv.http.get(f"/api/v1/products/{pid}")).json()
        assert "auditLogs" not in public and "createdBy" not in public
        customer_view = await inv.http.get(f"/api/v1/products/{pid}", headers=token("Customer"))
        assert "auditLogs" not in customer_view.json()

        ledger = await inv.deps.db["stock_ledger"].find({"product_id": pid}).to_list()
        assert [(r["reason"], r["delta"]["available"], r["actor_id"]) for r in ledger] == [
            ("opening stock", 10, "admin-1"),
            ("damaged", -8, "admin-1"),
        ]

        deleted = await inv.http.delete(f"/api/v1/products/{pid}", headers=ADMIN)
        assert deleted.status_code == 204
        gone = await inv.http.get(f"/api/v1/products/{pid}")
        assert gone.status_code == 404 and gone.json()["code"] == "PRODUCT_NOT_FOUND"
        assert (await inv.http.get("/api/v1/products")).json()["items"] == []

        assert await outbox_types(inv) == [
            "ProductCreated",
            "ProductUpdated",
            "StockAdjusted",
            "StockLow",
            "ProductDeleted",
        ]


async def test_audit_log_is_capped(start_inventory: Start) -> None:
    async with start_inventory() as inv:
        pid = (await inv.http.post("/api/v1/products", json=BOOK, headers=ADMIN)).json()[
            "productId"
        ]
        for i in range(25):
            await inv.http.patch(f"/api/v1/products/{pid}", json={"priceCents": i}, headers=ADMIN)
        logs = (await inv.http.get(f"/api/v1/products/{pid}", headers=ADMIN)).json()["auditLogs"]
        assert len(logs) == 20 and logs[-1]["changes"] == {"price_cents": 24}


@pytest.mark.parametrize(
    ("path", "method", "body"),
    [
        ("/api/v1/products", "POST", {**BOOK, "priceCents": -1}),
        ("/api/v1/products", "POST", {**BOOK, "stockCount": -5}),
        ("/api/v1/products", "POST", {**BOOK, "color": "red"}),
        ("/api/v1/products", "POST", {**BOOK, "name": {"$ne": ""}}),
        ("/api/v1/products", "POST", {**BOOK, "priceCents": "12"}),
        ("/api/v1/products/x/stock", "POST", {"delta": 1, "reason": "x", "extra": 1}),
        ("/api/v1/products/x/stock", "POST", {"delta": 0, "reason": "x"}),
        ("/api/v1/products/x", "PATCH", {"priceCents": -3}),
        ("/api/v1/products/x", "PATCH", {}),
        ("/internal/availability", "POST", {"items": [{"productId": "p", "quantity": -1}]}),
    ],
)
async def test_bad_input_is_422(
    start_inventory: Start, path: str, method: str, body: dict[str, Any]
) -> None:
    async with start_inventory() as inv:
        headers = {**ADMIN, **internal_headers(inv.app.state.settings)}
        response = await inv.http.request(method, path, json=body, headers=headers)
        assert response.status_code == 422, response.text
        assert response.json()["code"] == "VALIDATION_ERROR"
        assert response.headers["content-type"].startswith("application/problem+json")


async def test_huge_page_size_and_forged_cursor_are_422(start_inventory: Start) -> None:
    async with start_inventory() as inv:
        assert (await inv.http.get("/api/v1/products?limit=101")).status_code == 422
        assert (await inv.http.get("/api/v1/products?limit=0")).status_code == 422
        assert (await inv.http.get("/api/v1/products?cursor=bm90LWpzb24")).status_code == 422


@pytest.mark.parametrize("role", ["Customer", "Manager"])
async def test_non_admin_writes_are_403(start_inventory: Start, role: str) -> None:
    async with start_inventory() as inv:
        pid = (await inv.http.post("/api/v1/products", json=BOOK, headers=ADMIN)).json()[
            "productId"
        ]
        headers = token(role)
        attempts = [
            await inv.http.post("/api/v1/products", json=BOOK, headers=headers),
            await inv.http.patch(f"/api/v1/products/{pid}", json={"name": "x"}, headers=headers),
            await inv.http.delete(f"/api/v1/products/{pid}", headers=headers),
            await inv.http.post(
                f"/api/v1/products/{pid}/stock", json={"delta": 5, "reason": "x"}, headers=headers
            ),
        ]
        assert [(r.status_code, r.json()["code"]) for r in attempts] == [(403, "FORBIDDEN")] * 4
        anonymous = await inv.http.post("/api/v1/products", json=BOOK)
        assert anonymous.status_code == 401
        product = (await inv.http.get(f"/api/v1/products/{pid}", headers=ADMIN)).json()
        assert product["name"] == BOOK["name"] and product["stockAvailable"] == 10


async def test_search_category_and_cursor_paging(start_inventory: Start) -> None:
    async with start_inventory() as inv:
        seeded = await seed_demo(inv.deps.mongo, inv.deps.db)
        assert seeded == len(demo_catalogue())
        seen: list[str] = []
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"limit": 7}
            if cursor:
                params["cursor"] = cursor
            page = (await inv.http.get("/api/v1/products", params=params)).json()
            seen += [p["productId"] for p in page["items"]]
            cursor = page["nextCursor"]
            if cursor is None:
                break
        assert len(seen) == len(set(seen)) == seeded

        hits = (await inv.http.get("/api/v1/products", params={"q": "KEYBOARD"})).json()["items"]
        assert [p["name"] for p in hits] == ["Mechanical Keyboard"]
        by_description = await inv.http.get("/api/v1/products", params={"q": "gan charger"})
        assert [p["name"] for p in by_description.json()["items"]] == ["USB-C Charger 65W"]
        regex_chars = await inv.http.get("/api/v1/products", params={"q": ".*"})
        assert regex_chars.json()["items"] == []
        books = (await inv.http.get("/api/v1/products", params={"category": "books"})).json()
        assert books["items"] and {p["category"] for p in books["items"]} == {"books"}


async def test_seeding_is_idempotent_and_announced(start_inventory: Start) -> None:
    async with start_inventory() as inv:
        assert await seed_demo(inv.deps.mongo, inv.deps.db) == len(demo_catalogue())
        assert await seed_demo(inv.deps.mongo, inv.deps.db) == 0  # seeded before: nothing new
        count = await inv.deps.db["products"].count_documents({})
        assert 20 <= count <= 50 and count == len(demo_catalogue())
        assert (await outbox_types(inv)).count("ProductCreated") == count


async def test_internal_availability_reports_per_line(start_inventory: Start) -> None:
    async with start_inventory() as inv:

        async def create(name: str, price: int, stock: int, category: str = "books") -> str:
            body = {**BOOK, "name": name, "priceCents": price, "stockCount": stock}
            body["category"] = category
            response = await inv.http.post("/api/v1/products", json=body, headers=ADMIN)
            return str(response.json()["productId"])

        short = await create("Short", 1000, 3)
        empty = await create("Empty", 1000, 0)
        near = await create("Near", 1100, 5)
        far = await create("Far", 3000, 5)
        cheap = await create("Cheap", 900, 5)
        await create("Other category", 1000, 5, category="home")
        await create("Sold out", 1000, 0)
        query = {
            "items": [
                {"productId": near, "quantity": 2},
                {"productId": short, "quantity": 5},
                {"productId": empty, "quantity": 1},
                {"productId": "nope", "quantity": 1},
            ]
        }
        # Only the shop's own services may ask (kit.internal): a direct caller gets 401.
        for credential in ({}, {"X-Internal-Token": "guessed"}, ADMIN):
            refused = await inv.http.post("/internal/availability", json=query, headers=credential)
            assert refused.status_code == 401, refused.text
            assert refused.json()["code"] == "UNAUTHENTICATED"
        response = await inv.http.post(
            "/internal/availability", json=query, headers=internal_headers(inv.app.state.settings)
        )
        assert response.status_code == 200
        items = response.json()["items"]
        assert [(i["status"], i["requested"], i["available"]) for i in items] == [
            ("available", 2, 5),
            ("partial", 5, 3),
            ("unavailable", 1, 0),
            ("unavailable", 1, 0),
        ]
        assert items[2]["alternatives"] == [cheap, far]
        assert items[3]["exists"] is False and items[3]["alternatives"] == []
