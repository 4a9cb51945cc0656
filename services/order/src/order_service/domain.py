"""Pure rules of the order service (no I/O, no framework imports).

The `Order` aggregate is the authority on an order's state (architecture.md). Every saga step is
one method; each checks the legal source states, moves the status, records the step in
`audit_logs` and `timeline`, and appends the contract events it raises to `order.events` (with
pre-allocated envelope ids so the timeline can name them). Handlers wrap and emit them; the
aggregate never publishes.

Two kinds of input, two answers to a wrong state:
- commands from people (`decide`, `approve`, `reject`, `cancel`, `retry_payment`) raise
  `InvalidState` (the API's 409 `INVALID_STATE`);
- events from other services (`stock_*`, `payment_*`, `approval_needed`) arriving in a terminal
  or later state are late or duplicate deliveries: they change nothing and return False. Only an
  event that could not have happened yet (e.g. `PaymentAuthorized` while `PENDING`) raises.

Money: integer cents. `subtotal = Σ price × quantity` (the fulfilled quantity once inventory
answered and the partial was accepted); `discount = subtotal × percentOff // 100` (rounded down:
the discount never exceeds the advertised percentage); `total = subtotal − discount`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from contracts import Envelope, Event
from contracts.envelope import Actor
from contracts.ids import new_id
from contracts.order import (
    OrderApprovalRequired,
    OrderApproved,
    OrderCancelled,
    OrderConfirmed,
    OrderPaid,
    OrderPlaced,
    OrderRejected,
    PaymentRequested,
    PromotionRedeemed,
)
from contracts.types import Address, Line, MissingLine, PartialFulfillment, PricedLine

Status = Literal[
    "PENDING",
    "AWAITING_CUSTOMER_DECISION",
    "AWAITING_APPROVAL",
    "AWAITING_PAYMENT",
    "PAYMENT_FAILED",
    "PAID",
    "CONFIRMED",
    "REJECTED",
    "CANCELLED",
]
STATUSES: tuple[Status, ...] = (
    "PENDING",
    "AWAITING_CUSTOMER_DECISION",
    "AWAITING_APPROVAL",
    "AWAITING_PAYMENT",
    "PAYMENT_FAILED",
    "PAID",
    "CONFIRMED",
    "REJECTED",
    "CANCELLED",
)
TERMINAL: frozenset[Status] = frozenset({"CONFIRMED", "REJECTED", "CANCELLED"})
# A customer may cancel only before the money is authorized (api.md); an Admin any non-terminal.
CUSTOMER_CANCELLABLE: frozenset[Status] = frozenset(
    {
        "PENDING",
        "AWAITING_CUSTOMER_DECISION",
        "AWAITING_APPROVAL",
        "AWAITING_PAYMENT",
        "PAYMENT_FAILED",
    }
)
# States that come after inventory answered: a second stock answer there is a duplicate.
AFTER_STOCK: frozenset[str] = (
    frozenset(
        {
            "AWAITING_CUSTOMER_DECISION",
            "AWAITING_APPROVAL",
            "AWAITING_PAYMENT",
            "PAYMENT_FAILED",
            "PAID",
        }
    )
    | TERMINAL
)

MIN_QUANTITY = 1
MAX_QUANTITY = 100
STAFF = ("Manager", "Admin")

DeadlineKind = Literal["stock", "decision", "approval", "payment", "commit"]
ApprovalReason = Literal["highValue", "fraud"]
CancelReason = Literal[
    "CUSTOMER",
    "DECISION_TIMEOUT",
    "APPROVAL_TIMEOUT",
    "PAYMENT_FAILED",
    "PAYMENT_TIMEOUT",
    "COMMIT_FAILED",
    "ADMIN",
    "STOCK_TIMEOUT",
]


# --- errors -----------------------------------------------------------------------------------


class OrderError(Exception):
    """A business rule refused the request; `code` is api.md's stable error code."""

    code = "ORDER_ERROR"


class EmptyOrder(OrderError):
    """An order without lines."""

    code = "EMPTY_ORDER"

    def __init__(self) -> None:
        super().__init__("an order needs at least one line")


class UnknownProduct(OrderError):
    """A line names a product the catalogue does not have (or deleted)."""

    code = "UNKNOWN_PRODUCT"

    def __init__(self, product_id: str) -> None:
        super().__init__(f"unknown product {product_id}")
        self.product_id = product_id


class InvalidQuantity(OrderError):
    """A line's quantity is outside 1…100."""

    code = "INVALID_QUANTITY"

    def __init__(self, product_id: str, quantity: int) -> None:
        super().__init__(f"quantity {quantity} of {product_id} is not within 1…100")
        self.product_id = product_id
        self.quantity = quantity


