"""An in-memory bus for tests of commands and handlers: no broker, the same handler semantics.

`InMemoryBus` stands in for `ServiceBus` in a service's `bootstrap(settings, mongo=…, bus=…)`:
what the service's writes commit (outbox rows, a document step's rows) is "published" to it at
once, and `deliver()` runs the service's own handler table on what was published, the way the
consumer would (a transaction per handler when the service has a database, document steps without
one, the inbox kept in memory, `ctx.deps` the service's wiring). A test then asserts on
`published` / `of_type(...)` and on the store, in milliseconds.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import structlog
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from bus.context import (
    AlreadyHandled,
    HandlerContext,
    HandlerTable,
    handler_name,
    handlers_for,
    is_deduplicated_by_state,
    is_document_step,
)
from bus.documents import Home, Row
from bus.inbox import inbox_id
from contracts import Envelope
from kit.transactions import run_in_transaction

log = structlog.get_logger("bus.fake")


class InMemoryBus:
    """Records what is published or written to the outbox, and runs handler tables in memory.

    It is a `Publisher`, an outbox writer, a relay (`hand_over`) and a `Bus`. It keeps inbox
    semantics: the same envelope id is handled at most once per handler; a handler that raises
    leaves no emitted events (as its transaction would have aborted) and may run again.
    """

    owner = "in-memory"

    def __init__(self) -> None:
        self.published: list[Envelope[Any]] = []
        self.headers: list[dict[str, Any]] = []
        self.handlers: HandlerTable = {}
        self.deps: Any = None
        self.started = False
        self._processed: set[tuple[str, str]] = set()
        self._delivered = 0

    # ── Bus ──────────────────────────────────────────────────────────────────────────────────

    def attach(self, handlers: HandlerTable, deps: object) -> None:
        """The service's handler table and wiring (`ServiceDeps.wire` calls it)."""
        self.handlers = handlers
        self.deps = deps

    async def start(self) -> None:
        self.started = True

    async def stop(self) -> None:
        self.started = False

    def ready(self) -> bool:
        return self.started

    def notify(self) -> None:
        """Nothing to claim: committed rows were handed over already."""

    # ── publisher, outbox writer, relay ──────────────────────────────────────────────────────

    async def publish(
        self, envelope: Envelope[Any], headers: Mapping[str, Any] | None = None
    ) -> None:
        """Record an envelope as published."""
        self.published.append(envelope)
        self.headers.append(dict(headers or {}))

    async def add(self, session: AsyncClientSession | None, *envelopes: Envelope[Any]) -> None:
        """Record envelopes as if written to the outbox and relayed."""
        for envelope in envelopes:
            await self.publish(envelope)

    def hand_over(self, rows: list[Row], home: Home | None = None) -> None:
        """Committed outbox rows (or a document's): published, as the relay would."""
        for row in rows:
            self.published.append(Envelope.from_json(row["body"]))
            self.headers.append(dict(row.get("headers") or {}))

    def of_type[E](self, cls: type[E]) -> list[Envelope[Any]]:
        """Published envelopes whose data is a `cls`."""
        return [e for e in self.published if isinstance(e.data, cls)]

    # ── consumer ─────────────────────────────────────────────────────────────────────────────

    async def dispatch(
        self, envelope: Envelope[Any], handlers: HandlerTable | None = None, *, db: Any = None
    ) -> list[Envelope[Any]]:
        """Run every handler for the envelope's type once; return the events they emitted.

        `handlers` defaults to the attached table, `db` to the attached service's database.
        """
        table = self.handlers if handlers is None else handlers
        emitted: list[Envelope[Any]] = []
        for handler in handlers_for(table, type(envelope.data)):
            name = handler_name(handler)
            if (envelope.id, name) in self._processed:
                continue
            staged = await self._run(handler, name, envelope, db)
            self._processed.add((envelope.id, name))
            for staged_envelope in staged:
                await self.publish(staged_envelope)
            emitted.extend(staged)
        return emitted

    async def _run(
        self, handler: Any, name: str, envelope: Envelope[Any], db: Any
    ) -> list[Envelope[Any]]:
        deps = self.deps
        database = db if db is not None else getattr(deps, "db", None)
        staged = _Staging()

        def context(session: AsyncClientSession | None) -> HandlerContext[Any]:
            return HandlerContext(
                session=session,
                db=cast(AsyncDatabase[Any], database),
                envelope=envelope,
                log=log.bind(
                    event_id=envelope.id, correlation_id=envelope.correlation_id, handler=name
                ),
                outbox=staged,
                handler=name,
                processed=inbox_id(envelope.id, name),
                relay=self,
                deps=deps,
            )

        mongo = getattr(deps, "mongo", None)
        if is_document_step(handler) or mongo is None:
            ctx = context(None)
            await handler(envelope, ctx)  # an exception leaves nothing behind, like an abort
        else:

            async def body(session: AsyncClientSession) -> HandlerContext[Any]:
                staged.envelopes.clear()  # a retried transaction starts over
                ctx = context(session)
                await handler(envelope, ctx)
                return ctx

            try:
                ctx = await run_in_transaction(mongo, body)
            except AlreadyHandled:
                if not is_deduplicated_by_state(handler):
                    raise
                return []
        for callback in ctx.commit_hooks:
            callback()
        return [] if ctx.duplicate else list(staged.envelopes)

    async def deliver(
        self, handlers: HandlerTable | None = None, *, db: Any = None, limit: int = 1000
    ) -> int:
        """Dispatch everything published and not yet delivered, cascading; how many delivered."""
        count = 0
        while self._delivered < len(self.published):
            if count >= limit:
                raise RuntimeError(f"more than {limit} deliveries: an event loop in the handlers?")
            envelope = self.published[self._delivered]
            self._delivered += 1
            await self.dispatch(envelope, handlers, db=db)
            count += 1
        return count

    def clear(self) -> None:
        """Forget published envelopes (the inbox is kept)."""
        self.published.clear()
        self.headers.clear()
        self._delivered = 0


class _Staging:
    """A handler's emitted events, kept until it returns (its "commit")."""

    def __init__(self) -> None:
        self.envelopes: list[Envelope[Any]] = []

    async def add(self, session: AsyncClientSession | None, *envelopes: Envelope[Any]) -> None:
        self.envelopes.extend(envelopes)


class NullBus:
    """A bus that starts, stops and reports readiness without a broker (outbox rows stay put)."""

    def __init__(self, *, ready: bool = True) -> None:
        self.started = False
        self.stopped = False
        self._ready = ready

    async def start(self) -> None:
        self.started = True

    async def stop(self) -> None:
        self.stopped = True

    def ready(self) -> bool:
        return self.started and not self.stopped and self._ready

    def notify(self) -> None:
        """No relay to wake: committed outbox rows simply stay in Mongo."""

    def attach(self, handlers: HandlerTable, deps: object) -> None:
        """Nothing consumes here."""
