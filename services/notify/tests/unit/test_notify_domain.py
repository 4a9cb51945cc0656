"""The notify service's pure rules: templates, channels, dedupe keys."""

from __future__ import annotations

import pytest
from notify_service.domain import (
    Contact,
    Draft,
    channels_for,
    deliveries,
    drafts_for,
    fact_scope,
    profile_nudge,
    retry_delay,
)
from notify_service.handlers import HANDLERS, NOTIFYING_EVENTS

from contracts import Envelope, Event
from contracts.analytics import PromotionGranted
from contracts.inventory import StockLow, StockPartiallyReserved
from contracts.order import (
    OrderApprovalRequired,
    OrderCancelled,
    OrderConfirmed,
    OrderPlaced,
    OrderRejected,
    ReturnApproved,
    ReturnRejected,
    ReturnRequested,
)
from contracts.payment import PaymentFailed, PaymentRefunded
from contracts.shipping import ShipmentDelivered, ShipmentDispatched
from contracts.testing import sample
from contracts.types import Line
from contracts.user import UserRegistered

pytestmark = pytest.mark.unit

EXPECTED = {
    UserRegistered: ("WELCOME", None),
    OrderPlaced: ("ORDER_PLACED", None),
    StockPartiallyReserved: ("ORDER_DECISION_REQUIRED", None),
    OrderConfirmed: ("ORDER_CONFIRMED", None),
    OrderRejected: ("ORDER_REJECTED", None),
    OrderCancelled: ("ORDER_CANCELLED", None),
    PaymentFailed: ("PAYMENT_FAILED", None),
    PromotionGranted: ("PROMOTION_GRANTED", None),
    OrderApprovalRequired: ("APPROVAL_REQUIRED", "Manager"),
    StockLow: ("LOW_STOCK", "Admin"),
    ShipmentDispatched: ("ORDER_SHIPPED", None),
    ShipmentDelivered: ("ORDER_DELIVERED", None),
    ReturnRequested: ("RETURN_REQUESTED", "Manager"),
    ReturnApproved: ("RETURN_APPROVED", None),
    ReturnRejected: ("RETURN_REJECTED", None),
    PaymentRefunded: ("REFUND_ISSUED", None),
}


@pytest.mark.parametrize("event_type", list(EXPECTED), ids=lambda t: t.__name__)
def test_each_event_has_its_template(event_type: type) -> None:
    envelope = Envelope.wrap(sample(event_type), correlation_id="c")
    [draft] = drafts_for(envelope, base_url="https://shop", customer=None)
    expected_type, role = EXPECTED[event_type]
    assert draft.type == expected_type
    assert draft.role == role
    assert (draft.user_id is None) == (role is not None)
    assert draft.title and draft.body


def test_every_notifying_event_is_subscribed() -> None:
    assert set(NOTIFYING_EVENTS) == set(EXPECTED)
    assert set(EXPECTED) <= set(HANDLERS)


def test_rejection_lists_alternatives_and_payment_failure_links_retry() -> None:
    rejected = Envelope.wrap(sample(OrderRejected, alternatives=("p9", "p8")), correlation_id="c")
    [draft] = drafts_for(rejected, base_url="https://shop", customer=None)
    assert "p9, p8" in draft.body
    failed = Envelope.wrap(sample(PaymentFailed, order_id="o1"), correlation_id="c")
    [draft] = drafts_for(failed, base_url="https://shop", customer=None)
    assert "https://shop/api/v1/orders/o1/payment/retry" in draft.body


def _draft(event: Event) -> Draft:
    envelope = Envelope.wrap(event, correlation_id="c")
    [draft] = drafts_for(envelope, base_url="https://shop", customer=None)
    return draft


def test_fulfilment_messages_carry_their_facts_and_are_about_the_order() -> None:
    shipped = _draft(
        sample(
            ShipmentDispatched,
            shipment_id="s1",
            order_id="o1",
            user_id="u1",
            carrier="SandboxPost",
            tracking_number="SBX-123",
        )
    )
    assert "SandboxPost" in shipped.body and "SBX-123" in shipped.body
    requested = _draft(
        sample(
            ReturnRequested,
            return_id="r1",
            order_id="o1",
            lines=(Line(product_id="p1", quantity=1), Line(product_id="p2", quantity=2)),
            reason="too small",
            refund_cents=1250,
            currency="USD",
        )
    )
    assert "3 unit(s)" in requested.body and "too small" in requested.body
    assert "12.50 USD" in requested.body
    assert "https://shop/api/v1/orders/o1/returns" in requested.body
    rejected = _draft(sample(ReturnRejected, return_id="r1", order_id="o1", reason="worn"))
    assert "worn" in rejected.body
    approved = _draft(sample(ReturnApproved, return_id="r1", order_id="o1", reason="ok"))
    assert "ok" in approved.body
    refunded = _draft(
        sample(PaymentRefunded, order_id="o1", return_id="r1", amount_cents=999, currency="EUR")
    )
    assert "9.99 EUR" in refunded.body
    drafts = [shipped, requested, rejected, approved, refunded]
    assert {(d.entity_type, d.entity_id) for d in drafts} == {("order", "o1")}


