"""The in-memory bus runs handler tables with the real bus's semantics, without I/O."""

from __future__ import annotations

from typing import Any

import pytest

from bus import HandlerContext, HandlerTable, InMemoryBus, Publisher
from contracts import Envelope, Event
from contracts.registry import event

pytestmark = pytest.mark.unit


@event("test")
class BusFakeAsked(Event):
    key: str


@event("test")
class BusFakeAnswered(Event):
    key: str


@event("test")
class BusFakeClosed(Event):
    key: str


class Store:
    """A fake repository, as a service's unit tests would pass to its handlers."""

    def __init__(self) -> None:
        self.answers: list[str] = []
        self.closed: list[str] = []
        self.fail_next = False


def make_table(store: Store) -> HandlerTable:
    async def answer(envelope: Envelope[BusFakeAsked], ctx: HandlerContext) -> None:
        await ctx.emit(BusFakeAnswered(key=envelope.data.key))
        if store.fail_next:
            store.fail_next = False
            raise RuntimeError("transient")
        store.answers.append(envelope.data.key)

    async def close(envelope: Envelope[BusFakeAnswered], ctx: HandlerContext) -> None:
        assert ctx.session is None
        store.closed.append(envelope.data.key)
        await ctx.emit(BusFakeClosed(key=envelope.data.key))

    return {BusFakeAsked: [answer], BusFakeAnswered: [close]}


async def test_dispatch_runs_handlers_and_collects_caused_events() -> None:
    bus, store = InMemoryBus(), Store()
    asked = Envelope.wrap(BusFakeAsked(key="a"), correlation_id="corr")
    emitted = await bus.dispatch(asked, make_table(store))
    assert store.answers == ["a"]
    assert [type(e.data) for e in emitted] == [BusFakeAnswered]
    assert emitted[0].causation_id == asked.id
    assert emitted[0].correlation_id == "corr"
    assert bus.published == emitted


async def test_same_envelope_twice_is_handled_once() -> None:
    bus, store = InMemoryBus(), Store()
    asked = Envelope.wrap(BusFakeAsked(key="a"), correlation_id="corr")
    table = make_table(store)
    await bus.dispatch(asked, table)
    assert await bus.dispatch(asked, table) == []
    assert store.answers == ["a"]
    assert len(bus.of_type(BusFakeAnswered)) == 1


async def test_a_failing_handler_emits_nothing_and_may_run_again() -> None:
    bus, store = InMemoryBus(), Store()
    store.fail_next = True
    asked = Envelope.wrap(BusFakeAsked(key="a"), correlation_id="corr")
    table = make_table(store)
    with pytest.raises(RuntimeError):
        await bus.dispatch(asked, table)
    assert bus.published == []
    await bus.dispatch(asked, table)
    assert store.answers == ["a"]
    assert len(bus.published) == 1


async def test_after_commit_hooks_run_once_the_handler_returned_and_never_after_a_failure() -> None:
    calls: list[str] = []

    async def hooked(envelope: Envelope[BusFakeAsked], ctx: HandlerContext) -> None:
        ctx.after_commit(lambda: calls.append(envelope.data.key))
        assert envelope.data.key not in calls  # not before the "commit"
        if envelope.data.key == "bad":
            raise RuntimeError("abort")

    bus = InMemoryBus()
    table: HandlerTable = {BusFakeAsked: [hooked]}
    await bus.dispatch(Envelope.wrap(BusFakeAsked(key="a"), correlation_id="c"), table)
    with pytest.raises(RuntimeError):
        await bus.dispatch(Envelope.wrap(BusFakeAsked(key="bad"), correlation_id="c"), table)
    assert calls == ["a"]


async def test_deliver_cascades_until_quiet() -> None:
    bus, store = InMemoryBus(), Store()
    publisher: Publisher = bus
    await publisher.publish(Envelope.wrap(BusFakeAsked(key="a"), correlation_id="corr"))
    delivered = await bus.deliver(make_table(store))
    assert delivered == 3  # asked → answered → closed
    assert store.closed == ["a"]
    assert [e.type for e in bus.published] == ["BusFakeAsked", "BusFakeAnswered", "BusFakeClosed"]


async def test_add_records_outbox_writes() -> None:
    bus = InMemoryBus()
    envelope: Envelope[Any] = Envelope.wrap(BusFakeClosed(key="z"), correlation_id="c")
    await bus.add(None, envelope)
    assert bus.published == [envelope]
    bus.clear()
    assert bus.published == []
