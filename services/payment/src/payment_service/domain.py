"""Pure rules of the payment service (no I/O, no framework imports).

The payment state machine (one payment per order; illegal transitions raise), the fraud rules
(a score in 0..1 with reasons; ordinary traffic, such as a customer's first dozen orders within an
hour, stays well below the threshold), when a Manager's review spares a charge those rules, the
fraud decision of one request (`decide_fraud`: its verdict, and what a review may then clear),
the retry schedule's maths, and what a refund may take (`refund_refusal`, `after_refund`).
"""

from __future__ import annotations

import statistics
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum


class PaymentStatus(StrEnum):
    PENDING = "pending"
    AUTHORIZED = "authorized"
    FAILED = "failed"
    CAPTURED = "captured"
    VOIDED = "voided"
    REFUNDED = "refunded"


# A failed payment goes back to pending when the customer retries with another method.
TRANSITIONS: dict[PaymentStatus, frozenset[PaymentStatus]] = {
    PaymentStatus.PENDING: frozenset({PaymentStatus.AUTHORIZED, PaymentStatus.FAILED}),
    PaymentStatus.FAILED: frozenset({PaymentStatus.PENDING}),
    PaymentStatus.AUTHORIZED: frozenset({PaymentStatus.CAPTURED, PaymentStatus.VOIDED}),
    PaymentStatus.CAPTURED: frozenset({PaymentStatus.REFUNDED}),
    PaymentStatus.VOIDED: frozenset(),
    PaymentStatus.REFUNDED: frozenset(),
}


class IllegalTransition(Exception):
    """A payment was asked to move where its state machine does not go."""


def sources(target: PaymentStatus) -> frozenset[PaymentStatus]:
    """The states from which a payment may move to `target` (for conditional updates)."""
    return frozenset(s for s, targets in TRANSITIONS.items() if target in targets)


def transition(current: PaymentStatus, target: PaymentStatus) -> PaymentStatus:
    """`target` when the move is legal, else `IllegalTransition`."""
    if target not in TRANSITIONS[current]:
        raise IllegalTransition(f"{current} → {target}")
    return target


def moves(current: PaymentStatus, *targets: PaymentStatus) -> PaymentStatus:
    """The state after moving through `targets` in order, each move legal (`IllegalTransition`
    otherwise): the moves one handler decides are stored in one write (failed → pending →
    authorized for a customer's retry, authorized → voided when the order ended meanwhile)."""
    for target in targets:
        current = transition(current, target)
    return current


# --- authorization outcomes -------------------------------------------------------------------

# PaymentFailed.reason (README) and PaymentVoided.reason of a hold released at once.
DECLINED = "DECLINED"
RETRIES_EXHAUSTED = "PROVIDER_UNAVAILABLE"
METHOD_NOT_FOUND = "PAYMENT_METHOD_NOT_FOUND"
ORDER_CLOSED = "ORDER_CLOSED"


def calls_left(outcomes: Sequence[str], max_attempts: int) -> int:
    """How many provider calls a request may still make, given the outcomes of its calls so far
    (earlier runs' count against its budget): none once one was authorized or declined."""
    if any(outcome in ("authorized", "declined") for outcome in outcomes):
        return 0
    return max(0, max_attempts - len(outcomes))


def failure(outcomes: Collection[str]) -> tuple[str, bool]:
    """Why a request whose calls authorized nothing failed, and whether it is retryable: a
    decline is final for this card; an unavailable processor may answer later."""
    return (DECLINED, False) if "declined" in outcomes else (RETRIES_EXHAUSTED, True)


def capture_amount(confirmed_cents: int, authorized_cents: int) -> int:
    """What a confirmation captures: the confirmed total, at most what the card holds."""
    return min(confirmed_cents, authorized_cents)


# --- refunds ----------------------------------------------------------------------------------

# PaymentRefundFailed.reason (README): refused before any call, or the processor's answer.
NOT_CAPTURED = "NOT_CAPTURED"
REFUND_EXCEEDS_CAPTURE = "REFUND_EXCEEDS_CAPTURE"
REFUND_DECLINED = DECLINED

# A partly refunded payment stays captured; a fully refunded one still answers a refund of 0.
REFUNDABLE = frozenset({PaymentStatus.CAPTURED, PaymentStatus.REFUNDED})


