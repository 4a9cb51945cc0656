"""An in-memory bus for unit tests of handlers: no broker, no database, same semantics."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import structlog
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from bus.context import HandlerContext, HandlerTable, handler_name, handlers_for
from contracts import Envelope


class InMemoryBus:
    """Records what is published or written to the outbox, and runs handler tables in memory.

    It is both a `Publisher` and an outbox writer, and keeps inbox semantics: the same envelope
    id is handled at most once per handler; a handler that raises leaves no emitted events
    (as its transaction would have aborted) and may run again.
    """

    def __init__(self) -> None:
        self.published: list[Envelope[Any]] = []
        self.headers: list[dict[str, Any]] = []
        self._processed: set[tuple[str, str]] = set()
        self._delivered = 0

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

    def of_type[E](self, cls: type[E]) -> list[Envelope[Any]]:
        """Published envelopes whose data is a `cls`."""
        return [e for e in self.published if isinstance(e.data, cls)]

    async def dispatch(
        self, envelope: Envelope[Any], handlers: HandlerTable, *, db: Any = None
    ) -> list[Envelope[Any]]:
        """Run every handler for the envelope's type once; return the events they emitted."""
        emitted: list[Envelope[Any]] = []
        for handler in handlers_for(handlers, type(envelope.data)):
            name = handler_name(handler)
            key = (envelope.id, name)
            if key in self._processed:
                continue
            staged = _Staging()
            ctx = HandlerContext(
                session=None,
                db=cast(AsyncDatabase[Any], db),
                envelope=envelope,
                log=structlog.get_logger("bus.fake").bind(
                    event_id=envelope.id, correlation_id=envelope.correlation_id, handler=name
                ),
                outbox=staged,
                handler=name,
            )
            await handler(envelope, ctx)  # an exception leaves nothing behind, like an abort
            self._processed.add(key)
            for callback in ctx.commit_hooks:
                callback()
            for staged_envelope in staged.envelopes:
                await self.publish(staged_envelope)
            emitted.extend(staged.envelopes)
        return emitted

    async def deliver(self, handlers: HandlerTable, *, db: Any = None, limit: int = 1000) -> int:
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
