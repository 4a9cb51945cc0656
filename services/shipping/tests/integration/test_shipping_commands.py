"""Shipping's commands and handler through the in-memory bus and the embedded store.

OrderConfirmed goes in as the consumer would hand it over (`bus.publish` then `bus.deliver()`
runs the service's own HANDLERS); ship and deliver are called as the routes call them; the
auto-advance sweeper runs on a clock the test moves. Each test asserts what a peer or a user
notices: the shipments, their states, the events emitted (with their actor), and that a repeat
changes nothing.
"""

from __future__ import annotations

from typing import Any

import pytest
from shipping_service import commands
from shipping_service.bootstrap import background
from shipping_service.carrier import SANDBOX_CARRIER, is_tracking_number
from shipping_service.deps import Deps
from shipping_service.domain import shipment_id_for
from shipping_service.store import shipment_doc
from shipping_service.sweeper import AutoAdvance

from bus import AlreadyHandled
from bus.fake import InMemoryBus
from contracts import Actor, Envelope
from contracts.shipping import ShipmentCreated, ShipmentDelivered, ShipmentDispatched
from contracts.types import Line
from kit.errors import Problem

from .conftest import ADDRESS, AUTO_ADVANCE_SECONDS, MovableClock, confirmed

pytestmark = pytest.mark.integration

ADMIN = Actor(user_id="admin-1", role="Admin", ip="10.0.0.7")


async def handle(bus: InMemoryBus, *envelopes: Envelope[Any]) -> None:
    for envelope in envelopes:
        await bus.publish(envelope)
    await bus.deliver()


def emitted[E](bus: InMemoryBus, cls: type[E]) -> list[Envelope[Any]]:
    return bus.of_type(cls)


async def shipments(deps: Deps) -> list[dict[str, Any]]:
    return [doc async for doc in deps.db["shipments"].find({}).sort("created_at", 1)]


def sweeper_of(deps: Deps) -> AutoAdvance:
    sweeper = background(deps)["auto_advance"]
    assert isinstance(sweeper, AutoAdvance)
    return sweeper


# --- one shipment per CONFIRMED order ------------------------------------------------------------


async def test_a_confirmed_order_becomes_one_pending_shipment_of_its_fulfilled_lines(
    deps: Deps, bus: InMemoryBus
) -> None:
    # A partial order: the line inventory could not fill is confirmed with quantity 0.
    await handle(bus, confirmed("o1", ("lamp", 2), ("gone", 0), ("lamp", 1), ("desk", 1)))

    [doc] = await shipments(deps)
    assert doc["_id"] == shipment_id_for("o1")
    assert doc["status"] == "PENDING" and doc["order_id"] == "o1" and doc["user_id"] == "u1"
    assert doc["lines"] == [
        {"product_id": "lamp", "quantity": 3},
        {"product_id": "desk", "quantity": 1},
    ]
    assert doc["address"]["line1"] == "1 Quay Street" and doc["address"]["addressId"] == "a1"
    [created] = emitted(bus, ShipmentCreated)
    assert created.data == ShipmentCreated(
        shipment_id=doc["_id"],
        order_id="o1",
        user_id="u1",
        lines=(Line(product_id="lamp", quantity=3), Line(product_id="desk", quantity=1)),
        address=ADDRESS,
    )
    assert created.correlation_id == "o1"


async def test_duplicate_and_resent_order_confirmed_create_one_shipment_and_one_event(
    deps: Deps, bus: InMemoryBus
) -> None:
    first = confirmed("o1", ("lamp", 1))
    await handle(bus, first, first, confirmed("o1", ("lamp", 1)), confirmed("o1", ("lamp", 1)))

    assert len(await shipments(deps)) == 1
    assert len(emitted(bus, ShipmentCreated)) == 1


async def test_a_copy_racing_past_the_read_hits_the_unique_key_and_is_skipped(
    deps: Deps,
) -> None:
    """Two copies of the event read "no shipment" at once: the second insert is the verdict
    (AlreadyHandled aborts its transaction; the consumer skips the delivery)."""
    doc = shipment_doc(
        shipment_id_for("o1"), order_id="o1", user_id="u1", lines=[], address=None, now=deps.clock()
    )
    await deps.store.insert(dict(doc))
    with pytest.raises(AlreadyHandled):
        await deps.store.insert(dict(doc))


async def test_an_old_event_without_an_address_still_ships(deps: Deps, bus: InMemoryBus) -> None:
    await handle(bus, confirmed("o1", ("lamp", 1), address=None))

    [doc] = await shipments(deps)
    assert doc["address"] is None
    assert emitted(bus, ShipmentCreated)[0].data.address is None


# --- ship and deliver ----------------------------------------------------------------------------


async def test_ship_then_deliver_moves_the_shipment_and_emits_each_event_once_with_the_actor(
    deps: Deps, bus: InMemoryBus, clock: MovableClock
) -> None:
    await handle(bus, confirmed("o1", ("lamp", 1)))
    shipment_id = shipment_id_for("o1")

    clock.advance(60)
    shipped = await commands.ship(deps, shipment_id, ADMIN)
    assert shipped["status"] == "SHIPPED" and shipped["carrier"] == SANDBOX_CARRIER
    assert is_tracking_number(shipped["tracking_number"])
    assert shipped["shipped_by"] == "admin-1"
    [dispatched] = emitted(bus, ShipmentDispatched)
    assert dispatched.data.tracking_number == shipped["tracking_number"]
    assert dispatched.data.carrier == SANDBOX_CARRIER
    assert dispatched.data.shipped_at == clock()
    assert dispatched.actor == ADMIN and dispatched.correlation_id == "o1"

    with pytest.raises(Problem) as again:
        await commands.ship(deps, shipment_id, ADMIN)
    assert again.value.status == 409 and again.value.code == "INVALID_STATE"
    assert again.value.extra["currentStatus"] == "SHIPPED"
    assert len(emitted(bus, ShipmentDispatched)) == 1

    clock.advance(3600)
    delivered = await commands.deliver(deps, shipment_id, ADMIN)
    assert delivered["status"] == "DELIVERED" and delivered["delivered_by"] == "admin-1"
    with pytest.raises(Problem) as twice:
        await commands.deliver(deps, shipment_id, ADMIN)
    assert twice.value.code == "INVALID_STATE"
    [arrived] = emitted(bus, ShipmentDelivered)
    assert arrived.data.delivered_at == clock() and arrived.actor == ADMIN
    assert len(emitted(bus, ShipmentDispatched)) == 1


