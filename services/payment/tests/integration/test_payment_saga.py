"""Payment's saga steps through the real broker: authorize (every test token), retries, fraud
review, duplicates, customer retry, capture and void."""

from __future__ import annotations

import asyncio
import secrets
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from payment_service.store import PaymentStore, new_payment

from contracts import Envelope
from contracts.order import OrderCancelled, OrderConfirmed, PaymentRequested, ReturnReceived
from contracts.types import Line, PricedLine
from devkit.bus_testing import eventually

from .conftest import Running, Start, Writes

pytestmark = pytest.mark.integration

AMOUNT = 2500


def order_id() -> str:
    return f"o-{secrets.token_hex(4)}"


def requested(
    pay: Running,
    order: str,
    method: str,
    *,
    attempt: int = 1,
    review_passed: bool = False,
    amount: int = AMOUNT,
) -> Envelope[PaymentRequested]:
    event = PaymentRequested(
        order_id=order,
        user_id=pay.user_id,
        amount_cents=amount,
        payment_method_id=pay.methods[method],
        attempt=attempt,
        review_passed=review_passed,
    )
    return Envelope.wrap(event, correlation_id=order)


def confirmed(pay: Running, order: str, total: int = AMOUNT) -> Envelope[OrderConfirmed]:
    event = OrderConfirmed(
        order_id=order,
        user_id=pay.user_id,
        items=(PricedLine(product_id="p1", quantity=1, price_cents=total),),
        total_cents=total,
        payment_method_id=pay.methods["pm_card_ok"],
    )
    return Envelope.wrap(event, correlation_id=order)


def cancelled(pay: Running, order: str) -> Envelope[OrderCancelled]:
    event = OrderCancelled(order_id=order, user_id=pay.user_id, reason="CUSTOMER")
    return Envelope.wrap(event, correlation_id=order)


async def outcome(pay: Running, order: str, *types: str) -> dict[str, Any]:
    """The first of `types` emitted for `order` (waits for it), with its type."""
    types = types or ("PaymentAuthorized", "PaymentFailed", "PaymentReviewRequired")

    def found() -> bool:
        return any(pay.emitted(t, order) for t in types)

    await eventually(found, timeout=10, what=f"{types} for {order}")
    return next({"type": t, **pay.emitted(t, order)[0]} for t in types if pay.emitted(t, order))


async def pay_with(pay: Running, method: str, **kw: Any) -> tuple[str, dict[str, Any]]:
    order = order_id()
    await pay.publish(requested(pay, order, method, **kw))
    return order, await outcome(pay, order)


async def quiet(pay: Running, seconds: float = 0.5) -> None:
    """Let redeliveries and stragglers arrive before asserting that nothing more came."""
    await asyncio.sleep(seconds)


async def test_each_test_card_ends_as_the_customer_would_expect(start_payment: Start) -> None:
    async with start_payment() as pay:
        ok, result = await pay_with(pay, "pm_card_ok")
        assert result["type"] == "PaymentAuthorized"
        assert (result["attempts"], result["amountCents"], result["fraudFlag"]) == (
            1,
            AMOUNT,
            False,
        )
        assert [c.amount_cents for c in await pay.provider.charges(ok)] == [AMOUNT]

        declined, result = await pay_with(pay, "pm_card_declined")
        assert result["type"] == "PaymentFailed"
        assert (result["reason"], result["attempts"], result["retryable"]) == ("DECLINED", 1, False)
        assert await pay.provider.charges(declined) == []

        flaky, result = await pay_with(pay, "pm_card_flaky")
        assert result["type"] == "PaymentAuthorized" and result["attempts"] == 3
        assert len(await pay.provider.charges(flaky)) == 1


