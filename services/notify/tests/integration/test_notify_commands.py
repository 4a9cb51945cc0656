"""Notify's commands and handlers through `InMemoryBus` and the embedded store, its delivery
worker driven by the test: what people receive per event, on which channels, exactly once."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
from notify_service import commands

from contracts import Actor, Envelope, Event
from contracts.inventory import StockLow, StockPartiallyReserved
from contracts.notify import NotificationFailed, NotificationSent
from contracts.order import (
    OrderApprovalRequired,
    OrderConfirmed,
    OrderPlaced,
    ReturnApproved,
    ReturnRejected,
    ReturnRequested,
)
from contracts.payment import PaymentRefunded
from contracts.shipping import ShipmentDelivered, ShipmentDispatched
from contracts.types import Line, MissingLine, Preferences, PricedLine, UserRole
from contracts.user import UserDeleted, UserLoggedIn, UserProfileUpdated, UserRegistered
from kit.auth import Principal
from kit.errors import Problem

if TYPE_CHECKING:
    from conftest import InMemoryNotify, StartInMemory

pytestmark = pytest.mark.integration


def wrap(event: Event, correlation: str = "c") -> Envelope[Any]:
    return Envelope.wrap(event, correlation_id=correlation, actor=Actor(role="Customer"))


def registered(user_id: str, role: UserRole = "Customer") -> Envelope[Any]:
    event = UserRegistered(
        user_id=user_id, username=user_id, email=f"{user_id}@example.com", role=role
    )
    return wrap(event, user_id)


def profile(user_id: str, *, complete: bool, **fields: Any) -> Envelope[Any]:
    preferences = Preferences(**fields.pop("preferences", {}))
    event = UserProfileUpdated(
        user_id=user_id,
        username=user_id,
        email=f"{user_id}@example.com",
        is_profile_complete=complete,
        preferences=preferences,
        **fields,
    )
    return wrap(event, user_id)


def placed(order_id: str, user_id: str) -> Envelope[Any]:
    event = OrderPlaced(
        order_id=order_id,
        user_id=user_id,
        items=(PricedLine(product_id="p1", quantity=2, price_cents=500),),
        total_cents=1000,
        address_id="a",
        payment_method_id="pm",
    )
    return wrap(event, order_id)


def confirmed(order_id: str, user_id: str) -> Envelope[Any]:
    event = OrderConfirmed(
        order_id=order_id,
        user_id=user_id,
        items=(PricedLine(product_id="p1", quantity=2, price_cents=500),),
        total_cents=1000,
        payment_method_id="pm",
    )
    return wrap(event, order_id)


def subjects(provider: Any) -> list[tuple[str, str]]:
    return [(record.to, record.title) for record in provider.sent]


async def test_an_order_reaches_the_customer_in_app_at_once_and_by_email_via_the_worker(
    in_memory: InMemoryNotify,
) -> None:
    n = in_memory
    await n.handle(registered("c1"), placed("o1", "c1"))

    rows = {r["channel"]: r for r in await n.rows(type="ORDER_PLACED")}
    assert {channel: r["status"] for channel, r in rows.items()} == {
        "inApp": "sent",
        "email": "pending",
    }
    # The email row is born leased to this process's worker: no one else sends it meanwhile.
    assert rows["email"]["lease_owner"] == n.deps.worker.owner
    assert n.email.sent == []  # a handler never talks to a provider

    await n.send()
    assert subjects(n.email) == [
        ("c1@example.com", "Welcome to the shop"),
        ("c1@example.com", "Order o1 received"),
    ]
    assert {r["status"] for r in await n.rows()} == {"sent"}
    # One NotificationSent per email, none for the in-app rows (the inbox is their record).
    sent = n.emitted(NotificationSent)
    assert [(e.template, e.channel) for e in sent] == [
        ("WELCOME", "email"),
        ("ORDER_PLACED", "email"),
    ]
    assert sent[1].notification_id == rows["email"]["_id"] and sent[1].user_id == "c1"
    outcome = n.bus.of_type(NotificationSent)[1]
    assert outcome.correlation_id == "o1"  # the order's journey


async def test_the_users_chosen_channels_decide_where_a_message_goes(
    in_memory: InMemoryNotify,
) -> None:
    n = in_memory
    sms_and_push = {"notification_channels": ("sms", "push")}
    await n.handle(
        registered("c1"),
        profile("c1", complete=True, phone="+15550001", preferences=sms_and_push),
        # SMS chosen without a phone number: nothing to send it to.
        registered("c2"),
        profile("c2", complete=True, preferences=sms_and_push),
    )
    await n.handle(confirmed("o1", "c1"), confirmed("o2", "c2"))
    await n.send()

    channels = {
        user: sorted(r["channel"] for r in await n.rows(type="ORDER_CONFIRMED", user_id=user))
        for user in ("c1", "c2")
    }
    assert channels == {"c1": ["inApp", "push", "sms"], "c2": ["inApp", "push"]}
    assert subjects(n.sms) == [("+15550001", "Order o1 confirmed")]
    assert [r.title for r in n.push.sent] == ["Order o1 confirmed", "Order o2 confirmed"]
    assert [r.title for r in n.email.sent] == ["Welcome to the shop"] * 2  # before they chose
    about_orders = [e for e in n.emitted(NotificationSent) if e.template == "ORDER_CONFIRMED"]
    assert sorted(e.channel for e in about_orders) == ["push", "push", "sms"]


async def test_the_same_event_twice_creates_its_notifications_once_and_sends_them_once(
    start_in_memory: StartInMemory,
) -> None:
    first = await start_in_memory()
    # A second process on the same database: a redelivery after the first one acked nothing
    # (the rows are the event's record, there is no inbox row to stop it).
    second = await start_in_memory()
    await first.handle(registered("c1"))
    order = placed("o1", "c1")
    await first.handle(order)
    await second.handle(order)
    await first.send()
    await second.send()

    rows = await first.rows(type="ORDER_PLACED")
    assert sorted(r["channel"] for r in rows) == ["email", "inApp"]
    assert [r.title for r in first.email.sent] == ["Welcome to the shop", "Order o1 received"]
    assert second.email.sent == []
    sent = [e for e in first.emitted(NotificationSent) if e.template == "ORDER_PLACED"]
    assert len(sent) == 1 and second.emitted(NotificationSent) == []

    await first.send()  # another pass of the worker changes nothing either
    assert len(first.email.sent) == 2 and len(first.emitted(NotificationSent)) == 2


async def test_role_messages_reach_every_manager_or_admin_but_not_deleted_ones(
    in_memory: InMemoryNotify,
) -> None:
    n = in_memory
    await n.handle(
        registered("m1", "Manager"),
        registered("m2", "Manager"),
        registered("a1", "Admin"),
        registered("c1"),
        wrap(UserDeleted(user_id="m2", role="Manager")),
    )
    await n.handle(
        wrap(OrderApprovalRequired(order_id="o1", user_id="c1", reason="fraud", total_cents=9)),
        wrap(StockLow(product_id="p1", name="Lamp", available=1, threshold=5)),
    )
    await n.send()

    approval = await n.rows(type="APPROVAL_REQUIRED")
    assert sorted((r["user_id"], r["channel"]) for r in approval) == [
        ("m1", "email"),
        ("m1", "inApp"),
    ]
    assert {r["user_id"] for r in await n.rows(type="LOW_STOCK")} == {"a1"}
    links = [r.body for r in n.email.sent if r.title == "Order o1 needs approval"]
    assert len(links) == 1 and "https://shop.test/api/v1/orders/o1" in links[0]
    assert ("a1@example.com", "Low stock: Lamp") in subjects(n.email)


async def test_a_partial_reservation_asks_only_a_customer_who_wants_to_decide(
    in_memory: InMemoryNotify,
) -> None:
    n = in_memory
    await n.handle(
        registered("asks"),
        registered("accepts"),
        profile("accepts", complete=True, preferences={"partial_fulfillment": "accept"}),
    )

    def partial(order_id: str, user_id: str) -> Envelope[Any]:
        return wrap(
            StockPartiallyReserved(
                order_id=order_id,
                user_id=user_id,
                reserved=(Line(product_id="p1", quantity=1),),
                missing=(MissingLine(product_id="p2", requested=2, available=0),),
                expires_at=n.clock() + timedelta(minutes=15),
            ),
            order_id,
        )

    await n.handle(partial("o1", "asks"), partial("o2", "accepts"))
    rows = await n.rows(type="ORDER_DECISION_REQUIRED")
    assert {r["user_id"] for r in rows} == {"asks"}
    assert "https://shop.test/api/v1/orders/o1/decision" in rows[0]["body"]


async def test_an_incomplete_profile_is_nudged_once_ever(in_memory: InMemoryNotify) -> None:
    n = in_memory
    await n.handle(registered("c1"), profile("c1", complete=False))
    nudges = await n.rows(type="PROFILE_INCOMPLETE")
    # Held (hidden, pending) until the worker finds the profile still incomplete.
    assert sorted((r["channel"], r["status"], r["hidden"]) for r in nudges) == [
        ("email", "pending", True),
        ("inApp", "pending", True),
    ]
    await n.send()
    nudges = await n.rows(type="PROFILE_INCOMPLETE")
    assert [(r["status"], r["hidden"]) for r in nudges] == [("sent", False)] * 2
    # Later sightings of the same incomplete profile: the nudge went out already.
    await n.handle(profile("c1", complete=False), wrap(UserLoggedIn(user_id="c1")))
    await n.send()
    assert len(await n.rows(type="PROFILE_INCOMPLETE")) == 2
    assert [r.title for r in n.email.sent].count("Complete your profile") == 1
    templates = [e.template for e in n.emitted(NotificationSent)]
    assert templates == ["WELCOME", "PROFILE_INCOMPLETE"]  # the email's; none for in-app


async def test_a_held_nudge_is_dropped_when_the_profile_completes_meanwhile(
    in_memory: InMemoryNotify,
) -> None:
    n = in_memory
    await n.handle(registered("c1"))
    await n.send()
    # The login is handled before the update that completed the profile (events race).
    await n.handle(wrap(UserLoggedIn(user_id="c1")))
    assert len(await n.rows(type="PROFILE_INCOMPLETE")) == 2
    page = await commands.inbox(
        n.deps, Principal("c1", "Customer"), user_id=None, limit=20, cursor=None
    )
    assert {r["type"] for r in page.rows} == {"WELCOME"}  # held: not shown
    await n.handle(profile("c1", complete=True))
    await n.send()

    assert {r["status"] for r in await n.rows(type="PROFILE_INCOMPLETE")} == {"skipped"}
    assert [r.title for r in n.email.sent] == ["Welcome to the shop"]
    assert [e.template for e in n.emitted(NotificationSent)] == ["WELCOME"]
    page = await commands.inbox(
        n.deps, Principal("c1", "Customer"), user_id=None, limit=20, cursor=None
    )
    assert {r["type"] for r in page.rows} == {"WELCOME"}


async def test_a_login_that_saw_a_complete_profile_never_nudges(in_memory: InMemoryNotify) -> None:
    n = in_memory
    await n.handle(registered("c1"), wrap(UserLoggedIn(user_id="c1", is_profile_complete=True)))
    assert await n.rows(type="PROFILE_INCOMPLETE") == []
    await n.handle(wrap(UserLoggedIn(user_id="c1", is_profile_complete=False)))
    assert len(await n.rows(type="PROFILE_INCOMPLETE")) == 2


async def test_a_failing_channel_is_retried_then_failed_with_one_event(
    in_memory: InMemoryNotify,
) -> None:
    n = in_memory
    await n.handle(
        registered("c1"),
        profile(
            "c1",
            complete=True,
            phone="+15550001",
            preferences={"notification_channels": ("email", "sms")},
        ),
    )
    n.sms.fail_next(100)
    await n.handle(confirmed("o1", "c1"))
    await n.send()  # the retries are due at once here (delivery_retry_delays 0)

    [sms] = await n.rows(type="ORDER_CONFIRMED", channel="sms")
    assert sms["status"] == "failed" and sms["attempts"] == 3  # delivery_max_attempts
    assert "injected" in sms["last_error"] and n.sms.calls == 3
    [failed] = n.emitted(NotificationFailed)
    assert (failed.channel, failed.template, failed.notification_id) == (
        "sms",
        "ORDER_CONFIRMED",
        sms["_id"],
    )
    # The other channels went out regardless.
    assert ("c1@example.com", "Order o1 confirmed") in subjects(n.email)
    await n.send()
    assert len(n.emitted(NotificationFailed)) == 1 and n.sms.calls == 3


async def test_rows_of_a_process_that_died_are_sent_once_by_another_after_their_lease(
    start_in_memory: StartInMemory,
) -> None:
    dead = await start_in_memory()
    survivor = await start_in_memory()
    await dead.handle(registered("c1"))  # its worker never runs: the process died
    # The poll is driven directly: on its own timer two passes a millisecond apart may both
    # skip it (a 1 ms interval made this test flaky on a fast run).
    await survivor.poll()
    assert survivor.email.sent == []  # the rows are the dead worker's until their lease ends

    survivor.clock.advance(survivor.deps.settings.delivery_lease_seconds + 1)
    await survivor.poll()
    await survivor.poll()
    assert subjects(survivor.email) == [("c1@example.com", "Welcome to the shop")]
    [row] = await survivor.rows(channel="email")
    assert row["status"] == "sent" and row["lease_owner"] == survivor.deps.worker.owner
    assert [e.notification_id for e in survivor.emitted(NotificationSent)] == [row["_id"]]
    assert dead.email.sent == []


async def test_the_inbox_is_own_only_and_a_read_receipt_is_set_once(
    in_memory: InMemoryNotify,
) -> None:
    n = in_memory
    for envelope in (registered("c1"), placed("o1", "c1"), registered("m1", "Manager")):
        await n.handle(envelope)
        n.clock.advance(1)
    customer, manager, admin = (
        Principal("c1", "Customer"),
        Principal("m1", "Manager"),
        Principal("a1", "Admin"),
    )

    first = await commands.inbox(n.deps, customer, user_id=None, limit=3, cursor=None)
    # Newest first: the order's rows (in-app, email), then the welcome's.
    assert [r["type"] for r in first.rows] == ["ORDER_PLACED", "ORDER_PLACED", "WELCOME"]
    assert first.next_cursor is not None
    rest = await commands.inbox(n.deps, admin, user_id="c1", limit=3, cursor=first.next_cursor)
    assert [r["type"] for r in rest.rows] == ["WELCOME"] and rest.next_cursor is None
    with pytest.raises(Problem) as forbidden:
        await commands.inbox(n.deps, manager, user_id="c1", limit=3, cursor=None)
    assert forbidden.value.status == 403 and forbidden.value.code == "FORBIDDEN"

    in_app = next(r for r in first.rows if r["channel"] == "inApp")
    with pytest.raises(Problem) as not_found:
        await commands.mark_read(n.deps, manager, in_app["_id"])
    assert not_found.value.status == 404 and not_found.value.code == "NOTIFICATION_NOT_FOUND"
    read = await commands.mark_read(n.deps, customer, in_app["_id"])
    assert read["read_at"] == n.clock()
    n.clock.advance(60)
    again = await commands.mark_read(n.deps, customer, in_app["_id"])
    assert again["read_at"] == read["read_at"]


def after_confirmation(order_id: str, user_id: str, at: datetime) -> list[Envelope[Any]]:
    """A parcel shipped and delivered, a return approved, received and refunded, another one
    rejected, and a refund that is no return's."""
    lines = (Line(product_id="p1", quantity=1),)
    ids = {"order_id": order_id, "user_id": user_id}
    events: list[Event] = [
        ShipmentDispatched(
            shipment_id="s1",
            carrier="SandboxPost",
            tracking_number="SBX-42",
            shipped_at=at,
            **ids,
        ),
        ShipmentDelivered(shipment_id="s1", delivered_at=at, **ids),
        ReturnRequested(return_id="r1", lines=lines, reason="too big", refund_cents=500, **ids),
        ReturnApproved(return_id="r1", decided_by="m1", **ids),
        PaymentRefunded(payment_id="pay1", amount_cents=500, return_id="r1", **ids),
        ReturnRequested(
            return_id="r2", lines=lines, reason="changed mind", refund_cents=500, **ids
        ),
        ReturnRejected(return_id="r2", decided_by="m1", reason="opened", **ids),
        PaymentRefunded(payment_id="pay1", amount_cents=100, reason="goodwill", **ids),
    ]
    return [wrap(event, order_id) for event in events]