class MixedCurrency(OrderError):
    """The lines' products are priced in different currencies."""

    code = "MIXED_CURRENCY"

    def __init__(self, currencies: Iterable[str]) -> None:
        super().__init__(f"one order takes one currency, not {sorted(set(currencies))}")


class InvalidPromoCode(OrderError):
    """The promo code is not this user's, has expired or was redeemed already."""

    code = "INVALID_PROMO_CODE"

    def __init__(self, code: str) -> None:
        super().__init__(f"promo code {code} cannot be used")
        self.promo_code = code


class InvalidState(OrderError):
    """The step is not allowed in the order's current status."""

    code = "INVALID_STATE"

    def __init__(self, order_id: str, current_status: str, step: str = "") -> None:
        super().__init__(f"{step or 'step'} not allowed for order {order_id} in {current_status}")
        self.order_id = order_id
        self.current_status = current_status
        self.step = step


class RetryLimitReached(OrderError):
    """The customer used every payment retry the order allows (the API answers 409)."""

    code = "RETRY_LIMIT_REACHED"

    def __init__(self, order_id: str, limit: int) -> None:
        super().__init__(f"order {order_id} has used its {limit} payment retries")
        self.order_id = order_id
        self.limit = limit


class NotAllowed(OrderError):
    """The caller's role may not take this step (the API answers 403)."""

    code = "FORBIDDEN"

    def __init__(self, order_id: str, role: str, step: str) -> None:
        super().__init__(f"{role} may not {step} order {order_id}")
        self.order_id = order_id
        self.role = role


# --- inputs -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Policy:
    """The settings the transitions need, as plain values (the service passes its settings)."""

    approval_threshold_cents: int = 500_000
    # How long a placed order waits for inventory's answer before it is given up.
    stock_window: timedelta = timedelta(minutes=15)
    decision_window: timedelta = timedelta(minutes=15)
    approval_window: timedelta = timedelta(hours=24)
    payment_window: timedelta = timedelta(minutes=15)
    # PAID waits for inventory's commit too: unanswered, the order is cancelled COMMIT_FAILED.
    commit_window: timedelta = timedelta(minutes=2)
    # Customer retries of a failed payment per order (api.md), so a card cannot be tried forever.
    max_payment_retries: int = 5


@dataclass(frozen=True)
class Cause:
    """What drives a step: when, who and from where, and the event or request behind it."""

    at: datetime
    actor: Actor = Actor()
    service: str = "order"
    event_id: str | None = None
    event_type: str | None = None


@dataclass(frozen=True)
class ProductFacts:
    """What the order needs of a catalogue product (from the replica)."""

    product_id: str
    name: str
    price_cents: int
    currency: str = "USD"
    deleted: bool = False


@dataclass(frozen=True)
class Promotion:
    """A promotion granted to a user (from the replica)."""

    code: str
    user_id: str
    percent_off: int
    expires_at: datetime
    redeemed: bool = False


@dataclass(frozen=True)
class Raised:
    """An event the aggregate raised and the envelope id it must be published under."""

    event: Event
    event_id: str

    def envelope(
        self, correlation_id: str, *, causation_id: str | None = None, actor: Actor | None = None
    ) -> Envelope[Event]:
        """The event in its envelope, under the id the timeline already names."""
        wrapped = Envelope.wrap(
            self.event,
            correlation_id=correlation_id,
            causation_id=causation_id,
            actor=actor or Actor(),
        )
        return wrapped.model_copy(update={"id": self.event_id})


# --- pre-order check and checkout defaults ---------------------------------------------------


class ProfileIncomplete(OrderError):
    """The customer lacks a default address or a payment method (api.md: 409 with `missing`)."""

    code = "PROFILE_INCOMPLETE"

    def __init__(self, user_id: str, missing: Sequence[str]) -> None:
        super().__init__(f"profile of {user_id} lacks {', '.join(missing)}")
        self.user_id = user_id
        self.missing = list(missing)


class UnknownAddress(OrderError):
    """The order names an address that is not in the customer's profile."""

    code = "UNKNOWN_ADDRESS"

    def __init__(self, address_id: str) -> None:
        super().__init__(f"no address {address_id} in the profile")
        self.address_id = address_id


class UnknownPaymentMethod(OrderError):
    """The order names a payment method that is not in the customer's profile."""

    code = "UNKNOWN_PAYMENT_METHOD"

    def __init__(self, payment_method_id: str) -> None:
        super().__init__(f"no payment method {payment_method_id} in the profile")
        self.payment_method_id = payment_method_id


