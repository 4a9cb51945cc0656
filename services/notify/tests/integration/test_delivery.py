"""The delivery worker against the real broker and Mongo: what a customer receives per event, and
that a handler's rows, born claimed by its own process's worker, go out exactly once whether
that worker sends them, retries them, or dies holding them."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
from notify_service.delivery import DeliveryPolicy, DeliveryWorker
from notify_service.store import NOTIFICATIONS
from prometheus_client import REGISTRY

from contracts import Actor, Envelope, Event
from contracts.order import OrderPlaced
from contracts.types import Preferences, PricedLine
from contracts.user import UserProfileUpdated, UserRegistered
from devkit.bus_testing import eventually

if TYPE_CHECKING:
    from conftest import NotifyHarness, StartNotify

pytestmark = pytest.mark.integration


def wrap(event: Event, correlation: str) -> Envelope[Any]:
    return Envelope.wrap(event, correlation_id=correlation, actor=Actor(role="Customer"))


def registered(user_id: str) -> Envelope[Any]:
    return wrap(
        UserRegistered(
            user_id=user_id, username=user_id, email=f"{user_id}@example.com", role="Customer"
        ),
        user_id,
    )


def placed(order_id: str, user_id: str) -> Envelope[Any]:
    return wrap(
        OrderPlaced(
            order_id=order_id,
            user_id=user_id,
            items=(PricedLine(product_id="p1", quantity=1, price_cents=1000),),
            total_cents=1000,
            address_id="a",
            payment_method_id="pm",
        ),
        order_id,
    )


async def welcomed(h: NotifyHarness, user_id: str) -> None:
    await h.publish(registered(user_id))
    await eventually(lambda: len(h.sink.to(f"{user_id}@example.com")) == 1, what="welcome")
    await settled(h)


async def settled(h: NotifyHarness) -> None:
    """Nothing pending, and still nothing a moment later (late duplicates would show)."""

    async def idle() -> bool:
        # Nothing to send, and every outcome event published and pulled from its row.
        busy = {"$or": [{"status": "pending"}, {"outbox.0": {"$exists": True}}]}
        return await h.deps.store.notifications.count_documents(busy) == 0

    await eventually(idle, what="no pending notifications")
    await asyncio.sleep(0.4)
    assert await idle()


async def outcome_events(h: NotifyHarness, event_type: str) -> list[Any]:
    return await h.emitted(event_type)


async def test_an_order_placed_twice_reaches_the_customer_once_in_app_and_once_by_email(
    notify: NotifyHarness,
) -> None:
    h = notify
    await welcomed(h, "c1")
    h.writes.counts.clear()
    order = placed("o1", "c1")
    await h.publish(order)
    await eventually(lambda: len(h.sink.to("c1@example.com")) == 2, what="order email")
    await settled(h)
    # What notify wrote for it: both rows in one insert, the email's outcome in one update
    # with its NotificationSent riding in the row, then the relay's pull of that event. No
    # claim of the email row (born claimed), nothing after the in-app row's insert. (Counted
    # with nothing else running: on the embedded server overlapping transactions conflict and
    # run again, and every run counts.)
    assert notification_writes(h) == {"insert": 1, "update": 2}
    h.writes.counts.clear()
    duplicates = {"service": "notify", "type": "OrderPlaced", "outcome": "duplicate"}
    before = REGISTRY.get_sample_value("shop_events_consumed_total", duplicates) or 0.0
    await h.publish(order)  # a redelivery
    await eventually(
        lambda: (REGISTRY.get_sample_value("shop_events_consumed_total", duplicates) or 0) > before,
        what="redelivery handled",
    )
    await settled(h)
    # The redelivery's one write is its insert, refused by the rows' keys: the rows are the
    # record of the event (no inbox row), so nothing is stored or sent again.
    assert notification_writes(h) == {"insert": 1}

    assert [m.subject for m in h.sink.to("c1@example.com")] == [
        "Welcome to the shop",
        "Order o1 received",
    ]
    inbox = await h.client.get("/api/v1/notifications", headers=h.headers("c1"))
    about_order = [
        (i["channel"], i["status"]) for i in inbox.json()["items"] if i["type"] == "ORDER_PLACED"
    ]
    assert sorted(about_order) == [("email", "sent"), ("inApp", "sent")]
    sent = [e for e in await outcome_events(h, "NotificationSent") if e.template == "ORDER_PLACED"]
    assert [e.channel for e in sent] == ["email"]  # the in-app row's record is the inbox


def notification_writes(h: NotifyHarness) -> dict[str, int]:
    return {cmd: n for (cmd, coll), n in h.writes.counts.items() if coll == "notifications"}


async def test_a_transient_failure_is_retried_and_the_message_sent_once(
    notify: NotifyHarness,
) -> None:
    h = notify
    await welcomed(h, "c2")
    profile = UserProfileUpdated(
        user_id="c2",
        username="c2",
        email="c2@example.com",
        phone="+15550002",
        is_profile_complete=True,
        preferences=Preferences(notification_channels=("email", "sms")),
    )
    await h.publish(wrap(profile, "c2"))
    await eventually(
        lambda: h.deps.store.users.count_documents({"_id": "c2", "channels": "sms"}),
        what="replica with sms",
    )
    h.sms.fail_next(1)
    await h.publish(placed("o2", "c2"))
    await eventually(lambda: len(h.sms.sent) == 1, what="sms after its retry")
    await settled(h)

    assert h.sms.calls == 2
    assert [r.title for r in h.sms.sent] == ["Order o2 received"]
    row = await h.deps.store.notifications.find_one({"channel": "sms"})
    assert row is not None and row["status"] == "sent" and row["attempts"] == 2
    assert "injected" in row["last_error"]
    sent = [e.channel for e in await outcome_events(h, "NotificationSent")]
    assert sorted(sent) == ["email", "email", "sms"]  # welcome, order email, order sms
    assert await outcome_events(h, "NotificationFailed") == []


async def test_rows_of_a_worker_that_died_are_sent_once_by_another_after_their_lease(
    start_notify: StartNotify,
) -> None:
    async with start_notify(delivery_lease_seconds=1.0) as h:
        await welcomed(h, "c3")
        # The process's worker dies; its handlers still commit rows born claimed by it.
        await h.deps.worker.stop()
        await h.publish(placed("o3", "c3"))
        query = {"type": "ORDER_PLACED", "channel": "email"}
        await eventually(lambda: h.deps.store.notifications.count_documents(query), what="row")
        row = await h.deps.store.notifications.find_one(query)
        assert row is not None and row["status"] == "pending"

        survivor = DeliveryWorker(
            h.deps.store,
            h.deps.documents(NOTIFICATIONS),
            h.deps.senders,
            DeliveryPolicy(lease=timedelta(seconds=1.0), poll_interval=0.05),
        )
        survivor.start()
        try:
            await eventually(lambda: len(h.sink.to("c3@example.com")) == 2, what="order email")
            await settled(h)
        finally:
            await survivor.stop()

        mails = h.sink.to("c3@example.com")
        assert [m.subject for m in mails] == ["Welcome to the shop", "Order o3 received"]
        # Not before the dead worker's lease ran out: until then the row was its alone.
        assert datetime.fromisoformat(mails[1].received_at) >= row["lease_until"]
        done = await h.deps.store.notifications.find_one({"_id": row["_id"]})
        assert done is not None and done["status"] == "sent" and done["attempts"] == 1
        sent = [
            e for e in await outcome_events(h, "NotificationSent") if e.template == "ORDER_PLACED"
        ]
        assert [e.notification_id for e in sent] == [row["_id"]]