async def test_fulfilment_and_returns_reach_people_on_their_channels_once(
    in_memory: InMemoryNotify,
) -> None:
    n = in_memory
    sms = {"notification_channels": ("email", "sms")}
    await n.handle(
        registered("c1"),
        profile("c1", complete=True, phone="+15550001", preferences=sms),
        registered("m1", "Manager"),
        registered("m2", "Manager"),
        registered("a1", "Admin"),
    )
    await n.send()
    before = len(n.email.sent)
    envelopes = after_confirmation("o1", "c1", n.clock())
    await n.handle(*envelopes)
    await n.send()

    def rows_of(rows: list[Any]) -> list[tuple[str, str, str]]:
        return sorted((r["type"], r["user_id"], r["channel"]) for r in rows)

    customer = ("ORDER_SHIPPED", "ORDER_DELIVERED", "RETURN_APPROVED", "RETURN_REJECTED")
    expected = sorted(
        [(t, "c1", ch) for t in (*customer, "REFUND_ISSUED") for ch in ("inApp", "email", "sms")]
        + [("RETURN_REQUESTED", m, ch) for m in ("m1", "m2") for ch in ("inApp", "email")] * 2
    )
    fulfilment = {"$in": [*customer, "REFUND_ISSUED", "RETURN_REQUESTED"]}
    first = await n.rows(type=fulfilment)
    assert rows_of(first) == expected  # two returns requested; the goodwill refund: nothing
    assert {(r["entity_type"], r["entity_id"]) for r in first} == {("order", "o1")}
    assert {r["status"] for r in first} == {"sent"}
    [shipped] = [r for r in first if r["type"] == "ORDER_SHIPPED" and r["channel"] == "sms"]
    assert "SandboxPost" in shipped["body"] and "SBX-42" in shipped["body"]
    [refund] = [r.body for r in n.email.sent if r.title == "Refund for order o1 issued"]
    assert "5.00 USD" in refund
    [rejected] = [r.body for r in n.sms.sent if r.title == "Return for order o1 rejected"]
    assert "opened" in rejected
    requested = [r for r in n.email.sent if r.title == "Return requested for order o1"]
    assert sorted(r.to for r in requested) == ["m1@example.com"] * 2 + ["m2@example.com"] * 2
    sent_by_provider = (len(n.email.sent), len(n.sms.sent))
    assert sent_by_provider == (before + 5 + 4, 5)
    outcomes = len(n.emitted(NotificationSent))

    # Delivered again, and re-emitted by their producers under new event ids: nothing new.
    again = [wrap(e.data, e.correlation_id) for e in envelopes]
    await n.handle(*envelopes, *again)
    await n.send()
    assert rows_of(await n.rows(type=fulfilment)) == expected
    assert (len(n.email.sent), len(n.sms.sent)) == sent_by_provider
    assert len(n.emitted(NotificationSent)) == outcomes