async def test_unavailable_processor_fails_after_four_attempts_within_five_seconds(
    start_payment: Start,
) -> None:
    # The default backoff (not the tests' short one): 4 attempts must fit api.md's 5 s.
    async with start_payment(backoff_base_seconds=0.25, backoff_cap_seconds=1.5) as pay:
        order = order_id()
        started = time.monotonic()
        await pay.publish(requested(pay, order, "pm_card_unavailable"))
        result = await outcome(pay, order)
        took = time.monotonic() - started
        assert result["type"] == "PaymentFailed"
        assert (result["reason"], result["attempts"], result["retryable"]) == (
            "PROVIDER_UNAVAILABLE",
            4,
            True,
        )
        assert 0.3 < took < 5.0
        lookup = await pay.http.get(f"/api/v1/payments/{order}", headers=pay.headers["Admin"])
        assert lookup.status_code == 200, lookup.text
        body = lookup.json()
        assert body["status"] == "failed" and body["amountCents"] == AMOUNT
        assert [a["outcome"] for a in body["attempts"]] == ["transient"] * 4
        assert [a["number"] for a in body["attempts"]] == [1, 2, 3, 4]
        assert all(a["error"] and a["at"] for a in body["attempts"])


async def test_fraud_card_waits_for_review_then_authorizes_once_passed(
    start_payment: Start,
) -> None:
    async with start_payment() as pay:
        order, result = await pay_with(pay, "pm_card_fraud")
        assert result["type"] == "PaymentReviewRequired"
        assert result["fraudScore"] == 1.0 and "TEST_CARD_FRAUD" in result["reasons"]
        assert await pay.provider.charges(order) == []

        await pay.publish(requested(pay, order, "pm_card_fraud", review_passed=True))
        authorized = await outcome(pay, order, "PaymentAuthorized")
        assert authorized["fraudFlag"] is True and authorized["attempts"] == 1
        assert len(await pay.provider.charges(order)) == 1


async def test_a_passed_review_without_a_flag_is_still_scored(start_payment: Start) -> None:
    # What a Manager's approval of the order's value sends: nothing was flagged, nothing cleared.
    async with start_payment() as pay:
        order, result = await pay_with(pay, "pm_card_fraud", review_passed=True)
        assert result["type"] == "PaymentReviewRequired"
        assert await pay.provider.charges(order) == []


async def test_a_passed_review_clears_only_the_flagged_card_and_amount(
    start_payment: Start,
) -> None:
    async with start_payment() as pay:
        order, result = await pay_with(pay, "pm_card_fraud")
        assert result["type"] == "PaymentReviewRequired"
        # Reviewed for AMOUNT: a request for more is scored (and flagged) again.
        more = requested(pay, order, "pm_card_fraud", attempt=2, review_passed=True, amount=9_999)
        await pay.publish(more)
        await eventually(
            lambda: len(pay.emitted("PaymentReviewRequired", order)) == 2,
            what="a second review for another amount",
        )
        assert await pay.provider.charges(order) == []
        # Flagged now for 9_999; the Manager clears it; the request for exactly that passes.
        await pay.publish(
            requested(pay, order, "pm_card_fraud", attempt=3, review_passed=True, amount=9_999)
        )
        authorized = await outcome(pay, order, "PaymentAuthorized")
        assert authorized["fraudFlag"] is True
        assert [c.amount_cents for c in await pay.provider.charges(order)] == [9_999]


async def test_a_reviewed_card_stays_cleared_after_a_retry_with_another_card(
    start_payment: Start,
) -> None:
    async with start_payment() as pay:
        order, result = await pay_with(pay, "pm_card_fraud")
        assert result["type"] == "PaymentReviewRequired"
        # Approved, then another card (scored, not flagged, declined), then the reviewed card.
        await pay.publish(requested(pay, order, "pm_card_declined", attempt=2))
        failed = await outcome(pay, order, "PaymentFailed")
        assert failed["reason"] == "DECLINED"
        await pay.publish(requested(pay, order, "pm_card_fraud", attempt=3, review_passed=True))
        authorized = await outcome(pay, order, "PaymentAuthorized")
        assert authorized["fraudFlag"] is True
        assert len(pay.emitted("PaymentReviewRequired", order)) == 1
        assert len(await pay.provider.charges(order)) == 1


