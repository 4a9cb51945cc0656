"""Pure rules of the order service (no I/O, no framework imports), one concept per module.

- `order`: the `Order` aggregate, one method per saga step;
- `records`: what an order keeps (lines, payment view, timeline, audit log);
- `status`: statuses, reasons, waits and the constants the rules use;
- `errors`: the refusals, each with api.md's code;
- `inputs`: what drives a step (`Policy`, `Cause`) and the events it raises (`Raised`);
- `catalogue`: the product and promotion facts an order is priced from;
- `customer`: the customer's profile facts, checkout defaults and the pre-order check;
- `returns`: what can still be returned, what a return refunds, the return window.

Everything public is importable from `order_service.domain`.
"""

from order_service.domain.catalogue import ProductFacts, Promotion
from order_service.domain.customer import (
    CustomerProfile,
    LineAvailability,
    Precheck,
    precheck_outcome,
)
from order_service.domain.errors import (
    EmptyOrder,
    EmptyReturn,
    IdempotencyKeyReused,
    InvalidPromoCode,
    InvalidQuantity,
    InvalidState,
    MixedCurrency,
    NotAllowed,
    NotDelivered,
    OrderError,
    ProfileIncomplete,
    RetryLimitReached,
    ReturnInvalidState,
    ReturnNotFound,
    ReturnQuantityExceeded,
    ReturnWindowClosed,
    UnknownAddress,
    UnknownPaymentMethod,
    UnknownProduct,
)
from order_service.domain.inputs import Cause, Policy, Raised
from order_service.domain.order import Order
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
from order_service.domain.returns import refund_for
from order_service.domain.status import (
    AFTER_STOCK,
    CUSTOMER_CANCELLABLE,
    FULFILMENT_STEPS,
    MAX_QUANTITY,
    MIN_QUANTITY,
    RETURN_STATUSES,
    STAFF,
    STATUSES,
    TERMINAL,
    WAITS,
    ApprovalReason,
    CancelReason,
    DeadlineKind,
    FulfilmentStatus,
    ReturnStatus,
    Status,
)

__all__ = [
    "AFTER_STOCK",
    "ApprovalReason",
    "AuditEntry",
    "CUSTOMER_CANCELLABLE",
    "CancelReason",
    "Cause",
    "ClearedPayment",
    "CustomerProfile",
    "DeadlineKind",
    "EmptyOrder",
    "EmptyReturn",
    "FULFILMENT_STEPS",
    "Fulfilment",
    "FulfilmentStatus",
    "IdempotencyKeyReused",
    "InvalidPromoCode",
    "InvalidQuantity",
    "InvalidState",
    "LineAvailability",
    "MAX_QUANTITY",
    "MIN_QUANTITY",
    "MixedCurrency",
    "NotAllowed",
    "NotDelivered",
    "Order",
    "OrderError",
    "OrderLine",
    "OrderReturn",
    "PaymentState",
    "Policy",
    "Precheck",
    "ProductFacts",
    "ProfileIncomplete",
    "Promotion",
    "RETURN_STATUSES",
    "Raised",
    "RetryLimitReached",
    "ReturnInvalidState",
    "ReturnLine",
    "ReturnNotFound",
    "ReturnQuantityExceeded",
    "ReturnStatus",
    "ReturnWindowClosed",
    "STAFF",
    "STATUSES",
    "Status",
    "TERMINAL",
    "TimelineEntry",
    "UnknownAddress",
    "UnknownPaymentMethod",
    "UnknownProduct",
    "WAITS",
    "precheck_outcome",
    "refund_for",
]
