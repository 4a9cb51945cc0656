"""Pure rules of the order service (no I/O, no framework imports), one concept per module.

- `order`: the `Order` aggregate, one method per saga step;
- `records`: what an order keeps (lines, payment view, timeline, audit log);
- `status`: statuses, reasons, waits and the constants the rules use;
- `errors`: the refusals, each with api.md's code;
- `inputs`: what drives a step (`Policy`, `Cause`) and the events it raises (`Raised`);
- `catalogue`: the product and promotion facts an order is priced from;
- `customer`: the customer's profile facts, checkout defaults and the pre-order check.

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
    InvalidPromoCode,
    InvalidQuantity,
    InvalidState,
    MixedCurrency,
    NotAllowed,
    OrderError,
    ProfileIncomplete,
    RetryLimitReached,
    UnknownAddress,
    UnknownPaymentMethod,
    UnknownProduct,
)
from order_service.domain.inputs import Cause, Policy, Raised
from order_service.domain.order import Order
from order_service.domain.records import (
    AuditEntry,
    ClearedPayment,
    OrderLine,
    PaymentState,
    TimelineEntry,
)
from order_service.domain.status import (
    AFTER_STOCK,
    CUSTOMER_CANCELLABLE,
    MAX_QUANTITY,
    MIN_QUANTITY,
    STAFF,
    STATUSES,
    TERMINAL,
    WAITS,
    ApprovalReason,
    CancelReason,
    DeadlineKind,
    Status,
)

__all__ = [
    "AFTER_STOCK",
    "CUSTOMER_CANCELLABLE",
    "MAX_QUANTITY",
    "MIN_QUANTITY",
    "STAFF",
    "STATUSES",
    "TERMINAL",
    "WAITS",
    "ApprovalReason",
    "AuditEntry",
    "CancelReason",
    "Cause",
    "ClearedPayment",
    "CustomerProfile",
    "DeadlineKind",
    "EmptyOrder",
    "InvalidPromoCode",
    "InvalidQuantity",
    "InvalidState",
    "LineAvailability",
    "MixedCurrency",
    "NotAllowed",
    "Order",
    "OrderError",
    "OrderLine",
    "PaymentState",
    "Policy",
    "Precheck",
    "ProductFacts",
    "ProfileIncomplete",
    "Promotion",
    "Raised",
    "RetryLimitReached",
    "Status",
    "TimelineEntry",
    "UnknownAddress",
    "UnknownPaymentMethod",
    "UnknownProduct",
    "precheck_outcome",
]
