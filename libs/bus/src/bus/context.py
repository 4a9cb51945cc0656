"""What a handler receives, and the handler table type (style.md habit 4)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, cast

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from structlog.typing import FilteringBoundLogger

from bus.documents import DocumentOutbox, HandsOver
from bus.outbox import OutboxWriter
from contracts import Actor, Envelope, Event
from kit.transactions import after_commit


@dataclass(slots=True)
class HandlerContext[D = Any]:
    """A handler's transaction, database, the envelope it handles and a way to emit events.

    `deps` is the service's wiring (its `bootstrap()` result): a handler turns the event into
    one command on it. Services name theirs `type Context = HandlerContext[Deps]` in `deps.py`.
    """

    session: AsyncClientSession | None
    db: AsyncDatabase[Any]
    envelope: Envelope[Any]
    log: FilteringBoundLogger
    outbox: OutboxWriter
    handler: str = ""
    attempt: int = 1
    # The handled event's inbox id (a document step stores it on the document it changes).
    processed: str = ""
    # This process's relay: a document step's written rows go to it (`documents`).
    relay: HandsOver | None = None
    # Set by a document step that found `processed` on its document already.
    duplicate: bool = False
    emitted: list[Envelope[Any]] = field(default_factory=list)
    # A document step's callbacks (it has no transaction to hang them on): run after its write.
    commit_hooks: list[Callable[[], None]] = field(default_factory=list)
    deps: D = cast(Any, None)

    async def emit[E: Event](self, event: E, *, actor: Actor | None = None) -> Envelope[E]:
        """Write `event`, caused by the handled envelope, to the outbox in this transaction."""
        return await self.emit_envelope(self.envelope.caused(event, actor=actor))

    async def emit_envelope[E: Event](self, envelope: Envelope[E]) -> Envelope[E]:
        """Write a ready-made envelope (e.g. a new correlation) to the outbox, same transaction."""
        await self.outbox.add(self.session, envelope)
        self.emitted.append(envelope)
        return envelope

    def documents(self, collection: str) -> DocumentOutbox:
        """Where a document step on `collection` hands the rows it wrote to the relay."""
        return DocumentOutbox(collection, self.relay)

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Call `callback()` once this handler's transaction has committed (never on an abort).

        For waking a local worker that reads what the handler wrote: woken before the commit, it
        would not see the rows yet. A retried transaction body registers afresh; only the
        attempt that committed is called back. In a transaction this is
        `kit.transactions.after_commit`; a document step's write has landed when it returns.
        """
        if self.session is not None and self.session.in_transaction:
            after_commit(self.session, callback)
        else:
            self.commit_hooks.append(callback)


type Handler = Callable[[Envelope[Any], HandlerContext], Awaitable[None]]

_DOCUMENT_STEP = "__bus_document_step__"


def document_step[H: Callable[..., Awaitable[None]]](handler: H) -> H:
    """Mark a handler as a single-document step (`bus.documents`): the consumer runs it without
    a transaction and without an inbox row; it must store `ctx.processed` and its events on the
    one document it changes, and set `ctx.duplicate` when that document had the id already."""
    setattr(handler, _DOCUMENT_STEP, True)
    return handler


class AlreadyHandled(Exception):  # noqa: N818 (a verdict, not an error)
    """Raised by a handler deduplicated by its state that finds its event handled already (its
    keyed insert hit a duplicate key): the consumer aborts the transaction and skips it."""


_DEDUPLICATED_BY_STATE = "__bus_deduplicated_by_state__"


def deduplicated_by_state[H: Callable[..., Awaitable[None]]](handler: H) -> H:
    """Mark a handler whose own writes make a repeat change nothing (it inserts a row keyed by
    what it handles, or moves a state machine only from the state it expects): the consumer runs
    it in its transaction without an inbox row (architecture.md: "the `_id` of the row it
    inserts"). A repeat must emit nothing either."""
    setattr(handler, _DEDUPLICATED_BY_STATE, True)
    return handler


def is_deduplicated_by_state(handler: Handler) -> bool:
    """True for a handler marked with `deduplicated_by_state` (also through a partial)."""
    return _marked(handler, _DEDUPLICATED_BY_STATE)


def is_document_step(handler: Handler) -> bool:
    """True for a handler marked with `document_step` (also through a partial)."""
    return _marked(handler, _DOCUMENT_STEP)


def _marked(handler: Handler, mark: str) -> bool:
    target = getattr(handler, "func", handler)  # functools.partial: the function's mark
    return bool(getattr(target, mark, False))


type HandlerTable = dict[type[Event], list[Handler]]

# A handler registered for `Event` itself receives every event the queue gets (analytics).
ALL_EVENTS = "#"


def handler_name(handler: Handler) -> str:
    """The stable name of a handler, used in inbox ids (renaming a handler resets its inbox)."""
    target = getattr(handler, "func", handler)  # functools.partial: name the function
    module = getattr(target, "__module__", None) or "handler"
    qualname = getattr(target, "__qualname__", None) or type(target).__name__
    return f"{module}.{qualname}"


def routing_keys_for(handlers: HandlerTable) -> set[str]:
    """The binding keys a handler table needs: each event's routing key, `#` for `Event`."""
    return {ALL_EVENTS if cls is Event else cls.ROUTING_KEY for cls in handlers}


def handlers_for(handlers: HandlerTable, event_type: type[Event]) -> list[Handler]:
    """Handlers of an event's class and of its bases (e.g. `Event`), most specific first."""
    found: list[Handler] = []
    for cls in event_type.__mro__:
        for handler in handlers.get(cast(type[Event], cls), []):
            if handler not in found:
                found.append(handler)
    return found


def check_table(handlers: HandlerTable) -> None:
    """Refuse two handlers with one name for one event type: their inbox rows would collide."""
    for event_type in handlers:
        names: dict[str, Handler] = {}
        for handler in handlers_for(handlers, event_type):
            name = handler_name(handler)
            if names.setdefault(name, handler) is not handler:
                raise ValueError(f"two handlers of {event_type.__name__} are named {name}")