@dataclass(frozen=True)
class CustomerProfile:
    """What checkout needs of a customer (from the replica, or from the user service)."""

    user_id: str
    is_profile_complete: bool = False
    address_ids: tuple[str, ...] = ()
    default_address_id: str | None = None
    payment_method_ids: tuple[str, ...] = ()
    default_payment_method_id: str | None = None
    preferred_payment_method: str | None = None
    partial_fulfillment: PartialFulfillment = "ask"
    deleted: bool = False
    addresses: tuple[Address, ...] = ()
    # The customer was already asked to complete the profile (a UI flag the user service keeps).
    completion_prompted: bool = False

    def address(self, address_id: str) -> Address | None:
        """The stored address with this id (the order keeps a copy of where it ships)."""
        return next((a for a in self.addresses if a.address_id == address_id), None)

    @property
    def missing(self) -> list[str]:
        """What keeps the profile from being complete (user service's rule: address + method)."""
        missing: list[str] = []
        if self.default_address_id not in self.address_ids:
            missing.append("address")
        if not self.payment_method_ids:
            missing.append("paymentMethod")
        return missing

    @property
    def preferred_payment_method_id(self) -> str | None:
        """The preferred method when it is still stored, else the default, else the first."""
        for candidate in (self.preferred_payment_method, self.default_payment_method_id):
            if candidate in self.payment_method_ids:
                return candidate
        return self.payment_method_ids[0] if self.payment_method_ids else None

    def checkout(self, address_id: str | None, payment_method_id: str | None) -> tuple[str, str]:
        """The address and method an order uses: the given ones, else the defaults (quick order)."""
        missing = self.missing
        if address_id is None and "address" in missing:
            raise ProfileIncomplete(self.user_id, missing)
        if payment_method_id is None and "paymentMethod" in missing:
            raise ProfileIncomplete(self.user_id, missing)
        address = address_id or self.default_address_id
        method = payment_method_id or self.preferred_payment_method_id
        assert address is not None and method is not None  # guaranteed by `missing` above
        if address not in self.address_ids:
            raise UnknownAddress(address)
        if method not in self.payment_method_ids:
            raise UnknownPaymentMethod(method)
        return address, method


@dataclass(frozen=True)
class LineAvailability:
    """Inventory's answer for one line of a precheck."""

    product_id: str
    requested: int
    available: int
    status: Literal["available", "partial", "unavailable"]
    alternatives: tuple[str, ...] = ()
    exists: bool = True


@dataclass(frozen=True)
class Precheck:
    """The pre-order check's answer (api.md `POST /orders/precheck`)."""

    ready: bool
    profile_complete: bool
    missing: list[str]
    items: list[LineAvailability]
    default_address_id: str | None
    preferred_payment_method_id: str | None
    # Ask for the missing details now: incomplete and not asked before (the seed's "minimal
    # prompts": the front end asks once, then lets the customer order what they can).
    prompt_profile_completion: bool = False


def precheck_outcome(
    profile: CustomerProfile | None, availability: Sequence[LineAvailability]
) -> Precheck:
    """Ready when the profile is complete and every line is available in full."""
    missing = ["address", "paymentMethod"] if profile is None else profile.missing
    every_line = bool(availability) and all(a.status == "available" for a in availability)
    return Precheck(
        ready=not missing and every_line,
        profile_complete=not missing,
        missing=missing,
        items=list(availability),
        default_address_id=profile.default_address_id if profile else None,
        preferred_payment_method_id=profile.preferred_payment_method_id if profile else None,
        prompt_profile_completion=bool(missing)
        and not (profile is not None and profile.completion_prompted),
    )


# --- aggregate parts --------------------------------------------------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore")


class OrderLine(_Model):
    """A product at the price the order was placed at; `fulfilled_quantity` once stock answered."""

    product_id: str
    name: str = ""
    quantity: int
    price_cents: int
    fulfilled_quantity: int | None = None

    @property
    def billable(self) -> int:
        """Units charged: the fulfilled quantity once known, else the quantity asked for."""
        return self.quantity if self.fulfilled_quantity is None else self.fulfilled_quantity


class PaymentState(_Model):
    """The order's view of its payment."""

    status: Literal["none", "requested", "authorized", "failed"] = "none"
    payment_id: str | None = None
    attempts: int = 0  # provider calls, as the payment service reports them
    requests: int = 0  # PaymentRequested sent (the `attempt` number of the last one)
    retries: int = 0  # of those, the customer's retries (capped by the policy)
    last_error: str | None = None
    method_id: str = ""


class ClearedPayment(_Model):
    """The card and amount a Manager approved after the fraud rules flagged them: the approval
    covers exactly this pair, never another card or another amount."""

    method_id: str
    amount_cents: int


class TimelineEntry(_Model):
    """One saga step as the timeline shows it."""

    at: datetime
    step: str
    service: str
    event_type: str | None = None
    event_id: str | None = None
    detail: dict[str, Any] = Field(default_factory=dict)


class AuditEntry(_Model):
    """Who moved the order, when and from where."""

    at: datetime
    action: str
    from_status: Status | None
    to_status: Status
    user_id: str | None = None
    role: str = "system"
    ip: str | None = None
    device: str | None = None
    region: str | None = None