class CaptureAwaited(Exception):  # noqa: N818 (a wait, not an error)
    """A refund reached an authorized payment of an open order before its capture did (the
    confirmation's delivery is still on its way, e.g. retried): the refund's delivery is
    retried (bus retry delays, then the dead-letter queue) rather than refused for good."""


def awaits_capture(status: PaymentStatus, *, closed: bool) -> bool:
    """Whether a refund must wait: authorized, the order not ended, the capture still to come."""
    return status == PaymentStatus.AUTHORIZED and not closed


def refund_refusal(
    status: PaymentStatus, captured_cents: int, refunded_cents: int, amount_cents: int
) -> str | None:
    """Why a refund of `amount_cents` is refused without asking the processor (None: ask it,
    or nothing to ask for 0): never captured, or more than captured less earlier refunds."""
    if status not in REFUNDABLE:
        return NOT_CAPTURED
    if amount_cents > captured_cents - refunded_cents:
        return REFUND_EXCEEDS_CAPTURE
    return None


def after_refund(
    status: PaymentStatus, captured_cents: int, refunded_cents: int
) -> list[PaymentStatus]:
    """The move a granted refund makes (`refunded_cents` counts it): to refunded once the whole
    capture is paid back, else none (a partly refunded payment stays captured)."""
    if status == PaymentStatus.CAPTURED and 0 < captured_cents <= refunded_cents:
        return [PaymentStatus.REFUNDED]
    return []


# --- retry schedule ---------------------------------------------------------------------------


def backoff_ceiling(retry: int, base: float, cap: float) -> float:
    """The longest wait before retry number `retry` (1 = the wait after the first call)."""
    return float(min(cap, base * 2 ** (retry - 1)))


def backoff_delay(retry: int, base: float, cap: float, jitter: float) -> float:
    """Exponential backoff with jitter: `jitter` in [0, 1) picks within [ceiling/2, ceiling)."""
    ceiling = backoff_ceiling(retry, base, cap)
    return ceiling / 2 + ceiling / 2 * jitter


def worst_case_retry_seconds(max_attempts: int, base: float, cap: float) -> float:
    """The longest total wait between `max_attempts` calls."""
    return sum(backoff_ceiling(n, base, cap) for n in range(1, max_attempts))


# --- fraud rules ------------------------------------------------------------------------------

FRAUD_TEST_TOKEN = "pm_card_fraud"
VELOCITY_WINDOW = timedelta(hours=1)
# How far back the rules look at a customer's payments (velocity and usual amounts).
HISTORY_WINDOW = VELOCITY_WINDOW * 24 * 30
# api.md: a customer's first dozen ordinary orders within an hour are never flagged.
VELOCITY_WARN = 12
VELOCITY_FLAG = 20
NEW_ACCOUNT_AGE = timedelta(days=1)
NEW_ACCOUNT_HIGH_CENTS = 100_000
UNUSUAL_FACTOR = 10
UNUSUAL_MIN_CENTS = 50_000
MIN_HISTORY = 3


@dataclass(frozen=True)
class FraudInput:
    """What the rules weigh about one payment request."""

    amount_cents: int
    token: str
    now: datetime
    # Earlier payments of the same customer (other orders): when, and how much.
    history: Sequence[tuple[datetime, int]] = ()
    account_created_at: datetime | None = None
    account_region: str | None = None
    order_region: str | None = None


@dataclass(frozen=True)
class FraudVerdict:
    score: float
    reasons: tuple[str, ...] = field(default=())

    def flagged(self, threshold: float) -> bool:
        return self.score >= threshold


def fraud_score(request: FraudInput) -> FraudVerdict:
    """Score a payment 0..1 with the reasons that raised it (each rule adds its weight)."""
    if request.token == FRAUD_TEST_TOKEN:
        return FraudVerdict(1.0, ("TEST_CARD_FRAUD",))
    weights: dict[str, float] = {}
    recent = sum(1 for at, _ in request.history if request.now - at <= VELOCITY_WINDOW)
    if recent >= VELOCITY_FLAG:
        weights["VELOCITY"] = 0.8
    elif recent >= VELOCITY_WARN:
        weights["VELOCITY"] = 0.3
    amounts = [amount for _, amount in request.history]
    if len(amounts) >= MIN_HISTORY:
        usual = statistics.median(amounts)
        if (
            request.amount_cents >= UNUSUAL_MIN_CENTS
            and request.amount_cents > UNUSUAL_FACTOR * usual
        ):
            weights["AMOUNT_UNUSUAL"] = 0.5
    if (
        request.account_created_at is not None
        and request.now - request.account_created_at < NEW_ACCOUNT_AGE
        and request.amount_cents >= NEW_ACCOUNT_HIGH_CENTS
    ):
        weights["NEW_ACCOUNT_HIGH_AMOUNT"] = 0.5
    if _regions_differ(request.account_region, request.order_region):
        weights["REGION_MISMATCH"] = 0.3
    return FraudVerdict(min(1.0, round(sum(weights.values()), 3)), tuple(sorted(weights)))


