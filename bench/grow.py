"""The growth step's bulk load: users and products seeded straight into the services' databases
with the seeders of devkit (`devkit.seed_users`, `devkit.seed_catalogue`), not through
the API (registration hashes a password per account: ≈ 3 accounts/s on this machine).

Products go in with their `ProductCreated` in inventory's outbox (the running relay publishes
them; order's and analytics' replicas grow as in production); the step waits until the outbox
is empty and every queue has drained. Users go in as an import of existing accounts, with
complete profiles, one shared argon2 hash and no events (see `devkit.seed_users` and
bench/README.md for the measurement behind that choice); `user_events=True` emits them.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from dataclasses import dataclass
from typing import Any

from argon2 import PasswordHasher, Type
from pymongo import AsyncMongoClient
from user_service.passwords import Passwords

from bench import probes
from bench.prepare import PASSWORD
from bench.system import ARGON2, System
from bus.outbox import COLLECTION, PENDING
from devkit import seed_catalogue as inventory_seed
from devkit import seed_users as user_seed

CHUNK = 1_000  # items per seed call between budget checks (each call inserts in chunks of 500)


@dataclass
class Grown:
    users: int = 0
    products: int = 0
    user_seconds: float = 0.0
    product_seconds: float = 0.0
    product_ids: list[str] | None = None


def passwords() -> Passwords:
    """The user service's hasher with the parameters the bench gives the service."""
    return Passwords(
        PasswordHasher(
            time_cost=ARGON2["time_cost"],
            memory_cost=ARGON2["memory_kib"],
            parallelism=ARGON2["parallelism"],
            type=Type.ID,
        )
    )


async def seed(
    system: System, users: int, products: int, budget: float, *, user_events: bool = False
) -> Grown:
    """Add `products` then `users`, a chunk at a time, until done or `budget` seconds passed."""
    grown = Grown(product_ids=[])
    t0 = time.monotonic()
    tag = secrets.token_hex(3)
    inventory_client: AsyncMongoClient[Any] = AsyncMongoClient(system.mongo_url_of("inventory"))
    user_client: AsyncMongoClient[Any] = AsyncMongoClient(system.mongo_url_of("user"))
    try:
        inventory_db = inventory_client[f"{system.db_prefix}inventory"]
        started = time.monotonic()
        while grown.products < products and time.monotonic() - t0 < budget:
            n = min(CHUNK, products - grown.products)
            batch = inventory_seed.bulk_products(n, tag=tag, start=grown.products)
            grown.product_ids = (grown.product_ids or []) + await inventory_seed.seed_catalogue(
                inventory_client, inventory_db, batch
            )
            grown.products += n
        grown.product_seconds = time.monotonic() - started

        user_db = user_client[f"{system.db_prefix}user"]
        started = time.monotonic()
        if users:
            sample = user_seed.usernames(1, tag=tag)[0]
            password_hash = await user_seed.hash_password(passwords(), PASSWORD, sample)
            while grown.users < users and time.monotonic() - t0 < budget:
                n = min(CHUNK, users - grown.users)
                names = user_seed.usernames(n, tag=tag, start=grown.users)
                await user_seed.seed_users(
                    user_client, user_db, names, password_hash, events=user_events
                )
                grown.users += n
        grown.user_seconds = time.monotonic() - started
    finally:
        await inventory_client.close()
        await user_client.close()
    return grown


async def drain(system: System, timeout: float = 900) -> float:
    """Seconds until inventory's and user's outboxes hold no pending row and every service
    queue stayed empty a moment (the replicas have caught up); -1 after `timeout`."""
    t0 = time.monotonic()
    for service in ("inventory", "user"):
        client: AsyncMongoClient[Any] = AsyncMongoClient(system.mongo_url_of(service))
        try:
            rows = client[f"{system.db_prefix}{service}"][COLLECTION]
            while await rows.count_documents({"status": PENDING}):
                if time.monotonic() - t0 > timeout:
                    return -1.0
                await asyncio.sleep(1.0)
        finally:
            await client.close()
    left = max(1.0, timeout - (time.monotonic() - t0))
    idle = await probes.wait_idle(system, timeout=left, quiet=2.0)
    return -1.0 if idle < 0 else time.monotonic() - t0
