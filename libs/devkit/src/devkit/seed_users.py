"""Bulk-load customer accounts with complete profiles: an import of existing accounts.

    SEED_PASSWORD=… python -m devkit.seed_users --mongo-url mongodb://… --db-prefix "" --count 20000

(`--password` instead of SEED_PASSWORD works too; the settings are the user service's own,
`SeedUserSettings`, plus the shared password.)

For benchmarks (`bench` grows the user base 10× and 100× with it) and large demos. Each account is
built with the service's own code, so its shape cannot drift from a real one: `account_doc` (as
registration), then `details_changes` and `profile_changes` with an address and a `pm_card_ok`
card validated by the API's own models (as `POST /users/me/details`), so every seeded user has a
complete profile. A chunk of them is inserted with one `insert_many` per transaction.

Every seeded user shares one password, hashed **once** with the service's `Passwords` and its
`USER_ARGON2_*` settings (registration hashes each one, which is what limits it to a few accounts
per second); the hash is never printed or logged. They log in through the API as anyone else.

Events: none by default. This is an import of accounts that already exist, not a wave of
sign-ups: `UserRegistered` for each would make notify send as many welcome emails and analytics
record them all, and draining that took far longer than the load itself (bench/README.md,
"Growth"). Other services learn of a seeded user when it next changes (a login, a profile
update) or, for order's checkout, from the user service when its replica misses it.
`--events` writes `UserRegistered` and `UserProfileUpdated` for each to the outbox in the same
transaction, as registration and `addUserDetails` would, for when the replicas must hold them.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import AliasChoices, Field, SecretStr
from pymongo import AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from user_service import domain
from user_service.commands import (
    account_doc,
    details_changes,
    profile_changes,
    profile_event,
    registered_event,
    stored_payment_methods,
)
from user_service.passwords import Passwords
from user_service.schemas import AddressIn, PaymentMethodIn
from user_service.settings import UserSettings
from user_service.store import INDEXES, UserStore

from bus.outbox import Outbox
from contracts import Actor, Envelope, new_id
from kit.clock import utcnow
from kit.mongo import Doc, ensure_indexes
from kit.transactions import run_in_transaction

DEFAULT_CHUNK = 500
# A chunk's transaction competes with the running service's own: the embedded server fails one
# of two overlapping write transactions, and while the relay publishes the previous chunk's
# events it writes (claims, marks sent) back to back. So a chunk is retried patiently, up to
# about a minute: the load then goes at the relay's pace, the backpressure production would see.
ATTEMPTS = 80
MAX_DELAY = 1.0
ADDRESS = AddressIn(
    label="home",
    line1="1 Seed St",
    city="Springfield",
    state="IL",
    zip="12345",
    country="US",
)
CARD = PaymentMethodIn(type="card", token="pm_card_ok")


class SeedUserSettings(UserSettings):
    """The user service's settings (MONGO_URL, DB_PREFIX, USER_ARGON2_*) and the password every
    seeded user shares (SEED_PASSWORD; required, checked by `main_async`)."""

    seed_password: SecretStr = Field(SecretStr(""), validation_alias=AliasChoices("SEED_PASSWORD"))


@dataclass(frozen=True, slots=True)
class Seeded:
    """A seeded account: who it is and how it logs in (with the shared password)."""

    user_id: str
    username: str
    email: str


def seeded_user(username: str, password_hash: str) -> Doc:
    """A Customer `username` (`<username>@example.com`) with a complete profile, as if it had
    registered and then added an address and a card."""
    email = domain.normalise_email(f"{username}@example.com")
    user = account_doc(
        user_id=new_id(),
        username=username,
        email=email,
        password_hash=password_hash,
        role="Customer",
        phone=None,
        device=None,
        ip=None,
        region=None,
        at=utcnow(),
    )
    changes = details_changes(
        user,
        addresses=[ADDRESS.model_dump()],
        payment_methods=stored_payment_methods([CARD.model_dump()]),
        preferences=None,
        phone=None,
    )
    return {**user, **profile_changes(user, changes, user["created_at"])}


def usernames(count: int, *, tag: str, start: int = 0) -> list[str]:
    """`s<tag>-<i>` for i in start … start+count-1 (valid usernames while tag is short)."""
    names = [f"s{tag}-{i}" for i in range(start, start + count)]
    if names and not domain.valid_username(names[-1]):
        raise ValueError(f"{names[-1]!r} is not a valid username: a shorter tag")
    return names


async def hash_password(passwords: Passwords, password: str, sample: str) -> str:
    """The one hash every seeded user shares, after the service's password policy."""
    problem = domain.password_problem(password, email=f"{sample}@example.com", username=sample)
    if problem:
        raise ValueError(problem)
    return await passwords.hash(password)


