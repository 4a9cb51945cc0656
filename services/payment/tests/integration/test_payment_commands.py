"""Payment's commands and handlers on the in-memory bus and the embedded store: what the order
service and the customer see (events, statuses, money held and captured) for each card, the
fraud review, customer retries, duplicates, capture, void, and runs whose write was lost."""

from __future__ import annotations

import secrets

import pytest
from payment_service import commands
from payment_service.commands import Step
from payment_service.handlers import HANDLERS
from payment_service.provider import SANDBOX_LEDGER

from contracts.order import PaymentRequested
from contracts.payment import (
    PaymentAuthorized,
    PaymentCaptured,
    PaymentFailed,
    PaymentReviewRequired,
    PaymentVoided,
)
from kit.errors import Problem

from .conftest import (
    AMOUNT,
    T0,
    Payments,
    Writes,
    cancelled,
    confirmed,
    method_id,
    requested,
)

pytestmark = pytest.mark.integration


def order_id() -> str:
    return f"o-{secrets.token_hex(4)}"


async def keys(pay: Payments, order: str) -> list[str]:
    """The idempotency keys of the processor's authorizations carried out for `order`."""
    return [c.key for c in await pay.provider.charges(order)]


async def test_an_ok_card_is_authorized_once(payments: Payments) -> None:
    order = order_id()
    await payments.send(requested(order, "pm_card_ok"))
    (authorized,) = payments.emitted(PaymentAuthorized, order)
    assert (authorized.amount_cents, authorized.attempts, authorized.fraud_flag) == (
        AMOUNT,
        1,
        False,
    )
    assert await keys(payments, order) == [f"{order}:1"]
    payment = await payments.payment(order)
    assert payment["status"] == "authorized" and payment["_id"] == authorized.payment_id
    assert payment["fraud"] == {"score": 0.0, "reasons": [], "flagged": False}
    # The clock of the wiring dates the payment and its call.
    assert payment["created_at"] == T0 and payment["attempts"][0]["at"] == T0


async def test_a_declined_card_fails_for_good(payments: Payments) -> None:
    order = order_id()
    await payments.send(requested(order, "pm_card_declined"))
    assert payments.types(order) == ["PaymentFailed"]
    (failed,) = payments.emitted(PaymentFailed, order)
    assert (failed.reason, failed.attempts, failed.retryable) == ("DECLINED", 1, False)
    assert (await payments.payment(order))["status"] == "failed"
    assert await payments.provider.charges(order) == []


async def test_transient_errors_are_retried_each_call_under_its_own_numbered_key(
    payments: Payments,
) -> None:
    order = order_id()
    await payments.send(requested(order, "pm_card_flaky"))
    (authorized,) = payments.emitted(PaymentAuthorized, order)
    assert authorized.attempts == 3
    payment = await payments.payment(order)
    assert [(a["idempotency_key"], a["outcome"]) for a in payment["attempts"]] == [
        (f"{order}:1", "transient"),
        (f"{order}:2", "transient"),
        (f"{order}:3", "authorized"),
    ]
    assert await keys(payments, order) == [f"{order}:3"]


async def test_an_unavailable_processor_fails_retryably_after_the_budget(
    payments: Payments,
) -> None:
    order = order_id()
    await payments.send(requested(order, "pm_card_unavailable"))
    (failed,) = payments.emitted(PaymentFailed, order)
    assert (failed.reason, failed.attempts, failed.retryable) == ("PROVIDER_UNAVAILABLE", 4, True)
    assert payments.provider.calls == payments.deps.settings.max_attempts == 4


async def test_an_unknown_payment_method_fails_without_calling_the_processor(
    payments: Payments,
) -> None:
    order = order_id()
    await payments.send(requested(order, "pm_card_ok", method="pm-not-mine"))
    (failed,) = payments.emitted(PaymentFailed, order)
    assert (failed.reason, failed.retryable) == ("PAYMENT_METHOD_NOT_FOUND", True)
    assert payments.provider.calls == 0