async def test_a_request_delivered_twice_charges_once(start_payment: Start) -> None:
    async with start_payment() as pay:
        order = order_id()
        envelope = requested(pay, order, "pm_card_ok")
        await pay.publish(envelope)
        await pay.publish(envelope)
        # The order service re-sending the same attempt (a new envelope) changes nothing either.
        await pay.publish(requested(pay, order, "pm_card_ok"))
        await outcome(pay, order)
        await quiet(pay)
        assert len(pay.emitted("PaymentAuthorized", order)) == 1
        assert len(await pay.provider.charges(order)) == 1
        # Deliveries handled at once may each ask the processor, always by the same key: one
        # charge, one recorded call.
        payment = await pay.deps.store.payment_for(order)
        assert payment is not None
        assert [a["idempotency_key"] for a in payment["attempts"]] == [f"{order}:1"]


async def test_customer_retry_with_another_card_keeps_counting(start_payment: Start) -> None:
    async with start_payment() as pay:
        order, failed = await pay_with(pay, "pm_card_declined")
        assert failed["type"] == "PaymentFailed" and failed["attempts"] == 1
        await pay.publish(requested(pay, order, "pm_card_ok", attempt=2))
        authorized = await outcome(pay, order, "PaymentAuthorized")
        assert authorized["attempts"] == 2 and authorized["paymentId"] == failed["paymentId"]
        assert len(await pay.provider.charges(order)) == 1


async def test_capture_once_on_confirmation(start_payment: Start) -> None:
    async with start_payment() as pay:
        order, _ = await pay_with(pay, "pm_card_ok")
        confirmation = confirmed(pay, order)
        await pay.publish(confirmation)
        await pay.publish(confirmation)
        await pay.publish(confirmed(pay, order))  # a second OrderConfirmed: still one capture
        captured = await outcome(pay, order, "PaymentCaptured")
        assert captured["amountCents"] == AMOUNT
        await quiet(pay)
        assert len(pay.emitted("PaymentCaptured", order)) == 1
        assert len(await pay.provider.operations(order, "capture")) == 1


async def test_capture_sends_the_confirmed_amount_to_the_provider(start_payment: Start) -> None:
    async with start_payment() as pay:
        order, _ = await pay_with(pay, "pm_card_ok")
        await pay.publish(confirmed(pay, order, total=AMOUNT - 500))  # fewer units confirmed
        captured = await outcome(pay, order, "PaymentCaptured")
        assert captured["amountCents"] == AMOUNT - 500
        # The processor took what the event says, not the whole hold.
        (capture,) = await pay.provider.operations(order, "capture")
        assert capture.amount_cents == AMOUNT - 500


async def test_the_payment_keeps_each_decision_with_its_move(start_payment: Start) -> None:
    """The authorization stores the request's amounts, fraud verdict, provider calls and
    decision with the status in one document; the capture its decision with its status."""
    async with start_payment() as pay:
        order, authorized = await pay_with(pay, "pm_card_ok")
        await pay.publish(confirmed(pay, order))
        await outcome(pay, order, "PaymentCaptured")
        db = pay.deps.db
        payment = await db.payments.find_one({"order_id": order})
        assert payment is not None
        assert (payment["status"], payment["amount_cents"], payment["captured_cents"]) == (
            "captured",
            AMOUNT,
            AMOUNT,
        )
        assert payment["payment_method_id"] == pay.methods["pm_card_ok"]
        assert payment["fraud"] == {"score": 0.0, "reasons": [], "flagged": False}
        assert "flagged_charges" not in payment
        assert set(payment["outcomes"]) == {"1", "capture"}
        assert [e["type"] for e in payment["outcomes"]["1"]["events"]] == ["PaymentAuthorized"]
        assert [e["type"] for e in payment["outcomes"]["capture"]["events"]] == ["PaymentCaptured"]
        assert authorized["paymentId"] == payment["_id"]
        assert [(a["number"], a["outcome"]) for a in payment["attempts"]] == [(1, "authorized")]
        assert payment["attempts"][0]["authorization_id"] == payment["authorization_id"]
        assert await db.attempts.count_documents({}) == 0  # the calls live on the payment
        # A database an older version indexed loses the compound unique index at start-up.
        await db.attempts.create_index(
            [("payment_id", 1), ("number", 1)], unique=True, name="number"
        )
        assert await PaymentStore(db).drop_legacy_indexes() == ["attempts.number"]
        assert "number" not in await db.attempts.index_information()