async def seed_users(
    client: AsyncMongoClient[Any],
    db: AsyncDatabase[Any],
    names: Sequence[str],
    password_hash: str,
    *,
    events: bool = False,
    chunk: int = DEFAULT_CHUNK,
) -> list[Seeded]:
    """Insert a Customer per name, a chunk per transaction; with `events`, each one's
    UserRegistered and UserProfileUpdated go to the outbox in the same transaction."""
    seeded: list[Seeded] = []
    for first in range(0, len(names), chunk):
        users = [seeded_user(name, password_hash) for name in names[first : first + chunk]]
        await _insert_chunk(client, db, users, events=events)
        seeded += [Seeded(u["_id"], u["username"], u["email"]) for u in users]
    return seeded


async def _insert_chunk(
    client: AsyncMongoClient[Any], db: AsyncDatabase[Any], users: list[Doc], *, events: bool
) -> None:
    store = UserStore(db)
    outbox = Outbox(db)
    actor = Actor()  # nobody in particular: an import, not a request
    envelopes = [
        Envelope.wrap(event, correlation_id=user["_id"], actor=actor)
        for user in users
        for event in ((registered_event(user), profile_event(user)) if events else ())
    ]

    async def body(session: AsyncClientSession) -> None:
        await store.insert_many([dict(user) for user in users], session)
        if envelopes:
            await outbox.add(session, *envelopes)

    await run_in_transaction(client, body, attempts=ATTEMPTS, max_delay=MAX_DELAY)


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m devkit.seed_users",
        description="Bulk-load customers with complete profiles, sharing the password in "
        "--password or SEED_PASSWORD (an import of existing accounts: no events unless --events).",
    )
    parser.add_argument("--password", help="default: SEED_PASSWORD")
    parser.add_argument("--mongo-url", help="default: MONGO_URL, as the service")
    parser.add_argument("--db-prefix", help="default: DB_PREFIX, as the service")
    parser.add_argument("--count", type=int, required=True, help="customers to add")
    parser.add_argument("--tag", default=None, help="username tag (default: random)")
    parser.add_argument("--events", action="store_true", help="emit their events too")
    parser.add_argument("--chunk", type=int, default=DEFAULT_CHUNK)
    return parser.parse_args(argv)


async def main_async(args: argparse.Namespace) -> int:
    overrides = {
        "mongo_url": args.mongo_url,
        "db_prefix": args.db_prefix,
        "seed_password": args.password,
    }
    settings = SeedUserSettings(**{k: v for k, v in overrides.items() if v is not None})
    password = settings.seed_password.get_secret_value()
    if not password:
        print("SEED_PASSWORD or --password is required (the password every seeded user shares)")
        return 2
    names = usernames(args.count, tag=args.tag or secrets.token_hex(3))
    client: AsyncMongoClient[Any] = AsyncMongoClient(settings.mongo_url)
    try:
        db = client[settings.database_name]
        await ensure_indexes(db, INDEXES)
        await Outbox(db).ensure_indexes()
        t0 = time.perf_counter()
        password_hash = await hash_password(Passwords.from_settings(settings), password, names[0])
        await seed_users(client, db, names, password_hash, events=args.events, chunk=args.chunk)
        seconds = time.perf_counter() - t0
    finally:
        await client.close()
    rate = args.count / seconds if seconds else 0.0
    print(
        f"added {args.count} customers ({names[0]} … {names[-1]}) to {settings.database_name} "
        f"in {seconds:.1f}s ({rate:.0f}/s), "
        + ("with their events" if args.events else "without events (an import)")
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return asyncio.run(main_async(parse(argv)))


if __name__ == "__main__":
    sys.exit(main())
