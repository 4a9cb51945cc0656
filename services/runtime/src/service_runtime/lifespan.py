"""Wiring a service to Mongo and the bus, and the lifespan that starts and stops them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any, Protocol, Self

import structlog
from fastapi import FastAPI
from pymongo import AsyncMongoClient, IndexModel
from pymongo.asynchronous.database import AsyncDatabase

from bus import BusConfig, HandlerTable, ServiceBus
from kit.health import add_readiness_check
from kit.settings import ServiceSettings

log = structlog.get_logger("service.lifespan")

# collection name → the indexes it needs (store.py declares them, the lifespan creates them).
type Indexes = Mapping[str, Sequence[IndexModel]]

MONGO_PING_TIMEOUT = 2.0


class Bus(Protocol):
    """What the lifespan needs of a bus: `bus.ServiceBus`, or a fake in tests."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def ready(self) -> bool: ...


def open_mongo(settings: ServiceSettings) -> AsyncMongoClient[Any]:
    """A client for `MONGO_URL` (no I/O until first use); datetimes come back tz-aware."""
    return AsyncMongoClient(settings.mongo_url, tz_aware=True, appname=settings.service_name)


def bus_config(settings: ServiceSettings, *, extra_bindings: Sequence[str] = ()) -> BusConfig:
    """The service's bus settings, named after it and prefixed with `BUS_PREFIX`."""
    return BusConfig(
        service=settings.service_name,
        amqp_url=settings.amqp_url,
        prefix=settings.bus_prefix,
        extra_bindings=tuple(extra_bindings),
    )


@dataclass(kw_only=True)
class ServiceDeps:
    """What every service holds: its settings, Mongo client and database, its bus."""

    settings: ServiceSettings
    mongo: AsyncMongoClient[Any]
    db: AsyncDatabase[Any]
    bus: Bus

    @classmethod
    def wire(
        cls,
        settings: ServiceSettings,
        handlers: HandlerTable,
        *,
        mongo: AsyncMongoClient[Any] | None = None,
        bus: Bus | None = None,
        extra_bindings: Sequence[str] = (),
        **extra: Any,
    ) -> Self:
        """Real adapters for whatever is not given; `extra` fills a subclass's own fields."""
        client = mongo if mongo is not None else open_mongo(settings)
        db = client[settings.database_name]
        if bus is None:
            config = bus_config(settings, extra_bindings=extra_bindings)
            bus = ServiceBus(config, handlers, client, db)
        return cls(settings=settings, mongo=client, db=db, bus=bus, **extra)


async def ensure_indexes(db: AsyncDatabase[Any], indexes: Indexes) -> None:
    """Create the declared indexes (idempotent: existing ones with the same spec are kept)."""
    for collection, models in indexes.items():
        if models:
            await db[collection].create_indexes(list(models))


async def mongo_ready(client: AsyncMongoClient[Any]) -> bool:
    """True when the server answers a ping within a couple of seconds."""
    try:
        await asyncio.wait_for(client.admin.command("ping"), MONGO_PING_TIMEOUT)
    except Exception:  # noqa: BLE001 - any failure means "not ready"
        return False
    return True


type Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


def service_lifespan[S: ServiceSettings, D: ServiceDeps](
    settings: S,
    bootstrap: Callable[[S], D],
    *,
    indexes: Indexes,
) -> Lifespan:
    """Connect Mongo, ensure indexes, start the bus, register readiness; undo it all on stop.

    The deps land on `app.state.deps` before anything starts, so routes see the same objects.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        deps = bootstrap(settings)
        app.state.deps = deps
        try:
            await deps.mongo.admin.command("ping")
            await ensure_indexes(deps.db, indexes)
            await deps.bus.start()
            add_readiness_check(app, "mongo", lambda: mongo_ready(deps.mongo))
            add_readiness_check(app, "broker", _as_async(deps.bus.ready))
            log.info("service.started", service=settings.service_name)
            yield
        finally:
            try:
                await deps.bus.stop()
            finally:
                await deps.mongo.close()
            log.info("service.stopped", service=settings.service_name)

    return lifespan


def _as_async(check: Callable[[], bool]) -> Callable[[], Any]:
    async def run() -> bool:
        return check()

    return run