# --- the aggregate ----------------------------------------------------------------------------


class Order(BaseModel):
    """An order and its saga state.

    A pydantic model rather than a dataclass: the store round-trips it to a Mongo document with
    `model_dump`/`model_validate` (nested lines, timeline, audit) without a hand-written mapper.
    Assignments are not validated (the methods keep the invariants), so steps stay cheap.
    """

    model_config = ConfigDict(extra="ignore")

    order_id: str
    user_id: str
    status: Status = "PENDING"
    items: list[OrderLine]
    currency: str = "USD"
    subtotal_cents: int = 0
    discount_cents: int = 0
    total_cents: int = 0
    promo_code: str | None = None
    percent_off: int = 0
    address_id: str
    address: dict[str, Any] | None = None  # a copy of the address at placement
    payment: PaymentState = Field(default_factory=PaymentState)
    partial_preference: PartialFulfillment = "ask"
    partial_fulfillment: bool = False  # the order goes on with fewer units than asked for
    fraud_flag: bool = False
    review_passed: bool = False  # a Manager or Admin approved the order (for value or fraud)
    fraud_cleared: ClearedPayment | None = None
    approval_reason: ApprovalReason | None = None
    rejection_reason: str | None = None
    cancel_reason: CancelReason | None = None
    alternatives: list[str] = Field(default_factory=list)
    missing: list[dict[str, Any]] = Field(default_factory=list)
    reservation_expires_at: datetime | None = None
    stock_due: datetime | None = None  # PENDING: inventory must have answered by then
    decision_due: datetime | None = None
    approval_due: datetime | None = None
    payment_due: datetime | None = None
    commit_due: datetime | None = None  # PAID: inventory must have committed the stock by then
    retry_due: datetime | None = None  # end of the payment-failed window, fixed at 1st failure
    deadline: datetime | None = None  # the due date of the current wait (for the sweeper index)
    created_at: datetime
    updated_at: datetime
    version: int = 0
    audit_logs: list[AuditEntry] = Field(default_factory=list)
    timeline: list[TimelineEntry] = Field(default_factory=list)
    events: list[Raised] = Field(default_factory=list, exclude=True)

    # --- placing ------------------------------------------------------------------------------

    @classmethod
    def place(
        cls,
        *,
        order_id: str,
        user_id: str,
        items: Sequence[tuple[str, int]],
        catalogue: Mapping[str, ProductFacts],
        address_id: str,
        payment_method_id: str,
        cause: Cause,
        promotion: Promotion | None = None,
        partial_preference: PartialFulfillment = "ask",
        address: Address | None = None,
        policy: Policy | None = None,
    ) -> Order:
        """A new PENDING order priced from the catalogue replica; raises OrderPlaced."""
        if not items:
            raise EmptyOrder()
        merged: dict[str, int] = {}
        for product_id, quantity in items:
            if not MIN_QUANTITY <= quantity <= MAX_QUANTITY:
                raise InvalidQuantity(product_id, quantity)
            product = catalogue.get(product_id)
            if product is None or product.deleted:
                raise UnknownProduct(product_id)
            merged[product_id] = merged.get(product_id, 0) + quantity
        # Duplicate lines are summed so that inventory's per-product answer maps to one line.
        for product_id, quantity in merged.items():
            if quantity > MAX_QUANTITY:
                raise InvalidQuantity(product_id, quantity)
        currencies = {catalogue[p].currency for p in merged}
        if len(currencies) > 1:
            raise MixedCurrency(currencies)
        if promotion is not None and (
            promotion.user_id != user_id or promotion.redeemed or promotion.expires_at <= cause.at
        ):
            raise InvalidPromoCode(promotion.code)
        order = cls(
            order_id=order_id,
            user_id=user_id,
            items=[
                OrderLine(
                    product_id=p,
                    name=catalogue[p].name,
                    quantity=q,
                    price_cents=catalogue[p].price_cents,
                )
                for p, q in merged.items()
            ],
            currency=currencies.pop(),
            promo_code=promotion.code if promotion else None,
            percent_off=promotion.percent_off if promotion else 0,
            address_id=address_id,
            address=address.model_dump(by_alias=True) if address else None,
            payment=PaymentState(method_id=payment_method_id),
            partial_preference=partial_preference,
            created_at=cause.at,
            updated_at=cause.at,
            stock_due=cause.at + (policy or Policy()).stock_window,
        )
        order._recompute()
        order._move("place", None, "PENDING", cause)
        order._raise(
            cause,
            "place",
            OrderPlaced(
                order_id=order_id,
                user_id=user_id,
                items=order._priced_lines(billable=False),
                total_cents=order.total_cents,
                currency=order.currency,
                address_id=address_id,
                payment_method_id=payment_method_id,
                promo_code=order.promo_code,
            ),
        )
        if promotion is not None:
            order._raise(
                cause,
                "promotionRedeemed",
                PromotionRedeemed(user_id=user_id, code=promotion.code, order_id=order_id),
            )
        return order

    # --- inventory's answers --------------------------------------------------------------------

    def stock_reserved(
        self, lines: Sequence[Line], expires_at: datetime, cause: Cause, policy: Policy
    ) -> bool:
        """Every line is held: on to approval (high value) or payment."""
        if not self._event_applies("stockReserved", {"PENDING"}, AFTER_STOCK):
            return False
        reserved = _quantities(lines)
        for line in self.items:
            line.fulfilled_quantity = min(line.quantity, reserved.get(line.product_id, 0))
        self.reservation_expires_at = expires_at
        self._note(cause, "stockReserved", {"expiresAt": expires_at.isoformat()})
        self._go_on(cause, policy)
        return True

    def stock_partially_reserved(
        self,
        reserved: Sequence[Line],
        missing: Sequence[MissingLine],
        expires_at: datetime,
        cause: Cause,
        policy: Policy,
        preference: PartialFulfillment | None = None,
    ) -> bool:
        """Some lines are held: the preference (the one at placement unless given) decides."""
        if not self._event_applies("stockPartiallyReserved", {"PENDING"}, AFTER_STOCK):
            return False
        held = _quantities(reserved)
        for line in self.items:
            line.fulfilled_quantity = min(line.quantity, held.get(line.product_id, 0))
        self.missing = [m.model_dump(by_alias=True) for m in missing]
        self.reservation_expires_at = expires_at
        choice = preference or self.partial_preference
        self._note(cause, "stockPartiallyReserved", {"preference": choice, "missing": self.missing})
        if choice == "accept":
            self._accept_partial()
            self._go_on(cause, policy)
        elif choice == "cancel":
            self._cancel("CUSTOMER", cause, "partialCancelled")
        else:
            self.decision_due = cause.at + policy.decision_window
            self._move("awaitDecision", "PENDING", "AWAITING_CUSTOMER_DECISION", cause)
        return True

    def stock_unavailable(
        self, alternatives: Sequence[str], cause: Cause, missing: Sequence[MissingLine] = ()
    ) -> bool:
        """Nothing could be held: REJECTED OUT_OF_STOCK with the alternatives shown."""
        if not self._event_applies("stockUnavailable", {"PENDING"}, AFTER_STOCK):
            return False
        for line in self.items:
            line.fulfilled_quantity = 0
        self.alternatives = list(alternatives)
        self.missing = [m.model_dump(by_alias=True) for m in missing]
        self.rejection_reason = "OUT_OF_STOCK"
        self._note(cause, "stockUnavailable", {"alternatives": self.alternatives})
        self._move("reject", "PENDING", "REJECTED", cause)
        self._raise(
            cause,
            "rejected",
            OrderRejected(
                order_id=self.order_id,
                user_id=self.user_id,
                reason="OUT_OF_STOCK",
                alternatives=tuple(self.alternatives),
            ),
        )
        return True

    def stock_committed(self, cause: Cause) -> bool:
        """The paid lines are sold: CONFIRMED, OrderConfirmed (payment captures on it)."""
        if not self._event_applies("stockCommitted", {"PAID"}, TERMINAL):
            return False
        self._note(cause, "stockCommitted", {})
        self.commit_due = None
        self._move("confirm", "PAID", "CONFIRMED", cause)
        self._raise(
            cause,
            "confirmed",
            OrderConfirmed(
                order_id=self.order_id,
                user_id=self.user_id,
                items=self._priced_lines(billable=True),
                total_cents=self.total_cents,
                currency=self.currency,
                payment_method_id=self.payment.method_id,
                payment_id=self.payment.payment_id,
                partial_fulfillment=self.partial_fulfillment,
            ),
        )
        return True

    def stock_commit_failed(self, reason: str, cause: Cause) -> bool:
        """The reservation was lost after payment: CANCELLED COMMIT_FAILED (payment voids)."""
        if not self._event_applies("stockCommitFailed", {"PAID"}, TERMINAL):
            return False
        self._note(cause, "stockCommitFailed", {"reason": reason})
        self._cancel("COMMIT_FAILED", cause, "commitFailed")
        return True

    def stock_released(self, reason: str, cause: Cause) -> bool:
        """Inventory gave the stock back. Expired while the order waits: CANCELLED, that wait's
        reason (architecture.md: the customer may retry a payment until the reservation expires).
        Any other release follows the order's own cancel or rejection: a timeline note only."""
        if self._seen(cause):
            return False
        self._note(cause, "stockReleased", {"reason": reason})
        waiting: dict[str, CancelReason] = {
            "AWAITING_CUSTOMER_DECISION": "DECISION_TIMEOUT",
            "AWAITING_APPROVAL": "APPROVAL_TIMEOUT",
            "AWAITING_PAYMENT": "PAYMENT_TIMEOUT",
            "PAYMENT_FAILED": "PAYMENT_FAILED",
        }
        if reason == "expired" and self.status in waiting:
            self._cancel(waiting[self.status], cause, "reservationExpired")
        return True

    def payment_settled(self, step: str, detail: dict[str, Any], cause: Cause) -> bool:
        """A capture, void or refund: shown on the timeline, the status stays."""
        if self._seen(cause):
            return False
        self._note(cause, step, detail)
        return True

    # --- the customer's decision ----------------------------------------------------------------

    def decide(self, accept: bool, cause: Cause, policy: Policy) -> None:
        """The customer's answer to a partial reservation: go on with it, or cancel."""
        self._command("decide", {"AWAITING_CUSTOMER_DECISION"})
        self._note(cause, "decision", {"accept": accept})
        self.decision_due = None
        if accept:
            self._accept_partial()
            self._go_on(cause, policy)
        else:
            self._cancel("CUSTOMER", cause, "partialDeclined")

    # --- approval -------------------------------------------------------------------------------

    def approval_needed(self, reason: ApprovalReason, cause: Cause, policy: Policy) -> bool:
        """Payment's fraud rules want a review: AWAITING_APPROVAL with `fraud_flag`, also after
        an approval (payment scores whatever a Manager has not cleared; the order does not
        second-guess it)."""
        later = {"AWAITING_APPROVAL", "PAYMENT_FAILED", "PAID"} | TERMINAL
        if not self._event_applies("approvalNeeded", {"AWAITING_PAYMENT"}, later):
            return False
        self._await_approval(reason, cause, policy)
        return True

    def approve(self, by: str, reason: str, cause: Cause, policy: Policy) -> None:
        """A Manager or Admin lets the order be charged: PaymentRequested (review passed)."""
        self._staff_only("approve", cause)
        self._command("approve", {"AWAITING_APPROVAL"})
        self.review_passed = True
        if self.approval_reason == "fraud":
            self.fraud_cleared = ClearedPayment(
                method_id=self.payment.method_id, amount_cents=self.total_cents
            )
        self.approval_due = None
        self._raise(
            cause,
            "approved",
            OrderApproved(order_id=self.order_id, approved_by=by, reason=reason),
        )
        self._request_payment(cause, policy, "AWAITING_APPROVAL", action="approve")

    def reject(self, by: str, reason: str, cause: Cause) -> None:
        """A Manager or Admin refuses the order: REJECTED (FRAUD when fraud caused the wait)."""
        self._staff_only("reject", cause)
        self._command("reject", {"AWAITING_APPROVAL"})
        code: Literal["MANAGER_REJECTED", "FRAUD"] = (
            "FRAUD" if self.fraud_flag else "MANAGER_REJECTED"
        )
        self.rejection_reason = code
        self.approval_due = None
        self._move("reject", "AWAITING_APPROVAL", "REJECTED", cause)
        self._raise(
            cause,
            "rejected",
            OrderRejected(
                order_id=self.order_id,
                user_id=self.user_id,
                reason=code,
                rejected_by=by,
                comment=reason,
            ),
        )

    # --- payment --------------------------------------------------------------------------------

    def payment_authorized(
        self, payment_id: str, attempts: int, cause: Cause, policy: Policy
    ) -> bool:
        """The money is held: PAID, OrderPaid with the reserved lines (inventory commits)."""
        # A late authorization after a failure, cancel or rejection commits nothing; the payment
        # service voids it on OrderCancelled/OrderRejected (the order is the authority).
        later = {"PAYMENT_FAILED", "PAID"} | TERMINAL
        if not self._event_applies("paymentAuthorized", {"AWAITING_PAYMENT"}, later):
            return False
        self.payment.status = "authorized"
        self.payment.payment_id = payment_id
        self.payment.attempts = max(self.payment.attempts, attempts)
        self.payment.last_error = None
        self.payment_due = None
        self.commit_due = cause.at + policy.commit_window
        self._note(cause, "paymentAuthorized", {"paymentId": payment_id, "attempts": attempts})
        self._move("pay", "AWAITING_PAYMENT", "PAID", cause)
        self._raise(
            cause,
            "paid",
            OrderPaid(order_id=self.order_id, lines=self.reserved_lines(), payment_id=payment_id),
        )
        return True

    def payment_failed(self, reason: str, attempts: int, cause: Cause, policy: Policy) -> bool:
        """Authorization failed: PAYMENT_FAILED; the reservation stays until the window closes."""
        later = {"PAYMENT_FAILED", "PAID"} | TERMINAL
        if not self._event_applies("paymentFailed", {"AWAITING_PAYMENT"}, later):
            return False
        self.payment.status = "failed"
        self.payment.attempts = max(self.payment.attempts, attempts)
        self.payment.last_error = reason
        # The retry window opens at the first failure; retries do not extend it.
        if self.retry_due is None:
            self.retry_due = cause.at + policy.payment_window
        self.payment_due = self.retry_due
        self._note(cause, "paymentFailed", {"reason": reason, "attempts": attempts})
        self._move("paymentFailed", "AWAITING_PAYMENT", "PAYMENT_FAILED", cause)
        return True

    def retry_payment(self, method_id: str | None, cause: Cause, policy: Policy) -> None:
        """The customer retries (maybe with another method) while the window is open."""
        self._command("retryPayment", {"PAYMENT_FAILED"})
        if self.payment_due is not None and cause.at >= self.payment_due:
            raise InvalidState(self.order_id, self.status, "retryPayment")
        if self.payment.retries >= policy.max_payment_retries:
            raise RetryLimitReached(self.order_id, policy.max_payment_retries)
        self.payment.retries += 1
        if method_id:
            self.payment.method_id = method_id
        self._request_payment(cause, policy, "PAYMENT_FAILED", action="retryPayment")

    # --- cancel and deadlines -------------------------------------------------------------------

    def cancel(self, by: str, role: str, reason: str | None, cause: Cause) -> None:
        """Customer before PAID, Admin any non-terminal: CANCELLED, stock released."""
        allowed = set(STATUSES) - TERMINAL if role == "Admin" else CUSTOMER_CANCELLABLE
        self._command("cancel", allowed)
        self._note(cause, "cancelRequested", {"by": by, "role": role, "reason": reason})
        self._cancel("ADMIN" if role == "Admin" else "CUSTOMER", cause, "cancel", by=by)

    def deadline_passed(self, kind: DeadlineKind, cause: Cause) -> bool:
        """A wait's window closed: CANCELLED with that wait's reason; False when not (yet) due."""
        now = cause.at
        if kind == "stock" and self.status == "PENDING":
            due, reason = self.stock_due, "STOCK_TIMEOUT"
        elif kind == "decision" and self.status == "AWAITING_CUSTOMER_DECISION":
            due, reason = self.decision_due, "DECISION_TIMEOUT"
        elif kind == "approval" and self.status == "AWAITING_APPROVAL":
            due, reason = self.approval_due, "APPROVAL_TIMEOUT"
        elif kind == "payment" and self.status == "AWAITING_PAYMENT":
            due, reason = self.payment_due, "PAYMENT_TIMEOUT"
        elif kind == "payment" and self.status == "PAYMENT_FAILED":
            due, reason = self.payment_due, "PAYMENT_FAILED"
        elif kind == "commit" and self.status == "PAID":
            # Inventory never answered OrderPaid: the cancel voids the money, releases the stock.
            due, reason = self.commit_due, "COMMIT_FAILED"
        else:
            return False  # the order moved on before the sweeper got to it
        if due is None or now < due:
            return False
        self._note(cause, f"{kind}Deadline", {"due": due.isoformat()})
        self._cancel(reason, cause, "deadline")  # type: ignore[arg-type]
        return True

    # --- queries --------------------------------------------------------------------------------

    @property
    def is_terminal(self) -> bool:
        """CONFIRMED, REJECTED or CANCELLED."""
        return self.status in TERMINAL

    def reserved_lines(self) -> tuple[Line, ...]:
        """The lines inventory holds for the order (what OrderPaid asks it to commit)."""
        return tuple(
            Line(product_id=line.product_id, quantity=line.fulfilled_quantity)
            for line in self.items
            if line.fulfilled_quantity
        )

    def pull_events(self) -> list[Raised]:
        """The raised events, leaving the list empty (the handler emits them once)."""
        raised, self.events = self.events, []
        return raised

    # --- internals ------------------------------------------------------------------------------

    def _event_applies(self, step: str, legal: Iterable[str], later: Iterable[str]) -> bool:
        if self.status in set(legal):
            return True
        if self.status in set(later):
            return False
        raise InvalidState(self.order_id, self.status, step)

    def _seen(self, cause: Cause) -> bool:
        """The event behind `cause` is on the timeline already (a duplicate delivery)."""
        return cause.event_id is not None and any(
            entry.event_id == cause.event_id for entry in self.timeline
        )

    def _command(self, step: str, legal: Iterable[str]) -> None:
        if self.status not in set(legal):
            raise InvalidState(self.order_id, self.status, step)

    def _fraud_review_covers_payment(self) -> bool:
        """A Manager cleared a fraud flag for exactly the card and amount now being charged."""
        return self.fraud_cleared == ClearedPayment(
            method_id=self.payment.method_id, amount_cents=self.total_cents
        )

    def _staff_only(self, step: str, cause: Cause) -> None:
        if cause.actor.role not in STAFF:
            raise NotAllowed(self.order_id, cause.actor.role, step)

    def _go_on(self, cause: Cause, policy: Policy) -> None:
        """After stock is settled: approval when the total reaches the threshold, else payment."""
        if self.total_cents >= policy.approval_threshold_cents and not self.review_passed:
            self._await_approval("highValue", cause, policy)
        else:
            self._request_payment(cause, policy, self.status, action="requestPayment")

    def _await_approval(self, reason: ApprovalReason, cause: Cause, policy: Policy) -> None:
        self.approval_reason = reason
        if reason == "fraud":
            self.fraud_flag = True
        self.approval_due = cause.at + policy.approval_window
        self.payment_due = None
        self.decision_due = None
        self._move("awaitApproval", self.status, "AWAITING_APPROVAL", cause)
        self._raise(
            cause,
            "approvalRequired",
            OrderApprovalRequired(
                order_id=self.order_id,
                user_id=self.user_id,
                reason=reason,
                total_cents=self.total_cents,
                currency=self.currency,
                hold_until=self.approval_due,
            ),
        )

    def _request_payment(
        self, cause: Cause, policy: Policy, source: Status, *, action: str
    ) -> None:
        self.payment.requests += 1
        self.payment.status = "requested"
        self.decision_due = None
        if source != "PAYMENT_FAILED":
            self.payment_due = cause.at + policy.payment_window
        self._move(action, source, "AWAITING_PAYMENT", cause)
        self._raise(
            cause,
            "paymentRequested",
            PaymentRequested(
                order_id=self.order_id,
                user_id=self.user_id,
                amount_cents=self.total_cents,
                currency=self.currency,
                payment_method_id=self.payment.method_id,
                # An approval for the order's value is no fraud review: the rules still score it.
                review_passed=self._fraud_review_covers_payment(),
                attempt=self.payment.requests,
            ),
        )

    def _accept_partial(self) -> None:
        self.partial_fulfillment = any(line.billable < line.quantity for line in self.items)
        self._recompute()

    def _cancel(
        self, reason: CancelReason, cause: Cause, action: str, by: str | None = None
    ) -> None:
        self.cancel_reason = reason
        self.decision_due = self.approval_due = self.payment_due = self.commit_due = None
        self._move(action, self.status, "CANCELLED", cause)
        self._raise(
            cause,
            "cancelled",
            OrderCancelled(
                order_id=self.order_id,
                user_id=self.user_id,
                reason=reason,
                cancelled_by=by or cause.actor.user_id,
            ),
        )

    def _recompute(self) -> None:
        self.subtotal_cents = sum(line.price_cents * line.billable for line in self.items)
        self.discount_cents = self.subtotal_cents * self.percent_off // 100
        self.total_cents = self.subtotal_cents - self.discount_cents

    def _priced_lines(self, *, billable: bool) -> tuple[PricedLine, ...]:
        return tuple(
            PricedLine(
                product_id=line.product_id,
                quantity=line.billable if billable else line.quantity,
                price_cents=line.price_cents,
            )
            for line in self.items
            if not billable or line.billable > 0
        )

    def _move(self, action: str, source: Status | None, target: Status, cause: Cause) -> None:
        self.status = target
        self.updated_at = cause.at
        if source == "PENDING":
            self.stock_due = None
        self.deadline = {
            "PENDING": self.stock_due,
            "AWAITING_CUSTOMER_DECISION": self.decision_due,
            "AWAITING_APPROVAL": self.approval_due,
            "AWAITING_PAYMENT": self.payment_due,
            "PAYMENT_FAILED": self.payment_due,
            "PAID": self.commit_due,
        }.get(target)
        actor = cause.actor
        self.audit_logs.append(
            AuditEntry(
                at=cause.at,
                action=action,
                from_status=source,
                to_status=target,
                user_id=actor.user_id,
                role=actor.role,
                ip=actor.ip,
                device=actor.device,
                region=actor.region,
            )
        )

    def _note(self, cause: Cause, step: str, detail: dict[str, Any]) -> None:
        """A timeline entry for the event or request that drives this step."""
        self.timeline.append(
            TimelineEntry(
                at=cause.at,
                step=step,
                service=cause.service,
                event_type=cause.event_type,
                event_id=cause.event_id,
                detail=detail,
            )
        )

    def _raise(self, cause: Cause, step: str, event: Event) -> None:
        raised = Raised(event, new_id())
        self.events.append(raised)
        self.timeline.append(
            TimelineEntry(
                at=cause.at,
                step=step,
                service="order",
                event_type=type(event).TYPE,
                event_id=raised.event_id,
                detail={"status": self.status},
            )
        )


def _quantities(lines: Iterable[Line]) -> dict[str, int]:
    found: dict[str, int] = {}
    for line in lines:
        found[line.product_id] = found.get(line.product_id, 0) + line.quantity
    return found
