"""The `Order` aggregate: the authority on an order's state (architecture.md).

Every saga step is one method; each checks the legal source states, moves the status, records the
step in `audit_logs` and `timeline`, and appends the contract events it raises to `order.events`
(with pre-allocated envelope ids so the timeline can name them). Handlers wrap and emit them; the
aggregate never publishes.

Two kinds of input, two answers to a wrong state:
- commands from people (`decide`, `approve`, `reject`, `cancel`, `retry_payment`) raise
  `InvalidState` (the API's 409 `INVALID_STATE`);
- events from other services (`stock_*`, `payment_*`, `approval_needed`) arriving in a terminal
  or later state are late or duplicate deliveries: they change nothing and return False. Only an
  event that could not have happened yet (e.g. `PaymentAuthorized` while `PENDING`) raises.

After CONFIRMED the status stays CONFIRMED: shipping's events fill in `fulfilment` (each only
what is not known yet, so any order of arrival and any repeat is fine), and each return has its
own small state machine with the same two answers to a wrong state (a person's step raises
`ReturnInvalidState`; a late or repeated answer of payment or inventory returns False). Its
rules and money are in `returns`.

Money: integer cents. `subtotal = Σ price × quantity` (the fulfilled quantity once inventory
answered and the partial was accepted); `discount = subtotal × percentOff // 100` (rounded down:
the discount never exceeds the advertised percentage); `total = subtotal − discount`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from contracts import Event
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
    ReturnApproved,
    ReturnReceived,
    ReturnRejected,
    ReturnRequested,
)
from contracts.types import Address, Line, MissingLine, PartialFulfillment, PricedLine
from order_service.domain import returns as return_rules
from order_service.domain.catalogue import ProductFacts, Promotion
from order_service.domain.errors import (
    EmptyOrder,
    IdempotencyKeyReused,
    InvalidPromoCode,
    InvalidQuantity,
    InvalidState,
    MixedCurrency,
    NotAllowed,
    NotDelivered,
    RetryLimitReached,
    ReturnInvalidState,
    ReturnNotFound,
    ReturnWindowClosed,
    UnknownProduct,
)
from order_service.domain.inputs import Cause, Policy, Raised
from order_service.domain.records import (
    AuditEntry,
    ClearedPayment,
    Fulfilment,
    OrderLine,
    OrderReturn,
    PaymentState,
    ReturnLine,
    TimelineEntry,
)
from order_service.domain.status import (
    AFTER_STOCK,
    CUSTOMER_CANCELLABLE,
    FULFILMENT_STEPS,
    MAX_QUANTITY,
    MIN_QUANTITY,
    STAFF,
    STATUSES,
    TERMINAL,
    ApprovalReason,
    CancelReason,
    DeadlineKind,
    FulfilmentStatus,
    ReturnStatus,
    Status,
)


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
    # The due date of the current wait (for the sweeper index); CONFIRMED: the earliest due date
    # of its returns' waits, if any.
    deadline: datetime | None = None
    created_at: datetime
    updated_at: datetime
    version: int = 0
    audit_logs: list[AuditEntry] = Field(default_factory=list)
    timeline: list[TimelineEntry] = Field(default_factory=list)
    # After CONFIRMED: the shipment as shipping reports it, the returns, what was refunded.
    fulfilment: Fulfilment | None = None
    returns: list[OrderReturn] = Field(default_factory=list)
    refunded_cents: int = 0
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
        self._hold(lines, expires_at)
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
        self._hold(reserved, expires_at)
        self.missing = [m.model_dump(by_alias=True) for m in missing]
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

    def _hold(self, held: Sequence[Line], expires_at: datetime) -> None:
        """Each line is fulfilled up to what inventory holds for it, until `expires_at`."""
        quantities = _quantities(held)
        for line in self.items:
            line.fulfilled_quantity = min(line.quantity, quantities.get(line.product_id, 0))
        self.reservation_expires_at = expires_at

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
                address=Address.model_validate(self.address) if self.address else None,
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
        elif kind == "returns" and self.status == "CONFIRMED":
            return self._returns_overdue(cause)
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

    # --- after CONFIRMED: the shipment ----------------------------------------------------------
    #
    # Shipping's events may arrive in any order and more than once: each fills in what it
    # reports when that is not known yet (a timeline step), and the status only moves forward.
    # The order's own status stays CONFIRMED.

    def shipment_created(self, shipment_id: str, cause: Cause) -> bool:
        """The parcel waits in the warehouse: fulfilment PENDING."""
        fulfilment = self._shipment(shipment_id, "shipmentCreated", cause)
        if fulfilment is None or fulfilment.created_at is not None:
            return False
        fulfilment.created_at = cause.at
        self._ship_step(fulfilment, "PENDING", cause, "shipmentCreated", {})
        return True

    def shipment_dispatched(
        self, shipment_id: str, carrier: str, tracking_number: str, at: datetime, cause: Cause
    ) -> bool:
        """The parcel left with a carrier: fulfilment SHIPPED with the tracking number."""
        fulfilment = self._shipment(shipment_id, "shipmentDispatched", cause)
        if fulfilment is None or fulfilment.shipped_at is not None:
            return False
        fulfilment.carrier, fulfilment.tracking_number = carrier, tracking_number
        fulfilment.shipped_at = at
        detail = {"carrier": carrier, "trackingNumber": tracking_number}
        self._ship_step(fulfilment, "SHIPPED", cause, "shipmentDispatched", detail)
        return True

    def shipment_delivered(self, shipment_id: str, at: datetime, cause: Cause) -> bool:
        """The parcel reached the customer: fulfilment DELIVERED; returns open from `at`."""
        fulfilment = self._shipment(shipment_id, "shipmentDelivered", cause)
        if fulfilment is None or fulfilment.delivered_at is not None:
            return False
        fulfilment.delivered_at = at
        self._ship_step(fulfilment, "DELIVERED", cause, "shipmentDelivered", {})
        return True

    # --- after CONFIRMED: returns ---------------------------------------------------------------

    def request_return(
        self,
        return_id: str,
        items: Sequence[tuple[str, int]],
        reason: str,
        cause: Cause,
        policy: Policy,
        *,
        key: str | None = None,
    ) -> OrderReturn:
        """The customer sends delivered units back: a REQUESTED return and its refund, fixed
        now (`returns.refund_for`). A replay of the same `key` answers the return it made."""
        if cause.actor.user_id != self.user_id:
            raise NotAllowed(self.order_id, cause.actor.role, "requestReturn")
        asked = return_rules.merge_lines(items)
        replay = self._replayed_return(key, asked, reason)
        if replay is not None:
            return replay
        fulfilment = self.fulfilment
        if fulfilment is None or fulfilment.delivered_at is None:
            raise NotDelivered(self.order_id, fulfilment.status if fulfilment else None)
        closes = return_rules.window_closes(fulfilment.delivered_at, policy.return_window)
        if cause.at > closes:
            raise ReturnWindowClosed(self.order_id, closes)
        left = return_rules.returnable(self.delivered(), self.returns)
        return_rules.check_quantities(asked, left)
        prices = {line.product_id: line.price_cents for line in self.items}
        refund = return_rules.refund_for(
            sum(prices[p] * q for p, q in asked.items()),
            subtotal_cents=self.subtotal_cents,
            total_cents=self.total_cents,
            claimed_cents=return_rules.claimed_cents(self.returns),
            completes=all(left[p] == asked.get(p, 0) for p in left),
        )
        lines = [ReturnLine(product_id=p, quantity=q) for p, q in asked.items()]
        ret = OrderReturn(
            return_id=return_id,
            items=lines,
            refund_cents=refund,
            reason=reason,
            requested_by=cause.actor.user_id,
            request_key=key,
            created_at=cause.at,
            updated_at=cause.at,
        )
        self.returns.append(ret)
        self._return_moved(ret, "requestReturn", cause)
        self._raise_for(
            ret,
            cause,
            "returnRequested",
            ReturnRequested(
                return_id=return_id,
                order_id=self.order_id,
                user_id=self.user_id,
                lines=tuple(Line(product_id=p, quantity=q) for p, q in asked.items()),
                reason=reason,
                refund_cents=refund,
                currency=self.currency,
            ),
        )
        return ret

    def approve_return(
        self, return_id: str, by: str, reason: str, cause: Cause, policy: Policy
    ) -> OrderReturn:
        """A Manager or Admin accepts the return: APPROVED, the parcel awaited until the receive
        window closes."""
        self._staff_only("approveReturn", cause)
        ret = self._return_in(return_id, "approveReturn", {"REQUESTED"})
        ret.status, ret.approved_at = "APPROVED", cause.at
        ret.decided_by, ret.decision_reason = by, reason
        ret.due = cause.at + policy.return_receive_window
        self._return_moved(ret, "approveReturn", cause)
        event = ReturnApproved(
            return_id=return_id,
            order_id=self.order_id,
            user_id=self.user_id,
            decided_by=by,
            reason=reason,
        )
        self._raise_for(ret, cause, "returnApproved", event)
        return ret

    def reject_return(self, return_id: str, by: str, reason: str, cause: Cause) -> OrderReturn:
        """A Manager or Admin refuses the return: REJECTED, its units returnable again."""
        self._staff_only("rejectReturn", cause)
        ret = self._return_in(return_id, "rejectReturn", {"REQUESTED"})
        ret.decided_by, ret.decision_reason = by, reason
        self._reject_return(ret, by, reason, cause, "rejectReturn")
        return ret

    def receive_return(self, return_id: str, by: str, cause: Cause, policy: Policy) -> OrderReturn:
        """An Admin took the parcel in: RECEIVED, ReturnReceived (payment refunds, inventory
        restocks); payment's answer awaited until the refund window closes."""
        if cause.actor.role != "Admin":
            raise NotAllowed(self.order_id, cause.actor.role, "receiveReturn")
        ret = self._return_in(return_id, "receiveReturn", {"APPROVED"})
        ret.status, ret.received_at, ret.received_by = "RECEIVED", cause.at, by
        ret.due = cause.at + policy.refund_window
        self._return_moved(ret, "receiveReturn", cause)
        self._raise_for(
            ret,
            cause,
            "returnReceived",
            ReturnReceived(
                return_id=return_id,
                order_id=self.order_id,
                user_id=self.user_id,
                lines=tuple(Line(product_id=i.product_id, quantity=i.quantity) for i in ret.items),
                refund_cents=ret.refund_cents,
                currency=self.currency,
                payment_id=self.payment.payment_id or "",
            ),
        )
        if ret.refund_cents == 0:  # nothing to pay back (a free unit): no refund to wait for
            ret.status, ret.refunded_at, ret.due = "REFUNDED", cause.at, None
            self._return_moved(ret, "refundReturn", cause)
        return ret

    def return_refunded(
        self, return_id: str, amount_cents: int, payment_id: str, cause: Cause
    ) -> bool:
        """Payment paid the return back: REFUNDED, `refunded_cents` grows by the amount, once.
        Also after a refund timeout marked it REFUND_FAILED: the money did move."""
        ret = self._return_event(
            return_id, "returnRefunded", {"RECEIVED", "REFUND_FAILED"}, {"REFUNDED"}
        )
        if ret is None:
            return False
        self._note(cause, "returnRefunded", {"returnId": return_id, "amountCents": amount_cents})
        ret.status, ret.refunded_at, ret.due = "REFUNDED", cause.at, None
        ret.refunded_cents, ret.refund_id = amount_cents, payment_id
        ret.failure_reason = None
        self.refunded_cents += amount_cents
        self._return_moved(ret, "refundReturn", cause)
        return True

    def return_refund_failed(self, return_id: str, reason: str, cause: Cause) -> bool:
        """Payment could not refund: REFUND_FAILED with its reason, for a person to act on. The
        provider's reason replaces a REFUND_TIMEOUT the sweeper gave meanwhile."""
        ret = self._return_event(
            return_id, "returnRefundFailed", {"RECEIVED", "REFUND_FAILED"}, {"REFUNDED"}
        )
        if ret is None:
            return False
        if ret.status == "REFUND_FAILED" and ret.failure_reason != "REFUND_TIMEOUT":
            return False  # failed already, for a reason of payment's own
        self._note(cause, "returnRefundFailed", {"returnId": return_id, "reason": reason})
        ret.status, ret.failure_reason, ret.due = "REFUND_FAILED", reason, None
        self._return_moved(ret, "refundFailed", cause)
        return True

    def stock_returned(self, return_id: str, cause: Cause) -> bool:
        """Inventory put the return's units back on sale: noted on the return and the timeline."""
        legal: set[ReturnStatus] = {"RECEIVED", "REFUNDED", "REFUND_FAILED"}
        ret = self._return_event(return_id, "stockReturned", legal, set())
        if ret is None or ret.restocked_at is not None:
            return False
        ret.restocked_at = ret.updated_at = cause.at
        self._note(cause, "stockReturned", {"returnId": return_id})
        return True

    def delivered(self) -> dict[str, int]:
        """Units per product the customer received (the fulfilled quantities, when shipped)."""
        return {line.product_id: line.billable for line in self.items if line.billable > 0}

    def find_return(self, return_id: str) -> OrderReturn:
        """One of the order's returns; `ReturnNotFound` when it has none of that id."""
        found = next((r for r in self.returns if r.return_id == return_id), None)
        if found is None:
            raise ReturnNotFound(return_id)
        return found

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

    def _shipment(self, shipment_id: str, step: str, cause: Cause) -> Fulfilment | None:
        """The order's fulfilment for this shipment (made by whichever step came first); None
        for another shipment than the order's one (shipping makes one per order)."""
        self._event_applies(step, {"CONFIRMED"}, ())
        if self.fulfilment is None:
            self.fulfilment = Fulfilment(shipment_id=shipment_id)
        if self.fulfilment.shipment_id != shipment_id:
            return None
        return self.fulfilment

    def _ship_step(
        self,
        fulfilment: Fulfilment,
        status: FulfilmentStatus,
        cause: Cause,
        step: str,
        detail: dict[str, Any],
    ) -> None:
        if FULFILMENT_STEPS.index(status) > FULFILMENT_STEPS.index(fulfilment.status):
            fulfilment.status = status
        self.updated_at = cause.at
        self._note(cause, step, {"shipmentId": fulfilment.shipment_id, **detail})

    def _replayed_return(
        self, key: str | None, asked: dict[str, int], reason: str
    ) -> OrderReturn | None:
        """The return an earlier request with this Idempotency-Key made, if any; the same key
        with another body is refused."""
        earlier = next((r for r in self.returns if key and r.request_key == key), None)
        if earlier is None:
            return None
        same = {line.product_id: line.quantity for line in earlier.items} == asked
        if not same or earlier.reason != reason:
            raise IdempotencyKeyReused(key or "")
        return earlier

    def _return_in(self, return_id: str, step: str, legal: set[ReturnStatus]) -> OrderReturn:
        """A person's step on a return: the return, if it is in a status the step starts from."""
        ret = self.find_return(return_id)
        if ret.status not in legal:
            raise ReturnInvalidState(return_id, ret.status, step)
        return ret

    def _return_event(
        self, return_id: str, step: str, legal: set[ReturnStatus], later: set[ReturnStatus]
    ) -> OrderReturn | None:
        """Another service's answer about a return: the return when the answer applies; None
        for a late or duplicate answer, or a return this order does not have; an answer that
        could not have come yet raises."""
        ret = next((r for r in self.returns if r.return_id == return_id), None)
        if ret is None or ret.status in later:
            return None
        if ret.status not in legal:
            raise ReturnInvalidState(return_id, ret.status, step)
        return ret

    def _reject_return(
        self, ret: OrderReturn, by: str, reason: str, cause: Cause, action: str
    ) -> None:
        ret.status, ret.rejected_at, ret.due = "REJECTED", cause.at, None
        ret.rejection_reason = reason
        self._return_moved(ret, action, cause)
        event = ReturnRejected(
            return_id=ret.return_id,
            order_id=self.order_id,
            user_id=self.user_id,
            decided_by=by,
            reason=reason,
        )
        self._raise_for(ret, cause, "returnRejected", event)

    def _returns_overdue(self, cause: Cause) -> bool:
        """Close the returns' waits that ended by `cause.at`: an approved return never received
        is REJECTED NOT_RECEIVED; a received one payment never answered is REFUND_FAILED
        REFUND_TIMEOUT (for a person to act on: it shows in the returns queue)."""
        closed = False
        for ret in self.returns:
            if ret.due is None or cause.at < ret.due:
                continue
            closed = True
            due = ret.due.isoformat()
            self._note(cause, "returnDeadline", {"returnId": ret.return_id, "due": due})
            if ret.status == "APPROVED":
                self._reject_return(ret, "system", "NOT_RECEIVED", cause, "returnDeadline")
            else:  # RECEIVED: the only other status with a due date
                ret.status, ret.failure_reason, ret.due = "REFUND_FAILED", "REFUND_TIMEOUT", None
                self._return_moved(ret, "returnDeadline", cause)
        return closed

    def _return_moved(self, ret: OrderReturn, action: str, cause: Cause) -> None:
        """A return changed status: its time, the order's deadline, and the audit log."""
        ret.updated_at = self.updated_at = cause.at
        self._refresh_deadline()
        actor = cause.actor
        self.audit_logs.append(
            AuditEntry(
                at=cause.at,
                action=action,
                from_status=self.status,
                to_status=self.status,
                user_id=actor.user_id,
                role=actor.role,
                ip=actor.ip,
                device=actor.device,
                region=actor.region,
                return_id=ret.return_id,
                return_status=ret.status,
            )
        )

    def _refresh_deadline(self) -> None:
        """CONFIRMED waits while a return does: until the earliest return's due date."""
        if self.status == "CONFIRMED":
            dues = [r.due for r in self.returns if r.due is not None]
            self.deadline = min(dues) if dues else None

    def _raise_for(self, ret: OrderReturn, cause: Cause, step: str, event: Event) -> None:
        self._raise(cause, step, event, {"returnId": ret.return_id, "returnStatus": ret.status})

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

    def _raise(
        self, cause: Cause, step: str, event: Event, detail: dict[str, Any] | None = None
    ) -> None:
        raised = Raised(event, new_id())
        self.events.append(raised)
        self.timeline.append(
            TimelineEntry(
                at=cause.at,
                step=step,
                service="order",
                event_type=type(event).TYPE,
                event_id=raised.event_id,
                detail={"status": self.status, **(detail or {})},
            )
        )


def _quantities(lines: Iterable[Line]) -> dict[str, int]:
    found: dict[str, int] = {}
    for line in lines:
        found[line.product_id] = found.get(line.product_id, 0) + line.quantity
    return found
