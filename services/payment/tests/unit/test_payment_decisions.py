"""The pure decisions commands.authorize rests on: the fraud decision and what a review clears,
which requests a payment still takes, a request's budget of calls and why it failed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from payment_service.domain import (
    DECLINED,
    RETRIES_EXHAUSTED,
    Charge,
    FlaggedCharge,
    FraudInput,
    PaymentStatus,
    calls_left,
    capture_amount,
    decide_fraud,
    failure,
    is_scored,
    reopening,
    reviewed_charges,
    takes_request,
)

NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)
THRESHOLD = 0.7
CARD = Charge("pm-1", 2500)


def request(token: str = "pm_card_ok", **kw: object) -> FraudInput:
    return FraudInput(amount_cents=CARD.amount_cents, token=token, now=NOW, **kw)  # type: ignore[arg-type]


def test_an_ordinary_request_is_scored_and_passes_without_flagging_anything() -> None:
    decision = decide_fraud(request(), CARD, cause="e1", threshold=THRESHOLD)
    assert not decision.flagged
    assert decision.verdict.score == 0.0 and decision.verdict.reasons == ()
    assert decision.flagged_charges == ()


def test_a_flagged_request_adds_its_card_and_amount_to_what_a_review_can_clear() -> None:
    earlier = FlaggedCharge("pm-0", 9_999, "e0")
    decision = decide_fraud(
        request("pm_card_fraud"), CARD, cause="e1", threshold=THRESHOLD, flagged_before=[earlier]
    )
    assert decision.flagged and decision.verdict.reasons == ("TEST_CARD_FRAUD",)
    assert decision.flagged_charges == (earlier, FlaggedCharge("pm-1", 2500, "e1"))


def test_the_threshold_decides_whether_a_score_stops_the_payment() -> None:
    # A region mismatch alone scores 0.3: flagged only under a stricter threshold.
    mismatch = request(account_region="US-IL", order_region="FR-75")
    assert not decide_fraud(mismatch, CARD, cause="e1", threshold=THRESHOLD).flagged
    assert decide_fraud(mismatch, CARD, cause="e1", threshold=0.3).flagged


def test_velocity_history_flags_a_burst_of_orders() -> None:
    burst = [(NOW - timedelta(minutes=m), 2000) for m in range(1, 25)]
    decision = decide_fraud(request(history=burst), CARD, cause="e1", threshold=THRESHOLD)
    assert decision.flagged and "VELOCITY" in decision.verdict.reasons


def test_a_passed_review_clears_only_a_charge_flagged_for_an_earlier_request() -> None:
    flagged = [FlaggedCharge("pm-1", 2500, "e1")]
    # The review of e1's flag clears the same card and amount for a later request...
    assert not is_scored(True, flagged, CARD, cause="e2")
    # ...not for e1 itself re-run (nothing was reviewed yet), not another amount or card, and
    # not without a passed review.
    assert is_scored(True, flagged, CARD, cause="e1")
    assert is_scored(True, flagged, Charge("pm-1", 2600), cause="e2")
    assert is_scored(True, flagged, Charge("pm-2", 2500), cause="e2")
    assert is_scored(False, flagged, CARD, cause="e2")
    assert is_scored(True, [], CARD, cause="e2")
    assert reviewed_charges(flagged, "e1") == set()


def test_which_requests_a_payment_still_takes() -> None:
    assert takes_request(PaymentStatus.PENDING, closed=False, holding=False)
    assert takes_request(PaymentStatus.FAILED, closed=False, holding=False)
    # The order ended: nothing new is charged, unless a lost run holds a hold it must void.
    assert not takes_request(PaymentStatus.PENDING, closed=True, holding=False)
    assert takes_request(PaymentStatus.PENDING, closed=True, holding=True)
    for settled in (PaymentStatus.AUTHORIZED, PaymentStatus.CAPTURED, PaymentStatus.VOIDED):
        assert not takes_request(settled, closed=False, holding=True)


def test_a_failed_payment_reopens_for_the_next_request() -> None:
    assert reopening(PaymentStatus.FAILED) == [PaymentStatus.PENDING]
    assert reopening(PaymentStatus.PENDING) == [] and reopening(None) == []


def test_a_request_budget_counts_its_earlier_calls_and_ends_at_an_answer() -> None:
    assert calls_left([], 4) == 4
    assert calls_left(["transient", "transient"], 4) == 2
    assert calls_left(["transient"] * 5, 4) == 0
    assert calls_left(["transient", "authorized"], 4) == 0
    assert calls_left(["declined"], 4) == 0


def test_why_a_request_failed() -> None:
    assert failure(["transient", "declined"]) == (DECLINED, False)
    assert failure(["transient"] * 4) == (RETRIES_EXHAUSTED, True)


def test_a_capture_takes_the_confirmed_total_at_most_the_hold() -> None:
    assert capture_amount(1000, 2500) == 1000
    assert capture_amount(3000, 2500) == 2500
