"""An order's statuses, the reasons it ends or waits, and the few constants its rules use."""

from __future__ import annotations

from typing import Literal, get_args

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
STATUSES: tuple[Status, ...] = get_args(Status)
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

# "returns": a CONFIRMED order's returns wait to be received or refunded (see `Order.returns`).
DeadlineKind = Literal["stock", "decision", "approval", "payment", "commit", "returns"]
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

# The wait each status is in, and so which window the deadline sweeper closes there.
WAITS: dict[Status, DeadlineKind] = {
    "PENDING": "stock",
    "AWAITING_CUSTOMER_DECISION": "decision",
    "AWAITING_APPROVAL": "approval",
    "AWAITING_PAYMENT": "payment",
    "PAYMENT_FAILED": "payment",
    "PAID": "commit",
    # A CONFIRMED order waits only while one of its returns does (its `deadline` is then the
    # earliest return's due date, None otherwise): the same indexed query finds it.
    "CONFIRMED": "returns",
}

# After CONFIRMED (api.md "Fulfilment and returns"): the parcel's steps, only ever forward.
FulfilmentStatus = Literal["PENDING", "SHIPPED", "DELIVERED"]
FULFILMENT_STEPS: tuple[FulfilmentStatus, ...] = get_args(FulfilmentStatus)

ReturnStatus = Literal["REQUESTED", "APPROVED", "REJECTED", "RECEIVED", "REFUNDED", "REFUND_FAILED"]
RETURN_STATUSES: tuple[ReturnStatus, ...] = get_args(ReturnStatus)
# A return in one of these claims its units (a REJECTED one gives them back to the order).
RETURN_CLAIMS: frozenset[ReturnStatus] = frozenset(RETURN_STATUSES) - {"REJECTED"}