async def test_a_fraud_flag_waits_for_review_then_the_reviewed_charge_is_authorized(
    payments: Payments,
) -> None:
    order = order_id()
    await payments.send(requested(order, "pm_card_fraud"))
    (review,) = payments.emitted(PaymentReviewRequired, order)
    assert review.fraud_score == 1.0 and review.reasons == ("TEST_CARD_FRAUD",)
    assert payments.provider.calls == 0
    payment = await payments.payment(order)
    assert payment["status"] == "pending" and payment["fraud"]["flagged"] is True
    assert [(f["payment_method_id"], f["amount_cents"]) for f in payment["flagged_charges"]] == [
        (method_id("pm_card_fraud"), AMOUNT)
    ]
    # The Manager passed the review: the same card and amount skip the rules.
    await payments.send(requested(order, "pm_card_fraud", review_passed=True))
    (authorized,) = payments.emitted(PaymentAuthorized, order)
    assert authorized.fraud_flag is True and authorized.payment_id == payment["_id"]
    assert len(await payments.provider.charges(order)) == 1


async def test_a_passed_review_clears_nothing_it_did_not_review(payments: Payments) -> None:
    order = order_id()
    # Nothing flagged yet: a passed review is scored like any other request.
    await payments.send(requested(order, "pm_card_fraud", review_passed=True))
    # Flagged for AMOUNT; a request for another amount is scored (and flagged) again.
    await payments.send(requested(order, "pm_card_fraud", attempt=2, review_passed=True, amount=9))
    assert payments.types(order) == ["PaymentReviewRequired", "PaymentReviewRequired"]
    assert payments.provider.calls == 0


async def test_a_customer_retry_after_a_decline_keeps_the_payment_and_the_count(
    payments: Payments,
) -> None:
    order = order_id()
    await payments.send(requested(order, "pm_card_declined"))
    await payments.send(requested(order, "pm_card_ok", attempt=2))
    (failed,) = payments.emitted(PaymentFailed, order)
    (authorized,) = payments.emitted(PaymentAuthorized, order)
    assert authorized.payment_id == failed.payment_id and authorized.attempts == 2
    assert await keys(payments, order) == [f"{order}:2"]
    assert (await payments.payment(order))["status"] == "authorized"


async def test_a_request_handled_twice_or_resent_charges_once_and_emits_once(
    payments: Payments,
) -> None:
    order = order_id()
    envelope = requested(order, "pm_card_ok")
    step = Step(envelope, "inbox-1")
    assert await commands.authorize(payments.deps, step) is True
    # The same delivery again (a redelivery the bus's inbox did not stop): a duplicate.
    assert await commands.authorize(payments.deps, step) is False
    # The order service re-sending the attempt (a new event): nothing new, no call.
    assert await commands.authorize(payments.deps, Step(requested(order, "pm_card_ok"), "i2"))
    assert payments.types(order) == ["PaymentAuthorized"]
    assert payments.provider.calls == 1
    assert [a["idempotency_key"] for a in (await payments.payment(order))["attempts"]] == [
        f"{order}:1"
    ]


async def test_capture_happens_exactly_once_under_duplicate_confirmations(
    payments: Payments,
) -> None:
    order = order_id()
    await payments.send(requested(order, "pm_card_ok"))
    confirmation = Step(confirmed(order), "inbox-c")
    assert await commands.capture(payments.deps, confirmation) is True
    assert await commands.capture(payments.deps, confirmation) is False  # redelivered
    await payments.send(confirmed(order))  # a second OrderConfirmed
    (captured,) = payments.emitted(PaymentCaptured, order)
    assert captured.amount_cents == AMOUNT
    assert len(await payments.provider.operations(order, "capture")) == 1
    payment = await payments.payment(order)
    assert (payment["status"], payment["captured_cents"]) == ("captured", AMOUNT)


async def test_capture_takes_the_confirmed_total_not_the_whole_hold(payments: Payments) -> None:
    order = order_id()
    await payments.send(requested(order, "pm_card_ok"), confirmed(order, total=AMOUNT - 500))
    (captured,) = payments.emitted(PaymentCaptured, order)
    assert captured.amount_cents == AMOUNT - 500
    (capture,) = await payments.provider.operations(order, "capture")
    assert capture.amount_cents == AMOUNT - 500