# Regions we cannot place (a local run, a private address) say nothing about a mismatch.
_UNKNOWN_REGIONS = frozenset({"", "local", "private", "unknown"})


def _regions_differ(account: str | None, order: str | None) -> bool:
    if not account or not order:
        return False
    a, o = account.strip().lower(), order.strip().lower()
    return a not in _UNKNOWN_REGIONS and o not in _UNKNOWN_REGIONS and a != o


@dataclass(frozen=True)
class Charge:
    """A card and an amount: what the fraud rules flag and what a Manager's review clears."""

    payment_method_id: str
    amount_cents: int


def fraud_rules_apply(review_passed: bool, flagged: Collection[Charge], charge: Charge) -> bool:
    """Whether `charge` is scored by the fraud rules.

    A passed review clears only a card and amount these rules flagged before (`flagged`): an
    approval of the order for its value (nothing flagged), or a retry with another card or for
    another amount after an approval, is scored like any other request.
    """
    return not (review_passed and charge in flagged)


@dataclass(frozen=True)
class FlaggedCharge:
    """A card and amount the rules flagged, and the PaymentRequested (event id) they flagged it
    for: what a Manager's review can clear."""

    payment_method_id: str
    amount_cents: int
    cause: str

    @property
    def charge(self) -> Charge:
        return Charge(self.payment_method_id, self.amount_cents)


def reviewed_charges(flagged: Iterable[FlaggedCharge], cause: str) -> set[Charge]:
    """The cards and amounts flagged for requests other than `cause`: all a Manager can have
    reviewed (a re-run of the flagging request itself reviewed nothing)."""
    return {f.charge for f in flagged if f.cause != cause}


def is_scored(
    review_passed: bool, flagged: Iterable[FlaggedCharge], charge: Charge, cause: str
) -> bool:
    """Whether request `cause` for `charge` is scored, given what was flagged on its payment."""
    return fraud_rules_apply(review_passed, reviewed_charges(flagged, cause), charge)


@dataclass(frozen=True)
class FraudDecision:
    """What the fraud rules decided about one request: the verdict, whether it stops the payment
    for a review, and every charge flagged on the payment so far (this one added when flagged)."""

    verdict: FraudVerdict
    flagged: bool
    flagged_charges: tuple[FlaggedCharge, ...]


def decide_fraud(
    request: FraudInput,
    charge: Charge,
    *,
    cause: str,
    threshold: float,
    flagged_before: Sequence[FlaggedCharge] = (),
) -> FraudDecision:
    """Score request `cause` for `charge`; flagged (score at or over `threshold`), the charge
    joins what a Manager's review may clear."""
    verdict = fraud_score(request)
    flagged = verdict.flagged(threshold)
    charges = tuple(flagged_before)
    if flagged:
        charges = (*charges, FlaggedCharge(charge.payment_method_id, charge.amount_cents, cause))
    return FraudDecision(verdict, flagged, charges)


def reopening(status: PaymentStatus | None) -> list[PaymentStatus]:
    """The move a request makes first: a failed payment goes back to pending for the customer's
    next request (none for a new or pending one)."""
    return [PaymentStatus.PENDING] if status == PaymentStatus.FAILED else []


def takes_request(status: PaymentStatus, *, closed: bool, holding: bool) -> bool:
    """Whether a payment in `status` still takes a new request: pending or failed, and the order
    not ended (unless a rolled-back run holds an authorization: that run must finish and void)."""
    if status not in (PaymentStatus.PENDING, PaymentStatus.FAILED):
        return False  # an earlier request already authorized: never charge again
    return holding or not closed
