"""Pure rules: fraud scoring, the payment state machine, the retry schedule, what a refund may
take (the sandbox processor: integration/test_sandbox_ledger.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from payment_service.domain import (
    Charge,
    FraudInput,
    IllegalTransition,
    PaymentStatus,
    after_refund,
    awaits_capture,
    backoff_delay,
    fraud_rules_apply,
    fraud_score,
    moves,
    refund_refusal,
    transition,
    worst_case_retry_seconds,
)
from payment_service.inflight import InFlight
from payment_service.settings import PaymentSettings

NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)
THRESHOLD = PaymentSettings.model_fields["fraud_threshold"].default
OLD_ACCOUNT = NOW - timedelta(days=90)


def score(amount: int, history: list[tuple[datetime, int]], **kw: object) -> float:
    request = FraudInput(amount_cents=amount, token="pm_card_ok", now=NOW, history=history, **kw)  # type: ignore[arg-type]
    return fraud_score(request).score


def test_a_customers_first_dozen_ordinary_orders_within_an_hour_are_not_flagged() -> None:
    history: list[tuple[datetime, int]] = []
    new_account = NOW - timedelta(minutes=5)
    for n in range(12):
        at = NOW - timedelta(minutes=55) + timedelta(minutes=4 * n)
        verdict = fraud_score(
            FraudInput(
                amount_cents=2500 + 100 * n,
                token="pm_card_ok",
                now=at,
                history=history,
                account_created_at=new_account,
                account_region="US-IL",
                order_region="US-IL",
            )
        )
        assert not verdict.flagged(THRESHOLD), (n, verdict)
        history.append((at, 2500 + 100 * n))


def test_flagged_cases() -> None:
    usual = [(NOW - timedelta(days=d), 3000) for d in range(1, 6)]
    burst = [(NOW - timedelta(minutes=m), 2000) for m in range(1, 25)]
    fraud = fraud_score(FraudInput(amount_cents=100, token="pm_card_fraud", now=NOW))
    assert fraud.flagged(THRESHOLD) and fraud.reasons == ("TEST_CARD_FRAUD",)
    # Velocity: two dozen orders within the hour.
    velocity = fraud_score(
        FraudInput(amount_cents=2000, token="pm_card_ok", now=NOW, history=burst)
    )
    assert velocity.flagged(THRESHOLD) and "VELOCITY" in velocity.reasons
    # A new account with a high amount, from another region than the account's.
    new_far = fraud_score(
        FraudInput(
            amount_cents=250_000,
            token="pm_card_ok",
            now=NOW,
            account_created_at=NOW - timedelta(hours=2),
            account_region="US-IL",
            order_region="RU-MOW",
        )
    )
    assert new_far.flagged(THRESHOLD)
    assert new_far.reasons == ("NEW_ACCOUNT_HIGH_AMOUNT", "REGION_MISMATCH")
    # An amount far above the customer's usual, from another region.
    unusual = fraud_score(
        FraudInput(
            amount_cents=90_000,
            token="pm_card_ok",
            now=NOW,
            history=usual,
            account_created_at=OLD_ACCOUNT,
            account_region="US-IL",
            order_region="BR-SP",
        )
    )
    assert unusual.flagged(THRESHOLD) and "AMOUNT_UNUSUAL" in unusual.reasons


def test_one_signal_alone_is_not_enough() -> None:
    usual = [(NOW - timedelta(days=d), 3000) for d in range(1, 6)]
    assert score(90_000, usual) < THRESHOLD  # a big purchase by a known customer
    assert score(2500, [], account_region="US-IL", order_region="FR-75") < THRESHOLD  # travelling
    assert score(250_000, [], account_created_at=NOW - timedelta(hours=1)) < THRESHOLD
    assert score(2500, [], account_region="US-IL", order_region="local") == 0


def test_state_machine_allows_only_its_moves() -> None:
    assert transition(PaymentStatus.PENDING, PaymentStatus.AUTHORIZED) is PaymentStatus.AUTHORIZED
    assert transition(PaymentStatus.FAILED, PaymentStatus.PENDING) is PaymentStatus.PENDING
    assert transition(PaymentStatus.AUTHORIZED, PaymentStatus.VOIDED) is PaymentStatus.VOIDED
    assert transition(PaymentStatus.CAPTURED, PaymentStatus.REFUNDED) is PaymentStatus.REFUNDED
    for current, target in [
        (PaymentStatus.VOIDED, PaymentStatus.CAPTURED),
        (PaymentStatus.PENDING, PaymentStatus.CAPTURED),
        (PaymentStatus.CAPTURED, PaymentStatus.VOIDED),
        (PaymentStatus.FAILED, PaymentStatus.AUTHORIZED),
        (PaymentStatus.AUTHORIZED, PaymentStatus.REFUNDED),
    ]:
        with pytest.raises(IllegalTransition):
            transition(current, target)


def test_moves_decided_together_must_each_be_legal() -> None:
    # A customer's retry authorized, and an authorization that finds its order ended.
    failed, pending = PaymentStatus.FAILED, PaymentStatus.PENDING
    assert moves(failed, pending, PaymentStatus.AUTHORIZED) is PaymentStatus.AUTHORIZED
    assert moves(pending, PaymentStatus.AUTHORIZED, PaymentStatus.VOIDED) is PaymentStatus.VOIDED
    assert moves(pending) is pending
    with pytest.raises(IllegalTransition):
        moves(failed, PaymentStatus.AUTHORIZED)  # not without going back to pending


def test_in_flight_runs_are_kept_until_committed_and_bounded() -> None:
    inflight = InFlight(capacity=2)
    run = inflight.start("e1", {"amount_cents": 100}, "pm_card_ok")
    assert inflight.get("e1") is run and run.authorization_id is None
    run.calls.append({"number": 1, "outcome": "transient"})
    run.calls.append({"number": 2, "outcome": "authorized", "authorization_id": "auth_1"})
    assert inflight.get("e1") is run and run.authorization_id == "auth_1"
    inflight.forget("e1")
    assert inflight.get("e1") is None
    for event_id in ("e2", "e3", "e4"):
        inflight.start(event_id, {}, "pm_card_ok")
    assert len(inflight) == 2 and inflight.get("e2") is None  # the oldest goes first


def test_default_retries_fit_in_five_seconds() -> None:
    settings = PaymentSettings()
    waits = worst_case_retry_seconds(
        settings.max_attempts, settings.backoff_base_seconds, settings.backoff_cap_seconds
    )
    assert settings.max_attempts == 4 and waits == pytest.approx(0.25 + 0.5 + 1.0)
    assert backoff_delay(1, 0.25, 1.5, 0.0) == pytest.approx(0.125)
    assert backoff_delay(5, 0.25, 1.5, 0.999) <= 1.5
    with pytest.raises(ValueError, match="over 5.0 s"):
        PaymentSettings(max_attempts=8, backoff_base_seconds=1, backoff_cap_seconds=2)


CARD = Charge("pm1", 2_500)


def test_a_passed_review_spares_only_a_flagged_card_and_amount() -> None:
    assert not fraud_rules_apply(True, {CARD}, Charge("pm1", 2_500))
    assert fraud_rules_apply(True, {CARD}, Charge("pm2", 2_500))  # another card after approval
    assert fraud_rules_apply(True, {CARD}, Charge("pm1", 2_501))  # another amount
    assert fraud_rules_apply(False, {CARD}, Charge("pm1", 2_500))  # no review passed
    # Card A flagged, then card B flagged, then A again: A is still among the flagged.
    assert not fraud_rules_apply(True, {CARD, Charge("pm2", 2_500)}, CARD)


def test_an_approval_without_a_flag_clears_nothing() -> None:
    # A Manager approving the order's value: the fraud rules never flagged anything.
    assert fraud_rules_apply(True, set(), CARD)


def test_a_refund_takes_at_most_what_was_captured_less_earlier_refunds() -> None:
    captured, refunded = PaymentStatus.CAPTURED, PaymentStatus.REFUNDED
    assert refund_refusal(captured, 2500, 1000, 1500) is None
    assert refund_refusal(captured, 2500, 1000, 1501) == "REFUND_EXCEEDS_CAPTURE"
    assert refund_refusal(refunded, 2500, 2500, 0) is None  # nothing left, nothing asked
    assert refund_refusal(refunded, 2500, 2500, 1) == "REFUND_EXCEEDS_CAPTURE"
    for never in (PaymentStatus.VOIDED, PaymentStatus.FAILED, PaymentStatus.PENDING):
        assert refund_refusal(never, 0, 0, 0) == "NOT_CAPTURED"


def test_a_payment_is_refunded_once_the_whole_capture_is_paid_back() -> None:
    assert after_refund(PaymentStatus.CAPTURED, 2500, 1000) == []
    assert after_refund(PaymentStatus.CAPTURED, 2500, 2500) == [PaymentStatus.REFUNDED]
    assert after_refund(PaymentStatus.REFUNDED, 2500, 2500) == []
    assert after_refund(PaymentStatus.CAPTURED, 0, 0) == []  # nothing was captured to pay back
    assert moves(PaymentStatus.CAPTURED, *after_refund(PaymentStatus.CAPTURED, 10, 10)) == (
        PaymentStatus.REFUNDED
    )


def test_only_an_open_authorized_payment_waits_for_its_capture() -> None:
    assert awaits_capture(PaymentStatus.AUTHORIZED, closed=False)
    assert not awaits_capture(PaymentStatus.AUTHORIZED, closed=True)
    assert not awaits_capture(PaymentStatus.CAPTURED, closed=False)
    assert not awaits_capture(PaymentStatus.VOIDED, closed=True)
