"""The notify service's pure rules: templates, channels, dedupe keys."""

from __future__ import annotations

import pytest
from notify_service.domain import (
    Contact,
    channels_for,
    deliveries,
    drafts_for,
    profile_nudge,
    retry_delay,
)
from notify_service.handlers import HANDLERS, NOTIFYING_EVENTS

from contracts import Envelope
from contracts.analytics import PromotionGranted
from contracts.inventory import StockLow, StockPartiallyReserved
from contracts.order import (
    OrderApprovalRequired,
    OrderCancelled,
    OrderConfirmed,
    OrderPlaced,
    OrderRejected,
)
from contracts.payment import PaymentFailed
from contracts.testing import sample
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
