"""What every service process does the same way: wiring to Mongo and the bus, and the lifespan.

`ServiceDeps.wire` (Mongo client, the service's database, `ServiceBus`) for each service's
`bootstrap`, and `service_lifespan` (connect Mongo, ensure indexes, start the bus, register the
`mongo` and `broker` readiness checks, stop cleanly). Services keep only what differs: their
settings class, handler table, indexes and routes.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any, Protocol, Self

import structlog
from fastapi import FastAPI, Request
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from bus.batch import Batching
from bus.config import BusConfig
from bus.context import HandlerTable
from bus.documents import DocumentOutbox, HandsOver
from bus.fake import InMemoryBus
from bus.metrics import BusSampler, sample_outbox
from bus.outbox import Outbox
from bus.service import ServiceBus
from kit.clock import Clock, utcnow
from kit.health import add_readiness_check
from kit.metrics import add_scrape_hook, remove_scrape_hook
from kit.mongo import IndexSpec, connect, ensure_indexes, ping
from kit.settings import ServiceSettings
from kit.transactions import TransactionBody, run_in_transaction

log = structlog.get_logger("service.lifespan")


class Bus(Protocol):
    """What a service needs of its bus: `bus.ServiceBus`, or `bus.fake.NullBus` in tests."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def ready(self) -> bool: ...

    def notify(self) -> None:
        """Have the relay claim now: rows were committed without an owner (a sweeper's)."""

    def attach(self, handlers: HandlerTable, deps: object) -> None:
        """Give the handlers the service's wiring (`ctx.deps`): called once by `wire`."""


def bus_config(
    settings: ServiceSettings,
    *,
    extra_bindings: Sequence[str] = (),
    document_outboxes: Sequence[str] = (),
) -> BusConfig:
    """The service's bus settings: named after it, `BUS_PREFIX`ed, kit's retry schedule;
    `document_outboxes` names the collections whose documents carry events (`bus.documents`)."""
    return BusConfig(
        service=settings.service_name,
        amqp_url=settings.amqp_url,
        prefix=settings.bus_prefix,
        retry_delays=settings.bus_retry_delays,
        max_attempts=settings.bus_max_attempts,
        publish_timeout=settings.bus_publish_timeout,
        dlq_residency_days=settings.bus_dlq_residency_days,
        extra_bindings=tuple(extra_bindings),
        document_outboxes=tuple(document_outboxes),
    )


@dataclass(kw_only=True)
class ServiceDeps:
    """What every service holds: its settings, Mongo client and database, its bus, its clock."""

    settings: ServiceSettings
    mongo: AsyncMongoClient[Any]
    db: AsyncDatabase[Any]
    bus: Bus
    clock: Clock = utcnow

    @classmethod
    def wire(
        cls,
        settings: ServiceSettings,
        handlers: HandlerTable,
        *,
        mongo: AsyncMongoClient[Any] | None = None,
        bus: Bus | None = None,
        extra_bindings: Sequence[str] = (),
        document_outboxes: Sequence[str] = (),
        batching: Batching | None = None,
        **extra: Any,
    ) -> Self:
        """Real adapters for whatever is not given; `extra` fills a subclass's own fields.

        `batching`: the real bus consumes in batches with it (`bus.batch`). Every handler
        gets the result as `ctx.deps`.
        """
        client = mongo if mongo is not None else connect(settings)
        db = client[settings.database_name]
        if bus is None:
            config = bus_config(
                settings, extra_bindings=extra_bindings, document_outboxes=document_outboxes
            )
            bus = ServiceBus(config, handlers, client, db, batching=batching)
        deps = cls(settings=settings, mongo=client, db=db, bus=bus, **extra)
        bus.attach(handlers, deps)
        return deps

    @property
    def outbox(self) -> Outbox:
        """The service's outbox collection: a write adds its events here, in its transaction.

        With the real bus, rows are born leased to this process's relay (published right after
        the commit); with a fake bus they are plain pending rows.
        """
        if isinstance(self.bus, ServiceBus):
            return self.bus.outbox
        if isinstance(self.bus, InMemoryBus):
            return Outbox(self.db, owner=self.bus.owner, hand_over=self.bus.hand_over)
        return Outbox(self.db)

    def documents(self, collection: str) -> DocumentOutbox:
        """Where writes of single-document steps on `collection` hand their events over (to this
        process's relay; with a fake bus, nowhere: a relay's recovery pass finds them)."""
        relay: HandsOver | None = None
        if isinstance(self.bus, ServiceBus):
            relay = self.bus.relay
        elif isinstance(self.bus, InMemoryBus):
            relay = self.bus
        return DocumentOutbox(collection, relay)

    async def close(self) -> None:
        """Release what a service's own wiring opened (an HTTP client, say); the lifespan calls
        it after the bus stopped, before the Mongo client closes."""

    async def write[T](self, body: TransactionBody[T]) -> T:
        """The one write path outside handlers: state and outbox rows commit together.

        `body(session)` may run more than once (kit.transactions retries conflicts). The rows
        `self.outbox` (or `documents(...)`) wrote reach this process's relay once it commits, so
        events leave at once, not at its next poll.
        """
        return await run_in_transaction(self.mongo, body)


type Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


def app_deps[D: ServiceDeps](cls: type[D]) -> Callable[[Request], D]:
    """The route dependency that gives the service's wiring the lifespan put on `app.state`:
    `DepsDep = Annotated[Deps, Depends(app_deps(Deps))]` in each service's `deps.py`."""

    def get_deps(request: Request) -> D:
        deps = request.app.state.deps
        if not isinstance(deps, cls):
            raise TypeError(f"app.state.deps is a {type(deps).__name__}, not a {cls.__name__}")
        return deps

    return get_deps


class Background(Protocol):
    """A loop that runs beside the consumer: a sweeper, a delivery worker."""

    def start(self) -> None: ...

    async def stop(self) -> None: ...


def service_lifespan[S: ServiceSettings, D: ServiceDeps](
    settings: S,
    bootstrap: Callable[[S], D],
    *,
    indexes: Sequence[IndexSpec],
    on_started: Callable[[FastAPI, D], Awaitable[None] | None] | None = None,
    background: Callable[[D], Mapping[str, Background]] | None = None,
) -> Lifespan:
    """Connect Mongo, ensure indexes, start the bus, register readiness and the bus's metrics
    sampler (DLQ depth, outbox lag, read when `/metrics` is scraped); undo it all on stop.

    The deps land on `app.state.deps` before anything starts, so routes see the same objects.
    `on_started(app, deps)` (plain or async) is the place for a service's own start-up step.
    `background(deps)` names the service's loops (sweepers, workers): each lands on
    `app.state.<name>`, starts after `on_started` and stops before the bus, in reverse order.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        sampler: Callable[[], Awaitable[None]] | None = None
        loops: list[Background] = []
        deps = bootstrap(settings)
        app.state.deps = deps
        try:
            await deps.mongo.admin.command("ping")
            await ensure_indexes(deps.db, indexes)
            await deps.bus.start()
            add_readiness_check(app, "mongo", lambda: ping(deps.mongo))
            add_readiness_check(app, "broker", _as_async(deps.bus.ready))
            sampler = _sampler(settings, deps)
            add_scrape_hook(app, "bus", sampler)
            if on_started is not None:
                started = on_started(app, deps)
                if inspect.isawaitable(started):
                    await started
            for name, loop in (background(deps) if background else {}).items():
                setattr(app.state, name, loop)
                loop.start()
                loops.append(loop)
            log.info("service.started", service=settings.service_name)
            yield
        finally:
            for loop in reversed(loops):
                await loop.stop()
            remove_scrape_hook(app, "bus")
            if isinstance(sampler, BusSampler):
                await sampler.close()
            try:
                await deps.bus.stop()
            finally:
                try:
                    await deps.close()
                finally:
                    await deps.mongo.close()
            log.info("service.stopped", service=settings.service_name)

    return lifespan


def _sampler(settings: ServiceSettings, deps: ServiceDeps) -> Callable[[], Awaitable[None]]:
    """The real bus's sampler; with a fake bus, the outbox gauges alone."""
    bus = deps.bus
    if isinstance(bus, ServiceBus):
        return BusSampler(bus.config, bus.connection, deps.db)

    async def outbox_only() -> None:
        await sample_outbox(settings.service_name, deps.db)

    return outbox_only


def _as_async(check: Callable[[], bool]) -> Callable[[], Any]:
    async def run() -> bool:
        return check()

    return run
