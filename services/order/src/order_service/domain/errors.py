"""The order's refusals: each carries api.md's stable error code (the API maps them to answers)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime


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


# --- after CONFIRMED: fulfilment and returns ----------------------------------------------------


class NotDelivered(OrderError):
    """A return asked for before the parcel was delivered (the API answers 409)."""

    code = "NOT_DELIVERED"

    def __init__(self, order_id: str, fulfilment: str | None) -> None:
        super().__init__(f"order {order_id} is not delivered ({fulfilment or 'no shipment'})")
        self.order_id = order_id
        self.fulfilment_status = fulfilment


class ReturnWindowClosed(OrderError):
    """A return asked for after the window that opened at delivery closed (409)."""

    code = "RETURN_WINDOW_CLOSED"

    def __init__(self, order_id: str, closed_at: datetime) -> None:
        super().__init__(f"returns of order {order_id} closed at {closed_at.isoformat()}")
        self.order_id = order_id
        self.closed_at = closed_at


class ReturnQuantityExceeded(OrderError):
    """A return line asks for more units than were delivered less earlier returns' (422)."""

    code = "RETURN_QUANTITY_EXCEEDED"

    def __init__(self, product_id: str, quantity: int, returnable: int) -> None:
        super().__init__(
            f"{quantity} of {product_id} asked back, {returnable} can still be returned"
        )
        self.product_id = product_id
        self.quantity = quantity
        self.returnable = returnable


class EmptyReturn(OrderError):
    """A return without lines (the API's body validation refuses it first)."""

    code = "EMPTY_RETURN"

    def __init__(self) -> None:
        super().__init__("a return needs at least one line")


class ReturnNotFound(OrderError):
    """No return with this id on the order (the API answers 404 RETURN_NOT_FOUND)."""

    code = "RETURN_NOT_FOUND"

    def __init__(self, return_id: str) -> None:
        super().__init__(f"no return {return_id}")
        self.return_id = return_id


class ReturnInvalidState(InvalidState):
    """The step is not allowed in the return's current status (409 INVALID_STATE)."""

    def __init__(self, return_id: str, current_status: str, step: str = "") -> None:
        OrderError.__init__(
            self, f"{step or 'step'} not allowed for return {return_id} in {current_status}"
        )
        self.order_id = ""
        self.return_id = return_id
        self.current_status = current_status
        self.step = step


class IdempotencyKeyReused(OrderError):
    """The same Idempotency-Key was sent with another request body (422)."""

    code = "IDEMPOTENCY_KEY_REUSED"

    def __init__(self, key: str) -> None:
        super().__init__(f"idempotency key {key} was used for another request")
        self.key = key
