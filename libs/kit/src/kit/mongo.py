"""The service's MongoDB client, its index declarations and a readiness ping.

`connect(settings)` makes the one client a service process uses (no I/O until first use):
datetimes come back timezone-aware, UUIDs are stored in the standard binary representation, the
application name is the service (it shows in the server's logs and `currentOp`), and timeouts are
short enough that a down server fails a request instead of hanging it. While spans are exported
(`kit.tracing.exporting()` when the client is made) each command is a client span
(`kit.tracing_clients.MongoCommandTracer`); otherwise no command listener is registered at all,
since with one PyMongo builds a started and a succeeded event per command.

`store.py` declares its indexes as `IndexSpec`s; the lifespan runs `ensure_indexes(db, specs)`,
which is idempotent (an existing index with the same spec is left alone).

The embedded server (local mode) finds documents through an index only for an equality on a
field with a single-field index (or `_id`); compound indexes and ranges serve nothing there. A
query that runs per order or per poll and must not slow down as data grows therefore leads with
an equality on a single-field-indexed field (e.g. `status: "pending"`), which a real MongoDB
serves as well.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pymongo import ASCENDING, AsyncMongoClient, IndexModel
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from kit.settings import ServiceSettings
from kit.tracing import exporting
from kit.tracing_clients import MongoCommandTracer

# The aliases every store writes its signatures with.
type Doc = dict[str, Any]
type Db = AsyncDatabase[Any]
# A store call joins the caller's transaction, or runs on its own (`None`).
type Session = AsyncClientSession | None
type IndexKeys = str | Sequence[tuple[str, int | str]]

SERVER_SELECTION_TIMEOUT_MS = 5_000
CONNECT_TIMEOUT_MS = 5_000
# Generous for one operation, far below the request timeouts of the gateway.
SOCKET_TIMEOUT_MS = 20_000
PING_TIMEOUT = 2.0


def as_utc(at: datetime) -> datetime:
    """A stored datetime as an aware UTC one (a client without `tz_aware` answers naive UTC)."""
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def connect(settings: ServiceSettings, **overrides: Any) -> AsyncMongoClient[Doc]:
    """The client for `settings.mongo_url` (lazy: connects on first use)."""
    options: dict[str, Any] = {
        "tz_aware": True,
        "uuidRepresentation": "standard",
        "appname": settings.service_name,
        "serverSelectionTimeoutMS": SERVER_SELECTION_TIMEOUT_MS,
        "connectTimeoutMS": CONNECT_TIMEOUT_MS,
        "socketTimeoutMS": SOCKET_TIMEOUT_MS,
    }
    if exporting():
        options["event_listeners"] = [MongoCommandTracer()]
    options.update(overrides)
    return AsyncMongoClient(settings.mongo_url, **options)


def database(client: AsyncMongoClient[Doc], settings: ServiceSettings) -> AsyncDatabase[Doc]:
    """The service's own database (`settings.database_name`)."""
    return client[settings.database_name]


@dataclass(frozen=True, slots=True)
class IndexSpec:
    """One index: `IndexSpec("users", "email", unique=True)`.

    `keys` is a field name (ascending) or `[(field, direction), ...]`; `ttl_seconds` makes a TTL
    index (documents expire that long after the date in the field); `partial_filter` indexes only
    the documents matching it (e.g. unique among non-deleted).
    """

    collection: str
    keys: IndexKeys
    unique: bool = False
    ttl_seconds: int | None = None
    partial_filter: Mapping[str, Any] | None = None
    name: str | None = None
    sparse: bool = False
    options: Mapping[str, Any] = field(default_factory=dict)

    def key_list(self) -> list[tuple[str, int | str]]:
        if isinstance(self.keys, str):
            return [(self.keys, ASCENDING)]
        return list(self.keys)

    def default_name(self) -> str:
        return "_".join(f"{name}_{direction}" for name, direction in self.key_list())

    def model(self) -> IndexModel:
        """The PyMongo `IndexModel` for this spec."""
        kwargs: dict[str, Any] = dict(self.options)
        kwargs["name"] = self.name or self.default_name()
        if self.unique:
            kwargs["unique"] = True
        if self.sparse:
            kwargs["sparse"] = True
        if self.ttl_seconds is not None:
            kwargs["expireAfterSeconds"] = int(self.ttl_seconds)
        if self.partial_filter is not None:
            kwargs["partialFilterExpression"] = dict(self.partial_filter)
        return IndexModel(self.key_list(), **kwargs)


async def ensure_indexes(db: AsyncDatabase[Any], specs: Iterable[IndexSpec]) -> list[str]:
    """Create every declared index, collection by collection; returns the index names."""
    by_collection: dict[str, list[IndexModel]] = {}
    for spec in specs:
        by_collection.setdefault(spec.collection, []).append(spec.model())
    names: list[str] = []
    for collection, models in by_collection.items():
        names += await db[collection].create_indexes(models)
    return names


async def ping(client: AsyncMongoClient[Any], timeout: float = PING_TIMEOUT) -> bool:
    """True when the server answers `ping` within `timeout` seconds (readiness)."""
    try:
        await asyncio.wait_for(client.admin.command("ping"), timeout)
    except Exception:  # any failure means "not ready"
        return False
    return True
