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

# The wait each status is in, and so which window the deadline sweeper closes there.
WAITS: dict[Status, DeadlineKind] = {
    "PENDING": "stock",
    "AWAITING_CUSTOMER_DECISION": "decision",
    "AWAITING_APPROVAL": "approval",
    "AWAITING_PAYMENT": "payment",
    "PAYMENT_FAILED": "payment",
    "PAID": "commit",
}
