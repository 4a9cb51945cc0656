"""The whole catalogue: imports every producer module and says who consumes what.

`CONSUMERS` is events.md's "consumed by" column; it feeds the AsyncAPI document and the peer
queues a publisher declares (the queues a service actually binds come from its handler table).

Beyond events.md's table (its closing note: state-changing admin and manager actions are events,
so the audit trail is complete):
- `StockAdjusted` (inventory): an Admin's stock adjustment.
- `OrderApproved` (order): a Manager's approval (a rejection is `OrderRejected`).
- `DeadLettersRedriven` (gateway): an Admin's DLQ redrive.
Admin user edits are `UserProfileUpdated` / `UserRoleChanged` / `UserDeleted`; product CRUD is
`ProductCreated` / `ProductUpdated` / `ProductDeleted`.

Also added: notify consumes `OrderPlaced` (api.md's `ORDER_PLACED` notification needs it).
Left out: notify does not consume `PaymentCaptured`, `PaymentVoided` or `StockUnavailable`
(events.md lists it; notify has nothing to say about them: the customer hears `ORDER_CONFIRMED`,
`ORDER_CANCELLED`, `ORDER_REJECTED`), nor `PaymentRefundFailed` (api.md has no notification
for it: the return shows `REFUND_FAILED` in the Managers' returns queue, where a person acts on it);
as events.md says, analytics does not consume `PaymentRequested` (order's instruction to payment;
analytics records its outcome, `PaymentAuthorized` / `PaymentFailed`). Every listed consumer has
a handler and every handler is listed (tests/unit/test_catalogue_consumers.py): a binding
without a handler is a delivery paid for nothing.
"""

from __future__ import annotations

from contracts import (  # noqa: F401
    analytics,
    gateway,
    inventory,
    notify,
    order,
    payment,
    shipping,
    user,
)

PRODUCERS = (
    "gateway",
    "user",
    "inventory",
    "order",
    "payment",
    "shipping",
    "notify",
    "analytics",
)

CONSUMERS: dict[str, tuple[str, ...]] = {
    # user
    "UserRegistered": ("order", "notify", "analytics"),
    "UserLoggedIn": ("notify", "analytics"),
    "UserProfileUpdated": ("order", "notify", "analytics"),
    "UserRoleChanged": ("order", "notify", "analytics"),
    "UserDeleted": ("order", "notify", "analytics"),
    # inventory
    "ProductCreated": ("order", "analytics"),
    "ProductUpdated": ("order", "analytics"),
    "ProductDeleted": ("order", "analytics"),
    "StockReserved": ("order", "analytics"),
    "StockPartiallyReserved": ("order", "notify", "analytics"),
    "StockUnavailable": ("order", "analytics"),
    "StockReleased": ("order", "analytics"),
    "StockCommitted": ("order", "analytics"),
    "StockCommitFailed": ("order", "analytics"),
    "StockLow": ("notify", "analytics"),
    "StockAdjusted": ("analytics",),
    "StockReturned": ("order", "analytics"),
    # order
    "OrderPlaced": ("inventory", "notify", "analytics"),
    "OrderApprovalRequired": ("inventory", "notify", "analytics"),
    "OrderApproved": ("analytics",),
    "PaymentRequested": ("payment",),
    "OrderPaid": ("inventory", "analytics"),
    "OrderConfirmed": ("payment", "user", "shipping", "notify", "analytics"),
    "OrderRejected": ("inventory", "payment", "notify", "analytics"),
    "OrderCancelled": ("inventory", "payment", "notify", "analytics"),
    "PromotionRedeemed": ("analytics",),
    "ReturnRequested": ("notify", "analytics"),
    "ReturnApproved": ("notify", "analytics"),
    "ReturnRejected": ("notify", "analytics"),
    "ReturnReceived": ("payment", "inventory", "analytics"),
    # payment
    "PaymentAuthorized": ("order", "analytics"),
    "PaymentFailed": ("order", "notify", "analytics"),
    "PaymentReviewRequired": ("order", "analytics"),
    "PaymentCaptured": ("order", "analytics"),
    "PaymentVoided": ("order", "analytics"),
    "PaymentRefunded": ("order", "notify", "analytics"),
    "PaymentRefundFailed": ("order", "analytics"),
    # shipping
    "ShipmentCreated": ("order", "analytics"),
    "ShipmentDispatched": ("order", "notify", "analytics"),
    "ShipmentDelivered": ("order", "notify", "analytics"),
    # notify
    "NotificationSent": ("analytics",),
    "NotificationFailed": ("analytics",),
    # analytics (it stores its own events too)
    "PromotionGranted": ("order", "notify", "analytics"),
    # gateway
    "AccessDenied": ("analytics",),
    "DeadLettersRedriven": ("analytics",),
}
