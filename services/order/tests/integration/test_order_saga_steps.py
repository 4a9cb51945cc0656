"""Saga handlers on the real broker: each answer moves the stored order and emits its events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from order_service.domain import Order

from contracts import Envelope, Event
from contracts.inventory import StockCommitted, StockReserved, StockUnavailable
from contracts.payment import PaymentAuthorized
from contracts.types import Line
from devkit.bus_testing import Probe, eventually

from .conftest import RunningOrder, new_order

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC)


async def placed(svc: RunningOrder) -> Order:
    order = new_order(NOW)
    order.pull_events()
    await svc.deps.store.save(order, None)
    return order


def wrap(event: Event, order: Order) -> Envelope[Any]:
    return Envelope.wrap(event, correlation_id=order.order_id)


async def status_is(svc: RunningOrder, order_id: str, status: str) -> None:
    async def check() -> bool:
        found = await svc.deps.store.get(order_id)
        return found is not None and found.status == status

    await eventually(check, timeout=10, what=f"{order_id} {status}")


def emitted(probe: Probe, event_type: str, order_id: str) -> list[Envelope[Any]]:
    found = [Envelope.from_json(m.body) for m in probe.messages]
    return [e for e in found if e.type == event_type and e.correlation_id == order_id]


async def test_reserved_paid_committed_confirms_once(order_service: RunningOrder) -> None:
    channel = await order_service.connection.channel()
    probe = await Probe.bind(channel, order_service.config, "order.#", "payment.requested")
    order = await placed(order_service)
    line = (Line(product_id="book", quantity=2),)
    reserved = wrap(StockReserved(order_id=order.order_id, lines=line, expires_at=NOW), order)
    await order_service.publish(reserved)
    await status_is(order_service, order.order_id, "AWAITING_PAYMENT")
    await eventually(lambda: bool(emitted(probe, "PaymentRequested", order.order_id)))
    (request,) = emitted(probe, "PaymentRequested", order.order_id)
    assert request.causation_id == reserved.id
    stored = await order_service.deps.store.load(order.order_id)
    assert request.id in {entry.event_id for entry in stored.timeline}

    authorized = PaymentAuthorized(
        order_id=order.order_id, user_id="u1", payment_id="pay1", amount_cents=3998, attempts=1
    )
    await order_service.publish(wrap(authorized, order))
    await status_is(order_service, order.order_id, "PAID")
    committed = wrap(StockCommitted(order_id=order.order_id, lines=line), order)
    again = committed.model_copy(update={"id": f"{committed.id[:-4]}beef"})
    await order_service.publish(committed, again)
    await status_is(order_service, order.order_id, "CONFIRMED")
    await order_service.handled(again)
    await order_service.handled(committed)
    await eventually(lambda: bool(emitted(probe, "OrderConfirmed", order.order_id)))
    assert len(emitted(probe, "OrderPaid", order.order_id)) == 1
    assert len(emitted(probe, "OrderConfirmed", order.order_id)) == 1


async def test_out_of_stock_rejects_and_a_late_authorization_is_ignored(
    order_service: RunningOrder,
) -> None:
    order = await placed(order_service)
    unavailable = StockUnavailable(
        order_id=order.order_id, user_id="u1", missing=(), alternatives=("alt1",)
    )
    await order_service.publish(wrap(unavailable, order))
    await status_is(order_service, order.order_id, "REJECTED")
    late = wrap(
        PaymentAuthorized(
            order_id=order.order_id, user_id="u1", payment_id="p", amount_cents=1, attempts=1
        ),
        order,
    )
    await order_service.publish(late)
    await order_service.handled(late)
    stored = await order_service.deps.store.load(order.order_id)
    assert stored.status == "REJECTED" and stored.alternatives == ["alt1"]
    assert stored.version == 2  # placed, rejected; the late event saved nothing
    assert stored.updated_at < datetime.now(UTC) + timedelta(seconds=1)
