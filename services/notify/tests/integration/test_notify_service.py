"""Notify against the real broker and Mongo: exactly-once delivery, retries, the inbox API."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, get_args

import pytest
from notify_service.channels import OutgoingMessage
from notify_service.handlers import HANDLERS

from contracts import Actor, Envelope, Event
from contracts.inventory import StockLow
from contracts.notify import NotificationFailed
from contracts.order import OrderApprovalRequired, OrderPlaced
from contracts.payment import PaymentFailed
from contracts.testing import sample
from contracts.types import NotificationType, Preferences, PricedLine
from contracts.user import (
    UserDeleted,
    UserLoggedIn,
    UserProfileUpdated,
    UserRegistered,
    UserRoleChanged,
)
from devkit.bus_testing import Probe, eventually

if TYPE_CHECKING:
    from conftest import NotifyHarness

pytestmark = pytest.mark.integration


def wrap(event: Event, correlation: str = "c") -> Envelope[Any]:
    return Envelope.wrap(event, correlation_id=correlation, actor=Actor(role="Customer"))


def registered(user_id: str, role: str = "Customer") -> Envelope[Any]:
    return wrap(
        UserRegistered(
            user_id=user_id, username=user_id, email=f"{user_id}@example.com", role=role
        ),  # type: ignore[arg-type]
        user_id,
    )


async def count(h: NotifyHarness, **query: Any) -> int:
    return await h.deps.store.notifications.count_documents(query)


async def publish_twice(h: NotifyHarness, *envelopes: Envelope[Any]) -> None:
    for envelope in envelopes:
        await h.publish(envelope)
        await h.publish(envelope)  # the same envelope again: a redelivery


async def settled(h: NotifyHarness) -> None:
    """Wait until nothing is pending, then a little more so late duplicates would show."""

    async def idle() -> bool:
        # Nothing to send, and every outcome event published and pulled from its row.
        return await count(h, status="pending") == 0 and await count(h, **WAITING) == 0

    await eventually(idle, what="no pending notifications")
    await asyncio.sleep(0.4)
    assert await idle()


WAITING: dict[str, Any] = {"outbox.0": {"$exists": True}}


async def test_every_event_delivered_twice_sends_each_message_once(notify: NotifyHarness) -> None:
    h = notify
    await publish_twice(h, registered("m1", "Manager"), registered("a1", "Admin"), registered("c1"))

    async def welcomed() -> bool:
        return len(h.sink.messages) >= 3

    await eventually(welcomed, what="three welcome emails")

    profile = UserProfileUpdated(
        user_id="c1",
        username="c1",
        email="c1@example.com",
        phone="+15550001",
        is_profile_complete=False,
        preferences=Preferences(notification_channels=("email", "sms", "push")),
    )
    await publish_twice(h, wrap(profile, "c1"))
    await eventually(lambda: count(h, type="PROFILE_INCOMPLETE", channel="sms"), what="nudge")
    # A second incomplete profile update and a login: the nudge went out once already.
    await publish_twice(
        h,
        wrap(profile.model_copy(update={"username": "c1-renamed"}), "c1"),
        wrap(UserLoggedIn(user_id="c1"), "c1"),
    )
    await publish_twice(
        h,
        wrap(
            OrderPlaced(
                order_id="o1",
                user_id="c1",
                items=(PricedLine(product_id="p1", quantity=2, price_cents=500),),
                total_cents=1000,
                address_id="a",
                payment_method_id="pm",
            ),
            "o1",
        ),
        wrap(
            OrderApprovalRequired(order_id="o1", user_id="c1", reason="fraud", total_cents=1000),
            "o1",
        ),
        wrap(
            PaymentFailed(
                order_id="o1",
                user_id="c1",
                payment_id="pay1",
                reason="declined",
                attempts=1,
                retryable=False,
            ),
            "o1",
        ),
        wrap(StockLow(product_id="p1", name="Lamp", available=1, threshold=5), "p1"),
    )
    await eventually(lambda: count(h, type="LOW_STOCK"), what="low stock")
    await settled(h)

    subjects = sorted((m.to[0], m.subject) for m in h.sink.messages)
    assert subjects == sorted(
        [
            ("m1@example.com", "Welcome to the shop"),
            ("a1@example.com", "Welcome to the shop"),
            ("c1@example.com", "Welcome to the shop"),
            ("c1@example.com", "Complete your profile"),
            ("c1@example.com", "Order o1 received"),
            ("m1@example.com", "Order o1 needs approval"),
            ("c1@example.com", "Payment for order o1 failed"),
            ("a1@example.com", "Low stock: Lamp"),
        ]
    )
    assert len(h.sink.to("c1@example.com")) == 4
    retry = next(m for m in h.sink.messages if m.subject.startswith("Payment"))
    assert "/api/v1/orders/o1/payment/retry" in retry.body
    # The nudge went out once on each of c1's channels; SMS/push only after c1 chose them.
    assert await count(h, type="PROFILE_INCOMPLETE") == 4
    assert [r.title for r in h.sms.sent].count("Complete your profile") == 1
    assert [r.to for r in h.sms.sent] == ["+15550001"] * 3
    assert len(h.push.sent) == 3
    assert await count(h, type="APPROVAL_REQUIRED", user_id="m1") == 2  # in-app + email
    assert await count(h, type="APPROVAL_REQUIRED", user_id={"$ne": "m1"}) == 0
    assert await count(h, type="LOW_STOCK", user_id="a1") == 2
    assert await count(h, status="sent") == await count(h)
    # One NotificationSent per message that went out on a real channel; none for in-app rows
    # (stored is delivered: the inbox is their record), held nudges included.
    channels = sorted(e.channel for e in await h.emitted("NotificationSent"))
    assert channels == sorted(["email"] * 8 + ["sms"] * 3 + ["push"] * 3)
    assert await count(h, channel="inApp") == 8


async def sms_customer_whose_payment_failed(h: NotifyHarness, user_id: str, phone: str) -> None:
    """A customer who chose SMS (welcome email out, replica current), then a PaymentFailed."""
    await h.publish(registered(user_id))
    await eventually(lambda: len(h.sink.messages) == 1, what="welcome email")
    profile = UserProfileUpdated(
        user_id=user_id,
        username=user_id,
        email=f"{user_id}@example.com",
        phone=phone,
        is_profile_complete=True,
        preferences=Preferences(notification_channels=("email", "sms")),
    )
    await h.publish(wrap(profile, user_id))
    await eventually(
        lambda: h.deps.store.users.count_documents({"_id": user_id, "channels": "sms"}),
        what="replica with sms",
    )
    failed = PaymentFailed(
        order_id=f"o-{user_id}",
        user_id=user_id,
        payment_id="p",
        reason="x",
        attempts=1,
        retryable=True,
    )
    await h.publish(wrap(failed, f"o-{user_id}"))


async def test_a_failing_channel_is_retried_then_recorded_failed(notify: NotifyHarness) -> None:
    h = notify
    channel = await h.connection.channel()
    probe = await Probe.bind(channel, h.config, NotificationFailed.ROUTING_KEY)
    h.sms.fail_next(100)
    await sms_customer_whose_payment_failed(h, "c2", "+15550003")
    await eventually(lambda: count(h, channel="sms", status="failed"), what="sms failed")
    await eventually(lambda: len(probe.messages) == 1, what="NotificationFailed published")
    await asyncio.sleep(0.2)
    assert len(probe.messages) == 1
    failed = Envelope.from_json(probe.messages[0].body)
    assert isinstance(failed.data, NotificationFailed)
    assert failed.data.channel == "sms" and failed.data.template == "PAYMENT_FAILED"
    assert failed.correlation_id == "o-c2"
    assert h.sms.calls == 3  # delivery_max_attempts
    # The other channels went out regardless.
    assert [m.subject for m in h.sink.to("c2@example.com")] == [
        "Welcome to the shop",
        "Payment for order o-c2 failed",
    ]
    row = await h.deps.store.notifications.find_one({"channel": "sms"})
    assert row is not None and row["attempts"] == 3 and "injected" in row["last_error"]


class BuggyProvider:
    """A provider whose client library breaks in a way no channel anticipated."""

    def __init__(self) -> None:
        self.calls = 0

    async def send(self, message: OutgoingMessage) -> None:
        self.calls += 1
        raise ValueError("provider SDK choked on its own response")


async def test_a_channel_raising_anything_counts_attempts_then_fails_for_good(
    notify: NotifyHarness,
) -> None:
    h = notify
    buggy = BuggyProvider()
    h.deps.worker.senders = {**h.deps.worker.senders, "sms": buggy}
    channel = await h.connection.channel()
    probe = await Probe.bind(channel, h.config, NotificationFailed.ROUTING_KEY)
    await sms_customer_whose_payment_failed(h, "c9", "+15550009")
    # Not left leased and retried forever: each raise is an attempt, the last one fails the row.
    await eventually(lambda: count(h, channel="sms", status="failed"), what="sms failed")
    await eventually(lambda: len(probe.messages) == 1, what="NotificationFailed published")
    await asyncio.sleep(0.3)
    assert buggy.calls == 3  # delivery_max_attempts
    assert len(probe.messages) == 1
    failed = Envelope.from_json(probe.messages[0].body)
    assert isinstance(failed.data, NotificationFailed)
    assert failed.data.channel == "sms" and "ValueError" in failed.data.reason
    row = await h.deps.store.notifications.find_one({"channel": "sms"})
    assert row is not None and row["attempts"] == 3
    assert await count(h, status="pending") == 0


async def test_inbox_is_own_only_and_marks_read(notify: NotifyHarness) -> None:
    h = notify
    await h.publish(registered("c3"))
    await h.publish(registered("m3", "Manager"))

    async def two_welcomes() -> bool:
        return await count(h, channel="inApp") == 2

    await eventually(two_welcomes, what="two welcomes")

    mine = await h.client.get("/api/v1/notifications", headers=h.headers("c3"))
    assert mine.status_code == 200
    items = mine.json()["items"]
    assert [(i["type"], i["channel"]) for i in items if i["channel"] == "inApp"] == [
        ("WELCOME", "inApp")
    ]
    assert {i["channel"] for i in items} == {"inApp", "email"}
    assert mine.json()["nextCursor"] is None
    in_app = next(i for i in items if i["channel"] == "inApp")
    assert in_app["status"] == "sent" and in_app.get("readAt") is None

    manager = h.headers("m3", "Manager")
    other = await h.client.get("/api/v1/notifications", params={"userId": "c3"}, headers=manager)
    assert other.status_code == 403 and other.json()["code"] == "FORBIDDEN"
    steal = await h.client.post(
        f"/api/v1/notifications/{in_app['notificationId']}/read", headers=manager
    )
    assert steal.status_code == 404 and steal.json()["code"] == "NOTIFICATION_NOT_FOUND"
    own_manager = await h.client.get("/api/v1/notifications", headers=manager)
    assert {i["entityId"] for i in own_manager.json()["items"]} == {"m3"}

    read = await h.client.post(
        f"/api/v1/notifications/{in_app['notificationId']}/read", headers=h.headers("c3")
    )
    assert read.status_code == 200 and read.json()["readAt"]
    admin = await h.client.get(
        "/api/v1/notifications",
        params={"userId": "c3", "limit": 1},
        headers=h.headers("a", "Admin"),
    )
    assert admin.status_code == 200 and len(admin.json()["items"]) == 1
    page2 = await h.client.get(
        "/api/v1/notifications",
        params={"userId": "c3", "cursor": admin.json()["nextCursor"]},
        headers=h.headers("a", "Admin"),
    )
    assert len(page2.json()["items"]) == 1
    assert (await h.client.get("/api/v1/notifications")).status_code == 401
    too_many = await h.client.get(
        "/api/v1/notifications", params={"limit": 101}, headers=h.headers("c3")
    )
    assert too_many.status_code == 422


async def test_a_second_delivery_of_every_consumed_type_changes_nothing(
    notify: NotifyHarness,
) -> None:
    h = notify
    # The users the samples name, so that every template finds a recipient with an email.
    await h.publish(registered("user_id-1"))
    await h.publish(registered("mgr", "Manager"))
    await h.publish(registered("adm", "Admin"))
    await eventually(lambda: len(h.sink.messages) == 3, what="three welcome emails")
    consumed = sorted(HANDLERS, key=lambda cls: cls.__name__)
    envelopes = [wrap(sample(cls, **_incomplete(cls)), "c") for cls in consumed]
    for envelope in envelopes:
        await h.publish(envelope)

    async def every_template() -> bool:
        return set(await h.deps.store.notifications.distinct("type")) == set(EVERY_TYPE)

    await eventually(every_template, what="every template")
    await settled(h)

    async def snapshot() -> tuple[Any, ...]:
        rows = await h.deps.store.notifications.find({}, {"read_at": 0}).sort("_id").to_list()
        return rows, len(h.sink.messages), len(h.sms.sent), len(h.push.sent)

    first = await snapshot()
    assert {r["type"] for r in first[0]} == set(EVERY_TYPE)
    for envelope in envelopes:
        await h.publish(envelope)
    await asyncio.sleep(1.0)
    await settled(h)
    assert await snapshot() == first


EVERY_TYPE = get_args(NotificationType)


def _incomplete(cls: type) -> dict[str, Any]:
    # The samples' user keeps an incomplete profile (so the nudge fires) and asks to decide.
    if cls is UserProfileUpdated:
        return {"is_profile_complete": False, "disabled": False, "preferences": Preferences()}
    if cls in (UserDeleted, UserRoleChanged):
        return {"user_id": "someone-else"}
    if cls is UserRegistered:
        return {"role": "Customer"}
    return {}


async def test_a_late_registration_does_not_undo_a_complete_profile(notify: NotifyHarness) -> None:
    h = notify
    profile = UserProfileUpdated(
        user_id="c4", username="c4", email="c4@example.com", phone="+1555", is_profile_complete=True
    )
    await h.publish(wrap(profile, "c4"))
    await eventually(lambda: h.deps.store.users.count_documents({"_id": "c4"}), what="replica")
    await h.publish(registered("c4"))
    await eventually(lambda: len(h.sink.to("c4@example.com")) == 1, what="welcome")
    login = wrap(UserLoggedIn(user_id="c4"), "c4")
    await h.publish(login)
    await eventually(
        lambda: h.deps.db["inbox"].count_documents({"event_id": login.id}), what="login handled"
    )
    await asyncio.sleep(0.3)  # the nudge would be pending now
    user = await h.deps.store.users.find_one({"_id": "c4"})
    assert user is not None and user["is_profile_complete"] is True and user["phone"] == "+1555"
    assert await count(h, type="PROFILE_INCOMPLETE") == 0


async def test_a_nudge_is_dropped_when_the_profile_completes_meanwhile(
    notify: NotifyHarness,
) -> None:
    h = notify
    await h.publish(registered("c5"))
    await eventually(lambda: len(h.sink.to("c5@example.com")) == 1, what="welcome")
    # The login is handled before the update that completed the profile (events race).
    await h.publish(wrap(UserLoggedIn(user_id="c5"), "c5"))
    await eventually(lambda: count(h, type="PROFILE_INCOMPLETE"), what="held nudge")
    inbox = await h.client.get("/api/v1/notifications", headers=h.headers("c5"))
    assert {i["type"] for i in inbox.json()["items"]} == {"WELCOME"}  # held: not shown
    profile = UserProfileUpdated(
        user_id="c5", username="c5", email="c5@example.com", is_profile_complete=True
    )
    await h.publish(wrap(profile, "c5"))
    await settled(h)
    assert await count(h, type="PROFILE_INCOMPLETE", status="skipped") == 2  # in-app + email
    assert [m.subject for m in h.sink.to("c5@example.com")] == ["Welcome to the shop"]
    inbox = await h.client.get("/api/v1/notifications", headers=h.headers("c5"))
    assert {i["type"] for i in inbox.json()["items"]} == {"WELCOME"}


async def test_a_login_that_saw_a_complete_profile_never_nudges(notify: NotifyHarness) -> None:
    """The update that completed the profile is late here (retried, or handled after the login,
    beyond the hold): the login says the profile was complete, so no nudge is even held."""
    h = notify
    await h.publish(registered("c6"))
    await eventually(lambda: len(h.sink.to("c6@example.com")) == 1, what="welcome")
    login = wrap(UserLoggedIn(user_id="c6", is_profile_complete=True), "c6")
    await h.publish(login)
    await eventually(
        lambda: h.deps.db["inbox"].count_documents({"event_id": login.id}), what="login handled"
    )
    await settled(h)
    assert await count(h, type="PROFILE_INCOMPLETE") == 0
    # One that saw it incomplete still nudges (once).
    await h.publish(wrap(UserLoggedIn(user_id="c6", is_profile_complete=False), "c6"))
    await eventually(lambda: count(h, type="PROFILE_INCOMPLETE"), what="the nudge")