async def test_each_step_runs_once_and_writes_the_payment_once(
    start_payment: Start, writes: Writes
) -> None:
    """Authorize and capture: each step runs once and writes the payment once, its event riding
    in the payment (no inbox row, no outbox row); the relay then pulls the sent events."""
    async with start_payment() as pay:
        # The embedded server fails a transaction when any other write commits meanwhile: let
        # the set-up's writes (the customer's registration, its events marked sent) settle.
        await quiet(pay)
        writes.watch(pay.deps.db.name)
        order, authorized = await pay_with(pay, "pm_card_ok")
        assert authorized["type"] == "PaymentAuthorized"
        await quiet(pay)  # the relay has marked it sent: nothing else writes during the capture
        await pay.publish(confirmed(pay, order))
        await outcome(pay, order, "PaymentCaptured")
        await eventually(lambda: _events_pulled(pay, order), what="the events pulled")
        assert writes.of("inbox") == {}
        assert writes.of("outbox") == {}
        assert writes.of("attempts") == {}
        # The authorization's insert, the capture's update, and the relay's pulls of the two
        # published events (one batch each, or both in one).
        payments = writes.of("payments")
        assert payments["insert"] == 1 and payments["update"] in (2, 3), payments
        # One authorization and one capture reached the processor.
        assert pay.provider.calls == 2
        assert len(await pay.provider.charges(order)) == 1


async def _events_pulled(pay: Running, order: str) -> bool:
    payment = await pay.deps.db.payments.find_one({"order_id": order})
    return payment is not None and payment.get("outbox") == []


async def test_partial_fulfilment_captures_only_the_confirmed_total(start_payment: Start) -> None:
    async with start_payment() as pay:
        order, _ = await pay_with(pay, "pm_card_ok")
        await pay.publish(confirmed(pay, order, total=1000))
        captured = await outcome(pay, order, "PaymentCaptured")
        assert captured["amountCents"] == 1000


async def test_cancel_after_authorization_voids_and_nothing_is_captured(
    start_payment: Start,
) -> None:
    async with start_payment() as pay:
        order, _ = await pay_with(pay, "pm_card_ok")
        await pay.publish(cancelled(pay, order))
        voided = await outcome(pay, order, "PaymentVoided")
        assert (voided["amountCents"], voided["reason"]) == (AMOUNT, "CUSTOMER")
        await pay.publish(confirmed(pay, order))  # a confirmation must not capture a voided hold
        await quiet(pay)
        assert pay.emitted("PaymentCaptured", order) == []
        assert await pay.provider.operations(order, "capture") == []
        assert len(await pay.provider.operations(order, "void")) == 1


async def test_cancel_before_any_authorization_then_late_request(start_payment: Start) -> None:
    async with start_payment() as pay:
        order = order_id()
        await pay.publish(cancelled(pay, order))
        await quiet(pay)
        assert pay.emitted("PaymentVoided", order) == []
        # A request that arrives after the order ended is never charged.
        await pay.publish(requested(pay, order, "pm_card_ok"))
        await quiet(pay)
        assert await pay.provider.charges(order) == []
        assert pay.probe is not None and pay.emitted("PaymentAuthorized", order) == []
        assert await pay.deps.db.payments.count_documents({"order_id": order, "closed": True}) == 1


async def test_admin_lookup_is_admin_only(start_payment: Start) -> None:
    async with start_payment() as pay:
        order, _ = await pay_with(pay, "pm_card_flaky")
        body = (
            await pay.http.get(f"/api/v1/payments/{order}", headers=pay.headers["Admin"])
        ).json()
        assert body["status"] == "authorized"
        assert [a["outcome"] for a in body["attempts"]] == ["transient", "transient", "authorized"]
        assert body["fraud"]["flagged"] is False
        for role in ("Customer", "Manager"):
            denied = await pay.http.get(f"/api/v1/payments/{order}", headers=pay.headers[role])
            assert denied.status_code == 403
        missing = await pay.http.get("/api/v1/payments/o-none", headers=pay.headers["Admin"])
        assert (missing.status_code, missing.json()["code"]) == (404, "PAYMENT_NOT_FOUND")


