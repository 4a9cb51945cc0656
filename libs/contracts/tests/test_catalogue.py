"""The catalogue is complete and consistent: consumers, sources, docstrings, names."""

from __future__ import annotations

import re

import pytest

from contracts import all_events, routing_key_for
from contracts.catalogue import CONSUMERS, PRODUCERS

pytestmark = pytest.mark.unit

EVENTS = all_events()


def test_every_event_has_consumers_and_no_entry_is_stale() -> None:
    assert set(CONSUMERS) == set(EVENTS)


@pytest.mark.parametrize("event_type", sorted(CONSUMERS))
def test_consumers_are_services_and_analytics_hears_all_but_commands(event_type: str) -> None:
    consumers = CONSUMERS[event_type]
    assert set(consumers) <= set(PRODUCERS)
    assert len(set(consumers)) == len(consumers)
    # PaymentRequested is order's instruction to payment: analytics records its outcome.
    assert ("analytics" in consumers) is (event_type != "PaymentRequested")


def test_events_md_is_covered() -> None:
    events_md = {
        "UserRegistered", "UserLoggedIn", "UserProfileUpdated", "UserRoleChanged", "UserDeleted",
        "ProductCreated", "ProductUpdated", "ProductDeleted", "StockReserved",
        "StockPartiallyReserved", "StockUnavailable", "StockReleased", "StockCommitted",
        "StockCommitFailed", "StockLow", "OrderPlaced", "OrderApprovalRequired",
        "PaymentRequested", "PaymentAuthorized", "PaymentFailed", "PaymentReviewRequired",
        "PaymentCaptured", "PaymentVoided", "PaymentRefunded", "OrderPaid", "OrderConfirmed",
        "OrderRejected", "OrderCancelled", "PromotionGranted", "PromotionRedeemed",
        "NotificationSent", "NotificationFailed", "AccessDenied", "PaymentRefundFailed",
        "ShipmentCreated", "ShipmentDispatched", "ShipmentDelivered", "ReturnRequested",
        "ReturnApproved", "ReturnRejected", "ReturnReceived", "StockReturned",
    }  # fmt: skip
    audit = {"StockAdjusted", "OrderApproved", "DeadLettersRedriven"}
    assert set(EVENTS) == events_md | audit


@pytest.mark.parametrize("event_type", sorted(EVENTS))
def test_event_is_well_formed(event_type: str) -> None:
    model = EVENTS[event_type]
    assert model.TYPE == event_type
    assert model.SOURCE in PRODUCERS
    assert model.__module__ == f"contracts.{model.SOURCE}"
    assert model.ROUTING_KEY == routing_key_for(event_type)
    assert model.__doc__ and model.__doc__.strip() and "\n" not in model.__doc__.strip()
    assert model.model_config.get("frozen") is True
    for name in model.model_fields:
        assert re.fullmatch(r"[a-z][a-z0-9_]*", name), name


def test_routing_keys_are_unique() -> None:
    keys = [model.ROUTING_KEY for model in EVENTS.values()]
    assert len(keys) == len(set(keys))


def test_payment_methods_carry_no_secrets() -> None:
    from contracts.types import PaymentMethodSummary

    assert set(PaymentMethodSummary.model_fields) == {
        "payment_method_id",
        "type",
        "brand",
        "last4",
        "is_default",
    }