async def test_deliver_before_ship_is_invalid_state_and_changes_nothing(
    deps: Deps, bus: InMemoryBus
) -> None:
    await handle(bus, confirmed("o1", ("lamp", 1)))
    with pytest.raises(Problem) as early:
        await commands.deliver(deps, shipment_id_for("o1"), ADMIN)
    assert early.value.code == "INVALID_STATE"
    assert early.value.extra["currentStatus"] == "PENDING"
    [doc] = await shipments(deps)
    assert doc["status"] == "PENDING" and doc["delivered_at"] is None
    assert emitted(bus, ShipmentDelivered) == []


async def test_a_given_carrier_and_tracking_number_are_kept(deps: Deps, bus: InMemoryBus) -> None:
    await handle(bus, confirmed("o1", ("lamp", 1)))
    shipped = await commands.ship(
        deps, shipment_id_for("o1"), ADMIN, carrier="DHL", tracking_number="JD014600006281230000"
    )
    assert (shipped["carrier"], shipped["tracking_number"]) == ("DHL", "JD014600006281230000")
    assert emitted(bus, ShipmentDispatched)[0].data.carrier == "DHL"


async def test_each_shipment_gets_its_own_tracking_number(deps: Deps, bus: InMemoryBus) -> None:
    orders = [f"o{n}" for n in range(20)]
    await handle(bus, *(confirmed(o, ("lamp", 1)) for o in orders))
    numbers = {
        (await commands.ship(deps, shipment_id_for(o), ADMIN))["tracking_number"] for o in orders
    }
    assert len(numbers) == len(orders)
    assert all(is_tracking_number(n) for n in numbers)


async def test_an_unknown_shipment_is_not_found(deps: Deps) -> None:
    for call in (commands.ship, commands.deliver):
        with pytest.raises(Problem) as missing:
            await call(deps, "nope", ADMIN)
        assert missing.value.status == 404 and missing.value.code == "SHIPMENT_NOT_FOUND"


# --- the auto-advance ----------------------------------------------------------------------------


async def test_auto_advance_ships_then_delivers_as_the_system_once_the_time_has_passed(
    deps: Deps, bus: InMemoryBus, clock: MovableClock
) -> None:
    sweeper = sweeper_of(deps)
    await handle(bus, confirmed("o1", ("lamp", 1)))
    clock.advance(AUTO_ADVANCE_SECONDS / 2)
    await handle(bus, confirmed("o2", ("desk", 1)))

    assert await sweeper.run_once() == 0  # nothing has waited long enough
    clock.advance(AUTO_ADVANCE_SECONDS / 2)
    assert await sweeper.run_once() == 1  # o1 ships; o2 has waited half the time
    states = {d["order_id"]: d["status"] for d in await shipments(deps)}
    assert states == {"o1": "SHIPPED", "o2": "PENDING"}
    [dispatched] = emitted(bus, ShipmentDispatched)
    assert dispatched.actor.role == "system" and dispatched.actor.user_id is None
    assert is_tracking_number(dispatched.data.tracking_number)

    clock.advance(AUTO_ADVANCE_SECONDS / 2)
    assert await sweeper.run_once() == 1  # o2 ships; o1 has been SHIPPED half the time
    clock.advance(AUTO_ADVANCE_SECONDS / 2)
    assert await sweeper.run_once() == 1  # o1 is delivered
    clock.advance(AUTO_ADVANCE_SECONDS)
    assert await sweeper.run_once() == 1  # o2 is delivered
    assert await sweeper.run_once() == 0
    assert {d["status"] for d in await shipments(deps)} == {"DELIVERED"}
    assert len(emitted(bus, ShipmentDispatched)) == 2
    assert len(emitted(bus, ShipmentDelivered)) == 2
    assert all(e.actor.role == "system" for e in emitted(bus, ShipmentDelivered))


async def test_auto_advance_leaves_what_an_admin_moved_alone(
    deps: Deps, bus: InMemoryBus, clock: MovableClock
) -> None:
    await handle(bus, confirmed("o1", ("lamp", 1)))
    await commands.ship(deps, shipment_id_for("o1"), ADMIN, carrier="DHL", tracking_number="1234")
    clock.advance(AUTO_ADVANCE_SECONDS / 2)
    assert await sweeper_of(deps).run_once() == 0  # shipped by the Admin, not due for delivery
    [doc] = await shipments(deps)
    assert doc["carrier"] == "DHL" and doc["shipped_by"] == "admin-1"
    assert len(emitted(bus, ShipmentDispatched)) == 1


async def test_without_the_setting_there_is_no_sweeper(deps: Deps) -> None:
    deps.settings.auto_advance_seconds = None
    assert background(deps) == {}
    assert await commands.auto_advance(deps) == 0