def test_fulfilment_messages_are_scoped_by_their_shipment_or_return() -> None:
    """Once per (type, shipment or return), whatever event carries it: a re-emitted event with a
    new id makes the same keys."""
    shipped = sample(ShipmentDispatched, shipment_id="s1")
    keys = set()
    for _ in range(2):
        envelope = Envelope.wrap(shipped, correlation_id="c")
        [draft] = drafts_for(envelope, base_url="", customer=None)
        keys |= {d.dedupe_key for d in deliveries(draft, envelope.id, Contact("u", email="u@x"))}
    assert keys == {"ORDER_SHIPPED:s1|inApp|u", "ORDER_SHIPPED:s1|email|u"}
    delivered = Envelope.wrap(sample(ShipmentDelivered, shipment_id="s1"), correlation_id="c")
    [draft] = drafts_for(delivered, base_url="", customer=None)
    assert draft.dedupe_scope == fact_scope("ORDER_DELIVERED", "s1") != "ORDER_SHIPPED:s1"
    refund = Envelope.wrap(sample(PaymentRefunded, return_id="r1"), correlation_id="c")
    [draft] = drafts_for(refund, base_url="", customer=None)
    assert draft.dedupe_scope == "REFUND_ISSUED:r1"


def test_a_refund_that_is_not_a_returns_notifies_nobody() -> None:
    envelope = Envelope.wrap(sample(PaymentRefunded, return_id=None), correlation_id="c")
    assert drafts_for(envelope, base_url="", customer=None) == []


def test_decision_only_when_the_customer_asked_to_decide() -> None:
    envelope = Envelope.wrap(sample(StockPartiallyReserved), correlation_id="c")
    accept = Contact("u", partial_fulfillment="accept")
    assert drafts_for(envelope, base_url="", customer=accept) == []
    ask = Contact("u", partial_fulfillment="ask")
    assert len(drafts_for(envelope, base_url="", customer=ask)) == 1


def test_channels_in_app_always_email_by_default() -> None:
    assert channels_for(Contact("u")) == ("inApp", "email")
    assert channels_for(Contact("u", channels=("sms",))) == ("inApp", "sms")
    assert channels_for(Contact("u", channels=("push", "email", "inApp"))) == (
        "inApp",
        "email",
        "push",
    )


def test_deliveries_skip_unreachable_channels_and_deleted_users() -> None:
    draft = profile_nudge("u")
    contact = Contact("u", email="u@x", channels=("email", "sms"))
    out = deliveries(draft, "event-1", contact)
    assert [d.channel for d in out] == ["inApp", "email"]  # no phone: no SMS
    assert deliveries(draft, "e", Contact("u", email="u@x", deleted=True)) == []


def test_dedupe_key_is_event_channel_recipient_and_ids_are_stable() -> None:
    contact = Contact("u", email="u@x")
    envelope = Envelope.wrap(sample(UserRegistered, user_id="u"), correlation_id="c")
    [draft] = drafts_for(envelope, base_url="", customer=None)
    first = deliveries(draft, envelope.id, contact)
    again = deliveries(draft, envelope.id, contact)
    assert [d.dedupe_key for d in first] == [f"{envelope.id}|inApp|u", f"{envelope.id}|email|u"]
    assert [d.notification_id for d in first] == [d.notification_id for d in again]
    # The nudge is scoped to the user, whatever event found the profile incomplete.
    nudges = {deliveries(profile_nudge("u"), e, contact)[0].dedupe_key for e in ("e1", "e2")}
    assert nudges == {"profile-nudge:u|inApp|u"}


def test_retry_delay_repeats_the_last() -> None:
    assert [retry_delay(n, (1.0, 5.0)) for n in (1, 2, 3, 4)] == [1.0, 5.0, 5.0, 5.0]