async def test_a_cancel_after_authorization_voids_and_nothing_is_captured(
    payments: Payments,
) -> None:
    order = order_id()
    await payments.send(requested(order, "pm_card_ok"), cancelled(order))
    (voided,) = payments.emitted(PaymentVoided, order)
    assert (voided.amount_cents, voided.reason) == (AMOUNT, "CUSTOMER")
    await payments.send(confirmed(order))  # must not capture a voided hold
    assert payments.types(order) == ["PaymentAuthorized", "PaymentVoided"]
    assert await payments.provider.operations(order, "capture") == []
    assert len(await payments.provider.operations(order, "void")) == 1
    payment = await payments.payment(order)
    assert (payment["status"], payment["closed"]) == ("voided", True)


async def test_a_request_after_the_order_ended_is_never_charged(payments: Payments) -> None:
    order = order_id()
    await payments.send(cancelled(order))
    await payments.send(requested(order, "pm_card_ok"))
    assert payments.types(order) == []
    assert payments.provider.calls == 0
    assert (await payments.payment(order))["closed"] is True


async def test_an_authorization_granted_while_the_order_ended_is_voided_at_once(
    payments: Payments,
) -> None:
    """The cancellation commits while payment is calling: the authorization's write finds the
    payment created meanwhile (Conflict); its rerun remembers the hold and voids it."""
    order = order_id()
    request = requested(order, "pm_card_ok")
    cancel = cancelled(order)

    async def cancel_meanwhile() -> None:
        await payments.bus.dispatch(cancel)

    payments.provider.during = cancel_meanwhile
    with pytest.raises(Exception, match="created concurrently"):
        await payments.bus.dispatch(request)
    await payments.bus.dispatch(request)  # redelivered
    assert payments.types(order) == ["PaymentAuthorized", "PaymentVoided"]
    assert payments.emitted(PaymentVoided, order)[0].reason == "ORDER_CLOSED"
    assert await keys(payments, order) == [f"{order}:1"]  # the rerun did not call again
    assert len(await payments.provider.operations(order, "void")) == 1
    assert len(payments.deps.inflight) == 0
    await payments.send(confirmed(order))
    assert await payments.provider.operations(order, "capture") == []


async def test_a_run_that_lost_the_processors_answer_calls_again_under_the_same_key(
    payments: Payments,
) -> None:
    order = order_id()
    request = requested(order, "pm_card_ok")
    payments.provider.lose_answer = True
    with pytest.raises(ConnectionResetError):
        await payments.bus.dispatch(request)
    assert payments.types(order) == [] and await payments.deps.store.payment_for(order) is None
    await payments.bus.dispatch(request)  # redelivered
    (authorized,) = payments.emitted(PaymentAuthorized, order)
    assert authorized.attempts == 1
    # Asked twice under one key, the processor charged once.
    assert payments.provider.calls == 2 and await keys(payments, order) == [f"{order}:1"]


async def test_each_step_is_one_write_of_the_payment(payments: Payments, writes: Writes) -> None:
    writes.watch(payments.deps.db.name)
    order = order_id()
    await payments.send(requested(order, "pm_card_ok"), confirmed(order))
    assert payments.types(order) == ["PaymentAuthorized", "PaymentCaptured"]
    # The authorization inserts the payment, the capture updates it; no inbox or outbox row.
    assert writes.of("payments") == {"insert": 1, "update": 1}
    # The sandbox processor (sharing the database) records the hold and its capture: one
    # document, inserted then updated; nothing else is written.
    assert writes.of(SANDBOX_LEDGER) == {"insert": 1, "update": 1}
    assert {coll for coll, _ in writes.counts} == {"payments", SANDBOX_LEDGER}


async def test_the_lookup_shows_every_call_and_404s_an_unknown_order(payments: Payments) -> None:
    order = order_id()
    await payments.send(requested(order, "pm_card_flaky"))
    payment = await commands.payment_of(payments.deps, order)
    assert [a["outcome"] for a in payment["attempts"]] == ["transient", "transient", "authorized"]
    with pytest.raises(Problem) as missing:
        await commands.payment_of(payments.deps, "o-none")
    assert (missing.value.status, missing.value.code) == (404, "PAYMENT_NOT_FOUND")


def test_the_table_subscribes_the_saga_events_it_handles() -> None:
    assert {cls.__name__ for cls in HANDLERS} == {
        "PaymentRequested",
        "OrderConfirmed",
        "OrderCancelled",
        "OrderRejected",
        "ReturnReceived",
    }
    assert HANDLERS[PaymentRequested][0].__name__ == "authorize_payment"
