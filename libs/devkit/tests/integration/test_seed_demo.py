"""`python -m devkit.seed_catalogue --demo`, what `make run` runs beside the services: the demo
products with their ProductCreated in inventory's outbox, once, however often it runs."""

from __future__ import annotations

import secrets
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from devkit import seed_catalogue

pytestmark = pytest.mark.integration


async def test_the_demo_catalogue_is_seeded_once(
    mongo_url: str, mongo_client: AsyncMongoClient[Any]
) -> None:
    prefix = f"t{secrets.token_hex(4)}_"
    argv = ["--demo", "--mongo-url", mongo_url, "--db-prefix", prefix]
    db = mongo_client[f"{prefix}inventory"]
    try:
        assert await seed_catalogue.main_async(seed_catalogue.parse(argv)) == 0
        demo = seed_catalogue.demo_catalogue()
        products = {doc["_id"]: doc async for doc in db["products"].find({})}
        assert set(products) == {product_id for product_id, _ in demo}
        earbuds = products[seed_catalogue.seed_id("Wireless Earbuds")]
        assert earbuds["price_cents"] == 4999 and earbuds["available"] == 120
        announced = [row["correlation_id"] async for row in db["outbox"].find({})]
        assert sorted(announced) == sorted(products)  # one ProductCreated each, for the relay

        assert await seed_catalogue.main_async(seed_catalogue.parse(argv)) == 0
        assert await db["products"].count_documents({}) == len(demo)
        assert await db["outbox"].count_documents({}) == len(demo)  # nothing announced twice
    finally:
        await mongo_client.drop_database(db.name)