async def test_a_payment_an_older_version_stored_keeps_its_calls(start_payment: Start) -> None:
    """Attempts an older version kept in their own collection still count and still show, and
    the payment's next write carries them over."""
    async with start_payment() as pay:
        order = order_id()
        db = pay.deps.db
        legacy = new_payment("pay-legacy", order, pay.user_id, datetime.now(UTC))
        del legacy["attempts"]
        legacy.update(status="failed", amount_cents=AMOUNT, outcomes={})
        await db.payments.insert_one(legacy)
        await db.attempts.insert_one(
            {
                "_id": "pay-legacy:1",
                "payment_id": "pay-legacy",
                "number": 1,
                "request": 1,
                "payment_method_id": pay.methods["pm_card_declined"],
                "idempotency_key": f"{order}:1",
                "at": datetime.now(UTC),
                "outcome": "declined",
                "error": "card declined",
            }
        )
        await pay.publish(requested(pay, order, "pm_card_ok", attempt=2))
        authorized = await outcome(pay, order, "PaymentAuthorized")
        assert (authorized["attempts"], authorized["paymentId"]) == (2, "pay-legacy")
        assert [c.key for c in await pay.provider.charges(order)] == [f"{order}:2"]
        body = (
            await pay.http.get(f"/api/v1/payments/{order}", headers=pay.headers["Admin"])
        ).json()
        assert [(a["number"], a["outcome"]) for a in body["attempts"]] == [
            (1, "declined"),
            (2, "authorized"),
        ]
        payment = await PaymentStore(db).payment_for(order)
        assert payment is not None and [a["number"] for a in payment["attempts"]] == [1, 2]


async def test_authorization_that_completes_after_the_cancel_is_voided(
    start_payment: Start,
) -> None:
    async with start_payment(backoff_base_seconds=0.4, backoff_cap_seconds=0.8) as pay:
        order = order_id()
        await pay.publish(requested(pay, order, "pm_card_flaky"))

        # The processor answered the first call (transient): payment waits to call again.
        await eventually(lambda: pay.provider.calls >= 1, timeout=5)
        # Arrives while payment waits to retry. On the embedded server the cancellation's
        # commit then fails the authorization's; the rerun, finding the order ended, voids the
        # hold its first run obtained (payment_service.inflight).
        await pay.publish(cancelled(pay, order))
        voided = await outcome(pay, order, "PaymentVoided")
        assert voided["reason"] == "ORDER_CLOSED" and voided["amountCents"] == AMOUNT
        assert pay.emitted("PaymentAuthorized", order)[0]["attempts"] == 3
        assert len(await pay.provider.operations(order, "void")) == 1
        await pay.publish(confirmed(pay, order))
        await quiet(pay)
        assert await pay.provider.operations(order, "capture") == []


async def test_a_received_return_is_refunded_once_and_shows_in_the_lookup(
    start_payment: Start,
) -> None:
    async with start_payment() as pay:
        order, authorized = await pay_with(pay, "pm_card_ok")
        await pay.publish(confirmed(pay, order))
        await outcome(pay, order, "PaymentCaptured")
        event = ReturnReceived(
            return_id="r-1",
            order_id=order,
            user_id=pay.user_id,
            lines=(Line(product_id="p1", quantity=1),),
            refund_cents=1000,
            payment_id=authorized["paymentId"],
        )
        envelope = Envelope.wrap(event, correlation_id=order)
        await pay.publish(envelope)
        await pay.publish(envelope)
        await pay.publish(Envelope.wrap(event, correlation_id=order))  # sent again: a new id
        refunded = await outcome(pay, order, "PaymentRefunded")
        assert (refunded["returnId"], refunded["amountCents"]) == ("r-1", 1000)
        await quiet(pay)
        assert len(pay.emitted("PaymentRefunded", order)) == 1
        assert len(await pay.provider.operations(order, "refund")) == 1
        body = (
            await pay.http.get(f"/api/v1/payments/{order}", headers=pay.headers["Admin"])
        ).json()
        assert (body["status"], body["capturedCents"], body["refundedCents"]) == (
            "captured",
            AMOUNT,
            1000,
        )
        assert [(r["returnId"], r["amountCents"], r["status"]) for r in body["refunds"]] == [
            ("r-1", 1000, "refunded")
        ]
        assert body["refunds"][0]["at"]
